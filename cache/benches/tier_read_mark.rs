//! What a shared-tier read pays to learn whether it overlapped a tier change of its namespace
//! (`Invalidations::read_mark` before the read, `settled_since` after): nothing in flight
//! anywhere (the fast path: atomic loads), and a change of another namespace in flight (the
//! per-namespace path: two map lookups under locks). Compare with a tier get (`nvme` bench).
//! Numbers in `BENCH.md`.
//!
//! Run: `cargo bench -p layer-cache --bench tier_read_mark -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use layer_cache::{Invalidations, Set};

fn bench_marks(c: &mut Criterion) {
    let inv = Arc::new(Invalidations::new());
    for i in 0..1000 {
        inv.clear_namespace(Set::Documents, &format!("ns-{i}"));
    }
    let mut g = c.benchmark_group("tier_read_mark");
    g.bench_function("quiet", |b| {
        b.iter(|| {
            let mark = inv.read_mark(Set::Documents, black_box("ns-17"));
            black_box(inv.settled_since(mark, Set::Documents, "ns-17"))
        })
    });
    let elsewhere = inv.tier_update(Set::Documents, "ns-99");
    g.bench_function("busy_elsewhere", |b| {
        b.iter(|| {
            let mark = inv.read_mark(Set::Documents, black_box("ns-17"));
            black_box(inv.settled_since(mark, Set::Documents, "ns-17"))
        })
    });
    drop(elsewhere);
    g.finish();
}

criterion_group!(benches, bench_marks);
criterion_main!(benches);
