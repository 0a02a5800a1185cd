//! Per-operation metrics of a networked cache tier (the Aerospike one: `open_aerospike` wraps it
//! in [`TimedTier`]), named as in the metric catalog:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `layer_aerospike_op_duration_seconds` | histogram | `operation` (`get`, `put`, `delete`, `clear_namespace`, `scan`), `set` (`documents`, `chunks`, `snapshots`, `blobs`), `status` (`ok`, `aerospike_stop_writes`, or the error's kind: `unavailable`, `backend`, ...) |
//! | `layer_aerospike_inflight` | gauge | operations in flight |
//!
//! `status="aerospike_stop_writes"` is the failure-modes runbook's stop-writes signal: a write the
//! server refused because the namespace is in stop-writes (Aerospike's "operation not allowed at
//! this time", result code 22, or an error naming stop-writes).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use layer_cache::{CacheError, Health, ScanCursor, ScanPage, Set, Stored, Tier, TierFuture};

use super::labeled::{self, Kind, labels};
use super::metrics;

const OP_DURATION: &str = "layer_aerospike_op_duration_seconds";
const INFLIGHT: &str = "layer_aerospike_inflight";

/// `inner`, with every operation timed.
pub struct TimedTier {
    inner: Arc<dyn Tier>,
}

impl TimedTier {
    /// Wraps `inner` and declares its metric families.
    pub fn new(inner: Arc<dyn Tier>) -> TimedTier {
        labeled::describe(OP_DURATION, Kind::Histogram, "Aerospike operation latency.");
        metrics::declare_gauge(INFLIGHT);
        TimedTier { inner }
    }
}

/// The `status` label of an outcome.
fn status(r: &Result<(), &CacheError>) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(CacheError::Backend(m)) if is_stop_writes(m) => "aerospike_stop_writes",
        Err(e) => e.metric_label(),
    }
}

/// Whether a backend error is the server's stop-writes refusal.
fn is_stop_writes(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("stop-writes")
        || m.contains("stop writes")
        || m.contains("stop_writes")
        || m.contains("not allowed at this time")
}

fn timed<T: Send + 'static>(
    operation: &'static str,
    set: Set,
    fut: TierFuture<T>,
) -> TierFuture<T> {
    metrics::feature_gauge_add(INFLIGHT, 1);
    let started = Instant::now();
    Box::pin(async move {
        let r = fut.await;
        metrics::feature_gauge_add(INFLIGHT, -1);
        let s = status(&r.as_ref().map(|_| ()));
        let l = labels(&[
            ("operation", operation),
            ("set", set.as_str()),
            ("status", s),
        ]);
        labeled::observe(OP_DURATION, l, started.elapsed());
        r
    })
}

impl Tier for TimedTier {
    fn get(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Bytes>> {
        timed("get", set, self.inner.get(set, ns, id))
    }
    fn put(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        timed("put", set, self.inner.put(set, ns, id, value))
    }
    fn put_vouched(&self, set: Set, ns: &str, id: &str, value: Bytes) -> TierFuture<()> {
        timed("put", set, self.inner.put_vouched(set, ns, id, value))
    }
    fn get_stored(&self, set: Set, ns: &str, id: &str) -> TierFuture<Option<Stored>> {
        timed("get", set, self.inner.get_stored(set, ns, id))
    }
    fn delete(&self, set: Set, ns: &str, id: &str) -> TierFuture<()> {
        timed("delete", set, self.inner.delete(set, ns, id))
    }
    fn delete_batch(&self, set: Set, ns: &str, ids: &[String]) -> Option<TierFuture<()>> {
        let batch = self.inner.delete_batch(set, ns, ids)?;
        Some(timed("delete", set, batch))
    }
    fn clear_namespace(&self, set: Set, ns: &str) -> TierFuture<()> {
        timed("clear_namespace", set, self.inner.clear_namespace(set, ns))
    }
    fn scan(
        &self,
        set: Set,
        ns: &str,
        cursor: Option<ScanCursor>,
        limit: usize,
    ) -> TierFuture<ScanPage> {
        timed("scan", set, self.inner.scan(set, ns, cursor, limit))
    }
    fn health(&self) -> Health {
        self.inner.health()
    }
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tier in stop-writes: reads answer, writes are refused as Aerospike refuses them.
    struct StopWrites;

    impl Tier for StopWrites {
        fn get(&self, _: Set, _: &str, _: &str) -> TierFuture<Option<Bytes>> {
            Box::pin(async { Ok(None) })
        }
        fn put(&self, _: Set, _: &str, _: &str, _: Bytes) -> TierFuture<()> {
            Box::pin(async {
                Err(CacheError::Backend(
                    "Server error: Operation not allowed at this time".into(),
                ))
            })
        }
        fn delete(&self, _: Set, _: &str, _: &str) -> TierFuture<()> {
            Box::pin(async { Err(CacheError::Unavailable("down".into())) })
        }
        fn clear_namespace(&self, _: Set, _: &str) -> TierFuture<()> {
            Box::pin(async { Ok(()) })
        }
        fn scan(&self, _: Set, _: &str, _: Option<ScanCursor>, _: usize) -> TierFuture<ScanPage> {
            Box::pin(async { Err(CacheError::Disabled) })
        }
        fn health(&self) -> Health {
            layer_cache::DisabledTier.health()
        }
        fn name(&self) -> &'static str {
            "stop-writes"
        }
    }

    #[test]
    fn operations_are_timed_with_the_stop_writes_status() {
        let t = TimedTier::new(Arc::new(StopWrites));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(t.get(Set::Chunks, "ns", "a").await.unwrap().is_none());
            assert!(t.put(Set::Chunks, "ns", "a", Bytes::new()).await.is_err());
            assert!(t.delete(Set::Documents, "ns", "a").await.is_err());
        });
        let text = labeled::render();
        for l in [
            r#"operation="get",set="chunks",status="ok""#,
            r#"operation="put",set="chunks",status="aerospike_stop_writes""#,
            r#"operation="delete",set="documents",status="unavailable""#,
        ] {
            assert!(
                text.contains(&format!(
                    "layer_aerospike_op_duration_seconds_count{{{l}}} 1"
                )),
                "{l}: {text}"
            );
        }
        let all = metrics::render(1);
        assert!(all.contains("layer_aerospike_inflight 0"), "{all}");
    }
}
