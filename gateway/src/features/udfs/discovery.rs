//! Discovery: sweeps a UDF's target namespaces for rows that need it and enqueues them.
//!
//! A row needs the UDF when its version marker is missing or differs from `spec.version`, or
//! its `stale_after` marker has passed ([`selection`], ANDed with the spec's `filter`). A sweep
//! pages through each namespace with the shared origin paging ([`crate::sources::origin`]:
//! keyset pages on the id, the namespace's scatter/gather shards; strong reads, see
//! [`sweep_namespace`]), reading the declared `inputs` into each
//! item, and enqueues every page before asking for the next, so memory stays at one page. At
//! most `max_concurrent_scans` namespaces are swept at once. Enqueueing is idempotent
//! ([`layer_queue::items`]): a row already queued or leased is not queued twice, and a row read
//! from before its own completion (a stale read) is not queued again.
//!
//! Sweeps run every `discovery_interval_seconds` (the first at once), on `POST .../discover`,
//! and, with the `write` trigger, after a write through this gateway to a target namespace (at
//! most every [`WRITE_DEBOUNCE`]). One sweep per UDF runs at a time across replicas (claimed in PostgreSQL); a
//! `discover` while one runs asks for another right after it. Progress is reported in status.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use layer_queue::{NewItem, Udf};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use super::spec::{self, Spec, bad};
use super::{Udfs, metrics};
use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::core::http::now_ms;
use crate::sources::origin::{self, OriginScan};
use layer_queue::items::item_key;

/// How long `POST .../discover` waits for its sweep before answering with what it enqueued so
/// far (the sweep goes on; the client's own timeout is 30 s).
pub const DISCOVER_WAIT: Duration = Duration::from_secs(20);
/// How often the loop looks for sweeps that are due.
pub const TICK: Duration = Duration::from_secs(1);
/// The least time between two sweeps the `write` trigger starts.
pub const WRITE_DEBOUNCE: Duration = Duration::from_secs(5);

/// What the discovery loop keeps in memory.
#[derive(Default)]
pub struct Local {
    state: Mutex<LocalState>,
}

#[derive(Default)]
struct LocalState {
    /// Sweeps this gateway is running.
    running: HashSet<String>,
    /// A sweep was asked for while one ran.
    again: HashSet<String>,
    /// When this gateway last started a sweep of the UDF (write trigger, failure backoff).
    started_ms: HashMap<String, u64>,
    /// A failed sweep is tried again after its interval from here.
    failed_ms: HashMap<String, u64>,
}

/// `["Or", [marker missing, marker differs, stale_after passed]]`, ANDed with the spec's filter.
pub fn selection(id: &str, spec: &Spec, now: &str) -> Value {
    let v = spec::version_marker(id);
    let stale = spec::stale_marker(id);
    let needs = json!([
        "Or",
        [
            [v, "Eq", null],
            [v, "NotEq", spec.version],
            // `Lt` matches null in Turbopuffer: only a set marker may have passed.
            ["And", [[stale, "NotEq", null], [stale, "Lt", now]]],
        ]
    ]);
    match &spec.filter {
        Some(f) => json!(["And", [f, needs]]),
        None => needs,
    }
}

/// Now as RFC 3339 UTC with seconds (`2026-12-04T10:00:00Z`), the form `stale_after` compares in.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Asks upstream whether the namespaces exist and the selection (the spec's filter with the
/// markers) is a filter it accepts: one `top_k: 1` query per namespace. 422 naming
/// `spec.target_namespaces` or `spec.filter` otherwise.
pub async fn probe(ctx: &Arc<ShardCtx>, id: &str, spec: &Spec) -> Result<(), GatewayError> {
    let filters = selection(id, spec, &now_rfc3339());
    for ns in &spec.target_namespaces {
        let body = json!({"rank_by": ["id", "asc"], "top_k": 1, "filters": filters,
                          "include_attributes": false});
        match origin::query(&ctx.upstream(ns), "udf_probe", ns, &body).await {
            Ok(_) => {}
            Err(GatewayError::Relay { status, body, .. }) => {
                let text = String::from_utf8_lossy(&body);
                return Err(if status == http::StatusCode::NOT_FOUND {
                    bad(
                        "spec.target_namespaces",
                        format!("namespace {ns} does not exist"),
                    )
                } else {
                    bad(
                        "spec.filter",
                        format!("upstream refused it on {ns}: {text}"),
                    )
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What one sweep did, shared with whoever waits for it.
#[derive(Default)]
struct Tally {
    enqueued: AtomicU64,
    scanned: AtomicU64,
}

/// Sweeps `namespaces` of the UDF; the sweep must already be claimed ([`layer_queue::Queue::begin_sweep`]).
async fn sweep(
    udfs: &Arc<Udfs>,
    udf: &Udf,
    namespaces: &[String],
    page_size: usize,
    tally: &Tally,
) -> Result<Value, GatewayError> {
    let ctx = udfs.control_ctx()?;
    let spec = Spec::parse(&udf.spec)?;
    let width = spec.schedule.max_concurrent_scans.max(1) as usize;
    let per_ns: Mutex<Map<String, Value>> = Mutex::new(Map::new());
    let sweeps: Vec<_> = namespaces
        .iter()
        .map(|ns| sweep_namespace(udfs, &ctx, udf, &spec, ns, page_size, tally, &per_ns))
        .collect();
    let results: Vec<Result<(), GatewayError>> = futures_util::stream::iter(sweeps)
        .buffer_unordered(width)
        .collect()
        .await;
    let progress = json!({
        "namespaces": Value::Object(per_ns.lock().clone()),
        "rows_scanned": tally.scanned.load(Ordering::Relaxed),
        "enqueued": tally.enqueued.load(Ordering::Relaxed),
    });
    for r in results {
        r?;
    }
    Ok(progress)
}

#[allow(clippy::too_many_arguments)]
async fn sweep_namespace(
    udfs: &Arc<Udfs>,
    ctx: &Arc<ShardCtx>,
    udf: &Udf,
    spec: &Spec,
    ns: &str,
    page_size: usize,
    tally: &Tally,
    per_ns: &Mutex<Map<String, Value>>,
) -> Result<(), GatewayError> {
    let started = Instant::now();
    let core = &ctx.core;
    let shards = core.shards_of(ns);
    // Naming an attribute the namespace's schema lacks is a 400 upstream: read the ones it has
    // (the others are `null` in every row's input).
    let known = schema_attributes(ctx, ns).await;
    let read: Vec<&String> = spec
        .inputs
        .iter()
        .filter(|i| *i != "id" && known.as_ref().is_none_or(|k| k.contains(*i)))
        .collect();
    let include = if read.is_empty() {
        json!(false)
    } else {
        json!(read)
    };
    // A strong read, not the stable cut: the cut (`_hevlayer_upserted_at <= watermark`) hides
    // every row written after the watermark, and the UDF's own completions re-stamp the rows it
    // completes, so a sweep right after completions (a version bump, `layer run`) would find
    // none of them. The enqueue rule already tells a stale read from a row that needs work.
    let watermark = None;
    let scan = OriginScan {
        namespace: ns.to_string(),
        filters: Some(selection(&udf.id, spec, &now_rfc3339())),
        include_attributes: include,
        page_size,
        threads: 1,
        shards,
        watermark,
    };
    let (mut scanned, mut enqueued) = (0u64, 0u64);
    for shard in 0..shards {
        let mut after: Option<Value> = None;
        loop {
            // The cut the enqueue rule compares completions with: the moment before the read.
            let cut = now_ms() as i64;
            let body = origin::page_body(&scan, shards, shard, after.as_ref(), page_size);
            let rows = origin::rows_of(
                origin::query(&ctx.upstream(ns), "udf_discovery", ns, &body).await?,
            );
            let full = rows.len() >= page_size;
            after = rows.last().and_then(|r| r.get("id")).cloned();
            let items: Vec<NewItem> = rows.iter().filter_map(|r| item(ns, r, spec)).collect();
            scanned += rows.len() as u64;
            let (id, version, n) = (udf.id.clone(), spec.version.clone(), items.len());
            let queued = udfs
                .db(move |q| async move { q.enqueue_items(&id, &version, cut, &items).await })
                .await?;
            debug_assert!(queued as usize <= n);
            enqueued += queued;
            tally
                .scanned
                .fetch_add(rows.len() as u64, Ordering::Relaxed);
            tally.enqueued.fetch_add(queued, Ordering::Relaxed);
            per_ns.lock().insert(
                ns.to_string(),
                json!({"rows_scanned": scanned, "enqueued": enqueued, "done": false}),
            );
            report(udfs, udf, tally, per_ns).await;
            if !full || after.is_none() {
                break;
            }
        }
    }
    per_ns.lock().insert(
        ns.to_string(),
        json!({"rows_scanned": scanned, "enqueued": enqueued, "done": true}),
    );
    metrics::discovered(&udf.id, ns, scanned, enqueued, started);
    Ok(())
}

/// The attribute names of a namespace's schema; `None` when upstream would not say (then every
/// input is asked for, and upstream's answer decides).
async fn schema_attributes(ctx: &Arc<ShardCtx>, ns: &str) -> Option<HashSet<String>> {
    let schema = origin::upstream_json(
        &ctx.upstream(ns),
        "udf_schema",
        http::Method::GET,
        &format!("/v1/namespaces/{ns}/schema"),
        bytes::Bytes::new(),
        "namespace schema",
    )
    .await
    .ok()?;
    Some(schema.as_object()?.keys().cloned().collect())
}

/// Writes the running sweep's progress to status (best-effort).
async fn report(udfs: &Arc<Udfs>, udf: &Udf, tally: &Tally, per_ns: &Mutex<Map<String, Value>>) {
    let progress = json!({
        "namespaces": Value::Object(per_ns.lock().clone()),
        "rows_scanned": tally.scanned.load(Ordering::Relaxed),
        "enqueued": tally.enqueued.load(Ordering::Relaxed),
    });
    let id = udf.id.clone();
    let _ = udfs
        .db(move |q| async move { q.sweep_progress(&id, &progress).await })
        .await;
}

/// The queue item of a page row: its key and the payload workers get back (`input` holds
/// exactly the declared inputs, `null` for a missing attribute).
fn item(ns: &str, row: &Value, spec: &Spec) -> Option<NewItem> {
    let raw_id = row.get("id")?.clone();
    let id_text = match &raw_id {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let mut input = Map::new();
    for name in &spec.inputs {
        let v = if name == "id" {
            Value::String(id_text.clone())
        } else {
            row.get(name).cloned().unwrap_or(Value::Null)
        };
        input.insert(name.clone(), v);
    }
    Some(NewItem {
        key: item_key(ns, &id_text),
        payload: json!({"namespace": ns, "id": raw_id, "id_text": id_text, "input": input}),
    })
}

/// Runs a claimed sweep to the end and records it.
async fn run_sweep(
    udfs: Arc<Udfs>,
    udf: Udf,
    namespaces: Vec<String>,
    page_size: usize,
    tally: Arc<Tally>,
) -> Result<u64, GatewayError> {
    let started = Instant::now();
    let result = sweep(&udfs, &udf, &namespaces, page_size, &tally).await;
    let (progress, error) = match &result {
        Ok(p) => (p.clone(), None),
        Err(e) => (
            json!({"enqueued": tally.enqueued.load(Ordering::Relaxed)}),
            Some(e.to_string()),
        ),
    };
    let id = udf.id.clone();
    let err = error.clone();
    let finished = udfs
        .db(move |q| async move { q.finish_sweep(&id, &progress, err.as_deref()).await })
        .await;
    {
        let mut st = udfs.sweeps.state.lock();
        st.running.remove(&udf.id);
        if error.is_some() {
            st.failed_ms.insert(udf.id.clone(), now_ms());
        } else {
            st.failed_ms.remove(&udf.id);
        }
    }
    metrics::sweep(&udf.id, error.is_none(), started);
    if let Some(e) = &error {
        tracing::warn!(udf = %udf.id, error = %e, "UDF discovery sweep failed");
    }
    finished?;
    result.map(|_| tally.enqueued.load(Ordering::Relaxed))
}

/// `POST .../discover`: starts a sweep now (or asks for one after the running sweep) and waits
/// for it up to [`DISCOVER_WAIT`]. The answer is `UdfDiscoverResponse`, plus `complete` (the
/// sweep finished within the wait) and `running` (another sweep was running; one follows it).
pub async fn discover_now(
    udfs: &Arc<Udfs>,
    id: &str,
    namespaces: Vec<String>,
    page_size: usize,
) -> Result<Value, GatewayError> {
    let sid = id.to_string();
    let (udf, claimed) = udfs
        .db(move |q| async move {
            let claimed = q.begin_sweep(&sid, Duration::ZERO).await?;
            Ok((q.get_udf(&sid).await?, claimed))
        })
        .await?;
    if !claimed {
        udfs.sweeps.state.lock().again.insert(id.to_string());
        udfs.wake.notify_one();
        return Ok(json!({
            "udf_id": id, "enqueued": 0, "namespaces": namespaces,
            "complete": false, "running": true,
        }));
    }
    {
        let mut st = udfs.sweeps.state.lock();
        st.running.insert(id.to_string());
        st.started_ms.insert(id.to_string(), now_ms());
    }
    let tally = Arc::new(Tally::default());
    let handle = udfs.core.control()?.handle.clone();
    let task = handle.spawn(run_sweep(
        udfs.clone(),
        udf,
        namespaces.clone(),
        page_size,
        tally.clone(),
    ));
    match tokio::time::timeout(DISCOVER_WAIT, task).await {
        Ok(Ok(result)) => {
            let enqueued = result?;
            Ok(json!({
                "udf_id": id, "enqueued": enqueued, "namespaces": namespaces,
                "complete": true, "running": false,
            }))
        }
        Ok(Err(e)) => Err(GatewayError::Internal(format!("discovery: {e}"))),
        Err(_) => Ok(json!({
            "udf_id": id, "enqueued": tally.enqueued.load(Ordering::Relaxed),
            "namespaces": namespaces, "complete": false, "running": true,
        })),
    }
}

/// The discovery loop: every [`TICK`] (or when woken) starts the sweeps that are due.
pub async fn run(udfs: Arc<Udfs>) {
    loop {
        if let Err(e) = start_due(&udfs).await {
            tracing::debug!(error = %e, "UDF discovery loop");
        }
        let _ = tokio::time::timeout(TICK, udfs.wake.notified()).await;
    }
}

async fn start_due(udfs: &Arc<Udfs>) -> Result<(), GatewayError> {
    let all = udfs.db(|q| async move { q.list_udfs().await }).await?;
    udfs.remember_all(&all);
    let now = now_ms();
    for udf in all {
        if udf.paused {
            continue;
        }
        let Ok(spec) = Spec::parse(&udf.spec) else {
            continue;
        };
        let interval = Duration::from_secs(spec.schedule.discovery_interval_seconds);
        let (asked, wrote, backing_off) = {
            let st = udfs.sweeps.state.lock();
            if st.running.contains(&udf.id) {
                continue;
            }
            let started = st.started_ms.get(&udf.id).copied().unwrap_or(0);
            let wrote = spec.on_write()
                && now.saturating_sub(started) >= WRITE_DEBOUNCE.as_millis() as u64
                && spec
                    .target_namespaces
                    .iter()
                    .any(|ns| udfs.core.watcher.last_write_ms(ns) > started);
            let backing_off = st
                .failed_ms
                .get(&udf.id)
                .is_some_and(|t| now.saturating_sub(*t) < interval.as_millis() as u64);
            (st.again.contains(&udf.id), wrote, backing_off)
        };
        let due = spec.discovers()
            && !backing_off
            && udf
                .discovery
                .since_last_ms
                .is_none_or(|ms| ms >= interval.as_millis() as i64);
        if !(due || asked || wrote) {
            continue;
        }
        // The database decides (another replica may be sweeping); an asked-for or
        // write-triggered sweep does not wait for the interval.
        let wait = if asked || wrote {
            Duration::ZERO
        } else {
            interval
        };
        let id = udf.id.clone();
        let claimed = udfs
            .db(move |q| async move { q.begin_sweep(&id, wait).await })
            .await?;
        if !claimed {
            continue;
        }
        {
            let mut st = udfs.sweeps.state.lock();
            st.again.remove(&udf.id);
            st.running.insert(udf.id.clone());
            st.started_ms.insert(udf.id.clone(), now);
        }
        let namespaces = spec.target_namespaces.clone();
        tokio::spawn(run_sweep(
            udfs.clone(),
            udf,
            namespaces,
            origin::MAX_PAGE,
            Arc::new(Tally::default()),
        ));
    }
    Ok(())
}
