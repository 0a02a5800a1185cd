//! `layer-loadgen --scenario FILE --target http://127.0.0.1:PORT [options]`
//!
//! Runs one scenario against one loopback target and prints a report (text by default,
//! `--format json` for scripts). Exit status: 0 when every measured request got an expected
//! status, 2 when some did not or failed (unless `--allow-errors`), 1 for configuration errors,
//! a refused target, or a target that cannot be reached.
//!
//! `main` loads the scenario, compiles it into a [`Plan`] and hands it to [`engine::run`]; the
//! library root (`lib.rs`) describes the modules.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use layer_loadgen::engine;
use layer_loadgen::guard::parse_target;
use layer_loadgen::report::Report;
use layer_loadgen::scenario::{Overrides, Pacing, Plan, ScenarioFile, parse_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Parser, Debug)]
#[command(
    name = "layer-loadgen",
    version,
    about = "Loopback-only HTTP/1.1 load generator (open and closed loop, HDR histograms)",
    after_help = "Targets must be http:// on 127.0.0.0/8, [::1] or localhost; anything else is \
                  refused. Scenario format: see bench/README.md."
)]
struct Args {
    /// Scenario file (.yaml/.yml or .json).
    #[arg(long, short)]
    scenario: PathBuf,
    /// Target base URL, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long, short)]
    target: String,
    /// Set a template variable (repeatable): --var ns=bench --var api_key=K.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Closed loop with this many connections (overrides the scenario).
    #[arg(long, short, conflicts_with = "rate")]
    concurrency: Option<usize>,
    /// Open loop at this many requests per second (overrides the scenario).
    #[arg(long, short)]
    rate: Option<f64>,
    /// Open loop: connections carrying the rate (default: scenario, else 64).
    #[arg(long)]
    connections: Option<usize>,
    /// Open loop: how sends wait for their instant (default: scenario, else timer); `spin` is
    /// microsecond-exact and keeps the load generator's core busy.
    #[arg(long, value_enum)]
    pacing: Option<Pacing>,
    /// Measured duration, e.g. 10s (overrides the scenario; at most 1h).
    #[arg(long, short, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Warm-up before measuring, e.g. 2s (overrides the scenario).
    #[arg(long, short, value_parser = parse_duration)]
    warmup: Option<Duration>,
    /// Per-request timeout (overrides the scenario; default 10s).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Runtime threads; 1 (the default) uses a single-threaded runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed for ${zipf} draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Write the report to this file instead of stdout.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Print the first rendered request and exit without sending anything.
    #[arg(long)]
    dry_run: bool,
    /// Exit 0 even if requests failed or returned unexpected statuses.
    #[arg(long)]
    allow_errors: bool,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match real_main(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("layer-loadgen: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn real_main(args: Args) -> Result<ExitCode, String> {
    // The guard runs first: nothing else happens for a refused target.
    let target = parse_target(&args.target).map_err(|e| e.to_string())?;
    let file = ScenarioFile::load(&args.scenario)?;
    let ov = Overrides {
        vars: args.vars.clone(),
        rate: args.rate,
        concurrency: args.concurrency,
        connections: args.connections,
        pacing: args.pacing,
        warmup: args.warmup,
        duration: args.duration,
        timeout: args.timeout,
    };
    let plan = Arc::new(Plan::compile(file, &ov)?);
    if args.dry_run {
        print!(
            "{}",
            engine::describe_first_request(plan, &target, args.seed)
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.threads == 0 || args.threads > 64 {
        return Err("--threads must be between 1 and 64".into());
    }
    let rt = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("tokio runtime: {e}"))?;
    let (stats, wall) = rt.block_on(engine::run(plan.clone(), &target, args.seed))?;
    let report = Report::new(&plan, &target.to_string(), &stats, wall);
    let text = match args.format {
        Format::Human => report.to_human(),
        Format::Json => report.to_json() + "\n",
    };
    match &args.out {
        Some(p) => std::fs::write(p, &text).map_err(|e| format!("{}: {e}", p.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| format!("stdout: {e}"))?;
        }
    }
    if report.has_failures() {
        eprintln!(
            "layer-loadgen: {} transport errors and {} unexpected statuses in the measured window",
            report.errors.total(),
            report.unexpected_status
        );
        if !args.allow_errors {
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}
