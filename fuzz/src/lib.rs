//! Layer's fuzz targets as plain functions, so stable `cargo test` can replay them and the
//! libFuzzer binaries (`fuzz_targets/`, nightly) only wrap them.
//!
//! Every target is `run(&[u8])`: it never returns an error, it panics when the code under test
//! breaks an invariant or disagrees with a simple reference (the panic message says which). The
//! targets, one module each:
//! - [`stamp_write`], [`inject_filter`]: the write stamper and the filter injection against the
//!   serde_json DOM references in `scatter::reference`;
//! - [`plan_query`]: the query planner (Layer shapes, multi-query, `HybridText`, `Auto`,
//!   `nearest_to_id`) and the passes after it (stable read, shard legs);
//! - [`merge`]: the gather/merge against a sort-and-truncate reference;
//! - [`filter_eval`]: the cache filter evaluator against a naive serde_json evaluator;
//! - [`history_params`]: the history list parameters (invariants and a round trip);
//! - [`path_decode`]: percent-decoding and the query-string parser against straightforward
//!   decoders;
//! - [`route_match`]: the gateway's real route table against a naive matcher, and the namespace
//!   check on the matched segment;
//! - [`h1_answer`]: the upstream client's HTTP/1.1 answer reading, split-invariant and framed
//!   as its fields say;
//! - [`h1_request`]: the gateway's HTTP/1.1 server codec against hyper's HTTP/1 server on the
//!   same client bytes (every request it serves, hyper serves identically);
//! - [`raw_walk`]: the in-place JSON walks (`scatter::raw`) against sonic-rs and serde_json.
//!
//! [`TARGETS`] lists them by name (the names of the binaries and of `corpus/<target>/`).

pub mod filter_eval;
pub mod h1_answer;
pub mod h1_request;
pub mod history_params;
pub mod inject_filter;
pub mod input;
pub mod merge;
pub mod path_decode;
pub mod plan_query;
pub mod raw_walk;
pub mod route_match;
pub mod stamp_write;

/// A target's entry point.
pub type Target = fn(&[u8]);

/// Every target: its name and its entry point.
pub const TARGETS: &[(&str, Target)] = &[
    ("stamp_write", stamp_write::run),
    ("inject_filter", inject_filter::run),
    ("plan_query", plan_query::run),
    ("merge", merge::run),
    ("filter_eval", filter_eval::run),
    ("history_params", history_params::run),
    ("path_decode", path_decode::run),
    ("route_match", route_match::run),
    ("h1_answer", h1_answer::run),
    ("h1_request", h1_request::run),
    ("raw_walk", raw_walk::run),
];
