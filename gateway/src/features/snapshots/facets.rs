//! Facet counting for snapshots: one pass over rows, a histogram per field, and the 10,000
//! distinct-value cap that moves a field from `fields[]` to `fields_skipped[]`.
//!
//! Values: strings as they are, integers and booleans as their JSON text (the wire `v` is always
//! a string); an array counts each distinct scalar element once per document; `null`, missing
//! attributes, floats and objects are not facet values. Past the cap a field stops keeping
//! counts and only tracks distinct values by 64-bit hash, so `distinct_observed` stays exact
//! (up to hash collisions) at 8 bytes per value.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

use serde_json::Value;

use crate::sources::snapshot_store::{FacetValue, FieldHistogram, SkippedField};

/// Counts for one field.
#[derive(Debug, Default)]
enum FieldCounts {
    #[default]
    Empty,
    Counting(HashMap<String, u64>),
    /// Over the cap: distinct hashes only.
    Skipped(HashSet<u64>),
}

/// Histograms for a set of fields, built row by row.
#[derive(Debug)]
pub struct Facets {
    cap: usize,
    fields: Vec<(String, FieldCounts)>,
    hasher: std::collections::hash_map::RandomState,
    rows: u64,
}

impl Facets {
    pub fn new(fields: &[String], cap: usize) -> Self {
        let mut names: Vec<String> = fields.to_vec();
        names.sort();
        names.dedup();
        Facets {
            cap,
            fields: names
                .into_iter()
                .map(|n| (n, FieldCounts::Counting(HashMap::new())))
                .collect(),
            hasher: Default::default(),
            rows: 0,
        }
    }

    /// Rows seen so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Adds one row (a JSON object from upstream).
    pub fn add_row(&mut self, row: &Value) {
        self.rows += 1;
        let cap = self.cap;
        for (name, counts) in &mut self.fields {
            let Some(v) = row.get(name.as_str()) else {
                continue;
            };
            let mut vals: Vec<String> = Vec::new();
            match v {
                Value::Array(items) => {
                    for it in items {
                        if let Some(s) = facet_text(it) {
                            vals.push(s);
                        }
                    }
                    vals.sort();
                    vals.dedup();
                }
                other => vals.extend(facet_text(other)),
            }
            for s in vals {
                match counts {
                    FieldCounts::Counting(map) => {
                        *map.entry(s).or_insert(0) += 1;
                        if map.len() > cap {
                            let hashes = map.keys().map(|k| hash(&self.hasher, k)).collect();
                            *counts = FieldCounts::Skipped(hashes);
                        }
                    }
                    FieldCounts::Skipped(set) => {
                        set.insert(hash(&self.hasher, &s));
                    }
                    FieldCounts::Empty => {}
                }
            }
        }
    }

    /// The finished histograms and the skipped fields.
    pub fn finish(self) -> (u64, Vec<FieldHistogram>, Vec<SkippedField>) {
        let mut fields = Vec::new();
        let mut skipped = Vec::new();
        for (name, counts) in self.fields {
            match counts {
                FieldCounts::Counting(map) => {
                    let mut values: Vec<FacetValue> =
                        map.into_iter().map(|(v, n)| FacetValue { v, n }).collect();
                    values.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.v.cmp(&b.v)));
                    fields.push(FieldHistogram { name, values });
                }
                FieldCounts::Skipped(set) => skipped.push(SkippedField {
                    name,
                    reason: "exceeded_cap".into(),
                    distinct_observed: set.len() as u64,
                    cap: self.cap as u64,
                }),
                FieldCounts::Empty => {}
            }
        }
        (self.rows, fields, skipped)
    }
}

fn hash(state: &std::collections::hash_map::RandomState, s: &str) -> u64 {
    state.hash_one(s)
}

/// The facet text of a scalar, if it is one.
pub fn facet_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_scalars_arrays_and_skips_over_cap() {
        let mut f = Facets::new(&["color".into(), "tags".into(), "id".into()], 3);
        let rows = [
            json!({"id": 1, "color": "red", "tags": ["a", "b", "a"]}),
            json!({"id": 2, "color": "blue", "tags": ["a"]}),
            json!({"id": 3, "color": "red", "tags": []}),
            json!({"id": 4, "color": null, "tags": ["c"]}),
            json!({"id": 5, "tags": ["d", "e"]}),
        ];
        for r in &rows {
            f.add_row(r);
        }
        let (n, fields, skipped) = f.finish();
        assert_eq!(n, 5);
        let color = fields.iter().find(|h| h.name == "color").unwrap();
        assert_eq!(
            color.values,
            vec![
                FacetValue {
                    v: "red".into(),
                    n: 2
                },
                FacetValue {
                    v: "blue".into(),
                    n: 1
                }
            ]
        );
        // ids: 5 distinct > cap 3; tags: a b c d e = 5 distinct > 3.
        let names: Vec<&str> = skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["id", "tags"]);
        assert_eq!(skipped[0].distinct_observed, 5);
        assert_eq!(skipped[1].distinct_observed, 5);
        assert_eq!(skipped[1].cap, 3);
    }
}
