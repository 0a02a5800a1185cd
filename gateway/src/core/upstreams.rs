//! The stores a gateway routes to, and how each shard holds their clients.
//!
//! [`Upstreams`] is a shard's (or the control runtime's) handle: one pooled client per store and
//! the namespace → store routing of the indexes' `backend.storeRef`. [`Upstreams::for_ns`] is
//! the client of the store serving a namespace (the default store's for namespaces no index
//! routes).
//!
//! Live stores ([`LiveStores`]): in a cluster the watch publishes a new [`StoreSnapshot`] (the
//! file's stores plus the cluster's `VectorStore`s, and every `Index`'s route) whenever either
//! changes. Publishing stores the snapshot, then bumps a generation counter. The request path
//! pays one relaxed-cost atomic load of that counter (a read: the cache line stays shared, no
//! core writes it per request); while it is 0 (nothing published yet, and always without a
//! watch) the start-time set serves, exactly as before. Once it moved, each thread keeps its
//! own client set in a thread-local cache tagged with the generation it was built from and
//! rebuilds it, from the published snapshot, the first time it sees a newer generation: no lock
//! and no shared write per request, and each shard's pools stay its own.
//!
//! A route to a store the snapshot does not hold (a deleted `VectorStore`, a `storeRef` naming
//! nothing) gets an unavailable client whose every request fails with 503 `store_unavailable`
//! ([`Upstream::unavailable`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::error::GatewayError;
use super::upstream::Upstream;
use super::usage::{Ring, Usage};

/// One store's connection: name, base URL, credential, timeouts.
#[derive(Clone, PartialEq)]
pub struct StoreEndpoint {
    pub name: Arc<str>,
    pub url: String,
    pub key: Option<String>,
    pub connect: Duration,
    pub request: Duration,
}

impl std::fmt::Debug for StoreEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreEndpoint")
            .field("name", &self.name)
            .field("url", &super::config::redact_userinfo(&self.url))
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Every store (the default first) and the namespaces routed to a store other than the
/// default (by store name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreSnapshot {
    pub stores: Vec<StoreEndpoint>,
    pub routes: HashMap<String, String>,
}

/// How a set's clients are made: relay the caller's bearer or not, where usage is recorded.
#[derive(Clone)]
pub struct ClientOptions {
    pub caller_auth: bool,
    pub usage: Arc<Usage>,
}

/// Clients by store (the default first) and the routes, as indexes into `clients`.
pub struct Set {
    clients: Vec<(Arc<str>, Upstream)>,
    routes: HashMap<String, usize>,
}

impl Set {
    fn index_of(&self, ns: &str) -> usize {
        if self.routes.is_empty() {
            0
        } else {
            self.routes.get(ns).copied().unwrap_or(0)
        }
    }

    /// The clients of `snap`. `strict`: a store whose client cannot be made fails the build
    /// (the file, at start); else that store's client is an unavailable one (the watch's).
    fn build(
        snap: &StoreSnapshot,
        opts: &ClientOptions,
        ring: &Arc<Ring>,
        strict: bool,
    ) -> Result<Set, GatewayError> {
        let mut clients = Vec::with_capacity(snap.stores.len());
        for s in &snap.stores {
            let up = match Upstream::new(&s.url, s.key.as_deref(), s.connect, s.request) {
                Ok(u) => u
                    .forward_caller_auth(opts.caller_auth)
                    .metered(&opts.usage, ring)
                    .count_in_flight("layer_tpuf_inflight"),
                Err(e) if strict => return Err(e),
                Err(e) => {
                    tracing::warn!(store = %s.name, error = %e, "store not usable");
                    Upstream::unavailable(&s.name)
                }
            };
            clients.push((s.name.clone(), up));
        }
        let mut at: HashMap<Arc<str>, usize> = clients
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        let mut routes = HashMap::with_capacity(snap.routes.len());
        for (ns, store) in &snap.routes {
            let i = match at.get(store.as_str()) {
                Some(i) => *i,
                None => {
                    // Routed to a store nobody declares: every request fails with 503.
                    let name: Arc<str> = Arc::from(store.as_str());
                    clients.push((name.clone(), Upstream::unavailable(store)));
                    at.insert(name, clients.len() - 1);
                    clients.len() - 1
                }
            };
            if i != 0 {
                routes.insert(ns.clone(), i);
            }
        }
        if clients.is_empty() {
            clients.push((Arc::from("none"), Upstream::unavailable("none")));
        }
        Ok(Set { clients, routes })
    }
}

/// A client handed out by [`Upstreams`]: borrowed from the start-time set, or held from the
/// thread's live set (one reference count on a set only this thread's cache holds).
pub enum UpstreamRef<'a> {
    Borrowed(&'a Upstream),
    Live(Arc<Set>, usize),
}

impl Deref for UpstreamRef<'_> {
    type Target = Upstream;
    fn deref(&self) -> &Upstream {
        match self {
            UpstreamRef::Borrowed(u) => u,
            UpstreamRef::Live(set, i) => &set.clients[*i].1,
        }
    }
}

/// Gives out distinct ids, so a thread-local cache never confuses two gateways of one process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A thread's cached set: live stores id, generation, set, the thread's usage ring.
type Cached = (u64, u64, Arc<Set>, Arc<Ring>);

thread_local! {
    static LOCAL: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
}

/// The store set the watch publishes (see the module docs).
pub struct LiveStores {
    id: u64,
    generation: AtomicU64,
    snapshot: ArcSwap<StoreSnapshot>,
    /// The file's stores and routes (set once at start).
    file: OnceLock<Arc<StoreSnapshot>>,
    options: OnceLock<ClientOptions>,
    /// Serializes publishers (the control runtime only).
    publish: Mutex<()>,
}

impl std::fmt::Debug for LiveStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveStores")
            .field("generation", &self.generation())
            .field("snapshot", &self.snapshot.load())
            .finish()
    }
}

impl Default for LiveStores {
    fn default() -> Self {
        LiveStores {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            snapshot: ArcSwap::from_pointee(StoreSnapshot::default()),
            file: OnceLock::new(),
            options: OnceLock::new(),
            publish: Mutex::new(()),
        }
    }
}

impl LiveStores {
    /// Records the file's stores and how clients are made (once, at start).
    pub fn set_file(&self, file: StoreSnapshot, options: ClientOptions) {
        let file = Arc::new(file);
        self.snapshot.store(file.clone());
        let _ = self.file.set(file);
        let _ = self.options.set(options);
    }

    /// The file's stores and routes.
    pub fn file(&self) -> Arc<StoreSnapshot> {
        self.file.get().cloned().unwrap_or_default()
    }

    /// The snapshot serving now.
    pub fn current(&self) -> Arc<StoreSnapshot> {
        self.snapshot.load_full()
    }

    /// The snapshot serving now, without touching its reference count (the auth check's).
    pub fn load(&self) -> arc_swap::Guard<Arc<StoreSnapshot>> {
        self.snapshot.load()
    }

    /// Moves on every publish that changed something (0: the start-time set serves).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Publishes `snap` (nothing happens when it equals the current one); every thread
    /// rebuilds its clients on its next request.
    pub fn publish(&self, snap: StoreSnapshot) -> bool {
        let _g = self.publish.lock().unwrap_or_else(|e| e.into_inner());
        if *self.snapshot.load_full() == snap {
            return false;
        }
        self.snapshot.store(Arc::new(snap));
        self.generation.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// This thread's set for generation `g` (built from the snapshot when `g` is new to it).
    fn local(&self, g: u64) -> Arc<Set> {
        LOCAL.with(|cell| {
            let mut local = cell.borrow_mut();
            let pos = local.iter().position(|(id, ..)| *id == self.id);
            if let Some(p) = pos
                && local[p].1 == g
            {
                return local[p].2.clone();
            }
            let Some(opts) = self.options.get() else {
                let set = Arc::new(Set {
                    clients: vec![(Arc::from("none"), Upstream::unavailable("none"))],
                    routes: HashMap::new(),
                });
                return set;
            };
            // The snapshot is at least as new as `g` (published before the counter moved).
            let snap = self.snapshot.load_full();
            let ring = pos.map_or_else(|| opts.usage.ring(), |p| local[p].3.clone());
            let set = Arc::new(
                Set::build(&snap, opts, &ring, false)
                    .unwrap_or_else(|_| unreachable_set(&snap.stores)),
            );
            match pos {
                Some(p) => local[p] = (self.id, g, set.clone(), ring),
                None => local.push((self.id, g, set.clone(), ring)),
            }
            set
        })
    }
}

/// A set of unavailable clients (a non-strict build does not fail; kept total anyway).
fn unreachable_set(stores: &[StoreEndpoint]) -> Set {
    let mut clients: Vec<(Arc<str>, Upstream)> = stores
        .iter()
        .map(|s| (s.name.clone(), Upstream::unavailable(&s.name)))
        .collect();
    if clients.is_empty() {
        clients.push((Arc::from("none"), Upstream::unavailable("none")));
    }
    Set {
        clients,
        routes: HashMap::new(),
    }
}

/// A shard's (or the control runtime's) clients, one per store, and the routing; follows
/// [`LiveStores`] when the gateway watches a cluster.
#[derive(Clone)]
pub struct Upstreams {
    fixed: Arc<Set>,
    live: Option<Arc<LiveStores>>,
}

impl Upstreams {
    /// `clients` by store name, the default store first; `routes` maps an upstream namespace to
    /// its store's name (routes to an unknown store are dropped: the default serves them).
    pub fn new(clients: Vec<(Arc<str>, Upstream)>, routes: &HashMap<String, String>) -> Upstreams {
        let at: HashMap<&str, usize> = clients
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (&**n, i))
            .collect();
        let routes = routes
            .iter()
            .filter_map(|(ns, store)| Some((ns.clone(), *at.get(store.as_str())?)))
            .filter(|(_, i)| *i != 0)
            .collect();
        Upstreams {
            fixed: Arc::new(Set { clients, routes }),
            live: None,
        }
    }

    /// The clients of `snap` (the file's stores, at start); fails on a store whose client
    /// cannot be made. `live`: the published set to follow (a cluster watch), else none.
    pub fn build(
        snap: &StoreSnapshot,
        options: &ClientOptions,
        live: Option<Arc<LiveStores>>,
    ) -> Result<Upstreams, GatewayError> {
        let ring = options.usage.ring();
        Ok(Upstreams {
            fixed: Arc::new(Set::build(snap, options, &ring, true)?),
            live,
        })
    }

    /// A single-store set (tests, tools).
    pub fn single(upstream: Upstream) -> Upstreams {
        Upstreams::new(
            vec![(Arc::from(crate::core::config::DEFAULT_STORE), upstream)],
            &HashMap::new(),
        )
    }

    /// The live set this thread serves from, once the watch published one.
    #[inline]
    fn live_set(&self) -> Option<Arc<Set>> {
        let live = self.live.as_ref()?;
        match live.generation.load(Ordering::Acquire) {
            0 => None,
            g => Some(live.local(g)),
        }
    }

    /// The client of the store serving `ns`.
    pub fn for_ns(&self, ns: &str) -> UpstreamRef<'_> {
        match self.live_set() {
            None => UpstreamRef::Borrowed(&self.fixed.clients[self.fixed.index_of(ns)].1),
            Some(set) => {
                let i = set.index_of(ns);
                UpstreamRef::Live(set, i)
            }
        }
    }

    /// The default store's client (routes that name no namespace: listings).
    pub fn default_store(&self) -> UpstreamRef<'_> {
        match self.live_set() {
            None => UpstreamRef::Borrowed(&self.fixed.clients[0].1),
            Some(set) => UpstreamRef::Live(set, 0),
        }
    }

    /// A store's client by name (an unavailable one counts as absent).
    pub fn by_name(&self, name: &str) -> Option<UpstreamRef<'_>> {
        let pick = |set: &Set| {
            set.clients
                .iter()
                .position(|(n, u)| &**n == name && !u.is_unavailable())
        };
        match self.live_set() {
            None => pick(&self.fixed).map(|i| UpstreamRef::Borrowed(&self.fixed.clients[i].1)),
            Some(set) => pick(&set).map(|i| UpstreamRef::Live(set, i)),
        }
    }

    /// The name of the store serving `ns` now.
    pub fn store_of(&self, ns: &str) -> Arc<str> {
        match self.live_set() {
            None => self.fixed.clients[self.fixed.index_of(ns)].0.clone(),
            Some(set) => set.clients[set.index_of(ns)].0.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, url: &str) -> StoreEndpoint {
        StoreEndpoint {
            name: Arc::from(name),
            url: url.into(),
            key: Some(format!("key-{name}")),
            connect: Duration::from_secs(1),
            request: Duration::from_secs(1),
        }
    }

    fn options() -> ClientOptions {
        ClientOptions {
            caller_auth: false,
            usage: Usage::new(0),
        }
    }

    fn file() -> StoreSnapshot {
        StoreSnapshot {
            stores: vec![endpoint("default", "http://127.0.0.1:1")],
            routes: HashMap::new(),
        }
    }

    fn send_err(u: &Upstream) -> GatewayError {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let h = http::HeaderMap::new();
        rt.block_on(u.send("t", http::Method::GET, "/v1/x", &h, bytes::Bytes::new()))
            .err()
            .expect("an unavailable store sends nothing")
    }

    #[test]
    fn without_a_publish_the_start_time_set_serves() {
        let live = Arc::new(LiveStores::default());
        live.set_file(file(), options());
        let ups = Upstreams::build(&file(), &options(), Some(live.clone())).unwrap();
        assert!(matches!(ups.for_ns("a"), UpstreamRef::Borrowed(_)));
        assert_eq!(live.generation(), 0);
        // Publishing the same set changes nothing.
        assert!(!live.publish(file()));
        assert!(matches!(ups.for_ns("a"), UpstreamRef::Borrowed(_)));
    }

    #[test]
    fn a_published_set_routes_on_the_next_call_and_a_missing_store_answers_503() {
        let live = Arc::new(LiveStores::default());
        live.set_file(file(), options());
        let ups = Upstreams::build(&file(), &options(), Some(live.clone())).unwrap();
        let mut next = file();
        next.stores.push(endpoint("second", "http://127.0.0.1:2"));
        next.routes.insert("products".into(), "second".into());
        next.routes.insert("orphan".into(), "deleted".into());
        assert!(live.publish(next.clone()));
        assert_eq!(&*ups.store_of("products"), "second");
        assert_eq!(&*ups.store_of("other"), "default");
        assert!(ups.by_name("second").is_some());
        assert!(ups.by_name("deleted").is_none());
        assert!(!ups.for_ns("products").is_unavailable());
        // The thread's set is reused while the generation stays.
        let (a, b) = (ups.for_ns("products"), ups.for_ns("other"));
        match (&a, &b) {
            (UpstreamRef::Live(x, _), UpstreamRef::Live(y, _)) => assert!(Arc::ptr_eq(x, y)),
            _ => panic!("live sets expected"),
        }
        let e = send_err(&ups.for_ns("orphan"));
        assert_eq!(e.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code(), "store_unavailable");
        // The store leaves: its namespaces answer 503; another thread sees the same.
        next.stores.pop();
        assert!(live.publish(next));
        assert!(ups.for_ns("products").is_unavailable());
        let ups2 = ups.clone();
        let remote = std::thread::spawn(move || ups2.for_ns("products").is_unavailable());
        assert!(remote.join().unwrap());
        assert!(!ups.for_ns("other").is_unavailable());
    }

    #[test]
    fn a_bad_url_fails_the_file_build_but_not_a_published_one() {
        let mut bad = file();
        bad.stores.push(endpoint("x", "not a url"));
        assert!(Upstreams::build(&bad, &options(), None).is_err());
        let live = Arc::new(LiveStores::default());
        live.set_file(file(), options());
        let ups = Upstreams::build(&file(), &options(), Some(live.clone())).unwrap();
        bad.routes.insert("n".into(), "x".into());
        live.publish(bad);
        assert!(ups.for_ns("n").is_unavailable());
        assert!(!ups.for_ns("m").is_unavailable());
    }

    /// The cost `for_ns` adds (printed, not asserted: `cargo test -p layer-gateway
    /// upstreams::tests::cost -- --nocapture --ignored`, in release for real numbers).
    #[test]
    #[ignore]
    fn cost_of_for_ns() {
        let live = Arc::new(LiveStores::default());
        live.set_file(file(), options());
        let fixed = Upstreams::build(&file(), &options(), None).unwrap();
        let ups = Upstreams::build(&file(), &options(), Some(live.clone())).unwrap();
        // The file with two stores and a route: the same lookup the published set does.
        let mut routed = file();
        routed.stores.push(endpoint("second", "http://127.0.0.1:2"));
        routed.routes.insert("a".into(), "second".into());
        let fixed_routed = Upstreams::build(&routed, &options(), None).unwrap();
        let n = 2_000_000;
        let time = |u: &Upstreams| {
            let t = std::time::Instant::now();
            for i in 0..n {
                let r = u.for_ns(if i % 2 == 0 { "a" } else { "b" });
                std::hint::black_box(&*r);
            }
            t.elapsed().as_nanos() as f64 / n as f64
        };
        let file_ns = time(&fixed);
        let file_routed = time(&fixed_routed);
        let unpublished = time(&ups);
        live.publish(routed);
        let published = time(&ups);
        println!(
            "for_ns: file {file_ns:.1} ns, file with a route {file_routed:.1} ns, \
             watch unpublished {unpublished:.1} ns, watch published (same route) {published:.1} ns"
        );
    }
}
