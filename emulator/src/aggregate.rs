//! `aggregate_by` / `group_by` (contract §4.5) with the live service's restrictions: one function,
//! `Count` only on `id`, `Sum` on a numeric attribute, groups sorted by key, `ForEachUnique` over
//! array attributes.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::filter::{EvalCtx, Filter};
use crate::model::{Doc, Id, sort_cmp};

enum Func {
    Count,
    Sum(String),
}

enum GroupKey {
    Attr(String),
    /// `{out: ["ForEachUnique", attr]}`: one group membership per unique element.
    ForEach {
        out: String,
        attr: String,
    },
}

impl GroupKey {
    fn name(&self) -> &str {
        match self {
            GroupKey::Attr(a) => a,
            GroupKey::ForEach { out, .. } => out,
        }
    }
}

/// Parsed aggregation request.
pub struct Aggregation {
    label: String,
    func: Func,
    group_by: Option<Vec<GroupKey>>,
    limit: usize,
}

/// Parses `aggregate_by` and `group_by`; `top_k` is the caller's `top_k`/`limit.total`.
pub fn parse(
    agg: &Map<String, Value>,
    group_by: Option<&Vec<Value>>,
    top_k: Option<u64>,
    has_limit_field: bool,
) -> ApiResult<Aggregation> {
    if agg.len() != 1 {
        return Err(ApiError::invalid(
            "aggregate_by currently requires exactly one function",
        ));
    }
    let Some((label, spec)) = agg.iter().next() else {
        return Err(ApiError::invalid(
            "aggregate_by currently requires exactly one function",
        ));
    };
    let func = match spec.as_array().map(Vec::as_slice) {
        Some([Value::String(f)]) if f == "Count" => Func::Count,
        Some([Value::String(f), Value::String(a)]) if f == "Count" => {
            if a != "id" {
                return Err(ApiError::invalid(
                    "aggregate_by with attributes other than \"id\" not yet supported",
                ));
            }
            Func::Count
        }
        Some([Value::String(f), Value::String(a)]) if f == "Sum" => Func::Sum(a.clone()),
        _ => {
            return Err(ApiError::deserialize(format!(
                "aggregate_by.{label}: data did not match any variant of untagged enum AggregateBy"
            )));
        }
    };
    let group_by = match group_by {
        None => {
            if top_k.is_some() && !has_limit_field {
                return Err(ApiError::invalid(
                    "top_k is not supported in aggregation queries without group_by",
                ));
            }
            if has_limit_field {
                return Err(ApiError::deserialize("unknown field `limit`"));
            }
            None
        }
        Some(keys) => Some(
            keys.iter()
                .map(|k| match k {
                    Value::String(a) => Ok(GroupKey::Attr(a.clone())),
                    Value::Object(o) if o.len() == 1 => {
                        let (out, spec) = o.iter().next().ok_or_else(bad_group)?;
                        match spec.as_array().map(Vec::as_slice) {
                            Some([Value::String(f), Value::String(attr)])
                                if f == "ForEachUnique" =>
                            {
                                Ok(GroupKey::ForEach {
                                    out: out.clone(),
                                    attr: attr.clone(),
                                })
                            }
                            _ => Err(bad_group()),
                        }
                    }
                    _ => Err(bad_group()),
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
    };
    Ok(Aggregation {
        label: label.clone(),
        func,
        group_by,
        limit: top_k.unwrap_or(10_000) as usize,
    })
}

fn bad_group() -> ApiError {
    ApiError::deserialize("group_by: data did not match any variant of untagged enum GroupBy")
}

#[derive(Default)]
struct Acc {
    count: u64,
    int_sum: i128,
    float_sum: f64,
    any_float: bool,
}

impl Acc {
    fn add(&mut self, func: &Func, id: &Id, doc: &Doc) {
        self.count += 1;
        if let Func::Sum(attr) = func {
            let mut scratch = None;
            match doc.get(id, attr, &mut scratch) {
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
                    self.int_sum += n
                        .as_i64()
                        .map_or_else(|| i128::from(n.as_u64().unwrap_or(0)), i128::from);
                }
                Some(Value::Number(n)) => {
                    self.any_float = true;
                    self.float_sum += n.as_f64().unwrap_or(0.0);
                }
                _ => {}
            }
        }
    }

    fn value(&self, func: &Func) -> Value {
        match func {
            Func::Count => json!(self.count),
            Func::Sum(_) if self.any_float => json!(self.float_sum + self.int_sum as f64),
            Func::Sum(_) => i64::try_from(self.int_sum)
                .map_or_else(|_| json!(self.int_sum as f64), |v| json!(v)),
        }
    }
}

impl Aggregation {
    /// Runs the aggregation; returns the response fields (`aggregations` or `aggregation_groups`).
    pub fn run(
        &self,
        docs: &BTreeMap<Id, Arc<Doc>>,
        filter: Option<&Filter>,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        let matching = docs
            .iter()
            .filter(|(id, d)| filter.is_none_or(|f| f.matches(id, d, EvalCtx::default())));
        let Some(keys) = &self.group_by else {
            let mut acc = Acc::default();
            for (id, d) in matching {
                acc.add(&self.func, id, d);
            }
            let mut m = Map::new();
            m.insert(self.label.clone(), acc.value(&self.func));
            out.insert("aggregations".into(), Value::Object(m));
            return out;
        };
        let mut groups: Vec<(Vec<Value>, Acc)> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        for (id, d) in matching {
            for combo in group_combos(keys, id, d) {
                let key = Value::Array(combo.clone()).to_string();
                let slot = *index.entry(key).or_insert_with(|| {
                    groups.push((combo, Acc::default()));
                    groups.len() - 1
                });
                groups[slot].1.add(&self.func, id, d);
            }
        }
        groups.sort_by(|(a, _), (b, _)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| sort_cmp(non_null(x), non_null(y)))
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        let rows = groups
            .into_iter()
            .take(self.limit)
            .map(|(vals, acc)| {
                let mut m = Map::new();
                for (k, v) in keys.iter().zip(vals) {
                    m.insert(k.name().to_string(), v);
                }
                m.insert(self.label.clone(), acc.value(&self.func));
                Value::Object(m)
            })
            .collect();
        out.insert("aggregation_groups".into(), Value::Array(rows));
        out
    }
}

fn non_null(v: &Value) -> Option<&Value> {
    (!v.is_null()).then_some(v)
}

/// Every combination of group-key values a document belongs to.
fn group_combos(keys: &[GroupKey], id: &Id, doc: &Doc) -> Vec<Vec<Value>> {
    let mut combos: Vec<Vec<Value>> = vec![Vec::new()];
    for k in keys {
        let mut scratch = None;
        let choices: Vec<Value> = match k {
            GroupKey::Attr(a) => vec![doc.get(id, a, &mut scratch).cloned().unwrap_or(Value::Null)],
            GroupKey::ForEach { attr, .. } => match doc.get(id, attr, &mut scratch) {
                Some(Value::Array(items)) => {
                    let mut uniq: Vec<Value> = Vec::new();
                    for i in items {
                        if !uniq.contains(i) {
                            uniq.push(i.clone());
                        }
                    }
                    uniq
                }
                Some(v) => vec![v.clone()],
                None => Vec::new(),
            },
        };
        combos = combos
            .into_iter()
            .flat_map(|c| {
                choices.iter().map(move |v| {
                    let mut n = c.clone();
                    n.push(v.clone());
                    n
                })
            })
            .collect();
    }
    combos
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs() -> BTreeMap<Id, Arc<Doc>> {
        let mut m = BTreeMap::new();
        for (i, (color, tags, n)) in [
            ("blue", json!(["x", "y"]), 1),
            ("red", json!(["x"]), 2),
            ("blue", json!(["y", "y"]), 3),
        ]
        .into_iter()
        .enumerate()
        {
            let mut d = Doc::default();
            d.attrs.insert("color".into(), json!(color));
            d.attrs.insert("tags".into(), tags);
            d.attrs.insert("n".into(), json!(n));
            m.insert(Id::Uint(i as u64), Arc::new(d));
        }
        m
    }

    #[test]
    fn count_and_groups() {
        let agg = json!({"c": ["Count"]});
        let a = parse(agg.as_object().unwrap(), None, None, false).unwrap();
        assert_eq!(
            Value::Object(a.run(&docs(), None)),
            json!({"aggregations": {"c": 3}})
        );
        let g = vec![json!("color"), json!({"tag": ["ForEachUnique", "tags"]})];
        let a = parse(agg.as_object().unwrap(), Some(&g), None, false).unwrap();
        assert_eq!(
            Value::Object(a.run(&docs(), None))["aggregation_groups"],
            json!([{"color": "blue", "tag": "x", "c": 1}, {"color": "blue", "tag": "y", "c": 2}, {"color": "red", "tag": "x", "c": 1}])
        );
    }

    #[test]
    fn live_restrictions() {
        let two = json!({"a": ["Count"], "b": ["Count"]});
        assert!(parse(two.as_object().unwrap(), None, None, false).is_err());
        let other = json!({"a": ["Count", "n"]});
        assert!(
            parse(other.as_object().unwrap(), None, None, false)
                .err()
                .unwrap()
                .to_string()
                .contains("other than \"id\"")
        );
        let c = json!({"a": ["Count"]});
        assert_eq!(
            parse(c.as_object().unwrap(), None, Some(5), false)
                .err()
                .unwrap()
                .to_string(),
            "💔 top_k is not supported in aggregation queries without group_by"
        );
        let sum = json!({"s": ["Sum", "n"]});
        let a = parse(sum.as_object().unwrap(), None, None, false).unwrap();
        assert_eq!(
            Value::Object(a.run(&docs(), None))["aggregations"]["s"],
            json!(6)
        );
    }
}
