//! Push dispatch: for a UDF whose worker is `dispatch: push`, the gateway claims batches itself
//! and POSTs each to the worker's `<url>/run`, then completes and fails the items from the
//! answer, exactly as a pull worker's reports would (the same queue, leases and rules).
//!
//! The wire format (documented in the README and `docs/src/udfs.md`):
//!
//! ```text
//! POST <worker.url>/run            content-type: application/json
//! {"udf_id": "tag-products", "version": "v1", "worker_id": "layer-push-…",
//!  "items": [{"namespace": "products", "id": "p1", "input": {"id": "p1", "title": "…"}}]}
//!
//! 200 {"completed": [{"namespace": "products", "id": "p1", "attributes": {"tags": ["x"]}}],
//!      "failed":    [{"namespace": "products", "id": "p2", "kind": "permanent", "message": "…"}]}
//! ```
//!
//! `completed` items take the `items/complete` shape, `failed` ones the `items/fail` shape. An
//! item the answer does not mention, a non-2xx answer, a body that is not that JSON, and no
//! answer within `worker.timeoutSeconds` are transient failures of the batch's items (retried
//! with the UDF's backoff until `retry.maxAttempts`). Up to `schedule.maxInFlightBatches`
//! batches are in flight per UDF and replica; each holds its items under the UDF's lease.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use layer_queue::items::ItemClaim;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::complete::{self, Failures, Report};
use super::spec::{Dispatch, Spec};
use super::{Udfs, metrics};
use crate::core::upstream::Upstream;
use layer_queue::items::item_key;

/// How long an idle batch slot waits before claiming again.
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// How often the set of push UDFs is reconciled with the registry.
pub const RECONCILE: Duration = Duration::from_secs(2);
/// The connect timeout towards push workers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps `max_in_flight_batches` slot loops per push UDF that is not paused.
pub async fn run(udfs: Arc<Udfs>) {
    let replica = format!("{:016x}", rand::random::<u64>());
    let mut slots: HashMap<String, Vec<JoinHandle<()>>> = HashMap::new();
    loop {
        if let Ok(all) = udfs.db(|q| async move { q.list_udfs().await }).await {
            let mut want: HashMap<String, usize> = HashMap::new();
            for u in &all {
                if let Ok(spec) = Spec::parse(&u.spec)
                    && spec.worker.dispatch == Dispatch::Push
                    && !u.paused
                {
                    want.insert(u.id.clone(), spec.schedule.max_in_flight_batches as usize);
                }
            }
            slots.retain(|id, handles| {
                let keep = want.get(id).is_some_and(|n| *n == handles.len());
                if !keep {
                    handles.iter().for_each(JoinHandle::abort);
                }
                keep
            });
            for (id, n) in want {
                slots.entry(id.clone()).or_insert_with(|| {
                    (0..n)
                        .map(|slot| {
                            let worker = format!("layer-push-{replica}-{slot}");
                            tokio::spawn(slot_loop(udfs.clone(), id.clone(), worker))
                        })
                        .collect()
                });
            }
        }
        tokio::time::sleep(RECONCILE).await;
    }
}

/// One batch at a time: claim, POST, report.
async fn slot_loop(udfs: Arc<Udfs>, id: String, worker: String) {
    let mut client: Option<(String, u64, Upstream)> = None;
    loop {
        let sid = id.clone();
        let Ok(udf) = udfs.db(move |q| async move { q.get_udf(&sid).await }).await else {
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        };
        let Ok(spec) = Spec::parse(&udf.spec) else {
            return;
        };
        let Some(url) = spec.worker.url.clone() else {
            return;
        };
        let timeout = spec.worker.timeout_seconds;
        if client
            .as_ref()
            .is_none_or(|(u, t, _)| *u != url || *t != timeout)
        {
            match Upstream::new(&url, None, CONNECT_TIMEOUT, Duration::from_secs(timeout)) {
                Ok(up) => client = Some((url.clone(), timeout, up)),
                Err(e) => {
                    tracing::warn!(udf = %id, error = %e, "push worker URL unusable");
                    tokio::time::sleep(RECONCILE).await;
                    continue;
                }
            }
        }
        let claim = ItemClaim {
            worker_id: worker.clone(),
            limit: spec.worker.batch_size as u32,
            lease: Duration::from_secs(spec.schedule.lease_seconds),
            max_in_flight: spec.schedule.max_in_flight_batches as i64,
        };
        let sid = id.clone();
        let claimed = match udfs
            .db(move |q| async move { q.claim_items(&sid, &claim).await })
            .await
        {
            Ok(c) if !c.is_empty() => c,
            _ => {
                tokio::time::sleep(IDLE_POLL).await;
                continue;
            }
        };
        metrics::claimed(&id, &claimed);
        let items: Vec<Value> = claimed.iter().map(complete::claimed_item).collect();
        let keys: Vec<String> = items
            .iter()
            .map(|i| {
                item_key(
                    i["namespace"].as_str().unwrap_or(""),
                    i["id"].as_str().unwrap_or(""),
                )
            })
            .collect();
        let body = json!({
            "udf_id": id, "version": spec.version, "worker_id": worker, "items": items,
        });
        let Some((_, _, up)) = &client else { continue };
        let answer = post(up, &body).await;
        let (report, mut failures) = match answer {
            Ok(v) => {
                metrics::push(&id, "ok");
                split(&worker, &v)
            }
            Err(outcome) => {
                metrics::push(&id, outcome);
                (
                    None,
                    Failures {
                        worker_id: worker.clone(),
                        ..Failures::default()
                    },
                )
            }
        };
        // Items the answer did not settle are transient failures.
        let mut settled: std::collections::HashSet<String> = failures
            .transient
            .iter()
            .chain(&failures.permanent)
            .cloned()
            .collect();
        if let Some(r) = &report {
            settled.extend(r.items.iter().map(|d| item_key(&d.namespace, &d.id)));
        }
        failures
            .transient
            .extend(keys.iter().filter(|k| !settled.contains(*k)).cloned());
        if let Some(r) = report
            && let Err(e) = complete::run(&udfs, &id, r).await
        {
            tracing::warn!(udf = %id, error = %e, "push completion failed; the items stay leased");
        }
        if (!failures.transient.is_empty() || !failures.permanent.is_empty())
            && let Err(e) = complete::fail(&udfs, &udf, failures).await
        {
            tracing::warn!(udf = %id, error = %e, "push failure report failed");
        }
    }
}

/// POSTs a batch; the parsed answer, or the outcome label of a failure.
async fn post(up: &Upstream, body: &Value) -> Result<Value, &'static str> {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let sent = up
        .send(
            "udf_push",
            Method::POST,
            "/run",
            &headers,
            Bytes::from(body.to_string()),
        )
        .await;
    match sent {
        Err(crate::core::error::GatewayError::UpstreamTimeout(_)) => Err("timeout"),
        Err(_) => Err("error"),
        Ok(r) if !r.status.is_success() => Err("error"),
        Ok(r) => serde_json::from_slice(&r.body).map_err(|_| "error"),
    }
}

/// The answer's completions and failures (a malformed part settles nothing).
fn split(worker: &str, answer: &Value) -> (Option<Report>, Failures) {
    let completed = answer
        .get("completed")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let report = Report::parse(&json!({"worker_id": worker, "items": completed})).ok();
    let failed = answer.get("failed").cloned().unwrap_or_else(|| json!([]));
    let failures =
        Failures::parse(&json!({"worker_id": worker, "items": failed})).unwrap_or_else(|_| {
            Failures {
                worker_id: worker.to_string(),
                ..Failures::default()
            }
        });
    (report, failures)
}
