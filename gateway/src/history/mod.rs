//! Search history and clickstream: every query the gateway serves becomes one search-history
//! entry, and every fetched document whose request carries a search's trace context (a W3C
//! `traceparent`) becomes a clickstream event. Both feeds are written to the object store as
//! JSONL batches (`{feed}/{namespace}/{YYYY-MM-DD}/{timestamp_nanos}.jsonl`) and listed, newest
//! first, by `GET /v2/namespaces/{ns}/search-history` and `/clickstream` (and their `/v1`
//! aliases).
//!
//! Where to start:
//! - [`record_query`] / [`record_fetch`] run on the shards after a response is ready. They only
//!   queue raw material on a bounded channel (`try_send`); when the queue or its byte budget is
//!   full the event is dropped and counted — history never blocks or fails a request;
//! - [`writer`] (control runtime) summarises, stamps, mirrors into the recent [`window`] and
//!   writes batches ([`summary`] builds an entry's `query` summary and served ids);
//! - [`serve`] answers the list routes: [`params`] parses the query string, [`list`] merges the
//!   window with the store. Each call does bounded work ([`list::MAX_OBJECTS_READ`] objects,
//!   a few seconds): a page may hold fewer than `limit` entries (even none) while `next_cursor`
//!   is present — only a missing `next_cursor` ends the listing. The body's `next_cursor` and
//!   the `x-layer-next-cursor` header always agree;
//! - [`entry`] is the record shapes and the storage layout.
//!
//! Durability: a record is in the store at most `flushIntervalMs` (plus a quarter of it) after
//! its response, and a graceful shutdown writes every open batch ([`shutdown`]); a crash loses at
//! most that last interval. Failed writes and drops are counted in
//! `layer_search_history_events_total` / `layer_clickstream_events_total`
//! (`outcome` = `written`, `dropped`, `failed`), objects in `layer_*_objects_total`.

pub mod entry;
pub mod list;
pub mod params;
pub mod summary;
pub mod window;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Principal;
use crate::config::Config;
use crate::error::GatewayError;
use crate::fetch::Served;
use crate::handler::{Control, Resp, SearchContext, ShardCtx, Shared, json_response};
use crate::metrics;
use crate::route::Route;
use crate::store::ObjectStore;
use entry::{ClickEvent, Feed, Record, SearchEntry, now_nanos};
use params::ListQuery;
use window::Window;
use writer::{FetchEvent, Msg, QueryEvent, Writer};

/// Bytes of request and response bodies the queue may hold at once; beyond it events are
/// dropped like on a full queue (the event count alone would let large responses pin gigabytes).
pub const QUEUE_BYTES_BUDGET: usize = 64 << 20;

/// How long a list call waits for the writer to take in what was queued before it (so a list
/// right after a query sees that query). Past it, the list answers with what is there.
const SYNC_WAIT: Duration = Duration::from_secs(1);

/// How long a graceful shutdown waits for the last batches to be written.
pub const SHUTDOWN_FLUSH_WAIT: Duration = Duration::from_secs(10);

/// The history feature's shared state.
#[derive(Debug)]
pub struct History {
    pub store: ObjectStore,
    tx: mpsc::Sender<Msg>,
    /// Taken by [`spawn`].
    rx: Mutex<Option<mpsc::Receiver<Msg>>>,
    queued_bytes: Arc<AtomicUsize>,
    search: Arc<Window<SearchEntry>>,
    clicks: Arc<Window<ClickEvent>>,
    flush_every: Duration,
    max_batch: usize,
}

impl History {
    pub fn new(config: &Config, store: ObjectStore) -> Self {
        let c = &config.gateway.history;
        let (tx, rx) = mpsc::channel(c.queue_capacity.max(1));
        History {
            store,
            tx,
            rx: Mutex::new(Some(rx)),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            search: Arc::new(Window::new(c.recent_window)),
            clicks: Arc::new(Window::new(c.recent_window)),
            flush_every: Duration::from_millis(c.flush_interval_ms),
            max_batch: c.max_batch_entries,
        }
    }

    /// Queues a message without waiting; `false` (and the message dropped) when the queue or
    /// its byte budget is full.
    fn offer(&self, msg: Msg) -> bool {
        let weight = msg.weight();
        let before = self.queued_bytes.fetch_add(weight, Ordering::Relaxed);
        if before + weight > QUEUE_BYTES_BUDGET && weight > 0 {
            self.queued_bytes.fetch_sub(weight, Ordering::Relaxed);
            return false;
        }
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(_) => {
                self.queued_bytes.fetch_sub(weight, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits (bounded) until everything queued before this call is in the recent window.
    async fn sync(&self) {
        let (done, wait) = oneshot::channel();
        let _ = tokio::time::timeout(SYNC_WAIT, async {
            if self.tx.send(Msg::Sync(done)).await.is_ok() {
                let _ = wait.await;
            }
        })
        .await;
    }

    /// Writes every open batch; `false` when that did not finish within `wait`.
    pub async fn flush(&self, wait: Duration) -> bool {
        let (done, finished) = oneshot::channel();
        tokio::time::timeout(wait, async {
            self.tx.send(Msg::Flush(done)).await.is_ok() && finished.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }
}

/// Starts the writer on the control runtime (once; later calls do nothing).
pub fn spawn(shared: &Arc<Shared>, control: &Control) {
    let h = &shared.history;
    let Some(rx) = h.rx.lock().take() else {
        return;
    };
    let writer = Writer::new(
        h.store.clone(),
        h.search.clone(),
        h.clicks.clone(),
        h.queued_bytes.clone(),
        h.flush_every,
        h.max_batch,
    );
    control.handle.spawn(writer.run(rx));
}

/// Writes every open batch before the gateway exits (graceful shutdown; run it on the control
/// runtime after the shards drained, so every served query is already queued).
pub async fn shutdown(shared: &Shared) {
    if !shared.history.flush(SHUTDOWN_FLUSH_WAIT).await {
        tracing::warn!("search history: the last batches were not written before shutdown");
    }
}

/// Records one served query (best-effort; never blocks or fails the query). Only successful
/// queries are history.
#[allow(clippy::too_many_arguments)]
pub fn record_query(
    ctx: &ShardCtx,
    ns: &str,
    search: &SearchContext,
    trace: Option<&HeaderValue>,
    request: &Bytes,
    status: StatusCode,
    response: &Bytes,
    watermark: Option<u64>,
) {
    if !status.is_success() {
        return;
    }
    let event = QueryEvent {
        nanos: now_nanos(),
        ns: ns.to_string(),
        raw_query: search.raw_query.clone(),
        tags: search.tags.clone(),
        traceparent: trace.cloned(),
        request: request.clone(),
        response: response.clone(),
        watermark,
    };
    if !ctx.shared.history.offer(Msg::Query(Box::new(event))) {
        metrics::feature_event(Feed::SearchHistory.metric(), "outcome", "dropped", 1);
    }
}

/// Records fetches that carry a search's trace context (`traceparent`) as clickstream events,
/// one per returned document. `served` is how the request was served: `cache` on a hit,
/// `origin` otherwise.
pub fn record_fetch(ctx: &ShardCtx, ns: &str, headers: &HeaderMap, ids: &[String], served: Served) {
    let Some(traceparent) = headers.get("traceparent") else {
        return;
    };
    if ids.is_empty() {
        return;
    }
    let event = FetchEvent {
        nanos: now_nanos(),
        ns: ns.to_string(),
        traceparent: traceparent.clone(),
        tags: headers.get_all("x-hevlayer-tags").iter().cloned().collect(),
        ids: ids.to_vec(),
        served_from: match served {
            Served::Hit => "cache",
            Served::Miss | Served::MissOnError => "origin",
        },
    };
    if !ctx.shared.history.offer(Msg::Fetch(Box::new(event))) {
        metrics::feature_event(
            Feed::Clickstream.metric(),
            "outcome",
            "dropped",
            ids.len() as u64,
        );
    }
}

/// Serves the history routes (`search_history`, `clickstream`; v1 and v2).
pub async fn serve(
    ctx: &ShardCtx,
    route: Route<'_>,
    _principal: &Principal,
    parts: http::request::Parts,
    _body: Bytes,
) -> Result<Resp, GatewayError> {
    // The namespace exactly as the query route records it (the raw path segment).
    let ns = route.namespace.unwrap_or_default().to_string();
    let q = ListQuery::parse(parts.uri.query().unwrap_or(""))?;
    let shared = ctx.shared.clone();
    shared.history.sync().await;
    // Reading and parsing objects is CPU and I/O a shard should not carry: the walk runs on
    // the control runtime.
    let control = shared.control()?.handle.clone();
    let (items, next_cursor) = match route.name {
        "clickstream" => {
            let task = control.spawn(async move { page::<ClickEvent>(&shared, &ns, &q).await });
            task.await
                .map_err(|e| GatewayError::Internal(format!("history listing: {e}")))??
        }
        _ => {
            let task = control.spawn(async move { page::<SearchEntry>(&shared, &ns, &q).await });
            task.await
                .map_err(|e| GatewayError::Internal(format!("history listing: {e}")))??
        }
    };
    let feed = if route.name == "clickstream" {
        Feed::Clickstream
    } else {
        Feed::SearchHistory
    };
    let mut body = Map::new();
    body.insert(feed.list_key().into(), Value::Array(items));
    let cursor = next_cursor.map(|c| c.to_string());
    if let Some(c) = &cursor {
        body.insert("next_cursor".into(), Value::String(c.clone()));
    }
    let mut resp = json_response(StatusCode::OK, &Value::Object(body));
    // The client takes the cursor from this header when present: it must equal the body's.
    if let Some(c) = cursor
        && let Ok(v) = HeaderValue::from_str(&c)
    {
        resp.headers_mut().insert("x-layer-next-cursor", v);
    }
    Ok(resp)
}

/// Windows of a record type.
trait Windowed: Record {
    fn window(h: &History) -> &Window<Self>;
}

impl Windowed for SearchEntry {
    fn window(h: &History) -> &Window<Self> {
        &h.search
    }
}

impl Windowed for ClickEvent {
    fn window(h: &History) -> &Window<Self> {
        &h.clicks
    }
}

/// One page of `R`s as JSON values, and the next cursor.
async fn page<R: Windowed>(
    shared: &Shared,
    ns: &str,
    q: &ListQuery,
) -> Result<(Vec<Value>, Option<u64>), GatewayError> {
    let h = &shared.history;
    let view = R::window(h).view(ns, |r| q.accepts(r));
    // Bounded: past its budget the walk answers with what it found and a cursor; only a store
    // that gave nothing usable (down, or hung past list::HARD_TIME) is an error.
    let (page, walk) = list::list(&h.store, ns, q, view)
        .await
        .map_err(|e| GatewayError::ObjectStore(e.to_string()))?;
    if walk.cut_short {
        tracing::debug!(
            feed = R::FEED.prefix(),
            ns,
            objects_read = walk.objects_read,
            records = page.records.len(),
            "history page cut short by its budget; next_cursor continues it"
        );
    }
    let items = page
        .records
        .iter()
        .map(|r| serde_json::to_value(&**r).unwrap_or(Value::Null))
        .collect();
    Ok((items, page.next_cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_instead_of_waiting() {
        let mut cfg = Config::default();
        cfg.gateway.history.queue_capacity = 1;
        let store =
            ObjectStore::from_inner(Arc::new(object_store::memory::InMemory::new()), "memory");
        let h = History::new(&cfg, store);
        let (a, _) = oneshot::channel();
        let (b, _) = oneshot::channel();
        assert!(h.offer(Msg::Sync(a)));
        assert!(
            !h.offer(Msg::Sync(b)),
            "no writer drains the queue: the second is dropped"
        );
    }

    #[test]
    fn the_byte_budget_drops_large_events() {
        let store =
            ObjectStore::from_inner(Arc::new(object_store::memory::InMemory::new()), "memory");
        let h = History::new(&Config::default(), store);
        let event = |size: usize| {
            Msg::Query(Box::new(QueryEvent {
                nanos: 1,
                ns: "ns".into(),
                raw_query: None,
                tags: vec![],
                traceparent: None,
                request: Bytes::new(),
                response: Bytes::from(vec![b' '; size]),
                watermark: None,
            }))
        };
        assert!(h.offer(event(QUEUE_BYTES_BUDGET / 2)));
        assert!(!h.offer(event(QUEUE_BYTES_BUDGET / 2 + 1)));
        assert!(h.offer(event(QUEUE_BYTES_BUDGET / 2)));
        assert_eq!(h.queued_bytes.load(Ordering::Relaxed), QUEUE_BYTES_BUDGET);
    }
}
