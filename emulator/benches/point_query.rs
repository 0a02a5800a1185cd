//! CPU cost of the emulator's query engine on a 10k-row namespace: a point query (fetch by id),
//! an exact ANN query over 64-dim vectors, a filtered attribute-ordered page, and a BM25 query.
//! The engine is called directly (no HTTP), so this is the per-query CPU the emulator adds on
//! top of its HTTP stack. Run: `cargo bench -p turbopuffer-emulator --bench point_query`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use turbopuffer_emulator::error::parse_body;
use turbopuffer_emulator::namespace::NsState;
use turbopuffer_emulator::query::{QueryRankBy, run_single};
use turbopuffer_emulator::write::{WriteLimits, WriteRequest, apply};

const ROWS: u64 = 10_000;
const DIMS: usize = 64;

fn namespace() -> NsState {
    let mut st = NsState::new(0);
    let limits = WriteLimits {
        patch_by_filter_rows: 50_000,
        delete_by_filter_rows: 5_000_000,
        backpressure_bytes: u64::MAX,
    };
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    for chunk in 0..(ROWS / 1000) {
        let rows: Vec<Value> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| {
                let v: Vec<f32> = (0..DIMS).map(|d| ((i as usize * 31 + d * 7) % 97) as f32 / 97.0).collect();
                let text = format!("{} {} {}", words[i as usize % 8], words[(i as usize / 8) % 8], words[(i as usize / 64) % 8]);
                json!({"id": i, "vector": v, "category": format!("c{}", i % 20), "price": i % 500, "text": text})
            })
            .collect();
        let body = json!({"upsert_rows": rows, "distance_metric": "cosine_distance", "schema": {"text": {"type": "string", "full_text_search": true}}});
        let bytes = body.to_string().into_bytes();
        let req: WriteRequest = parse_body(&bytes).expect("write body");
        apply(&mut st, req, bytes.len() as u64, limits, 1, true).expect("write");
    }
    st.flush();
    st
}

fn query(body: Value) -> QueryRankBy {
    parse_body(body.to_string().as_bytes()).expect("query body")
}

fn bench(c: &mut Criterion) {
    let st = namespace();
    let cases = [
        (
            "point_query_by_id",
            json!({"rank_by": ["id", "asc"], "top_k": 1, "filters": ["id", "Eq", 5000], "include_attributes": ["category", "price"]}),
        ),
        (
            "ann_top10_64d",
            json!({"rank_by": ["vector", "ANN", vec![0.5f32; DIMS]], "top_k": 10}),
        ),
        (
            "filtered_order_page",
            json!({"rank_by": ["price", "desc"], "top_k": 20, "filters": ["And", [["category", "Eq", "c7"], ["price", "Gte", 100]]]}),
        ),
        (
            "bm25_top10",
            json!({"rank_by": ["text", "BM25", "alpha delta"], "top_k": 10}),
        ),
    ];
    for (name, body) in cases {
        let q = query(body);
        c.bench_function(name, |b| {
            b.iter(|| black_box(run_single(&st, &st.docs, &q, Default::default()).expect("query")))
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
