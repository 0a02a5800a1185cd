//! Prometheus metrics: each thread records into its own series (fixed-bucket latency histograms
//! and counters, [`cells`]); `GET /metrics` adds every thread's up at scrape time.
//!
//! Start at [`request_finished`]. A thread looks its series up in its own index (a thread-local,
//! no lock) and writes them with plain stores: nothing is shared between shards, and no lock is
//! taken on the request path. The scrape reads the same values through the index each thread
//! publishes ([`Published`]), whose mutex the thread takes only to add a series it has never
//! recorded before; a scrape never waits for a shard, nor a shard for a scrape, once the
//! series exist. (The families of [`super::labeled`], whose label values are known only at run
//! time, sit behind one process-wide mutex instead; of those, the request path records only the
//! rare 503 `cache_cold` answers and the Aerospike tier's operations.) Names and labels:
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `layer_requests_total` | counter | `route`, `status` |
//! | `layer_request_duration_seconds` | histogram | `route` |
//! | `layer_query_duration_seconds` | histogram | `namespace` (at most 256 per thread, then `_other`; none for 401/403), `status` |
//! | `layer_upsert_duration_seconds`, `layer_head_duration_seconds`, `layer_list_duration_seconds` | histogram | the same, for the routes that name them ([`super::router::Route::with_latency_metric`]: writes, metadata, listings; a listing's `namespace` is empty) |
//! | `layer_upstream_duration_seconds` | histogram | `route` |
//! | `layer_upstream_errors_total` | counter | `route`, `kind` (`connect`, `timeout`) |
//! | `layer_write_rejections_total` | counter | `reason` |
//! | `layer_overload_rejections_total` | counter | `reason` (`connections`, `in_flight`: 503 `overloaded` answers) |
//! | `layer_consistency_events_total` | counter | `event` (`poll_stable`, `poll_updating`, `poll_failed`, `poll_not_found`, `poll_unparseable`, `registration_dropped`, `retry_429`) |
//! | `layer_document_cache_events_total` | counter | `event` (`hot_hit`, `tier_hit`, `miss`, `error`, `disabled`, `tier_unchecked`, `untrusted_skip`, `unsettled_skip`, `backfill_failed`, `backfill_withdrawn`, `invalidate_failed`, `populated`, `populate_failed`, `populate_raced`) |
//! | `layer_cache_cold_responses_total` | counter | `route` (503 `cache_cold` answers, by route name: `create_scan`, `warm`, `hint_cache_warm`, `create_snapshot`); deprecated, kept for one release next to `hevlayer_cache_cold_responses_total{namespace,store_kind}` ([`cache_cold`]) |
//! | `layer_scan_events_total` | counter | `event` (`count`, `job_created`, `job_completed`, `job_failed`) |
//! | `layer_warm_events_total` | counter | `event` (`job_started`, `job_completed`, `job_failed`, `row_skipped`) |
//! | `layer_snapshot_events_total` | counter | `event` (`written`, `write_failed`, `pruned`, `job_completed`, `job_failed`, `mirror_failed`) |
//! | `layer_search_history_events_total` | counter | `outcome` (`written`, `dropped`, `retried`, `failed`) |
//! | `layer_clickstream_events_total` | counter | `outcome` (`written`, `dropped`, `retried`, `failed`) |
//! | `layer_search_history_pending_entries` | gauge | entries of failed batch writes held for a retry |
//! | `layer_clickstream_pending_entries` | gauge | events of failed batch writes held for a retry |
//! | `layer_search_history_objects_total` | counter | `outcome` (`written`, `failed`): JSONL batches |
//! | `layer_clickstream_objects_total` | counter | `outcome` (`written`, `failed`): JSONL batches |
//! | `layer_in_flight_requests` | gauge | |
//! | `layer_shards` | gauge | |
//! | `layer_tpuf_inflight` | gauge | exchanges with the vector store in flight ([`super::upstream::Upstream::count_in_flight`]) |
//!
//! Feature counters go through [`feature_event`], feature gauges through [`feature_gauge_add`];
//! each feature documents its own names above and declares them when it is built
//! ([`declare_event`], [`declare_gauge`]), so their `# TYPE` lines are there before the first
//! sample. Every family's help text is its description in the `metrics-catalog` crate, the one
//! list of families (`GET /v2/metrics/catalog`); an end-to-end test checks that `/metrics` and
//! the catalog agree.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::sync::Mutex;

use super::labeled::{Hist, escape};

mod cells;

use cells::{Counter, Gauge, LatencyCells};

/// Distinct `namespace` label values of each per-namespace latency family per thread.
pub const MAX_QUERY_NAMESPACES: usize = 256;
/// The label the namespaces beyond [`MAX_QUERY_NAMESPACES`] share.
pub const OTHER_NAMESPACE: &str = "_other";

/// Every family's series by label values: `C` a counter, `H` a latency histogram, `G` a gauge.
/// A thread's [`Index`] holds its cells; the scrape adds them up into [`Totals`].
#[derive(Default)]
struct Maps<C, H, G> {
    requests: BTreeMap<(&'static str, u16), C>,
    request_latency: BTreeMap<&'static str, H>,
    /// metric → namespace → status → latency; nested so the hit path looks up by `&str` without
    /// allocating.
    query_latency: BTreeMap<&'static str, BTreeMap<String, BTreeMap<u16, H>>>,
    upstream_latency: BTreeMap<&'static str, H>,
    upstream_errors: BTreeMap<(&'static str, &'static str), C>,
    write_rejections: BTreeMap<&'static str, C>,
    watcher_events: BTreeMap<&'static str, C>,
    cache_events: BTreeMap<&'static str, C>,
    /// Counters of the Layer features (history, snapshots, scans, warm): (metric, label, value).
    feature_events: BTreeMap<(&'static str, &'static str, &'static str), C>,
    /// Gauges of the Layer features, as this thread's share (summed over threads).
    feature_gauges: BTreeMap<&'static str, G>,
}

/// One thread's series (the values are [`cells`], which only that thread writes).
///
/// A thread keeps two copies of its index: its own, in the thread-local [`LOCAL`], where the
/// request path looks a series up without any lock; and the published one, which the scrape
/// reads. The thread takes the published one's mutex only to add a series it has never recorded
/// before, so a scrape never stops a shard that records into the series it already has.
type Index = Maps<Arc<Counter>, Arc<LatencyCells>, Arc<Gauge>>;

/// Every thread's counts added up, at a scrape.
type Totals = Maps<u64, Hist, i64>;

/// What the scrape sees of one thread.
#[derive(Default)]
struct Published {
    in_flight: Gauge,
    index: Mutex<Index>,
}

/// A thread's own view: its private index and what it publishes.
struct Local {
    index: RefCell<Index>,
    published: Arc<Published>,
}

/// The series `key` of the map `field` selects in `index`; a new one is published first.
fn series<'a, K: Ord + Clone + 'a, V: Default + 'a>(
    index: &'a mut Index,
    published: &Mutex<Index>,
    field: impl Fn(&mut Index) -> &mut BTreeMap<K, Arc<V>>,
    key: K,
) -> &'a V {
    field(index).entry(key).or_insert_with_key(|key| {
        let v = Arc::<V>::default();
        let mut shared = published.lock().unwrap_or_else(|e| e.into_inner());
        field(&mut shared).insert(key.clone(), v.clone());
        v
    })
}

/// The statuses of `ns` in the per-namespace latency family `metric` (created empty). Past
/// [`MAX_QUERY_NAMESPACES`] namespaces of the family, a new one is counted as `_other`, so label
/// values stay bounded. A known namespace costs two lookups.
fn by_status<'i>(
    index: &'i mut Index,
    metric: &'static str,
    ns: &str,
) -> &'i mut BTreeMap<u16, Arc<LatencyCells>> {
    let by_ns = index.query_latency.entry(metric).or_default();
    let known = by_ns.contains_key(ns);
    let ns = if known || by_ns.len() < MAX_QUERY_NAMESPACES {
        ns
    } else {
        OTHER_NAMESPACE
    };
    if !known && !by_ns.contains_key(ns) {
        by_ns.insert(ns.to_string(), BTreeMap::new());
    }
    by_ns.get_mut(ns).expect("present or inserted above")
}

impl Totals {
    /// Adds one thread's published series.
    fn add(&mut self, o: &Index) {
        fn counts<K: Ord + Clone>(to: &mut BTreeMap<K, u64>, from: &BTreeMap<K, Arc<Counter>>) {
            for (k, v) in from {
                *to.entry(k.clone()).or_default() += v.get();
            }
        }
        fn hists<K: Ord + Clone>(
            to: &mut BTreeMap<K, Hist>,
            from: &BTreeMap<K, Arc<LatencyCells>>,
        ) {
            for (k, v) in from {
                to.entry(k.clone()).or_default().merge(&v.snapshot());
            }
        }
        counts(&mut self.requests, &o.requests);
        hists(&mut self.request_latency, &o.request_latency);
        for (metric, by_ns) in &o.query_latency {
            let mine = self.query_latency.entry(metric).or_default();
            for (ns, by_status) in by_ns {
                hists(mine.entry(ns.clone()).or_default(), by_status);
            }
        }
        hists(&mut self.upstream_latency, &o.upstream_latency);
        counts(&mut self.upstream_errors, &o.upstream_errors);
        counts(&mut self.write_rejections, &o.write_rejections);
        counts(&mut self.cache_events, &o.cache_events);
        counts(&mut self.watcher_events, &o.watcher_events);
        counts(&mut self.feature_events, &o.feature_events);
        for (k, v) in &o.feature_gauges {
            *self.feature_gauges.entry(k).or_default() += v.get();
        }
    }
}

/// Feature families declared so far: name → `counter` or `gauge`.
fn declared() -> &'static Mutex<BTreeMap<&'static str, &'static str>> {
    static DECLARED: OnceLock<Mutex<BTreeMap<&'static str, &'static str>>> = OnceLock::new();
    DECLARED.get_or_init(|| {
        // The core's own event counters.
        Mutex::new(BTreeMap::from([
            ("layer_overload_rejections_total", "counter"),
            ("layer_tls_reloads_total", "counter"),
            ("layer_cache_cold_responses_total", "counter"),
        ]))
    })
}

/// Declares a counter recorded with [`feature_event`] (idempotent).
pub fn declare_event(metric: &'static str) {
    declared()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(metric, "counter");
}

/// Declares a gauge moved with [`feature_gauge_add`] (idempotent).
pub fn declare_gauge(metric: &'static str) {
    declared()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(metric, "gauge");
}

/// The family a 503 `cache_cold` answer is counted in, by namespace (bounded, see
/// [`super::labeled::bounded_namespace`]).
const CACHE_COLD: &str = "hevlayer_cache_cold_responses_total";

/// A route answered 503 `cache_cold`: counted under the catalog's name by namespace, and under
/// the old `layer_cache_cold_responses_total{route}` for one more release.
pub fn cache_cold(route: &'static str, namespace: Option<&str>) {
    feature_event("layer_cache_cold_responses_total", "route", route, 1);
    let ns = super::labeled::bounded_namespace(namespace.unwrap_or(""));
    let l = super::labeled::labels(&[("namespace", &ns), ("store_kind", "turbopuffer")]);
    super::labeled::count(CACHE_COLD, l, 1);
}

fn registry() -> &'static Mutex<Vec<Arc<Published>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Arc<Published>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

thread_local! {
    static LOCAL: Local = {
        let published = Arc::new(Published::default());
        registry().lock().unwrap_or_else(|e| e.into_inner()).push(published.clone());
        Local { index: RefCell::default(), published }
    };
}

/// Records into one series of this thread: `field` selects the map, `key` the series.
fn with_series<K: Ord + Clone, V: Default>(
    field: impl Fn(&mut Index) -> &mut BTreeMap<K, Arc<V>>,
    key: K,
    f: impl FnOnce(&V),
) {
    LOCAL.with(|l| {
        f(series(
            &mut l.index.borrow_mut(),
            &l.published.index,
            field,
            key,
        ))
    });
}

/// A request started (in-flight gauge).
pub fn request_started() {
    LOCAL.with(|l| l.published.in_flight.add(1));
}

/// The per-namespace latency family of query routes.
pub const QUERY_LATENCY: &str = "layer_query_duration_seconds";

/// Per-namespace latency families routes record into (the query one, plus those declared with
/// [`declare_latency`]): always rendered, with or without samples.
fn latency_families() -> &'static Mutex<std::collections::BTreeSet<&'static str>> {
    static F: OnceLock<Mutex<std::collections::BTreeSet<&'static str>>> = OnceLock::new();
    F.get_or_init(|| Mutex::new([QUERY_LATENCY].into()))
}

/// Declares a per-namespace latency family (idempotent).
pub fn declare_latency(metric: &'static str) {
    latency_families()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(metric);
}

/// A request finished with `status` after `elapsed`; `latency` is the route's per-namespace
/// latency family and the namespace, for routes that have one.
pub fn request_finished(
    route: &'static str,
    status: u16,
    elapsed: Duration,
    latency: Option<(&'static str, &str)>,
) {
    LOCAL.with(|l| {
        l.published.in_flight.add(-1);
        let index = &mut *l.index.borrow_mut();
        let published = &l.published.index;
        series(index, published, |i| &mut i.requests, (route, status)).add(1);
        series(index, published, |i| &mut i.request_latency, route).record(elapsed);
        // Rejected requests (401/403) never name a namespace: an unauthenticated caller must not
        // be able to mint label values (and the rest are bounded per thread, see `by_status`).
        if let Some((metric, ns)) = latency.filter(|_| !matches!(status, 401 | 403)) {
            series(index, published, |i| by_status(i, metric, ns), status).record(elapsed);
        }
    });
}

/// An upstream exchange took `elapsed`.
pub fn upstream(route: &'static str, elapsed: Duration) {
    with_series(|i| &mut i.upstream_latency, route, |h| h.record(elapsed));
}

/// An upstream exchange failed without a response.
pub fn upstream_error(route: &'static str, kind: &'static str) {
    with_series(|i| &mut i.upstream_errors, (route, kind), |c| c.add(1));
}

/// A write was rejected before forwarding.
pub fn write_rejected(reason: &'static str) {
    with_series(|i| &mut i.write_rejections, reason, |c| c.add(1));
}

/// A document-cache event (`hot_hit`, `tier_hit`, `miss`, `error`, `disabled`,
/// `backfill_failed`, `invalidate_failed`).
pub fn cache_event(event: &'static str) {
    with_series(|i| &mut i.cache_events, event, |c| c.add(1));
}

/// A consistency-watcher or stable-read event.
pub fn watcher_event(event: &'static str) {
    with_series(|i| &mut i.watcher_events, event, |c| c.add(1));
}

/// Counts one event of a Layer feature: `metric{label="value"} += n`. Callable from any thread
/// (shards, the control runtime, job tasks). The metric names are listed in the module docs.
pub fn feature_event(metric: &'static str, label: &'static str, value: &'static str, n: u64) {
    with_series(
        |i| &mut i.feature_events,
        (metric, label, value),
        |c| c.add(n),
    );
}

/// Moves a Layer feature's gauge by `delta` (callable from any thread: each thread keeps its
/// share and the scrape sums them, so a rise on one thread and the fall on another cancel out).
pub fn feature_gauge_add(metric: &'static str, delta: i64) {
    with_series(|i| &mut i.feature_gauges, metric, |g| g.add(delta));
}

/// Renders every thread's metrics, merged, in the Prometheus text format.
pub fn render(shards: usize) -> String {
    let mut all = Totals::default();
    let mut in_flight = 0;
    let list: Vec<Arc<Published>> = registry().lock().unwrap_or_else(|e| e.into_inner()).clone();
    for thread in list {
        in_flight += thread.in_flight.get();
        // Held while this thread's values are read: the thread takes it only to add a series.
        all.add(&thread.index.lock().unwrap_or_else(|e| e.into_inner()));
    }
    let mut out = String::with_capacity(8192);
    header(&mut out, "layer_requests_total", "counter");
    for ((route, status), n) in &all.requests {
        let _ = writeln!(
            out,
            "layer_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    header(&mut out, "layer_request_duration_seconds", "histogram");
    for (route, s) in &all.request_latency {
        s.render(
            &mut out,
            "layer_request_duration_seconds",
            &format!("route=\"{route}\""),
        );
    }
    let families = latency_families()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let empty = BTreeMap::new();
    for metric in families {
        header(&mut out, metric, "histogram");
        for (ns, by_status) in all.query_latency.get(metric).unwrap_or(&empty) {
            for (status, s) in by_status {
                s.render(
                    &mut out,
                    metric,
                    &format!("namespace=\"{}\",status=\"{status}\"", escape(ns)),
                );
            }
        }
    }
    header(&mut out, "layer_upstream_duration_seconds", "histogram");
    for (route, s) in &all.upstream_latency {
        s.render(
            &mut out,
            "layer_upstream_duration_seconds",
            &format!("route=\"{route}\""),
        );
    }
    header(&mut out, "layer_upstream_errors_total", "counter");
    for ((route, kind), n) in &all.upstream_errors {
        let _ = writeln!(
            out,
            "layer_upstream_errors_total{{route=\"{route}\",kind=\"{kind}\"}} {n}"
        );
    }
    header(&mut out, "layer_write_rejections_total", "counter");
    for (reason, n) in &all.write_rejections {
        let _ = writeln!(
            out,
            "layer_write_rejections_total{{reason=\"{reason}\"}} {n}"
        );
    }
    header(&mut out, "layer_document_cache_events_total", "counter");
    for (event, n) in &all.cache_events {
        let _ = writeln!(
            out,
            "layer_document_cache_events_total{{event=\"{event}\"}} {n}"
        );
    }
    let declared = declared().lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut events: BTreeMap<&str, Vec<(&str, &str, u64)>> = declared
        .iter()
        .filter(|(_, kind)| **kind == "counter")
        .map(|(m, _)| (*m, Vec::new()))
        .collect();
    for ((metric, label, value), n) in &all.feature_events {
        events.entry(metric).or_default().push((label, value, *n));
    }
    for (metric, series) in &events {
        header(&mut out, metric, "counter");
        for (label, value, n) in series {
            let _ = writeln!(out, "{metric}{{{label}=\"{value}\"}} {n}");
        }
    }
    let mut gauges: BTreeMap<&str, i64> = declared
        .iter()
        .filter(|(_, kind)| **kind == "gauge")
        .map(|(m, _)| (*m, 0))
        .collect();
    for (metric, v) in &all.feature_gauges {
        *gauges.entry(metric).or_default() += v;
    }
    for (metric, v) in &gauges {
        header(&mut out, metric, "gauge");
        let _ = writeln!(out, "{metric} {}", (*v).max(0));
    }
    header(&mut out, "layer_consistency_events_total", "counter");
    for (event, n) in &all.watcher_events {
        let _ = writeln!(
            out,
            "layer_consistency_events_total{{event=\"{event}\"}} {n}"
        );
    }
    header(&mut out, "layer_in_flight_requests", "gauge");
    let _ = writeln!(out, "layer_in_flight_requests {}", in_flight.max(0));
    header(&mut out, "layer_shards", "gauge");
    let _ = writeln!(out, "layer_shards {shards}");
    super::labeled::describe(CACHE_COLD, super::labeled::Kind::Counter, "");
    out.push_str(&super::labeled::render());
    out
}

/// A family's `# HELP` (its catalog description) and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str) {
    let help = super::labeled::help_text(metrics_catalog::help(name));
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_merge_across_threads() {
        request_started();
        request_finished(
            "query",
            200,
            Duration::from_millis(3),
            Some((QUERY_LATENCY, "ns-metrics-test")),
        );
        std::thread::spawn(|| {
            request_started();
            request_finished(
                "query",
                200,
                Duration::from_millis(30),
                Some((QUERY_LATENCY, "ns-metrics-test")),
            );
        })
        .join()
        .unwrap();
        let text = render(2);
        assert!(
            text.contains(
                "layer_query_duration_seconds_count{namespace=\"ns-metrics-test\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("layer_query_duration_seconds_bucket{namespace=\"ns-metrics-test\",status=\"200\",le=\"0.005\"} 1"));
        assert!(text.contains("layer_shards 2"));
    }

    #[test]
    fn a_thread_records_while_a_scrape_holds_its_published_index() {
        use std::sync::mpsc;
        let (published_tx, published_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let recorder = std::thread::spawn(move || {
            let once = |ms| {
                request_started();
                upstream("scrape-test", Duration::from_millis(ms));
                cache_event("scrape_test_event");
                request_finished(
                    "scrape-test",
                    200,
                    Duration::from_millis(ms),
                    Some((QUERY_LATENCY, "ns-scrape-test")),
                );
            };
            // The first request creates (and publishes) this thread's series.
            once(1);
            published_tx
                .send(LOCAL.with(|l| l.published.clone()))
                .unwrap();
            go_rx.recv().unwrap();
            for _ in 0..999 {
                once(2);
            }
            done_tx.send(()).unwrap();
        });
        let published = published_rx.recv().unwrap();
        {
            // What a scrape holds while it reads this thread: the recorder must not need it.
            let _held = published.index.lock().unwrap();
            go_tx.send(()).unwrap();
            // A deadline for a hang (the recorder blocked on the lock), not a timing bound.
            match done_rx.recv_timeout(Duration::from_secs(30)) {
                Ok(()) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the recorder waited for the scrape's lock")
                }
                // The recorder panicked: its own message is in the join below.
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
        }
        recorder.join().expect("the recorder panicked");
        let text = render(1);
        for line in [
            "layer_requests_total{route=\"scrape-test\",status=\"200\"} 1000",
            "layer_query_duration_seconds_count{namespace=\"ns-scrape-test\",status=\"200\"} 1000",
            "layer_upstream_duration_seconds_bucket{route=\"scrape-test\",le=\"0.001\"} 1",
            "layer_upstream_duration_seconds_count{route=\"scrape-test\"} 1000",
            "layer_document_cache_events_total{event=\"scrape_test_event\"} 1000",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }

    #[test]
    fn namespace_labels_are_bounded_and_never_minted_by_rejected_requests() {
        std::thread::spawn(|| {
            request_started();
            request_finished(
                "query",
                401,
                Duration::from_millis(1),
                Some((QUERY_LATENCY, "ns-denied")),
            );
            for i in 0..MAX_QUERY_NAMESPACES + 10 {
                request_started();
                let ns = format!("ns-bound-{i}");
                request_finished(
                    "query",
                    200,
                    Duration::from_millis(1),
                    Some((QUERY_LATENCY, &ns)),
                );
            }
        })
        .join()
        .unwrap();
        let text = render(1);
        assert!(!text.contains("ns-denied"), "{text}");
        assert!(text.contains("namespace=\"ns-bound-0\""));
        assert!(!text.contains(&format!(
            "namespace=\"ns-bound-{}\"",
            MAX_QUERY_NAMESPACES + 5
        )));
        assert!(text.contains(
            "layer_query_duration_seconds_count{namespace=\"_other\",status=\"200\"} 10"
        ));
    }
}
