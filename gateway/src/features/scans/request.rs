//! `CreateScanRequest`: parsing, defaults and the 422 rules, before any source is consulted.
//!
//! Defaults match the hevlayer client's always-sent fields (`exhaustive: false`,
//! `page_size: 1000`, `timeout_seconds: 30`), applied here too because dict callers omit them.
//! The rules: `mode` is `ids` (default), `count` or `values`; `source` is `auto` (default),
//! `snapshot`, `cache` or `origin`; at most one ranked selector (`fts` or `ann`); ranked selectors
//! only with `auto`/`origin`; `field` required for `values` and rejected elsewhere; `ids` mode
//! takes no `snapshot` source and no ranked selector (ranked ids are the documented fast-follow);
//! `ann.radius` is required and finite; `timeout_seconds` is 1..=300.

use serde_json::{Map, Value};

use crate::core::error::GatewayError;
use crate::sources::origin::MAX_PAGE;

/// Largest count deadline, seconds.
pub const MAX_TIMEOUT_SECONDS: u64 = 300;

/// What a scan returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Ids,
    Count,
    Values,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ids => "ids",
            Mode::Count => "count",
            Mode::Values => "values",
        }
    }
}

/// Where a scan reads (`source`, and `effective_source` once resolved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Auto,
    Snapshot,
    Cache,
    Origin,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Auto => "auto",
            Source::Snapshot => "snapshot",
            Source::Cache => "cache",
            Source::Origin => "origin",
        }
    }
}

/// A ranked selector.
#[derive(Clone, Debug, PartialEq)]
pub enum Ranked {
    /// BM25 over a full-text field; exact.
    Fts { field: String, query: String },
    /// Rows within `radius` of `vector` by ANN distance; approximate.
    Ann {
        field: String,
        vector: Vec<f64>,
        radius: f64,
    },
}

/// A validated scan request.
#[derive(Clone, Debug)]
pub struct ScanRequest {
    pub mode: Mode,
    pub source: Source,
    /// The Turbopuffer filter, verbatim (`None` = every row).
    pub filters: Option<Value>,
    pub ranked: Option<Ranked>,
    /// The values-mode attribute.
    pub field: Option<String>,
    pub exhaustive: bool,
    /// The request's `threads` (before the Index default and the clamps).
    pub threads: Option<u32>,
    pub page_size: usize,
    pub timeout_seconds: u64,
}

fn invalid(msg: impl Into<String>) -> GatewayError {
    GatewayError::Validation(msg.into())
}

fn opt<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn positive_int(obj: &Map<String, Value>, key: &str) -> Result<Option<u64>, GatewayError> {
    match opt(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| invalid(format!("{key} must be a positive integer, got {v}"))),
    }
}

fn string_field(obj: &Map<String, Value>, key: &str, ctx: &str) -> Result<String, GatewayError> {
    opt(obj, key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("{ctx}.{key} is required (a non-empty string)")))
}

fn parse_ranked(obj: &Map<String, Value>) -> Result<Option<Ranked>, GatewayError> {
    let fts = opt(obj, "fts");
    let ann = opt(obj, "ann");
    if fts.is_some() && ann.is_some() {
        return Err(invalid(
            "a scan carries at most one ranked selector: fts and ann cannot be combined",
        ));
    }
    if let Some(f) = fts {
        let f = f
            .as_object()
            .ok_or_else(|| invalid("fts must be an object {field, query}"))?;
        return Ok(Some(Ranked::Fts {
            field: string_field(f, "field", "fts")?,
            query: string_field(f, "query", "fts")?,
        }));
    }
    let Some(a) = ann else {
        return Ok(None);
    };
    let a = a
        .as_object()
        .ok_or_else(|| invalid("ann must be an object {field, vector, radius}"))?;
    let field = match opt(a, "field") {
        None => "vector".to_string(),
        Some(_) => string_field(a, "field", "ann")?,
    };
    let vector: Vec<f64> = opt(a, "vector")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
        .and_then(|v| v.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
        .ok_or_else(|| invalid("ann.vector is required (a non-empty array of numbers)"))?;
    let radius = opt(a, "radius")
        .and_then(Value::as_f64)
        .filter(|r| r.is_finite() && *r >= 0.0)
        .ok_or_else(|| {
            invalid(
                "ann.radius is required and must be a finite, non-negative number \
                 (without an upper bound every row is in the ball)",
            )
        })?;
    Ok(Some(Ranked::Ann {
        field,
        vector,
        radius,
    }))
}

/// Parses and validates a create-scan body (an empty body is `{}`).
pub fn parse(body: &[u8], limits: &scatter::Limits) -> Result<ScanRequest, GatewayError> {
    let v: Value = crate::core::http::json_body(body, limits)?;
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("request body must be a JSON object"))?;
    let mode = match opt(obj, "mode").map(|m| m.as_str()) {
        None => Mode::Ids,
        Some(Some("ids")) => Mode::Ids,
        Some(Some("count")) => Mode::Count,
        Some(Some("values")) => Mode::Values,
        Some(_) => return Err(invalid("mode must be ids, count or values")),
    };
    let source = match opt(obj, "source").map(|s| s.as_str()) {
        None => Source::Auto,
        Some(Some("auto")) => Source::Auto,
        Some(Some("snapshot")) => Source::Snapshot,
        Some(Some("cache")) => Source::Cache,
        Some(Some("origin")) => Source::Origin,
        Some(_) => return Err(invalid("source must be auto, snapshot, cache or origin")),
    };
    for key in ["hybrid_text", "as_of", "between"] {
        if opt(obj, key).is_some() {
            return Err(invalid(format!(
                "{key} is not supported on scans by this gateway"
            )));
        }
    }
    let ranked = parse_ranked(obj)?;
    let field = match opt(obj, "field") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => return Err(invalid("field must be a non-empty string")),
    };
    match (mode, &field) {
        (Mode::Values, None) => return Err(invalid("field is required for mode values")),
        (Mode::Ids | Mode::Count, Some(_)) => {
            return Err(invalid("field is only accepted with mode values"));
        }
        _ => {}
    }
    if let Some(f) = &field
        && f.starts_with(scatter::RESERVED_PREFIX)
    {
        return Err(invalid(format!("{f:?} is a reserved attribute")));
    }
    if ranked.is_some() && matches!(source, Source::Snapshot | Source::Cache) {
        return Err(invalid(format!(
            "fts and ann selectors have no {} evaluator: omit source or use auto or origin",
            source.as_str()
        )));
    }
    if mode == Mode::Ids {
        if source == Source::Snapshot {
            return Err(invalid(
                "mode ids reads auto, cache or origin; snapshots hold counts, not ids",
            ));
        }
        if ranked.is_some() {
            return Err(invalid(
                "mode ids is filter-only (ranked ids are a planned fast-follow); use mode count \
                 or values with fts/ann, or a filters selector with mode ids",
            ));
        }
    }
    let exhaustive = match opt(obj, "exhaustive") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("exhaustive must be a boolean")),
    };
    let threads = positive_int(obj, "threads")?.map(|t| t.min(u64::from(u32::MAX)) as u32);
    let page_size = positive_int(obj, "page_size")?.unwrap_or(1000);
    if page_size > MAX_PAGE as u64 {
        return Err(invalid(format!(
            "page_size must be at most {MAX_PAGE}, got {page_size}"
        )));
    }
    let timeout_seconds = positive_int(obj, "timeout_seconds")?.unwrap_or(30);
    if timeout_seconds > MAX_TIMEOUT_SECONDS {
        return Err(invalid(format!(
            "timeout_seconds must be at most {MAX_TIMEOUT_SECONDS}, got {timeout_seconds}"
        )));
    }
    let filters = opt(obj, "filters").cloned();
    if let Some(f) = &filters
        && !f.is_array()
        && !f.is_object()
    {
        return Err(invalid("filters must be a Turbopuffer filter array"));
    }
    Ok(ScanRequest {
        mode,
        source,
        filters,
        ranked,
        field,
        exhaustive,
        threads,
        page_size: page_size as usize,
        timeout_seconds,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(v: Value) -> Result<ScanRequest, GatewayError> {
        parse(v.to_string().as_bytes(), &scatter::Limits::default())
    }

    fn rejected(v: Value) -> String {
        match p(v.clone()) {
            Err(GatewayError::Validation(m)) => m,
            other => panic!("{v} should be a 422, got {other:?}"),
        }
    }

    #[test]
    fn client_defaults_and_empty_bodies() {
        let r = p(json!({"exhaustive": false, "page_size": 1000, "timeout_seconds": 30}))
            .expect("the client's default body");
        assert_eq!((r.mode, r.source), (Mode::Ids, Source::Auto));
        assert_eq!((r.page_size, r.timeout_seconds), (1000, 30));
        let r = parse(b"", &scatter::Limits::default()).expect("empty body");
        assert_eq!(
            (r.mode, r.page_size, r.timeout_seconds),
            (Mode::Ids, 1000, 30)
        );
        assert!(r.filters.is_none() && r.ranked.is_none() && !r.exhaustive);
    }

    #[test]
    fn selectors_parse() {
        let r = p(
            json!({"mode": "count", "fts": {"field": "title", "query": "q"},
                         "filters": ["a", "Eq", 1], "exhaustive": true, "threads": 4}),
        )
        .expect("fts count");
        assert_eq!(
            r.ranked,
            Some(Ranked::Fts {
                field: "title".into(),
                query: "q".into()
            })
        );
        assert!(r.exhaustive && r.filters.is_some());
        assert_eq!(r.threads, Some(4));
        let r =
            p(json!({"mode": "count", "ann": {"vector": [0.1, 1], "radius": 0.5}})).expect("ann");
        assert_eq!(
            r.ranked,
            Some(Ranked::Ann {
                field: "vector".into(),
                vector: vec![0.1, 1.0],
                radius: 0.5
            })
        );
        let r = p(json!({"mode": "values", "field": "c", "ann": {"field": "v", "vector": [1], "radius": 0}}))
            .expect("ann values");
        assert_eq!(r.field.as_deref(), Some("c"));
    }

    #[test]
    fn the_422_rules() {
        let fts = json!({"field": "t", "query": "q"});
        let ann = json!({"vector": [1.0], "radius": 1.0});
        assert!(rejected(json!({"mode": "count", "fts": fts, "ann": ann})).contains("at most one"));
        for source in ["snapshot", "cache"] {
            assert!(
                rejected(json!({"mode": "count", "source": source, "fts": fts})).contains(source)
            );
            rejected(json!({"mode": "values", "field": "f", "source": source, "ann": ann}));
        }
        assert!(p(json!({"mode": "count", "source": "origin", "fts": fts})).is_ok());
        assert!(rejected(json!({"mode": "values"})).contains("field is required"));
        rejected(json!({"mode": "count", "field": "f"}));
        rejected(json!({"field": "f"}));
        rejected(json!({"source": "snapshot"}));
        assert!(rejected(json!({"fts": fts})).contains("fast-follow"));
        rejected(json!({"mode": "count", "ann": {"vector": [1.0]}}));
        rejected(json!({"mode": "count", "ann": {"vector": [1.0], "radius": -1}}));
        rejected(json!({"mode": "count", "ann": {"vector": [], "radius": 1}}));
        rejected(json!({"mode": "count", "ann": {"vector": ["x"], "radius": 1}}));
        rejected(json!({"mode": "count", "fts": {"field": "t"}}));
        rejected(json!({"mode": "nope"}));
        rejected(json!({"source": "stored"}));
        rejected(json!({"mode": "count", "timeout_seconds": 301}));
        rejected(json!({"mode": "count", "timeout_seconds": 0}));
        rejected(json!({"page_size": 10_001}));
        rejected(json!({"threads": 0}));
        rejected(json!({"threads": 1.5}));
        rejected(json!({"filters": "a"}));
        rejected(json!({"mode": "values", "field": "_hevlayer_upserted_at"}));
        rejected(json!({"hybrid_text": {"field": "t", "query": "q"}}));
        rejected(json!([1]));
        assert!(matches!(
            parse(b"{", &scatter::Limits::default()),
            Err(GatewayError::Validation(_))
        ));
        assert_eq!(
            p(json!({"mode": "count", "timeout_seconds": 300}))
                .map(|r| r.timeout_seconds)
                .ok(),
            Some(300)
        );
    }
}
