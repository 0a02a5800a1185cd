//! The consistency watcher: a control loop on the control runtime that polls upstream metadata of
//! registered namespaces and publishes, lock-free, each namespace's index status and stable
//! watermark to the shards.
//!
//! - Registration: write traffic through the gateway ([`Watcher::note_write`]; a write the
//!   gateway refuses does not register) and configured indexes. Listing and metadata reads do
//!   not register.
//! - Cadence: cold (never polled) and updating namespaces every `pollIntervalMs`; stable ones
//!   every `stablePollIntervalMs`; a write re-arms the fast tier.
//! - A write to a namespace last seen stable marks it updating at once (keeping its watermark), so
//!   queries racing the write already get the predicate and never see rows newer than the cut.
//!
//! # The watermark
//!
//! A poll starts at `S` (this gateway's clock) and sees `index.status`. When upstream reports
//! `up-to-date`, every write upstream acknowledged before `S` is indexed, and the watermark (the
//! cut `_hevlayer_upserted_at <= watermark`) moves to
//!
//! ```text
//! min(S − safetyMarginMs, (smallest stamp of this gateway's writes in flight at S) − 1)
//! ```
//!
//! never backwards. A failed poll (an error, a non-2xx, an unreadable body) changes nothing: the
//! cut stays, and so does the status (an updating namespace stays updating and in the fast tier).
//!
//! **What the margin protects against.** A row's stamp is taken by the gateway replica that
//! forwarded it, on that replica's clock, before the write reaches upstream. A cut must not claim
//! a row upstream had not acknowledged when the poll saw `up-to-date`, or the rows under the cut
//! would change afterwards. Rows of other replicas (whose clocks may differ from this one's) and
//! writes still in flight at `S` are the rows this gateway cannot see: the margin assumes that
//! clock skew plus a write's time in flight stays under `safetyMarginMs`, so a row stamped
//! below `S − margin` anywhere was acknowledged before `S`, and the up-to-date poll covers it.
//!
//! **Never behind this gateway's own acknowledged writes.** For its own writes the gateway does
//! not need the assumption: per namespace it tracks the stamps of its writes in flight (stamped,
//! not yet answered; [`InFlight`] leaves the set when dropped, on every path, errors included)
//! and the newest stamp upstream acknowledged with a 2xx ([`Watcher::note_ack`]). In-flight
//! writes cap the cut (above), so the cut never claims one of them however long it takes. And a
//! namespace is reported **stable only when its watermark is at or after the newest stamp this
//! gateway got acknowledged** (and none of its writes is in flight or arrived during the poll);
//! until then an up-to-date poll still moves the cut but leaves the namespace `Updating`, in the
//! fast tier, and queries keep the predicate at the cut. So `is_stable: true` (metadata) means
//! every write this gateway acknowledged is under the cut, and every read at the watermark
//! (count / ids / values scans, snapshots, the snapshot writer, warm jobs,
//! `cache_warmed_through`) sees it.
//!
//! Both rules only ever lower the cut or delay `Stable`, so the cross-replica guarantee of the
//! margin is kept. The cost: after a write, the namespace becomes stable at the first up-to-date
//! poll that starts at least `safetyMarginMs` after the write's stamp (and after its answer): at
//! most about `safetyMarginMs + pollIntervalMs` later (plus upstream's own indexing time), 1.5 s
//! at the defaults.
//!
//! Shards read a namespace's state with one `ArcSwap` load and two atomic loads. A write takes the
//! namespace's small own-writes lock when it is stamped, acknowledged and answered; a poll when it
//! starts and ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Method};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, mpsc};

use super::config::ConsistencyConfig;
use super::http::now_ms;
use super::metrics;
use super::upstream::{Upstream, Upstreams};

/// A wake-up for the loop: a namespace a write registered (the registration itself is already
/// held by the watcher; a dropped wake-up only delays the first poll to the loop's next tick).
pub type Registration = String;

/// A namespace's index status as last observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Unknown = 0,
    Updating = 1,
    Stable = 2,
}

impl Status {
    fn from_u8(v: u8) -> Status {
        match v {
            1 => Status::Updating,
            2 => Status::Stable,
            _ => Status::Unknown,
        }
    }
}

/// This gateway's own writes to one namespace (module docs).
#[derive(Debug, Default)]
struct OwnWrites {
    /// Stamps of writes stamped and not answered yet, each with how many writes carry it.
    in_flight: BTreeMap<u64, u32>,
    /// The newest stamp of a write upstream acknowledged (2xx); 0 = none since start.
    acked: u64,
}

/// What every query reads, on a cache line of its own: the poll loop and writes write the rest
/// of [`NsWatch`] (and the `Arc`'s counts), and those writes must not evict this line from the
/// shards' caches.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Cut {
    status: AtomicU8,
    /// Epoch ms; 0 = no watermark yet.
    watermark: AtomicU64,
}

/// One namespace's published state. Queries only read it, through a borrow from the published
/// map ([`Watcher::snapshot`]): no reference count is taken per query.
#[derive(Debug, Default)]
pub struct NsWatch {
    cut: Cut,
    /// Epoch ms of the last completed poll that saw `up-to-date`.
    stable_observed_ms: AtomicU64,
    next_due_ms: AtomicU64,
    last_poll_start_ms: AtomicU64,
    rearm: AtomicBool,
    polling: AtomicBool,
    /// The stamp of the last write seen through this gateway (0 = none since start). The snapshot
    /// writer uses it to tell a watermark advance that brought new data from an idle one.
    last_write_ms: AtomicU64,
    own: Mutex<OwnWrites>,
}

/// A poll's start: its time and the cap this gateway's writes in flight put on its cut, read
/// together under the own-writes lock (a write stamped later stamps at or after `start`).
#[derive(Clone, Copy, Debug)]
struct PollStart {
    start: u64,
    cap: Option<u64>,
}

impl NsWatch {
    /// Status and watermark, read once (the "one consistency cut" a request uses).
    pub fn snapshot(&self) -> (Status, Option<u64>) {
        let wm = self.cut.watermark.load(Ordering::Acquire);
        (self.status(), (wm > 0).then_some(wm))
    }

    fn status(&self) -> Status {
        Status::from_u8(self.cut.status.load(Ordering::Acquire))
    }

    /// Marks a stable namespace updating and re-arms the fast tier. The status is read first:
    /// a namespace already updating (the common case under writes) leaves the queries' line
    /// untouched (a compare-exchange takes the line exclusive even when it fails).
    fn mark_updating(&self) {
        if self.status() == Status::Stable {
            let _ = self.cut.status.compare_exchange(
                Status::Stable as u8,
                Status::Updating as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        self.rearm.store(true, Ordering::Release);
    }

    /// Whether the loop should poll now: due by cadence, or re-armed by a write once a fast-tier
    /// interval has passed since the last poll started.
    fn due(&self, now: u64, poll_interval_ms: u64) -> bool {
        let last = self.last_poll_start_ms.load(Ordering::Acquire);
        now >= self.next_due_ms.load(Ordering::Acquire)
            || (self.rearm.load(Ordering::Acquire) && now >= last + poll_interval_ms)
    }

    /// Takes a write's stamp and adds it to the in-flight set (one lock: a poll starting later
    /// sees the write in flight, or the write's stamp is at or after the poll's start).
    fn add_in_flight(&self) -> u64 {
        let mut own = self.own.lock();
        let stamp = now_ms();
        *own.in_flight.entry(stamp).or_insert(0) += 1;
        stamp
    }

    /// Starts a poll at `clock()` (read under the own-writes lock).
    fn begin_poll(&self, clock: impl FnOnce() -> u64) -> PollStart {
        let own = self.own.lock();
        let start = clock();
        self.last_poll_start_ms.store(start, Ordering::Release);
        PollStart {
            start,
            cap: own.in_flight.keys().next().map(|s| s.saturating_sub(1)),
        }
    }

    /// Applies what a poll saw (`None`: the poll failed); returns whether the namespace is now
    /// stable (it picks the polling tier).
    fn finish_poll(&self, p: PollStart, seen: Option<Status>, safety_margin_ms: u64) -> bool {
        match seen {
            Some(Status::Stable) => {
                // One lock with the writes: a write is either in flight here, or acknowledged (and
                // counted in `acked`), or stamped after this decision (and marks the namespace
                // updating itself).
                let own = self.own.lock();
                let mut cut = p.start.saturating_sub(safety_margin_ms);
                if let Some(cap) = p.cap {
                    cut = cut.min(cap);
                }
                let wm = self.cut.watermark.fetch_max(cut, Ordering::AcqRel).max(cut);
                self.stable_observed_ms.store(now_ms(), Ordering::Release);
                // A write noted during the poll re-armed the namespace: it is above the cut.
                let covered = wm >= own.acked
                    && own.in_flight.is_empty()
                    && !self.rearm.load(Ordering::Acquire);
                let status = if covered {
                    Status::Stable
                } else {
                    Status::Updating
                };
                self.cut.status.store(status as u8, Ordering::Release);
                covered
            }
            Some(s) => {
                self.cut.status.store(s as u8, Ordering::Release);
                false
            }
            None => self.status() == Status::Stable,
        }
    }
}

/// A write of this gateway in flight: stamped, not answered yet. Dropping it (on every path: an
/// answer, an upstream error, a refused body, a cancelled request) takes the stamp out of the
/// namespace's in-flight set.
#[derive(Debug)]
pub struct InFlight {
    watch: Arc<NsWatch>,
    stamp: u64,
}

impl InFlight {
    /// The write's `_hevlayer_upserted_at`.
    pub fn stamp(&self) -> u64 {
        self.stamp
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut own = self.watch.own.lock();
        if let Some(n) = own.in_flight.get_mut(&self.stamp) {
            *n -= 1;
            if *n == 0 {
                own.in_flight.remove(&self.stamp);
            }
        }
    }
}

/// The watcher's shared half.
pub struct Watcher {
    map: ArcSwap<HashMap<String, Arc<NsWatch>>>,
    /// Namespaces a write registered that the loop has not published yet (it does on its next
    /// turn). Publication happens under this lock, so a namespace has one `NsWatch` from its
    /// first write on.
    pending: Mutex<HashMap<String, Arc<NsWatch>>>,
    tx: mpsc::Sender<Registration>,
    cfg: ConsistencyConfig,
}

impl Watcher {
    /// Creates the watcher and the receiver its loop drains.
    pub fn new(cfg: ConsistencyConfig) -> (Arc<Watcher>, mpsc::Receiver<Registration>) {
        let (tx, rx) = mpsc::channel(4096);
        (
            Arc::new(Watcher {
                map: ArcSwap::from_pointee(HashMap::new()),
                pending: Mutex::new(HashMap::new()),
                tx,
                cfg,
            }),
            rx,
        )
    }

    /// A namespace's state, if registered (a counted reference: for holders, such as a write
    /// in flight; a read uses [`Watcher::read`]).
    pub fn get(&self, ns: &str) -> Option<Arc<NsWatch>> {
        self.map.load().get(ns).cloned()
    }

    /// `f` of a namespace's state, if registered, borrowed from the published map: no reference
    /// count is written, so the shards' reads share the state's cache lines.
    fn read<T>(&self, ns: &str, f: impl FnOnce(&NsWatch) -> T) -> Option<T> {
        self.map.load().get(ns).map(|w| f(w))
    }

    /// Whether a namespace is registered (published).
    fn registered(&self, ns: &str) -> bool {
        self.map.load().contains_key(ns)
    }

    /// A namespace's state, registered or pending.
    fn lookup(&self, ns: &str) -> Option<Arc<NsWatch>> {
        if let Some(w) = self.get(ns) {
            return Some(w);
        }
        let pending = self.pending.lock();
        self.get(ns).or_else(|| pending.get(ns).cloned())
    }

    /// Status and watermark for a namespace (`Unknown`, `None` when unregistered).
    pub fn snapshot(&self, ns: &str) -> (Status, Option<u64>) {
        self.read(ns, NsWatch::snapshot)
            .unwrap_or((Status::Unknown, None))
    }

    /// Called by the write path before it stamps: takes the write's stamp, recorded as in flight
    /// until the returned guard drops. A namespace not registered yet gets its state now, held
    /// pending: [`Watcher::note_write`] registers it (a write the gateway refuses does not).
    pub fn begin_write(&self, ns: &str) -> InFlight {
        if let Some(watch) = self.get(ns) {
            let stamp = watch.add_in_flight();
            return InFlight { watch, stamp };
        }
        // Under the pending lock, so the loop never drops a pending state a write is entering.
        let mut pending = self.pending.lock();
        let watch = match self.get(ns).or_else(|| pending.get(ns).cloned()) {
            Some(w) => w,
            None => {
                let w = Arc::new(NsWatch::default());
                pending.insert(ns.to_string(), w.clone());
                w
            }
        };
        let stamp = watch.add_in_flight();
        InFlight { watch, stamp }
    }

    /// Called by the write path once the write stamped at `stamp` is validated, before it is
    /// forwarded: registers the namespace (the loop publishes it on its next turn, woken now;
    /// never blocking), re-arms the fast tier and marks a stable namespace updating.
    pub fn note_write(&self, ns: &str, stamp: u64) {
        let Some(w) = self.lookup(ns) else { return };
        w.last_write_ms.fetch_max(stamp, Ordering::AcqRel);
        w.mark_updating();
        if !self.registered(ns) && self.tx.try_send(ns.to_string()).is_err() {
            metrics::watcher_event("registration_dropped");
        }
    }

    /// Called by the write path when upstream acknowledged (2xx) the write stamped at `stamp`:
    /// the namespace is not reported stable again until its watermark reaches `stamp`.
    pub fn note_ack(&self, ns: &str, stamp: u64) {
        let Some(w) = self.lookup(ns) else { return };
        let mut own = w.own.lock();
        own.acked = own.acked.max(stamp);
        if w.cut.watermark.load(Ordering::Acquire) < stamp {
            w.mark_updating();
        }
    }

    /// This gateway's writes to `ns`: the stamps in flight and the newest acknowledged one.
    #[cfg(test)]
    pub fn own_writes(&self, ns: &str) -> Option<(Vec<u64>, u64)> {
        let w = self.lookup(ns)?;
        let own = w.own.lock();
        Some((own.in_flight.keys().copied().collect(), own.acked))
    }

    /// The stamp of the last write seen through this gateway for `ns` (0 = none since start).
    pub fn last_write_ms(&self, ns: &str) -> u64 {
        self.read(ns, |w| w.last_write_ms.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// Registers a namespace directly (configured indexes, snapshot policies).
    pub fn register(&self, ns: &str) {
        if self.registered(ns) {
            return;
        }
        let mut pending = self.pending.lock();
        let w = pending.remove(ns).unwrap_or_default();
        self.publish(&[(ns.to_string(), w)]);
    }

    /// Publishes every pending namespace a write was noted for (the loop, each turn). A pending
    /// state no noted write and no write in flight holds (only refused writes entered it) is
    /// dropped.
    fn publish_pending(&self) {
        let mut pending = self.pending.lock();
        if pending.is_empty() {
            return;
        }
        let mut noted = Vec::new();
        pending.retain(|ns, w| {
            if w.last_write_ms.load(Ordering::Acquire) > 0 {
                noted.push((ns.clone(), w.clone()));
                false
            } else {
                !w.own.lock().in_flight.is_empty()
            }
        });
        if !noted.is_empty() {
            self.publish(&noted);
        }
    }

    /// Adds namespaces to the published map (callers hold the pending lock).
    fn publish(&self, add: &[(String, Arc<NsWatch>)]) {
        self.map.rcu(|m| {
            let mut next = HashMap::clone(m);
            for (ns, w) in add {
                next.entry(ns.clone()).or_insert_with(|| w.clone());
            }
            next
        });
    }

    /// Every registered namespace, sorted.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.map.load().keys().cloned().collect();
        v.sort();
        v
    }

    /// Number of registered namespaces.
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    /// Whether no namespace is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The control loop. Runs on the control runtime until the process ends.
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Registration>, upstreams: Upstreams) {
        let tick = Duration::from_millis((self.cfg.poll_interval_ms / 4).clamp(10, 250));
        let permits = Arc::new(Semaphore::new(self.cfg.max_concurrent_polls));
        loop {
            while rx.try_recv().is_ok() {}
            self.publish_pending();
            let now = now_ms();
            let map = self.map.load_full();
            for (ns, w) in map.iter() {
                if w.polling.load(Ordering::Acquire) {
                    continue;
                }
                if !w.due(now, self.cfg.poll_interval_ms) {
                    continue;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                w.polling.store(true, Ordering::Release);
                w.rearm.store(false, Ordering::Release);
                let up = upstreams.for_ns(ns).clone();
                let (w, ns, cfg) = (w.clone(), ns.clone(), self.cfg.clone());
                tokio::spawn(async move {
                    poll(&ns, &w, &up, &cfg).await;
                    w.polling.store(false, Ordering::Release);
                    drop(permit);
                });
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                Some(_) = rx.recv() => {}
            }
        }
    }
}

/// One metadata poll; updates `w` in place.
async fn poll(ns: &str, w: &NsWatch, up: &Upstream, cfg: &ConsistencyConfig) {
    let p = w.begin_poll(now_ms);
    let result = up
        .send(
            "watcher_metadata",
            Method::GET,
            &format!("/v2/namespaces/{ns}/metadata"),
            &HeaderMap::new(),
            Bytes::new(),
        )
        .await;
    let seen = match result {
        Ok(r) if r.status.is_success() => match index_status(&r.body) {
            Some(s) => Some(s),
            None => {
                metrics::watcher_event("poll_unparseable");
                None
            }
        },
        Ok(r) => {
            metrics::watcher_event(if r.status.as_u16() == 404 {
                "poll_not_found"
            } else {
                "poll_failed"
            });
            None
        }
        Err(_) => {
            metrics::watcher_event("poll_failed");
            None
        }
    };
    match seen {
        Some(Status::Stable) => metrics::watcher_event("poll_stable"),
        Some(_) => metrics::watcher_event("poll_updating"),
        None => {}
    }
    let stable = w.finish_poll(p, seen, cfg.safety_margin_ms);
    let interval = if stable {
        cfg.stable_poll_interval_ms
    } else {
        cfg.poll_interval_ms
    };
    w.next_due_ms.store(p.start + interval, Ordering::Release);
}

/// Reads `index.status` from a metadata body.
fn index_status(body: &[u8]) -> Option<Status> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match v.get("index")?.get("status")?.as_str()? {
        "up-to-date" => Some(Status::Stable),
        "updating" => Some(Status::Updating),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARGIN: u64 = 500;

    #[test]
    fn the_queries_cut_has_a_cache_line_of_its_own() {
        assert_eq!(std::mem::size_of::<Cut>(), 64);
        assert_eq!(std::mem::align_of::<NsWatch>(), 64);
        assert_eq!(std::mem::offset_of!(NsWatch, cut) % 64, 0);
        // A registered namespace's state is read without taking a reference: while a read is
        // in progress the only counted references are the map's and `held`.
        let (w, _rx) = Watcher::new(ConsistencyConfig::default());
        w.register("a");
        let held = w.get("a").unwrap();
        assert_eq!(w.read("a", |_| Arc::strong_count(&held)), Some(2));
        assert_eq!(w.snapshot("a"), (Status::Unknown, None));
        assert_eq!(w.last_write_ms("a"), 0);
    }

    #[test]
    fn statuses_parse() {
        assert_eq!(
            index_status(br#"{"index":{"status":"up-to-date"}}"#),
            Some(Status::Stable)
        );
        assert_eq!(
            index_status(br#"{"index":{"status":"updating","unindexed_rows":3}}"#),
            Some(Status::Updating)
        );
        assert_eq!(index_status(br#"{"schema":{}}"#), None);
    }

    /// A write through the gateway, start to acknowledgement; returns its stamp.
    fn acked_write(w: &Watcher, ns: &str) -> u64 {
        let write = w.begin_write(ns);
        let stamp = write.stamp();
        w.note_write(ns, stamp);
        w.note_ack(ns, stamp);
        stamp
    }

    /// One poll starting at `start` that sees `seen`, as the loop runs it (the loop clears the
    /// re-arm flag when it starts a poll); returns whether the namespace is stable after it.
    fn poll_at(ns: &NsWatch, start: u64, seen: Option<Status>) -> bool {
        ns.rearm.store(false, Ordering::Release);
        let p = ns.begin_poll(|| start);
        ns.finish_poll(p, seen, MARGIN)
    }

    fn own(ns: &NsWatch) -> (Vec<u64>, u64) {
        let own = ns.own.lock();
        (own.in_flight.keys().copied().collect(), own.acked)
    }

    #[test]
    fn writes_register_and_mark_stable_namespaces_updating_and_rearm() {
        let (w, mut rx) = Watcher::new(ConsistencyConfig::default());
        let stamp = acked_write(&w, "a");
        assert_eq!(
            rx.try_recv().unwrap(),
            "a",
            "the loop is woken for a new namespace"
        );
        assert_eq!(
            w.snapshot("a"),
            (Status::Unknown, None),
            "not published before the loop's turn"
        );
        w.publish_pending();
        assert_eq!(w.last_write_ms("a"), stamp, "the first write counts");
        let ns = w.get("a").unwrap();
        assert_eq!(own(&ns), (vec![], stamp), "the pending state was published");
        w.register("a");
        assert!(
            Arc::ptr_eq(&ns, &w.get("a").unwrap()),
            "one NsWatch per namespace"
        );
        ns.cut.status.store(Status::Stable as u8, Ordering::Release);
        ns.cut.watermark.store(stamp + 100, Ordering::Release);
        let next = w.begin_write("a");
        w.note_write("a", next.stamp());
        assert_eq!(w.snapshot("a"), (Status::Updating, Some(stamp + 100)));
        assert!(ns.rearm.load(Ordering::Acquire));
        assert_eq!(w.snapshot("b"), (Status::Unknown, None));
        // A direct registration publishes a namespace a write left pending.
        let pending = w.begin_write("c");
        w.register("c");
        assert_eq!(own(&w.get("c").unwrap()).0, vec![pending.stamp()]);
    }

    #[test]
    fn a_refused_write_registers_nothing() {
        let (w, mut rx) = Watcher::new(ConsistencyConfig::default());
        let refused = w.begin_write("r");
        // Still being validated: the loop keeps its pending state.
        w.publish_pending();
        assert!(w.get("r").is_none());
        assert_eq!(w.own_writes("r"), Some((vec![refused.stamp()], 0)));
        drop(refused);
        w.publish_pending();
        assert!(w.get("r").is_none(), "never registered");
        assert_eq!(w.own_writes("r"), None, "nothing left pending");
        assert!(rx.try_recv().is_err(), "the loop was not woken");
    }

    #[test]
    fn stable_only_once_the_watermark_covers_the_newest_acknowledged_write() {
        let (w, _rx) = Watcher::new(ConsistencyConfig::default());
        let stamp = acked_write(&w, "a");
        w.publish_pending();
        let ns = w.get("a").unwrap();
        // Upstream is up to date within the margin after the write: the cut moves but stays
        // behind the write, so the namespace is not stable (and stays in the fast tier).
        assert!(!poll_at(&ns, stamp + 300, Some(Status::Stable)));
        assert_eq!(
            ns.snapshot(),
            (Status::Updating, Some(stamp + 300 - MARGIN))
        );
        // A poll starting a full margin after the stamp covers it.
        assert!(poll_at(&ns, stamp + MARGIN, Some(Status::Stable)));
        assert_eq!(ns.snapshot(), (Status::Stable, Some(stamp)));
        // A later acknowledged write marks it updating at once, until a poll covers it too.
        while now_ms() <= stamp {
            std::hint::spin_loop(); // a later stamp (at most a millisecond)
        }
        let next = acked_write(&w, "a");
        assert_eq!(ns.snapshot().0, Status::Updating);
        assert!(!poll_at(&ns, next + MARGIN - 1, Some(Status::Stable)));
        assert!(poll_at(&ns, next + MARGIN + 1000, Some(Status::Stable)));
        assert_eq!(ns.snapshot(), (Status::Stable, Some(next + 1000)));
        // The watermark never moves backwards.
        assert!(poll_at(&ns, next + MARGIN, Some(Status::Stable)));
        assert_eq!(ns.snapshot(), (Status::Stable, Some(next + 1000)));
    }

    #[test]
    fn writes_in_flight_cap_the_watermark() {
        let (w, _rx) = Watcher::new(ConsistencyConfig::default());
        let slow = w.begin_write("a");
        w.note_write("a", slow.stamp());
        w.publish_pending();
        let ns = w.get("a").unwrap();
        let s = slow.stamp();
        // Long after the stamp, upstream says up to date, but the write is still in flight:
        // the cut stays below it and the namespace is not stable.
        assert!(!poll_at(&ns, s + 10_000, Some(Status::Stable)));
        assert_eq!(ns.snapshot(), (Status::Updating, Some(s - 1)));
        // Acknowledged during a poll that started while it was in flight: still capped.
        ns.rearm.store(false, Ordering::Release);
        let p = ns.begin_poll(|| s + 20_000);
        w.note_ack("a", s);
        drop(slow);
        assert!(!ns.finish_poll(p, Some(Status::Stable), MARGIN));
        assert_eq!(ns.snapshot(), (Status::Updating, Some(s - 1)));
        // The next poll covers it.
        assert!(poll_at(&ns, s + 30_000, Some(Status::Stable)));
        assert_eq!(ns.snapshot(), (Status::Stable, Some(s + 30_000 - MARGIN)));
        // The smallest of several in-flight stamps caps; each leaves on its own drop.
        let (a, b) = (w.begin_write("a"), w.begin_write("a"));
        let twin = InFlight {
            watch: ns.clone(),
            stamp: a.stamp(),
        };
        ns.own
            .lock()
            .in_flight
            .entry(twin.stamp)
            .and_modify(|n| *n += 1);
        assert_eq!(own(&ns).0.first(), Some(&a.stamp()));
        drop(twin);
        assert_eq!(
            own(&ns).0.first(),
            Some(&a.stamp()),
            "the twin stamp is still in flight"
        );
        drop(a);
        drop(b);
        assert_eq!(own(&ns).0, Vec::<u64>::new());
    }

    #[test]
    fn a_failed_write_leaves_the_in_flight_set_and_does_not_hold_stability() {
        let (w, _rx) = Watcher::new(ConsistencyConfig::default());
        let write = w.begin_write("a");
        let s = write.stamp();
        w.note_write("a", s);
        drop(write); // upstream refused or errored: no acknowledgement
        w.publish_pending();
        let ns = w.get("a").unwrap();
        assert_eq!(own(&ns), (vec![], 0));
        assert!(poll_at(&ns, s + 100, Some(Status::Stable)));
        assert_eq!(
            ns.snapshot(),
            (Status::Stable, Some((s + 100).saturating_sub(MARGIN)))
        );
    }

    #[test]
    fn failed_polls_keep_the_cut_and_the_status() {
        let (w, _rx) = Watcher::new(ConsistencyConfig::default());
        let stamp = acked_write(&w, "a");
        w.publish_pending();
        let ns = w.get("a").unwrap();
        // Cold: a failing poll neither sets a cut nor a status.
        assert!(!poll_at(&ns, stamp + 5_000, None));
        assert_eq!(ns.snapshot(), (Status::Unknown, None));
        // Updating with a cut: failures keep both, in the fast tier.
        assert!(!poll_at(&ns, stamp + 300, Some(Status::Stable)));
        let cut = ns.snapshot();
        assert_eq!(cut.0, Status::Updating);
        for i in 0..3 {
            assert!(!poll_at(&ns, stamp + 10_000 + i, None));
            assert_eq!(ns.snapshot(), cut);
        }
        // Upstream reporting updating keeps the cut too.
        assert!(!poll_at(&ns, stamp + 20_000, Some(Status::Updating)));
        assert_eq!(ns.snapshot(), cut);
        // Stable, then failing: stays stable (stable tier) at the same cut.
        assert!(poll_at(&ns, stamp + 30_000, Some(Status::Stable)));
        let stable = ns.snapshot();
        assert!(poll_at(&ns, stamp + 40_000, None));
        assert_eq!(ns.snapshot(), stable);
    }

    #[test]
    fn a_write_during_a_poll_rearms_the_namespace() {
        let cfg = ConsistencyConfig::default();
        let (w, _rx) = Watcher::new(cfg.clone());
        let first = acked_write(&w, "a");
        w.publish_pending();
        let ns = w.get("a").unwrap();
        assert!(poll_at(&ns, first + MARGIN, Some(Status::Stable)));
        ns.next_due_ms.store(
            first + MARGIN + cfg.stable_poll_interval_ms,
            Ordering::Release,
        );

        // A write acknowledged while a poll is out: that poll cannot cover it.
        ns.rearm.store(false, Ordering::Release);
        let start = first + 10_000;
        let p = ns.begin_poll(|| start);
        let during = acked_write(&w, "a");
        assert_eq!(
            ns.snapshot().0,
            Status::Updating,
            "the write marks it at once"
        );
        assert!(!ns.finish_poll(p, Some(Status::Stable), MARGIN));
        assert_eq!(ns.snapshot().0, Status::Updating);
        assert!(ns.rearm.load(Ordering::Acquire));
        assert!(
            ns.due(start + cfg.poll_interval_ms, cfg.poll_interval_ms),
            "re-armed: polled again after one fast-tier interval"
        );
        assert!(!ns.due(start + cfg.poll_interval_ms - 1, cfg.poll_interval_ms));

        // A write still in flight when the poll ends: not stable either.
        ns.rearm.store(false, Ordering::Release);
        let p = ns.begin_poll(|| during + 10_000);
        let open = w.begin_write("a");
        w.note_write("a", open.stamp());
        assert!(!ns.finish_poll(p, Some(Status::Stable), MARGIN));
        assert_eq!(ns.snapshot().0, Status::Updating);
        w.note_ack("a", open.stamp());
        drop(open);
        let covered = during.max(first) + 20_000;
        assert!(poll_at(&ns, covered, Some(Status::Stable)));
        assert_eq!(ns.snapshot(), (Status::Stable, Some(covered - MARGIN)));
    }
}
