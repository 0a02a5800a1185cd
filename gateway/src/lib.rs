//! `layer-gateway`: Layer's data plane.
//!
//! Where to start:
//! - [`app`] is the composition root: it builds the [`core`], the shared [`sources`] and every
//!   [`features`] module, and joins their route tables into one router;
//! - [`core`] is what every feature stands on and names no feature: shards and runtimes,
//!   routing, auth, the proxy engine, errors, upstream, metrics, the object store, the watcher;
//! - [`sources`] are the rows features share (origin paging, documents, cache rows, the
//!   snapshot store, the Auto policy, the warm watermark);
//! - [`features`] are the routes, one module per feature.

// The manifest only denies unsafe code (a bench needs it); the library and binary forbid it.
#![forbid(unsafe_code)]

pub mod app;
pub mod core;
pub mod features;
#[doc(hidden)]
pub mod fuzzing;
pub mod sources;

pub use app::{start, start_with_tier};
pub use core::config::{self, Config};
pub use core::runtime::{Running, StartError};
