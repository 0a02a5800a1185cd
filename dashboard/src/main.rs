//! `layer-dashboard --listen 127.0.0.1:8081 --gateway-url http://127.0.0.1:8080 [--write-access]`
//! with `LAYER_GATEWAY_API_KEY`, `LAYER_DASHBOARD_USER` and `LAYER_DASHBOARD_PASSWORD` in the
//! environment (or the matching flags). Refuses to start without basic-auth credentials. Prints
//! `layer-dashboard listening on http://ADDR`, then serves until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;

use clap::Parser;
use layer_dashboard::Config;

// No `Debug`: the bearer and password are secrets.
#[derive(Parser)]
#[command(
    name = "layer-dashboard",
    version,
    about = "Layer's operator dashboard (server-rendered, behind basic auth)",
    after_help = "Example:\n  LAYER_GATEWAY_API_KEY=tpuf_local_dev_key LAYER_DASHBOARD_USER=ops \\\n  LAYER_DASHBOARD_PASSWORD=secret layer-dashboard --gateway-url http://127.0.0.1:8080"
)]
struct Args {
    /// Listen address.
    #[arg(long, env = "LAYER_DASHBOARD_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The gateway's base URL.
    #[arg(
        long,
        env = "LAYER_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    gateway_url: String,
    /// The gateway bearer.
    #[arg(
        long,
        env = "LAYER_GATEWAY_API_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    gateway_api_key: String,
    /// Basic-auth user (required).
    #[arg(long, env = "LAYER_DASHBOARD_USER", default_value = "")]
    user: String,
    /// Basic-auth password (required).
    #[arg(
        long,
        env = "LAYER_DASHBOARD_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    password: String,
    /// Enables the write actions (UDF pause and resume, behind a confirm step).
    #[arg(long, env = "LAYER_DASHBOARD_WRITE_ACCESS")]
    write_access: bool,
    /// Seconds between automatic page refreshes (0: off).
    #[arg(long, default_value_t = 15)]
    refresh_seconds: u32,
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
    let config = Config {
        listen: args.listen,
        gateway_url: args.gateway_url,
        bearer: args.gateway_api_key,
        user: args.user,
        password: args.password,
        write_access: args.write_access,
        kube_access: false,
        refresh_seconds: args.refresh_seconds,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let running = layer_dashboard::start(config).await?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "layer-dashboard listening on http://{}", running.addr)?;
            out.flush()?;
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        running.stop();
        Ok(())
    })
}
