//! The `rank_by` grammar (contract §4.2): exact vector search (ANN and kNN are both brute force
//! here), SparseKNN, BM25 and its combinators, filter-as-score, and ordering by attributes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::filter::{self, EvalCtx, Filter};
use crate::fts::{self, Bm25Stats};
use crate::model::{Doc, Id, decode_vector};
use crate::schema::{AttrType, FtsConfig, Scalar, Schema};

/// A parsed `rank_by`.
pub enum Rank {
    /// Dense vector distance, ascending.
    Vector {
        attr: String,
        knn: bool,
        query: Vec<f32>,
    },
    /// Sparse dot product, descending.
    Sparse {
        attr: String,
        query: Vec<(String, f64)>,
    },
    /// A score expression, descending; zero-score documents are excluded.
    Score(Score),
    /// Attribute ordering: (attribute, ascending).
    Order(Vec<(String, bool)>),
}

/// Score expressions built from BM25, attributes and filters.
pub enum Score {
    Bm25 {
        attr: String,
        terms: Vec<(String, usize)>,
        prefix: bool,
        cfg: FtsConfig,
        stats: Option<Bm25Stats>,
    },
    Sum(Vec<Score>),
    Max(Vec<Score>),
    Product(f64, Box<Score>),
    Saturate(Box<Score>, f64, f64),
    Decay(Box<Score>, f64, f64),
    Dist(Box<Score>, f64),
    Attribute(String),
    Filter(Filter),
}

fn malformed() -> ApiError {
    ApiError::deserialize(
        "rank_by: data did not match any variant of enum a valid variant of RankInput",
    )
}

/// Parses `rank_by` against the schema.
pub fn parse(v: &Value, schema: &Schema) -> ApiResult<Rank> {
    let items = v.as_array().ok_or_else(malformed)?;
    if items.is_empty() {
        return Err(ApiError::invalid("rank_by cannot be empty"));
    }
    // A list of orderings: [[attr, "asc"], [attr, "desc"]].
    if items.iter().all(|i| order_pair(i).is_some()) && items.iter().all(Value::is_array) {
        return orderable(items.iter().filter_map(order_pair).collect(), schema);
    }
    if let Some(pair) = order_pair(v) {
        return orderable(vec![pair], schema);
    }
    match items.as_slice() {
        [Value::String(attr), Value::String(op), query] if op == "ANN" || op == "kNN" => {
            let query = match query {
                Value::Array(a) if a.first().is_some_and(Value::is_array) => {
                    return Err(ApiError::invalid(
                        "multi-vector queries are not supported by this emulator",
                    ));
                }
                Value::Array(a) if a.first().is_some_and(Value::is_string) => {
                    return Err(ApiError::invalid(
                        "native embedding (Embed) is not available in this emulator",
                    ));
                }
                q => decode_vector(q).map_err(|_| malformed())?,
            };
            match schema.get(attr).map(|s| s.ty) {
                Some(AttrType::Vector { dims, .. }) if dims != query.len() => {
                    Err(ApiError::invalid(format!(
                        "vector dimension mismatch for rank_by on '{attr}': expected {dims}, got {}",
                        query.len()
                    )))
                }
                Some(AttrType::Vector { .. }) => Ok(Rank::Vector {
                    attr: attr.clone(),
                    knn: op == "kNN",
                    query,
                }),
                _ => Err(ApiError::invalid(format!(
                    "attribute \"{attr}\" is not a vector attribute with an ANN index"
                ))),
            }
        }
        [Value::String(attr), Value::String(op), Value::Object(q)] if op == "SparseKNN" => {
            let query = q
                .iter()
                .map(|(k, w)| w.as_f64().map(|w| (k.clone(), w)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(malformed)?;
            Ok(Rank::Sparse {
                attr: attr.clone(),
                query,
            })
        }
        _ => parse_score(v, schema).map(Rank::Score),
    }
}

/// Attribute ordering; array attributes are not orderable (contract §4.2, [D-query]), and neither
/// are vector or sparse columns.
fn orderable(keys: Vec<(String, bool)>, schema: &Schema) -> ApiResult<Rank> {
    for (attr, _) in &keys {
        if let Some(s) = schema.get(attr)
            && !matches!(s.ty, AttrType::Scalar(_))
        {
            return Err(ApiError::invalid(format!(
                "cannot order by attribute \"{attr}\" of type {}: only attributes of scalar types are orderable",
                s.ty.render()
            )));
        }
    }
    Ok(Rank::Order(keys))
}

fn order_pair(v: &Value) -> Option<(String, bool)> {
    match v.as_array()?.as_slice() {
        [Value::String(attr), Value::String(dir)] if dir == "asc" || dir == "desc" => {
            Some((attr.clone(), dir == "asc"))
        }
        _ => None,
    }
}

fn parse_score(v: &Value, schema: &Schema) -> ApiResult<Score> {
    let items = v.as_array().ok_or_else(malformed)?;
    match items.as_slice() {
        [Value::String(attr), Value::String(op), q, rest @ ..]
            if op == "BM25" && rest.len() <= 1 =>
        {
            let cfg = schema.get(attr).and_then(|s| s.fts.clone()).ok_or_else(|| {
                ApiError::invalid(format!("attribute \"{attr}\" does not have full-text search enabled, cannot rank by BM25"))
            })?;
            let tokens = filter::query_tokens(&cfg, q, attr)?;
            let prefix = rest
                .first()
                .and_then(|p| p.get("last_as_prefix"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(Score::Bm25 {
                attr: attr.clone(),
                terms: fts::query_terms(tokens),
                prefix,
                cfg,
                stats: None,
            })
        }
        [Value::String(op), Value::Array(subs)] if op == "Sum" || op == "Max" => {
            let parts = subs
                .iter()
                .map(|s| parse_score(s, schema))
                .collect::<ApiResult<Vec<_>>>()?;
            Ok(if op == "Sum" {
                Score::Sum(parts)
            } else {
                Score::Max(parts)
            })
        }
        [Value::String(op), a, b] if op == "Product" => {
            let (w, e) = match (a.as_f64(), b.as_f64()) {
                (Some(w), _) => (w, b),
                (None, Some(w)) => (w, a),
                _ => return Err(malformed()),
            };
            if w < 0.0 {
                return Err(ApiError::invalid("Product weight must be non-negative"));
            }
            Ok(Score::Product(w, Box::new(parse_score(e, schema)?)))
        }
        [Value::String(op), e, Value::Object(p)] if op == "Saturate" || op == "Decay" => {
            let inner = parse_score(e, schema)?;
            let m = p
                .get("midpoint")
                .ok_or_else(malformed)
                .and_then(parse_scalar)?;
            let exp = p.get("exponent").and_then(Value::as_f64).unwrap_or(1.0);
            Ok(if op == "Saturate" {
                Score::Saturate(Box::new(inner), m, exp)
            } else {
                Score::Decay(Box::new(inner), m, exp)
            })
        }
        [Value::String(op), e, origin] if op == "Dist" => Ok(Score::Dist(
            Box::new(parse_score(e, schema)?),
            parse_point(origin)?,
        )),
        [Value::String(op), Value::String(attr)] if op == "Attribute" => {
            Ok(Score::Attribute(attr.clone()))
        }
        _ if filter::looks_like_filter(v) => Ok(Score::Filter(filter::parse(v, schema, false)?)),
        _ => Err(malformed()),
    }
}

/// A midpoint: a number, or a duration like `"6h"` (s, m, h, d, w) in milliseconds.
fn parse_scalar(v: &Value) -> ApiResult<f64> {
    if let Some(n) = v.as_f64() {
        return Ok(n);
    }
    let s = v.as_str().ok_or_else(malformed)?;
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num.parse().map_err(|_| malformed())?;
    let ms = match unit {
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        "d" => 86_400e3,
        "w" => 604_800e3,
        "" | "ms" => 1.0,
        _ => return Err(malformed()),
    };
    Ok(n * ms)
}

/// An origin point: a number or an ISO datetime (epoch ms).
fn parse_point(v: &Value) -> ApiResult<f64> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(malformed),
        Value::String(s) => filter::parse_datetime(s).map(|ms| ms as f64),
        _ => Err(malformed()),
    }
}

impl Score {
    /// Computes corpus statistics for BM25 nodes over the documents the query can see.
    pub fn prepare(&mut self, docs: &BTreeMap<Id, Arc<Doc>>) {
        match self {
            Score::Bm25 {
                attr, terms, stats, ..
            } => {
                let words: Vec<String> = terms.iter().map(|(t, _)| t.clone()).collect();
                let lists = docs
                    .values()
                    .filter_map(|d| d.tokens.get(attr.as_str()).map(Vec::as_slice));
                *stats = Some(Bm25Stats::build(&words, lists));
            }
            Score::Sum(parts) | Score::Max(parts) => parts.iter_mut().for_each(|p| p.prepare(docs)),
            Score::Product(_, e)
            | Score::Saturate(e, ..)
            | Score::Decay(e, ..)
            | Score::Dist(e, _) => e.prepare(docs),
            Score::Attribute(_) | Score::Filter(_) => {}
        }
    }

    /// The score of one document.
    pub fn eval(&self, id: &Id, doc: &Doc) -> f64 {
        match self {
            Score::Bm25 {
                attr,
                terms,
                prefix,
                cfg,
                stats,
            } => match (doc.tokens.get(attr.as_str()), stats) {
                (Some(toks), Some(stats)) => stats.score(cfg, terms, toks, *prefix),
                _ => 0.0,
            },
            Score::Sum(parts) => parts.iter().map(|p| p.eval(id, doc)).sum(),
            Score::Max(parts) => parts.iter().map(|p| p.eval(id, doc)).fold(0.0, f64::max),
            Score::Product(w, e) => w * e.eval(id, doc),
            Score::Saturate(e, m, exp) => {
                let x = e.eval(id, doc).max(0.0).powf(*exp);
                let d = x + m.powf(*exp);
                if d == 0.0 { 0.0 } else { x / d }
            }
            Score::Decay(e, m, exp) => {
                let x = e.eval(id, doc).max(0.0).powf(*exp);
                let me = m.powf(*exp);
                if x + me == 0.0 { 1.0 } else { me / (x + me) }
            }
            Score::Dist(e, origin) => (e.eval(id, doc) - origin).abs(),
            Score::Attribute(attr) => {
                let mut scratch = None;
                doc.get(id, attr, &mut scratch)
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
            }
            Score::Filter(f) => f64::from(u8::from(f.matches(id, doc, EvalCtx::default()))),
        }
    }
}

/// Whether an attribute is a datetime (rendered as ISO strings).
pub fn is_datetime(schema: &Schema, attr: &str) -> bool {
    schema.get(attr).and_then(|s| s.ty.element()) == Some(Scalar::Datetime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_parse() {
        let s = Schema::new();
        assert!(
            matches!(parse(&json!(["n", "asc"]), &s), Ok(Rank::Order(o)) if o == vec![("n".to_string(), true)])
        );
        assert!(
            matches!(parse(&json!([["a", "asc"], ["b", "desc"]]), &s), Ok(Rank::Order(o)) if o.len() == 2)
        );
        assert!(matches!(
            parse(&json!(["Sum", [["Attribute", "n"], ["n", "Eq", 1]]]), &s),
            Ok(Rank::Score(Score::Sum(_)))
        ));
        assert_eq!(
            parse(&json!([]), &s).err().unwrap().to_string(),
            "💔 rank_by cannot be empty"
        );
        assert_eq!(parse(&json!("x"), &s).err().unwrap().status(), 422);
        assert!(
            parse(&json!(["Product", -1, ["Attribute", "n"]]), &s)
                .err()
                .unwrap()
                .to_string()
                .contains("non-negative")
        );
    }

    #[test]
    fn combinators_score() {
        let s = Schema::new();
        let mut d = Doc::default();
        d.attrs.insert("n".into(), json!(4));
        let id = Id::Uint(1);
        let eval = |v: Value| match parse(&v, &s).unwrap() {
            Rank::Score(sc) => sc.eval(&id, &d),
            _ => panic!(),
        };
        assert_eq!(eval(json!(["Product", 2, ["Attribute", "n"]])), 8.0);
        assert_eq!(
            eval(json!(["Saturate", ["Attribute", "n"], {"midpoint": 4}])),
            0.5
        );
        assert_eq!(
            eval(json!(["Decay", ["Dist", ["Attribute", "n"], 2], {"midpoint": 2}])),
            0.5
        );
        assert_eq!(
            eval(json!(["Max", [["Attribute", "n"], ["n", "Eq", 4]]])),
            4.0
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_scalar(&json!("6h")).unwrap(), 6.0 * 3600e3);
        assert_eq!(parse_scalar(&json!(2.5)).unwrap(), 2.5);
    }
}
