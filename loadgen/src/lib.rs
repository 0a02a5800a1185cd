//! `layer-loadgen`: a small, loopback-only HTTP/1.1 load generator for Layer's benchmarks.
//!
//! It replays one request shape from a scenario file ([`scenario`]) against one target, in
//! either of two modes:
//!
//! * **closed loop** (`concurrency: N`): N keep-alive connections, each with one request in
//!   flight, sending the next request as soon as the previous response is read. This is the
//!   `wrk` model and measures capacity at a fixed concurrency.
//! * **open loop** (`rate: R`): requests are scheduled at a constant arrival rate, independent of
//!   how fast responses come back, and latency is measured from the *scheduled* send time, so a
//!   stalled server shows up as latency instead of silently lowering the offered load
//!   (no coordinated omission). See [`schedule`]. Sends wait on tokio's millisecond timer, or
//!   with `pacing: spin` leave within microseconds of their instant ([`scenario::Pacing`]).
//!
//! Results go into HDR histograms ([`report`]) and are printed as text or JSON. Targets are
//! restricted to loopback addresses by [`guard`]; the crate depends on no other crate of this
//! workspace.
//!
//! Start reading at [`scenario::Plan::compile`] (what one run sends), then [`engine::run`] (how it
//! is sent and measured).

pub mod engine;
pub mod guard;
pub mod report;
pub mod scenario;
pub mod schedule;
pub mod template;
pub mod zipf;
