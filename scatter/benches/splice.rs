//! Byte splicing vs a serde_json DOM round trip, for the two rewrites on the request path:
//! stamping a write (100 rows, ~58 KB) and injecting the watermark predicate into a query
//! (~1.7 KB), and a query's two planning passes validating the body once vs twice. The DOM side is `scatter::reference` (parse to `serde_json::Value`, edit, serialise),
//! the implementation the splicer is property-tested against.
//!
//! `parse_top` alone on a stored row (and that row's members listed as a hot hit lists them,
//! `Validated::plain_members`) and a write of full-precision vectors; a query with a
//! 1536-dimension vector validated (its numbers as `k/97` prints them, and as an embedding
//! model's `float32` values print), and planned with its stable read.
//!
//! Run: `cargo bench -p scatter --bench splice -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scatter::{Limits, StampOptions};

fn write_body() -> Vec<u8> {
    let rows: Vec<String> = (0..100)
        .map(|i| {
            let v: Vec<String> = (0..64).map(|d| format!("{:.4}", ((i * 31 + d * 7) % 97) as f64 / 97.0)).collect();
            format!(r#"{{"id":{i},"vector":[{}],"title":"document number {i}","category":"c{}","price":{}.5}}"#, v.join(","), i % 20, i % 500)
        })
        .collect();
    format!(
        r#"{{"upsert_rows":[{}],"distance_metric":"cosine_distance"}}"#,
        rows.join(",")
    )
    .into_bytes()
}

fn query_body() -> Vec<u8> {
    let v: Vec<String> = (0..160)
        .map(|d| format!("{:.5}", (d % 13) as f64 / 13.0))
        .collect();
    format!(
        r#"{{"rank_by":["vector","ANN",[{}]],"top_k":20,"filters":["And",[["tenant","Eq","t_42"],["price","Lt",100]]],"include_attributes":["title","url"],"consistency":{{"level":"eventual"}}}}"#,
        v.join(",")
    )
    .into_bytes()
}

/// A vector of `dims` numbers as clients and `jq` print them: up to 17 significant digits.
fn vector(seed: usize, dims: usize) -> String {
    let v: Vec<String> = (0..dims)
        .map(|d| (((seed * 31 + d) % 97) as f64 / 97.0).to_string())
        .collect();
    format!("[{}]", v.join(","))
}

/// A vector as an embedding model's `float32` values print once widened to `f64` (what Python's
/// and orjson's shortest round-trip form gives): signs mixed, magnitudes around 1/sqrt(dims),
/// up to 17 significant digits, so every number's length varies.
fn embedding(seed: u64, dims: usize) -> String {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let v: Vec<String> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            let x = (unit - 0.5) * 4.0 / (dims as f64).sqrt();
            f64::from(x as f32).to_string()
        })
        .collect();
    format!("[{}]", v.join(","))
}

/// A stored row as a hot fetch reads it (16-dim vector), and a write of 16 such rows (P5's body).
fn rows() -> (Vec<u8>, Vec<u8>) {
    let row = |i: usize| {
        format!(
            r#"{{"id":{i},"vector":{},"title":"document number {i}","price":{}.5}}"#,
            vector(i, 16),
            i % 500
        )
    };
    let write = format!(
        r#"{{"upsert_rows":[{}],"distance_metric":"cosine_distance"}}"#,
        (0..16).map(row).collect::<Vec<_>>().join(",")
    );
    (row(7).into_bytes(), write.into_bytes())
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let write = write_body();
    let query = query_body();
    let pred = br#"["_hevlayer_upserted_at","Lte",1795436505630]"#;
    let opts = StampOptions::new(1_795_436_505_630);
    let mut g = c.benchmark_group("stamp_write_58KB");
    g.bench_function("splice", |b| {
        b.iter(|| black_box(scatter::stamp_write(&write, 1_795_436_505_630, &limits).unwrap()))
    });
    g.bench_function("serde_json_dom", |b| {
        b.iter(|| {
            black_box(
                serde_json::to_vec(&scatter::reference::stamp_write(&write, &opts).unwrap())
                    .unwrap(),
            )
        })
    });
    g.finish();
    let mut g = c.benchmark_group("inject_filter_1.7KB");
    g.bench_function("splice", |b| {
        b.iter(|| black_box(scatter::inject_filter(&query, pred, &limits).unwrap()))
    });
    g.bench_function("serde_json_dom", |b| {
        b.iter(|| {
            black_box(
                serde_json::to_vec(&scatter::reference::inject_filter(&query, pred).unwrap())
                    .unwrap(),
            )
        })
    });
    g.finish();
    // A stable read's two planning passes on one request: the first validates the body whole;
    // the second either checks its output whole again (what a flag-free pipeline would need) or
    // takes the plan's `Validated` body and walks its top level only (what the gateway does).
    let qctx = scatter::QueryContext::default();
    let query = bytes::Bytes::from(query);
    let mut g = c.benchmark_group("query_plan_then_stable_read_1.7KB");
    for (name, again) in [("validate_twice", true), ("validate_once", false)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let plan = scatter::plan_query(&query, &qctx).unwrap();
                let scatter::QueryPlan::Upstream(q) = plan else {
                    unreachable!("a native query plans upstream")
                };
                let body = if again {
                    scatter::Validated::check(q.body.into_inner(), &limits).unwrap()
                } else {
                    q.body
                };
                black_box(scatter::plan_stable_read(&body, Some(pred)).unwrap())
            })
        });
    }
    g.finish();
    // Validation alone, as a tier hit (before splicing the stored row) and a write read it; and
    // a hot hit's listing of a row kept valid, which checks nothing again.
    let (row, write) = rows();
    let mut g = c.benchmark_group("parse_top");
    g.bench_function("row_16dim", |b| {
        b.iter(|| black_box(scatter::validate::parse_top(&row, &limits).unwrap().len()))
    });
    let kept = scatter::Validated::check(row.as_slice(), &limits).unwrap();
    g.bench_function("row_16dim_plain_members", |b| {
        b.iter(|| black_box(kept.plain_members().unwrap().count()))
    });
    g.bench_function("write_16x16dim", |b| {
        b.iter(|| black_box(scatter::validate::parse_top(&write, &limits).unwrap().len()))
    });
    g.finish();
    // A query with a 1536-dimension vector (a common embedding size), planned and given its
    // stable-read predicate as the gateway's shard does: what a realistic ANN query costs the
    // shard before it is sent.
    let ann = bytes::Bytes::from(format!(
        r#"{{"rank_by":["vector","ANN",{}],"top_k":10,"include_attributes":["id"]}}"#,
        vector(3, 1536)
    ));
    let mut g = c.benchmark_group("ann_1536dim");
    g.bench_function("parse_top", |b| {
        b.iter(|| black_box(scatter::validate::parse_top(&ann, &limits).unwrap().len()))
    });
    // The same query with an embedding's values (signs mixed, lengths varying).
    let embedded = bytes::Bytes::from(format!(
        r#"{{"rank_by":["vector","ANN",{}],"top_k":10,"include_attributes":["id"]}}"#,
        embedding(3, 1536)
    ));
    g.bench_function("parse_top_embedding", |b| {
        b.iter(|| {
            black_box(
                scatter::validate::parse_top(&embedded, &limits)
                    .unwrap()
                    .len(),
            )
        })
    });
    g.bench_function("plan_then_stable_read", |b| {
        b.iter(|| {
            let plan = scatter::plan_query(&ann, &qctx).unwrap();
            let scatter::QueryPlan::Upstream(q) = plan else {
                unreachable!("a native query plans upstream")
            };
            // As the gateway asks it: with the planner's note of where the root members are.
            black_box(q.plan_stable_read(Some(pred)).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
