//! Gather cost: merging 8 shard responses of ~50 KB each (75 rows of `id`, `$dist` and ~10
//! attributes) into the global top 20 by `$dist`.
//!
//! Run: `cargo bench -p scatter --bench merge -- --warm-up-time 1 --measurement-time 3`.
//!
//! Side by side, `dom_merge_8x50KB_top20` does the same selection the obvious way: every response
//! parsed into a `serde_json::Value`, all rows sorted by (`$dist`, id), the first 20 kept, billing
//! summed, the first response's `performance` kept, serialised (it does less than the real merge:
//! no validation of duplicate keys or escapes, no performance merge).
//!
//! Measured (release/bench profile, default target features, 2-core shared AMD EPYC dev VM):
//! **merge_8x50KB_top20: ~430 µs** (criterion 420–445 µs, 50,480-byte responses). 2026-12-05,
//! same VM: merge **414 µs**, DOM merge **1.53 ms** (3.7×); built with `-C
//! target-cpu=x86-64-v3` (AVX2 for sonic-rs) the merge took 403 µs, so SIMD width is not what
//! bounds it. With the release profile's fat LTO in one codegen unit (the bench profile
//! inherits it): **291–305 µs** in two runs against 382 µs in the same session without it
//! (sonic-rs's small reader functions were not inlined across the crate boundary). Reading each
//! row's `id` and `$dist` in place (`scatter::leading`) instead of through sonic-rs's object
//! iterator: **245–247 µs** against 325–329 µs, the two builds alternated in one session (DOM
//! merge 1.63 ms).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scatter::{MergeSpec, RowOrder, merge_query_responses};
use serde_json::{Map, Value};

fn response(shard: u64) -> String {
    let mut rows = Vec::new();
    for i in 0..75u64 {
        let id = shard * 1000 + i;
        let dist = ((id * 7919) % 10_000) as f64 / 10_000.0;
        rows.push(format!(
            concat!(
                r#"{{"id":{id},"$dist":{dist},"title":"Product title number {id} with some words","#,
                r#""url":"https://example.com/products/{id}/detail-page","category":"category-{c}","#,
                r#""brand":"brand-{b}","price":{p}.99,"rating":4.{r},"in_stock":true,"tags":["a","b","tag-{c}"],"#,
                r#""published_at":"2026-01-0{d}T12:00:00Z","text":"{text}"}}"#
            ),
            id = id,
            dist = dist,
            c = id % 17,
            b = id % 5,
            p = id % 300,
            r = id % 10,
            d = 1 + id % 9,
            text = "lorem ipsum dolor sit amet ".repeat(14),
        ));
    }
    format!(
        r#"{{"rows":[{}],"billing":{{"billable_logical_bytes_queried":256000000,"billable_logical_bytes_returned":51234}},"performance":{{"approx_namespace_size":100000,"cache_hit_ratio":1.0,"cache_temperature":"hot","exhaustive_search_count":0,"query_execution_ms":4,"server_total_ms":5}}}}"#,
        rows.join(",")
    )
}

fn bench(c: &mut Criterion) {
    let bodies: Vec<String> = (0..8).map(response).collect();
    let avg = bodies.iter().map(String::len).sum::<usize>() / bodies.len();
    eprintln!("8 responses, {avg} bytes each on average");
    let refs: Vec<&[u8]> = bodies.iter().map(String::as_bytes).collect();
    let spec = MergeSpec::rows(RowOrder::DistAsc, 20);
    c.bench_function("merge_8x50KB_top20", |b| {
        b.iter(|| merge_query_responses(black_box(&refs), black_box(&spec)).unwrap());
    });
}

/// The DOM-based reference merge (see the module docs).
fn dom_merge(bodies: &[&[u8]], top_k: usize) -> Vec<u8> {
    let mut rows: Vec<Value> = Vec::new();
    let mut billing: Map<String, Value> = Map::new();
    let mut performance = Value::Null;
    for body in bodies {
        let Ok(Value::Object(mut resp)) = serde_json::from_slice::<Value>(body) else {
            continue;
        };
        if let Some(Value::Array(r)) = resp.remove("rows") {
            rows.extend(r);
        }
        if let Some(Value::Object(b)) = resp.remove("billing") {
            for (k, v) in b {
                let sum = billing.get(&k).and_then(Value::as_f64).unwrap_or(0.0)
                    + v.as_f64().unwrap_or(0.0);
                billing.insert(k, Value::from(sum));
            }
        }
        if performance.is_null() {
            performance = resp.remove("performance").unwrap_or(Value::Null);
        }
    }
    let dist = |r: &Value| {
        r.get("$dist")
            .and_then(Value::as_f64)
            .unwrap_or(f64::INFINITY)
    };
    rows.sort_by(|a, b| {
        dist(a)
            .total_cmp(&dist(b))
            .then_with(|| a["id"].to_string().cmp(&b["id"].to_string()))
    });
    rows.truncate(top_k);
    let mut out = Map::new();
    out.insert("rows".into(), Value::Array(rows));
    out.insert("billing".into(), Value::Object(billing));
    out.insert("performance".into(), performance);
    serde_json::to_vec(&Value::Object(out)).unwrap_or_default()
}

fn bench_dom(c: &mut Criterion) {
    let bodies: Vec<String> = (0..8).map(response).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(String::as_bytes).collect();
    c.bench_function("dom_merge_8x50KB_top20", |b| {
        b.iter(|| dom_merge(black_box(&refs), black_box(20)));
    });
}

criterion_group!(benches, bench, bench_dom);
criterion_main!(benches);
