//! Search history and clickstream: every query the gateway serves becomes one search-history
//! entry, and every fetched document whose request carries a search's trace context (a W3C
//! `traceparent`) becomes a clickstream event. Both feeds are written to the object store as
//! JSONL batches (`{feed}/{namespace}/{YYYY-MM-DD}/{timestamp_nanos}.jsonl`) and listed, newest
//! first, by `GET /v2/namespaces/{ns}/search-history` and `/clickstream` (and their `/v1`
//! aliases).
//!
//! Where to start:
//! - [`History`] is the [`Recorder`] the query and fetch routes report to; its methods run on
//!   the shards after a response is ready. They only
//!   queue raw material on a bounded channel (`try_send`); when the queue or its byte budget is
//!   full the event is dropped and counted — history never blocks or fails a request;
//! - [`writer`] (control runtime) summarises, stamps, mirrors into the recent [`window`] and
//!   writes batches ([`summary`] builds an entry's `query` summary and served ids);
//! - [`History::routes`] answers the list routes: [`params`] parses the query string, [`list`] merges the
//!   window with the store. Each call does bounded work ([`list::MAX_OBJECTS_READ`] objects,
//!   a few seconds): a page may hold fewer than `limit` entries (even none) while `next_cursor`
//!   is present — only a missing `next_cursor` ends the listing. The body's `next_cursor` and
//!   the `x-layer-next-cursor` header always agree;
//! - [`entry`] is the record shapes and the storage layout.
//!
//! Durability: a record is in the store at most `flushIntervalMs` (plus a quarter of it) after
//! its response, and a graceful shutdown writes every open batch ([`Background::stop`]); a crash loses at
//! most that last interval. A failed write keeps its batch for a retry (see [`writer`]), so an
//! object-store outage delays history without losing it. Outcomes are counted in
//! `layer_search_history_events_total` / `layer_clickstream_events_total`
//! (`outcome` = `written`, `dropped`, `retried`, `failed`), objects in `layer_*_objects_total`,
//! held entries in the `layer_*_pending_entries` gauges.

pub mod entry;
pub mod list;
pub mod params;
pub mod summary;
pub mod window;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use http::Method;

use crate::core::config::{Config, Scope};
use crate::core::error::GatewayError;
use crate::core::http::{Resp, TRACEPARENT, json_response};
use crate::core::metrics;
use crate::core::record::{FetchRecord, QueryRecord, Recorder, Served, TAGS};
use crate::core::router::{Req, Route, handler};
use crate::core::runtime::Background;
use crate::core::store::ObjectStore;
use crate::core::{Control, ShardCtx};
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
    pub fn new(config: &Config, store: ObjectStore) -> Arc<Self> {
        for feed in [Feed::SearchHistory, Feed::Clickstream] {
            crate::core::metrics::declare_event(feed.metric());
            crate::core::metrics::declare_event(feed.object_metric());
            crate::core::metrics::declare_gauge(feed.pending_metric());
        }
        Arc::new(Self::unshared(config, store))
    }

    fn unshared(config: &Config, store: ObjectStore) -> Self {
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

impl Background for History {
    /// Starts the writer on the control runtime (once; later calls do nothing).
    fn start(self: Arc<Self>, control: &Control) {
        let Some(rx) = self.rx.lock().take() else {
            return;
        };
        let writer = Writer::new(
            self.store.clone(),
            self.search.clone(),
            self.clicks.clone(),
            self.queued_bytes.clone(),
            self.flush_every,
            self.max_batch,
        );
        control.handle.spawn(writer.run(rx));
    }

    /// Writes every open batch before the gateway exits (graceful shutdown, after the shards
    /// drained, so every served query is already queued).
    fn stop(self: Arc<Self>) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(async move {
            if !self.flush(SHUTDOWN_FLUSH_WAIT).await {
                tracing::warn!("search history: the last batches were not written before shutdown");
            }
        })
    }
}

impl Recorder for History {
    /// Records one served query (best-effort; never blocks or fails the query). Only successful
    /// queries are history.
    fn record_query(&self, r: QueryRecord<'_>) {
        if !r.status.is_success() {
            return;
        }
        let event = QueryEvent {
            nanos: now_nanos(),
            ns: r.ns.into(),
            raw_query: r.search.raw_query.clone(),
            tags: r.search.tags.clone(),
            traceparent: r.trace.cloned(),
            request: r.request.clone(),
            request_checked: r.request_checked,
            response: r.response.clone(),
            watermark: r.watermark,
        };
        if !self.offer(Msg::Query(event)) {
            metrics::feature_event(Feed::SearchHistory.metric(), "outcome", "dropped", 1);
        }
    }

    /// Records fetches that carry a search's trace context (`traceparent`) as clickstream
    /// events, one per returned document; `served_from` is `cache` on a hit, `origin` otherwise.
    fn record_fetch(&self, r: FetchRecord<'_>) {
        let Some(traceparent) = r.headers.get(TRACEPARENT) else {
            return;
        };
        if r.ids.is_empty() {
            return;
        }
        let event = FetchEvent {
            nanos: now_nanos(),
            ns: r.ns.into(),
            traceparent: traceparent.clone(),
            tags: r.headers.get_all(TAGS).iter().cloned().collect(),
            ids: r.ids.to_vec(),
            served_from: match r.served {
                Served::Hit => "cache",
                Served::Miss | Served::MissOnError => "origin",
            },
        };
        if !self.offer(Msg::Fetch(Box::new(event))) {
            metrics::feature_event(
                Feed::Clickstream.metric(),
                "outcome",
                "dropped",
                r.ids.len() as u64,
            );
        }
    }
}

impl History {
    /// The list routes (`/v1` aliases included).
    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        let search = || handler(self.clone(), History::search_history);
        let clicks = || handler(self.clone(), History::clickstream);
        vec![
            Route::new(
                Method::GET,
                "/v2/namespaces/{ns}/search-history",
                "search_history",
                Scope::Read,
                search(),
            ),
            Route::new(
                Method::GET,
                "/v1/namespaces/{ns}/search-history",
                "search_history",
                Scope::Read,
                search(),
            ),
            Route::new(
                Method::GET,
                "/v2/namespaces/{ns}/clickstream",
                "clickstream",
                Scope::Read,
                clicks(),
            ),
            Route::new(
                Method::GET,
                "/v1/namespaces/{ns}/clickstream",
                "clickstream",
                Scope::Read,
                clicks(),
            ),
        ]
    }

    async fn search_history(
        self: Arc<Self>,
        ctx: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        self.list_feed::<SearchEntry>(&ctx, &req).await
    }

    async fn clickstream(
        self: Arc<Self>,
        ctx: Arc<ShardCtx>,
        req: Req,
    ) -> Result<Resp, GatewayError> {
        self.list_feed::<ClickEvent>(&ctx, &req).await
    }

    /// One page of a feed, newest first.
    async fn list_feed<R: Windowed + Send + Sync + 'static>(
        self: &Arc<Self>,
        ctx: &ShardCtx,
        req: &Req,
    ) -> Result<Resp, GatewayError> {
        // The namespace exactly as the query route records it (the raw path segment).
        let ns = req.ns().to_string();
        let q = ListQuery::parse(req.query())?;
        self.sync().await;
        // Reading and parsing objects is CPU and I/O a shard should not carry: the walk runs on
        // the control runtime.
        let control = ctx.core.control()?.handle.clone();
        let me = self.clone();
        let task = control.spawn(async move { page::<R>(&me, &ns, &q).await });
        let (items, next_cursor) = task
            .await
            .map_err(|e| GatewayError::Internal(format!("history listing: {e}")))??;
        let mut body = Map::new();
        body.insert(R::FEED.list_key().into(), Value::Array(items));
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
    h: &History,
    ns: &str,
    q: &ListQuery,
) -> Result<(Vec<Value>, Option<u64>), GatewayError> {
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
    use bytes::Bytes;

    #[test]
    fn a_full_queue_drops_instead_of_waiting() {
        let mut cfg = Config::default();
        cfg.gateway.history.queue_capacity = 1;
        let store =
            ObjectStore::from_inner(Arc::new(object_store::memory::InMemory::new()), "memory");
        let h = History::unshared(&cfg, store);
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
        let h = History::unshared(&Config::default(), store);
        let event = |size: usize| {
            Msg::Query(QueryEvent {
                nanos: 1,
                ns: "ns".into(),
                raw_query: None,
                tags: vec![],
                traceparent: None,
                request: Bytes::new(),
                request_checked: false,
                response: Bytes::from(vec![b' '; size]),
                watermark: None,
            })
        };
        assert!(h.offer(event(QUEUE_BYTES_BUDGET / 2)));
        assert!(!h.offer(event(QUEUE_BYTES_BUDGET / 2 + 1)));
        assert!(h.offer(event(QUEUE_BYTES_BUDGET / 2)));
        assert_eq!(h.queued_bytes.load(Ordering::Relaxed), QUEUE_BYTES_BUDGET);
    }
}
