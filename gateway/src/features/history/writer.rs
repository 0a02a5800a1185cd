//! The history writer: one task on the control runtime that turns queued events into records,
//! mirrors them into the recent window and writes them to the object store in JSONL batches.
//! Start at [`Writer::run`].
//!
//! Shards only hand raw material over ([`Msg`]: the request and response `Bytes`, which are
//! reference-counted, and a few header values); parsing and summarising happen here, so a query
//! pays for a channel send and nothing else.
//!
//! Batching: one open batch per (feed, namespace). A batch is written when it holds
//! `maxBatchEntries` records, when it is `flushIntervalMs` old (checked every quarter interval),
//! before it would span more than [`MAX_BATCH_SPAN_NANOS`], and on a flush request (graceful
//! shutdown). Each write is its own task, at most [`MAX_PUTS`] at a time; when the store is slow
//! the writer waits for a slot, the queue fills up and new events are dropped and counted — the
//! query path never waits.
//!
//! A failed or timed-out write (after `object_store`'s own retries of transient S3 errors) keeps
//! its batch in memory and writes it again later, under the same key, until the store takes it:
//! an outage of the object store delays history, it does not lose it. Retries start
//! [`RETRY_FIRST_PAUSE`] after a failure and back off to [`RETRY_MAX_PAUSE`]; a flush request
//! (graceful shutdown) retries at once. The entries held are counted as `retried` when their
//! first write fails and shown by the `*_pending_entries` gauge until written. They are given up
//! (counted `failed`) only when more than [`RETRY_BYTES_BUDGET`] bytes are already held, or
//! when the writer stops with the store still down.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use compact_str::CompactString;
use http::HeaderValue;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::entry::{
    ClickEvent, Feed, MAX_BATCH_SPAN_NANOS, Record, SearchEntry, object_key, rfc3339, trace_id_of,
};
use super::summary::{Scratch, summarize};
use super::window::Window;
use crate::core::metrics;
use crate::core::store::ObjectStore;

/// Object writes in flight at once.
pub const MAX_PUTS: u32 = 4;

/// Bytes the first batch's body starts with.
const FIRST_BATCH_BYTES: usize = 16 << 10;

/// The most a batch's body starts with, whatever its namespace's last full batch's size.
const MAX_BATCH_START_BYTES: usize = 8 << 20;

/// Pause between drains of the queue (see [`Writer::run`]); also the longest a record waits
/// before it reaches the recent window.
const DRAIN_PAUSE: Duration = Duration::from_millis(5);

/// Messages taken off the queue per drain.
const DRAIN_MAX: usize = 1024;

/// Longest one object write may take before it counts as failed (frees its slot even when the
/// store hangs).
const PUT_TIMEOUT: Duration = Duration::from_secs(20);

/// Bytes of failed batches held for a retry; a batch failing beyond it is given up.
pub const RETRY_BYTES_BUDGET: usize = 64 << 20;

/// Pause before the first retry of failed batches; it doubles with consecutive failures.
pub const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(500);

/// Longest pause between retries while the store keeps failing.
pub const RETRY_MAX_PAUSE: Duration = Duration::from_secs(10);

/// What shards send the writer. A query's event travels in the queue's own slot (not boxed):
/// the queue's blocks are reused, so a query hands it over without allocating.
#[derive(Debug)]
pub enum Msg {
    Query(QueryEvent),
    Fetch(Box<FetchEvent>),
    /// Answered once every message sent before it is in the recent window.
    Sync(oneshot::Sender<()>),
    /// Answered once every batch is written (or failed).
    Flush(oneshot::Sender<()>),
}

/// A served query, as the shard saw it.
#[derive(Debug)]
pub struct QueryEvent {
    pub nanos: u64,
    pub ns: CompactString,
    pub raw_query: Option<String>,
    pub tags: Vec<String>,
    pub traceparent: Option<HeaderValue>,
    pub request: Bytes,
    /// See [`crate::core::record::QueryRecord::request_checked`].
    pub request_checked: bool,
    pub response: Bytes,
    pub watermark: Option<u64>,
}

/// Fetched documents carrying a search's trace context.
#[derive(Debug)]
pub struct FetchEvent {
    pub nanos: u64,
    pub ns: CompactString,
    pub traceparent: HeaderValue,
    pub tags: Vec<HeaderValue>,
    pub ids: Vec<String>,
    pub served_from: &'static str,
}

impl Msg {
    /// Bytes the message keeps alive while queued (the queue's byte budget).
    pub fn weight(&self) -> usize {
        match self {
            Msg::Query(q) => q.request.len() + q.response.len(),
            Msg::Fetch(f) => f.ids.iter().map(String::len).sum::<usize>(),
            Msg::Sync(_) | Msg::Flush(_) => 0,
        }
    }
}

/// One open batch.
struct Batch {
    body: Vec<u8>,
    count: usize,
    oldest: u64,
    newest: u64,
    opened: Instant,
}

/// A closed batch on its way to the store (or back, after a failed write).
struct Closed {
    feed: Feed,
    ns: String,
    body: Bytes,
    count: usize,
    oldest: u64,
    newest: u64,
    /// A write of it failed before: it is in the pending gauge.
    held: bool,
}

/// Failed batches waiting for a retry, shared with the write tasks.
#[derive(Default)]
struct Held {
    batches: Vec<Closed>,
    bytes: usize,
    /// Failed writes since the last successful one (the retry back-off).
    failures: u32,
}

/// The writer task's state.
pub struct Writer {
    pub store: ObjectStore,
    pub search: Arc<Window<SearchEntry>>,
    pub clicks: Arc<Window<ClickEvent>>,
    pub queued_bytes: Arc<AtomicUsize>,
    pub flush_every: Duration,
    pub max_batch: usize,
    /// Open batches by feed ([`slot`]) and namespace: looked up by `&str`, so an append does not
    /// allocate a key. Hashed with foldhash: std's SipHash of the namespace cost ~200
    /// instructions per lookup, two lookups per record; the map holds only the namespaces written
    /// in the last flush interval, by authenticated callers.
    batches: [HashMap<String, Batch, foldhash::quality::RandomState>; 2],
    /// By feed, the namespace whose batch was last written because it was full, and that
    /// batch's size: that namespace's next batch starts at it, so a busy namespace's batch does
    /// not grow by doubling and copying every time. One namespace per feed: every other batch
    /// starts at [`FIRST_BATCH_BYTES`], so what is reserved does not grow with the namespaces.
    full: [(String, usize); 2],
    /// A record's line is written here first (reused record after record).
    line: String,
    last_nanos: u64,
    puts: Arc<Semaphore>,
    held: Arc<parking_lot::Mutex<Held>>,
    next_retry: Instant,
    /// The summaries' text buffers, reused entry after entry.
    scratch: Scratch,
}

impl Writer {
    pub fn new(
        store: ObjectStore,
        search: Arc<Window<SearchEntry>>,
        clicks: Arc<Window<ClickEvent>>,
        queued_bytes: Arc<AtomicUsize>,
        flush_every: Duration,
        max_batch: usize,
    ) -> Self {
        Writer {
            store,
            search,
            clicks,
            queued_bytes,
            flush_every: flush_every.max(Duration::from_millis(1)),
            max_batch: max_batch.max(1),
            batches: Default::default(),
            full: Default::default(),
            line: String::new(),
            last_nanos: 0,
            puts: Arc::new(Semaphore::new(MAX_PUTS as usize)),
            held: Arc::default(),
            next_retry: Instant::now(),
            scratch: Scratch::default(),
        }
    }

    /// Runs until every sender is gone, then writes what is left.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut tick = tokio::time::interval((self.flush_every / 4).max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut msgs = Vec::with_capacity(DRAIN_MAX);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut msgs, DRAIN_MAX) => {
                    if n == 0 {
                        break;
                    }
                    for msg in msgs.drain(..) {
                        self.handle(msg).await;
                    }
                    // Let the next events pile up instead of parking on the queue at once: a
                    // parked receiver costs every sending shard a cross-thread wake-up (a futex
                    // call and a context switch) per query; this way it is one per pause.
                    tokio::time::sleep(DRAIN_PAUSE).await;
                }
                _ = tick.tick() => {
                    self.flush_due().await;
                    self.retry_held(false).await;
                }
            }
        }
        self.flush_all().await;
        // The store is still failing: what is held now is lost.
        let held = std::mem::take(&mut self.held.lock().batches);
        for b in held {
            tracing::warn!(
                namespace = b.ns,
                entries = b.count,
                "history batch given up at shutdown"
            );
            give_up(&b);
        }
    }

    async fn handle(&mut self, msg: Msg) {
        self.queued_bytes.fetch_sub(msg.weight(), Ordering::Relaxed);
        match msg {
            Msg::Query(q) => {
                let nanos = self.stamp(q.nanos);
                let entry = Arc::new(search_entry(q, nanos, &mut self.scratch));
                // Into the window first: appending may wait for a write slot.
                self.search.push(&entry.namespace, entry.clone());
                self.append(&entry.namespace, &*entry, nanos).await;
            }
            Msg::Fetch(f) => {
                let Some(trace_id) = trace_id_of(f.traceparent.as_bytes()) else {
                    return;
                };
                let tags = super::params::lenient_tags(&f.tags);
                for doc_id in f.ids {
                    let nanos = self.stamp(f.nanos);
                    let event = Arc::new(ClickEvent {
                        timestamp: rfc3339(nanos),
                        timestamp_nanos: nanos,
                        trace_id: trace_id.clone(),
                        namespace: f.ns.clone(),
                        doc_id,
                        tags: tags.clone(),
                        source: "fetch".into(),
                        served_from: f.served_from.into(),
                    });
                    self.clicks.push(&f.ns, event.clone());
                    self.append(&f.ns, &*event, nanos).await;
                }
            }
            Msg::Sync(done) => {
                let _ = done.send(());
            }
            Msg::Flush(done) => {
                self.flush_all().await;
                let _ = done.send(());
            }
        }
    }

    /// A strictly increasing timestamp near `nanos`: unique within this gateway, so the
    /// `before` cursor never skips or repeats a record.
    fn stamp(&mut self, nanos: u64) -> u64 {
        let n = nanos.max(self.last_nanos + 1);
        self.last_nanos = n;
        n
    }

    async fn append<T: Record>(&mut self, ns: &str, record: &T, nanos: u64) {
        let feed = T::FEED;
        if let Some(b) = self.batches[slot(feed)].get(ns)
            && nanos.saturating_sub(b.oldest) > MAX_BATCH_SPAN_NANOS
        {
            self.flush((feed, ns.to_string())).await;
        }
        let capacity = match &self.full[slot(feed)] {
            (full_ns, len) if full_ns == ns => *len,
            _ => FIRST_BATCH_BYTES,
        };
        let batches = &mut self.batches[slot(feed)];
        let batch = match batches.get_mut(ns) {
            Some(b) => b,
            None => batches.entry(ns.to_string()).or_insert_with(|| Batch {
                body: Vec::with_capacity(capacity),
                count: 0,
                oldest: nanos,
                newest: nanos,
                opened: Instant::now(),
            }),
        };
        if !record.write_line(&mut batch.body, &mut self.line) {
            return;
        }
        batch.count += 1;
        batch.newest = nanos;
        if batch.count >= self.max_batch {
            let len = batch
                .body
                .len()
                .clamp(FIRST_BATCH_BYTES, MAX_BATCH_START_BYTES);
            let full = &mut self.full[slot(feed)];
            if full.0 != ns {
                full.0 = ns.to_string();
            }
            full.1 = len;
            self.flush((feed, ns.to_string())).await;
        }
    }

    /// The open batches' keys, `due` ones only or all.
    fn keys(&self, due_only: bool) -> Vec<(Feed, String)> {
        let mut keys = Vec::new();
        for feed in [Feed::SearchHistory, Feed::Clickstream] {
            for (ns, b) in &self.batches[slot(feed)] {
                if !due_only || b.opened.elapsed() >= self.flush_every {
                    keys.push((feed, ns.clone()));
                }
            }
        }
        keys
    }

    async fn flush_due(&mut self) {
        for key in self.keys(true) {
            self.flush(key).await;
        }
    }

    /// Writes every open batch and every held one, and waits until every write finished.
    async fn flush_all(&mut self) {
        for key in self.keys(false) {
            self.flush(key).await;
        }
        self.retry_held(true).await;
        // Every slot free again = every write done.
        if let Ok(all) = self.puts.acquire_many(MAX_PUTS).await {
            drop(all);
        }
    }

    /// Starts writing one batch (waits for a write slot first).
    async fn flush(&mut self, key: (Feed, String)) {
        let (feed, ns) = key;
        let Some(batch) = self.batches[slot(feed)].remove(&ns) else {
            return;
        };
        self.put(Closed {
            feed,
            ns,
            body: Bytes::from(batch.body),
            count: batch.count,
            oldest: batch.oldest,
            newest: batch.newest,
            held: false,
        })
        .await;
    }

    /// Writes the held batches again once the back-off allows (`force`: now).
    async fn retry_held(&mut self, force: bool) {
        if !force && Instant::now() < self.next_retry {
            return;
        }
        let (due, failures) = {
            let mut h = self.held.lock();
            h.bytes = 0;
            (std::mem::take(&mut h.batches), h.failures)
        };
        if due.is_empty() {
            return;
        }
        let pause = RETRY_FIRST_PAUSE.saturating_mul(1 << failures.min(8));
        self.next_retry = Instant::now() + pause.min(RETRY_MAX_PAUSE);
        for b in due {
            self.put(b).await;
        }
    }

    /// Writes one closed batch in its own task (waits for a write slot first); a failed write
    /// goes back to the held batches.
    async fn put(&mut self, b: Closed) {
        let Ok(permit) = self.puts.clone().acquire_owned().await else {
            return;
        };
        let store = self.store.clone();
        let (search, clicks) = (self.search.clone(), self.clicks.clone());
        let held = self.held.clone();
        tokio::spawn(async move {
            let object = object_key(b.feed, &b.ns, b.newest);
            let n = b.count as u64;
            let feed = b.feed;
            let result =
                match tokio::time::timeout(PUT_TIMEOUT, store.put(&object, b.body.clone())).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("timed out after {PUT_TIMEOUT:?}")),
                };
            match result {
                Ok(()) => {
                    held.lock().failures = 0;
                    metrics::feature_event(feed.metric(), "outcome", "written", n);
                    metrics::feature_event(feed.object_metric(), "outcome", "written", 1);
                    if b.held {
                        metrics::feature_gauge_add(feed.pending_metric(), -(n as i64));
                    }
                    match feed {
                        Feed::SearchHistory => search.wrote(&b.ns, object, b.oldest),
                        Feed::Clickstream => clicks.wrote(&b.ns, object, b.oldest),
                    }
                }
                Err(error) => {
                    metrics::feature_event(feed.object_metric(), "outcome", "failed", 1);
                    hold(&held, b, &object, &error);
                }
            }
            drop(permit);
        });
    }
}

/// Keeps a batch whose write failed for a retry, or gives it up when the held bytes are at
/// their budget.
fn hold(held: &parking_lot::Mutex<Held>, mut b: Closed, object: &str, error: &str) {
    let mut h = held.lock();
    h.failures = h.failures.saturating_add(1);
    if h.bytes + b.body.len() > RETRY_BYTES_BUDGET {
        drop(h);
        tracing::warn!(
            object,
            error,
            "history batch not written; retry budget full, given up"
        );
        give_up(&b);
        return;
    }
    tracing::warn!(object, error, "history batch not written; kept for a retry");
    if !b.held {
        b.held = true;
        let n = b.count as u64;
        metrics::feature_event(b.feed.metric(), "outcome", "retried", n);
        metrics::feature_gauge_add(b.feed.pending_metric(), n as i64);
    }
    h.bytes += b.body.len();
    h.batches.push(b);
}

/// Counts a batch that will never be written.
fn give_up(b: &Closed) {
    let n = b.count as u64;
    metrics::feature_event(b.feed.metric(), "outcome", "failed", n);
    if b.held {
        metrics::feature_gauge_add(b.feed.pending_metric(), -(n as i64));
    }
}

/// The index of `feed`'s open batches.
fn slot(feed: Feed) -> usize {
    match feed {
        Feed::SearchHistory => 0,
        Feed::Clickstream => 1,
    }
}

/// Builds a search-history entry from a served query.
fn search_entry(q: QueryEvent, nanos: u64, scratch: &mut Scratch) -> SearchEntry {
    let summary = summarize(&q.request, q.request_checked, &q.response, scratch);
    SearchEntry {
        timestamp: rfc3339(nanos),
        timestamp_nanos: nanos,
        namespace: q.ns,
        trace_id: q.traceparent.and_then(|t| trace_id_of(t.as_bytes())),
        raw_query: q.raw_query,
        stable_as_of: q.watermark,
        query: summary.query,
        top_result_ids: summary.top_result_ids,
        tags: q.tags,
    }
}

#[cfg(test)]
mod tests {
    use super::super::entry::{TraceId, key_nanos};
    use super::*;

    const T: u64 = 1_747_900_800_000_000_000;

    fn query(nanos: u64, id: &str) -> Msg {
        Msg::Query(QueryEvent {
            nanos,
            ns: "ns".into(),
            raw_query: None,
            tags: vec!["t".into()],
            traceparent: Some(HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )),
            request: Bytes::from_static(br#"{"vector":[1,2],"top_k":1}"#),
            request_checked: true,
            response: Bytes::from(format!(r#"{{"rows":[{{"id":"{id}"}}]}}"#)),
            watermark: Some(5),
        })
    }

    /// Runs a writer over `msgs`, flushes, and returns the stored objects (key, lines).
    async fn run(msgs: Vec<Msg>, max_batch: usize) -> (Vec<(String, Vec<SearchEntry>)>, usize) {
        let store =
            ObjectStore::from_inner(Arc::new(object_store::memory::InMemory::new()), "memory");
        let search = Arc::new(Window::new(100));
        let writer = Writer::new(
            store.clone(),
            search.clone(),
            Arc::new(Window::new(100)),
            Arc::new(AtomicUsize::new(0)),
            Duration::from_secs(600),
            max_batch,
        );
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(writer.run(rx));
        for m in msgs {
            tx.send(m).await.unwrap();
        }
        let (done, flushed) = oneshot::channel();
        tx.send(Msg::Flush(done)).await.unwrap();
        flushed.await.unwrap();
        drop(tx);
        task.await.unwrap();
        let mut out = Vec::new();
        for o in store.list("search-history/ns/").await.unwrap() {
            let body = store.get(&o.key).await.unwrap().unwrap();
            let lines = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            out.push((o.key, lines));
        }
        (out, search.len())
    }

    #[tokio::test]
    async fn only_the_namespace_whose_batch_filled_starts_its_next_one_at_that_size() {
        let store =
            ObjectStore::from_inner(Arc::new(object_store::memory::InMemory::new()), "memory");
        let mut w = Writer::new(
            store,
            Arc::new(Window::new(100)),
            Arc::new(Window::new(100)),
            Arc::new(AtomicUsize::new(0)),
            Duration::from_secs(600),
            3,
        );
        // ~10 KB of served ids per entry: a full batch of 3 is past the first batch's size.
        let rows: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"id":"{i:0>96}"}}"#))
            .collect();
        let big = |nanos: u64, ns: &str| {
            let Msg::Query(mut q) = query(nanos, "x") else {
                unreachable!()
            };
            q.ns = ns.into();
            q.response = Bytes::from(format!(r#"{{"rows":[{}]}}"#, rows.join(",")));
            Msg::Query(q)
        };
        for n in 0..3 {
            w.handle(big(T + n, "ns")).await;
        }
        assert!(w.batches[0].is_empty(), "the full batch was written");
        w.handle(big(T + 3, "ns")).await;
        w.handle(big(T + 4, "other")).await;
        let start = |ns: &str| w.batches[0][ns].body.capacity();
        assert!(start("ns") >= 30_000, "{}", start("ns"));
        assert!(start("other") < 30_000, "{}", start("other"));
    }

    #[tokio::test]
    async fn batches_by_size_and_span_named_by_their_newest_entry() {
        let msgs = vec![
            query(T, "a"),
            // Same clock reading: stamped one nanosecond later, never equal.
            query(T, "b"),
            query(T + 1_000, "c"),
            // More than a batch span after the open batch's first entry ("c"): a new object.
            query(T + MAX_BATCH_SPAN_NANOS + 2_000, "d"),
            query(T + MAX_BATCH_SPAN_NANOS + 3_000, "e"),
        ];
        let (objects, windowed) = run(msgs, 2).await;
        let first_id = |e: &SearchEntry| {
            serde_json::from_str::<Vec<String>>(e.top_result_ids.get()).unwrap()[0].clone()
        };
        let shape: Vec<Vec<String>> = objects
            .iter()
            .map(|(_, es)| es.iter().map(first_id).collect())
            .collect();
        assert_eq!(shape, [vec!["a", "b"], vec!["c"], vec!["d", "e"]]);
        let stamps: Vec<u64> = objects
            .iter()
            .flat_map(|(_, es)| es.iter().map(|e| e.timestamp_nanos))
            .collect();
        assert_eq!(stamps[..3], [T, T + 1, T + 1_000]);
        for (key, es) in &objects {
            assert_eq!(key_nanos(key), es.last().map(|e| e.timestamp_nanos));
            assert!(key.starts_with("search-history/ns/2025-05-22/"), "{key}");
        }
        let e = &objects[0].1[0];
        assert_eq!(
            e.trace_id.as_ref().map(TraceId::as_str),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(e.stable_as_of, Some(5));
        let query: serde_json::Value = serde_json::from_str(e.query.get()).unwrap();
        assert_eq!(query["vector"], serde_json::json!({"dims": 2}));
        assert_eq!(windowed, 5);
    }

    #[tokio::test]
    async fn fetch_events_need_a_valid_traceparent() {
        let fetch = |tp: &'static str| {
            Msg::Fetch(Box::new(FetchEvent {
                nanos: T,
                ns: "ns".into(),
                traceparent: HeaderValue::from_static(tp),
                tags: vec![HeaderValue::from_static("s:1")],
                ids: vec!["x".into(), "y".into()],
                served_from: "cache",
            }))
        };
        let store =
            ObjectStore::from_inner(Arc::new(object_store::memory::InMemory::new()), "memory");
        let clicks = Arc::new(Window::new(100));
        let writer = Writer::new(
            store.clone(),
            Arc::new(Window::new(100)),
            clicks.clone(),
            Arc::new(AtomicUsize::new(0)),
            Duration::from_secs(600),
            100,
        );
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(writer.run(rx));
        tx.send(fetch("not-a-traceparent")).await.unwrap();
        tx.send(fetch(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ))
        .await
        .unwrap();
        drop(tx);
        task.await.unwrap();
        let objects = store.list("clickstream/ns/").await.unwrap();
        assert_eq!(objects.len(), 1);
        let body = store.get(&objects[0].key).await.unwrap().unwrap();
        let events: Vec<ClickEvent> = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let docs: Vec<&str> = events.iter().map(|e| e.doc_id.as_str()).collect();
        assert_eq!(docs, ["x", "y"]);
        assert!(
            events
                .iter()
                .all(|e| e.served_from == "cache" && e.tags == ["s:1"])
        );
        assert_eq!(clicks.len(), 2);
    }
}
