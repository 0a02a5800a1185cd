//! The UDF runtime's benchmark through HTTP (run by `bench/udfs.sh`; a program that prints
//! numbers, never a timed test).
//!
//! An emulator and a gateway (2 shards, the documented defaults, the queue on
//! `LAYER_TEST_DATABASE_URL` in a fresh schema) in this process. Setup (not measured): ROWS rows
//! (`id`, `title`, `n`) written through the gateway in batches of 1,000 (4 writers), so they carry
//! the gateway's stamp, into the UDF's namespace and into a second namespace the floor patches;
//! then a wait until the gateway's watermark covers them (so the writes have settled; should a
//! sweep read at the stable cut, it sees every row). A UDF over
//! the first namespace, created paused (inputs `id` and `title`, `batch_size` BATCH,
//! `discovery_interval_seconds` 86400 so no periodic sweep runs during the measurements;
//! everything else at its default). Then:
//!
//! 1. **Discovery**: `POST /v2/udfs/{id}/discover` (it answers after at most 20 s while the sweep
//!    goes on), then status polled every 50 ms until a sweep has completed and none runs.
//! 2. **Claim + complete**: the UDF resumed, 4 concurrent workers with a no-op function, each
//!    looping `POST …/claim` → `POST …/items/complete` (every item with `{"tag": "x"}`) until a
//!    claim comes back empty with nothing pending; status must then show `pending_count` and
//!    `processing_count` 0 and every row indexed. Rows/s and per-call latencies. Then the same
//!    with pipelined workers (each claims its next batch while its previous completion is in
//!    flight) after a version bump (`v2`) and a sweep requeued every row.
//! 3. **Total**: rows/s over discovery + claim + complete.
//! 4. **Floor**: the same `patch_columns` writes (same ids, BATCH rows a call, 4 concurrent
//!    writers, columns `id`, `tag`, the version marker and the cleared `stale_after` marker: the
//!    columns the gateway's completion writes, its stamp aside) sent straight to the emulator,
//!    once before and once after the UDF phases (drift on a shared machine); the ratio gateway
//!    path / direct.
//! 5. **Where the time goes**: the gateway's `/metrics` histograms over each phase
//!    (`layer_request_duration_seconds` of the claim and complete routes,
//!    `layer_udf_completion_duration_seconds`, `layer_upstream_duration_seconds` of the
//!    completion writes and the discovery pages) beside the client-side latencies, and the CPU
//!    each part used per phase (per-thread CPU of this process by thread name — gateway shards,
//!    gateway control runtime, emulator, client — plus the PostgreSQL server when
//!    `LAYER_TEST_PG_PID` names it, and the rest of the machine).
//!
//! The whole comparison runs twice: with the emulator answering writes at once, and (DELAY_MS >
//! 0, on ROWS / 5 rows of two more namespaces and a second UDF) with every upstream write delayed
//! by DELAY_MS before the emulator runs it, on both paths, as a write to a remote Turbopuffer
//! takes tens of milliseconds.
//!
//! Usage: `LAYER_TEST_DATABASE_URL=postgresql://... cargo run --release -p layer-e2e --example
//! udf_bench [ROWS] [BATCH] [DELAY_MS]` (defaults 100000, 32 and 20; DELAY_MS 0 skips the second
//! comparison).
//!
//! The parts: `client` (HTTP), `setup` (rows, watermarks, UDFs, the write delay), `compare` (one
//! comparison, run and reported), `workers` (claim + complete, the requeue), `floor` (the direct
//! writes), `metrics` (the gateway's histograms), `cpu` (CPU by part), `stats`.

mod client;
mod compare;
mod cpu;
mod floor;
mod metrics;
mod setup;
mod stats;
mod workers;

use std::time::Duration;

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use layer_e2e::{Emulator, base_config};

use crate::client::Http;
use crate::compare::compare;
use crate::setup::setup;

pub(crate) const WORKERS: usize = 4;
pub(crate) const SEED_BATCH: usize = 1_000;
/// How often status is polled while discovery runs.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// One comparison: a UDF over `ns`, its floor on `floor_ns`.
#[derive(Clone, Copy)]
pub(crate) struct Scenario {
    pub(crate) udf: &'static str,
    pub(crate) ns: &'static str,
    pub(crate) floor_ns: &'static str,
    pub(crate) rows: usize,
    pub(crate) batch: usize,
    /// Every upstream write waits this long in the emulator (both paths).
    pub(crate) delay_ms: u64,
}

impl Scenario {
    /// `_hevlayer_udf_<id with _>_v`: the version marker the gateway writes.
    pub(crate) fn marker(&self) -> String {
        format!("_hevlayer_udf_{}_v", self.udf.replace('-', "_"))
    }

    pub(crate) fn stale(&self) -> String {
        format!("_hevlayer_udf_{}_stale_after", self.udf.replace('-', "_"))
    }
}

fn main() {
    let url = std::env::var("LAYER_TEST_DATABASE_URL").expect("LAYER_TEST_DATABASE_URL");
    let mut args = std::env::args().skip(1);
    let rows: usize = args.next().map_or(100_000, |s| s.parse().expect("ROWS"));
    let batch: usize = args.next().map_or(32, |s| s.parse().expect("BATCH"));
    let delay_ms: u64 = args.next().map_or(20, |s| s.parse().expect("DELAY_MS"));
    assert!(rows > 0 && batch > 0, "ROWS and BATCH must be positive");
    let emulator = Emulator::start();
    let schema = format!("bench_udf_{:08x}", std::process::id());
    let mut cfg = base_config(&emulator.url());
    cfg.gateway.queue.url = Some(url);
    cfg.gateway.queue.schema = schema.clone();
    let gateway = layer_gateway::start(cfg, &|_| None).expect("gateway");
    let base = format!("http://{}", gateway.addr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let mut scenarios = vec![Scenario {
        udf: "bench-tag",
        ns: "udf-bench",
        floor_ns: "udf-bench-floor",
        rows,
        batch,
        delay_ms: 0,
    }];
    if delay_ms > 0 {
        scenarios.push(Scenario {
            udf: "bench-tag-delayed",
            ns: "udf-bench-delayed",
            floor_ns: "udf-bench-delayed-floor",
            rows: (rows / 5).max(1),
            batch,
            delay_ms,
        });
    }
    rt.block_on(async {
        let http: Http = Client::builder(TokioExecutor::new()).build_http();
        println!(
            "# UDF runtime through HTTP: {rows} rows, batch_size {batch}, {WORKERS} workers, \
             gateway with 2 shards, schema {schema}"
        );
        setup(&http, &base, &scenarios).await;
        for s in &scenarios {
            compare(&http, &base, &emulator.url(), s).await;
        }
    });
    gateway.shutdown();
}
