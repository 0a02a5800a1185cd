//! NVMe tier: read latency (p50/p99/p999 via hdrhistogram, one request at a time) and throughput
//! (batches of 64 concurrent gets) for the io_uring backend and the plain pread fallback, on
//! O_DIRECT segment files (so the page cache does not turn disk reads into memcpy).
//!
//! Data set: 40k values of 1 KiB (~45 MiB on disk), flushed before measuring; uniform random keys.
//! Directory: `NVME_BENCH_DIR` (default: a temp dir under /tmp).
//!
//! Run: `cargo bench -p layer-cache --bench nvme` (about 20 s; results in `BENCH.md`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_executor::block_on;
use hdrhistogram::Histogram;
use layer_cache::{NvmeConfig, NvmeTier, Set, Tier};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const KEYS: usize = 40_000;
const VALUE: usize = 1024;
const LATENCY_OPS: usize = 20_000;
const BATCH: usize = 64;
const THROUGHPUT_TIME: Duration = Duration::from_secs(3);

fn main() {
    let base = std::env::var("NVME_BENCH_DIR").unwrap_or_else(|_| "/tmp".into());
    for plain in [false, true] {
        let dir = tempfile::tempdir_in(&base).expect("tempdir");
        let mut cfg = NvmeConfig::new(dir.path(), 1 << 30);
        cfg.force_plain_io = plain;
        let tier = NvmeTier::open(cfg).expect("open");
        let ids: Vec<String> = (0..KEYS).map(|i| format!("doc-{i}")).collect();
        let value = Bytes::from(vec![42u8; VALUE]);
        let t = Instant::now();
        for id in &ids {
            block_on(tier.put(Set::Documents, "bench", id, value.clone())).expect("put");
        }
        block_on(tier.flush()).expect("flush");
        let put_rate = KEYS as f64 / t.elapsed().as_secs_f64();

        let mut rng = SmallRng::seed_from_u64(1);
        let mut hist = Histogram::<u64>::new(3).expect("histogram");
        for _ in 0..LATENCY_OPS {
            let id = &ids[rng.random_range(0..KEYS)];
            let t = Instant::now();
            let v = block_on(tier.get(Set::Documents, "bench", id)).expect("get");
            hist.record(t.elapsed().as_nanos() as u64).expect("record");
            assert_eq!(v.map(|v| v.len()), Some(VALUE));
        }

        let start = Instant::now();
        let mut ops = 0usize;
        while start.elapsed() < THROUGHPUT_TIME {
            let futs: Vec<_> = (0..BATCH)
                .map(|_| tier.get(Set::Documents, "bench", &ids[rng.random_range(0..KEYS)]))
                .collect();
            for f in futs {
                assert!(block_on(f).expect("get").is_some());
            }
            ops += BATCH;
        }
        let rate = ops as f64 / start.elapsed().as_secs_f64();
        let stats = block_on(tier.stats()).expect("stats");
        println!(
            "backend={} o_direct={} puts/s={:.0} | get latency (1 in flight): p50={:.1}us p99={:.1}us p99.9={:.1}us max={:.1}us | get throughput ({} in flight): {:.0} ops/s | disk_reads={} memory_reads={}",
            tier.backend(),
            tier.direct_io(),
            put_rate,
            hist.value_at_quantile(0.5) as f64 / 1e3,
            hist.value_at_quantile(0.99) as f64 / 1e3,
            hist.value_at_quantile(0.999) as f64 / 1e3,
            hist.max() as f64 / 1e3,
            BATCH,
            rate,
            stats.disk_reads,
            stats.memory_reads,
        );
    }
}
