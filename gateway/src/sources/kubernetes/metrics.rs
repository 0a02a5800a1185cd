//! The watch's metrics (declared only when the watch runs):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `layer_kubernetes_watch_events_total` | counter | `kind` (`vectorstores`, `indexes`, `apikeys`), `event` (`listed`, `added`, `modified`, `deleted`, `bookmark`, `error`) |
//! | `layer_kubernetes_watch_errors_total` | counter | `kind`, `reason` (`connect`, `status`, `decode`, `gone`: a 410 that made it list again) |
//! | `layer_kubernetes_watch_last_sync_timestamp_seconds` | gauge | `kind`: when the collection was last known current (a list or an event) |
//! | `layer_kubernetes_watch_objects` | gauge | `kind`: objects held |

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::core::labeled::{self, Kind};

pub const EVENTS: &str = "layer_kubernetes_watch_events_total";
pub const ERRORS: &str = "layer_kubernetes_watch_errors_total";
pub const LAST_SYNC: &str = "layer_kubernetes_watch_last_sync_timestamp_seconds";
pub const OBJECTS: &str = "layer_kubernetes_watch_objects";

/// The gauges of every watched kind (a gauge's series are replaced together).
#[derive(Default)]
pub struct WatchMetrics {
    gauges: Mutex<BTreeMap<&'static str, (i64, i64)>>,
}

impl WatchMetrics {
    /// Declares the families.
    pub fn new() -> WatchMetrics {
        labeled::describe(EVENTS, Kind::Counter, "Kubernetes watch events, by kind.");
        labeled::describe(
            ERRORS,
            Kind::Counter,
            "Kubernetes watch failures, by reason.",
        );
        labeled::describe(LAST_SYNC, Kind::Gauge, "When the watch was last current.");
        labeled::describe(OBJECTS, Kind::Gauge, "Objects the watch holds.");
        WatchMetrics::default()
    }

    pub fn event(&self, kind: &'static str, event: &'static str) {
        labeled::count(
            EVENTS,
            labeled::labels(&[("kind", kind), ("event", event)]),
            1,
        );
    }

    pub fn error(&self, kind: &'static str, reason: &'static str) {
        labeled::count(
            ERRORS,
            labeled::labels(&[("kind", kind), ("reason", reason)]),
            1,
        );
    }

    /// The collection is current now and holds `objects`.
    pub fn synced(&self, kind: &'static str, objects: usize) {
        let now = (crate::core::http::now_ms() / 1000) as i64;
        let mut g = self.gauges.lock();
        g.insert(kind, (now, objects as i64));
        let series = |pick: fn(&(i64, i64)) -> i64| {
            g.iter()
                .map(|(k, v)| (labeled::labels(&[("kind", k)]), pick(v)))
                .collect::<Vec<_>>()
        };
        labeled::set_gauges(LAST_SYNC, series(|v| v.0));
        labeled::set_gauges(OBJECTS, series(|v| v.1));
    }
}
