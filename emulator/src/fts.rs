//! Full-text analysis with Turbopuffer's own tokenizer (crate `alyze`, the `word_v4` pipeline):
//! UAX #29 word segmentation, lowercasing, stopword removal, stemming and ASCII folding as the
//! attribute's `full_text_search` settings say, a document's token lists ([`tokenize_doc`]), plus
//! BM25 scoring.

use std::cell::RefCell;
use std::collections::HashMap;

use alyze::analyze::{
    AnalysisOptions, Analyzer, LanguageWithStopwords, ReusableBuffer, StemmingLanguage,
    StopwordRemoval, TokenizerOptions,
};
use serde_json::Value;

use crate::model::Doc;
use crate::schema::{FtsConfig, Schema};

thread_local! {
    static BUFFER: RefCell<ReusableBuffer> = RefCell::new(ReusableBuffer::new());
}

fn stopword_language(lang: &str) -> Option<LanguageWithStopwords> {
    Some(match lang {
        "danish" => LanguageWithStopwords::Danish,
        "dutch" => LanguageWithStopwords::Dutch,
        "english" => LanguageWithStopwords::English,
        "finnish" => LanguageWithStopwords::Finnish,
        "french" => LanguageWithStopwords::French,
        "german" => LanguageWithStopwords::German,
        "hungarian" => LanguageWithStopwords::Hungarian,
        "italian" => LanguageWithStopwords::Italian,
        "norwegian" => LanguageWithStopwords::Norwegian,
        "portuguese" => LanguageWithStopwords::Portuguese,
        "russian" => LanguageWithStopwords::Russian,
        "spanish" => LanguageWithStopwords::Spanish,
        "swedish" => LanguageWithStopwords::Swedish,
        _ => return None,
    })
}

fn stemming_language(lang: &str) -> Option<StemmingLanguage> {
    Some(match lang {
        "arabic" => StemmingLanguage::Arabic,
        "danish" => StemmingLanguage::Danish,
        "dutch" => StemmingLanguage::Dutch,
        "english" => StemmingLanguage::English,
        "finnish" => StemmingLanguage::Finnish,
        "french" => StemmingLanguage::French,
        "german" => StemmingLanguage::German,
        "greek" => StemmingLanguage::Greek,
        "hungarian" => StemmingLanguage::Hungarian,
        "italian" => StemmingLanguage::Italian,
        "norwegian" => StemmingLanguage::Norwegian,
        "portuguese" => StemmingLanguage::Portuguese,
        "romanian" => StemmingLanguage::Romanian,
        "russian" => StemmingLanguage::Russian,
        "spanish" => StemmingLanguage::Spanish,
        "swedish" => StemmingLanguage::Swedish,
        "tamil" => StemmingLanguage::Tamil,
        "turkish" => StemmingLanguage::Turkish,
        _ => return None,
    })
}

fn options(cfg: &FtsConfig) -> AnalysisOptions {
    // Stemming and stopword removal require case-insensitive analysis; a case-sensitive
    // attribute silently skips them rather than failing every write.
    let insensitive = !cfg.case_sensitive;
    AnalysisOptions {
        tokenizer: TokenizerOptions::UAX29Word(Default::default()),
        maximum_token_length: Some(cfg.max_token_length as usize),
        case_sensitive: cfg.case_sensitive,
        stopword_removal: (insensitive && cfg.remove_stopwords)
            .then(|| stopword_language(&cfg.language).map(StopwordRemoval::ForLanguage))
            .flatten(),
        stemming: (insensitive && cfg.stemming)
            .then(|| stemming_language(&cfg.language))
            .flatten(),
        ascii_folding: cfg.ascii_folding,
    }
}

/// Analyses `text` into the attribute's token stream.
pub fn analyze(cfg: &FtsConfig, text: &str) -> Vec<String> {
    if cfg.tokenizer == "pre_tokenized_array" {
        return vec![text.to_string()];
    }
    let analyzer = Analyzer::new(options(cfg));
    let mut out = Vec::new();
    BUFFER.with(|b| {
        let mut buf = b.borrow_mut();
        buf.reset_keep_stemming_cache();
        analyzer.analyze(text, &mut buf, |t| {
            out.push(t.text.to_string());
            true
        });
    });
    out
}

/// Recomputes a document's full-text tokens from the schema.
pub fn tokenize_doc(schema: &Schema, doc: &mut Doc) {
    doc.tokens.clear();
    for (attr, s) in schema {
        let Some(cfg) = &s.fts else { continue };
        let Some(v) = doc.attrs.get(attr) else {
            continue;
        };
        let lists: Vec<Vec<String>> = match v {
            Value::String(text) => vec![analyze(cfg, text)],
            Value::Array(items) if cfg.tokenizer == "pre_tokenized_array" => {
                vec![
                    items
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect(),
                ]
            }
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|t| analyze(cfg, t))
                .collect(),
            _ => continue,
        };
        doc.tokens.insert(attr.clone(), lists);
    }
}

/// Corpus statistics for one attribute over the documents a query can see.
pub struct Bm25Stats {
    pub docs: usize,
    pub avg_len: f64,
    pub df: HashMap<String, usize>,
}

impl Bm25Stats {
    /// Builds stats for `terms` over an iterator of per-document token lists.
    pub fn build<'a>(terms: &[String], docs: impl Iterator<Item = &'a [Vec<String>]>) -> Self {
        let mut df: HashMap<String, usize> = terms.iter().map(|t| (t.clone(), 0)).collect();
        let (mut n, mut total) = (0usize, 0usize);
        for doc in docs {
            n += 1;
            total += doc.iter().map(Vec::len).sum::<usize>();
            for (term, count) in df.iter_mut() {
                if doc.iter().any(|el| el.iter().any(|t| t == term)) {
                    *count += 1;
                }
            }
        }
        Bm25Stats {
            docs: n,
            avg_len: if n == 0 { 0.0 } else { total as f64 / n as f64 },
            df,
        }
    }

    /// BM25 (with the k3 query-term saturation) of one document; 0 when no term matches.
    pub fn score(
        &self,
        cfg: &FtsConfig,
        query: &[(String, usize)],
        doc: &[Vec<String>],
        prefix_last: bool,
    ) -> f64 {
        let len: usize = doc.iter().map(Vec::len).sum();
        let mut score = 0.0;
        for (i, (term, qtf)) in query.iter().enumerate() {
            let is_prefix = prefix_last && i + 1 == query.len();
            if is_prefix {
                // Prefix matches score a flat 1.0, as the live service documents.
                if doc.iter().flatten().any(|t| t.starts_with(term.as_str())) {
                    score += 1.0;
                }
                continue;
            }
            let tf = doc.iter().flatten().filter(|t| *t == term).count() as f64;
            if tf == 0.0 {
                continue;
            }
            let df = *self.df.get(term).unwrap_or(&0) as f64;
            let n = self.docs as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            let norm = if self.avg_len > 0.0 {
                len as f64 / self.avg_len
            } else {
                1.0
            };
            let tf_part = tf * (cfg.k1 + 1.0) / (tf + cfg.k1 * (1.0 - cfg.b + cfg.b * norm));
            let q = *qtf as f64;
            let qtf_part = q * (cfg.k3 + 1.0) / (cfg.k3 + q);
            score += idf * tf_part * qtf_part;
        }
        score
    }
}

/// Groups query tokens into (term, query frequency), keeping first-occurrence order.
pub fn query_terms(tokens: Vec<String>) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for t in tokens {
        match out.iter_mut().find(|(x, _)| *x == t) {
            Some((_, n)) => *n += 1,
            None => out.push((t, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pipeline_lowercases_and_drops_stopwords() {
        let cfg = FtsConfig::default();
        assert_eq!(
            analyze(&cfg, "The Quick brown-fox!"),
            vec!["quick", "brown", "fox"]
        );
    }

    #[test]
    fn stemming_applies_when_enabled() {
        let cfg = FtsConfig {
            stemming: true,
            ..FtsConfig::default()
        };
        assert_eq!(analyze(&cfg, "running runs"), vec!["run", "run"]);
    }

    #[test]
    fn rarer_terms_score_higher() {
        let cfg = FtsConfig::default();
        let docs: Vec<Vec<Vec<String>>> = ["walrus tusk", "walrus fish", "walrus seal"]
            .iter()
            .map(|d| vec![analyze(&cfg, d)])
            .collect();
        let terms = vec!["walrus".to_string(), "tusk".to_string()];
        let stats = Bm25Stats::build(&terms, docs.iter().map(|d| d.as_slice()));
        let q = query_terms(terms);
        let s0 = stats.score(&cfg, &q, &docs[0], false);
        let s1 = stats.score(&cfg, &q, &docs[1], false);
        assert!(s0 > s1 && s1 > 0.0);
    }
}
