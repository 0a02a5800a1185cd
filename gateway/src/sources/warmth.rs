//! The warm watermark handle: each namespace's `cache_warmed_through` (the cut of its last
//! successful warm), and the way other features ask for a background warm without knowing the
//! warm feature (the composition root connects [`Warmth::set_background`] to it).
//!
//! State is in gateway memory only: after a restart a populated cache counts as "never warmed".

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::core::watcher::Watcher;

/// Starts a background warm of a namespace (unless the tier is down or one is running).
pub type BackgroundWarm = Box<dyn Fn(&str) + Send + Sync>;

/// `cache_warmed_through` per namespace, and the background-warm hook.
pub struct Warmth {
    watcher: Arc<Watcher>,
    warmed: Mutex<HashMap<String, u64>>,
    background: OnceLock<BackgroundWarm>,
}

impl Warmth {
    pub fn new(watcher: Arc<Watcher>) -> Arc<Warmth> {
        Arc::new(Warmth {
            watcher,
            warmed: Mutex::new(HashMap::new()),
            background: OnceLock::new(),
        })
    }

    /// Records a successful warm of `ns` through `cut` (never moves backwards).
    pub fn stamp(&self, ns: &str, cut: u64) {
        let mut m = self.warmed.lock();
        let e = m.entry(ns.to_string()).or_insert(cut);
        *e = (*e).max(cut);
    }

    /// `cache_warmed_through` of `ns`: the cut of its last successful warm, if any.
    ///
    /// When no write went through this gateway to `ns` after that cut, nothing with a later
    /// `_hevlayer_upserted_at` exists, so the cached view is also the view at the current
    /// watermark: the value is promoted to the watermark (a quiet namespace does not look stale
    /// just because its watermark keeps advancing). Writes made outside this gateway are not seen
    /// (documented; warm explicitly after bulk loads that bypass it).
    pub fn warmed_through(&self, ns: &str) -> Option<u64> {
        let warmed = self.warmed.lock().get(ns).copied()?;
        match self.watcher.snapshot(ns).1 {
            Some(wm) if wm > warmed && self.watcher.last_write_ms(ns) <= warmed => {
                self.stamp(ns, wm);
                Some(wm)
            }
            _ => Some(warmed),
        }
    }

    /// Namespaces warmed at least once since start, with their `cache_warmed_through`.
    pub fn warmed(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .warmed
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        v.sort();
        v
    }

    /// Connects the background warm (once, by the composition root).
    pub fn set_background(&self, start: BackgroundWarm) {
        let _ = self.background.set(start);
    }

    /// Asks for a background warm of `ns` (the Auto policy's stale or empty cache).
    pub fn request_background(&self, ns: &str) {
        if let Some(start) = self.background.get() {
            start(ns);
        }
    }
}
