//! Gather cost: merging 8 shard responses of ~50 KB each (75 rows of `id`, `$dist` and ~10
//! attributes) into the global top 20 by `$dist`.
//!
//! Run: `cargo bench -p scatter --bench merge -- --warm-up-time 1 --measurement-time 3`.
//!
//! Measured (release/bench profile, default target features, 2-core shared AMD EPYC dev VM):
//! **merge_8x50KB_top20: ~430 µs** (criterion 420–445 µs, 50,480-byte responses).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scatter::{MergeSpec, RowOrder, merge_query_responses};

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

criterion_group!(benches, bench);
criterion_main!(benches);
