//! The values-mode scan histogram: the distinct values of one attribute over the selected
//! documents, each with its document count (`{v, n}`, the snapshot facet vocabulary).
//!
//! Accepted attribute values, per document:
//! - a string, or an integer (emitted stringified: `v` is always a JSON string on the wire);
//! - an array of strings, each distinct element counted **once per document**;
//! - null / missing / an empty array: the document contributes nothing.
//!
//! Anything else is a [`ValuesError`]: an array holding numbers is a vector
//! ([`ValuesError::Vector`], a 422 at the API), and floats, booleans and objects are
//! [`ValuesError::Unsupported`].
//!
//! [`ValuesHistogram::finish`] applies the cap **after** the full pass, so every emitted count is
//! exact: values are ordered by `n` descending then `v` ascending (bytewise), the top `cap` are
//! kept and `truncated` says whether any were dropped.

use std::cmp::Ordering;
use std::collections::HashMap;

use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait, Value};

/// The documented cap on distinct values listed by one values scan.
pub const DEFAULT_VALUES_CAP: usize = 1_000_000;

/// A value a values scan cannot count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValuesError {
    /// An array of numbers (a vector attribute).
    #[error("values scans do not support vector attributes")]
    Vector,
    /// A float, boolean, object, or an array of those.
    #[error(
        "values scans support string and integer attributes and arrays of strings, not {0} values"
    )]
    Unsupported(&'static str),
}

/// One listed value and its document count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetValue {
    /// The value (integers stringified).
    pub v: String,
    /// Documents carrying it.
    pub n: u64,
}

/// The finished listing of a values scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValuesListing {
    /// `n` descending, then `v` ascending; at most the cap.
    pub values: Vec<FacetValue>,
    /// Distinct values seen over the whole pass (before the cap).
    pub distinct: usize,
    /// Whether the cap dropped values.
    pub truncated: bool,
}

/// Accumulates document counts per distinct value.
#[derive(Debug, Default, Clone)]
pub struct ValuesHistogram {
    counts: HashMap<Box<str>, u64>,
    documents: u64,
}

impl ValuesHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one document's value of the field (`None` for missing).
    pub fn add(&mut self, value: Option<&Value>) -> Result<(), ValuesError> {
        let Some(value) = value else {
            return Ok(());
        };
        match value.get_type() {
            JsonType::Null => {}
            JsonType::String => self.bump(value.as_str().unwrap_or_default()),
            JsonType::Number => match integer_text(value) {
                Some(text) => self.bump(&text),
                None => return Err(ValuesError::Unsupported("float")),
            },
            JsonType::Boolean => return Err(ValuesError::Unsupported("boolean")),
            JsonType::Object => return Err(ValuesError::Unsupported("object")),
            JsonType::Array => {
                let Some(items) = value.as_array() else {
                    return Ok(());
                };
                let mut strings = Vec::with_capacity(items.len());
                for item in items.iter() {
                    match item.get_type() {
                        JsonType::String => strings.push(item.as_str().unwrap_or_default()),
                        JsonType::Null => {}
                        JsonType::Number => return Err(ValuesError::Vector),
                        JsonType::Boolean => return Err(ValuesError::Unsupported("boolean array")),
                        JsonType::Object | JsonType::Array => {
                            return Err(ValuesError::Unsupported("nested array"));
                        }
                    }
                }
                strings.sort_unstable();
                strings.dedup();
                let counted = !strings.is_empty();
                for s in strings {
                    self.bump(s);
                }
                if counted {
                    self.documents += 1;
                }
                return Ok(());
            }
        }
        if !value.is_null() {
            self.documents += 1;
        }
        Ok(())
    }

    /// Counts `row[field]` (a row is a JSON object of `id` and attributes).
    pub fn add_row(&mut self, row: &Value, field: &str) -> Result<(), ValuesError> {
        self.add(row.get(field))
    }

    /// Folds another histogram (e.g. one shard's) into this one.
    pub fn merge(&mut self, other: ValuesHistogram) {
        self.documents += other.documents;
        for (v, n) in other.counts {
            *self.counts.entry(v).or_insert(0) += n;
        }
    }

    /// Distinct values so far.
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    /// Documents that contributed at least one value.
    pub fn documents(&self) -> u64 {
        self.documents
    }

    fn bump(&mut self, v: &str) {
        match self.counts.get_mut(v) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(v.into(), 1);
            }
        }
    }

    /// The listing: ordered `n` desc then `v` asc, cut to the top `cap` (exact counts).
    pub fn finish(self, cap: usize) -> ValuesListing {
        let distinct = self.counts.len();
        let mut all: Vec<(Box<str>, u64)> = self.counts.into_iter().collect();
        let truncated = all.len() > cap;
        if truncated {
            if cap == 0 {
                all.clear();
            } else {
                all.select_nth_unstable_by(cap - 1, listing_order);
                all.truncate(cap);
            }
        }
        all.sort_unstable_by(listing_order);
        ValuesListing {
            values: all
                .into_iter()
                .map(|(v, n)| FacetValue { v: v.into(), n })
                .collect(),
            distinct,
            truncated,
        }
    }
}

/// `n` descending, then `v` ascending.
fn listing_order(a: &(Box<str>, u64), b: &(Box<str>, u64)) -> Ordering {
    b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
}

fn integer_text(v: &Value) -> Option<String> {
    v.as_i64()
        .map(|n| n.to_string())
        .or_else(|| v.as_u64().map(|n| n.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn j(text: &str) -> Value {
        sonic_rs::from_str(text).expect("json")
    }

    fn listing(h: ValuesHistogram, cap: usize) -> Vec<(String, u64)> {
        h.finish(cap)
            .values
            .into_iter()
            .map(|f| (f.v, f.n))
            .collect()
    }

    #[test]
    fn scalars_integers_and_string_arrays() {
        let mut h = ValuesHistogram::new();
        for doc in [
            r#"{"id":1,"c":"books"}"#,
            r#"{"id":2,"c":"toys"}"#,
            r#"{"id":3,"c":"books"}"#,
            r#"{"id":4,"c":null}"#,
            r#"{"id":5}"#,
            r#"{"id":6,"c":7}"#,
            r#"{"id":7,"c":["toys","toys","games",null]}"#,
            r#"{"id":8,"c":[]}"#,
            r#"{"id":9,"c":18446744073709551615}"#,
            r#"{"id":10,"c":-3}"#,
        ] {
            h.add_row(&j(doc), "c").expect("countable");
        }
        assert_eq!(h.documents(), 7);
        assert_eq!(
            listing(h, 100),
            vec![
                ("books".into(), 2),
                ("toys".into(), 2),
                ("-3".into(), 1),
                ("18446744073709551615".into(), 1),
                ("7".into(), 1),
                ("games".into(), 1),
            ]
        );
    }

    #[test]
    fn vectors_and_other_types_are_errors() {
        let mut h = ValuesHistogram::new();
        assert_eq!(h.add(Some(&j("[0.1, 0.2]"))), Err(ValuesError::Vector));
        assert_eq!(h.add(Some(&j("[1, 2]"))), Err(ValuesError::Vector));
        assert_eq!(
            h.add(Some(&j("1.5"))),
            Err(ValuesError::Unsupported("float"))
        );
        assert!(matches!(
            h.add(Some(&j("true"))),
            Err(ValuesError::Unsupported(_))
        ));
        assert!(matches!(
            h.add(Some(&j(r#"{"a":1}"#))),
            Err(ValuesError::Unsupported(_))
        ));
        assert!(matches!(
            h.add(Some(&j(r#"[["a"]]"#))),
            Err(ValuesError::Unsupported(_))
        ));
        assert_eq!(h.distinct(), 0, "a rejected document counts nothing");
    }

    #[test]
    fn cap_keeps_the_top_values_with_exact_counts() {
        let mut h = ValuesHistogram::new();
        for (v, n) in [("a", 1), ("b", 5), ("c", 3), ("d", 3), ("e", 1)] {
            for _ in 0..n {
                h.add(Some(&Value::from(v))).expect("string");
            }
        }
        let out = h.clone().finish(3);
        assert!(out.truncated);
        assert_eq!(out.distinct, 5);
        assert_eq!(
            listing(h.clone(), 3),
            vec![("b".into(), 5), ("c".into(), 3), ("d".into(), 3)]
        );
        assert_eq!(listing(h.clone(), 4).last(), Some(&("a".into(), 1)));
        let none = h.clone().finish(0);
        assert!(none.truncated && none.values.is_empty());
        assert!(!h.finish(5).truncated);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = ValuesHistogram::new();
        let mut b = ValuesHistogram::new();
        a.add(Some(&Value::from("x"))).expect("ok");
        b.add(Some(&Value::from("x"))).expect("ok");
        b.add(Some(&Value::from("y"))).expect("ok");
        a.merge(b);
        assert_eq!(a.documents(), 3);
        assert_eq!(listing(a, 10), vec![("x".into(), 2), ("y".into(), 1)]);
    }

    fn doc_value() -> impl Strategy<Value = Option<serde_json::Value>> {
        let word = prop_oneof![
            Just("a"),
            Just("b"),
            Just("c"),
            Just("d"),
            Just("é"),
            Just("")
        ];
        prop_oneof![
            Just(None),
            Just(Some(serde_json::Value::Null)),
            word.clone().prop_map(|w| Some(serde_json::json!(w))),
            (-5i64..5).prop_map(|n| Some(serde_json::json!(n))),
            proptest::collection::vec(word, 0..5).prop_map(|ws| Some(serde_json::json!(ws))),
        ]
    }

    proptest! {
        /// Against a naive model: exact counts, once per document, deterministic order, and the
        /// capped listing is exactly the prefix of the uncapped one.
        #[test]
        fn matches_a_naive_model(docs in proptest::collection::vec(doc_value(), 0..60), cap in 0usize..8) {
            let mut h = ValuesHistogram::new();
            let mut model: BTreeMap<String, u64> = BTreeMap::new();
            for d in &docs {
                let sonic = d.as_ref().map(|v| j(&v.to_string()));
                h.add(sonic.as_ref()).expect("countable");
                let distinct: BTreeSet<String> = match d {
                    Some(serde_json::Value::String(s)) => [s.clone()].into(),
                    Some(serde_json::Value::Number(n)) => [n.to_string()].into(),
                    Some(serde_json::Value::Array(items)) => {
                        items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect()
                    }
                    _ => BTreeSet::new(),
                };
                for v in distinct {
                    *model.entry(v).or_insert(0) += 1;
                }
            }
            let mut want: Vec<(String, u64)> = model.into_iter().collect();
            want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let full = h.clone().finish(usize::MAX);
            prop_assert!(!full.truncated);
            prop_assert_eq!(full.distinct, want.len());
            prop_assert_eq!(listing(h.clone(), usize::MAX), want.clone());
            let capped = h.clone().finish(cap);
            prop_assert_eq!(capped.truncated, want.len() > cap);
            let prefix: Vec<(String, u64)> = want.into_iter().take(cap).collect();
            prop_assert_eq!(listing(h, cap), prefix);
        }
    }
}
