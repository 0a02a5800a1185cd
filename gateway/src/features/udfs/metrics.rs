//! The UDF metrics, named as in the metric catalog where it names them (`layer_udf_queue_depth`,
//! `layer_udf_stage_count`), with the label `udf`:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `layer_udf_queue_depth` | gauge | `udf`: items waiting to be claimed (pending, backing off included); KEDA scales workers on it (refreshed every 10 s) |
//! | `layer_udf_stage_count` | gauge | `udf`, `stage` (`pending`, `processing`, `indexed`, `failed`) |
//! | `layer_udf_items_total` | counter | `udf`, `outcome` (`claimed`, `completed`, `stale_report`, `transient`, `permanent`, `lease_expired`, `retried`): what happened to items, per call |
//! | `layer_udf_completion_duration_seconds` | histogram | `udf`, `status` (`ok`, `error`): a completion call, the upstream write and the queue's marking included |
//! | `layer_udf_discovery_duration_seconds` | histogram | `udf`, `status`: one sweep |
//! | `layer_udf_discovery_namespace_seconds` | histogram | `udf`, `namespace`: one namespace of a sweep |
//! | `layer_udf_discovery_rows_total` | counter | `udf`, `outcome` (`scanned`, `enqueued`) |
//! | `layer_udf_push_batches_total` | counter | `udf`, `outcome` (`ok`, `timeout`, `error`): batches POSTed to push workers |
//! | `layer_udf_database_errors_total` | counter | `code` |

use std::sync::Arc;
use std::time::{Duration, Instant};

use layer_queue::ClaimedItem;

use super::Udfs;
use crate::core::labeled::{self, Kind, labels};

const QUEUE_DEPTH: &str = "layer_udf_queue_depth";
const STAGE_COUNT: &str = "layer_udf_stage_count";
const ITEMS: &str = "layer_udf_items_total";
const COMPLETION: &str = "layer_udf_completion_duration_seconds";
const SWEEP: &str = "layer_udf_discovery_duration_seconds";
const SWEEP_NS: &str = "layer_udf_discovery_namespace_seconds";
const ROWS: &str = "layer_udf_discovery_rows_total";
const PUSH: &str = "layer_udf_push_batches_total";
const DB_ERRORS: &str = "layer_udf_database_errors_total";

/// How often the gauges are refreshed from PostgreSQL.
pub const GAUGE_INTERVAL: Duration = Duration::from_secs(10);

/// Declares every UDF metric (idempotent).
pub fn describe() {
    use Kind::{Counter, Gauge, Histogram};
    for (name, kind, help) in [
        (QUEUE_DEPTH, Gauge, "UDF items waiting to be claimed."),
        (STAGE_COUNT, Gauge, "UDF items by stage."),
        (ITEMS, Counter, "UDF items by what happened to them."),
        (
            COMPLETION,
            Histogram,
            "Latency of a UDF completion call (upstream write and marking).",
        ),
        (SWEEP, Histogram, "Duration of a UDF discovery sweep."),
        (
            SWEEP_NS,
            Histogram,
            "Duration of one namespace of a UDF discovery sweep.",
        ),
        (ROWS, Counter, "Rows UDF discovery scanned and enqueued."),
        (PUSH, Counter, "Batches POSTed to push workers, by outcome."),
        (DB_ERRORS, Counter, "UDF calls that failed on PostgreSQL."),
    ] {
        labeled::describe(name, kind, help);
    }
}

fn items(udf: &str, outcome: &str, n: u64) {
    if n > 0 {
        labeled::count(ITEMS, labels(&[("udf", udf), ("outcome", outcome)]), n);
    }
}

/// A claim's items.
pub fn claimed(udf: &str, claimed: &[ClaimedItem]) {
    items(udf, "claimed", claimed.len() as u64);
    items(
        udf,
        "lease_expired",
        claimed.iter().filter(|c| c.lease_expired).count() as u64,
    );
    items(
        udf,
        "retried",
        claimed.iter().filter(|c| c.attempts > 1).count() as u64,
    );
}

/// A completion call: items marked, items ignored (another worker holds them), its outcome.
pub fn completed(udf: &str, marked: u64, ignored: u64, ok: bool, started: Instant) {
    items(udf, "completed", marked);
    items(udf, "stale_report", ignored);
    let status = if ok { "ok" } else { "error" };
    labeled::observe(
        COMPLETION,
        labels(&[("udf", udf), ("status", status)]),
        started.elapsed(),
    );
}

/// A failure report.
pub fn failed(udf: &str, transient: usize, permanent: usize) {
    items(udf, "transient", transient as u64);
    items(udf, "permanent", permanent as u64);
}

/// One namespace of a sweep.
pub fn discovered(udf: &str, ns: &str, scanned: u64, enqueued: u64, started: Instant) {
    labeled::observe(
        SWEEP_NS,
        labels(&[("udf", udf), ("namespace", ns)]),
        started.elapsed(),
    );
    labeled::count(
        ROWS,
        labels(&[("udf", udf), ("outcome", "scanned")]),
        scanned,
    );
    labeled::count(
        ROWS,
        labels(&[("udf", udf), ("outcome", "enqueued")]),
        enqueued,
    );
}

/// A whole sweep.
pub fn sweep(udf: &str, ok: bool, started: Instant) {
    let status = if ok { "ok" } else { "error" };
    labeled::observe(
        SWEEP,
        labels(&[("udf", udf), ("status", status)]),
        started.elapsed(),
    );
}

/// A push batch's outcome.
pub fn push(udf: &str, outcome: &str) {
    labeled::count(PUSH, labels(&[("udf", udf), ("outcome", outcome)]), 1);
}

/// A call that failed on PostgreSQL.
pub fn database_error(code: &str) {
    labeled::count(DB_ERRORS, labels(&[("code", code)]), 1);
}

/// Drops a deleted UDF's series.
pub fn forget(udf: &str) {
    labeled::forget(&labels(&[("udf", udf)]));
}

/// Refreshes the gauges every [`GAUGE_INTERVAL`].
pub async fn run(udfs: Arc<Udfs>) {
    loop {
        if let Some(Ok(queue)) = udfs.queue.ready().await {
            match queue.stage_counts().await {
                Ok(counts) => {
                    let mine: Vec<(String, String, i64)> = counts
                        .into_iter()
                        .filter_map(|(p, s, n)| {
                            p.strip_prefix(layer_queue::udfs::QUEUE_PREFIX)
                                .map(|u| (u.to_string(), s, n))
                        })
                        .collect();
                    labeled::set_gauges(
                        STAGE_COUNT,
                        mine.iter()
                            .map(|(u, s, n)| (labels(&[("udf", u), ("stage", s)]), *n)),
                    );
                    let mut depth: std::collections::BTreeMap<&str, i64> = Default::default();
                    for (u, s, n) in &mine {
                        let d = depth.entry(u.as_str()).or_default();
                        if s == layer_queue::stages::PENDING {
                            *d += n;
                        }
                    }
                    labeled::set_gauges(
                        QUEUE_DEPTH,
                        depth.into_iter().map(|(u, n)| (labels(&[("udf", u)]), n)),
                    );
                }
                Err(e) => database_error(e.code()),
            }
        }
        tokio::time::sleep(GAUGE_INTERVAL).await;
    }
}
