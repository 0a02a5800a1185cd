//! `turbopuffer-emulator --listen ADDR [--api-key KEY]... [--data-dir DIR] [--seed N]
//! [--cmek-key-name NAME]...`
//!
//! Prints `turbopuffer-emulator listening on http://ADDR` once bound, then serves until killed.
//! A thin CLI over [`turbopuffer_emulator::start`]; start reading at the library root (`lib.rs`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "turbopuffer-emulator",
    version,
    about = "A local Turbopuffer-compatible server"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8090", env = "TPUF_EMULATOR_LISTEN")]
    listen: SocketAddr,
    /// Accepted bearer token (repeatable). With none, any bearer is accepted.
    #[arg(long = "api-key")]
    api_keys: Vec<String>,
    /// Persist namespaces here and restore them at start.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Seed for operation tokens and fault probabilities (deterministic runs).
    #[arg(long)]
    seed: Option<u64>,
    /// Enable customer-managed encryption with a fake KMS key of this name (repeatable). Writes
    /// with `encryption: {"mode":"customer-managed","key_name":NAME}` then succeed for these
    /// names and are refused (403) for any other; without this option every customer-managed
    /// encryption write is refused (403), as Turbopuffer refuses it without setup.
    #[arg(long = "cmek-key-name", value_name = "NAME")]
    cmek_key_names: Vec<String>,
    /// Worker threads (default: 2).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TPUF_EMULATOR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let running = turbopuffer_emulator::start(turbopuffer_emulator::Config {
            listen: Some(args.listen),
            api_keys: args.api_keys,
            data_dir: args.data_dir,
            seed: args.seed,
            cmek_key_names: args.cmek_key_names,
        })
        .await?;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "turbopuffer-emulator listening on http://{}",
            running.addr
        )?;
        out.flush()?;
        drop(out);
        tokio::signal::ctrl_c().await?;
        anyhow::Ok(())
    })
}
