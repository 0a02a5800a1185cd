//! Snapshots: materialized facet histograms of a namespace (`fields[].values[] = {v, n}`),
//! content-addressed and stored durably in the object store, with a per-namespace history, a
//! cross-namespace activity stream and a snapshot policy.
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
//! - [`durable`]: the object-store layout. [`body`]: the body and its sha. [`facets`]: counting
//!   and the 10,000 distinct-value cap. [`policy`]: Index policy vs API-set policy.
//!
//! Job state is in memory (lost on restart); bodies, history, activity and API-set policies are
//! durable. Only unfiltered snapshots computed from origin join the history (and so become the
//! "latest" snapshot that scans and `stored` jobs serve from); filtered or cache-computed bodies
//! are stored by sha only, so they can be read back but never mistaken for the namespace's facets.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::Config;
use crate::error::GatewayError;
use crate::handler::Shared;
use crate::jobs::Jobs;
use crate::store::ObjectStore;

mod body;
pub mod compute;
pub mod durable;
pub mod facets;
pub mod policy;
pub mod routes;
pub mod writer;

pub use body::{FacetValue, FieldHistogram, SkippedField, SnapshotBody};
pub use policy::Policy;
pub use routes::serve;
pub use writer::spawn;

/// How long a looked-up "latest snapshot" (or its absence) is trusted before the object store
/// is listed again, so other gateway replicas' writes become visible.
const LATEST_TTL: Duration = Duration::from_secs(10);
/// Namespaces whose latest body (or its absence) is cached at most (expired entries are dropped
/// past it).
const MAX_LATEST: usize = 10_000;

type LatestEntry = (Instant, Option<Arc<SnapshotBody>>);

/// The snapshot feature's shared state.
#[derive(Debug)]
pub struct Snapshots {
    pub store: ObjectStore,
    pub jobs: Jobs,
    /// Policies set through the API (they win over the Index's).
    policies: Mutex<HashMap<String, Policy>>,
    latest: Mutex<HashMap<String, LatestEntry>>,
    /// Namespaces whose lookup failed recently, until when not to retry.
    failed: Mutex<HashMap<String, Instant>>,
    field_cap: usize,
}

impl Snapshots {
    pub fn new(config: &Config, store: ObjectStore) -> Self {
        Snapshots {
            store,
            jobs: Jobs::new("snapshot-job"),
            policies: Mutex::new(HashMap::new()),
            latest: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            field_cap: config.gateway.snapshots.field_cap,
        }
    }

    /// Distinct values per field before it is skipped.
    pub fn field_cap(&self) -> usize {
        self.field_cap
    }

    /// The namespace's effective policy.
    pub fn policy(&self, shared: &Shared, ns: &str) -> Policy {
        if let Some(p) = self.policies.lock().get(ns) {
            return p.clone();
        }
        shared
            .indexes
            .get(ns)
            .map(Policy::from_index)
            .unwrap_or_default()
    }

    /// Every namespace whose policy has facet fields (the automatic writer's work list).
    pub fn facet_namespaces(&self, shared: &Shared) -> Vec<(String, Policy)> {
        let mut out: HashMap<String, Policy> = shared
            .indexes
            .iter()
            .map(|(ns, i)| (ns.clone(), Policy::from_index(i)))
            .collect();
        for (ns, p) in self.policies.lock().iter() {
            out.insert(ns.clone(), p.clone());
        }
        let mut v: Vec<(String, Policy)> = out
            .into_iter()
            .filter(|(_, p)| !p.facet_fields.is_empty())
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn set_policy(&self, ns: &str, p: Policy) {
        self.policies.lock().insert(ns.to_string(), p);
    }

    /// Remembers a body just recorded in the history as the namespace's latest (if newer) and
    /// mirrors it into the cache tier (best-effort).
    fn note_latest(&self, shared: &Shared, body: Arc<SnapshotBody>) {
        if !self.remember(&body.namespace, Some(body.clone())) {
            return;
        }
        let put = mirror_put(shared, &body);
        tokio::spawn(async move {
            if put.await.is_err() {
                crate::metrics::feature_event(
                    "layer_snapshot_events_total",
                    "event",
                    "mirror_failed",
                    1,
                );
            }
        });
    }

    /// Caches `body` as the latest of `ns` unless a newer one is cached already (a lookup that
    /// listed the store before the writer recorded a newer body must not regress it). Returns
    /// whether it was taken. The map is bounded: past [`MAX_LATEST`] entries, expired ones go.
    fn remember(&self, ns: &str, body: Option<Arc<SnapshotBody>>) -> bool {
        let mut map = self.latest.lock();
        if let (Some((_, Some(cur))), new) = (map.get(ns), &body)
            && new
                .as_ref()
                .is_none_or(|b| b.watermark_ms < cur.watermark_ms)
        {
            return false;
        }
        if map.len() >= MAX_LATEST {
            map.retain(|_, (at, _)| at.elapsed() < LATEST_TTL);
        }
        map.insert(ns.to_string(), (Instant::now(), body));
        true
    }
}

/// The cache-tier key of a namespace's latest body mirror (`Set::Snapshots`).
const MIRROR_ID: &str = "latest";

/// The latest snapshot of `ns` (the newest history entry's body), if one was ever written.
/// Cached in memory for [`LATEST_TTL`]; the object store is authoritative, and when it fails the
/// body mirrored in the cache tier (written with every snapshot and by `hint_cache_warm`) is
/// served instead. Only when both fail is it an error; callers that can serve elsewhere (scans
/// under `auto`) should treat that as "no snapshot".
pub async fn latest(shared: &Shared, ns: &str) -> Result<Option<Arc<SnapshotBody>>, GatewayError> {
    let s = &shared.snapshots;
    if let Some((at, body)) = s.latest.lock().get(ns)
        && at.elapsed() < LATEST_TTL
    {
        return Ok(body.clone());
    }
    if s.failed
        .lock()
        .get(ns)
        .is_some_and(|until| Instant::now() < *until)
    {
        return Err(GatewayError::ObjectStore(
            "the object store failed recently; retrying after a pause".into(),
        ));
    }
    let from_store = async {
        let history = durable::history(&s.store, ns).await?;
        Ok::<_, crate::store::StoreError>(match history.first() {
            Some(e) => durable::get_body(&s.store, ns, &e.sha).await?.map(Arc::new),
            None => None,
        })
    };
    let body = match from_store.await {
        Ok(b) => b,
        Err(e) => {
            // Serve the mirror; without one, remember the failure for a TTL (callers on
            // request paths must not wait on an unreachable store again and again).
            let mirrored = shared
                .cache
                .tier
                .get(layer_cache::Set::Snapshots, ns, MIRROR_ID)
                .await
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice::<SnapshotBody>(&b).ok());
            match mirrored {
                Some(b) => Some(Arc::new(b)),
                None => {
                    let mut failed = s.failed.lock();
                    if failed.len() >= MAX_LATEST {
                        let now = Instant::now();
                        failed.retain(|_, until| *until > now);
                    }
                    failed.insert(ns.to_string(), Instant::now() + LATEST_TTL);
                    return Err(e.into());
                }
            }
        }
    };
    s.failed.lock().remove(ns);
    s.remember(ns, body.clone());
    Ok(s.latest
        .lock()
        .get(ns)
        .and_then(|(_, b)| b.clone())
        .or(body))
}

/// Copies the latest body of `ns` into the cache tier (`hint_cache_warm` with `snapshots=true`).
/// Returns the body's object-store key, watermark and sha; `None` when the namespace has no
/// snapshot. 503 `cache_cold` when the tier cannot take it.
pub async fn mirror_latest(
    shared: &Shared,
    ns: &str,
) -> Result<Option<(String, u64, String)>, GatewayError> {
    let Some(body) = latest(shared, ns).await? else {
        return Ok(None);
    };
    mirror_put(shared, &body).await.map_err(|e| {
        GatewayError::CacheCold(format!("the cache tier refused the snapshot: {e}"))
    })?;
    Ok(Some((
        durable::body_key(ns, &body.sha),
        body.watermark_ms,
        body.sha.clone(),
    )))
}

/// Writes `body` to the cache tier's snapshot mirror (a `'static` future, spawnable).
fn mirror_put(shared: &Shared, body: &SnapshotBody) -> layer_cache::TierFuture<()> {
    let bytes = bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    shared.cache.tier.put(
        layer_cache::Set::Snapshots,
        &body.namespace,
        MIRROR_ID,
        bytes,
    )
}

/// Loads the API-set policies from the object store (at start).
pub async fn load_policies(shared: &Shared) -> Result<usize, GatewayError> {
    let s = &shared.snapshots;
    let mut n = 0;
    for l in s.store.list("snapshot-policy/").await? {
        let Some(ns) = l
            .key
            .strip_prefix("snapshot-policy/")
            .and_then(|k| k.strip_suffix(".json"))
        else {
            continue;
        };
        if let Some(bytes) = s.store.get(&l.key).await?
            && let Ok(p) = serde_json::from_slice::<Policy>(&bytes)
        {
            if !p.facet_fields.is_empty() {
                shared.watcher.register(ns);
            }
            s.set_policy(ns, p);
            n += 1;
        }
    }
    Ok(n)
}
