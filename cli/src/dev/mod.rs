//! `layer dev`: the embedded stack in the foreground, for local development. It starts, in
//! order, a private PostgreSQL cluster (the pipeline and UDF queue, when the server binaries are
//! installed and `LAYER_DATABASE_URL` names no database), the Turbopuffer emulator, the gateway in
//! front of it, VictoriaMetrics scraping the gateway (when installed and `LAYER_METRICS_URL`
//! names none) and the dashboard (when its binary is there); prints one line per component (URL,
//! data directory, pid) and the bearer to use; then waits. SIGINT or SIGTERM (or a component
//! exiting on its own) stops everything: SIGTERM to each child in reverse order, SIGKILL after a
//! grace period, every child reaped, PostgreSQL stopped. `scripts/run` is a thin wrapper of it.

pub mod postgres;
pub mod procs;

use std::path::{Path, PathBuf};

use clap::Args;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

use crate::error::{CliError, Result};
use postgres::Postgres;
use procs::{Proc, concrete_addr, find_binary, spawn, wait_listening};

/// The bearer (and emulator key) when neither `--api-key` nor `LAYER_API_KEY` names one.
pub const DEFAULT_KEY: &str = "tpuf_local_dev_key";

/// `layer dev`. Each flag has the environment variable `scripts/run` has always honoured.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// Data directory (emulator/, gateway/, postgres/, victoria-metrics/ under it)
    /// [default: ~/.local/share/layer]
    #[arg(long, env = "LAYER_DATA_DIR", value_parser = any_path, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The gateway's listen address (port 0: a free port)
    #[arg(long, env = "LAYER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The emulator's listen address
    #[arg(long, env = "LAYER_EMULATOR_LISTEN", default_value = "127.0.0.1:8090")]
    pub emulator_listen: String,
    /// The dashboard's listen address
    #[arg(long, env = "LAYER_DASHBOARD_LISTEN", default_value = "127.0.0.1:8081")]
    pub dashboard_listen: String,
    /// VictoriaMetrics' listen address
    #[arg(long, env = "LAYER_VM_LISTEN", default_value = "127.0.0.1:8428")]
    pub vm_listen: String,
    /// Use this queue database instead of starting PostgreSQL
    #[arg(long, env = "LAYER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Use this metrics store instead of starting VictoriaMetrics
    #[arg(long, env = "LAYER_METRICS_URL")]
    pub metrics_url: Option<String>,
    /// PostgreSQL server binaries
    #[arg(
        long,
        env = "LAYER_PG_BIN",
        value_parser = any_path,
        default_value = "/usr/lib/postgresql/15/bin"
    )]
    pub pg_bin: PathBuf,
    /// PostgreSQL cluster directory [default: DATA_DIR/postgres]
    #[arg(long, env = "LAYER_PG_DIR", value_parser = any_path)]
    pub pg_dir: Option<PathBuf>,
    /// The victoria-metrics binary [default: victoria-metrics on PATH]
    #[arg(long, env = "LAYER_VM_BIN", value_parser = any_path)]
    pub vm_bin: Option<PathBuf>,
    /// The layer-gateway binary [default: next to `layer`, else on PATH]
    #[arg(long, env = "LAYER_GATEWAY_BIN", value_parser = any_path)]
    pub gateway_bin: Option<PathBuf>,
    /// The turbopuffer-emulator binary [default: next to `layer`, else on PATH]
    #[arg(long, env = "LAYER_EMULATOR_BIN", value_parser = any_path)]
    pub emulator_bin: Option<PathBuf>,
    /// The layer-dashboard binary [default: next to `layer`, else on PATH]
    #[arg(long, env = "LAYER_DASHBOARD_BIN", value_parser = any_path)]
    pub dashboard_bin: Option<PathBuf>,
    /// Dashboard basic-auth user
    #[arg(long, env = "LAYER_DASHBOARD_USER", default_value = "ops")]
    pub dashboard_user: String,
    /// Dashboard basic-auth password [default: generated for the run]
    #[arg(long, env = "LAYER_DASHBOARD_PASSWORD", hide_env_values = true)]
    pub dashboard_password: Option<String>,
    /// Do not start PostgreSQL (pipeline and UDF routes answer 503)
    #[arg(long)]
    pub no_postgres: bool,
    /// Do not start VictoriaMetrics (the PromQL routes answer 503)
    #[arg(long)]
    pub no_metrics: bool,
    /// Do not start the dashboard
    #[arg(long)]
    pub no_dashboard: bool,
}

/// A path, empty allowed (clap's own path parser refuses an empty value, and an empty variable
/// must count as unset rather than fail: [`DevArgs::unset_empty`]).
fn any_path(s: &str) -> std::result::Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

impl DevArgs {
    /// An empty variable counts as unset (as `${VAR:-default}` did in scripts/run).
    fn unset_empty(&mut self) {
        for (v, default) in [
            (&mut self.listen, "127.0.0.1:8080"),
            (&mut self.emulator_listen, "127.0.0.1:8090"),
            (&mut self.dashboard_listen, "127.0.0.1:8081"),
            (&mut self.vm_listen, "127.0.0.1:8428"),
            (&mut self.dashboard_user, "ops"),
        ] {
            if v.trim().is_empty() {
                *v = default.to_string();
            }
        }
        if self.pg_bin.as_os_str().is_empty() {
            self.pg_bin = PathBuf::from("/usr/lib/postgresql/15/bin");
        }
        for p in [
            &mut self.data_dir,
            &mut self.pg_dir,
            &mut self.vm_bin,
            &mut self.gateway_bin,
            &mut self.emulator_bin,
            &mut self.dashboard_bin,
        ] {
            if p.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                *p = None;
            }
        }
    }
}

/// `layer dev --help`'s examples.
pub const DEV_AFTER: &str = "Examples:
  layer dev
  layer dev --data-dir /tmp/layer --listen 127.0.0.1:0 --no-dashboard
  LAYER_DATABASE_URL='host=/run/postgresql user=me' layer dev

The bearer (and the emulator's key) is --api-key, else LAYER_API_KEY, else tpuf_local_dev_key.
The component binaries are found next to `layer` (cargo puts them side by side), else on PATH,
unless a flag or its variable names them. Ctrl-C stops everything.";

/// Twelve random hex characters (the dashboard password of a run).
fn random_password() -> String {
    use std::io::Read;
    let mut b = [0u8; 6];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if ok.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b.copy_from_slice(&t.to_le_bytes()[..6]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| CliError::failure(format!("{}: {e}", p.display())))
}

fn strip_http(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// What was started, for the summary and the shutdown.
struct Stack {
    procs: Vec<Proc>,
    postgres: Option<Postgres>,
    lines: Vec<String>,
}

impl Stack {
    /// Stops every child (reverse order), reaps them, stops PostgreSQL.
    async fn stop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            p.terminate();
        }
        for p in self.procs.iter_mut().rev() {
            p.reap().await;
            eprintln!("layer dev: {} stopped (pid {})", p.name, p.pid);
        }
        if let Some(pg) = self.postgres.take() {
            match pg.stop().await {
                Ok(()) => eprintln!("layer dev: postgres stopped"),
                Err(e) => eprintln!("layer dev: {}", e.message),
            }
        }
    }
}

/// Runs `layer dev` until a signal (exit 0) or a component's own exit (exit 1). The bearer is
/// `api_key` (`--api-key`), else `LAYER_API_KEY`/`HEVLAYER_API_KEY`, else [`DEFAULT_KEY`]; no
/// config environment is consulted (a local stack has its own key).
pub async fn run(mut args: DevArgs, api_key: Option<String>) -> Result<()> {
    args.unset_empty();
    // Registered first: a Ctrl-C during startup still stops what started.
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| CliError::failure(format!("SIGINT handler: {e}")))?;
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| CliError::failure(format!("SIGTERM handler: {e}")))?;
    let mut stack = Stack {
        procs: Vec::new(),
        postgres: None,
        lines: Vec::new(),
    };
    let started = tokio::select! {
        r = start(&args, api_key, &mut stack) => r,
        _ = sigint.recv() => Err(CliError::failure("interrupted during startup")),
        _ = sigterm.recv() => Err(CliError::failure("terminated during startup")),
    };
    if let Err(e) = started {
        stack.stop().await;
        return Err(e);
    }
    println!();
    println!("Layer is running (layer dev).");
    for l in &stack.lines {
        println!("  {l}");
    }
    println!("Ctrl-C stops everything.");
    let died = loop {
        tokio::select! {
            _ = sigint.recv() => break None,
            _ = sigterm.recv() => break None,
            _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {
                if let Some((name, st)) = stack.procs.iter_mut().find_map(|p| p.exited().map(|s| (p.name, s))) {
                    break Some(format!("{name} exited on its own ({st})"));
                }
            }
        }
    };
    eprintln!("layer dev: stopping");
    stack.stop().await;
    match died {
        None => Ok(()),
        Some(why) => Err(CliError::failure(why)),
    }
}

/// Starts every component, recording each in `stack` as soon as it runs.
async fn start(args: &DevArgs, api_key: Option<String>, stack: &mut Stack) -> Result<()> {
    let key = api_key
        .filter(|k| !k.is_empty())
        .or_else(|| {
            ["LAYER_API_KEY", "HEVLAYER_API_KEY"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        })
        .unwrap_or_else(|| DEFAULT_KEY.to_string());
    let data = match &args.data_dir {
        Some(d) => d.clone(),
        None => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local/share/layer"),
            None => return Err(CliError::usage("HOME is unset: name a --data-dir")),
        },
    };
    let data = std::path::absolute(&data).unwrap_or(data);
    let need = |flag: Option<&PathBuf>, name: &str, var: &str| {
        find_binary(flag.map(PathBuf::as_path), name).ok_or_else(|| {
            CliError::failure(format!(
                "{name} not found next to layer or on PATH (build it: cargo build -p {name}; or set {var})"
            ))
        })
    };
    let emulator_bin = need(
        args.emulator_bin.as_ref(),
        "turbopuffer-emulator",
        "LAYER_EMULATOR_BIN",
    )?;
    let gateway_bin = need(
        args.gateway_bin.as_ref(),
        "layer-gateway",
        "LAYER_GATEWAY_BIN",
    )?;
    mkdir(&data.join("emulator"))?;
    mkdir(&data.join("gateway"))?;

    // The queue.
    let database_url = if let Some(u) = args.database_url.clone().filter(|u| !u.is_empty()) {
        stack
            .lines
            .push("queue:      LAYER_DATABASE_URL (not started here)".into());
        Some(u)
    } else if args.no_postgres {
        stack.lines.push(
            "queue:      not started (--no-postgres): pipeline and UDF routes answer 503".into(),
        );
        None
    } else if Postgres::installed(&args.pg_bin) {
        let pg = Postgres::start(&args.pg_bin, &data, args.pg_dir.as_deref()).await?;
        let url = pg.url.clone();
        stack.lines.push(format!(
            "postgres:   {url}  (data {}, pid {})",
            pg.dir.join("data").display(),
            pg.pid.map_or("?".to_string(), |p| p.to_string())
        ));
        stack.postgres = Some(pg);
        Some(url)
    } else {
        stack.lines.push(format!(
            "queue:      not started: no PostgreSQL server binaries in {} (LAYER_PG_BIN); pipeline and UDF routes answer 503",
            args.pg_bin.display()
        ));
        None
    };

    // The metrics store's address is needed before the gateway starts; it starts after it.
    let vm = if args.metrics_url.as_deref().is_some_and(|u| !u.is_empty()) || args.no_metrics {
        None
    } else {
        let bin = args
            .vm_bin
            .clone()
            .or_else(|| find_binary(None, "victoria-metrics"));
        match bin {
            Some(b) => Some((b, concrete_addr(&args.vm_listen)?)),
            None => None,
        }
    };
    let metrics_url = match (&vm, &args.metrics_url) {
        (Some((_, addr)), _) => Some(format!("http://{addr}")),
        (None, Some(u)) if !u.is_empty() => Some(u.clone()),
        _ => None,
    };

    // The emulator, then the gateway in front of it.
    let emu_dir = data.join("emulator");
    let mut c = Command::new(&emulator_bin);
    c.arg("--listen")
        .arg(&args.emulator_listen)
        .arg("--api-key")
        .arg(&key)
        .arg("--data-dir")
        .arg(&emu_dir);
    let mut emu = spawn("emulator", &mut c)?;
    let emu_pid = emu.pid;
    let upstream = emu.listening_url().await;
    stack.procs.push(emu);
    let upstream = upstream?;
    stack.lines.push(format!(
        "emulator:   {upstream}  (Turbopuffer emulator; data {}, pid {emu_pid})",
        emu_dir.display()
    ));

    let gw_dir = data.join("gateway");
    let mut c = Command::new(&gateway_bin);
    c.arg("--listen")
        .arg(&args.listen)
        .arg("--upstream-url")
        .arg(&upstream)
        .arg("--upstream-api-key")
        .arg(&key)
        .arg("--data-dir")
        .arg(&gw_dir);
    if let Some(u) = &database_url {
        c.env("LAYER_DATABASE_URL", u);
    }
    if let Some(u) = &metrics_url {
        c.env("LAYER_METRICS_URL", u);
    }
    let mut gw = spawn("gateway", &mut c)?;
    let gw_pid = gw.pid;
    let gateway = gw.listening_url().await;
    stack.procs.push(gw);
    let gateway = gateway?;
    stack.lines.insert(
        0,
        format!(
            "gateway:    {gateway}  (data {}, pid {gw_pid})",
            gw_dir.display()
        ),
    );
    stack.lines.insert(
        1,
        format!("bearer:     {key}  (Authorization: Bearer {key})"),
    );

    // VictoriaMetrics, scraping the gateway every 10 s.
    match (&vm, &metrics_url) {
        (Some((bin, addr)), _) => {
            let dir = data.join("victoria-metrics");
            mkdir(&dir)?;
            let scrape = dir.join("scrape.yml");
            let cfg = format!(
                "scrape_configs:\n  - job_name: layer-gateway\n    scrape_interval: 10s\n    static_configs:\n      - targets: [\"{}\"]\n",
                strip_http(&gateway)
            );
            std::fs::write(&scrape, cfg)
                .map_err(|e| CliError::failure(format!("{}: {e}", scrape.display())))?;
            let log = std::fs::File::create(dir.join("vm.log"))
                .map_err(|e| CliError::failure(format!("{}: {e}", dir.display())))?;
            let mut c = Command::new(bin);
            c.arg(format!(
                "-storageDataPath={}",
                dir.join("data").display()
            ))
            .arg(format!("-httpListenAddr={addr}"))
            .arg("-retentionPeriod=30d")
            .arg(format!("-promscrape.config={}", scrape.display()))
            .arg("-loggerLevel=WARN")
            .stderr(log);
            let mut p = spawn("victoria-metrics", &mut c)?;
            p.discard_stdout();
            let pid = p.pid;
            stack.procs.push(p);
            wait_listening("victoria-metrics", addr).await?;
            stack.lines.push(format!(
                "metrics:    http://{addr}  (VictoriaMetrics scraping the gateway every 10 s; data {}, pid {pid})",
                dir.display()
            ));
        }
        (None, Some(u)) => stack
            .lines
            .push(format!("metrics:    {u}  (LAYER_METRICS_URL, not started here)")),
        (None, None) => stack.lines.push(
            "metrics:    not started: no victoria-metrics binary (LAYER_VM_BIN) or --no-metrics; the PromQL routes answer 503".into(),
        ),
    }

    // The dashboard, behind basic auth.
    let dash_bin = if args.no_dashboard {
        None
    } else {
        find_binary(args.dashboard_bin.as_deref(), "layer-dashboard")
    };
    match dash_bin {
        Some(bin) => {
            let password = args
                .dashboard_password
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(random_password);
            let mut c = Command::new(bin);
            c.arg("--listen")
                .arg(&args.dashboard_listen)
                .arg("--gateway-url")
                .arg(&gateway)
                .env("LAYER_GATEWAY_API_KEY", &key)
                .env("LAYER_DASHBOARD_USER", &args.dashboard_user)
                .env("LAYER_DASHBOARD_PASSWORD", &password);
            let mut p = spawn("dashboard", &mut c)?;
            let pid = p.pid;
            let url = p.listening_url().await;
            stack.procs.push(p);
            stack.lines.push(format!(
                "dashboard:  {}  (basic auth {} / {password}; read-only; pid {pid})",
                url?, args.dashboard_user
            ));
        }
        None => stack
            .lines
            .push("dashboard:  not started (no layer-dashboard binary, or --no-dashboard)".into()),
    }
    stack.lines.push(format!(
        "try:        curl -s {gateway}/v2/namespaces -H 'Authorization: Bearer {key}'"
    ));
    Ok(())
}
