//! The consistency watcher: a control loop on the control runtime that polls upstream metadata of
//! registered namespaces and publishes, lock-free, each namespace's index status and stable
//! watermark to the shards.
//!
//! - Registration: write traffic through the gateway ([`Watcher::note_write`]) and configured
//!   indexes. Listing and metadata reads do not register.
//! - Cadence: cold (never polled) and updating namespaces every `pollIntervalMs`; stable ones
//!   every `stablePollIntervalMs`; a write re-arms the fast tier.
//! - A poll that sees `index.status == "up-to-date"` moves the watermark to
//!   `poll start − safetyMarginMs`, never backwards. A failed poll keeps the last state.
//! - A write to a namespace last seen stable marks it updating at once (keeping its watermark), so
//!   queries racing the write already get the predicate and never see rows newer than the cut.
//!
//! Shards read a namespace's state with one `ArcSwap` load and two atomic loads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Method};
use tokio::sync::{Semaphore, mpsc};

use super::config::ConsistencyConfig;
use super::http::now_ms;
use super::metrics;
use super::upstream::Upstream;

/// A queued registration: the namespace and the time of the write that queued it.
pub type Registration = (String, u64);

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

/// One namespace's published state.
#[derive(Debug, Default)]
pub struct NsWatch {
    status: AtomicU8,
    /// Epoch ms; 0 = no watermark yet.
    watermark: AtomicU64,
    /// Epoch ms of the last completed poll that saw `up-to-date`.
    stable_observed_ms: AtomicU64,
    next_due_ms: AtomicU64,
    last_poll_start_ms: AtomicU64,
    rearm: AtomicBool,
    in_flight: AtomicBool,
    /// Epoch ms of the last write seen through this gateway (0 = none since start). The snapshot
    /// writer uses it to tell a watermark advance that brought new data from an idle one.
    last_write_ms: AtomicU64,
}

impl NsWatch {
    /// Status and watermark, read once (the "one consistency cut" a request uses).
    pub fn snapshot(&self) -> (Status, Option<u64>) {
        let wm = self.watermark.load(Ordering::Acquire);
        (
            Status::from_u8(self.status.load(Ordering::Acquire)),
            (wm > 0).then_some(wm),
        )
    }
}

/// The watcher's shared half.
pub struct Watcher {
    map: ArcSwap<HashMap<String, Arc<NsWatch>>>,
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
                tx,
                cfg,
            }),
            rx,
        )
    }

    /// A namespace's state, if registered.
    pub fn get(&self, ns: &str) -> Option<Arc<NsWatch>> {
        self.map.load().get(ns).cloned()
    }

    /// Status and watermark for a namespace (`Unknown`, `None` when unregistered).
    pub fn snapshot(&self, ns: &str) -> (Status, Option<u64>) {
        self.get(ns)
            .map_or((Status::Unknown, None), |w| w.snapshot())
    }

    /// Called by the write path before forwarding: registers the namespace or re-arms the fast
    /// tier, and marks a stable namespace updating. Never blocks: a full registration queue
    /// drops the registration (the next write retries) and counts it.
    pub fn note_write(&self, ns: &str) {
        match self.get(ns) {
            Some(w) => {
                w.last_write_ms.fetch_max(now_ms(), Ordering::AcqRel);
                let _ = w.status.compare_exchange(
                    Status::Stable as u8,
                    Status::Updating as u8,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                w.rearm.store(true, Ordering::Release);
            }
            None => {
                // The write's time travels with the registration: a namespace's first write
                // through the gateway must count for the snapshot writer and the warm cut too.
                if self.tx.try_send((ns.to_string(), now_ms())).is_err() {
                    metrics::watcher_event("registration_dropped");
                }
            }
        }
    }

    /// Epoch ms of the last write seen through this gateway for `ns` (0 = none since start).
    pub fn last_write_ms(&self, ns: &str) -> u64 {
        self.get(ns)
            .map_or(0, |w| w.last_write_ms.load(Ordering::Acquire))
    }

    /// Registers a namespace directly (configured indexes; the loop's own registrations).
    pub fn register(&self, ns: &str) {
        self.register_write(ns, 0);
    }

    /// Registers a namespace whose write at `write_ms` (0 = not a write) queued the registration.
    fn register_write(&self, ns: &str, write_ms: u64) {
        if let Some(w) = self.get(ns) {
            w.last_write_ms.fetch_max(write_ms, Ordering::AcqRel);
            return;
        }
        self.map.rcu(|m| {
            let mut next = HashMap::clone(m);
            next.entry(ns.to_string()).or_insert_with(|| {
                let w = NsWatch::default();
                w.last_write_ms.store(write_ms, Ordering::Release);
                Arc::new(w)
            });
            next
        });
        if let Some(w) = self.get(ns) {
            w.last_write_ms.fetch_max(write_ms, Ordering::AcqRel);
        }
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
    pub async fn run(self: Arc<Self>, mut rx: mpsc::Receiver<Registration>, upstream: Upstream) {
        let tick = Duration::from_millis((self.cfg.poll_interval_ms / 4).clamp(10, 250));
        let permits = Arc::new(Semaphore::new(self.cfg.max_concurrent_polls));
        loop {
            while let Ok((ns, write_ms)) = rx.try_recv() {
                self.register_write(&ns, write_ms);
            }
            let now = now_ms();
            let map = self.map.load_full();
            for (ns, w) in map.iter() {
                if w.in_flight.load(Ordering::Acquire) {
                    continue;
                }
                let last = w.last_poll_start_ms.load(Ordering::Acquire);
                let due = now >= w.next_due_ms.load(Ordering::Acquire)
                    || (w.rearm.load(Ordering::Acquire) && now >= last + self.cfg.poll_interval_ms);
                if !due {
                    continue;
                }
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                w.in_flight.store(true, Ordering::Release);
                w.rearm.store(false, Ordering::Release);
                let (w, ns, up, cfg) = (w.clone(), ns.clone(), upstream.clone(), self.cfg.clone());
                tokio::spawn(async move {
                    poll(&ns, &w, &up, &cfg).await;
                    w.in_flight.store(false, Ordering::Release);
                    drop(permit);
                });
            }
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                Some((ns, write_ms)) = rx.recv() => self.register_write(&ns, write_ms),
            }
        }
    }
}

/// One metadata poll; updates `w` in place.
async fn poll(ns: &str, w: &NsWatch, up: &Upstream, cfg: &ConsistencyConfig) {
    let start = now_ms();
    w.last_poll_start_ms.store(start, Ordering::Release);
    let result = up
        .send(
            "watcher_metadata",
            Method::GET,
            &format!("/v2/namespaces/{ns}/metadata"),
            &HeaderMap::new(),
            Bytes::new(),
        )
        .await;
    let status = match result {
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
    let stable = match status {
        Some(Status::Stable) => {
            // The cut: everything acknowledged before the poll started (minus the margin for
            // writes still in flight) is indexed. Never moves backwards.
            w.watermark
                .fetch_max(start.saturating_sub(cfg.safety_margin_ms), Ordering::AcqRel);
            w.stable_observed_ms.store(now_ms(), Ordering::Release);
            // A write that arrived during the poll re-armed the namespace: it is behind the new
            // watermark, so the namespace is updating, not stable.
            let next = if w.rearm.load(Ordering::Acquire) {
                Status::Updating
            } else {
                Status::Stable
            };
            w.status.store(next as u8, Ordering::Release);
            metrics::watcher_event("poll_stable");
            true
        }
        Some(s) => {
            w.status.store(s as u8, Ordering::Release);
            metrics::watcher_event("poll_updating");
            false
        }
        None => Status::from_u8(w.status.load(Ordering::Acquire)) == Status::Stable,
    };
    let interval = if stable {
        cfg.stable_poll_interval_ms
    } else {
        cfg.poll_interval_ms
    };
    w.next_due_ms.store(start + interval, Ordering::Release);
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

    #[test]
    fn writes_mark_stable_namespaces_updating_and_rearm() {
        let (w, mut rx) = Watcher::new(ConsistencyConfig::default());
        let before = now_ms();
        w.note_write("a");
        let (ns, write_ms) = rx.try_recv().unwrap();
        assert_eq!(ns, "a", "unregistered namespaces are sent for registration");
        assert!(write_ms >= before);
        // The loop's registration keeps the first write's time.
        w.register_write(&ns, write_ms);
        assert_eq!(w.last_write_ms("a"), write_ms);
        w.register("a");
        assert_eq!(w.last_write_ms("a"), write_ms);
        let ns = w.get("a").unwrap();
        ns.status.store(Status::Stable as u8, Ordering::Release);
        ns.watermark.store(100, Ordering::Release);
        w.note_write("a");
        assert_eq!(w.snapshot("a"), (Status::Updating, Some(100)));
        assert!(ns.rearm.load(Ordering::Acquire));
        assert_eq!(w.snapshot("b"), (Status::Unknown, None));
    }
}
