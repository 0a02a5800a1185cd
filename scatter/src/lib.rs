//! `scatter`: Layer's hot-path JSON rewriter (runtime-free, no I/O).
//!
//! The gateway never round-trips request bodies through a DOM. It parses them lazily with
//! sonic-rs, validates the **whole** document, and then produces the upstream body by **byte
//! splicing**: every value it does not touch is copied verbatim (same bytes, same key order, same
//! number text, so big `u64` ids and base64 vectors survive untouched), and only the new pieces are
//! written. See `shared/reference/runtime.md` §4 for the measurements behind this design.
//!
//! Modules, in the order a request meets them:
//! - [`mod@validate`]: whole-body validation. Size cap (413), top level must be an object, valid JSON
//!   to the last byte, no duplicate key at any depth, nesting capped. A body that passed is a
//!   [`Validated`]: later passes over it (and over what is spliced from it) walk its top level only.
//! - [`mod@write`]: [`stamp_write`] for `POST /v2/namespaces/{ns}` bodies. Rejects reserved
//!   `_hevlayer_*` attributes and bodies without a write operation, and stamps
//!   `_hevlayer_upserted_at` (optionally `_hevlayer_shard`) into every row-producing operation.
//! - [`mod@filter`]: [`inject_filter`] for query bodies. ANDs a gateway predicate into `filters`, or
//!   into every sub-query of a multi-query body.
//! - [`mod@raw`]: an object's members and an array's items read in place as text spans, each
//!   value checked, with no parser set up per body: the stable read, filter injection and search
//!   history's summaries read bodies with it.
//! - Query expansion and scatter/gather (planning and merging only; I/O stays in the gateway):
//!   [`mod@layer_query`] ([`plan_query`]: Layer shapes, `HybridText` via [`mod@hybrid`],
//!   `Auto` via [`mod@route`], multi-query rules), [`mod@tokens`] (the tokenizer policy),
//!   [`mod@shard`] ([`shard_of`], [`plan_shards`]), [`mod@merge`] + [`mod@order`] (gather),
//!   [`mod@respond`] (echo blocks, `rows`, deferral). Errors: [`QueryError`].
//! - `reference` (feature `reference`, and in tests): the same transformations on a serde_json DOM.
//!   The property tests and fuzz targets check the splicer against it.
//!
//! Errors are one [`RewriteError`] enum; [`RewriteError::status_code`] says which HTTP status
//! each variant should become.
//!
//! # Cost (measured)
//!
//! Release build, default target features (no `-C target-cpu=native`), one core of the 2-core
//! AMD EPYC dev VM, mean of 20,000 / 2,000 iterations:
//! - `inject_filter` on a 1.7 KB query (160-float ANN vector, `And` filter): **3.9 µs**;
//! - `stamp_write` on a 58 KB write (100 rows of u64 id, 64-float vector, 2 attributes):
//!   **194 µs**, of which `validate` is 149 µs (depth pre-scan 33 µs, sonic-rs strict iteration
//!   71 µs, duplicate-key walk 46 µs).
//! - a stable read's two planning passes on that query (`plan_query`, then `plan_stable_read`):
//!   15.8 µs validating the body twice, 10.7 µs with the second pass on a [`Validated`] body
//!   (walk the top level only) — the gateway validates once per request.
//!
//! # Stack use
//!
//! Nesting is capped by a byte scan before anything recurses, so stack use is bounded by
//! [`Limits::max_depth`]. Measured per nesting level: under 1 KiB in release builds (256 nested
//! arrays validate on a 128 KiB stack). **Unoptimised builds are different:** sonic-rs's
//! validating skip then costs ~32-64 KiB of stack per level, so a body nested ~30 deep can
//! overflow a 2 MiB thread stack (tokio's default) in a debug build. The workspace should build
//! sonic-rs optimised in dev and test profiles:
//!
//! ```toml
//! [profile.dev.package.sonic-rs]
//! opt-level = 3
//! ```
//!
//! With that, debug builds need ~4 KiB per level (256 KiB at the default depth of 64).

mod error;
pub mod filter;
pub mod filter_eval;
pub mod hybrid;
pub mod layer_query;
pub mod leading;
pub mod merge;
pub mod order;
pub mod page;
mod query_error;
pub mod raw;
#[cfg(any(test, feature = "reference"))]
pub mod reference;
pub mod reserved;
pub mod respond;
pub mod route;
pub mod shard;
mod splice;
pub mod stable;
pub mod tokens;
pub mod validate;
mod validated;
pub mod values;
pub mod write;

pub use error::RewriteError;
pub use filter::inject_filter;
pub use layer_query::{
    CentroidRequest, Merge, PendingCentroids, QueryContext, QueryPlan, UpstreamQuery,
    hide_and_plan, plan_query, plan_validated,
};
pub use merge::{MergeSpec, merge_multi_query_responses, merge_query_responses};
pub use order::{Direction, RowOrder};
pub use query_error::{Expansion, QueryError};
pub use reserved::hide_reserved;
pub use respond::{
    Echo, Fuzziness, HybridEcho, Route, RoutingEcho, UpstreamShape, deferral_body, ensure_rows,
    finish_response,
};
pub use shard::{ShardPlan, plan_shards, shard_of, shard_of_ref};
pub use splice::Spliced;
pub use stable::{
    KEEP_RUNS_FROM, StableBody, StableParts, StablePlan, plan_stable_parts, plan_stable_read,
};
pub use validate::validate;
pub use validated::{PlainMembers, Validated};
pub use write::{
    IdRef, IdValue, StampOptions, TouchedIds, stamp_validated_touched, stamp_write,
    stamp_write_bytes, stamp_write_touched, stamp_write_with,
};

/// The reserved attribute prefix. Callers may never set an attribute whose name starts with it.
pub const RESERVED_PREFIX: &str = "_hevlayer_";
/// Attribute stamped with the write time (epoch milliseconds) on every row-producing write.
pub const UPSERTED_AT: &str = "_hevlayer_upserted_at";
/// Attribute stamped with the row's shard bucket on sharded namespaces.
pub const SHARD: &str = "_hevlayer_shard";

/// Default cap on a request body: 64 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
/// Default cap on nesting depth (the top-level object is depth 1).
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Hard ceiling on [`Limits::max_depth`]: validation recurses once per level (and so does
/// sonic-rs), so the configured value is clamped to keep stack use bounded on a 2 MiB stack.
pub const MAX_DEPTH_CEILING: usize = 256;

/// Size and depth caps applied to every body before anything else looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body in bytes; larger bodies get [`RewriteError::Oversize`] (413).
    pub max_body_bytes: usize,
    /// Deepest accepted nesting of arrays and objects, counting the top-level object as 1;
    /// clamped to [`MAX_DEPTH_CEILING`].
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

impl Limits {
    /// The depth limit actually enforced: `max_depth` clamped to [`MAX_DEPTH_CEILING`].
    #[must_use]
    pub fn effective_max_depth(&self) -> usize {
        self.max_depth.min(MAX_DEPTH_CEILING)
    }
}
