//! Group commit for pipeline vectors: concurrent `PUT …/vectors` calls of one pipeline share
//! upstream writes.
//!
//! Each call's rows are checked whole first (`vectors::upstream_rows`), then handed to the
//! pipeline's lane. While fewer than [`MAX_WRITES_IN_FLIGHT`] writes of that lane are in flight,
//! a drainer task starts at once and writes this call's rows alone (no waiting for a batch to
//! form, no added latency, and as many writes in flight as a client writing straight to upstream
//! would have); calls arriving while that many are in flight queue up, and the first
//! drainer to return writes them together, up to [`MAX_BATCH_ROWS`] rows and [`MAX_BATCH_BYTES`]
//! bytes per write. So under load one upstream write carries several documents (fewer requests
//! for the upstream to parse and, on Turbopuffer, fewer billed writes), and alone a call costs
//! what it did. The bound matters with a slow upstream: with one write in flight per lane, a
//! pipeline's throughput would be one batch per upstream round trip (measured: half the direct
//! rate at 20 ms per write with 8 writers), so it is set above what a typical embed pool keeps
//! in flight; past it (a large pool's burst), calls share writes instead of piling more
//! concurrent writes onto one namespace.
//!
//! Every call gets its own answer: a batch that upstream accepts is accepted for each of its
//! calls; one it answers 5xx (or not at all) fails each of them with 502, and each document stays
//! leased for re-claim, as a lone write would; one it refuses with a 4xx (say a vector whose
//! dimension the namespace refuses) is written again call by call, so only the call whose rows
//! are wrong gets upstream's refusal. The stamp, the watcher's in-flight mark and the cache
//! invalidations are the shared write path's, per upstream write ([`crate::sources::writes`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::sync::oneshot;

use super::metrics;
use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::sources::writes;

/// Upstream writes one lane keeps in flight before calls queue for a shared write. Measured
/// (`bench/pipelines.sh`, 8 writers): with the upstream answering a write in 20 ms, a bound of 1
/// cost 2.0x the time of writing straight to upstream, 4 cost 1.24x, and a bound above the
/// writers' count 1.06x; with an upstream answering at once, batching saved no time (the gateway's
/// per-call work, not the upstream request, is the cost there). So the bound is above what a
/// typical embed pool keeps in flight, and batching is what bounds a large pool's fan-in.
pub const MAX_WRITES_IN_FLIGHT: usize = 16;
/// The most rows one batched upstream write carries.
pub const MAX_BATCH_ROWS: usize = 10_000;
/// The most bytes of rows one batched upstream write carries (a single call may exceed it: it
/// is then written alone).
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// What upstream answered a write, as each call of its batch sees it.
#[derive(Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Calls whose rows went up in the same upstream write as this call's (1 when alone).
    pub batched: usize,
}

/// A lane's key: the pipeline, the write's target and its distance metric (a pipeline deleted and
/// re-created with another target gets another lane).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Lane {
    pipeline_id: String,
    namespace: String,
    distance_metric: String,
}

struct Item {
    /// The call's rows: comma-separated row objects, no brackets.
    rows: Vec<u8>,
    count: usize,
    reply: oneshot::Sender<Result<Answer, GatewayError>>,
}

#[derive(Default)]
struct Queue {
    items: Vec<Item>,
    /// Drainer tasks running (each has at most one write in flight).
    drainers: usize,
}

/// The lanes with calls waiting or a write in flight. A lane is in the map exactly while one of
/// its drainers runs.
#[derive(Default)]
pub struct Batcher {
    lanes: Mutex<HashMap<Lane, Queue>>,
}

impl Batcher {
    /// Writes `rows` (from `vectors::upstream_rows`) into `namespace`, alone or with other
    /// calls' rows (see the module docs), and returns upstream's answer to that write.
    pub async fn write(
        self: &Arc<Self>,
        ctx: &Arc<ShardCtx>,
        pipeline_id: &str,
        namespace: &str,
        distance_metric: &str,
        rows: Vec<u8>,
        count: usize,
    ) -> Result<Answer, GatewayError> {
        let lane = Lane {
            pipeline_id: pipeline_id.to_string(),
            namespace: namespace.to_string(),
            distance_metric: distance_metric.to_string(),
        };
        let (reply, answer) = oneshot::channel();
        let item = Item { rows, count, reply };
        let start = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            let queue = lanes.entry(lane.clone()).or_default();
            if queue.drainers < MAX_WRITES_IN_FLIGHT {
                // A write of its own, at once: it never waits for a batch to form.
                queue.drainers += 1;
                Some(item)
            } else {
                queue.items.push(item);
                metrics::vectors_waiting(waiting(&lanes));
                None
            }
        };
        if let Some(first) = start {
            let (this, ctx) = (self.clone(), ctx.clone());
            tokio::spawn(async move { this.drain(&ctx, lane, first).await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(GatewayError::Internal(
                "the vectors write was dropped before upstream answered".into(),
            ))
        })
    }

    /// Writes `first` alone, then the lane's queued calls until none are left; the last drainer
    /// out removes the lane.
    async fn drain(&self, ctx: &Arc<ShardCtx>, lane: Lane, first: Item) {
        // Should the task end early (a panic, the runtime shutting down), the guard gives up its
        // place; when it was the lane's last drainer it removes the lane, so the waiting calls
        // get an error instead of waiting forever, and the next call starts a new drainer.
        let mut guard = LaneGuard {
            batcher: self,
            lane: &lane,
            armed: true,
        };
        self.write_batch(ctx, &lane, vec![first]).await;
        loop {
            let batch = {
                let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
                let Some(queue) = lanes.get_mut(&lane) else {
                    guard.armed = false;
                    return;
                };
                if queue.items.is_empty() {
                    queue.drainers -= 1;
                    if queue.drainers == 0 {
                        lanes.remove(&lane);
                    }
                    metrics::vectors_waiting(waiting(&lanes));
                    // Counted out under the lock: a call after this starts a new drainer, whose
                    // place this one's guard must not give up.
                    guard.armed = false;
                    return;
                }
                // Within the body limit too (half of it: the stamp adds to every row), so a batch
                // of calls that each fit is never refused for its size.
                let max_bytes = MAX_BATCH_BYTES.min(ctx.core.limits.max_body_bytes / 2);
                let batch = take_batch(&mut queue.items, max_bytes);
                metrics::vectors_waiting(waiting(&lanes));
                batch
            };
            self.write_batch(ctx, &lane, batch).await;
        }
    }

    async fn write_batch(&self, ctx: &Arc<ShardCtx>, lane: &Lane, batch: Vec<Item>) {
        let parts: Vec<&[u8]> = batch.iter().map(|i| i.rows.as_slice()).collect();
        let body = upsert_body(&parts, &lane.distance_metric);
        let answer = send(ctx, lane, body, batch.len()).await;
        if batch.len() > 1 && refuses_content(&answer) {
            // Find the call(s) whose rows are refused: each alone, in order.
            for item in batch {
                let body = upsert_body(&[&item.rows], &lane.distance_metric);
                let _ = item.reply.send(send(ctx, lane, body, 1).await);
            }
            return;
        }
        match answer {
            Ok(a) => {
                for item in batch {
                    let _ = item.reply.send(Ok(a.clone()));
                }
            }
            Err(e) => {
                // GatewayError is not Clone: every call gets the same kind of error.
                let mut rest = batch.into_iter();
                let first = rest.next();
                for item in rest {
                    let _ = item.reply.send(Err(same_error(&e)));
                }
                if let Some(first) = first {
                    let _ = first.reply.send(Err(e));
                }
            }
        }
    }
}

/// Whether a shared write's outcome is a refusal of its content, which writing the calls one by
/// one can pin on the call(s) at fault: upstream's 400, 413 or 422, or the gateway's own
/// refusal of the body (a reserved attribute, a size). Not a 429, an auth refusal or a timeout:
/// those concern the write, not a call's rows, and re-sending each call would only add load.
fn refuses_content(answer: &Result<Answer, GatewayError>) -> bool {
    let status = match answer {
        Ok(a) => a.status,
        Err(e) => e.status(),
    };
    matches!(
        status,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY
    )
}

/// Another call's copy of a shared write's error: the same kind (and so status) where the
/// error is about upstream, else an internal error with the same message.
fn same_error(e: &GatewayError) -> GatewayError {
    match e {
        GatewayError::Upstream(m) => GatewayError::Upstream(m.clone()),
        GatewayError::UpstreamTimeout(ms) => GatewayError::UpstreamTimeout(*ms),
        GatewayError::Overloaded(m) => GatewayError::Overloaded(m.clone()),
        other => GatewayError::Internal(other.to_string()),
    }
}

/// Removes its lane when a drainer ends before emptying it (disarmed on the normal way out).
struct LaneGuard<'a> {
    batcher: &'a Batcher,
    lane: &'a Lane,
    armed: bool,
}

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut lanes = self.batcher.lanes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(queue) = lanes.get_mut(self.lane) {
                queue.drainers = queue.drainers.saturating_sub(1);
                if queue.drainers == 0 {
                    lanes.remove(self.lane);
                }
            }
            metrics::vectors_waiting(waiting(&lanes));
        }
    }
}

/// Calls waiting behind an upstream write in flight, by pipeline.
fn waiting(lanes: &HashMap<Lane, Queue>) -> HashMap<&str, usize> {
    let mut by_pipeline = HashMap::new();
    for (lane, queue) in lanes {
        *by_pipeline.entry(lane.pipeline_id.as_str()).or_default() += queue.items.len();
    }
    by_pipeline
}

/// Takes the longest prefix of `items` within the batch bounds (at least one item).
fn take_batch(items: &mut Vec<Item>, max_bytes: usize) -> Vec<Item> {
    let (mut rows, mut bytes, mut n) = (0usize, 0usize, 0usize);
    for item in items.iter() {
        if n > 0 && (rows + item.count > MAX_BATCH_ROWS || bytes + item.rows.len() > max_bytes) {
            break;
        }
        rows += item.count;
        bytes += item.rows.len();
        n += 1;
    }
    items.drain(..n).collect()
}

/// `{"upsert_rows":[<parts joined by commas>],"distance_metric":<metric>}`. Each part is a
/// call's rows, spliced from a body validated whole (`vectors.rs`), whose keys cannot repeat
/// (`id` and `vector` are refused among the attributes): the join is valid by construction.
pub fn upsert_body(parts: &[&[u8]], distance_metric: &str) -> scatter::Validated<Bytes> {
    let len: usize = parts.iter().map(|p| p.len() + 1).sum();
    let mut out = Vec::with_capacity(len + 64 + distance_metric.len());
    out.extend_from_slice(br#"{"upsert_rows":["#);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(part);
    }
    out.extend_from_slice(br#"],"distance_metric":"#);
    out.extend_from_slice(
        serde_json::Value::from(distance_metric)
            .to_string()
            .as_bytes(),
    );
    out.push(b'}');
    scatter::Validated::serialized(Bytes::from(out))
}

async fn send(
    ctx: &Arc<ShardCtx>,
    lane: &Lane,
    body: scatter::Validated<Bytes>,
    batched: usize,
) -> Result<Answer, GatewayError> {
    metrics::vector_write(&lane.pipeline_id);
    // Built by `upsert_body`: the stamper walks only its top level.
    let up = writes::write(ctx, "pipeline_vectors", &lane.namespace, body).await?;
    Ok(Answer {
        status: up.status,
        headers: up.headers,
        body: up.body,
        batched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(rows: &str, count: usize) -> Item {
        Item {
            rows: rows.as_bytes().to_vec(),
            count,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn bodies_join_the_calls_rows() {
        let body = upsert_body(
            &[br#"{"id":"a"}"#, br#"{"id":"b"},{"id":"c"}"#],
            "cosine_distance",
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"upsert_rows": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
                               "distance_metric": "cosine_distance"})
        );
    }

    #[test]
    fn batches_stop_at_the_bounds_but_always_take_one() {
        let mut items = vec![item("x", MAX_BATCH_ROWS - 1), item("y", 1), item("z", 1)];
        assert_eq!(take_batch(&mut items, MAX_BATCH_BYTES).len(), 2);
        assert_eq!(take_batch(&mut items, MAX_BATCH_BYTES).len(), 1);
        assert!(items.is_empty());
        let big = "r".repeat(MAX_BATCH_BYTES + 1);
        let mut items = vec![item(&big, 1), item("y", 1)];
        assert_eq!(
            take_batch(&mut items, MAX_BATCH_BYTES).len(),
            1,
            "an oversize call goes alone"
        );
        assert_eq!(take_batch(&mut items, MAX_BATCH_BYTES).len(), 1);
        let mut items = vec![item("ab", 1), item("cd", 1), item("e", 1)];
        assert_eq!(take_batch(&mut items, 3).len(), 1, "the byte bound given");
    }
}
