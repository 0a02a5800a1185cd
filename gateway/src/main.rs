//! `layer-gateway --listen ADDR --upstream-url URL --upstream-api-key KEY [--shards N]
//! [--config FILE] [--data-dir DIR] [--work-stealing]`
//!
//! Prints `layer-gateway listening on http://ADDR` once every shard is bound, then serves until
//! SIGTERM or SIGINT, and drains in-flight requests before exiting. SIGHUP re-reads the
//! configuration and applies its `indexes` (see `core::reload`).

// The manifest only denies unsafe code (a bench needs it); the library and binary forbid it.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// The binary's allocator. A request allocates dozens of small blocks on its shard and frees them
/// there; mimalloc's thread-local free lists serve that pattern in fewer instructions than
/// glibc's malloc (bench/results/2026-12-05-query-passthrough-allocs.md). Tests and benches that
/// start the gateway in-process keep their own allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// No `Debug` (clap does not need it): `upstream_api_key` is a secret.
#[derive(Parser)]
#[command(
    name = "layer-gateway",
    version,
    about = "Layer's data plane in front of Turbopuffer"
)]
struct Args {
    /// layer.yaml (flags override it; LAYER_* environment variables override the file).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address (port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Upstream base URL (also TURBOPUFFER_API_URL).
    #[arg(long)]
    upstream_url: Option<String>,
    /// Upstream API key (also TURBOPUFFER_API_KEY).
    #[arg(long)]
    upstream_api_key: Option<String>,
    /// Shard runtimes (default: one per core).
    #[arg(long)]
    shards: Option<usize>,
    /// Use one work-stealing runtime instead of pinned shards.
    #[arg(long)]
    work_stealing: bool,
    /// Local data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAYER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let env = |k: &str| std::env::var(k).ok();
    let cfg = load(&args, &env)?;
    let running = layer_gateway::start(cfg.clone(), &env)?;
    // SIGHUP re-reads the file with the same path, environment and flags.
    let reloader = layer_gateway::core::reload::Reloader::new(
        running.core().clone(),
        cfg,
        Box::new(move || load(&args, &env)),
        Box::new(env),
    );
    let signals = running.signals()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "layer-gateway listening on http://{}", running.addr)?;
        out.flush()?;
    }
    running.wait_for_signals(signals, || {
        // The reloader logs and counts its own outcome; a refused file changes nothing.
        let _ = reloader.reload();
    })?;
    tracing::info!("shutting down: draining in-flight requests");
    running.shutdown();
    Ok(())
}

/// The configuration: `--config` (if any), `LAYER_*` environment overrides, then the flags.
fn load(
    args: &Args,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<layer_gateway::Config, layer_gateway::config::ConfigError> {
    let mut cfg = layer_gateway::Config::load(args.config.as_deref(), env)?;
    if let Some(l) = args.listen {
        cfg.gateway.listen = l;
    }
    if let Some(u) = &args.upstream_url {
        cfg.vector_store.endpoint.url = u.clone();
    }
    if let Some(k) = &args.upstream_api_key {
        cfg.vector_store.credential.value = Some(k.clone());
    }
    if let Some(n) = args.shards {
        cfg.gateway.shards = n;
    }
    if args.work_stealing {
        cfg.gateway.work_stealing = true;
    }
    if let Some(d) = &args.data_dir {
        cfg.gateway.data_dir = d.clone();
    }
    Ok(cfg)
}
