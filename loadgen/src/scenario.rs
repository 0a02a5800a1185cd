//! Scenario files (YAML or JSON) and their compilation into a run [`Plan`].
//!
//! A scenario describes one request shape and one load shape:
//!
//! ```yaml
//! name: query-passthrough          # default: the file name without extension
//! description: free text
//! method: POST                     # default GET
//! path: /v2/namespaces/${ns}/query
//! headers:
//!   content-type: application/json
//!   authorization: Bearer ${api_key}
//! body: '{"rank_by":["vector","ANN",[0.1,0.2]],"top_k":10}'
//! vars: { ns: bench, api_key: "" } # defaults; --var name=value overrides
//! zipf: { n: 10000, exponent: 1.0, offset: 0 }   # optional, enables ${zipf}
//! warmup: 2s                       # default 0
//! duration: 10s                    # required, at most 1 h
//! concurrency: 64                  # closed loop …
//! # rate: 5000                     # … or open loop at 5000 req/s,
//! # connections: 64                #     over this many connections (default 64)
//! # pacing: spin                   #     `timer` (default) or `spin`: see [`Pacing`]
//! timeout: 10s                     # per request, default 10 s
//! # fanout: 8                      # closed loop only: each request is 8 sent at once, on
//! #                                #   8 connections, `${leg}` = 0..7; its latency is the
//! #                                #   slowest one's (a scatter's "slowest leg", measured)
//! expect_status: [200]             # default: any 2xx
//! ```
//!
//! Templates are described in [`crate::template`]. Durations are a number of seconds or a number
//! with a unit (`ns`, `us`, `ms`, `s`, `m`, `h`). Files ending in `.json` are parsed as JSON,
//! everything else as YAML. Unknown fields are errors, so a typo cannot silently change a run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use serde::Deserialize;

use crate::schedule::{OpenSchedule, Window};
use crate::template::{Dynamic, RESERVED, RenderCtx, Template, is_valid_name};
use crate::zipf::{SplitMix64, Zipf};

/// Longest allowed warm-up or measured duration: every load is bounded.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most connections a run may open.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Highest open-loop rate accepted (requests per second).
pub const MAX_RATE: f64 = 10_000_000.0;
/// Default connections for open-loop runs.
pub const DEFAULT_CONNECTIONS: usize = 64;

/// A scalar in `vars:` (strings, numbers and booleans are all accepted as text).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Scalar {
    /// Text.
    Str(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// A duration as written in a scenario: seconds, or text with a unit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DurationSpec {
    /// Seconds.
    Secs(f64),
    /// `"250ms"`, `"10s"`, …
    Text(String),
}

impl DurationSpec {
    fn resolve(&self, field: &str) -> Result<Duration, String> {
        match self {
            DurationSpec::Secs(s) => secs(*s).map_err(|e| format!("{field}: {e}")),
            DurationSpec::Text(t) => parse_duration(t).map_err(|e| format!("{field}: {e}")),
        }
    }
}

fn secs(s: f64) -> Result<Duration, String> {
    if !s.is_finite() || s < 0.0 || s > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "{s} s is out of range (0 to {} s)",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

/// Parses `10`, `1.5s`, `250ms`, `2m`, `100us`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{text}` (examples: 10s, 250ms, 2m)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown duration unit `{other}` in `{text}`")),
    };
    secs(n * scale)
}

/// Zipf parameters for `${zipf}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZipfSpec {
    /// Number of distinct ids.
    pub n: u64,
    /// Skew (`0` uniform, `1` classic Zipf). Default 1.
    #[serde(default = "one")]
    pub exponent: f64,
    /// The hottest id; ids are `offset ..= offset + n - 1`. Default 0.
    #[serde(default)]
    pub offset: u64,
}

fn one() -> f64 {
    1.0
}

/// The file as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Scenario name (default: file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// HTTP method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// Path template, starting with `/`.
    pub path: String,
    /// Header templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body template.
    #[serde(default)]
    pub body: Option<String>,
    /// Variable defaults.
    #[serde(default)]
    pub vars: BTreeMap<String, Scalar>,
    /// Optional Zipf id source.
    #[serde(default)]
    pub zipf: Option<ZipfSpec>,
    /// Warm-up (default 0).
    #[serde(default)]
    pub warmup: Option<DurationSpec>,
    /// Measured duration.
    pub duration: DurationSpec,
    /// Open loop: requests per second.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Closed loop: connections each with one request in flight.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Open loop: connections (default 64).
    #[serde(default)]
    pub connections: Option<usize>,
    /// Open loop: how sends are timed (default `timer`).
    #[serde(default)]
    pub pacing: Option<Pacing>,
    /// Closed loop: requests sent together per iteration (default 1).
    #[serde(default)]
    pub fanout: Option<usize>,
    /// Per-request timeout (default 10 s).
    #[serde(default)]
    pub timeout: Option<DurationSpec>,
    /// Statuses that count as success (default any 2xx).
    #[serde(default)]
    pub expect_status: Vec<u16>,
}

impl ScenarioFile {
    /// Parses scenario text; `json` selects the JSON parser.
    pub fn parse(text: &str, json: bool) -> Result<ScenarioFile, String> {
        if json {
            serde_json::from_str(text).map_err(|e| e.to_string())
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
        }
    }

    /// Reads and parses a file (JSON if it ends in `.json`, YAML otherwise).
    pub fn load(path: &Path) -> Result<ScenarioFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let mut f = ScenarioFile::parse(&text, json)
            .map_err(|e| format!("scenario {}: {e}", path.display()))?;
        if f.name.is_none() {
            f.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        Ok(f)
    }
}

/// Command-line overrides applied on top of the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--var name=value`, in order.
    pub vars: Vec<(String, String)>,
    /// `--rate` (switches to open loop).
    pub rate: Option<f64>,
    /// `--concurrency` (switches to closed loop).
    pub concurrency: Option<usize>,
    /// `--connections`.
    pub connections: Option<usize>,
    /// `--pacing`.
    pub pacing: Option<Pacing>,
    /// `--warmup`.
    pub warmup: Option<Duration>,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
}

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Fixed concurrency: each connection sends the next request when the last one returns.
    Closed {
        /// Connections (= requests in flight).
        concurrency: usize,
    },
    /// Constant arrival rate, latency from the scheduled send time.
    Open {
        /// The arrival schedule.
        schedule: OpenSchedule,
        /// Connections available to carry it.
        connections: usize,
        /// How sends are timed.
        pacing: Pacing,
    },
}

/// How an open loop waits for a request's scheduled instant.
///
/// Latency is measured from the scheduled instant either way, so a late send is never hidden;
/// the choice is how much of the measured latency is the load generator's own lateness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Pacing {
    /// tokio's timer, which fires on millisecond ticks: a request leaves up to ~1 ms after its
    /// instant (the report's send lag), and that lag is part of its latency. Costs no CPU
    /// while waiting.
    #[default]
    Timer,
    /// The timer until [`SPIN_AHEAD`] before the instant, then yielding to the runtime in a loop
    /// until it arrives: sends leave within microseconds of their schedule, so the latency is
    /// the server's. Keeps the load generator's core busy for the whole run at rates above
    /// ~500 req/s (below, 2 ms per request): give it a core of its own, or its spinning slows
    /// whatever shares it.
    Spin,
}

/// How long before its instant a [`Pacing::Spin`] send stops sleeping on the timer (which can
/// fire up to a millisecond late) and starts spinning.
pub const SPIN_AHEAD: Duration = Duration::from_millis(2);

impl Pacing {
    /// The name used in scenario files and reports.
    pub fn name(self) -> &'static str {
        match self {
            Pacing::Timer => "timer",
            Pacing::Spin => "spin",
        }
    }
}

impl Mode {
    /// Number of connections the run opens.
    pub fn connections(&self) -> usize {
        match *self {
            Mode::Closed { concurrency } => concurrency,
            Mode::Open { connections, .. } => connections,
        }
    }
}

/// A compiled, validated scenario.
#[derive(Debug)]
pub struct Plan {
    /// Scenario name.
    pub name: String,
    /// Method.
    pub method: Method,
    /// Path template.
    pub path: Template,
    /// Header templates (never `host` or `content-length`; those are set by the client).
    pub headers: Vec<(HeaderName, Template)>,
    /// Body template (none = empty body).
    pub body: Option<Template>,
    /// Id sampler for `${zipf}`.
    pub zipf: Option<Arc<Zipf>>,
    /// Load shape.
    pub mode: Mode,
    /// Warm-up and measured duration.
    pub window: Window,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Success statuses; empty = any 2xx.
    pub expect_status: Vec<u16>,
    /// Requests sent together per closed-loop iteration, each on its own connection (1: none).
    pub fanout: usize,
}

/// Largest `fanout`.
pub const MAX_FANOUT: usize = 64;

impl Plan {
    /// Validates the file plus overrides.
    pub fn compile(mut file: ScenarioFile, ov: &Overrides) -> Result<Plan, String> {
        let name = file.name.clone().unwrap_or_else(|| "scenario".into());
        let method_text = file.method.as_deref().unwrap_or("GET");
        let method = Method::from_bytes(method_text.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("invalid method `{method_text}`"))?;

        let mut vars = BTreeMap::new();
        for (k, v) in std::mem::take(&mut file.vars) {
            vars.insert(k, v.into_text());
        }
        for (k, v) in &ov.vars {
            vars.insert(k.clone(), v.clone());
        }
        for k in vars.keys() {
            if !is_valid_name(k) {
                return Err(format!("invalid variable name `{k}`"));
            }
            if RESERVED.contains(&k.as_str()) {
                return Err(format!("`{k}` is built in and cannot be set as a variable"));
            }
        }

        let zipf = match &file.zipf {
            Some(z) => Some(Arc::new(Zipf::new(z.n, z.exponent, z.offset)?)),
            None => None,
        };
        let has_zipf = zipf.is_some();
        let field = |what: &str, e: crate::template::TemplateError| format!("{what}: {e}");

        if !file.path.starts_with('/') {
            return Err(format!("path must start with `/`, got `{}`", file.path));
        }
        let path = Template::compile(&file.path, &vars, has_zipf).map_err(|e| field("path", e))?;
        let mut headers = Vec::new();
        for (k, v) in &file.headers {
            let hn = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("invalid header name `{k}`"))?;
            if hn == http::header::HOST || hn == http::header::CONTENT_LENGTH {
                return Err(format!("header `{k}` is set by layer-loadgen itself"));
            }
            let t = Template::compile(v, &vars, has_zipf).map_err(|e| field(k, e))?;
            headers.push((hn, t));
        }
        let body = match &file.body {
            Some(b) => Some(Template::compile(b, &vars, has_zipf).map_err(|e| field("body", e))?),
            None => None,
        };

        let warmup = match (ov.warmup, &file.warmup) {
            (Some(d), _) => d,
            (None, Some(s)) => s.resolve("warmup")?,
            (None, None) => Duration::ZERO,
        };
        let duration = match ov.duration {
            Some(d) => d,
            None => file.duration.resolve("duration")?,
        };
        if duration.is_zero() || duration > MAX_DURATION || warmup > MAX_DURATION {
            return Err(format!(
                "duration must be > 0 and both duration and warmup at most {} s",
                MAX_DURATION.as_secs()
            ));
        }
        let timeout = match (ov.timeout, &file.timeout) {
            (Some(d), _) => d,
            (None, Some(s)) => s.resolve("timeout")?,
            (None, None) => Duration::from_secs(10),
        };
        if timeout.is_zero() {
            return Err("timeout must be > 0".into());
        }

        let mode = resolve_mode(&file, ov)?;
        let fanout = file.fanout.unwrap_or(1);
        if !(1..=MAX_FANOUT).contains(&fanout) {
            return Err(format!("fanout must be 1..={MAX_FANOUT}, got {fanout}"));
        }
        if fanout > 1 && !matches!(mode, Mode::Closed { .. }) {
            return Err("fanout needs the closed loop (`concurrency`), not `rate`".into());
        }
        if mode.connections() * fanout > MAX_CONNECTIONS {
            return Err(format!(
                "concurrency x fanout opens more than {MAX_CONNECTIONS} connections"
            ));
        }
        for s in &file.expect_status {
            if !(100..=599).contains(s) {
                return Err(format!("expect_status: {s} is not an HTTP status"));
            }
        }
        let plan = Plan {
            name,
            method,
            path,
            headers,
            body,
            zipf,
            mode,
            window: Window { warmup, duration },
            timeout,
            expect_status: file.expect_status,
            fanout,
        };
        plan.check_renders()?;
        Ok(plan)
    }

    /// Renders one sample request so that invalid paths or header values fail at load time.
    fn check_renders(&self) -> Result<(), String> {
        let mut rng = SplitMix64::new(0, 0);
        let mut ctx = RenderCtx {
            leg: u64::MAX,
            seq: u64::MAX,
            rng: &mut rng,
            zipf: self.zipf.as_deref(),
        };
        let p = self.path.render_vec(&mut ctx);
        http::uri::PathAndQuery::try_from(p.as_slice())
            .map_err(|e| format!("path renders to an invalid URI path: {e}"))?;
        for (k, t) in &self.headers {
            http::HeaderValue::from_bytes(&t.render_vec(&mut ctx))
                .map_err(|_| format!("header `{k}` renders to an invalid value"))?;
        }
        Ok(())
    }

    /// Whether a status counts as success.
    pub fn is_expected(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }

    /// Whether any template varies per request.
    pub fn is_static(&self) -> bool {
        self.path.as_static().is_some()
            && self.headers.iter().all(|(_, t)| t.as_static().is_some())
            && self.body.as_ref().is_none_or(|b| b.as_static().is_some())
    }

    /// Whether any template uses a per-request placeholder of kind `d`.
    pub fn uses(&self, d: Dynamic) -> bool {
        self.path.uses(d)
            || self.headers.iter().any(|(_, t)| t.uses(d))
            || self.body.as_ref().is_some_and(|b| b.uses(d))
    }
}

fn resolve_mode(file: &ScenarioFile, ov: &Overrides) -> Result<Mode, String> {
    let check_conns = |n: usize, what: &str| {
        if n == 0 || n > MAX_CONNECTIONS {
            Err(format!(
                "{what} must be between 1 and {MAX_CONNECTIONS}, got {n}"
            ))
        } else {
            Ok(n)
        }
    };
    let open = |rate: f64| -> Result<Mode, String> {
        if rate > MAX_RATE {
            return Err(format!("rate must be at most {MAX_RATE} req/s"));
        }
        let connections = ov
            .connections
            .or(file.connections)
            .or(file.concurrency)
            .unwrap_or(DEFAULT_CONNECTIONS);
        Ok(Mode::Open {
            schedule: OpenSchedule::new(rate)?,
            connections: check_conns(connections, "connections")?,
            pacing: ov.pacing.or(file.pacing).unwrap_or_default(),
        })
    };
    let mode = match (ov.rate, ov.concurrency) {
        (Some(_), Some(_)) => Err("give either --rate or --concurrency, not both".into()),
        (Some(r), None) => open(r),
        (None, Some(c)) => Ok(Mode::Closed {
            concurrency: check_conns(c, "concurrency")?,
        }),
        (None, None) => match (file.rate, file.concurrency) {
            (Some(_), Some(_)) => Err(
                "a scenario sets either `rate` (open loop) or `concurrency` (closed loop)".into(),
            ),
            (Some(r), None) => open(r),
            (None, Some(c)) => {
                if file.connections.is_some() {
                    return Err("`connections` applies to open loop (`rate`) only".into());
                }
                if file.pacing.is_some() {
                    return Err("`pacing` applies to open loop (`rate`) only".into());
                }
                Ok(Mode::Closed {
                    concurrency: check_conns(c, "concurrency")?,
                })
            }
            (None, None) => Err(
                "the scenario needs `rate` (open loop) or `concurrency` (closed loop), or pass \
                 --rate/--concurrency"
                    .into(),
            ),
        },
    }?;
    if ov.pacing.is_some() && matches!(mode, Mode::Closed { .. }) {
        return Err("--pacing applies to open loop (--rate) only".into());
    }
    Ok(mode)
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;
