//! The configuration the gateway runs with: the `layer.yaml` shapes of crate `crds` (shared
//! with the operator and CLI), re-exported so the gateway reads them as `core::config`.

pub use crds::config::*;
