//! The pipeline metrics, named as in the metric catalog where it names them, with its label
//! convention (`pipeline_id`, `stage`, `from_stage`, `to_stage`, `status`):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `layer_pipeline_stage_count` | gauge | `pipeline_id`, `stage` (refreshed from PostgreSQL every 10 s; KEDA reads `stage="pending"`) |
//! | `layer_stage_transitions_total` | counter | `pipeline_id`, `from_stage`, `to_stage`, `status` (`ok`, `refused`): claims, stage moves, vectors |
//! | `layer_stage_duration_seconds` | histogram | `pipeline_id`, `from_stage`, `to_stage`: the latency of the call that made the move (claim, stage move, vectors) |
//! | `layer_pipeline_indexed_total` | counter | `pipeline_id` |
//! | `layer_pipeline_failed_total` | counter | `pipeline_id`, `reason` |
//! | `layer_pipeline_lease_expiries_total` | counter | `pipeline_id`: documents re-claimed after their lease ran out |
//! | `layer_pipeline_vectors_total` | counter | `pipeline_id`, `status` (`ok`, `rejected`, `upstream_error`) |
//! | `layer_pipeline_vector_writes_total` | counter | `pipeline_id`: upstream writes the vectors calls made (fewer than the calls when concurrent calls shared a write) |
//! | `layer_pipeline_vectors_waiting` | gauge | `pipeline_id`: vectors calls queued behind an upstream write in flight, to share the next one |
//! | `layer_pipeline_chunk_reads_total` | counter | `pipeline_id`, `source` (`cache`, `object_store`, `unavailable`) |
//! | `layer_pipeline_chunk_cache_skips_total` | counter | `pipeline_id`: chunk copies the cache refused (stop-writes) |
//! | `layer_pipeline_database_errors_total` | counter | `code` (`database_unavailable`, `database_error`) |
//! | `layer_pipeline_operation_duration_seconds` | histogram | `pipeline_id`, `operation` (`create`, `stage`, `vectors`) |
//! | `layer_pg_pool_connections` | gauge | `state` (`busy`, `idle`: connections of the queue's pool; `waiting`: calls waiting for one), refreshed every 10 s |

use std::time::Instant;

use layer_queue::{Claim, StageMove};

use crate::core::labeled::{self, Kind, labels};

const STAGE_COUNT: &str = "layer_pipeline_stage_count";
const TRANSITIONS: &str = "layer_stage_transitions_total";
const STAGE_DURATION: &str = "layer_stage_duration_seconds";
const INDEXED: &str = "layer_pipeline_indexed_total";
const FAILED: &str = "layer_pipeline_failed_total";
const EXPIRIES: &str = "layer_pipeline_lease_expiries_total";
const VECTORS: &str = "layer_pipeline_vectors_total";
const VECTOR_WRITES: &str = "layer_pipeline_vector_writes_total";
const VECTORS_WAITING: &str = "layer_pipeline_vectors_waiting";
const CHUNK_READS: &str = "layer_pipeline_chunk_reads_total";
const CACHE_SKIPS: &str = "layer_pipeline_chunk_cache_skips_total";
const DB_ERRORS: &str = "layer_pipeline_database_errors_total";
const OPERATION: &str = "layer_pipeline_operation_duration_seconds";
const POOL: &str = "layer_pg_pool_connections";

/// Declares every pipeline metric (idempotent).
pub fn describe() {
    use Kind::{Counter, Gauge, Histogram};
    for (name, kind, help) in [
        (STAGE_COUNT, Gauge, "Documents of a pipeline by stage."),
        (TRANSITIONS, Counter, "Stage moves of pipeline documents."),
        (
            STAGE_DURATION,
            Histogram,
            "Latency of the call that moved documents between stages.",
        ),
        (INDEXED, Counter, "Documents that reached indexed."),
        (FAILED, Counter, "Documents moved to failed, by reason."),
        (
            EXPIRIES,
            Counter,
            "Documents re-claimed after their lease ran out.",
        ),
        (VECTORS, Counter, "Vectors calls by outcome."),
        (
            VECTOR_WRITES,
            Counter,
            "Upstream writes made for vectors calls (concurrent calls share one).",
        ),
        (
            VECTORS_WAITING,
            Gauge,
            "Vectors calls queued behind an upstream write in flight.",
        ),
        (
            CHUNK_READS,
            Counter,
            "Chunk reads by where they were served from.",
        ),
        (
            CACHE_SKIPS,
            Counter,
            "Chunk copies the cache refused (stop-writes).",
        ),
        (
            DB_ERRORS,
            Counter,
            "Pipeline calls that failed on PostgreSQL.",
        ),
        (OPERATION, Histogram, "Latency of pipeline operations."),
        (POOL, Gauge, "PostgreSQL pool connections by state."),
    ] {
        labeled::describe(name, kind, help);
    }
}

/// The queue pool's `(busy, idle, waiting)`.
pub fn pool_use((busy, idle, waiting): (usize, usize, usize)) {
    labeled::set_gauges(
        POOL,
        [("busy", busy), ("idle", idle), ("waiting", waiting)]
            .map(|(state, n)| (labels(&[("state", state)]), n as i64)),
    );
}

/// A pipeline operation's latency.
pub fn operation(pid: &str, operation: &str, started: Instant) {
    let l = labels(&[("pipeline_id", pid), ("operation", operation)]);
    labeled::observe(OPERATION, l, started.elapsed());
}

/// A staging (put chunks): a move to `pending`.
pub fn staged(pid: &str, started: Instant) {
    operation(pid, "stage", started);
}

fn transition(pid: &str, from: &str, to: &str, ok: bool, n: u64, started: Instant) {
    let status = if ok { "ok" } else { "refused" };
    let l = labels(&[
        ("pipeline_id", pid),
        ("from_stage", from),
        ("to_stage", to),
        ("status", status),
    ]);
    labeled::count(TRANSITIONS, l, n);
    let l = labels(&[("pipeline_id", pid), ("from_stage", from), ("to_stage", to)]);
    labeled::observe(STAGE_DURATION, l, started.elapsed());
}

/// A claim that took `n` documents, `expired` of them after a lease ran out.
pub fn claimed(pid: &str, claim: &Claim, n: usize, expired: usize, started: Instant) {
    transition(
        pid,
        &claim.from_stage,
        &claim.claim_stage,
        true,
        n as u64,
        started,
    );
    if expired > 0 {
        labeled::count(EXPIRIES, labels(&[("pipeline_id", pid)]), expired as u64);
    }
}

/// A stage move (`from_stage` is `any` when unguarded).
pub fn stage_moved(pid: &str, mv: &StageMove, ok: bool, started: Instant) {
    let from = mv.guard.from_stage.as_deref().unwrap_or("any");
    let n = mv.document_ids.len() as u64;
    transition(pid, from, &mv.stage, ok, n, started);
    if ok && mv.stage == layer_queue::stages::INDEXED {
        labeled::count(INDEXED, labels(&[("pipeline_id", pid)]), n);
    }
    if ok && mv.stage == layer_queue::stages::FAILED {
        let reason = mv.failure_reason.as_deref().unwrap_or("unknown");
        let l = labels(&[("pipeline_id", pid), ("reason", reason)]);
        labeled::count(FAILED, l, n);
    }
}

/// A vectors call's outcome.
pub fn vectors(pid: &str, status: &str, started: Instant) {
    let l = labels(&[("pipeline_id", pid), ("status", status)]);
    labeled::count(VECTORS, l, 1);
    operation(pid, "vectors", started);
}

/// One upstream write made for vectors calls.
pub fn vector_write(pid: &str) {
    labeled::count(VECTOR_WRITES, labels(&[("pipeline_id", pid)]), 1);
}

/// The vectors calls waiting for a shared upstream write, by pipeline (every pipeline with a
/// lane; the others' series are dropped).
pub fn vectors_waiting<'a>(by_pipeline: impl IntoIterator<Item = (&'a str, usize)>) {
    labeled::set_gauges(
        VECTORS_WAITING,
        by_pipeline.into_iter().map(|(pid, n)| {
            (
                labels(&[("pipeline_id", pid)]),
                i64::try_from(n).unwrap_or(i64::MAX),
            )
        }),
    );
}

/// A document marked indexed by a vectors call (`from`: its stage before, `None` when created).
pub fn indexed(pid: &str, from: Option<&str>) {
    labeled::count(INDEXED, labels(&[("pipeline_id", pid)]), 1);
    let l = labels(&[
        ("pipeline_id", pid),
        ("from_stage", from.unwrap_or("none")),
        ("to_stage", layer_queue::stages::INDEXED),
        ("status", "ok"),
    ]);
    labeled::count(TRANSITIONS, l, 1);
}

/// Where a chunk read was served from.
pub fn chunk_read(pid: &str, source: &str) {
    let l = labels(&[("pipeline_id", pid), ("source", source)]);
    labeled::count(CHUNK_READS, l, 1);
}

/// A chunk copy the cache refused.
pub fn chunk_cache_skipped(pid: &str) {
    labeled::count(CACHE_SKIPS, labels(&[("pipeline_id", pid)]), 1);
}

/// A call that failed on PostgreSQL.
pub fn database_error(code: &str) {
    labeled::count(DB_ERRORS, labels(&[("code", code)]), 1);
}

/// The stage gauge, replaced whole from `(pipeline, stage, count)` rows.
pub fn stage_counts(counts: &[(String, String, i64)]) {
    labeled::set_gauges(
        STAGE_COUNT,
        counts
            .iter()
            .filter(|(p, _, _)| !layer_queue::udfs::is_udf_queue(p))
            .map(|(p, s, n)| (labels(&[("pipeline_id", p), ("stage", s)]), *n)),
    );
}

/// Drops a deleted pipeline's series.
pub fn forget(pid: &str) {
    labeled::forget(&labels(&[("pipeline_id", pid)]));
}
