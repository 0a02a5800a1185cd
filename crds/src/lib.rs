//! The shapes of `layer.yaml`, Layer's configuration file.
//!
//! Its sections mirror the specs of the Kubernetes custom resources Layer is configured by:
//! `vectorStore` is a `VectorStore` spec (the upstream Turbopuffer endpoint, its credential and
//! the inbound auth policy), each entry of `indexes` is an `Index` spec (one namespace exposed
//! through the gateway), and `gateway` holds the data plane's own settings. The same types are
//! shared by the gateway today and by the operator and the CLI later, so the crate is
//! runtime-free: plain data, `serde` deserialization, the `LAYER_*` environment overrides and the
//! cross-field validation, with no async runtime and no I/O beyond reading the file.
//!
//! Where to start reading:
//! - [`config`]'s module doc: the reference `layer.yaml`, every key with its default and the
//!   environment variable that overrides it;
//! - [`Config::load`] (file, then environment) and [`Config::validate`] (cross-field rules);
//! - [`config::ENV_OVERRIDES`]: the one table of environment variables, each entry applying itself;
//! - with the `kube` feature, `k8s`: the `hevlayer.com` custom resources themselves (the CRD
//!   types the operator reconciles and the chart's CRD manifests are generated from).

pub mod config;
#[cfg(feature = "kube")]
pub mod k8s;

pub use config::Config;
