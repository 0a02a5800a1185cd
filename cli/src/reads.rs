//! `layer index list/get/delete`, `layer pipeline list/get`, `layer udf list/get [--watch]`:
//! reads through the gateway API, rendered per `-o`. Composite reads (a listing fanned out to
//! status routes) print, as JSON, the raw bodies joined under named keys.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{Api, NamespaceEntry, QueueStatus, Typed};
use crate::context::{Ctx, out};
use crate::error::{CliError, Result};
use crate::output::{self, Format, opt};

#[derive(Subcommand, Debug)]
pub enum IndexCmd {
    /// List indexes with rows, size, stable watermark, cache state and last write
    #[command(
        after_help = "Examples:\n  layer index list\n  layer index list --prefix shop- -o names"
    )]
    List {
        /// Only names starting with this prefix
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Row count, size, schema summary, last write, stable watermark and lag, index status,
    /// cache state (times are epoch-ms, sizes bytes; snapshot history is not shown yet)
    #[command(
        after_help = "Examples:\n  layer index get shop-products\n  layer index get shop-products -o json"
    )]
    Get { name: String },
    /// Delete an index and all its rows (asks on a TTY; --yes is required otherwise)
    #[command(after_help = "Example:\n  layer index delete old-products --yes")]
    Delete {
        name: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PipelineCmd {
    /// Pipelines with live queue depth (pending, processing, failed, rate/min)
    #[command(after_help = "Example:\n  layer pipeline list")]
    List,
    /// One pipeline: target namespace, distance metric, created-at and queue depth
    #[command(after_help = "Example:\n  layer pipeline get product-images -o json")]
    Get { id: String },
}

#[derive(Subcommand, Debug)]
pub enum UdfCmd {
    /// UDFs with pending, processing, failed, discovery sweep count and indexed rate
    #[command(after_help = "Example:\n  layer udf list")]
    List,
    /// One UDF's status; --watch polls until pending and processing are both zero
    #[command(
        after_help = "Examples:\n  layer udf get product-tags\n  layer udf get product-tags --watch"
    )]
    Get {
        udf_id: String,
        /// Poll until pending_count and processing_count are both zero
        #[arg(long)]
        watch: bool,
        /// Seconds between polls with --watch
        #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
        interval: f64,
    },
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn cache_cell(e: &NamespaceEntry) -> String {
    match &e.cache_state {
        Some(c) if c.warm_inflight => format!("{} (warming)", c.state),
        Some(c) => c.state.clone(),
        None => "-".into(),
    }
}

/// Runs an `index` subcommand.
pub async fn index(ctx: &Ctx, cmd: IndexCmd) -> Result<()> {
    let api = ctx.api()?;
    match cmd {
        IndexCmd::List { prefix } => {
            let list = api.list_namespaces(prefix.as_deref()).await?;
            match ctx.format {
                Format::Json => out(&output::json(&list.raw)),
                Format::Names => out(&list
                    .value
                    .iter()
                    .map(|e| format!("{}\n", e.name))
                    .collect::<String>()),
                Format::Table => {
                    let rows: Vec<Vec<String>> = list
                        .value
                        .iter()
                        .map(|e| {
                            vec![
                                e.name.clone(),
                                opt(e.row_count),
                                opt(e.size_bytes),
                                opt(e.stable_as_of_ms),
                                opt(e.is_stable),
                                cache_cell(e),
                                opt(e.last_write_ms),
                                opt(e.metadata_error.as_deref()),
                            ]
                        })
                        .collect();
                    out(&output::table(
                        &[
                            "NAME",
                            "ROWS",
                            "SIZE_BYTES",
                            "STABLE_AS_OF_MS",
                            "STABLE",
                            "CACHE",
                            "LAST_WRITE_MS",
                            "ERROR",
                        ],
                        &rows,
                    ))
                }
            }
        }
        IndexCmd::Get { name } => index_get(ctx, &api, &name).await,
        IndexCmd::Delete { name, yes } => {
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(CliError::usage(format!(
                        "deleting {name:?} removes every row: pass --yes (stdin is not a terminal)"
                    )));
                }
                eprint!("Delete index {name:?} and all its rows? Type its name to confirm: ");
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| CliError::failure(format!("stdin: {e}")))?;
                if line.trim() != name {
                    return Err(CliError::failure("not confirmed; nothing deleted"));
                }
            }
            let body = api.delete_namespace(&name).await?;
            match ctx.format {
                Format::Json => out(&output::json(&body)),
                _ => out(&format!("deleted {name}\n")),
            }
        }
    }
}

async fn index_get(ctx: &Ctx, api: &Api, name: &str) -> Result<()> {
    let (meta, listing) = tokio::join!(
        api.namespace_metadata(name),
        api.list_namespaces(Some(name))
    );
    let meta = meta?;
    // The listing adds cache state and the last write; a failure there leaves those cells empty.
    let (entry, entry_raw) = match listing {
        Ok(l) => {
            let i = l.value.iter().position(|e| e.name == name);
            let raw = i
                .and_then(|i| l.raw["namespaces"].get(i).cloned())
                .unwrap_or(Value::Null);
            (i.map(|i| l.value[i].clone()), raw)
        }
        Err(e) => {
            eprintln!("warning: listing unavailable: {}", e.message);
            (None, Value::Null)
        }
    };
    match ctx.format {
        Format::Json => out(&output::json(
            &json!({ "metadata": meta.raw, "listing": entry_raw }),
        )),
        Format::Names => out(&format!("{}\n", meta.value.id)),
        Format::Table => {
            let m = &meta.value;
            let layer = m.layer.clone().unwrap_or_default();
            let e = entry.unwrap_or_default();
            let stable = layer.stable_as_of.or(e.stable_as_of_ms);
            let lag_ms = stable.map(|s| now_ms().saturating_sub(s));
            let mut fields: Vec<String> = m.schema.keys().cloned().collect();
            if fields.is_empty() {
                fields = e
                    .schema_summary
                    .as_ref()
                    .and_then(|s| s.fields.clone())
                    .unwrap_or_default();
            }
            fields.sort();
            let vector_dim = e
                .schema_summary
                .as_ref()
                .and_then(|s| s.vector_dim)
                .or_else(|| vector_dim(&m.schema));
            let schema = format!(
                "{} attributes{}: {}",
                fields.len(),
                vector_dim
                    .map(|d| format!(", vector dim {d}"))
                    .unwrap_or_default(),
                fields.join(", ")
            );
            let index = m.index.clone().or(e.index.clone()).unwrap_or_default();
            let cache = match &e.cache_state {
                Some(c) => format!(
                    "{}{} warmed_through_ms={}",
                    c.state,
                    if c.warm_inflight {
                        " (warm in flight)"
                    } else {
                        ""
                    },
                    opt(c.warmed_through_ms)
                ),
                None => "-".into(),
            };
            out(&output::fields(&[
                ("name", m.id.clone()),
                ("rows", m.approx_row_count.to_string()),
                ("size_bytes", m.approx_logical_bytes.to_string()),
                ("schema", schema),
                ("last_write_ms", opt(e.last_write_ms)),
                (
                    "last_write_at",
                    opt(m.last_write_at.as_deref().or(m.updated_at.as_deref())),
                ),
                ("stable_as_of_ms", opt(stable)),
                ("stable_lag_ms", opt(lag_ms)),
                ("is_stable", opt(layer.is_stable.or(e.is_stable))),
                ("indexed", opt(layer.indexed)),
                ("index_lag_rows", opt(layer.index_lag_rows)),
                ("index_status", opt(index.status.as_deref())),
                ("unindexed_bytes", opt(index.unindexed_bytes)),
                ("cache", cache),
            ]))
        }
    }
}

/// The dimension of the first `[N]f32`/`[N]f16` vector attribute in an upstream schema.
pub fn vector_dim(schema: &serde_json::Map<String, Value>) -> Option<u64> {
    schema.values().find_map(|v| {
        let t = v.get("type").and_then(Value::as_str).or(v.as_str())?;
        let rest = t.strip_prefix('[')?;
        let (n, ty) = rest.split_once(']')?;
        if ty.starts_with('f') {
            n.parse().ok()
        } else {
            None
        }
    })
}

/// Counts cells: `-` for a missing status (a pipeline no worker has staged into yet).
fn queue_cells(s: Option<&QueueStatus>) -> Vec<String> {
    match s {
        Some(s) => vec![
            s.pending_count.to_string(),
            s.processing_count.to_string(),
            s.failed_count.to_string(),
            format!("{:.1}", s.indexed_rate_per_min),
        ],
        None => vec!["-".into(); 4],
    }
}

/// Status for each id, concurrently; a failed status call is `None` (rendered without counts).
pub async fn fan_out(api: &Api, ids: Vec<String>, udf: bool) -> Vec<Option<Typed<QueueStatus>>> {
    let n = ids.len();
    let mut set = tokio::task::JoinSet::new();
    for (i, id) in ids.into_iter().enumerate() {
        let api = api.clone();
        set.spawn(async move {
            let r = if udf {
                api.udf_status(&id).await
            } else {
                api.pipeline_status(&id).await
            };
            (i, r.ok())
        });
    }
    let mut out: Vec<Option<Typed<QueueStatus>>> = Vec::new();
    let mut got = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            got.push(r);
        }
    }
    out.resize_with(n, || None);
    for (i, s) in got {
        if i < out.len() {
            out[i] = s;
        }
    }
    out
}

/// One id per line (`-o names`).
fn names(ids: &[String]) -> String {
    ids.iter().map(|id| format!("{id}\n")).collect()
}

/// The raw listing with each entry of `key` given its raw status (`null` when unreadable):
/// `-o json` of a list that fans out to the status route.
fn with_statuses(raw: &Value, key: &str, statuses: &[Option<Typed<QueueStatus>>]) -> Value {
    let mut raw = raw.clone();
    if let Some(a) = raw.get_mut(key).and_then(Value::as_array_mut) {
        for (entry, s) in a.iter_mut().zip(statuses) {
            if let Some(o) = entry.as_object_mut() {
                o.insert(
                    "status".into(),
                    s.as_ref().map_or(Value::Null, |s| s.raw.clone()),
                );
            }
        }
    }
    raw
}

/// Runs a `pipeline` subcommand.
pub async fn pipeline(ctx: &Ctx, cmd: PipelineCmd) -> Result<()> {
    let api = ctx.api()?;
    let list = api.list_pipelines().await?;
    match cmd {
        PipelineCmd::List => {
            let ids: Vec<String> = list.value.pipelines.iter().map(|p| p.id.clone()).collect();
            if ctx.format == Format::Names {
                return out(&names(&ids));
            }
            let statuses = fan_out(&api, ids, false).await;
            match ctx.format {
                Format::Json => out(&output::json(&with_statuses(
                    &list.raw,
                    "pipelines",
                    &statuses,
                ))),
                _ => {
                    let rows: Vec<Vec<String>> = list
                        .value
                        .pipelines
                        .iter()
                        .zip(&statuses)
                        .map(|(p, s)| {
                            let s = s.as_ref().map(|s| &s.value);
                            let mut r = vec![
                                p.id.clone(),
                                p.target_namespace.clone(),
                                opt(s.and_then(|s| s.status.clone())),
                            ];
                            r.extend(queue_cells(s));
                            r
                        })
                        .collect();
                    out(&output::table(
                        &[
                            "ID",
                            "TARGET",
                            "STATUS",
                            "PENDING",
                            "PROCESSING",
                            "FAILED",
                            "RATE/MIN",
                        ],
                        &rows,
                    ))
                }
            }
        }
        PipelineCmd::Get { id } => {
            let Some(i) = list.value.pipelines.iter().position(|p| p.id == id) else {
                return Err(CliError::failure(format!("pipeline {id:?} not found")));
            };
            let p = &list.value.pipelines[i];
            let status = api.pipeline_status(&id).await.ok();
            match ctx.format {
                Format::Names => out(&format!("{}\n", p.id)),
                Format::Json => out(&output::json(&json!({
                    "pipeline": list.raw["pipelines"][i],
                    "status": status.as_ref().map_or(Value::Null, |s| s.raw.clone()),
                }))),
                Format::Table => {
                    let s = status.as_ref().map(|s| &s.value);
                    let c = queue_cells(s);
                    out(&output::fields(&[
                        ("id", p.id.clone()),
                        ("target_namespace", p.target_namespace.clone()),
                        ("distance_metric", p.distance_metric.clone()),
                        ("created_at", p.created_at.clone()),
                        ("status", opt(s.and_then(|s| s.status.clone()))),
                        ("pending", c[0].clone()),
                        ("processing", c[1].clone()),
                        ("failed", c[2].clone()),
                        ("rate/min", c[3].clone()),
                        ("rate_window_seconds", opt(s.map(|s| s.rate_window_seconds))),
                    ]))
                }
            }
        }
    }
}

fn sweeps(s: &QueueStatus) -> String {
    opt(s.discovery.as_ref().map(|d| d.sweeps_completed))
}

/// Runs a `udf` subcommand.
pub async fn udf(ctx: &Ctx, cmd: UdfCmd) -> Result<()> {
    let api = ctx.api()?;
    match cmd {
        UdfCmd::List => {
            let list = api.list_udfs().await?;
            let ids: Vec<String> = list.value.udfs.iter().map(|u| u.id.clone()).collect();
            if ctx.format == Format::Names {
                return out(&names(&ids));
            }
            let statuses = fan_out(&api, ids, true).await;
            match ctx.format {
                Format::Json => out(&output::json(&with_statuses(&list.raw, "udfs", &statuses))),
                _ => {
                    let rows: Vec<Vec<String>> = list
                        .value
                        .udfs
                        .iter()
                        .zip(&statuses)
                        .map(|(u, s)| {
                            let s = s.as_ref().map(|s| &s.value);
                            let mut r = vec![u.id.clone(), u.paused.to_string()];
                            let c = queue_cells(s);
                            r.extend(c[..3].iter().cloned());
                            r.push(s.map_or("-".into(), sweeps));
                            r.push(c[3].clone());
                            r
                        })
                        .collect();
                    out(&output::table(
                        &[
                            "ID",
                            "PAUSED",
                            "PENDING",
                            "PROCESSING",
                            "FAILED",
                            "SWEEPS",
                            "RATE/MIN",
                        ],
                        &rows,
                    ))
                }
            }
        }
        UdfCmd::Get {
            udf_id,
            watch,
            interval,
        } => {
            if !(interval.is_finite() && interval > 0.0) {
                return Err(CliError::usage(
                    "--interval must be a positive number of seconds",
                ));
            }
            loop {
                let g = api.get_udf(&udf_id).await?;
                let s = &g.value.status;
                let drained = s.pending_count == 0 && s.processing_count == 0;
                match ctx.format {
                    Format::Names => out(&format!("{}\n", g.value.udf.id))?,
                    Format::Json => out(&output::json(&g.raw))?,
                    Format::Table if watch => out(&format!(
                        "pending={} processing={} failed={} sweeps={} rate/min={:.1}\n",
                        s.pending_count,
                        s.processing_count,
                        s.failed_count,
                        sweeps(s),
                        s.indexed_rate_per_min
                    ))?,
                    Format::Table => {
                        let u = &g.value.udf;
                        out(&output::fields(&[
                            ("id", u.id.clone()),
                            ("paused", u.paused.to_string()),
                            (
                                "version",
                                opt(u.spec.get("version").and_then(Value::as_str)),
                            ),
                            ("active_namespaces", s.active_namespaces.join(",")),
                            ("pending", s.pending_count.to_string()),
                            ("processing", s.processing_count.to_string()),
                            ("failed", s.failed_count.to_string()),
                            ("discovery_sweeps", sweeps(s)),
                            (
                                "last_sweep_at",
                                opt(s
                                    .discovery
                                    .as_ref()
                                    .and_then(|d| d.last_completed_at.clone())),
                            ),
                            ("rate/min", format!("{:.1}", s.indexed_rate_per_min)),
                            ("created_at", u.created_at.clone()),
                            ("updated_at", u.updated_at.clone()),
                        ]))?
                    }
                }
                if !watch || drained {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_secs_f64(interval)).await;
            }
        }
    }
}
