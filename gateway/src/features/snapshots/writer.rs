//! The automatic snapshot writer: a loop on the control runtime over every namespace whose policy
//! has `facetFields`.
//!
//! A namespace gets a new snapshot when all of these hold:
//! 1. the watcher has a stable watermark for it, newer than the last snapshot's `watermark_ms`;
//! 2. there is data the last snapshot did not see: no snapshot yet, or a write through this
//!    gateway after the last snapshot's cut (event-driven: an idle namespace whose watermark
//!    merely advances with each stable poll gets no new snapshot);
//! 3. at least `interval` (else `LAYER_SNAPSHOT_MIN_INTERVAL_MS`) passed since the last attempt;
//! 4. the watermark covers the newest write seen through this gateway, or the writer has already
//!    waited one `interval` for it to (so a steady write load still gets snapshots).
//!
//! A namespace's first snapshot is only recorded once it has rows.
//!
//! Writes made directly to Turbopuffer (not through the gateway) are picked up by the next
//! snapshot that a gateway write or a manual job triggers. After a write, `retention` prunes
//! history entries and bodies older than the window, always keeping the newest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Snapshots, compute};
use crate::core::Control;
use crate::core::http::now_ms;
use crate::core::metrics;
use crate::core::upstream::Upstream;
use crate::sources::snapshot_store::{Policy, durable};

/// How often the writer looks for advanced watermarks.
const TICK: Duration = Duration::from_millis(500);
/// Rows per upstream page for automatic snapshots.
const PAGE: usize = 5_000;
const METRIC: &str = "layer_snapshot_events_total";

#[derive(Debug, Default)]
struct NsState {
    /// `watermark_ms` of the newest history entry; `None` until read from the store.
    last_wm: Option<u64>,
    last_attempt_ms: u64,
    /// When the writer first held back because a known write was not under the watermark yet.
    deferred_since_ms: Option<u64>,
}

/// Starts the writer (and loads API-set policies) on the control runtime.
pub fn spawn(snaps: Arc<Snapshots>, control: &Control) {
    let upstreams = control.upstreams.clone();
    control.handle.spawn(async move {
        match snaps.store.load_policies().await {
            Ok(n) if n > 0 => tracing::info!(policies = n, "loaded snapshot policies"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "loading snapshot policies failed"),
        }
        let mut state: HashMap<String, NsState> = HashMap::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (ns, policy) in snaps.store.facet_namespaces() {
                let st = state.entry(ns.clone()).or_default();
                step(&snaps, &upstreams.for_ns(&ns), &ns, &policy, st).await;
            }
        }
    });
}

async fn step(snaps: &Snapshots, upstream: &Upstream, ns: &str, policy: &Policy, st: &mut NsState) {
    let Some(wm) = snaps.core.watcher.snapshot(ns).1 else {
        snaps.core.watcher.register(ns);
        return;
    };
    let store = snaps.store.objects();
    let last_wm = match st.last_wm {
        Some(v) => v,
        None => match durable::history(store, ns).await {
            Ok(h) => *st.last_wm.insert(h.first().map_or(0, |e| e.watermark_ms)),
            Err(e) => {
                tracing::debug!(namespace = ns, error = %e, "snapshot history unavailable");
                return;
            }
        },
    };
    if wm <= last_wm {
        return;
    }
    if last_wm > 0 && snaps.core.watcher.last_write_ms(ns) <= last_wm {
        return;
    }
    let now = now_ms();
    let interval = policy.interval_ms(snaps.core.config.gateway.snapshots.min_interval_ms);
    if now.saturating_sub(st.last_attempt_ms) < interval {
        return;
    }
    // A write the watermark does not cover yet: wait for the index to catch up (so the snapshot
    // includes it), but no longer than one interval — under a constant write load the watermark
    // never covers the newest write, and snapshots must still land.
    if snaps.core.watcher.last_write_ms(ns) > wm {
        let since = *st.deferred_since_ms.get_or_insert(now);
        if now.saturating_sub(since) < interval {
            return;
        }
    }
    st.deferred_since_ms = None;
    st.last_attempt_ms = now;
    let body =
        match compute::from_origin(snaps, upstream, ns, &policy.facet_fields, None, PAGE, None)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                metrics::feature_event(METRIC, "event", "write_failed", 1);
                tracing::warn!(namespace = ns, error = %e, "automatic snapshot failed");
                return;
            }
        };
    if last_wm == 0 && body.row_count == 0 {
        // Nothing to histogram yet (e.g. the policy was set before the first write).
        return;
    }
    let body = match snaps.store.record(body, now_ms()).await {
        Ok(b) => b,
        Err(e) => {
            metrics::feature_event(METRIC, "event", "write_failed", 1);
            tracing::warn!(namespace = ns, error = %e, "writing snapshot failed");
            return;
        }
    };
    metrics::feature_event(METRIC, "event", "written", 1);
    super::count_skipped(&body);
    tracing::info!(namespace = ns, sha = %body.sha, watermark_ms = body.watermark_ms, rows = body.row_count, "snapshot written");
    st.last_wm = Some(body.watermark_ms);
    if let Some(keep) = policy.retention_ms() {
        match durable::prune(store, ns, now_ms().saturating_sub(keep)).await {
            Ok(n) => {
                metrics::feature_event(METRIC, "event", "pruned", n as u64);
                super::count_pruned(ns, n as u64);
            }
            Err(e) => tracing::warn!(namespace = ns, error = %e, "pruning snapshots failed"),
        }
    }
}
