//! The UDF spec (contract §2.7, snake_case on the REST API): parsed from an already validated
//! JSON tree with the `hevlayer` client's defaults (it always sends them; a plain-dict caller
//! omits them, so they are applied here too), checked whole, and stored normalised (every
//! default written out) so `GET` answers what is in force.
//!
//! Refused with 422 `validation_error` and the field named in `field`: a missing `worker`, no
//! `inputs`, an input that is not an attribute name, a target namespace that is not a valid
//! namespace name, no target namespaces and no `index_selector`, a knob out of range, an
//! unknown trigger or dispatch, `push` without a worker `url`, and a UDF id that cannot form a
//! marker attribute. (Namespaces that do not exist and filters upstream refuses are found by
//! the probe in [`crate::features::udfs`], which asks upstream.)

use serde_json::{Map, Value, json};

use crate::core::error::GatewayError;
use crate::core::service::check_namespace;

/// The longest UDF id: `_hevlayer_udf_<id>_stale_after` must stay within Turbopuffer's
/// 128-byte attribute names.
pub const MAX_ID_BYTES: usize = 64;
/// The most rows one batch (claim) may hold: the queue's claim bound.
pub const MAX_BATCH: u64 = layer_queue::MAX_CLAIM as u64;
/// The longest lease, in seconds (the queue's bound).
pub const MAX_LEASE_SECONDS: u64 = 7 * 24 * 3600;

/// How batches reach workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Workers claim (`run_udf_worker`).
    Pull,
    /// The gateway POSTs batches to the worker's `/run` ([`super::push`]).
    Push,
}

/// A checked spec, typed; [`Spec::to_json`] is what is stored and answered.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub target_namespaces: Vec<String>,
    pub index_selector: Option<Value>,
    pub inputs: Vec<String>,
    pub version: String,
    pub filter: Option<Value>,
    pub worker: Worker,
    pub schedule: Schedule,
    pub retry: Retry,
    pub triggers: Vec<String>,
    pub invalidates: Vec<String>,
    /// `spec.paused` (the CRD's field): applied by create and upsert when given.
    pub paused: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Worker {
    pub image: Option<String>,
    pub url: Option<String>,
    pub port: Option<u64>,
    pub batch_size: u64,
    pub timeout_seconds: u64,
    pub pod_spec: Option<Value>,
    pub dispatch: Dispatch,
    pub compute_class: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub discovery_interval_seconds: u64,
    pub lease_seconds: u64,
    pub max_in_flight_batches: u64,
    pub max_concurrent_scans: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    pub max_attempts: u64,
    pub initial_backoff_seconds: u64,
    pub max_backoff_seconds: u64,
}

pub use crate::core::fields::invalid_field as bad;

/// Checks a UDF id: 1 to [`MAX_ID_BYTES`] ASCII letters, digits, `-` and `_`, so its markers are
/// valid attribute names.
pub fn check_id(id: &str) -> Result<(), GatewayError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(bad("id", format!("must be 1 to {MAX_ID_BYTES} characters")));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(bad(
            "id",
            "only ASCII letters, digits, '-' and '_' can form the marker attribute \
             _hevlayer_udf_<id>_v",
        ));
    }
    Ok(())
}

/// The marker name part of a UDF id: hyphens become underscores.
pub fn marker_name(id: &str) -> String {
    id.replace('-', "_")
}

/// `_hevlayer_udf_<name>_v`: the version a row was completed with.
pub fn version_marker(id: &str) -> String {
    format!("_hevlayer_udf_{}_v", marker_name(id))
}

/// `_hevlayer_udf_<name>_stale_after`: when set and past, the row needs the UDF again.
pub fn stale_marker(id: &str) -> String {
    format!("_hevlayer_udf_{}_stale_after", marker_name(id))
}

fn obj<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, GatewayError> {
    v.as_object().ok_or_else(|| bad(field, "must be an object"))
}

/// An optional non-negative integer with pydantic's leniency (`3.0`, `"3"`), within bounds.
fn uint(
    o: &Map<String, Value>,
    key: &str,
    field: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, GatewayError> {
    let value = match o.get(key) {
        None | Some(Value::Null) => default,
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u,
            (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => f as u64,
            _ => return Err(bad(field, "must be a non-negative integer")),
        },
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| bad(field, "must be a non-negative integer"))?,
        Some(_) => return Err(bad(field, "must be a non-negative integer")),
    };
    if !range.contains(&value) {
        return Err(bad(
            field,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

fn opt_str(o: &Map<String, Value>, key: &str, field: &str) -> Result<Option<String>, GatewayError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

fn str_list(o: &Map<String, Value>, key: &str, field: &str) -> Result<Vec<String>, GatewayError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(bad(field, "must be a list of strings")),
            })
            .collect(),
        Some(_) => Err(bad(field, "must be a list of strings")),
    }
}

/// Whether `name` can be read as an attribute: Turbopuffer's names (at most 128 bytes, not
/// starting with `$`), and not one of the gateway's reserved ones.
fn attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('$')
        && !name.starts_with(scatter::RESERVED_PREFIX)
}

impl Spec {
    /// Parses and checks `spec` (the request's `spec` object).
    pub fn parse(spec: &Value) -> Result<Spec, GatewayError> {
        let o = obj(spec, "spec")?;
        let worker = match o.get("worker") {
            None | Some(Value::Null) => return Err(bad("spec.worker", "is required")),
            Some(w) => Worker::parse(obj(w, "spec.worker")?)?,
        };
        let inputs = str_list(o, "inputs", "spec.inputs")?;
        if inputs.is_empty() {
            return Err(bad(
                "spec.inputs",
                "must name at least one attribute (\"id\" for the row id)",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for i in &inputs {
            if !attribute_name(i) {
                return Err(bad(
                    "spec.inputs",
                    format!("{i:?} is not an attribute a UDF can read"),
                ));
            }
            if !seen.insert(i.as_str()) {
                return Err(bad("spec.inputs", format!("{i:?} is named twice")));
            }
        }
        let target_namespaces = str_list(o, "target_namespaces", "spec.target_namespaces")?;
        for ns in &target_namespaces {
            check_namespace(ns).map_err(|_| {
                bad(
                    "spec.target_namespaces",
                    format!("{ns:?} is not a valid namespace name ([A-Za-z0-9-_.], at most 128)"),
                )
            })?;
        }
        let index_selector = o.get("index_selector").filter(|v| !v.is_null()).cloned();
        if target_namespaces.is_empty() && index_selector.is_none() {
            return Err(bad(
                "spec.target_namespaces",
                "name at least one namespace (or an index_selector)",
            ));
        }
        let version = opt_str(o, "version", "spec.version")?.unwrap_or_else(|| "v1".into());
        if version.is_empty() || version.len() > 128 {
            return Err(bad("spec.version", "must be 1 to 128 characters"));
        }
        let filter = o.get("filter").filter(|v| !v.is_null()).cloned();
        if let Some(f) = &filter
            && !f.is_array()
        {
            return Err(bad(
                "spec.filter",
                "must be a Turbopuffer filter (an array such as [\"category\", \"Eq\", \"outdoor\"])",
            ));
        }
        let schedule = match o.get("schedule") {
            None | Some(Value::Null) => Schedule::parse(&Map::new())?,
            Some(s) => Schedule::parse(obj(s, "spec.schedule")?)?,
        };
        let retry = match o.get("retry") {
            None | Some(Value::Null) => Retry::parse(&Map::new())?,
            Some(r) => Retry::parse(obj(r, "spec.retry")?)?,
        };
        let mut triggers = str_list(o, "triggers", "spec.triggers")?;
        if !o.contains_key("triggers") || o.get("triggers") == Some(&Value::Null) {
            triggers = vec!["discovery".into()];
        }
        for t in &triggers {
            if t != "discovery" && t != "write" {
                return Err(bad(
                    "spec.triggers",
                    format!("{t:?}: triggers are \"discovery\" and \"write\""),
                ));
            }
        }
        let invalidates = str_list(o, "invalidates", "spec.invalidates")?;
        let paused = match o.get("paused") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(bad("spec.paused", "must be true or false")),
        };
        Ok(Spec {
            target_namespaces,
            index_selector,
            inputs,
            version,
            filter,
            worker,
            schedule,
            retry,
            triggers,
            invalidates,
            paused,
        })
    }

    /// The stored and answered form: every field, defaults written out (`paused` lives on the
    /// UDF, not here).
    pub fn to_json(&self) -> Value {
        let mut spec = json!({
            "target_namespaces": self.target_namespaces,
            "inputs": self.inputs,
            "version": self.version,
            "worker": self.worker.to_json(),
            "schedule": {
                "discovery_interval_seconds": self.schedule.discovery_interval_seconds,
                "lease_seconds": self.schedule.lease_seconds,
                "max_in_flight_batches": self.schedule.max_in_flight_batches,
                "max_concurrent_scans": self.schedule.max_concurrent_scans,
            },
            "retry": {
                "max_attempts": self.retry.max_attempts,
                "initial_backoff_seconds": self.retry.initial_backoff_seconds,
                "max_backoff_seconds": self.retry.max_backoff_seconds,
            },
            "triggers": self.triggers,
            "invalidates": self.invalidates,
        });
        if let Some(s) = &self.index_selector {
            spec["index_selector"] = s.clone();
        }
        if let Some(f) = &self.filter {
            spec["filter"] = f.clone();
        }
        spec
    }

    /// Whether discovery runs on its interval.
    pub fn discovers(&self) -> bool {
        self.triggers.iter().any(|t| t == "discovery")
    }

    /// Whether writes to a target namespace start a sweep of it.
    pub fn on_write(&self) -> bool {
        self.triggers.iter().any(|t| t == "write")
    }

    /// The queue's retry policy for transient failures.
    pub fn retry_policy(&self) -> layer_queue::RetryPolicy {
        use std::time::Duration;
        layer_queue::RetryPolicy {
            max_attempts: self.retry.max_attempts.min(i32::MAX as u64) as i32,
            initial_backoff: Duration::from_secs(self.retry.initial_backoff_seconds),
            max_backoff: Duration::from_secs(self.retry.max_backoff_seconds),
        }
    }
}

impl Worker {
    fn parse(o: &Map<String, Value>) -> Result<Worker, GatewayError> {
        let url = opt_str(o, "url", "spec.worker.url")?;
        if let Some(u) = &url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(bad("spec.worker.url", "must be an http:// or https:// URL"));
        }
        let dispatch = match opt_str(o, "dispatch", "spec.worker.dispatch")?.as_deref() {
            None if url.is_some() => Dispatch::Push,
            None | Some("pull") => Dispatch::Pull,
            Some("push") => Dispatch::Push,
            Some(other) => {
                return Err(bad(
                    "spec.worker.dispatch",
                    format!("{other:?}: dispatch is \"pull\" or \"push\""),
                ));
            }
        };
        if dispatch == Dispatch::Push && url.is_none() {
            return Err(bad(
                "spec.worker.url",
                "push dispatch needs the worker's URL (the gateway POSTs batches to <url>/run)",
            ));
        }
        let compute_class = opt_str(o, "compute_class", "spec.worker.compute_class")?;
        if let Some(c) = &compute_class
            && c != "cpu"
            && c != "gpu"
        {
            return Err(bad(
                "spec.worker.compute_class",
                "must be \"cpu\" or \"gpu\"",
            ));
        }
        let port = match o.get("port") {
            None | Some(Value::Null) => None,
            Some(_) => Some(uint(o, "port", "spec.worker.port", 0, 1..=65535)?),
        };
        Ok(Worker {
            image: opt_str(o, "image", "spec.worker.image")?,
            url,
            port,
            batch_size: uint(o, "batch_size", "spec.worker.batch_size", 32, 1..=MAX_BATCH)?,
            timeout_seconds: uint(
                o,
                "timeout_seconds",
                "spec.worker.timeout_seconds",
                30,
                1..=24 * 3600,
            )?,
            pod_spec: o.get("pod_spec").filter(|v| !v.is_null()).cloned(),
            dispatch,
            compute_class,
        })
    }

    fn to_json(&self) -> Value {
        let mut w = json!({
            "batch_size": self.batch_size,
            "timeout_seconds": self.timeout_seconds,
            "dispatch": match self.dispatch { Dispatch::Pull => "pull", Dispatch::Push => "push" },
        });
        for (k, v) in [
            ("image", self.image.clone().map(Value::from)),
            ("url", self.url.clone().map(Value::from)),
            ("port", self.port.map(Value::from)),
            ("pod_spec", self.pod_spec.clone()),
            ("compute_class", self.compute_class.clone().map(Value::from)),
        ] {
            if let Some(v) = v {
                w[k] = v;
            }
        }
        w
    }
}

impl Schedule {
    fn parse(o: &Map<String, Value>) -> Result<Schedule, GatewayError> {
        let f = |k: &str| format!("spec.schedule.{k}");
        Ok(Schedule {
            discovery_interval_seconds: uint(
                o,
                "discovery_interval_seconds",
                &f("discovery_interval_seconds"),
                60,
                1..=30 * 24 * 3600,
            )?,
            lease_seconds: uint(
                o,
                "lease_seconds",
                &f("lease_seconds"),
                120,
                1..=MAX_LEASE_SECONDS,
            )?,
            max_in_flight_batches: uint(
                o,
                "max_in_flight_batches",
                &f("max_in_flight_batches"),
                8,
                1..=10_000,
            )?,
            max_concurrent_scans: uint(
                o,
                "max_concurrent_scans",
                &f("max_concurrent_scans"),
                4,
                1..=64,
            )?,
        })
    }
}

impl Retry {
    fn parse(o: &Map<String, Value>) -> Result<Retry, GatewayError> {
        let f = |k: &str| format!("spec.retry.{k}");
        let retry = Retry {
            max_attempts: uint(o, "max_attempts", &f("max_attempts"), 8, 1..=1000)?,
            initial_backoff_seconds: uint(
                o,
                "initial_backoff_seconds",
                &f("initial_backoff_seconds"),
                5,
                0..=24 * 3600,
            )?,
            max_backoff_seconds: uint(
                o,
                "max_backoff_seconds",
                &f("max_backoff_seconds"),
                300,
                0..=7 * 24 * 3600,
            )?,
        };
        if retry.max_backoff_seconds < retry.initial_backoff_seconds {
            return Err(bad(
                "spec.retry.max_backoff_seconds",
                "must not be less than initial_backoff_seconds",
            ));
        }
        Ok(retry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_minimal_spec_gets_every_default() {
        // What `UdfSpec(worker=UdfWorkerSpec(), inputs=["id"], target_namespaces=["p"])` sends.
        let spec = Spec::parse(&json!({
            "target_namespaces": ["p"], "inputs": ["id"], "version": "v1",
            "worker": {"batch_size": 32, "timeout_seconds": 30},
            "triggers": ["discovery"], "invalidates": [],
        }))
        .unwrap();
        let out = spec.to_json();
        assert_eq!(out["schedule"]["lease_seconds"], 120);
        assert_eq!(out["schedule"]["discovery_interval_seconds"], 60);
        assert_eq!(out["schedule"]["max_in_flight_batches"], 8);
        assert_eq!(out["schedule"]["max_concurrent_scans"], 4);
        assert_eq!(out["retry"]["max_attempts"], 8);
        assert_eq!(out["retry"]["initial_backoff_seconds"], 5);
        assert_eq!(out["retry"]["max_backoff_seconds"], 300);
        assert_eq!(out["worker"]["dispatch"], "pull");
        // A dict caller that omits version and triggers gets the same.
        let bare =
            Spec::parse(&json!({"target_namespaces": ["p"], "inputs": ["id"], "worker": {}}))
                .unwrap();
        assert_eq!(bare, spec);
        assert_eq!(
            Spec::parse(&out).unwrap(),
            spec,
            "the stored form reads back"
        );
    }

    #[test]
    fn bad_specs_name_their_field() {
        let field = |v: Value| match Spec::parse(&v) {
            Err(GatewayError::Detailed { detail, .. }) => detail["field"].clone(),
            other => panic!("{other:?}"),
        };
        let ok = json!({"target_namespaces": ["p"], "inputs": ["id"], "worker": {}});
        let with = |k: &str, v: Value| {
            let mut s = ok.clone();
            s[k] = v;
            s
        };
        assert_eq!(field(json!({"inputs": ["id"]})), "spec.worker");
        assert_eq!(field(with("inputs", json!([]))), "spec.inputs");
        assert_eq!(field(with("inputs", json!(["$x"]))), "spec.inputs");
        assert_eq!(field(with("inputs", json!(["_hevlayer_x"]))), "spec.inputs");
        assert_eq!(
            field(with("target_namespaces", json!([]))),
            "spec.target_namespaces"
        );
        assert_eq!(
            field(with("target_namespaces", json!(["a/b"]))),
            "spec.target_namespaces"
        );
        assert_eq!(field(with("filter", json!({"x": 1}))), "spec.filter");
        assert_eq!(field(with("triggers", json!(["cron"]))), "spec.triggers");
        assert_eq!(
            field(with("schedule", json!({"lease_seconds": 0}))),
            "spec.schedule.lease_seconds"
        );
        assert_eq!(
            field(with("retry", json!({"max_attempts": 0}))),
            "spec.retry.max_attempts"
        );
        assert_eq!(
            field(with("worker", json!({"dispatch": "push"}))),
            "spec.worker.url"
        );
        assert_eq!(
            field(with("worker", json!({"batch_size": 5000}))),
            "spec.worker.batch_size"
        );
    }

    #[test]
    fn ids_form_markers() {
        assert!(check_id("product-color").is_ok());
        assert_eq!(
            version_marker("product-color"),
            "_hevlayer_udf_product_color_v"
        );
        assert_eq!(stale_marker("a-b"), "_hevlayer_udf_a_b_stale_after");
        assert!(check_id("has space").is_err());
        assert!(check_id("").is_err());
        assert!(check_id(&"x".repeat(MAX_ID_BYTES + 1)).is_err());
        assert!(scatter::write::caller_settable(&stale_marker(
            &"x".repeat(MAX_ID_BYTES)
        )));
        assert!(stale_marker(&"x".repeat(MAX_ID_BYTES)).len() <= 128);
    }
}
