//! `POST /v2/namespaces/{ns}`: the write request, its validation and its atomic application.
//!
//! Start at [`apply`]. A write is computed against an overlay of the namespace's latest state and
//! committed only when every operation validated, so a failing request changes nothing. Order:
//! `delete_by_filter` → `patch_by_filter` → upserts → patches → deletes (contract §3.1). The body's
//! wire shape ([`WriteRequest`]) lives in `write/request.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::filter::{self, EvalCtx, Filter};
use crate::fts;
use crate::model::{Doc, Id, IdKind, IdVec, decode_vector};
use crate::namespace::{Effect, Metric, NsState};
use crate::schema::{self, AttrSchema, AttrType, Scalar, Schema};

mod request;

pub use request::{Columns, PatchByFilter, Row, Sharding, SourceRef, WriteRequest};

/// Limits and thresholds that apply to writes (emulator knobs).
#[derive(Clone, Copy, Debug)]
pub struct WriteLimits {
    pub patch_by_filter_rows: usize,
    pub delete_by_filter_rows: usize,
    pub backpressure_bytes: u64,
}

/// Counters and ids for the response.
#[derive(Default)]
struct Outcome {
    upserted: Option<Vec<Id>>,
    patched: Option<Vec<Id>>,
    deleted: Option<Vec<Id>>,
    rows_remaining: Option<bool>,
    queried: bool,
}

/// Applies a write to a namespace's state. `existed` is false when the namespace was created for
/// this request. Returns the `WriteResult` body.
pub fn apply(
    st: &mut NsState,
    req: WriteRequest,
    body_len: u64,
    limits: WriteLimits,
    now_ms: i64,
    existed: bool,
) -> ApiResult<Value> {
    if st.read_only && (req.has_document_ops() || req.schema.is_some()) {
        return Err(ApiError::Forbidden("🙅 namespace is read-only".into()));
    }
    let exempt = req.disable_backpressure == Some(true) && req.upserts_only();
    if st.unindexed_bytes > limits.backpressure_bytes && !exempt {
        return Err(ApiError::TooManyRequests(format!(
            "💁 write backpressure: {} bytes are waiting to be indexed (limit {}); retry after indexing catches up",
            st.unindexed_bytes, limits.backpressure_bytes
        )));
    }
    if let Some(sh) = &req.sharding {
        if !(1..=256).contains(&sh.num_shards) {
            return Err(ApiError::invalid(
                "sharding.num_shards must be between 1 and 256",
            ));
        }
        match st.sharding {
            Some(n) if n != sh.num_shards => {
                return Err(ApiError::invalid(
                    "sharding cannot be changed after the namespace is created",
                ));
            }
            None if existed && !st.docs.is_empty() => {
                return Err(ApiError::invalid(
                    "sharding can only be set on the first write to a namespace",
                ));
            }
            _ => {}
        }
    }

    let mut schema = st.schema.clone();
    let mut fts_changed = false;
    if let Some(changes) = &req.schema {
        for (attr, v) in changes {
            if attr == "id" {
                continue;
            }
            fts_changed |= schema::apply_change(&mut schema, attr, schema::parse_attr(attr, v)?)?;
        }
    }
    let mut id_kind = st.id_kind;
    if let Some(Value::String(t)) = req
        .schema
        .as_ref()
        .and_then(|s| s.get("id"))
        .map(|v| v.get("type").unwrap_or(v))
    {
        let kind = match t.as_str() {
            "uuid" => IdKind::Uuid,
            "string" => IdKind::Str,
            "uint" => IdKind::Uint,
            other => return Err(ApiError::invalid(format!("invalid id type '{other}'"))),
        };
        if id_kind.is_some_and(|k| k != kind) && !st.docs.is_empty() {
            return Err(ApiError::invalid(
                "the id type of a namespace cannot be changed",
            ));
        }
        id_kind = Some(kind);
    }
    let metric = resolve_metric(st, &req, &schema)?;

    let mut w = Work {
        base: &st.docs,
        overlay: BTreeMap::new(),
        schema,
        metric,
        id_kind,
    };
    let mut out = Outcome::default();
    let mut seen = BTreeSet::new();

    if let Some(f) = &req.delete_by_filter {
        let filter = filter::parse(f, &w.schema, false)?;
        let ids = w.matching(
            &filter,
            limits.delete_by_filter_rows,
            req.delete_by_filter_allow_partial,
            "delete_by_filter",
            &mut out,
        )?;
        for id in &ids {
            w.overlay.insert(id.clone(), None);
        }
        out.deleted.get_or_insert_with(Vec::new).extend(ids);
        out.queried = true;
    }
    if let Some(p) = &req.patch_by_filter {
        let filter = filter::parse(&p.filters, &w.schema, false)?;
        let ids = w.matching(
            &filter,
            limits.patch_by_filter_rows,
            req.patch_by_filter_allow_partial,
            "patch_by_filter",
            &mut out,
        )?;
        for id in &ids {
            if let Some(cur) = w.current(id) {
                let patched = w.patch_doc(id, &cur, &p.patch)?;
                w.overlay.insert(id.clone(), Some(Arc::new(patched)));
            }
        }
        out.patched.get_or_insert_with(Vec::new).extend(ids);
        out.queried = true;
    }

    let upserts = rows_of(req.upsert_rows, req.upsert_columns, "upsert_columns")?;
    let patches = rows_of(req.patch_rows, req.patch_columns, "patch_columns")?;
    let deletes = req.deletes.map(IdVec::into_ids);

    if let Some(rows) = upserts {
        let cond = req
            .upsert_condition
            .as_ref()
            .map(|c| filter::parse(c, &w.schema, true))
            .transpose()?;
        out.queried |= cond.is_some();
        let list = out.upserted.get_or_insert_with(Vec::new);
        for (id, attrs) in rows {
            let id = w.check_id(id, &mut seen)?;
            let doc = w.build_doc(&id, &attrs)?;
            if let (Some(c), Some(cur)) = (&cond, w.current(&id))
                && !c.matches(
                    &id,
                    &cur,
                    EvalCtx {
                        new_doc: Some((&id, &doc)),
                    },
                )
            {
                continue;
            }
            w.overlay.insert(id.clone(), Some(Arc::new(doc)));
            list.push(id);
        }
    }
    if let Some(rows) = patches {
        let cond = req
            .patch_condition
            .as_ref()
            .map(|c| filter::parse(c, &w.schema, true))
            .transpose()?;
        out.queried |= cond.is_some();
        let mut list = Vec::new();
        for (id, attrs) in rows {
            let id = w.check_id(id, &mut seen)?;
            let Some(cur) = w.current(&id) else { continue };
            let doc = w.patch_doc(&id, &cur, &attrs)?;
            if let Some(c) = &cond
                && !c.matches(
                    &id,
                    &cur,
                    EvalCtx {
                        new_doc: Some((&id, &doc)),
                    },
                )
            {
                continue;
            }
            w.overlay.insert(id.clone(), Some(Arc::new(doc)));
            list.push(id);
        }
        out.patched.get_or_insert_with(Vec::new).extend(list);
    }
    if let Some(ids) = deletes {
        let cond = req
            .delete_condition
            .as_ref()
            .map(|c| filter::parse(c, &w.schema, true))
            .transpose()?;
        out.queried |= cond.is_some();
        let mut list = Vec::new();
        for id in ids {
            let id = w.check_id(id, &mut seen)?;
            let Some(cur) = w.current(&id) else { continue };
            if let Some(c) = &cond
                && !c.matches(&id, &cur, EvalCtx::default())
            {
                continue;
            }
            w.overlay.insert(id.clone(), None);
            list.push(id);
        }
        out.deleted.get_or_insert_with(Vec::new).extend(list);
    }

    // Commit.
    let Work {
        overlay,
        mut schema,
        metric,
        id_kind,
        ..
    } = w;
    if schema.len() > schema::MAX_ATTRIBUTES && schema.len() > st.schema.len() {
        return Err(ApiError::invalid(format!(
            "a namespace may have at most {} attributes, this write would make {}",
            schema::MAX_ATTRIBUTES,
            schema.len()
        )));
    }
    if fts_changed {
        retokenize_all(st, &schema);
    }
    let effects: Vec<Effect> = overlay.into_iter().collect();
    for (id, doc) in &effects {
        match doc {
            Some(d) => st.docs.insert(id.clone(), d.clone()),
            None => st.docs.remove(id),
        };
    }
    let schema_changed = st.schema != schema;
    st.schema = std::mem::take(&mut schema);
    st.metric = metric;
    st.id_kind = id_kind;
    if let Some(sh) = &req.sharding {
        st.sharding = Some(sh.num_shards);
    }
    if let Some(enc) = req.encryption {
        st.encryption = enc;
    }
    if !effects.is_empty() {
        st.last_write_at_ms = Some(now_ms);
    }
    if !effects.is_empty() || schema_changed {
        st.updated_at_ms = now_ms;
    }
    if !effects.is_empty() {
        st.append_wal(body_len, effects);
    }
    Ok(write_result(
        out,
        req.return_affected_ids == Some(true),
        body_len,
    ))
}

fn write_result(out: Outcome, return_ids: bool, body_len: u64) -> Value {
    let count = |v: &Option<Vec<Id>>| v.as_ref().map_or(0, Vec::len);
    let rows_affected = count(&out.upserted) + count(&out.patched) + count(&out.deleted);
    let mut m = Map::new();
    m.insert("status".into(), json!("OK"));
    m.insert("message".into(), json!("documents committed successfully"));
    m.insert("rows_affected".into(), json!(rows_affected));
    for (key, ids_key, list) in [
        ("rows_upserted", "upserted_ids", &out.upserted),
        ("rows_patched", "patched_ids", &out.patched),
        ("rows_deleted", "deleted_ids", &out.deleted),
    ] {
        if let Some(ids) = list {
            m.insert(key.into(), json!(ids.len()));
            if return_ids && !ids.is_empty() {
                m.insert(
                    ids_key.into(),
                    Value::Array(ids.iter().map(Id::to_value).collect()),
                );
            }
        }
    }
    if let Some(r) = out.rows_remaining {
        m.insert("rows_remaining".into(), json!(r));
    }
    let mut billing = json!({"billable_logical_bytes_written": body_len});
    if out.queried {
        billing["query"] = json!({"billable_logical_bytes_queried": 256_000_000u64, "billable_logical_bytes_returned": 0});
    }
    m.insert("billing".into(), billing);
    // The request's measured time is filled in by `routes::stamp_server_total` (http.rs).
    m.insert("performance".into(), json!({"server_total_ms": 0}));
    Value::Object(m)
}

type RowList = Vec<(Id, Map<String, Value>)>;

/// Turns row or column form into rows. Both forms in one request are concatenated.
fn rows_of(
    rows: Option<Vec<Row>>,
    cols: Option<Columns>,
    name: &str,
) -> ApiResult<Option<RowList>> {
    if rows.is_none() && cols.is_none() {
        return Ok(None);
    }
    let mut out: RowList = rows
        .unwrap_or_default()
        .into_iter()
        .map(|r| (r.id, r.attrs))
        .collect();
    if let Some(c) = cols {
        let ids = c.id.into_ids();
        let n = ids.len();
        let mut per_row: Vec<Map<String, Value>> = vec![Map::new(); n];
        for (attr, col) in c.cols {
            let items = match col {
                Value::Array(items) if items.len() == n => items,
                Value::Array(items) => {
                    return Err(ApiError::invalid(format!(
                        "{name}: column '{attr}' has {} values but there are {n} ids",
                        items.len()
                    )));
                }
                _ => {
                    return Err(ApiError::deserialize(format!(
                        "{name}.{attr}: invalid type, expected a sequence"
                    )));
                }
            };
            for (row, v) in per_row.iter_mut().zip(items) {
                row.insert(attr.clone(), v);
            }
        }
        out.extend(ids.into_iter().zip(per_row));
    }
    Ok(Some(out))
}

/// A write in progress: new document states layered over the namespace's latest state.
struct Work<'a> {
    base: &'a BTreeMap<Id, Arc<Doc>>,
    overlay: BTreeMap<Id, Option<Arc<Doc>>>,
    schema: Schema,
    metric: Option<Metric>,
    id_kind: Option<IdKind>,
}

impl Work<'_> {
    fn current(&self, id: &Id) -> Option<Arc<Doc>> {
        match self.overlay.get(id) {
            Some(d) => d.clone(),
            None => self.base.get(id).cloned(),
        }
    }

    fn check_id(&mut self, id: Id, seen: &mut BTreeSet<Id>) -> ApiResult<Id> {
        let id = match (self.id_kind, id) {
            (Some(IdKind::Uuid), Id::Str(s)) => {
                let u = uuid::Uuid::parse_str(&s)
                    .map_err(|_| ApiError::invalid(format!("invalid uuid id '{s}'")))?;
                Id::Str(u.hyphenated().to_string())
            }
            (_, id) => id,
        };
        if let Id::Str(s) = &id
            && s.len() > 64
        {
            return Err(ApiError::invalid(format!(
                "id '{s}' is longer than 64 bytes"
            )));
        }
        let kind = match (&id, self.id_kind) {
            (Id::Str(_), Some(IdKind::Uuid)) => IdKind::Uuid,
            (i, _) => i.kind(),
        };
        match self.id_kind {
            None => self.id_kind = Some(kind),
            Some(k) if k != kind => {
                return Err(ApiError::invalid(format!(
                    "id '{id}' does not match the namespace's id type; mixing id types is not supported"
                )));
            }
            Some(_) => {}
        }
        if !seen.insert(id.clone()) {
            return Err(ApiError::invalid(format!(
                "duplicate id '{id}' in write request"
            )));
        }
        Ok(id)
    }

    fn matching(
        &self,
        filter: &Filter,
        limit: usize,
        allow_partial: Option<bool>,
        what: &str,
        out: &mut Outcome,
    ) -> ApiResult<Vec<Id>> {
        let mut ids: Vec<Id> = Vec::new();
        let keys: BTreeSet<&Id> = self.base.keys().chain(self.overlay.keys()).collect();
        for id in keys {
            if let Some(doc) = self.current(id)
                && filter.matches(id, &doc, EvalCtx::default())
            {
                ids.push(id.clone());
            }
        }
        let over = ids.len() > limit;
        if over && allow_partial != Some(true) {
            return Err(ApiError::invalid(format!(
                "{what} matched {} rows, more than the limit of {limit} per request; set {what}_allow_partial to true to apply it in parts",
                ids.len()
            )));
        }
        ids.truncate(limit);
        out.rows_remaining = Some(out.rows_remaining.unwrap_or(false) || over);
        Ok(ids)
    }

    /// Builds a full document from an upserted row.
    fn build_doc(&mut self, id: &Id, attrs: &Map<String, Value>) -> ApiResult<Doc> {
        let mut doc = Doc::default();
        for (attr, v) in attrs {
            self.set_attr(&mut doc, attr, v, false)?;
        }
        doc.recompute_size(id);
        fts::tokenize_doc(&self.schema, &mut doc);
        Ok(doc)
    }

    fn patch_doc(&mut self, id: &Id, cur: &Doc, attrs: &Map<String, Value>) -> ApiResult<Doc> {
        let mut doc = cur.clone();
        for (attr, v) in attrs {
            if attr == "id" {
                continue;
            }
            self.set_attr(&mut doc, attr, v, true)?;
        }
        doc.recompute_size(id);
        fts::tokenize_doc(&self.schema, &mut doc);
        Ok(doc)
    }

    fn set_attr(&mut self, doc: &mut Doc, attr: &str, v: &Value, patch: bool) -> ApiResult<()> {
        schema::check_attr_name(attr)?;
        let declared = self.schema.get(attr).map(|s| s.ty);
        let is_vector =
            declared.is_some_and(AttrType::is_vector) || (attr == "vector" && declared.is_none());
        if is_vector {
            if patch {
                return Err(ApiError::invalid(format!(
                    "vector attribute '{attr}' cannot be patched"
                )));
            }
            if v.is_null() {
                return Ok(());
            }
            return self.set_vector(doc, attr, v);
        }
        if v.is_null() {
            doc.attrs.remove(attr);
            return Ok(());
        }
        let ty = match declared {
            Some(t) => t,
            None => {
                let Some(t) = schema::infer_type(attr, v) else {
                    // Nothing to infer from (e.g. an empty array): store as given.
                    doc.attrs.insert(attr.to_string(), v.clone());
                    return Ok(());
                };
                self.schema.insert(attr.to_string(), AttrSchema::new(t));
                t
            }
        };
        let stored = coerce(attr, ty, v)?;
        if self.schema.get(attr).is_some_and(AttrSchema::is_filterable) {
            check_filterable_size(attr, &stored)?;
        }
        doc.attrs.insert(attr.to_string(), stored);
        Ok(())
    }

    fn set_vector(&mut self, doc: &mut Doc, attr: &str, v: &Value) -> ApiResult<()> {
        let vec = decode_vector(v)
            .map_err(|e| ApiError::invalid(format!("invalid vector for '{attr}': {e}")))?;
        if self.metric.is_none() {
            return Err(ApiError::invalid(
                "distance_metric must be specified for write to namespace with a vector",
            ));
        }
        match self.schema.get(attr).map(|s| s.ty) {
            Some(AttrType::Vector { dims, .. }) if dims != vec.len() => {
                return Err(ApiError::invalid(format!(
                    "vector dimension mismatch for '{attr}': expected {dims}, got {}",
                    vec.len()
                )));
            }
            Some(_) => {}
            None => {
                if vec.is_empty() {
                    return Err(ApiError::invalid(
                        "vectors must have at least one dimension",
                    ));
                }
                let mut s = AttrSchema::new(AttrType::Vector {
                    dims: vec.len(),
                    f16: false,
                });
                s.ann = true;
                self.schema.insert(attr.to_string(), s);
            }
        }
        doc.vectors.insert(attr.to_string(), vec.into());
        Ok(())
    }
}

/// A filterable attribute's value (each element of an array) is at most 4 KiB (contract §9);
/// larger values need `filterable: false` (full-text-search attributes are not filterable by
/// default, so long text with `full_text_search` is fine).
fn check_filterable_size(attr: &str, v: &Value) -> ApiResult<()> {
    let longest = match v {
        Value::String(s) => s.len(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::len)
            .max()
            .unwrap_or(0),
        _ => 0,
    };
    if longest > schema::MAX_FILTERABLE_VALUE_BYTES {
        return Err(ApiError::invalid(format!(
            "value of filterable attribute '{attr}' is {longest} bytes, over the {} byte limit for filterable values; set `filterable: false` in its schema to store larger values",
            schema::MAX_FILTERABLE_VALUE_BYTES
        )));
    }
    Ok(())
}

/// Validates a value against the attribute type and converts datetimes/uuids to stored form.
fn coerce(attr: &str, ty: AttrType, v: &Value) -> ApiResult<Value> {
    let mismatch = || {
        ApiError::invalid(format!(
            "invalid value {v} for attribute '{attr}' of type {}",
            ty.render()
        ))
    };
    let scalar = |s: Scalar, v: &Value| -> ApiResult<Value> {
        Ok(match (s, v) {
            (Scalar::String, Value::String(_)) | (Scalar::Bool, Value::Bool(_)) => v.clone(),
            (Scalar::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => v.clone(),
            (Scalar::Uint, Value::Number(n)) if n.is_u64() => v.clone(),
            (Scalar::Float, Value::Number(_)) => v.clone(),
            (Scalar::Uuid, Value::String(s)) => {
                let u = uuid::Uuid::parse_str(s).map_err(|_| mismatch())?;
                Value::String(u.hyphenated().to_string())
            }
            (Scalar::Datetime, Value::String(s)) => Value::from(filter::parse_datetime(s)?),
            (Scalar::Datetime, Value::Number(n)) if n.is_i64() => v.clone(),
            _ => return Err(mismatch()),
        })
    };
    match (ty, v) {
        (AttrType::Scalar(s), v) => scalar(s, v),
        (AttrType::Array(s), Value::Array(items)) => items
            .iter()
            .map(|i| scalar(s, i))
            .collect::<ApiResult<Vec<_>>>()
            .map(Value::Array),
        (AttrType::Sparse, Value::Object(_)) => Ok(v.clone()),
        _ => Err(mismatch()),
    }
}

fn resolve_metric(st: &NsState, req: &WriteRequest, schema: &Schema) -> ApiResult<Option<Metric>> {
    let has_vector_rows = req.upsert_rows.as_ref().is_some_and(|r| {
        r.iter()
            .any(|r| r.attrs.get("vector").is_some_and(|v| !v.is_null()))
    }) || req
        .upsert_columns
        .as_ref()
        .is_some_and(|c| c.cols.get("vector").is_some_and(|v| !v.is_null()));
    // Vector columns are fixed when a namespace is created: an existing namespace without one
    // cannot gain one, whatever metric the write names.
    if has_vector_rows && st.schema.values().all(|s| !s.ty.is_vector()) && !st.docs.is_empty() {
        return Err(ApiError::invalid(
            "Vector provided for namespace without vector attribute",
        ));
    }
    match (st.metric, req.distance_metric) {
        (Some(have), Some(want)) if have != want => Err(ApiError::invalid(format!(
            "distance metric mismatch, expected {}, got {}",
            have.name(),
            want.name()
        ))),
        (Some(have), _) => Ok(Some(have)),
        (None, Some(Metric::Unknown | Metric::Query)) => {
            Err(ApiError::invalid("unsupported distance_metric"))
        }
        (None, Some(want)) => Ok(Some(want)),
        (None, None) => {
            if has_vector_rows || schema.values().any(|s| s.ty.is_vector()) {
                return Err(ApiError::invalid(
                    "distance_metric must be specified for write to namespace with a vector",
                ));
            }
            Ok(None)
        }
    }
}

/// Re-analyses every document after a full-text setting changed (tokens of all FTS attributes
/// are rebuilt together by [`fts::tokenize_doc`]).
fn retokenize_all(st: &mut NsState, schema: &Schema) {
    for map in [&mut st.docs, &mut st.indexed] {
        for doc in map.values_mut() {
            let mut d = (**doc).clone();
            fts::tokenize_doc(schema, &mut d);
            *doc = Arc::new(d);
        }
    }
}

#[cfg(test)]
mod tests;
