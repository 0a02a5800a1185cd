//! What recording one point query's metrics costs the shard: the calls the request path makes
//! (`request_started`, the upstream's in-flight gauge up and down, `upstream`, a cache event,
//! `request_finished` with its namespace), on series that already exist. A scrape (`render`) of
//! the same thread is measured too. `cargo bench -p layer-gateway --bench metrics_record`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use layer_gateway::core::metrics;

fn one_query(ns: &str) {
    metrics::request_started();
    metrics::feature_gauge_add("layer_tpuf_inflight", 1);
    metrics::upstream("query", Duration::from_micros(black_box(900)));
    metrics::feature_gauge_add("layer_tpuf_inflight", -1);
    metrics::cache_event(black_box("miss"));
    metrics::request_finished(
        "query",
        200,
        Duration::from_micros(black_box(1200)),
        Some((metrics::QUERY_LATENCY, ns)),
    );
}

fn bench(c: &mut Criterion) {
    metrics::declare_gauge("layer_tpuf_inflight");
    // 64 namespaces with series, as a gateway serving a few tenants has.
    let names: Vec<String> = (0..64).map(|i| format!("tenant-{i:02}")).collect();
    for ns in &names {
        one_query(ns);
    }
    let mut i = 0usize;
    c.bench_function("metrics: one point query's records", |b| {
        b.iter(|| {
            i = (i + 1) % names.len();
            one_query(&names[i]);
        })
    });
    c.bench_function("metrics: a scrape of one thread, 64 namespaces", |b| {
        b.iter(|| black_box(metrics::render(1)).len())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
