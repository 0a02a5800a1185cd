//! Snapshot jobs and the automatic snapshot writer: materialized facet histograms of a
//! namespace (`fields[].values[] = {v, n}`), written to the snapshot store
//! (`crate::sources::snapshot_store`, which also serves them to scans, metadata and warm).
//!
//! Where to start:
//! - [`writer`]: the automatic writer on the control runtime. It fires when a namespace with
//!   `facetFields` sees its stable watermark advance past data it has not snapshotted (a write
//!   through this gateway after the last snapshot's cut, or no snapshot yet), at most once per
//!   `interval`, then prunes by `retention` (always keeping the newest body).
//! - [`compute`]: one histogram pass over origin (paginated, shard fan-out bounded by
//!   `scan.threads`, a stable cut at the watermark) or over the document cache.
//! - [`routes`]: `POST /snapshots` jobs (sources `auto`, `stored`, `cache`, `origin`), job list
//!   and get, `history` (newest first, key listing only), bodies by sha or 7-char prefix,
//!   `/v2/activity/snapshots`, and `GET`/`PUT snapshot-policy`.
//! - [`facets`]: counting and the 10,000 distinct-value cap.
//!
//! Job state is in memory (lost on restart); bodies, history, activity and API-set policies are
//! durable. Only unfiltered snapshots computed from origin join the history (and so become the
//! "latest" snapshot that scans and `stored` jobs serve from); filtered or cache-computed bodies
//! are stored by sha only, so they can be read back but never mistaken for the namespace's facets.
//!
//! Metrics: `layer_snapshot_events_total{event}`, and the catalog's
//! `hevlayer_snapshot_field_skipped_total{namespace,store_kind,field,reason}` (a facet field a
//! written snapshot left out, past the distinct-value cap; `field` bounded to 256 values, then
//! `_other`) and `hevlayer_snapshot_pruned_total{namespace,store_kind}`.

pub mod compute;
pub mod facets;
pub mod routes;
pub mod writer;

const FIELD_SKIPPED: &str = "hevlayer_snapshot_field_skipped_total";
const PRUNED: &str = "hevlayer_snapshot_pruned_total";

/// A snapshot body was written: counts the facet fields it left out.
fn count_skipped(body: &crate::sources::snapshot_store::SnapshotBody) {
    use crate::core::labeled::{self, bounded_namespace, bounded_value, labels};
    for f in &body.fields_skipped {
        let l = labels(&[
            ("namespace", &bounded_namespace(&body.namespace)),
            ("store_kind", "turbopuffer"),
            ("field", &bounded_value("field", &f.name)),
            (
                "reason",
                if f.reason == "exceeded_cap" {
                    "exceeded_cap"
                } else {
                    "other"
                },
            ),
        ]);
        labeled::count(FIELD_SKIPPED, l, 1);
    }
}

/// The retention policy pruned `n` snapshots of `ns`.
fn count_pruned(ns: &str, n: u64) {
    use crate::core::labeled::{self, bounded_namespace, labels};
    let l = labels(&[
        ("namespace", &bounded_namespace(ns)),
        ("store_kind", "turbopuffer"),
    ]);
    labeled::count(PRUNED, l, n);
}

use std::sync::Arc;

use http::Method;
use serde::Serialize;

use crate::core::config::Scope;
use crate::core::jobs::{JobKind, Jobs};
use crate::core::router::{Route, handler};
use crate::core::runtime::Background;
use crate::core::{Control, Core};
use crate::sources::snapshot_store::SnapshotStore;
use crate::sources::warmth::Warmth;

/// A snapshot job.
#[derive(Debug)]
pub struct SnapshotJob;

/// A snapshot job's request.
#[derive(Debug, Serialize)]
pub struct SnapshotSpec {
    pub field: String,
    pub source: &'static str,
    pub effective_source: &'static str,
}

/// The body a snapshot job wrote.
#[derive(Debug, Default, Serialize)]
pub struct SnapshotOutcome {
    pub sha: Option<String>,
    pub stable_as_of: Option<u64>,
}

impl JobKind for SnapshotJob {
    const PREFIX: &'static str = "snapshot-job";
    type Spec = SnapshotSpec;
    type Outcome = SnapshotOutcome;
    fn stable_as_of(o: &SnapshotOutcome) -> Option<u64> {
        o.stable_as_of
    }
}

/// A snapshot job's record.
pub type Job = crate::core::jobs::Job<SnapshotJob>;

/// The snapshot feature: its jobs, and the sources it reads and writes.
pub struct Snapshots {
    pub core: Arc<Core>,
    pub store: Arc<SnapshotStore>,
    pub warmth: Arc<Warmth>,
    pub jobs: Jobs<SnapshotJob>,
    /// Distinct values per field before it is skipped (`gateway.snapshots.fieldCap`).
    pub field_cap: usize,
}

impl Snapshots {
    pub fn new(core: Arc<Core>, store: Arc<SnapshotStore>, warmth: Arc<Warmth>) -> Arc<Self> {
        let field_cap = core.config.gateway.snapshots.field_cap;
        crate::core::metrics::declare_event("layer_snapshot_events_total");
        use crate::core::labeled::{Kind, describe};
        describe(
            FIELD_SKIPPED,
            Kind::Counter,
            "Facet fields snapshots left out.",
        );
        describe(PRUNED, Kind::Counter, "Snapshots pruned by retention.");
        Arc::new(Snapshots {
            core,
            store,
            warmth,
            jobs: Jobs::new(),
            field_cap,
        })
    }

    /// The snapshot routes.
    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        use Method as M;
        use Scope::{Read, Write};
        let s = self;
        vec![
            Route::new(
                M::POST,
                "/v2/namespaces/{ns}/snapshots",
                "create_snapshot",
                Read,
                handler(s.clone(), Snapshots::create_route),
            ),
            Route::new(
                M::GET,
                "/v2/namespaces/{ns}/snapshot-jobs",
                "list_snapshot_jobs",
                Read,
                handler(s.clone(), Snapshots::list_jobs),
            ),
            Route::new(
                M::GET,
                "/v2/namespaces/{ns}/snapshot-jobs/{id}",
                "get_snapshot_job",
                Read,
                handler(s.clone(), Snapshots::get_job),
            ),
            Route::new(
                M::GET,
                "/v2/namespaces/{ns}/history",
                "namespace_history",
                Read,
                handler(s.clone(), Snapshots::history_route),
            ),
            Route::new(
                M::GET,
                "/v2/namespaces/{ns}/snapshots/{sha}",
                "get_snapshot",
                Read,
                handler(s.clone(), Snapshots::get_snapshot),
            ),
            Route::new(
                M::GET,
                "/v2/namespaces/{ns}/snapshot-policy",
                "get_snapshot_policy",
                Read,
                handler(s.clone(), Snapshots::get_policy),
            ),
            Route::new(
                M::PUT,
                "/v2/namespaces/{ns}/snapshot-policy",
                "put_snapshot_policy",
                Write,
                handler(s.clone(), Snapshots::put_policy),
            ),
            Route::new(
                M::GET,
                "/v2/activity/snapshots",
                "snapshot_activity",
                Read,
                handler(s.clone(), Snapshots::activity_route),
            ),
        ]
    }
}

impl Background for Snapshots {
    /// The automatic writer (it loads the API-set policies first).
    fn start(self: Arc<Self>, control: &Control) {
        writer::spawn(self, control);
    }
}
