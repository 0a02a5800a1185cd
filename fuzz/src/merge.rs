//! The gather/merge (`scatter::merge_query_responses`, `merge_multi_query_responses`).
//!
//! The first byte picks the mode. Structured (even): the input drives 1–4 shard responses (rows
//! with u64 or string ids, `$dist` or `$score` or an attribute, sometimes missing; `aggregations`
//! and `billing` counters) and a spec (order, `top_k`, a stripped attribute); the output must
//! equal a reference that sorts every row by the documented total order (key, missing keys last,
//! then id, then shard and position), keeps the first `top_k` (a single response keeps its own
//! order), strips the attribute, and sums the counters. Raw (odd): the rest, split at `0xFF`
//! bytes, is the list of responses: merging never panics, and a success is one JSON object with
//! at most `top_k` rows, both for the single-query merge and the per-leg merge of two legs; and
//! finishing each response (`finish_response`, `ensure_rows`, the gather's last step) never
//! panics, and turns valid JSON into JSON with `rows` (a native multi-query response is relayed
//! as is).

use std::cmp::Ordering;

use scatter::reference::same_order;
use scatter::respond::{Echo, UpstreamShape, ensure_rows, finish_response};
use scatter::{Direction, MergeSpec, RowOrder, merge_multi_query_responses, merge_query_responses};
use serde_json::{Map, Value, json};

use crate::input::Gen;

fn scalar(g: &mut Gen<'_>) -> Value {
    match g.below(9) {
        0 => Value::Null,
        1 => json!(g.below(2) == 0),
        2 | 3 => json!(g.pick(&[0i64, 1, 2, -3, 5, i64::MAX])),
        4 | 5 => json!(g.pick(&[0.5f64, 1.0, 2.25, -1.5, 1e300])),
        6 => json!(u64::MAX),
        _ => json!(g.pick(&["a", "b", "", "ab", "é"])),
    }
}

fn spec(g: &mut Gen<'_>) -> MergeSpec {
    let dir = |g: &mut Gen<'_>| g.pick(&[Direction::Asc, Direction::Desc]);
    let order = match g.below(5) {
        0 | 1 => RowOrder::DistAsc,
        2 => RowOrder::ScoreDesc,
        3 => RowOrder::Attributes(vec![("a".into(), dir(g))]),
        _ => RowOrder::Attributes(vec![("a".into(), dir(g)), ("id".into(), dir(g))]),
    };
    let mut spec = MergeSpec::rows(order, g.pick(&[0, 1, 2, 3, 5, 8, usize::MAX]));
    if g.below(3) == 0 {
        spec.strip = vec!["x".into()];
    }
    spec
}

fn response(g: &mut Gen<'_>, shard: usize, order: &RowOrder) -> Value {
    let mut top = Map::new();
    if g.below(6) != 0 {
        let n = g.below(6);
        let rows: Vec<Value> = (0..n)
            .map(|pos| {
                let mut r = Map::new();
                r.insert(
                    "id".into(),
                    match g.below(3) {
                        0 => json!(g.pick(&["a", "b", "c"])),
                        _ => json!(g.below(5)),
                    },
                );
                let key = match order {
                    RowOrder::DistAsc => "$dist",
                    RowOrder::ScoreDesc => "$score",
                    RowOrder::Attributes(_) => "a",
                };
                if g.below(6) != 0 {
                    let v = if key == "a" {
                        scalar(g)
                    } else {
                        json!(g.pick(&[0.5f64, 1.0, 0.25, 2.0, -1.0]))
                    };
                    r.insert(key.into(), v);
                }
                r.insert("x".into(), json!(format!("{shard}.{pos}")));
                Value::Object(r)
            })
            .collect();
        top.insert("rows".into(), Value::Array(rows));
    }
    if g.below(2) == 0 {
        top.insert("aggregations".into(), json!({"n": g.below(50)}));
    }
    if g.below(2) == 0 {
        top.insert(
            "billing".into(),
            json!({"billable_logical_bytes_queried": g.below(1000)}),
        );
    }
    Value::Object(top)
}

/// `OrdVal`'s documented order: type (null < bool < number < string), then value.
fn cmp_attr(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let null = Value::Null;
    let (a, b) = (a.unwrap_or(&null), b.unwrap_or(&null));
    let rank = |v: &Value| match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        _ => 4,
    };
    let int = |v: &Value| {
        v.as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
    };
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(_), Value::Number(_)) => match (int(a), int(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a
                .as_f64()
                .unwrap_or_default()
                .total_cmp(&b.as_f64().unwrap_or_default()),
        },
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn cmp_id(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_u64().cmp(&y.as_u64()),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Number(_), _) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

fn cmp_key(a: Option<f64>, b: Option<f64>, desc: bool) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) if desc => y.total_cmp(&x),
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The reference merge of structured responses.
fn reference(responses: &[Value], spec: &MergeSpec) -> Value {
    let mut rows: Vec<(usize, usize, &Value)> = Vec::new();
    for (part, r) in responses.iter().enumerate() {
        for (pos, row) in r["rows"].as_array().into_iter().flatten().enumerate() {
            rows.push((part, pos, row));
        }
    }
    if responses.len() > 1 {
        rows.sort_by(|&(pa, qa, a), &(pb, qb, b)| {
            let primary = match &spec.order {
                RowOrder::DistAsc => cmp_key(a["$dist"].as_f64(), b["$dist"].as_f64(), false),
                RowOrder::ScoreDesc => cmp_key(a["$score"].as_f64(), b["$score"].as_f64(), true),
                RowOrder::Attributes(keys) => keys
                    .iter()
                    .map(|(k, dir)| {
                        let o = cmp_attr(a.get(k), b.get(k));
                        if *dir == Direction::Desc {
                            o.reverse()
                        } else {
                            o
                        }
                    })
                    .find(|o| *o != Ordering::Equal)
                    .unwrap_or(Ordering::Equal),
            };
            primary
                .then_with(|| cmp_id(&a["id"], &b["id"]))
                .then_with(|| (pa, qa).cmp(&(pb, qb)))
        });
    }
    let kept: Vec<Value> = rows
        .iter()
        .take(spec.top_k)
        .map(|(_, _, row)| {
            let mut row = (*row).clone();
            if let Some(o) = row.as_object_mut() {
                for s in &spec.strip {
                    o.shift_remove(s);
                }
            }
            row
        })
        .collect();
    let mut out = Map::new();
    if responses.iter().any(|r| r.get("rows").is_some()) {
        out.insert("rows".into(), Value::Array(kept));
    }
    for (key, label) in [
        ("aggregations", "n"),
        ("billing", "billable_logical_bytes_queried"),
    ] {
        let parts: Vec<u64> = responses
            .iter()
            .filter_map(|r| r.get(key))
            .map(|v| v[label].as_u64().unwrap_or_default())
            .collect();
        if !parts.is_empty() {
            out.insert(key.into(), json!({ label: parts.iter().sum::<u64>() }));
        }
    }
    Value::Object(out)
}

fn out_of_range(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("number out of range")
}

/// Whether serde_json refuses `body` for a number out of range (and only for that).
fn number_out_of_range(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_err_and(|e| out_of_range(&e))
}

fn check_raw(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let responses: Vec<&[u8]> = rest.split(|&b| b == 0xFF).collect();
    let mut spec = spec(&mut Gen::new(&[pick >> 1, pick >> 3, pick >> 5]));
    if pick & 0x80 != 0 {
        spec.aggregate_labels = vec!["n".into()];
        spec.group_keys = vec!["g".into()];
        spec.group_limit = Some(2);
    }
    for out in [
        merge_query_responses(&responses, &spec),
        merge_multi_query_responses(&responses, &[spec.clone(), spec.clone()]),
    ]
    .into_iter()
    .flatten()
    {
        let v: Value = match serde_json::from_slice(&out) {
            Ok(v) => v,
            // A number past f64's range (`1e400`) is JSON by the grammar; serde_json refuses it.
            // The merge copies upstream's numbers as they are, so such an output is as valid as
            // the input it came from: only a number out of range an input also had is excused.
            Err(e) if out_of_range(&e) && responses.iter().any(|r| number_out_of_range(r)) => {
                continue;
            }
            Err(e) => panic!("merge output is not JSON ({e}): {out:?}"),
        };
        let rows = v.get("rows").and_then(Value::as_array).map_or(0, Vec::len);
        assert!(v.is_object() && rows <= spec.top_k, "{v}");
    }
    for body in &responses {
        // A native multi-query response is relayed as upstream sent it.
        let relayed = finish_response(body, UpstreamShape::MultiQuery, &Echo::default());
        assert_eq!(relayed.as_deref(), Ok(*body));
        // Layer does not validate upstream's bodies whole: valid JSON in, valid JSON out.
        let valid = serde_json::from_slice::<Value>(body).is_ok();
        for shape in [UpstreamShape::Single, UpstreamShape::Expansion] {
            let finished = finish_response(body, shape, &Echo::default());
            if let (Ok(out), true) = (finished, valid) {
                let v: Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("finished response is not JSON ({e}): {out:?}"));
                assert!(v.get("rows").is_some(), "{v}");
            }
        }
        let _ = ensure_rows(body);
    }
}

/// The target (module docs).
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        check_raw(rest);
        return;
    }
    let mut g = Gen::new(rest);
    let spec = spec(&mut g);
    let n = 1 + g.below(4);
    let responses: Vec<Value> = (0..n).map(|i| response(&mut g, i, &spec.order)).collect();
    let texts: Vec<String> = responses.iter().map(Value::to_string).collect();
    let bodies: Vec<&[u8]> = texts.iter().map(String::as_bytes).collect();
    let out = merge_query_responses(&bodies, &spec)
        .unwrap_or_else(|e| panic!("merging {texts:?} with {spec:?}: {e}"));
    let got: Value = serde_json::from_slice(&out).expect("merge output is JSON");
    let want = reference(&responses, &spec);
    assert!(
        same_order(&got, &want),
        "merging {texts:?} with {spec:?}\n merge:     {got}\n reference: {want}"
    );
}
