//! `POST /v2/namespaces/{ns}/query`: single queries and multi-queries over one snapshot.
//!
//! Start at [`run_single`] / [`run_multi`]. Bodies deserialize into typed structs so shape errors
//! carry the live service's 422 texts; semantic checks produce its `💔` 400 texts. Results are
//! plain JSON rows (`id`, `$dist`, attributes); RRF-fused rows carry `$score`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::aggregate;
use crate::error::{ApiError, ApiResult};
use crate::filter::{self, EvalCtx, Filter};
use crate::model::{Doc, Id, encode_vector_base64, sort_cmp, vector_to_json};
use crate::namespace::{Metric, NsState};
use crate::rank::{self, Rank};
use crate::schema::Schema;

/// `limit`: an integer or `{total, per?}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum LimitInput {
    Total(u64),
    Full { total: u64, per: Option<LimitPer> },
}

#[derive(Debug, Deserialize)]
pub struct LimitPer {
    pub attributes: Vec<String>,
    pub limit: u64,
}

/// `include_attributes`: a boolean or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Include {
    All(bool),
    List(Vec<String>),
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Strong,
    Eventual,
}

/// `consistency`.
#[derive(Debug, Deserialize)]
pub struct Consistency {
    pub level: Level,
    #[serde(default)]
    pub max_staleness_seconds: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VectorEncoding {
    #[default]
    Float,
    Base64,
}

/// A single query, also the shape of each multi-query subquery. (The name reproduces the live
/// service's 422 text for malformed subqueries.)
#[derive(Debug, Default, Deserialize)]
pub struct QueryRankBy {
    pub rank_by: Option<Value>,
    pub top_k: Option<u64>,
    pub limit: Option<LimitInput>,
    pub offset: Option<u64>,
    pub filters: Option<Value>,
    pub include_attributes: Option<Include>,
    pub exclude_attributes: Option<Vec<String>>,
    pub aggregate_by: Option<Map<String, Value>>,
    pub group_by: Option<Vec<Value>>,
    pub compute_attributes: Option<Value>,
    pub rerank_by: Option<Value>,
    pub consistency: Option<Consistency>,
    pub vector_encoding: Option<VectorEncoding>,
    pub distance_metric: Option<Value>,
}

/// A multi-query body.
#[derive(Debug, Deserialize)]
pub struct MultiQuery {
    pub queries: Vec<QueryRankBy>,
    pub rerank_by: Option<Value>,
    pub limit: Option<LimitInput>,
    pub offset: Option<u64>,
    pub consistency: Option<Consistency>,
    pub vector_encoding: Option<VectorEncoding>,
}

/// Permits a query consumes from the namespace's concurrency budget (contract §8.3).
pub fn permits(q: &QueryRankBy) -> u32 {
    if q.aggregate_by.is_some() {
        4
    } else if q
        .rank_by
        .as_ref()
        .and_then(|r| r.get(1))
        .and_then(Value::as_str)
        == Some("kNN")
    {
        2
    } else {
        1
    }
}

/// Runs one query against `docs` (the visible snapshot).
pub fn run_single(
    st: &NsState,
    docs: &BTreeMap<Id, Arc<Doc>>,
    q: &QueryRankBy,
    enc: VectorEncoding,
) -> ApiResult<Map<String, Value>> {
    let schema = &st.schema;
    if q.include_attributes.is_some() && q.exclude_attributes.is_some() {
        return Err(ApiError::invalid(
            "cannot specify both include_attributes and exclude_attributes",
        ));
    }
    if q.compute_attributes.is_some() {
        return Err(ApiError::invalid(
            "compute_attributes is not supported by this emulator",
        ));
    }
    if q.rerank_by.is_some() {
        return Err(ApiError::invalid(
            "model reranking (rerank_by) is not supported by this emulator",
        ));
    }
    let total = match &q.limit {
        Some(LimitInput::Total(t)) | Some(LimitInput::Full { total: t, .. }) => Some(*t),
        None => q.top_k,
    };
    if let Some(t) = total
        && !(1..=10_000).contains(&t)
    {
        return Err(ApiError::invalid("top_k must be between 1 and 10000"));
    }
    let filter = filter::parse_opt(q.filters.as_ref(), schema)?;
    if let Some(agg) = &q.aggregate_by {
        if q.rank_by.is_some() {
            return Err(ApiError::invalid(
                "aggregate_by cannot be combined with rank_by",
            ));
        }
        // Contract §4.5: aggregations cannot be combined with rank_by or include_attributes
        // (`include_attributes: false` means "omitted").
        if q.include_attributes
            .as_ref()
            .is_some_and(|i| !matches!(i, Include::All(false)))
        {
            return Err(ApiError::invalid(
                "aggregate_by cannot be combined with include_attributes",
            ));
        }
        let a = aggregate::parse(
            agg,
            q.group_by.as_ref(),
            total,
            q.limit.is_some() && q.group_by.is_none(),
        )?;
        return Ok(a.run(docs, filter.as_ref()));
    }
    if q.group_by.is_some() {
        return Err(ApiError::invalid("group_by requires aggregate_by"));
    }
    let rank_v = q
        .rank_by
        .as_ref()
        .ok_or_else(|| ApiError::invalid("query must specify rank_by or aggregate_by"))?;
    let mut rank = rank::parse(rank_v, schema)?;
    let total = total
        .ok_or_else(|| ApiError::invalid("rank_by queries must specify top_k or limit"))?
        as usize;
    let per = match &q.limit {
        Some(LimitInput::Full { per: Some(p), .. }) => {
            if !matches!(rank, Rank::Order(_)) {
                return Err(ApiError::invalid(
                    "`limit.per` is only supported when ranking by an attribute",
                ));
            }
            Some(p)
        }
        _ => None,
    };
    if let Rank::Vector { knn: true, .. } = rank
        && filter.is_none()
    {
        return Err(ApiError::invalid("kNN requires filters"));
    }
    let projection = Projection::new(
        schema,
        q.include_attributes.as_ref(),
        q.exclude_attributes.as_ref(),
        enc,
    )?;
    let metric = st.metric.unwrap_or(Metric::CosineDistance);
    if let Rank::Score(s) = &mut rank {
        s.prepare(docs);
    }

    let candidates = Candidates::new(docs, filter.as_ref());
    let mut hits: Vec<(Key, &Id, &Doc)> = Vec::new();
    for (id, doc) in candidates.iter() {
        if let Some(f) = &filter
            && !f.matches(id, doc, EvalCtx::default())
        {
            continue;
        }
        let key = match &rank {
            Rank::Vector { attr, query, .. } => match doc.vectors.get(attr.as_str()) {
                Some(v) => Key::Dist(metric.distance(query, v)),
                None => continue,
            },
            Rank::Sparse { attr, query } => {
                let Some(Value::Object(sv)) = doc.attrs.get(attr.as_str()) else {
                    continue;
                };
                let dot: f64 = query
                    .iter()
                    .map(|(k, w)| w * sv.get(k).and_then(Value::as_f64).unwrap_or(0.0))
                    .sum();
                if dot <= 0.0 {
                    continue;
                }
                Key::Score(dot)
            }
            Rank::Score(s) => {
                let score = s.eval(id, doc);
                if score <= 0.0 {
                    continue;
                }
                Key::Score(score)
            }
            Rank::Order(_) => Key::Order,
        };
        hits.push((key, id, doc));
    }
    match &rank {
        Rank::Order(keys) => hits.sort_by(|a, b| order_cmp(keys, (a.1, a.2), (b.1, b.2))),
        _ => hits.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1))),
    }
    let offset = q.offset.unwrap_or(0) as usize;
    let mut per_counts: BTreeMap<String, u64> = BTreeMap::new();
    let rows: Vec<Value> = hits
        .into_iter()
        .filter(|(_, id, doc)| match per {
            None => true,
            Some(p) => {
                let key: Vec<Value> = p
                    .attributes
                    .iter()
                    .map(|a| {
                        let mut s = None;
                        doc.get(id, a, &mut s).cloned().unwrap_or(Value::Null)
                    })
                    .collect();
                let n = per_counts.entry(Value::Array(key).to_string()).or_insert(0);
                *n += 1;
                *n <= p.limit
            }
        })
        .skip(offset)
        .take(total)
        .map(|(key, id, doc)| projection.row(id, doc, key.dist()))
        .collect();
    let mut out = Map::new();
    out.insert("rows".into(), Value::Array(rows));
    Ok(out)
}

/// Runs a multi-query over one snapshot; with `rerank_by: ["RRF", ...]` the rows are fused.
pub fn run_multi(
    st: &NsState,
    docs: &BTreeMap<Id, Arc<Doc>>,
    m: &MultiQuery,
) -> ApiResult<Vec<Map<String, Value>>> {
    if m.queries.is_empty() {
        return Err(ApiError::invalid("must send at least one sub-query"));
    }
    let permits: u32 = m.queries.iter().map(permits).sum();
    if m.queries.len() > 16 || permits > 16 {
        return Err(ApiError::invalid(format!(
            "multi-query exceeds per-namespace concurrency budget: requires {permits} permits, max is 16 (see https://turbopuffer.com/docs/limits)"
        )));
    }
    let enc = m.vector_encoding.unwrap_or_default();
    let rrf = m
        .rerank_by
        .as_ref()
        .map(|r| parse_rrf(r, m.queries.len()))
        .transpose()?;
    if m.offset.is_some() && (rrf.is_none() || m.limit.is_none()) {
        return Err(ApiError::invalid(
            "offset on a multi-query requires rerank_by and limit",
        ));
    }
    let results = m
        .queries
        .iter()
        .map(|q| run_single(st, docs, q, enc))
        .collect::<ApiResult<Vec<_>>>()?;
    let Some((k, weights)) = rrf else {
        return Ok(results);
    };
    let mut fused: BTreeMap<Id, (f64, Map<String, Value>)> = BTreeMap::new();
    for (i, r) in results.iter().enumerate() {
        let Some(Value::Array(rows)) = r.get("rows") else {
            continue;
        };
        for (rank, row) in rows.iter().enumerate() {
            let Some(id) = row.get("id").and_then(Id::from_value) else {
                continue;
            };
            let contribution = weights[i] / (k + (rank + 1) as f64);
            let entry = fused.entry(id).or_insert_with(|| (0.0, Map::new()));
            entry.0 += contribution;
            if let Value::Object(fields) = row {
                for (key, v) in fields {
                    if key != "$dist" && key != "id" {
                        entry.1.entry(key.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
        }
    }
    let mut list: Vec<(Id, f64, Map<String, Value>)> =
        fused.into_iter().map(|(id, (s, f))| (id, s, f)).collect();
    list.sort_by(|a, b| {
        b.1.partial_cmp(&a.1)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    let default_limit = m
        .queries
        .iter()
        .filter_map(|q| {
            q.top_k.or(match &q.limit {
                Some(LimitInput::Total(t)) | Some(LimitInput::Full { total: t, .. }) => Some(*t),
                None => None,
            })
        })
        .max()
        .unwrap_or(10) as usize;
    let limit = match &m.limit {
        Some(LimitInput::Total(t)) | Some(LimitInput::Full { total: t, .. }) => *t as usize,
        None => default_limit,
    };
    let rows: Vec<Value> = list
        .into_iter()
        .skip(m.offset.unwrap_or(0) as usize)
        .take(limit)
        .map(|(id, score, fields)| {
            let mut row = Map::new();
            row.insert("id".into(), id.to_value());
            row.insert("$score".into(), json!(score));
            row.extend(fields);
            Value::Object(row)
        })
        .collect();
    let mut out = Map::new();
    out.insert("rows".into(), Value::Array(rows));
    Ok(vec![out])
}

/// Parses `["RRF"]` / `["RRF", {rank_constant, weights}]`.
fn parse_rrf(v: &Value, n: usize) -> ApiResult<(f64, Vec<f64>)> {
    let items = v.as_array().ok_or_else(|| {
        ApiError::invalid("model reranking (rerank_by) is not supported by this emulator")
    })?;
    match items.as_slice() {
        [Value::String(r)] if r == "RRF" => Ok((60.0, vec![1.0; n])),
        [Value::String(r), Value::Object(p)] if r == "RRF" => {
            let k =
                match p.get("rank_constant") {
                    None => 60.0,
                    Some(v) => v.as_u64().filter(|k| *k > 0).ok_or_else(|| {
                        ApiError::invalid("rank_constant must be a positive integer")
                    })? as f64,
                };
            let weights = match p.get("weights") {
                None => vec![1.0; n],
                Some(Value::Array(ws)) => {
                    let ws = ws
                        .iter()
                        .map(|w| w.as_f64().filter(|w| *w > 0.0))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| ApiError::invalid("RRF weights must be positive numbers"))?;
                    if ws.len() != n {
                        return Err(ApiError::invalid(format!(
                            "RRF weights must have one weight per sub-query ({n}), got {}",
                            ws.len()
                        )));
                    }
                    ws
                }
                Some(_) => return Err(ApiError::invalid("RRF weights must be an array")),
            };
            Ok((k, weights))
        }
        _ => Err(ApiError::deserialize(
            "rerank_by: data did not match any variant of untagged enum RerankBy",
        )),
    }
}

/// Sort key of a hit.
#[derive(Clone, Copy)]
enum Key {
    Dist(f64),
    Score(f64),
    Order,
}

impl Key {
    fn dist(self) -> Option<f64> {
        match self {
            Key::Dist(d) | Key::Score(d) => Some(d),
            Key::Order => None,
        }
    }

    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Dist(a), Key::Dist(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Key::Score(a), Key::Score(b)) => b.partial_cmp(a).unwrap_or(Ordering::Equal),
            _ => Ordering::Equal,
        }
    }
}

fn order_cmp(keys: &[(String, bool)], a: (&Id, &Doc), b: (&Id, &Doc)) -> Ordering {
    for (attr, asc) in keys {
        let (mut sa, mut sb) = (None, None);
        let va = a.1.get(a.0, attr, &mut sa);
        let vb = b.1.get(b.0, attr, &mut sb);
        // Nulls first ascending, last descending.
        let ord = sort_cmp(va, vb);
        let ord = if *asc { ord } else { ord.reverse() };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.0.cmp(b.0)
}

/// Iterates the documents a filter can match: an id lookup when the filter pins ids.
struct Candidates<'a> {
    docs: &'a BTreeMap<Id, Arc<Doc>>,
    ids: Option<Vec<Id>>,
}

impl<'a> Candidates<'a> {
    fn new(docs: &'a BTreeMap<Id, Arc<Doc>>, filter: Option<&Filter>) -> Self {
        Candidates {
            docs,
            ids: filter.and_then(Filter::id_candidates),
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&'a Id, &'a Doc)> + '_> {
        let docs = self.docs;
        match &self.ids {
            Some(ids) => Box::new(
                ids.iter()
                    .filter_map(move |id| docs.get_key_value(id).map(|(k, d)| (k, d.as_ref()))),
            ),
            None => Box::new(docs.iter().map(|(k, d)| (k, d.as_ref()))),
        }
    }
}

/// Which attributes a row carries.
struct Projection<'a> {
    schema: &'a Schema,
    mode: Mode,
    enc: VectorEncoding,
}

enum Mode {
    None,
    All,
    List(Vec<String>),
    Exclude(Vec<String>),
}

impl<'a> Projection<'a> {
    fn new(
        schema: &'a Schema,
        include: Option<&Include>,
        exclude: Option<&Vec<String>>,
        enc: VectorEncoding,
    ) -> ApiResult<Self> {
        let mode = match (include, exclude) {
            (Some(Include::All(true)), _) => Mode::All,
            (Some(Include::List(list)), _) => {
                for a in list {
                    if a != "id" && !schema.contains_key(a) {
                        return Err(ApiError::invalid(format!(
                            "attribute \"{a}\" not found in schema, cannot be part of `include_attributes`. consider passing `include_attributes=True` to return all attribute data instead"
                        )));
                    }
                }
                Mode::List(list.iter().filter(|a| *a != "id").cloned().collect())
            }
            (_, Some(ex)) => Mode::Exclude(ex.clone()),
            _ => Mode::None,
        };
        Ok(Projection { schema, mode, enc })
    }

    fn row(&self, id: &Id, doc: &Doc, dist: Option<f64>) -> Value {
        let mut row = Map::new();
        row.insert("id".into(), id.to_value());
        if let Some(d) = dist {
            row.insert("$dist".into(), json!(d));
        }
        let mut put = |attr: &str, explicit: bool| {
            if let Some(v) = doc.vectors.get(attr) {
                let rendered = match self.enc {
                    VectorEncoding::Float => vector_to_json(v),
                    VectorEncoding::Base64 => Value::String(encode_vector_base64(v)),
                };
                row.insert(attr.to_string(), rendered);
            } else if let Some(v) = doc.attrs.get(attr) {
                row.insert(attr.to_string(), self.render(attr, v));
            } else if explicit {
                row.insert(attr.to_string(), Value::Null);
            }
        };
        match &self.mode {
            Mode::None => {}
            Mode::All => {
                for a in self.schema.keys() {
                    put(a, false);
                }
            }
            Mode::List(list) => list.iter().for_each(|a| put(a, true)),
            Mode::Exclude(ex) => {
                for a in self.schema.keys().filter(|a| !ex.contains(a)) {
                    put(a, false);
                }
            }
        }
        Value::Object(row)
    }

    fn render(&self, attr: &str, v: &Value) -> Value {
        if !rank::is_datetime(self.schema, attr) {
            return v.clone();
        }
        match v {
            Value::Array(items) => Value::Array(items.iter().map(render_datetime).collect()),
            other => render_datetime(other),
        }
    }
}

fn render_datetime(v: &Value) -> Value {
    v.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || v.clone(),
            |dt| Value::String(dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        )
}

#[cfg(test)]
mod tests;
