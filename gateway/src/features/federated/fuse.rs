//! Reciprocal rank fusion over legs' rows, and the per-namespace accounting of a fused answer.
//!
//! A document is `(namespace, id)`: the same id in two namespaces is two documents, the same
//! document in two legs (an agent's several queries over one namespace) is one. A row at 1-based
//! rank `r` in a leg adds `1 / (rank_constant + r)` to its document's score; documents are
//! ordered by score, highest first, ties in first-seen order (leg order, then rank), and the first
//! `top_k` are kept. Each kept row is the first copy seen, with `$namespace` and `$rrf_score`
//! added.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::core::federation::{Fused, Fusion, NamespaceError, NamespaceResult};

/// What one leg produced.
pub enum LegOutcome {
    Rows {
        rows: Vec<Value>,
        watermark: Option<u64>,
        hybrid: Option<Value>,
        routing: Option<Value>,
    },
    Failed {
        status: u16,
        error: String,
    },
}

/// Fuses legs (in order, each with its namespace) into one answer.
pub fn fuse(legs: Vec<(String, LegOutcome)>, fusion: &Fusion) -> Fused {
    struct Doc {
        row: Value,
        namespace: String,
        score: f64,
    }
    let mut docs: Vec<Doc> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut namespaces: Vec<NamespaceResult> = Vec::new();
    let mut errors: Vec<NamespaceError> = Vec::new();
    let (mut hybrid, mut routing) = (None, None);
    let leg_count = legs.len();
    for (ns, outcome) in legs {
        match outcome {
            LegOutcome::Failed { status, error } => {
                if !errors.iter().any(|e| e.namespace == ns) {
                    errors.push(NamespaceError {
                        namespace: ns,
                        status,
                        error,
                    });
                }
            }
            LegOutcome::Rows {
                rows,
                watermark,
                hybrid: h,
                routing: r,
            } => {
                hybrid = hybrid.or(h);
                routing = routing.or(r);
                let slot = match namespaces.iter().position(|n| n.namespace == ns) {
                    Some(i) => i,
                    None => {
                        namespaces.push(NamespaceResult {
                            namespace: ns.clone(),
                            matched: 0,
                            stable_as_of: watermark,
                        });
                        namespaces.len() - 1
                    }
                };
                let entry = &mut namespaces[slot];
                entry.stable_as_of = match (entry.stable_as_of, watermark) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                for (rank, row) in rows.into_iter().enumerate() {
                    let id = row.get("id").map(Value::to_string).unwrap_or_default();
                    let add = 1.0 / (fusion.rank_constant as f64 + rank as f64 + 1.0);
                    match index.get(&(ns.clone(), id.clone())) {
                        Some(&i) => docs[i].score += add,
                        None => {
                            index.insert((ns.clone(), id), docs.len());
                            namespaces[slot].matched += 1;
                            docs.push(Doc {
                                row,
                                namespace: ns.clone(),
                                score: add,
                            });
                        }
                    }
                }
            }
        }
    }
    let candidates = docs.len();
    // A stable sort: equal scores keep first-seen order.
    docs.sort_by(|a, b| b.score.total_cmp(&a.score));
    let rows = docs
        .into_iter()
        .take(usize::try_from(fusion.top_k).unwrap_or(usize::MAX))
        .map(|d| {
            let mut row = match d.row {
                Value::Object(o) => o,
                other => {
                    let mut o = Map::new();
                    o.insert("value".into(), other);
                    o
                }
            };
            row.insert("$namespace".into(), Value::String(d.namespace));
            row.insert("$rrf_score".into(), json!(d.score));
            Value::Object(row)
        })
        .collect();
    let mut merge = Map::new();
    merge.insert("strategy".into(), json!("rrf"));
    merge.insert("rank_constant".into(), json!(fusion.rank_constant));
    merge.insert(
        "per_namespace_limit".into(),
        json!(fusion.per_namespace_limit),
    );
    merge.insert("top_k".into(), json!(fusion.top_k));
    merge.insert("legs".into(), json!(leg_count));
    merge.insert("candidates".into(), json!(candidates));
    merge.insert("strict".into(), json!(fusion.strict));
    Fused {
        rows,
        merge,
        namespaces,
        errors,
        hybrid,
        routing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(ids: &[&str]) -> LegOutcome {
        LegOutcome::Rows {
            rows: ids.iter().map(|id| json!({"id": id})).collect(),
            watermark: Some(5),
            hybrid: None,
            routing: None,
        }
    }

    fn spec(top_k: u64) -> Fusion {
        Fusion {
            rank_constant: 60,
            per_namespace_limit: 10,
            top_k,
            strict: false,
        }
    }

    fn order(f: &Fused) -> Vec<(String, String)> {
        f.rows
            .iter()
            .map(|r| {
                (
                    r["$namespace"].as_str().unwrap().to_string(),
                    r["id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn one_leg_per_namespace_interleaves_by_rank_in_leg_order() {
        let f = fuse(
            vec![
                ("a".into(), rows(&["a1", "a2"])),
                ("b".into(), rows(&["b1"])),
            ],
            &spec(10),
        );
        let want =
            [("a", "a1"), ("b", "b1"), ("a", "a2")].map(|(n, i)| (n.to_string(), i.to_string()));
        assert_eq!(order(&f), want);
        assert_eq!(f.rows[0]["$rrf_score"], json!(1.0 / 61.0));
        assert_eq!(f.rows[2]["$rrf_score"], json!(1.0 / 62.0));
        assert_eq!(f.namespaces[0].matched, 2);
        assert_eq!(f.namespaces[1].matched, 1);
    }

    #[test]
    fn a_document_in_two_legs_sums_and_the_same_id_elsewhere_does_not() {
        let f = fuse(
            vec![
                ("a".into(), rows(&["x", "y"])),
                ("a".into(), rows(&["z", "y"])),
                ("b".into(), rows(&["y"])),
            ],
            &spec(2),
        );
        // a/y: 2/62 beats a/x, a/z and b/y (1/61 each).
        assert_eq!(order(&f)[0], ("a".to_string(), "y".to_string()));
        assert_eq!(order(&f)[1], ("a".to_string(), "x".to_string()));
        assert_eq!(f.rows.len(), 2);
        assert_eq!(f.merge["candidates"], json!(4));
        assert_eq!(f.namespaces[0].matched, 3);
    }

    #[test]
    fn failures_are_one_entry_per_namespace() {
        let fail = || LegOutcome::Failed {
            status: 404,
            error: "namespace not found".into(),
        };
        let f = fuse(
            vec![
                ("a".into(), fail()),
                ("a".into(), fail()),
                ("b".into(), rows(&["b1"])),
            ],
            &spec(10),
        );
        assert_eq!(f.errors.len(), 1);
        assert_eq!(f.namespaces.len(), 1);
        assert_eq!(f.rows.len(), 1);
    }
}
