//! What the search-history writer spends summarising one served query (`summary::summarize`,
//! on the control runtime): the caller's body with its vectors replaced by their shapes, and the
//! served ids read from the answer. Three cases: `bench/scenarios/query-passthrough.yaml`'s point
//! query, `query-ann.yaml`'s 16-dimension ANN query, and an ANN query with a 1536-dimension
//! vector (a common embedding size), each with the emulator's answer shape (`rows`, `billing`,
//! `performance`; ten rows for the ANN queries). The big query is summarised twice: as the v2
//! route's body (validated whole by the planner before) and as the v1 route's (relayed unread).
//!
//! Run: `cargo bench -p layer-gateway --bench history_summary`.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use layer_gateway::features::history::summary::{Scratch, summarize};

/// The emulator's answer to a query, with `rows` as given.
fn answer(rows: &str) -> String {
    format!(
        r#"{{"rows":[{rows}],"billing":{{"billable_logical_bytes_queried":256000000,"billable_logical_bytes_returned":22}},"performance":{{"approx_namespace_size":10000,"cache_hit_ratio":1.0,"cache_temperature":"hot","exhaustive_search_count":10000,"query_execution_ms":2,"server_total_ms":2}}}}"#
    )
}

/// An ANN query with a `dims`-dimension vector, and its answer of ten rows.
fn ann(dims: usize) -> (String, String) {
    let mut vector = String::new();
    for i in 0..dims {
        if i > 0 {
            vector.push(',');
        }
        // Numbers of the width an embedding model's floats print with.
        let _ = write!(vector, "{:.8}", ((i * 7919) % 2000) as f64 / 1000.0 - 1.0);
    }
    let request = format!(
        r#"{{"rank_by":["vector","ANN",[{vector}]],"top_k":10,"include_attributes":["id"]}}"#
    );
    let rows: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"id":{},"$dist":0.{:07}}}"#, 4000 + i * 37, 1234567 + i))
        .collect();
    (request, answer(&rows.join(",")))
}

fn bench(c: &mut Criterion) {
    let point = (
        r#"{"filters":["id","Eq",4242],"rank_by":["id","asc"],"top_k":1,"include_attributes":["id"]}"#
            .to_string(),
        answer(r#"{"id":4242}"#),
    );
    let mut g = c.benchmark_group("history_summary");
    // A v2 query's body was validated by the planner (`checked`); the v1 route relays its body
    // unread (`_unchecked`).
    let big = ann(1536);
    for (name, (request, response), checked) in [
        ("point_query", point, true),
        ("ann_16", ann(16), true),
        ("ann_1536", big.clone(), true),
        ("ann_1536_unchecked", big, false),
    ] {
        let mut scratch = Scratch::default();
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(summarize(
                    black_box(request.as_bytes()),
                    checked,
                    black_box(response.as_bytes()),
                    &mut scratch,
                ))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
