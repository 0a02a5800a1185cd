//! Who is calling and what they may reach: a [`Principal`] holds a control-plane grant (scopes
//! and namespace globs for the pipeline, UDF and key routes) and data-plane grants (per store, or
//! for every store: scopes and namespace globs for the namespace routes). Configured keys grant
//! the same scopes on both planes (on every store, or on their own store's namespaces for keys
//! listed under another store); a minted key's `layer` entitlement is its control-plane grant
//! (`admin` there also opens every store), its `vectorstore.<name>` entitlements its data-plane
//! grants, and `warehouse.<name>` entitlements grant nothing.
//!
//! Which plane a route is on is the route table's ([`Surface`], derived from its pattern), so
//! one table decides every route's check.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::config::{Config, Scope};

/// The plane a route is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// Namespace routes (`{ns}` in the pattern) and data-plane listings: a store grant decides.
    Data,
    /// Pipelines, UDFs, keys, stores, warehouses, the license and cost: the control-plane grant
    /// decides.
    Control,
}

/// The prefixes of control-plane routes.
const CONTROL_PREFIXES: [&str; 7] = [
    "/v2/pipelines",
    "/v2/udfs",
    "/v2/keys",
    "/v2/vectorstores",
    "/v2/warehouses",
    "/v2/license",
    "/v2/cost",
];

impl Surface {
    /// The plane of a route pattern.
    pub fn of(pattern: &str) -> Surface {
        if !pattern.contains("{ns}") && CONTROL_PREFIXES.iter().any(|p| pattern.starts_with(p)) {
            Surface::Control
        } else {
            Surface::Data
        }
    }
}

/// Which store serves a namespace (the indexes' `backend.storeRef`, else the default store).
#[derive(Debug, Default)]
pub struct Routing {
    pub default_store: String,
    pub by_namespace: HashMap<String, String>,
    /// In a cluster: the store set the watch publishes, whose routes win once it published.
    pub live: std::sync::OnceLock<Arc<super::upstreams::LiveStores>>,
}

impl Routing {
    pub fn from_config(cfg: &Config) -> Arc<Routing> {
        Arc::new(Routing {
            default_store: cfg.vector_store.name.clone(),
            by_namespace: cfg
                .indexes
                .iter()
                .filter_map(|i| Some((i.namespace().to_string(), i.backend.store_ref.clone()?)))
                .collect(),
            live: std::sync::OnceLock::new(),
        })
    }

    /// From now on, judge namespaces by the routes `live` publishes (a cluster watch).
    pub fn follow(&self, live: Arc<super::upstreams::LiveStores>) {
        let _ = self.live.set(live);
    }

    /// The store serving `ns`.
    pub fn store_of<'a>(&'a self, ns: &str) -> std::borrow::Cow<'a, str> {
        if let Some(live) = self.live.get()
            && live.generation() > 0
        {
            let snap = live.load();
            return std::borrow::Cow::Owned(
                snap.routes
                    .get(ns)
                    .map_or(self.default_store.as_str(), String::as_str)
                    .to_string(),
            );
        }
        std::borrow::Cow::Borrowed(
            self.by_namespace
                .get(ns)
                .map_or(self.default_store.as_str(), String::as_str),
        )
    }
}

pub(crate) fn bit(s: Scope) -> u8 {
    match s {
        Scope::Read => 1,
        Scope::Write => 2,
        Scope::Admin => 4,
    }
}

/// Scopes and namespace globs.
#[derive(Clone, Debug, Default)]
pub struct Grant {
    scopes: u8,
    /// `None` = every namespace.
    namespaces: Option<GlobSet>,
}

impl Grant {
    /// A grant of `scopes` on namespaces matching `globs` (empty: every namespace).
    pub fn new(scopes: &[Scope], globs: &[String]) -> Result<Grant, String> {
        let namespaces = if globs.is_empty() {
            None
        } else {
            let mut b = GlobSetBuilder::new();
            for g in globs {
                b.add(Glob::new(g).map_err(|e| format!("bad namespace glob {g:?}: {e}"))?);
            }
            Some(b.build().map_err(|e| e.to_string())?)
        };
        Ok(Grant {
            scopes: scopes.iter().fold(0, |acc, s| acc | bit(*s)),
            namespaces,
        })
    }

    fn admin() -> Grant {
        Grant {
            scopes: bit(Scope::Admin),
            namespaces: None,
        }
    }

    /// Holds `scope` (admin satisfies everything).
    fn has(&self, scope: Scope) -> bool {
        self.scopes & (bit(scope) | bit(Scope::Admin)) != 0
    }

    fn covers(&self, ns: &str) -> bool {
        self.namespaces.as_ref().is_none_or(|g| g.is_match(ns))
    }

    fn limited(&self) -> bool {
        self.namespaces.is_some()
    }
}

/// A data-plane grant on one store, or (`store: None`) on every store.
#[derive(Clone, Debug)]
pub struct StoreGrant {
    pub store: Option<String>,
    pub grant: Grant,
}

/// Why a principal may not make a call.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    Scope(Scope),
    Namespace,
}

/// Who is calling.
#[derive(Debug)]
pub struct Principal {
    pub name: String,
    /// A minted key's id (`None` for configured keys and the store credential).
    pub key_id: Option<String>,
    control: Grant,
    data: Vec<StoreGrant>,
    routing: Arc<Routing>,
    /// A minted key's expiry, epoch ms.
    pub(crate) expires_at_ms: Option<u64>,
    /// When a minted key's use was last reported (epoch ms): read on every request, written at
    /// most once per [`super::auth::LAST_SEEN_EVERY`].
    pub(crate) last_seen_ms: AtomicU64,
}

impl Principal {
    /// Admin on both planes, every store.
    pub fn admin(name: &str, routing: Arc<Routing>) -> Principal {
        Principal::new(
            name,
            None,
            Grant::admin(),
            vec![StoreGrant {
                store: None,
                grant: Grant::admin(),
            }],
            routing,
        )
    }

    pub fn new(
        name: &str,
        key_id: Option<String>,
        control: Grant,
        data: Vec<StoreGrant>,
        routing: Arc<Routing>,
    ) -> Principal {
        Principal {
            name: name.into(),
            key_id,
            control,
            data,
            routing,
            expires_at_ms: None,
            last_seen_ms: AtomicU64::new(0),
        }
    }

    /// An equal principal in a new allocation (a shard's own copy: [`super::auth::Auth::shard_copy`]).
    pub fn copy(&self) -> Principal {
        Principal {
            name: self.name.clone(),
            key_id: self.key_id.clone(),
            control: self.control.clone(),
            data: self.data.clone(),
            routing: self.routing.clone(),
            expires_at_ms: self.expires_at_ms,
            last_seen_ms: AtomicU64::new(self.last_seen_ms.load(Ordering::Relaxed)),
        }
    }

    /// A configured key: `scopes` on the control plane and on the data plane of `store` (`None`:
    /// every store), both limited to `globs`.
    pub fn configured(
        name: &str,
        scopes: &[Scope],
        globs: &[String],
        store: Option<String>,
        routing: Arc<Routing>,
    ) -> Result<Principal, String> {
        Ok(Principal::new(
            name,
            None,
            Grant::new(scopes, globs)?,
            vec![StoreGrant {
                store,
                grant: Grant::new(scopes, globs)?,
            }],
            routing,
        ))
    }

    /// The data-plane grants covering `ns`'s store.
    fn store_grants(&self, ns: &str) -> impl Iterator<Item = &Grant> {
        // The store is looked up only when a grant is limited to one.
        let store = self
            .data
            .iter()
            .any(|g| g.store.is_some())
            .then(|| self.routing.store_of(ns));
        self.data
            .iter()
            .filter(move |g| match (g.store.as_deref(), store.as_deref()) {
                (None, _) => true,
                (Some(s), Some(at)) => s == at,
                (Some(_), None) => false,
            })
            .map(|g| &g.grant)
    }

    /// Whether a call needing `scope` on `surface` (namespace `ns` when the route names one) is
    /// allowed.
    pub fn check(&self, scope: Scope, surface: Surface, ns: Option<&str>) -> Result<(), Denied> {
        match (surface, ns) {
            (Surface::Control, _) => {
                if self.control.has(scope) {
                    Ok(())
                } else {
                    Err(Denied::Scope(scope))
                }
            }
            (Surface::Data, Some(ns)) => {
                let mut scoped = false;
                for g in self.store_grants(ns) {
                    if g.has(scope) {
                        if g.covers(ns) {
                            return Ok(());
                        }
                        scoped = true;
                    }
                }
                // A store grant with the scope but not this namespace: the grant is the
                // reason. No grant on the store at all: the namespace is outside the key.
                if scoped || self.data.iter().any(|g| g.grant.has(scope)) {
                    Err(Denied::Namespace)
                } else {
                    Err(Denied::Scope(scope))
                }
            }
            (Surface::Data, None) => {
                if self.data.iter().any(|g| g.grant.has(scope)) {
                    Ok(())
                } else {
                    Err(Denied::Scope(scope))
                }
            }
        }
    }

    /// Whether the data-plane grants cover `ns` (any scope).
    pub fn may_access(&self, ns: &str) -> bool {
        self.store_grants(ns).any(|g| g.covers(ns))
    }

    /// Whether the data-plane grants leave some namespaces out (listings must be filtered).
    pub fn is_namespace_limited(&self) -> bool {
        !self
            .data
            .iter()
            .any(|g| g.store.is_none() && !g.grant.limited())
    }

    /// Whether the control-plane grant covers the namespace a pipeline or UDF works on.
    pub fn may_control(&self, ns: &str) -> bool {
        self.control.covers(ns)
    }

    /// [`Principal::may_control`] as a refusal: 403 `namespace not in key grant` naming `ns`.
    pub fn require_control(&self, ns: &str) -> Result<(), super::error::GatewayError> {
        if self.may_control(ns) {
            Ok(())
        } else {
            Err(super::error::GatewayError::NamespaceNotGranted {
                namespace: ns.to_string(),
            })
        }
    }

    /// Whether the control-plane grant is limited to some namespaces.
    pub fn is_control_limited(&self) -> bool {
        self.control.limited()
    }

    /// Keeps only the rows of a listing's `namespaces` array whose `key` (`name` in Layer's
    /// listing, `id` in Turbopuffer's) names a namespace this principal may access.
    pub fn retain_granted(&self, page: &mut serde_json::Value, key: &str) {
        if !self.is_namespace_limited() {
            return;
        }
        if let Some(rows) = page
            .get_mut("namespaces")
            .and_then(serde_json::Value::as_array_mut)
        {
            rows.retain(|r| {
                r.get(key)
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|n| self.may_access(n))
            });
        }
    }

    /// For a minted key: `now_ms` if its use should be reported now (first use, or the last
    /// report is older than `every_ms`); the one shard that wins the swap reports it.
    pub(crate) fn due_seen(&self, now_ms: u64, every_ms: u64) -> bool {
        let last = self.last_seen_ms.load(Ordering::Relaxed);
        now_ms.saturating_sub(last) >= every_ms
            && self
                .last_seen_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing() -> Arc<Routing> {
        Arc::new(Routing {
            default_store: "a".into(),
            by_namespace: [("orders".to_string(), "b".to_string())].into(),
            live: Default::default(),
        })
    }

    #[test]
    fn surfaces_come_from_patterns() {
        assert_eq!(Surface::of("/v2/namespaces/{ns}/query"), Surface::Data);
        assert_eq!(Surface::of("/v2/namespaces"), Surface::Data);
        assert_eq!(Surface::of("/v2/pipelines/{pid}/claim"), Surface::Control);
        assert_eq!(Surface::of("/v2/udfs"), Surface::Control);
        assert_eq!(Surface::of("/v2/keys/{id}/revoke"), Surface::Control);
        assert_eq!(Surface::of("/v2/activity/snapshots"), Surface::Data);
        assert_eq!(Surface::of("/v2/cost/rate-card"), Surface::Control);
    }

    #[test]
    fn store_grants_open_only_their_store() {
        let key = Principal::new(
            "k",
            Some("id".into()),
            Grant::default(),
            vec![StoreGrant {
                store: Some("a".into()),
                grant: Grant::new(&[Scope::Read], &["cohort-*".into()]).unwrap(),
            }],
            routing(),
        );
        assert_eq!(
            key.check(Scope::Read, Surface::Data, Some("cohort-1")),
            Ok(())
        );
        assert_eq!(
            key.check(Scope::Write, Surface::Data, Some("cohort-1")),
            Err(Denied::Scope(Scope::Write))
        );
        assert_eq!(
            key.check(Scope::Read, Surface::Data, Some("shop")),
            Err(Denied::Namespace)
        );
        // `orders` is on store b: outside the key even though the glob would not matter.
        assert_eq!(
            key.check(Scope::Read, Surface::Data, Some("orders")),
            Err(Denied::Namespace)
        );
        assert_eq!(
            key.check(Scope::Read, Surface::Control, None),
            Err(Denied::Scope(Scope::Read))
        );
        assert!(key.is_namespace_limited());
        assert!(!key.may_access("orders") && key.may_access("cohort-9"));
        // A claims-only key opens nothing.
        let claims = Principal::new("c", None, Grant::default(), vec![], routing());
        assert!(claims.check(Scope::Read, Surface::Data, Some("x")).is_err());
        assert!(claims.check(Scope::Read, Surface::Data, None).is_err());
        // Admin opens everything.
        let admin = Principal::admin("a", routing());
        for ns in ["orders", "x"] {
            assert_eq!(admin.check(Scope::Write, Surface::Data, Some(ns)), Ok(()));
        }
        assert_eq!(admin.check(Scope::Admin, Surface::Control, None), Ok(()));
    }

    #[test]
    fn a_followed_store_set_decides_once_it_published() {
        use crate::core::upstreams::{LiveStores, StoreSnapshot};
        let r = routing();
        let live = Arc::new(LiveStores::default());
        r.follow(live.clone());
        // Nothing published yet: the start-time routes.
        assert_eq!(r.store_of("orders"), "b");
        assert_eq!(r.store_of("products"), "a");
        let mut snap = StoreSnapshot::default();
        snap.routes.insert("products".into(), "c".into());
        assert!(live.publish(snap));
        assert_eq!(r.store_of("products"), "c");
        // `orders` has no published route any more: the default store.
        assert_eq!(r.store_of("orders"), "a");
    }

    #[test]
    fn last_seen_is_reported_once_per_interval() {
        let p = Principal::admin("a", routing());
        assert!(p.due_seen(1_000_000, 300_000));
        assert!(!p.due_seen(1_000_001, 300_000));
        assert!(p.due_seen(1_300_000, 300_000));
    }
}
