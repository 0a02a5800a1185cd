//! Hot-cache hit path: one `get` of a present key (hash, probe, key compare, generation check,
//! frequency bump, `Bytes` clone), per core. quick_cache's unsync cache is measured alongside as a
//! reference. Numbers in `BENCH.md`.
//!
//! Run: `cargo bench -p layer-cache --bench hot_hit -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use layer_cache::{HotCache, HotCacheConfig, Invalidations, Policy, Set};

const N: usize = 10_000;

fn ids() -> Vec<String> {
    (0..N).map(|i| format!("asin-{i:010}")).collect()
}

fn bench_hit(c: &mut Criterion) {
    let ids = ids();
    let value = Bytes::from(vec![0u8; 1024]);
    let mut g = c.benchmark_group("hot_hit");
    g.throughput(Throughput::Elements(1));
    for (name, policy, shared_inv) in [
        ("s3fifo", Policy::S3Fifo, false),
        ("s3fifo_with_invalidations", Policy::S3Fifo, true),
        ("lru", Policy::Lru, false),
    ] {
        let mut cache = HotCache::new(HotCacheConfig::new(64 << 20).with_policy(policy));
        if shared_inv {
            cache = cache.with_invalidations(std::sync::Arc::new(Invalidations::new()));
        }
        for id in &ids {
            cache.insert(Set::Documents, "products", id, value.clone());
        }
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 7919) % N;
                black_box(cache.get(Set::Documents, "products", black_box(&ids[i])))
            })
        });
    }
    let mut qc = quick_cache::unsync::Cache::new(N * 2);
    for id in &ids {
        qc.insert(id.clone(), value.clone());
    }
    let mut i = 0usize;
    g.bench_function("quick_cache_unsync", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(qc.get(black_box(ids[i].as_str())).cloned())
        })
    });
    let mut miss = HotCache::new(HotCacheConfig::new(64 << 20));
    g.bench_function("s3fifo_miss", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(miss.get(Set::Documents, "products", black_box(&ids[i])))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_hit);
criterion_main!(benches);
