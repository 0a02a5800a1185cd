//! The gateway's core: everything a feature stands on, naming no feature.
//!
//! Where to start:
//! - [`Core`] is the state every shard shares (config, auth, watcher, object store, document
//!   cache tier, the control runtime); [`ShardCtx`] adds one shard's upstream pool and the router;
//! - [`router`] holds routes as data (method, path pattern, metrics name, scope, handler) and the
//!   one matcher; [`service`] is the request pipeline around it (route → admit → read body →
//!   handler → error mapping → metrics);
//! - [`proxy`] is the passthrough engine with phase hooks (pingora's `ProxyHttp` shape) that the
//!   passthrough family and other forwarding routes plug into;
//! - [`error`] is the one error → response table; [`http`] holds response and body helpers.
//!
//! Features get an `Arc<Core>` plus the narrow handles they need (row sources, or traits such as
//! [`record::Recorder`] that another feature implements); nothing here has a field per feature.

pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
pub mod federation;
pub mod fields;
pub mod h1;
pub mod h1_server;
pub mod http;
pub mod indexes;
pub mod jobs;
pub mod labeled;
pub mod layout;
pub mod metrics;
pub mod params;
pub mod pool;
pub mod principal;
pub mod proxy;
pub mod record;
pub mod reload;
pub mod router;
pub mod runtime;
pub mod service;
pub mod stable;
pub mod store;
pub mod tier_metrics;
#[cfg(feature = "aerospike")]
pub mod tier_runtime;
pub mod timer_anchor;
pub mod tls;
pub mod touches;
pub mod upstream;
pub mod upstreams;
pub mod usage;
pub mod watcher;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use auth::Auth;
use cache::CacheTier;
use config::Config;
use error::GatewayError;
use router::Router;
use store::ObjectStore;
use upstream::{UpstreamRef, Upstreams};
use watcher::Watcher;

/// State shared by every shard, read without locks on the request path.
pub struct Core {
    pub config: Config,
    pub auth: Auth,
    pub limits: scatter::Limits,
    /// Shard runtimes serving requests.
    pub shards: usize,
    pub started: Instant,
    pub watcher: Arc<Watcher>,
    /// The document cache: shared tier, invalidations, miss coalescer, per-shard hot caches.
    pub cache: Arc<CacheTier>,
    /// Indexes by upstream namespace: the file's, and the cluster's when a watch feeds them.
    pub indexes: indexes::Indexes,
    /// The durable object store (history, clickstream, snapshot bodies).
    pub store: ObjectStore,
    /// Upstream usage (queries, bytes queried and written) every upstream client records.
    pub usage: Arc<usage::Usage>,
    /// Namespace layouts set by init (shard counts of namespaces no index configures).
    pub layouts: layout::Layouts,
    /// The stores and routes the watch publishes (unused without a cluster watch: the
    /// start-time sets serve).
    pub stores: Arc<upstreams::LiveStores>,
    /// The control runtime (background loops and jobs); set once at start.
    control: OnceLock<Control>,
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        auth: Auth,
        shards: usize,
        watcher: Arc<Watcher>,
        cache: CacheTier,
        store: ObjectStore,
    ) -> Core {
        let limits = scatter::Limits {
            max_body_bytes: config.gateway.max_body_bytes,
            max_depth: config.gateway.max_json_depth,
        };
        let indexes = indexes::Indexes::new(&config.indexes);
        Core {
            config,
            auth,
            limits,
            shards,
            started: Instant::now(),
            watcher,
            cache: Arc::new(cache),
            indexes,
            store,
            usage: usage::Usage::new(http::now_ms()),
            layouts: layout::Layouts::default(),
            stores: Arc::default(),
            control: OnceLock::new(),
        }
    }

    /// The control runtime (present once the gateway started).
    pub fn control(&self) -> Result<&Control, GatewayError> {
        self.control
            .get()
            .ok_or_else(|| GatewayError::Internal("the control runtime is not running".into()))
    }

    /// Installs the control runtime handle (once, at start).
    pub fn set_control(&self, control: Control) {
        let _ = self.control.set(control);
    }

    /// Scatter/gather buckets of `ns` (1 = unsharded): the configured index's `shards`, else the
    /// count init set ([`layout::Layouts`]), else 1.
    pub fn shards_of(&self, ns: &str) -> u32 {
        self.indexes.with(ns, |i| self.shards_given(ns, i))
    }

    /// [`Core::shards_of`] for a caller that holds `ns`'s index (or its absence) already.
    pub fn shards_given(&self, ns: &str, index: Option<&config::IndexConfig>) -> u32 {
        match index {
            Some(i) => i.shards.max(1),
            None => self.layouts.get(ns).map_or(1, |l| l.shard_count.max(1)),
        }
    }
}

/// The control runtime: where background loops and jobs run, with its own upstream pool, so
/// long scans never occupy a shard.
#[derive(Clone)]
pub struct Control {
    pub handle: tokio::runtime::Handle,
    /// The control runtime's pools, one per store.
    pub upstreams: Upstreams,
}

impl Control {
    /// The client of the store serving `ns`.
    pub fn upstream(&self, ns: &str) -> UpstreamRef<'_> {
        self.upstreams.for_ns(ns)
    }
}

/// One shard's context: the shared core, the shard's own upstream pools (one per store), the
/// router, and the shard's own count of requests in flight (only this shard's thread writes it).
pub struct ShardCtx {
    pub core: Arc<Core>,
    /// The shard's copy of the auth policy ([`Auth::shard_copy`]): requests admit through it.
    pub auth: Auth,
    pub upstreams: Upstreams,
    pub router: Arc<Router>,
    pub in_flight: std::sync::atomic::AtomicUsize,
}

impl ShardCtx {
    pub fn new(core: Arc<Core>, upstreams: Upstreams, router: Arc<Router>) -> ShardCtx {
        ShardCtx {
            auth: core.auth.shard_copy(),
            core,
            upstreams,
            router,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The client of the store serving `ns`.
    pub fn upstream(&self, ns: &str) -> UpstreamRef<'_> {
        self.upstreams.for_ns(ns)
    }
}

/// A core for unit tests and the fuzz targets (`crate::fuzzing`): default configuration with an
/// upstream credential, the cache tier disabled, an in-memory object store, no control runtime.
#[doc(hidden)]
pub fn test_core() -> Arc<Core> {
    let mut config = Config::default();
    config.vector_store.credential.value = Some("test-key".into());
    let auth = Auth::from_config(&config, &|_| None).expect("default auth");
    let (watcher, _rx) = Watcher::new(config.gateway.consistency.clone());
    let cache = CacheTier::new(Arc::new(layer_cache::DisabledTier), 1 << 20);
    let store = ObjectStore::from_inner(Arc::new(object_store::memory::InMemory::new()), "memory");
    Arc::new(Core::new(config, auth, 1, watcher, cache, store))
}
