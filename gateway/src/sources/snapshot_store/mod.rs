//! The snapshot store: materialized facet histograms of a namespace, content-addressed and
//! stored durably in the object store ([`durable`]: bodies, per-namespace history, the activity
//! stream, API-set policies), the latest body per namespace (cached, and mirrored into the cache
//! tier so it serves while the object store is down), and the effective snapshot policy
//! ([`policy`]: the API-set one, else the Index's). Scans, snapshot jobs, warm and metadata read
//! snapshots through it; the snapshot feature writes them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::core::Core;
use crate::core::error::GatewayError;
use crate::core::store::{ObjectStore, StoreError};

mod body;
pub mod durable;
pub mod policy;

pub use body::{FacetValue, FieldHistogram, SkippedField, SnapshotBody};
pub use policy::Policy;

/// How long a looked-up "latest snapshot" (or its absence) is trusted before the object store
/// is listed again, so other gateway replicas' writes become visible.
const LATEST_TTL: Duration = Duration::from_secs(10);
/// Namespaces whose latest body (or its absence) is cached at most (expired entries are dropped
/// past it).
const MAX_LATEST: usize = 10_000;

type LatestEntry = (Instant, Option<Arc<SnapshotBody>>);

/// The snapshot store: durable bodies, history and policies, and the cached latest body per
/// namespace.
pub struct SnapshotStore {
    core: Arc<Core>,
    /// Policies set through the API (they win over the Index's).
    policies: Mutex<HashMap<String, Policy>>,
    latest: Mutex<HashMap<String, LatestEntry>>,
    /// Namespaces whose lookup failed recently, until when not to retry.
    failed: Mutex<HashMap<String, Instant>>,
}

impl SnapshotStore {
    pub fn new(core: Arc<Core>) -> Arc<Self> {
        Arc::new(SnapshotStore {
            core,
            policies: Mutex::new(HashMap::new()),
            latest: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        })
    }

    /// The object store the bodies, history, activity and policies live in.
    pub fn objects(&self) -> &ObjectStore {
        &self.core.store
    }

    /// The namespace's effective policy.
    pub fn policy(&self, ns: &str) -> Policy {
        if let Some(p) = self.policies.lock().get(ns) {
            return p.clone();
        }
        self.core
            .indexes
            .get(ns)
            .map(|i| Policy::from_index(&i))
            .unwrap_or_default()
    }

    /// Every namespace whose policy has facet fields (the automatic writer's work list).
    pub fn facet_namespaces(&self) -> Vec<(String, Policy)> {
        let indexes = self.core.indexes.snapshot();
        let mut out: HashMap<String, Policy> = indexes
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

    /// Sets the API policy of `ns` (in memory; the caller persisted it).
    pub fn set_policy(&self, ns: &str, p: Policy) {
        self.policies.lock().insert(ns.to_string(), p);
    }

    /// Stores `body` and records it in the namespace's history and the activity stream, and
    /// makes it this replica's latest (if newer) and mirrors it into the cache tier
    /// (best-effort). Returns the recorded body.
    ///
    /// The history entry is written last: it is the commit point, so a listed entry has its body
    /// and its activity event. The in-memory latest is taken just before it, so once the entry is
    /// listed this replica's stored reads serve the body; if the entry's write fails, the body is
    /// dropped from the in-memory latest again (the next lookup lists the store).
    pub async fn record(
        &self,
        body: SnapshotBody,
        now_ms: u64,
    ) -> Result<Arc<SnapshotBody>, StoreError> {
        let store = self.objects();
        durable::put_body(store, &body).await?;
        durable::put_activity(store, &body, now_ms).await?;
        let body = Arc::new(body);
        let taken = self.remember(&body.namespace, Some(body.clone()));
        if let Err(e) = durable::put_history(store, &body).await {
            if taken {
                self.forget(&body);
            }
            return Err(e);
        }
        if taken {
            let put = self.mirror_put(&body);
            tokio::spawn(async move {
                if put.await.is_err() {
                    crate::core::metrics::feature_event(
                        "layer_snapshot_events_total",
                        "event",
                        "mirror_failed",
                        1,
                    );
                }
            });
        }
        Ok(body)
    }

    /// Drops `body` from the in-memory latest of its namespace, if it is still the one cached.
    fn forget(&self, body: &SnapshotBody) {
        let mut map = self.latest.lock();
        if map
            .get(&body.namespace)
            .is_some_and(|(_, b)| b.as_ref().is_some_and(|b| b.sha == body.sha))
        {
            map.remove(&body.namespace);
        }
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

impl SnapshotStore {
    /// The latest snapshot of `ns` (the newest history entry's body), if one was ever written.
    /// Cached in memory for [`LATEST_TTL`]; the object store is authoritative, and when it fails the
    /// body mirrored in the cache tier (written with every snapshot and by `hint_cache_warm`) is
    /// served instead. Only when both fail is it an error; callers that can serve elsewhere (scans
    /// under `auto`) should treat that as "no snapshot".
    pub async fn latest(&self, ns: &str) -> Result<Option<Arc<SnapshotBody>>, GatewayError> {
        let s = self;
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
            let history = durable::history(s.objects(), ns).await?;
            Ok::<_, StoreError>(match history.first() {
                Some(e) => durable::get_body(s.objects(), ns, &e.sha)
                    .await?
                    .map(Arc::new),
                None => None,
            })
        };
        let body = match from_store.await {
            Ok(b) => b,
            Err(e) => {
                // Serve the mirror; without one, remember the failure for a TTL (callers on
                // request paths must not wait on an unreachable store again and again).
                let mirrored = s
                    .core
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
        &self,
        ns: &str,
    ) -> Result<Option<(String, u64, String)>, GatewayError> {
        let Some(body) = self.latest(ns).await? else {
            return Ok(None);
        };
        self.mirror_put(&body).await.map_err(|e| {
            GatewayError::CacheCold(format!("the cache tier refused the snapshot: {e}"))
        })?;
        Ok(Some((
            durable::body_key(ns, &body.sha),
            body.watermark_ms,
            body.sha.clone(),
        )))
    }

    /// Writes `body` to the cache tier's snapshot mirror (a `'static` future, spawnable).
    fn mirror_put(&self, body: &SnapshotBody) -> layer_cache::TierFuture<()> {
        let bytes = bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        self.core.cache.tier.put(
            layer_cache::Set::Snapshots,
            &body.namespace,
            MIRROR_ID,
            bytes,
        )
    }

    /// Loads the API-set policies from the object store (at start).
    pub async fn load_policies(&self) -> Result<usize, GatewayError> {
        let s = self;
        let mut n = 0;
        for l in s.objects().list("snapshot-policy/").await? {
            let Some(ns) = l
                .key
                .strip_prefix("snapshot-policy/")
                .and_then(|k| k.strip_suffix(".json"))
            else {
                continue;
            };
            if let Some(bytes) = s.objects().get(&l.key).await?
                && let Ok(p) = serde_json::from_slice::<Policy>(&bytes)
            {
                if !p.facet_fields.is_empty() {
                    s.core.watcher.register(ns);
                }
                s.set_policy(ns, p);
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(wm: u64) -> SnapshotBody {
        let field = FieldHistogram {
            name: "c".into(),
            values: vec![FacetValue {
                v: "x".into(),
                n: 2,
            }],
        };
        SnapshotBody::new("ns", wm, 2, vec![field], vec![])
    }

    /// A recorded body is in the history, the activity stream and the in-memory latest, even
    /// when a lookup had cached the namespace's absence just before (that cached `None` would
    /// otherwise hide the body from stored reads for `LATEST_TTL`); a newer one replaces it.
    #[tokio::test]
    async fn a_recorded_body_is_listed_and_is_the_latest_at_once() {
        let snaps = SnapshotStore::new(crate::core::test_core());
        assert_eq!(snaps.latest("ns").await.unwrap(), None);
        let first = snaps.record(body(1_000), 5).await.unwrap();
        let h = durable::history(snaps.objects(), "ns").await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].sha, first.sha);
        let events = durable::activity(snaps.objects(), 0, None).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(snaps.latest("ns").await.unwrap(), Some(first));
        let second = snaps.record(body(2_000), 6).await.unwrap();
        assert_eq!(snaps.latest("ns").await.unwrap(), Some(second.clone()));
        // An older body recorded late (a manual job's) joins the history but is not the latest.
        let late = snaps.record(body(1_500), 7).await.unwrap();
        assert_ne!(late.sha, second.sha);
        assert_eq!(snaps.latest("ns").await.unwrap(), Some(second));
        assert_eq!(
            durable::history(snaps.objects(), "ns").await.unwrap().len(),
            3
        );
    }
}
