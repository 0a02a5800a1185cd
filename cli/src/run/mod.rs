//! `layer run -f function.yaml`: applies the `Function` CR (server-side apply, unless
//! `--no-apply`), registers its UDF spec with the gateway (`PUT /v2/udfs/{name}`: a re-run with a
//! bumped `spec.version` replaces the spec), triggers discovery (`POST /v2/udfs/{name}/discover`)
//! and waits for that sweep (`--detach` returns then); otherwise it polls
//! `GET /v2/udfs/{name}/status` with a progress bar until nothing is pending or processing. A
//! drain with failures exits 1 and leaves the CR and the registration in place; `--rm` deletes
//! both after a clean drain.

pub mod cluster;
pub mod function;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use http::Method;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::client::{Api, seg};
use crate::context::{Ctx, out};
use crate::error::{CliError, Result};
use crate::output::{self, Format};
use cluster::Cluster;

/// `layer run --help`'s examples.
pub const RUN_AFTER: &str = "Examples:
  layer run -f tag-products.yaml
  layer run -f tag-products.yaml --index amazon-products-staging
  layer run -f tag-products.yaml --detach
  layer run -f tag-products.yaml --rm
  layer run -f tag-products.yaml --no-apply      # workers managed outside the operator
  layer run -f tag-products.yaml --context kind-hevlayer --kube-namespace layer

Exit status: 0 when the queue drains with no failed item, 1 when it drains with failures (the CR and
the registration stay for inspection) or a step fails. Bump spec.version before re-running after a
model, prompt or taxonomy change.";

/// `layer run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The Function manifest (apiVersion hevlayer.com/v1alpha1, kind Function)
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Run over this one index (namespace) instead of spec.targetNamespaces
    #[arg(long, value_name = "NAMESPACE")]
    pub index: Option<String>,
    /// Return after registration and discovery instead of waiting for the queue to drain
    #[arg(long, conflicts_with = "rm")]
    pub detach: bool,
    /// After a clean drain, delete the gateway registration and (unless --no-apply) the CR
    #[arg(long)]
    pub rm: bool,
    /// Skip the Kubernetes apply (workers managed outside the operator); only register
    #[arg(long)]
    pub no_apply: bool,
    /// Seconds between status polls
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub interval: f64,
}

/// The queue counts one status poll gave.
#[derive(Debug, Clone, Default, PartialEq)]
struct Counts {
    pending: u64,
    processing: u64,
    failed: u64,
    /// Every stage's count (`counts` of the status body), in order.
    by_stage: Vec<(String, u64)>,
    sweeps: u64,
    discovering: bool,
    paused: bool,
}

impl Counts {
    fn of(raw: &Value) -> Counts {
        let n = |k: &str| raw.get(k).and_then(Value::as_u64).unwrap_or(0);
        let d = raw.get("discovery");
        Counts {
            pending: n("pending_count"),
            processing: n("processing_count"),
            failed: n("failed_count"),
            by_stage: raw
                .get("counts")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default(),
            sweeps: d
                .and_then(|d| d.get("sweeps_completed"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            discovering: d
                .and_then(|d| d.get("running"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            paused: raw.get("paused").and_then(Value::as_bool).unwrap_or(false),
        }
    }

    /// Items the status knows of, in any stage.
    fn total(&self) -> u64 {
        let staged: u64 = self.by_stage.iter().map(|(_, n)| n).sum();
        staged.max(self.pending + self.processing + self.failed)
    }

    fn line(&self) -> String {
        let mut s = format!(
            "pending={} processing={} failed={}",
            self.pending, self.processing, self.failed
        );
        for (k, n) in &self.by_stage {
            if !matches!(k.as_str(), "pending" | "failed") {
                s.push_str(&format!(" {k}={n}"));
            }
        }
        s.push_str(&format!(" sweeps={}", self.sweeps));
        s
    }
}

/// Runs `layer run`.
pub async fn run(ctx: &Ctx, args: RunArgs) -> Result<()> {
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err(CliError::usage(
            "--interval must be a positive number of seconds",
        ));
    }
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::failure(format!("{file}: {e}")))?;
    let m = function::parse(&text, args.index.as_deref())
        .map_err(|e| CliError::failure(format!("{file}: {e}")))?;
    let r = ctx.resolve()?;
    let api = Api::new(&r.base_url, r.api_key.as_deref())?;
    let name = m.name.clone();
    let path = format!("/v2/udfs/{}", seg(&name));

    // 1. The CR (server-side apply), in --kube-namespace, else the manifest's, else the
    //    context's default namespace.
    let cluster = if args.no_apply {
        None
    } else {
        Some(Cluster::connect(r.kube_context.as_deref()).await?)
    };
    let kube_ns = r
        .kube_namespace
        .clone()
        .or(m.namespace.clone())
        .or(cluster.as_ref().map(|c| c.default_namespace.clone()))
        .unwrap_or_else(|| "default".to_string());
    if let Some(c) = &cluster {
        c.apply(&m, &kube_ns).await?;
        eprintln!(
            "function.hevlayer.com/{name} applied in namespace {kube_ns} (field manager {})",
            cluster::FIELD_MANAGER
        );
    }

    // 2. The gateway registration, then discovery.
    let spec = function::udf_spec(&m, &kube_ns);
    api.call(Method::PUT, &path, Some(&json!({ "spec": spec })))
        .await?;
    eprintln!(
        "udf {name} registered with {} (version {})",
        r.base_url, m.spec.version
    );
    let before = Counts::of(&api.udf_status(&name).await?.raw);
    let d = api
        .call(Method::POST, &format!("{path}/discover"), Some(&json!({})))
        .await?;
    let enqueued = d.get("enqueued").and_then(Value::as_u64).unwrap_or(0);
    let complete = d.get("complete").and_then(Value::as_bool).unwrap_or(true);
    eprintln!(
        "discovery: {enqueued} rows enqueued{}",
        if complete {
            ""
        } else {
            " so far (still running)"
        }
    );
    if args.detach {
        let status = discovered(&api, &name, before.sweeps, args.interval).await?;
        return finish(ctx.format, &name, &status, "discovered");
    }

    // 3. Wait for the drain.
    let last = watch(&api, &name, before.sweeps, enqueued, args.interval).await?;
    let c = Counts::of(&last);
    if c.failed > 0 {
        let _ = finish(ctx.format, &name, &last, "drained with failures");
        return Err(CliError::failure(format!(
            "udf {name}: the queue drained with {} failed item(s); the registration{} left in \
place (`layer udf get {name}`; retry with POST {path}/reset-failed)",
            c.failed,
            if cluster.is_some() {
                " and the Function CR are"
            } else {
                " is"
            }
        )));
    }
    if args.rm {
        api.call(Method::DELETE, &path, None).await?;
        eprintln!("udf {name} deleted from the gateway");
        if let Some(cl) = &cluster {
            cl.delete(&name, &kube_ns).await?;
            eprintln!("function.hevlayer.com/{name} deleted from namespace {kube_ns}");
        }
    }
    finish(ctx.format, &name, &last, "drained")
}

/// The last word on stdout: the status body (`-o json`), the name (`-o names`), or one line.
fn finish(format: Format, name: &str, status: &Value, state: &str) -> Result<()> {
    match format {
        Format::Json => out(&output::json(status)),
        Format::Names => out(&format!("{name}\n")),
        Format::Table => out(&format!("{name} {state}: {}\n", Counts::of(status).line())),
    }
}

/// A paused UDF neither discovers nor hands out work: waiting for it would never end.
fn paused(name: &str) -> CliError {
    CliError::failure(format!(
        "udf {name} is paused (spec.paused): its queue cannot drain; resume it (POST \
/v2/udfs/{name}/resume, or spec.paused: false) or run with --detach"
    ))
}

/// Polls the status until the discovery sweep has completed (`--detach`).
async fn discovered(api: &Api, name: &str, sweeps_before: u64, interval: f64) -> Result<Value> {
    loop {
        let status = api.udf_status(name).await?.raw;
        let c = Counts::of(&status);
        if c.paused || (c.sweeps > sweeps_before && !c.discovering) {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_secs_f64(interval)).await;
    }
}

/// Polls the status until discovery completed (a sweep finished after `sweeps_before` and none
/// runs) and nothing is pending or processing; answers the last status body. A progress bar on a
/// terminal; otherwise a line on stderr whenever the counts change.
async fn watch(
    api: &Api,
    name: &str,
    sweeps_before: u64,
    enqueued: u64,
    interval: f64,
) -> Result<Value> {
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        ProgressBar::with_draw_target(Some(enqueued), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    let mut printed: Option<Counts> = None;
    let mut len = enqueued;
    loop {
        let status = match api.udf_status(name).await {
            Ok(s) => s.raw,
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        };
        let c = Counts::of(&status);
        if c.paused {
            bar.abandon();
            return Err(paused(name));
        }
        len = len.max(c.total());
        bar.set_length(len);
        bar.set_position(len.saturating_sub(c.pending + c.processing));
        bar.set_message(c.line());
        if !tty && printed.as_ref() != Some(&c) {
            eprintln!("{}", c.line());
            printed = Some(c.clone());
        }
        let discovered = c.sweeps > sweeps_before && !c.discovering;
        if discovered && c.pending == 0 && c.processing == 0 {
            bar.finish_and_clear();
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_secs_f64(interval)).await;
    }
}
