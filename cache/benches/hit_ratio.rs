//! Hit ratio of the hot cache's policies under a Zipf workload, against quick_cache 0.7 (the
//! well-kept baseline; its unsync cache is also S3-FIFO/CLOCK-Pro style) at the same byte budget.
//!
//! Workload: 100k keys, Zipf s = 1.0 (override: `ZIPF_S`), 2M requests (`REQUESTS`), values
//! 64-2048 bytes fixed per key, read-through (a miss inserts). Capacity is a share of the total
//! charged bytes of all keys. Every cache is charged `value + id + ENTRY_OVERHEAD` per entry.
//!
//! Run: `cargo bench -p layer-cache --bench hit_ratio` (a few seconds; results in `BENCH.md`).

use std::time::Instant;

use bytes::Bytes;
use layer_cache::hot::ENTRY_OVERHEAD;
use layer_cache::{HotCache, HotCacheConfig, Policy, Set};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const KEYS: usize = 100_000;

/// Inverse-CDF Zipf sampler over ranks `0..n` (rank 0 most popular).
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut SmallRng) -> usize {
        let u: f64 = rng.random();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

struct Weigh;
impl quick_cache::Weighter<String, Bytes> for Weigh {
    fn weight(&self, key: &String, val: &Bytes) -> u64 {
        (val.len() + key.len() + ENTRY_OVERHEAD) as u64
    }
}

fn main() {
    let s: f64 = std::env::var("ZIPF_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let requests: usize = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let mut rng = SmallRng::seed_from_u64(7);
    let ids: Vec<String> = (0..KEYS).map(|i| format!("doc-{i}")).collect();
    // Popularity rank -> key, shuffled so popularity is unrelated to insertion order.
    let mut perm: Vec<usize> = (0..KEYS).collect();
    for i in (1..KEYS).rev() {
        perm.swap(i, rng.random_range(0..=i));
    }
    let values: Vec<Bytes> = (0..KEYS)
        .map(|_| Bytes::from(vec![1u8; rng.random_range(64..=2048)]))
        .collect();
    let total: usize = (0..KEYS)
        .map(|i| values[i].len() + ids[i].len() + ENTRY_OVERHEAD)
        .sum();
    let zipf = Zipf::new(KEYS, s);
    let trace: Vec<usize> = (0..requests).map(|_| perm[zipf.sample(&mut rng)]).collect();

    println!(
        "zipf s={s}, {KEYS} keys, {requests} requests, working set {} MiB",
        total >> 20
    );
    println!("| capacity | bytes | LRU | S3-FIFO (layer) | quick_cache 0.7 |");
    println!("|---:|---:|---:|---:|---:|");
    for pct in [0.5, 1.0, 5.0, 10.0, 25.0] {
        let cap = (total as f64 * pct / 100.0) as usize;
        let lru = run_hot(cap, Policy::Lru, &trace, &ids, &values);
        let s3 = run_hot(cap, Policy::S3Fifo, &trace, &ids, &values);
        let qc = run_quick(cap, &trace, &ids, &values);
        println!(
            "| {pct}% | {} KiB | {:.2}% | {:.2}% | {:.2}% |",
            cap >> 10,
            lru * 100.0,
            s3 * 100.0,
            qc * 100.0
        );
    }
}

fn run_hot(cap: usize, policy: Policy, trace: &[usize], ids: &[String], vals: &[Bytes]) -> f64 {
    let mut cfg = HotCacheConfig::new(cap).with_policy(policy);
    cfg.max_entry_bytes = Some(cap);
    let mut c = HotCache::new(cfg);
    let t = Instant::now();
    let mut hits = 0usize;
    for &k in trace {
        if c.get(Set::Documents, "ns", &ids[k]).is_some() {
            hits += 1;
        } else {
            c.insert(Set::Documents, "ns", &ids[k], vals[k].clone());
        }
    }
    eprintln!("  {policy:?} cap={cap}: {:?}", t.elapsed());
    hits as f64 / trace.len() as f64
}

fn run_quick(cap: usize, trace: &[usize], ids: &[String], vals: &[Bytes]) -> f64 {
    let mut c = quick_cache::unsync::Cache::with_weighter(cap / 1200 + 1, cap as u64, Weigh);
    let t = Instant::now();
    let mut hits = 0usize;
    for &k in trace {
        if c.get(&ids[k]).is_some() {
            hits += 1;
        } else {
            c.insert(ids[k].clone(), vals[k].clone());
        }
    }
    eprintln!("  quick_cache cap={cap}: {:?}", t.elapsed());
    hits as f64 / trace.len() as f64
}
