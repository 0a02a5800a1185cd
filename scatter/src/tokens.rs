//! The tokenizer policy shared by `HybridText` expansion and `Auto` routing.
//!
//! Exactly the documented transform (`spec/api_query.md`, Tokenization):
//!
//! 1. split on Unicode UAX #29 word boundaries and lowercase, with `alyze` (Turbopuffer's
//!    `word_v4` code): `TokenizerOptions::UAX29Word`, `case_sensitive: false`, no maximum token
//!    length, no stopword removal, no stemming, no ASCII folding. alyze only emits word-like
//!    spans, so punctuation-only tokens never appear;
//! 2. drop tokens shorter than 2 characters (Unicode scalar values, not bytes: `"é"` is one);
//! 3. dedupe, keeping the first occurrence's position;
//! 4. keep the first 15 ([`MAX_TOKENS`]); the rest are counted in [`Tokens::dropped`].
//!
//! Rule 4's cap is a parameter ([`tokenize_capped`]) because the `fused` route needs one leg
//! for ANN and so caps at 14 (see [`crate::route`]).

use std::collections::HashSet;

use alyze::analyze::{AnalysisOptions, Analyzer, ReusableBuffer, TokenizerOptions};
use alyze::uax29;

/// The token cap: 15 fuzzy legs + 1 BM25 leg = 16, the upstream sub-query limit.
pub const MAX_TOKENS: usize = 15;
/// Tokens with fewer characters are dropped.
pub const MIN_TOKEN_CHARS: usize = 2;

/// The tokens an input yields under the policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tokens {
    /// Post-policy tokens, in first-occurrence order.
    pub tokens: Vec<String>,
    /// Distinct tokens cut by the cap (not those removed by the length rule or dedupe).
    pub dropped: usize,
}

/// Applies the policy with the standard cap of [`MAX_TOKENS`].
#[must_use]
pub fn tokenize(input: &str) -> Tokens {
    tokenize_capped(input, MAX_TOKENS)
}

/// Applies the policy, keeping at most `cap` tokens.
#[must_use]
pub fn tokenize_capped(input: &str, cap: usize) -> Tokens {
    let options = AnalysisOptions {
        tokenizer: TokenizerOptions::UAX29Word(uax29::word::Options::default()),
        maximum_token_length: None,
        case_sensitive: false,
        stopword_removal: None,
        stemming: None,
        ascii_folding: false,
    };
    // `Analyzer::new` asserts `options.valid()`; these options (no stemming, no stopwords) are
    // always valid, and the buffer is cheap to build (its stemming cache allocates lazily).
    let analyzer = Analyzer::new(options);
    let mut buffer = ReusableBuffer::new();
    let mut out = Tokens::default();
    // Distinct tokens past the cap, kept only to count each once; a set because an adversarial
    // input can carry many thousands of them.
    let mut extra: HashSet<String> = HashSet::new();
    analyzer.analyze(input, &mut buffer, |token| {
        let text = token.text;
        if text.chars().nth(MIN_TOKEN_CHARS - 1).is_none() {
            return true;
        }
        // Linear dedupe over the kept tokens: there are at most `cap` of them.
        if out.tokens.iter().any(|t| t == text) {
            return true;
        }
        if out.tokens.len() < cap {
            out.tokens.push(text.to_owned());
        } else if !extra.contains(text) {
            extra.insert(text.to_owned());
            out.dropped += 1;
        }
        true
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(input: &str) -> (Vec<String>, usize) {
        let t = tokenize(input);
        (t.tokens, t.dropped)
    }

    #[test]
    fn splits_lowercases_and_drops_punctuation() {
        assert_eq!(
            toks("Conection TIMOUT, kubernets!!").0,
            ["conection", "timout", "kubernets"]
        );
        assert_eq!(toks("... --- !!! ???"), (vec![], 0));
        assert_eq!(toks(""), (vec![], 0));
    }

    #[test]
    fn short_tokens_are_dropped_by_characters_not_bytes() {
        assert_eq!(toks("a b c d e x").0, Vec::<String>::new());
        assert_eq!(toks("a go b é éé").0, ["go", "éé"]);
    }

    #[test]
    fn dedupe_keeps_first_occurrence_order() {
        assert_eq!(
            toks("Pods pods PODS deploy pods Deploy").0,
            ["pods", "deploy"]
        );
    }

    #[test]
    fn cap_at_fifteen_counts_distinct_dropped() {
        let words: Vec<String> = (0..20).map(|i| format!("w{i:02}")).collect();
        let mut input = words.join(" ");
        // Repeats of kept and of cut tokens are not counted twice.
        input.push_str(" w00 w19 w19");
        let (t, dropped) = toks(&input);
        assert_eq!(t.len(), 15);
        assert_eq!(t[0], "w00");
        assert_eq!(t[14], "w14");
        assert_eq!(dropped, 5);
        let t = tokenize_capped(&input, 14);
        assert_eq!((t.tokens.len(), t.dropped), (14, 6));
    }

    #[test]
    fn short_and_duplicate_tokens_do_not_count_as_dropped() {
        assert_eq!(toks("a a a b timout timout").1, 0);
    }
}
