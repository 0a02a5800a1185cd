//! `turbopuffer-emulator`: a local server that speaks Turbopuffer's HTTP API (routes R1–R16 of
//! `shared/reference/turbopuffer-contract.md`) closely enough to be the upstream of every Layer
//! test and benchmark and the embedded default.
//!
//! Where to start:
//! - [`http`] accepts requests, authenticates, injects faults, logs and routes them;
//! - [`routes`] holds one handler per upstream route;
//! - [`store`] owns the namespaces, the knobs and the background indexer;
//! - [`write`](mod@write) and [`query`] implement the write and query semantics on one namespace
//!   ([`namespace`]), with [`filter`], [`rank`], [`aggregate`], [`fts`] and [`schema`] underneath;
//! - [`control`] is the `/_emu/...` control plane (indexer, faults, request log);
//! - [`encryption`] checks the `encryption` write parameter: customer-managed encryption (CMEK) is
//!   refused (403) unless the emulator was started with a fake KMS key
//!   ([`Config::cmek_key_names`], `--cmek-key-name NAME`), as Turbopuffer refuses it without setup.
//!
//! The engine is exact (brute-force vector search, BM25 from corpus statistics computed per
//! query), in memory, and optionally persisted to `--data-dir`.

pub mod aggregate;
pub mod control;
pub mod encryption;
pub mod error;
pub mod filter;
pub mod fts;
pub mod http;
pub mod model;
pub mod namespace;
pub mod query;
pub mod rank;
pub mod routes;
pub mod schema;
pub mod store;
pub mod write;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// How to start an emulator.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub listen: Option<SocketAddr>,
    pub api_keys: Vec<String>,
    pub data_dir: Option<PathBuf>,
    pub seed: Option<u64>,
    /// KMS key names of a fake KMS: customer-managed-encryption writes naming one of them are
    /// accepted, any other key is refused. Empty (the default) means CMEK is not set up and every
    /// customer-managed-encryption write is refused with 403, as Turbopuffer does.
    pub cmek_key_names: Vec<String>,
}

/// A running emulator (for in-process tests and benches).
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<http::App>,
}

/// Binds and starts serving on the current tokio runtime.
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let store = store::Store::new(cfg.data_dir, cfg.seed, cfg.cmek_key_names)?;
    store.spawn_background();
    let app = Arc::new(http::App {
        store,
        control: control::Control::default(),
        keys: cfg.api_keys,
    });
    let listen = cfg
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let (listener, addr) = http::bind(listen).await?;
    let served = app.clone();
    tokio::spawn(async move {
        if let Err(e) = http::serve(served, listener).await {
            tracing::error!(error = %e, "listener failed");
        }
    });
    Ok(Running { addr, app })
}
