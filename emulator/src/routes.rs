//! Handlers for the namespace routes R1–R16 (contract §2), on top of [`Store`].
//!
//! Each handler takes the decoded body and returns a [`Reply`] or an [`ApiError`]; HTTP framing,
//! auth, faults and logging live in `http.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::encryption;
use crate::error::{ApiError, ApiResult, parse_body};
use crate::model::{Doc, Id, vector_to_json};
use crate::namespace::{Metric, NsState};
use crate::query::{self, Level, MultiQuery, QueryRankBy, VectorEncoding};
use crate::schema;
use crate::store::{Knobs, Namespace, Store, iso, millis_since};
use crate::write::WriteRequest;

/// A successful response: status, JSON body and extra headers.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Reply {
            status: 200,
            body,
            headers: Vec::new(),
        }
    }
}

/// `POST /v2/namespaces/{ns}` (and `/async`). `prefer_async` is the `prefer: respond-async` hint.
pub fn write(
    store: &Arc<Store>,
    ns: &str,
    body: &[u8],
    prefer_async: bool,
    force_async: bool,
) -> ApiResult<Reply> {
    let mut req: WriteRequest = Store::parse_write(body)?;
    // Customer-managed encryption needs setup (a fake KMS key); see `encryption`.
    if let Some(enc) = &req.encryption {
        req.encryption = Some(encryption::resolve(enc, &store.cmek_keys, "encryption")?);
    }
    let dest_encryption = match req
        .copy_from_namespace
        .as_ref()
        .and_then(|c| c.dest_encryption())
    {
        Some(enc) => Some(encryption::resolve(
            enc,
            &store.cmek_keys,
            "copy_from_namespace.dest_encryption",
        )?),
        None => None,
    };
    let source = req
        .copy_from_namespace
        .as_ref()
        .or(req.branch_from_namespace.as_ref())
        .map(|s| s.name().to_string());
    if let Some(source) = source {
        if req.has_document_ops() || req.schema.is_some() {
            return Err(ApiError::invalid(
                "copy_from_namespace and branch_from_namespace cannot be combined with document writes or schema changes",
            ));
        }
        if req.copy_from_namespace.is_some() && req.branch_from_namespace.is_some() {
            return Err(ApiError::invalid(
                "copy_from_namespace and branch_from_namespace cannot be combined",
            ));
        }
        let is_copy = req.copy_from_namespace.is_some();
        let dest_encryption = dest_encryption
            .or_else(|| req.encryption.clone())
            .unwrap_or_else(encryption::default_mode);
        if is_copy && (force_async || (prefer_async && store.knobs.read().honour_respond_async)) {
            let token = store.start_copy(ns, source, dest_encryption);
            let mut headers = vec![(
                "location".into(),
                format!("/v1/namespaces/{ns}/operations/{token}"),
            )];
            // The SDK polls when the server says it applied the caller's preference. The
            // dedicated `/async` route is async by definition and answers with the token alone
            // (the SDK sends `prefer: respond-async` on every request, so it must not claim it).
            if prefer_async && !force_async {
                headers.push(("preference-applied".into(), "respond-async".into()));
            }
            return Ok(Reply {
                status: 202,
                body: json!({"token": token}),
                headers,
            });
        }
        return store.copy(ns, &source, dest_encryption).map(Reply::ok);
    }
    if force_async {
        return Err(ApiError::invalid(
            "the async write route only supports copy_from_namespace",
        ));
    }
    store.write(ns, req, body.len() as u64).map(Reply::ok)
}

/// Sets `performance.server_total_ms` of a response body, when it has one, to the time since
/// `started` (the moment the request arrived, so body decoding, fault delays and the wait for
/// query permits count, as the contract's "incl. concurrency wait" says).
pub fn stamp_server_total(mut reply: Reply, started: Instant) -> Reply {
    if let Some(perf) = reply
        .body
        .get_mut("performance")
        .and_then(Value::as_object_mut)
        && perf.contains_key("server_total_ms")
    {
        perf.insert("server_total_ms".into(), json!(millis_since(started)));
    }
    reply
}

/// `POST /v2/namespaces/{ns}/query` (single or multi, by the presence of `queries`).
pub async fn query(store: &Arc<Store>, name: &str, body: &[u8]) -> ApiResult<Reply> {
    let started = Instant::now();
    let value: Value = parse_body(body)?;
    let is_multi = value.get("queries").is_some();
    let (single, multi) = if is_multi {
        (None, Some(from_value::<MultiQuery>(value)?))
    } else {
        (Some(from_value::<QueryRankBy>(value)?), None)
    };
    let ns = store.get(name)?;
    let permits: u32 = match (&single, &multi) {
        (Some(q), _) => query::permits(q),
        (_, Some(m)) => m
            .queries
            .iter()
            .map(query::permits)
            .sum::<u32>()
            .clamp(1, 16),
        _ => 1,
    };
    let knobs = store.knobs.read().clone();
    let wait = Duration::from_millis(knobs.permit_wait_ms);
    let _permit = match tokio::time::timeout(wait, ns.permits.acquire_many(permits)).await {
        Ok(Ok(p)) => p,
        _ => {
            return Err(ApiError::TooManyRequests(format!(
                "💁 too many concurrent queries on namespace '{name}' (limit {}); retry later",
                knobs.query_permits
            )));
        }
    };
    // Execution starts once the permits are held (`query_delay_ms` simulates execution time).
    let executing = Instant::now();
    if knobs.query_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(knobs.query_delay_ms)).await;
    }
    let st = ns.state.read();
    let level = match (&single, &multi) {
        (Some(q), _) => q.consistency.as_ref().map(|c| c.level),
        (_, Some(m)) => m.consistency.as_ref().map(|c| c.level),
        _ => None,
    };
    let limit = match level {
        Some(Level::Eventual) => knobs.eventual_scan_limit_bytes,
        _ => knobs.strong_visibility_limit_bytes,
    };
    let docs = st.view(limit);
    let mut out = Map::new();
    if let Some(q) = &single {
        out = query::run_single(&st, &docs, q, q.vector_encoding.unwrap_or_default())?;
    } else if let Some(m) = &multi {
        let results = query::run_multi(&st, &docs, m)?;
        out.insert(
            "results".into(),
            Value::Array(results.into_iter().map(Value::Object).collect()),
        );
    }
    out.insert("billing".into(), billing(&st, &out));
    out.insert(
        "performance".into(),
        performance(&st, millis_since(executing), millis_since(started)),
    );
    Ok(Reply::ok(Value::Object(out)))
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::deserialize(inner)
        } else {
            ApiError::deserialize(format!("{path}: {inner}"))
        }
    })
}

fn billing(st: &NsState, out: &Map<String, Value>) -> Value {
    let (_, bytes) = st.indexed_size();
    let returned = serde_json::to_vec(out).map_or(0, |b| b.len());
    json!({"billable_logical_bytes_queried": bytes.max(256_000_000), "billable_logical_bytes_returned": returned})
}

fn performance(st: &NsState, execution_ms: u64, total_ms: u64) -> Value {
    json!({
        "approx_namespace_size": st.docs.len(),
        "cache_hit_ratio": 1.0,
        "cache_temperature": "hot",
        "exhaustive_search_count": st.unindexed_rows,
        "query_execution_ms": execution_ms,
        "server_total_ms": total_ms,
    })
}

/// Metadata body (`v1` renders the legacy encryption shape).
pub fn metadata_body(st: &NsState, v1: bool) -> Value {
    let (rows, bytes) = st.indexed_size();
    let mut m = Map::new();
    m.insert(
        "schema".into(),
        schema::render_compact(&st.schema, st.id_kind, st.metric.map(Metric::name)),
    );
    m.insert("approx_logical_bytes".into(), json!(bytes));
    m.insert("approx_row_count".into(), json!(rows));
    m.insert("created_at".into(), json!(iso(st.created_at_ms)));
    m.insert("updated_at".into(), json!(iso(st.updated_at_ms)));
    if let Some(w) = st.last_write_at_ms {
        m.insert("last_write_at".into(), json!(iso(w)));
    }
    let enc = if v1 {
        encryption::legacy(&st.encryption)
    } else {
        st.encryption.clone()
    };
    m.insert("encryption".into(), enc);
    let index = if st.wal.is_empty() {
        json!({"status": "up-to-date"})
    } else {
        json!({"status": "updating", "unindexed_bytes": st.unindexed_bytes, "unindexed_rows": st.unindexed_rows})
    };
    m.insert("index".into(), index);
    if let Some(p) = &st.pinning {
        m.insert("pinning".into(), p.clone());
    }
    if st.read_only {
        m.insert("read_only".into(), json!(true));
    }
    if let Some(n) = st.sharding {
        m.insert("sharding".into(), json!({"num_shards": n}));
    }
    Value::Object(m)
}

/// `GET /v{1,2}/namespaces/{ns}/metadata`.
pub fn metadata(store: &Store, name: &str, v1: bool) -> ApiResult<Reply> {
    let ns = store.get(name)?;
    let st = ns.state.read();
    Ok(Reply::ok(metadata_body(&st, v1)))
}

#[derive(Deserialize)]
struct UpdateMetadata {
    #[serde(default, deserialize_with = "double_option")]
    pinning: Option<Option<Value>>,
    read_only: Option<bool>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Value>>, D::Error> {
    Ok(Some(Option::<Value>::deserialize(d)?))
}

/// `PATCH /v1/namespaces/{ns}/metadata`.
pub fn update_metadata(store: &Store, name: &str, body: &[u8]) -> ApiResult<Reply> {
    let req: UpdateMetadata = parse_body(body)?;
    let ns = store.get(name)?;
    let mut st = ns.state.write();
    if let Some(p) = req.pinning {
        let replicas = match p {
            None | Some(Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(1),
            Some(Value::Object(o)) => Some(
                o.get("replicas")
                    .and_then(Value::as_u64)
                    .filter(|r| *r >= 1)
                    .ok_or_else(|| ApiError::invalid("pinning.replicas must be at least 1"))?,
            ),
            Some(_) => {
                return Err(ApiError::deserialize(
                    "pinning: data did not match any variant of untagged enum Pinning",
                ));
            }
        };
        st.pinning = replicas.map(|r| {
            json!({"replicas": r, "status": {"ready_replicas": r, "replicas": r, "updated_at": iso(crate::store::now_ms()), "utilization": 0.0}})
        });
    }
    if let Some(ro) = req.read_only {
        st.read_only = ro;
    }
    Ok(Reply::ok(metadata_body(&st, false)))
}

/// `GET /v1/namespaces/{ns}/schema`.
pub fn get_schema(store: &Store, name: &str) -> ApiResult<Reply> {
    let ns = store.get(name)?;
    let st = ns.state.read();
    Ok(Reply::ok(schema::render_verbose(&st.schema, st.id_kind)))
}

/// `POST /v1/namespaces/{ns}/schema` (bare map).
pub fn update_schema(store: &Arc<Store>, name: &str, body: &[u8]) -> ApiResult<Reply> {
    let map: Map<String, Value> = parse_body(body)?;
    let req = WriteRequest {
        schema: Some(map),
        ..WriteRequest::default()
    };
    store.write(name, req, body.len() as u64)?;
    get_schema(store, name)
}

/// `GET /v1/namespaces/{ns}/hint_cache_warm`.
pub fn hint_cache_warm(store: &Store, name: &str) -> ApiResult<Reply> {
    store.get(name)?;
    Ok(Reply {
        status: 202,
        body: json!({"status": "ACCEPTED", "message": "cache warm hint accepted"}),
        headers: Vec::new(),
    })
}

#[derive(Deserialize)]
struct RecallRequest {
    num: Option<u64>,
    top_k: Option<u64>,
    filters: Option<Value>,
    rank_by: Option<Value>,
    include_ground_truth: Option<bool>,
}

/// `POST /v1/namespaces/{ns}/_debug/recall`: ANN is exact here, so recall is 1.0 by construction;
/// the counts come from real queries over sample vectors taken from the namespace.
pub fn recall(store: &Store, name: &str, body: &[u8]) -> ApiResult<Reply> {
    let req: RecallRequest = parse_body(body)?;
    if req.rank_by.is_some() && req.num.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid(
            "num must be null or 1 when rank_by is given",
        ));
    }
    let ns: Arc<Namespace> = store.get(name)?;
    let st = ns.state.read();
    let (num, top_k) = (req.num.unwrap_or(25) as usize, req.top_k.unwrap_or(10));
    let attr = st
        .schema
        .iter()
        .find(|(_, s)| s.ty.is_vector())
        .map(|(k, _)| k.clone())
        .ok_or_else(|| ApiError::invalid("recall requires a namespace with a vector attribute"))?;
    let samples: Vec<(&Id, &Doc)> = st
        .docs
        .iter()
        .filter(|(_, d)| d.vectors.contains_key(&attr))
        .take(num)
        .map(|(i, d)| (i, d.as_ref()))
        .collect();
    let mut counts = Vec::new();
    let mut truth = Vec::new();
    for (_, d) in &samples {
        let v = &d.vectors[&attr];
        let q = QueryRankBy {
            rank_by: Some(json!([attr, "ANN", vector_to_json(v)])),
            top_k: Some(top_k),
            filters: req.filters.clone(),
            ..QueryRankBy::default()
        };
        let out = query::run_single(&st, &st.docs, &q, VectorEncoding::Float)?;
        let rows = out.get("rows").cloned().unwrap_or(Value::Array(Vec::new()));
        counts.push(rows.as_array().map_or(0, Vec::len));
        if req.include_ground_truth == Some(true) {
            truth.push(json!({"query_vector": vector_to_json(v), "nearest_neighbors": rows}));
        }
    }
    let avg = if counts.is_empty() {
        0.0
    } else {
        counts.iter().sum::<usize>() as f64 / counts.len() as f64
    };
    let mut body = json!({"avg_recall": 1.0, "avg_ann_count": avg, "avg_exhaustive_count": avg});
    if req.include_ground_truth == Some(true) {
        body["ground_truth"] = Value::Array(truth);
    }
    Ok(Reply::ok(body))
}

/// `POST /v2/namespaces/{ns}/explain_query`: validates the query by running it, then describes
/// the plan the emulator used.
pub fn explain(store: &Store, name: &str, body: &[u8], knobs: &Knobs) -> ApiResult<Reply> {
    let q: QueryRankBy = parse_body(body)?;
    let ns = store.get(name)?;
    let st = ns.state.read();
    if st.indexed.is_empty() && !st.wal.is_empty() {
        return Err(ApiError::BadRequest(
            "index does not exist, cannot explain".into(),
        ));
    }
    let docs = st.view(knobs.strong_visibility_limit_bytes);
    query::run_single(&st, &docs, &q, VectorEncoding::Float)?;
    let kind = match q
        .rank_by
        .as_ref()
        .and_then(|r| r.get(1))
        .and_then(Value::as_str)
    {
        _ if q.aggregate_by.is_some() => "Aggregate",
        Some("ANN") => "ExactVectorSearch",
        Some("kNN") => "ExactKnn",
        Some("BM25") => "Bm25Scan",
        _ => "OrderedScan",
    };
    let plan = format!(
        "{kind}(namespace={name}, docs={}, unindexed_rows={})\n  Filter({})\n  Limit(top_k={})",
        docs.len(),
        st.unindexed_rows,
        q.filters
            .as_ref()
            .map_or_else(|| "none".to_string(), Value::to_string),
        q.top_k.map_or_else(|| "-".to_string(), |k| k.to_string()),
    );
    Ok(Reply::ok(json!({"plan_text": plan})))
}
