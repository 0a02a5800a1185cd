//! Property: scattering rows over shards by `shard_of`, ranking each shard with a reference
//! ranker and merging with `merge_query_responses` gives exactly the reference top-k over all
//! rows (rows, Count aggregation, grouped Count).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use proptest::prelude::*;
use scatter::{Direction, IdValue, MergeSpec, RowOrder, merge_query_responses, shard_of};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
enum Id {
    N(u64),
    S(String),
}

#[derive(Debug, Clone)]
struct Row {
    id: Id,
    a: Option<i64>,
    b: String,
    v: [f64; 3],
}

#[derive(Debug, Clone)]
enum Rank {
    Euclid([f64; 3]),
    Cosine([f64; 3]),
    Score([f64; 3]),
    Attrs(Vec<(&'static str, Direction)>),
}

fn id_json(id: &Id) -> Value {
    match id {
        Id::N(n) => json!(n),
        Id::S(s) => json!(s),
    }
}

fn cmp_id(a: &Id, b: &Id) -> Ordering {
    match (a, b) {
        (Id::N(x), Id::N(y)) => x.cmp(y),
        (Id::S(x), Id::S(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Id::N(_), Id::S(_)) => Ordering::Less,
        (Id::S(_), Id::N(_)) => Ordering::Greater,
    }
}

fn num(rank: &Rank, r: &Row) -> f64 {
    let dot = |q: &[f64; 3]| q.iter().zip(&r.v).map(|(x, y)| x * y).sum::<f64>();
    match rank {
        Rank::Euclid(q) => q.iter().zip(&r.v).map(|(x, y)| (x - y) * (x - y)).sum(),
        Rank::Cosine(q) => {
            let n = (dot(q) / (dot(&r.v).sqrt() * q.iter().map(|x| x * x).sum::<f64>().sqrt()))
                .clamp(-1.0, 1.0);
            if n.is_finite() { 1.0 - n } else { 1.0 }
        }
        Rank::Score(q) => dot(q),
        Rank::Attrs(_) => 0.0,
    }
}

fn cmp_rows(rank: &Rank, x: &Row, y: &Row) -> Ordering {
    let primary = match rank {
        Rank::Euclid(_) | Rank::Cosine(_) => num(rank, x).total_cmp(&num(rank, y)),
        Rank::Score(_) => num(rank, y).total_cmp(&num(rank, x)),
        Rank::Attrs(keys) => {
            let mut o = Ordering::Equal;
            for (k, dir) in keys {
                o = match *k {
                    "a" => x.a.cmp(&y.a),
                    "b" => x.b.as_bytes().cmp(y.b.as_bytes()),
                    _ => cmp_id(&x.id, &y.id),
                };
                if *dir == Direction::Desc {
                    o = o.reverse();
                }
                if o != Ordering::Equal {
                    break;
                }
            }
            o
        }
    };
    primary.then_with(|| cmp_id(&x.id, &y.id))
}

fn row_json(rank: &Rank, r: &Row) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), id_json(&r.id));
    if !matches!(rank, Rank::Attrs(_)) {
        m.insert("$dist".into(), json!(num(rank, r)));
    }
    m.insert("a".into(), json!(r.a));
    m.insert("b".into(), json!(r.b));
    Value::Object(m)
}

fn top_k(rank: &Rank, rows: &[Row], k: usize) -> Vec<Row> {
    let mut sorted = rows.to_vec();
    sorted.sort_by(|x, y| cmp_rows(rank, x, y));
    sorted.truncate(k);
    sorted
}

fn groups(rows: &[Row], limit: usize) -> Vec<Value> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.b.clone()).or_default() += 1;
    }
    counts
        .into_iter()
        .take(limit)
        .map(|(b, n)| json!({"b": b, "n": n}))
        .collect()
}

fn order_of(rank: &Rank) -> RowOrder {
    match rank {
        Rank::Euclid(_) | Rank::Cosine(_) => RowOrder::DistAsc,
        Rank::Score(_) => RowOrder::ScoreDesc,
        Rank::Attrs(keys) => {
            RowOrder::Attributes(keys.iter().map(|(k, d)| ((*k).to_owned(), *d)).collect())
        }
    }
}

fn shard(id: &Id, shards: u32) -> u32 {
    match id {
        Id::N(n) => shard_of(&IdValue::Uint(*n), shards),
        Id::S(s) => shard_of(&IdValue::Str(s.as_str().into()), shards),
    }
}

fn arb_rows() -> impl Strategy<Value = Vec<Row>> {
    let row = (
        prop_oneof![
            (0u64..400).prop_map(Id::N),
            (0u64..400).prop_map(|n| Id::S(format!("k{n}"))),
            Just(Id::N(u64::MAX)),
        ],
        proptest::option::of(-3i64..4),
        prop_oneof![Just("x"), Just("y"), Just("zz"), Just("é")].prop_map(String::from),
        [-2i8..3, -2i8..3, -2i8..3],
    )
        .prop_map(|(id, a, b, v)| Row {
            id,
            a,
            b,
            v: v.map(|x| f64::from(x) / 2.0),
        });
    proptest::collection::vec(row, 0..60).prop_map(|mut rows| {
        let mut seen = Vec::new();
        rows.retain(|r| {
            if seen.contains(&r.id) {
                false
            } else {
                seen.push(r.id.clone());
                true
            }
        });
        rows
    })
}

fn arb_rank() -> impl Strategy<Value = Rank> {
    let q = [-2i8..3, -2i8..3, -2i8..3].prop_map(|v| v.map(|x| f64::from(x) / 2.0));
    let dir = prop_oneof![Just(Direction::Asc), Just(Direction::Desc)];
    prop_oneof![
        q.clone().prop_map(Rank::Euclid),
        q.clone().prop_map(Rank::Cosine),
        q.prop_map(Rank::Score),
        proptest::collection::vec((prop_oneof![Just("a"), Just("b"), Just("id")], dir), 1..3)
            .prop_map(Rank::Attrs),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn sharded_equals_unsharded(rows in arb_rows(), rank in arb_rank(), shards in 1u32..7, k in 1usize..25, glimit in 1usize..5) {
        let mut bodies = Vec::new();
        let mut counts = Vec::new();
        let mut grouped = Vec::new();
        for s in 0..shards {
            let mine: Vec<Row> = rows.iter().filter(|r| shard(&r.id, shards) == s).cloned().collect();
            let top: Vec<Value> = top_k(&rank, &mine, k).iter().map(|r| row_json(&rank, r)).collect();
            bodies.push(json!({"rows": top, "billing": {"billable_logical_bytes_queried": 1}}).to_string());
            counts.push(json!({"aggregations": {"n": mine.len()}}).to_string());
            grouped.push(json!({"aggregation_groups": groups(&mine, glimit)}).to_string());
        }
        let refs: Vec<&[u8]> = bodies.iter().map(String::as_bytes).collect();
        let merged = merge_query_responses(&refs, &MergeSpec::rows(order_of(&rank), k)).unwrap();
        let merged: Value = serde_json::from_slice(&merged).unwrap();
        let expect: Vec<Value> = top_k(&rank, &rows, k).iter().map(|r| row_json(&rank, r)).collect();
        // Compare parsed to parsed: serde_json's default float parser is not exactly rounded.
        let expect: Value = serde_json::from_str(&json!(expect).to_string()).unwrap();
        prop_assert_eq!(&merged["rows"], &expect);
        prop_assert_eq!(&merged["billing"], &json!({"billable_logical_bytes_queried": shards}));

        let refs: Vec<&[u8]> = counts.iter().map(String::as_bytes).collect();
        let spec = MergeSpec { aggregate_labels: vec!["n".into()], ..MergeSpec::rows(RowOrder::ScoreDesc, k) };
        let merged: Value = serde_json::from_slice(&merge_query_responses(&refs, &spec).unwrap()).unwrap();
        prop_assert_eq!(&merged["aggregations"], &json!({"n": rows.len()}));

        let refs: Vec<&[u8]> = grouped.iter().map(String::as_bytes).collect();
        let spec = MergeSpec {
            aggregate_labels: vec!["n".into()],
            group_keys: vec!["b".into()],
            group_limit: Some(glimit),
            ..MergeSpec::rows(RowOrder::ScoreDesc, k)
        };
        let merged: Value = serde_json::from_slice(&merge_query_responses(&refs, &spec).unwrap()).unwrap();
        prop_assert_eq!(&merged["aggregation_groups"], &json!(groups(&rows, glimit)));
    }
}
