//! Layer's document cache tier.
//!
//! Two levels, one trait:
//!
//! * [`HotCache`] — in memory, **one per shard thread**, `&mut self` API with no locks, bounded in
//!   bytes. Admission/eviction is S3-FIFO (chosen by the Zipf hit-ratio benchmark in
//!   `benches/hit_ratio.rs`; numbers in `BENCH.md` and on [`hot`]). Start here for the hit path.
//! * [`Tier`] — the shared tier behind the hot caches, held by the gateway as `Arc<dyn Tier>`:
//!   [`NvmeTier`] (log-structured segment files, io_uring on its own thread, the embedded default)
//!   or, with cargo feature `aerospike`, `AerospikeTier`. [`FaultyTier`] wraps any tier to inject
//!   failures in tests; [`DisabledTier`] is the "no shared tier" tier.
//!
//! [`Tier::scan`] enumerates the live entries of one `(set, namespace)` page by page (cache-sourced
//! scans and warm checks in the gateway); [`scan_all`] collects every page.
//!
//! Around them: [`Set`] separates documents, pipeline chunks and snapshot bodies; namespaces are
//! invalidated wholesale by generation counters ([`Invalidations`] fans a clear out to every
//! shard's hot cache without touching it); [`SharedCoalescer`] makes N
//! concurrent misses for one key cost one load; [`Health`] reports `warm`/`cold`/`disabled`.
//!
//! Every failure is soft: operations return [`CacheError`] and the caller serves from origin
//! (`x-layer-cache: miss-on-error`). Nothing here needs an async runtime: tier futures are boxed
//! and complete through `futures-channel` oneshots, so they run on any executor.
//!
//! Per shard the gateway does, roughly:
//!
//! ```no_run
//! # use layer_cache::*; use bytes::Bytes; use std::sync::Arc;
//! # async fn origin(_: &str) -> Option<Bytes> { None }
//! # async fn fetch(hot: &mut HotCache, tier: &Arc<dyn Tier>, ns: &str, id: &str) -> Option<Bytes> {
//! if let Some(v) = hot.get(Set::Documents, ns, id) {
//!     return Some(v); // x-layer-cache: hit
//! }
//! match tier.get(Set::Documents, ns, id).await {
//!     // hit (the gateway first validates a row whole, and keeps only a valid one hot)
//!     Ok(Some(v)) => { hot.insert(Set::Documents, ns, id, v.clone()); Some(v) }
//!     Ok(None) => origin(id).await,  // miss: backfill hot + tier.put(..) best-effort
//!     Err(_) => origin(id).await,    // miss-on-error
//! }
//! # }
//! ```

mod coalesce;
mod error;
mod health;
pub mod hot;
mod key;
pub mod nvme;
mod tier;

#[cfg(feature = "aerospike")]
pub mod aerospike;

pub use coalesce::SharedCoalescer;
pub use error::CacheError;
pub use health::{CacheState, Health, HealthCell};
pub use hot::{
    HotCache, HotCacheConfig, HotStats, Invalidations, Policy, ReadMark, TierUpdate, TierWrite,
};
pub use key::{MAX_ID_LEN, MAX_NAMESPACE_LEN, Set, render_u64_id};
pub use nvme::{NvmeConfig, NvmeStats, NvmeTier, StartMode};
pub use tier::{
    DisabledTier, FaultyTier, ScanCursor, ScanPage, Stored, Tier, TierFuture, delete_ids, scan_all,
};

#[cfg(feature = "aerospike")]
pub use aerospike::{AerospikeConfig, AerospikeTier};
