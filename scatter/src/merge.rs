//! The gather half of scatter/gather: merges the upstream responses of the shard legs of one
//! query into the response for the caller's `top_k`. Pure: the gateway does the I/O, and fails
//! the request on any failed leg before calling this (only successes are merged).
//!
//! Inputs are upstream query responses: single-query shape `{"rows"?, "aggregations"?,
//! "aggregation_groups"?, "billing"?, "performance"?}`, or a fused multi-query response whose
//! `results` holds exactly one entry (RRF output; its `rows` carry `$score`), which is read as
//! that entry plus the root `billing`/`performance`. [`merge_multi_query_responses`] merges
//! non-fused multi-query responses leg by leg.
//!
//! What the output holds (single-query shape, keys in this order, each only when some input had
//! it):
//!
//! - `rows`: the best `top_k` rows of all inputs under [`MergeSpec::order`] (see
//!   [`crate::order`]), ties broken by id. Each row's JSON is copied **verbatim** (same bytes,
//!   same attributes), except that attributes in [`MergeSpec::strip`] are removed. With a
//!   single input the upstream order is kept (only truncated): Layer does not reorder what one
//!   upstream call ranked;
//! - `aggregations`: every label summed across inputs (`Count` and `Sum` are both additive);
//!   integers are summed exactly, any float makes the sum a float;
//! - `aggregation_groups`: groups with equal group-key values (all non-label members, compared
//!   after unescaping) merged by summing their labels, sorted ascending by the group keys in
//!   [`MergeSpec::group_keys`] order (null < bool < number < string), capped at
//!   [`MergeSpec::group_limit`]. Exact: a group in the global first `L` is in every shard's
//!   first `L`;
//! - `billing`: numbers summed field-wise (nested objects recursively);
//! - `performance`: fields ending in `_ms` (latencies: `query_execution_ms`, `server_total_ms`,
//!   `embedding_ms`, ...) take the **max** (legs run in parallel); `cache_hit_ratio` the mean;
//!   `cache_temperature` the coldest (`cold` > `warm` > `hot`); `last_included_write_at` the
//!   minimum (the cut every leg includes); `approx_namespace_size` and
//!   `exhaustive_search_count` the max (every shard leg queries the same upstream namespace);
//!   every other number (`embedding_tokens`, ...) is **summed**; other values keep the first
//!   input's.
//!
//! Other top-level keys are dropped.
//!
//! Parsing is lazy: a borrowed serde struct with `rows: Vec<LazyValue>` (validates every row
//! once), then each row is scanned only until its id and sort key are found, in place while its
//! leading members are plain scalars (`merge/rows.rs`).
//!
//! # Cost (measured)
//!
//! `benches/merge.rs`, 8 responses of 50.5 KB (75 rows of `id`, `$dist` and 10 attributes)
//! merged to the top 20 by `$dist`: **~430 µs** (criterion mean 431 µs, 420–445 µs), bench
//! profile, default target features, 2-core shared AMD EPYC dev VM (runtime.md's 143–180 µs for
//! 4 × 50 KB used `-C target-cpu=native`); 291–305 µs since the release profile uses fat LTO;
//! **~246 µs** since the sort keys are read in place (325–329 µs before it, in the same session).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use serde::Deserialize;
use sonic_rs::LazyValue;

use crate::order::{OrdVal, RowOrder, order_of_rank_by};
use crate::shard::json_string;
use crate::splice::is_null;
use crate::{QueryError, Validated};

mod rows;
use rows::write_rows;

/// How to merge the responses of one query's legs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSpec {
    /// Row order.
    pub order: RowOrder,
    /// Rows to keep.
    pub top_k: usize,
    /// The `aggregate_by` labels (the members of a group that are summed, not keys).
    pub aggregate_labels: Vec<String>,
    /// The `group_by` output names, in order (the group sort key). Empty: every non-label
    /// member, in the first input's member order.
    pub group_keys: Vec<String>,
    /// Groups to keep (`top_k` / `limit` of a grouped query); `None` keeps all.
    pub group_limit: Option<usize>,
    /// Attributes to remove from every merged row (see [`crate::ShardPlan::strip`]).
    pub strip: Vec<String>,
}

impl MergeSpec {
    /// A spec that keeps `top_k` rows in `order` and nothing else special.
    #[must_use]
    pub fn rows(order: RowOrder, top_k: usize) -> Self {
        Self {
            order,
            top_k,
            aggregate_labels: Vec::new(),
            group_keys: Vec::new(),
            group_limit: None,
            strip: Vec::new(),
        }
    }

    /// Derives the spec from an upstream single-query body: order from `rank_by`, `top_k` from
    /// `top_k` or `limit` (int or `{total}`; unbounded when absent), labels from `aggregate_by`,
    /// group keys from `group_by` (strings, or the output name of `{name: [...]}` entries).
    ///
    /// # Errors
    /// A top level that cannot be read (not for a body that passed validation).
    pub fn for_body<B: AsRef<[u8]>>(body: &Validated<B>) -> Result<Self, QueryError> {
        let entries = body.members()?;
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, v)| k == key && !is_null(v))
                .map(|(_, v)| v)
        };
        let order = get("rank_by").map_or(RowOrder::ScoreDesc, order_of_rank_by);
        let limit = get("top_k")
            .or_else(|| get("limit"))
            .and_then(limit_of)
            .and_then(|n| usize::try_from(n).ok());
        let aggregate_labels = get("aggregate_by").map(object_keys).unwrap_or_default();
        let mut group_keys = Vec::new();
        if let Some(g) = get("group_by") {
            for item in g.clone().into_array_iter().into_iter().flatten().flatten() {
                let raw = item.as_raw_str().trim();
                if raw.starts_with('"') {
                    if let Ok(s) = sonic_rs::from_str::<String>(raw) {
                        group_keys.push(s);
                    }
                } else {
                    group_keys.extend(object_keys(&item));
                }
            }
        }
        let grouped = !group_keys.is_empty();
        Ok(Self {
            order,
            top_k: limit.unwrap_or(usize::MAX),
            aggregate_labels,
            group_keys,
            group_limit: if grouped { limit } else { None },
            strip: Vec::new(),
        })
    }
}

/// `N` or `{"total": N, ...}`.
pub(crate) fn limit_of(v: &LazyValue<'_>) -> Option<u64> {
    let raw = v.as_raw_str().trim();
    if let Ok(n) = raw.parse::<u64>() {
        return Some(n);
    }
    sonic_rs::get(raw, ["total"])
        .ok()
        .and_then(|t| t.as_raw_str().trim().parse::<u64>().ok())
}

fn object_keys(v: &LazyValue<'_>) -> Vec<String> {
    v.clone()
        .into_object_iter()
        .into_iter()
        .flatten()
        .flatten()
        .map(|(k, _)| k.into_owned())
        .collect()
}

#[derive(Deserialize, Default)]
struct Resp<'a> {
    #[serde(borrow, default)]
    rows: Option<Vec<LazyValue<'a>>>,
    #[serde(borrow, default)]
    aggregations: Option<LazyValue<'a>>,
    #[serde(borrow, default)]
    aggregation_groups: Option<Vec<LazyValue<'a>>>,
    #[serde(borrow, default)]
    billing: Option<LazyValue<'a>>,
    #[serde(borrow, default)]
    performance: Option<LazyValue<'a>>,
    #[serde(borrow, default)]
    results: Option<Vec<LazyValue<'a>>>,
}

/// The raw text of a value parsed from a borrowed slice, with `'a` (sonic-rs only copies for
/// `FastStr` inputs, which this crate never uses).
fn raw<'a>(v: &LazyValue<'a>) -> Result<&'a str, QueryError> {
    match v.as_raw_cow() {
        Cow::Borrowed(s) => Ok(s.trim_end_matches([' ', '\t', '\n', '\r'])),
        Cow::Owned(_) => Err(QueryError::upstream("unexpected owned JSON text")),
    }
}

fn parse_resp<'a>(body: &'a [u8]) -> Result<Resp<'a>, QueryError> {
    // serde would also accept a struct written as an array: insist on an object.
    if body.iter().find(|b| !b" \t\r\n".contains(b)) != Some(&b'{') {
        return Err(QueryError::upstream("response is not a JSON object"));
    }
    let text = QueryError::utf8_response(body)?;
    crate::validate::check_escapes(body).map_err(|e| QueryError::upstream(e.to_string()))?;
    sonic_rs::from_str::<Resp<'a>>(text).map_err(|e| {
        QueryError::upstream(e.to_string().lines().next().unwrap_or_default().to_owned())
    })
}

fn parse_entry<'a>(v: &LazyValue<'a>) -> Result<Resp<'a>, QueryError> {
    parse_resp(raw(v)?.as_bytes())
}

/// Merges the responses of one query's shard legs (see the module docs).
///
/// # Errors
/// [`QueryError::BadUpstreamResponse`] (502) when a response is not a query response object.
pub fn merge_query_responses(responses: &[&[u8]], spec: &MergeSpec) -> Result<Vec<u8>, QueryError> {
    let mut parts = Vec::with_capacity(responses.len());
    let mut stats = Vec::with_capacity(responses.len());
    for body in responses {
        let mut r = parse_resp(body)?;
        if r.rows.is_none() && r.aggregations.is_none() && r.aggregation_groups.is_none() {
            match r.results.as_deref() {
                Some([one]) => {
                    let inner = parse_entry(one)?;
                    stats.push((r.billing.take(), r.performance.take()));
                    parts.push(inner);
                    continue;
                }
                Some(_) => {
                    return Err(QueryError::upstream(
                        "multi-query response with more than one result; merge it leg by leg",
                    ));
                }
                None => {}
            }
        }
        stats.push((r.billing.take(), r.performance.take()));
        parts.push(r);
    }
    let cap = responses.iter().map(|b| b.len()).sum::<usize>() / responses.len().max(1) + 256;
    let mut out = Vec::with_capacity(cap);
    out.push(b'{');
    let mut first = true;
    write_result_members(&parts, spec, &mut out, &mut first)?;
    write_stats(&stats, &mut out, &mut first)?;
    out.push(b'}');
    Ok(out)
}

/// Merges non-fused multi-query responses leg by leg: `results[i]` of every response is merged
/// with `specs[i]`; `billing`/`performance` as in [`merge_query_responses`].
///
/// # Errors
/// 502 when a response is malformed or its `results` length differs from `specs.len()`.
pub fn merge_multi_query_responses(
    responses: &[&[u8]],
    specs: &[MergeSpec],
) -> Result<Vec<u8>, QueryError> {
    let mut tops = Vec::with_capacity(responses.len());
    for body in responses {
        tops.push(parse_resp(body)?);
    }
    let mut stats = Vec::with_capacity(tops.len());
    let mut legs: Vec<Vec<Resp<'_>>> = (0..specs.len()).map(|_| Vec::new()).collect();
    for top in &mut tops {
        let results = top.results.as_deref().unwrap_or_default();
        if results.len() != specs.len() {
            return Err(QueryError::upstream(format!(
                "expected {} results, got {}",
                specs.len(),
                results.len()
            )));
        }
        for (i, entry) in results.iter().enumerate() {
            if let Some(leg) = legs.get_mut(i) {
                leg.push(parse_entry(entry)?);
            }
        }
        stats.push((top.billing.take(), top.performance.take()));
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"results\":[");
    for (i, (leg, spec)) in legs.iter().zip(specs).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        let mut first = true;
        write_result_members(leg, spec, &mut out, &mut first)?;
        out.push(b'}');
    }
    out.push(b']');
    let mut first = false;
    write_stats(&stats, &mut out, &mut first)?;
    out.push(b'}');
    Ok(out)
}

fn member(out: &mut Vec<u8>, first: &mut bool, key: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn write_result_members(
    parts: &[Resp<'_>],
    spec: &MergeSpec,
    out: &mut Vec<u8>,
    first: &mut bool,
) -> Result<(), QueryError> {
    if parts.iter().any(|p| p.rows.is_some()) {
        member(out, first, "rows");
        write_rows(parts, spec, out)?;
    }
    let aggs: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.aggregations.as_ref())
        .map(raw)
        .collect::<Result<_, _>>()?;
    if !aggs.is_empty() {
        member(out, first, "aggregations");
        combine_objects(&aggs, &|_| Combine::Sum, out)?;
    }
    if parts.iter().any(|p| p.aggregation_groups.is_some()) {
        member(out, first, "aggregation_groups");
        write_groups(parts, spec, out)?;
    }
    Ok(())
}

type Stats<'a> = (Option<LazyValue<'a>>, Option<LazyValue<'a>>);

fn write_stats(stats: &[Stats<'_>], out: &mut Vec<u8>, first: &mut bool) -> Result<(), QueryError> {
    let billing: Vec<&str> = stats
        .iter()
        .filter_map(|s| s.0.as_ref())
        .map(raw)
        .collect::<Result<_, _>>()?;
    if !billing.is_empty() {
        member(out, first, "billing");
        combine_objects(&billing, &|_| Combine::Sum, out)?;
    }
    let perf: Vec<&str> = stats
        .iter()
        .filter_map(|s| s.1.as_ref())
        .map(raw)
        .collect::<Result<_, _>>()?;
    if !perf.is_empty() {
        member(out, first, "performance");
        combine_objects(&perf, &performance_policy, out)?;
    }
    Ok(())
}

fn performance_policy(key: &str) -> Combine {
    match key {
        "cache_hit_ratio" => Combine::Mean,
        "cache_temperature" => Combine::Coldest,
        "last_included_write_at" => Combine::Min,
        // Every shard leg queries the same upstream namespace: these describe the namespace,
        // not the leg, so summing them would multiply them by the shard count.
        "approx_namespace_size" | "exhaustive_search_count" => Combine::Max,
        k if k.ends_with("_ms") => Combine::Max,
        _ => Combine::Sum,
    }
}

// ---- numbers and objects ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combine {
    Sum,
    Max,
    Min,
    Mean,
    Coldest,
}

#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn parse(text: &str) -> Option<Self> {
        if !text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
            return None;
        }
        text.parse::<i128>()
            .map(Num::Int)
            .ok()
            .or_else(|| text.parse::<f64>().ok().map(Num::Float))
    }

    #[allow(clippy::cast_precision_loss)]
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn add(self, other: Self) -> Self {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a
                .checked_add(b)
                .map_or(Num::Float(self.as_f64() + other.as_f64()), Num::Int),
            _ => Num::Float(self.as_f64() + other.as_f64()),
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        match self {
            Num::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Num::Float(f) if f.is_finite() => {
                let s = f.to_string();
                out.extend_from_slice(s.as_bytes());
                // `1` would read back as an integer; keep float-ness visible like upstream.
                if !s.contains(['.', 'e', 'E']) {
                    out.extend_from_slice(b".0");
                }
            }
            Num::Float(_) => out.extend_from_slice(b"null"),
        }
    }
}

/// Merges JSON objects member-wise (first-appearance key order) with a per-key policy; nested
/// objects recurse, non-numbers keep the first value (coldest temperature / min strings aside).
fn combine_objects(
    raws: &[&str],
    policy: &dyn Fn(&str) -> Combine,
    out: &mut Vec<u8>,
) -> Result<(), QueryError> {
    let mut keys: Vec<(Cow<'_, str>, Vec<&str>)> = Vec::new();
    for r in raws {
        for item in sonic_rs::to_object_iter(*r) {
            let (key, value) = item.map_err(|_| QueryError::upstream("expected a JSON object"))?;
            let text = raw(&value)?;
            match keys.iter_mut().find(|(k, _)| *k == key) {
                Some((_, vals)) => vals.push(text),
                None => keys.push((key, vec![text])),
            }
        }
    }
    out.push(b'{');
    for (i, (key, vals)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(json_string(key).as_bytes());
        out.push(b':');
        combine_values(vals, policy(key), policy, out)?;
    }
    out.push(b'}');
    Ok(())
}

fn combine_values(
    vals: &[&str],
    how: Combine,
    policy: &dyn Fn(&str) -> Combine,
    out: &mut Vec<u8>,
) -> Result<(), QueryError> {
    let Some(first) = vals.first() else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    if vals.iter().all(|v| v.starts_with('{')) {
        return combine_objects(vals, policy, out);
    }
    let nums: Vec<Num> = vals.iter().filter_map(|v| Num::parse(v)).collect();
    if nums.len() == vals.len() {
        let mut it = nums.iter().copied();
        let Some(mut acc) = it.next() else {
            return Ok(());
        };
        for n in it {
            acc = match how {
                Combine::Sum | Combine::Mean => acc.add(n),
                Combine::Max if n.as_f64() > acc.as_f64() => n,
                Combine::Min if n.as_f64() < acc.as_f64() => n,
                _ => acc,
            };
        }
        if how == Combine::Mean {
            #[allow(clippy::cast_precision_loss)]
            let mean = acc.as_f64() / nums.len() as f64;
            acc = Num::Float(mean);
        }
        acc.write(out);
        return Ok(());
    }
    let chosen = match how {
        Combine::Coldest => vals
            .iter()
            .max_by_key(|v| match **v {
                "\"cold\"" => 3,
                "\"warm\"" => 2,
                "\"hot\"" => 1,
                _ => 0,
            })
            .unwrap_or(first),
        Combine::Min => vals.iter().min().unwrap_or(first),
        _ => first,
    };
    out.extend_from_slice(chosen.as_bytes());
    Ok(())
}

// ---- aggregation groups ----

struct Group<'a> {
    members: Vec<(Cow<'a, str>, &'a str)>,
    sums: Vec<Vec<&'a str>>,
    sort: Vec<OrdVal<'a>>,
}

fn write_groups(parts: &[Resp<'_>], spec: &MergeSpec, out: &mut Vec<u8>) -> Result<(), QueryError> {
    let labels = &spec.aggregate_labels;
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for part in parts {
        for g in part.aggregation_groups.iter().flatten() {
            let text = raw(g)?;
            let mut members: Vec<(Cow<'_, str>, &str)> = Vec::new();
            for item in sonic_rs::to_object_iter(text) {
                let (key, value) =
                    item.map_err(|_| QueryError::upstream("a group is not a JSON object"))?;
                members.push((key, raw(&value)?));
            }
            let key_vals: Vec<(&str, &str)> = if spec.group_keys.is_empty() {
                members
                    .iter()
                    .filter(|(k, _)| !labels.iter().any(|l| l == k))
                    .map(|(k, v)| (k.as_ref(), *v))
                    .collect()
            } else {
                spec.group_keys
                    .iter()
                    .map(|gk| {
                        let v = members
                            .iter()
                            .find(|(k, _)| k == gk)
                            .map_or("null", |m| m.1);
                        (gk.as_str(), v)
                    })
                    .collect()
            };
            let sort: Vec<OrdVal<'_>> = key_vals.iter().map(|(_, v)| OrdVal::from_raw(v)).collect();
            let canonical = canonical_key(&key_vals, &sort);
            let label_vals: Vec<Option<&str>> = labels
                .iter()
                .map(|l| members.iter().find(|(k, _)| k == l).map(|m| m.1))
                .collect();
            let gi = match index.get(&canonical) {
                Some(&gi) => gi,
                None => {
                    groups.push(Group {
                        members,
                        sums: vec![Vec::new(); labels.len()],
                        sort,
                    });
                    index.insert(canonical, groups.len() - 1);
                    groups.len() - 1
                }
            };
            if let Some(group) = groups.get_mut(gi) {
                for (slot, v) in group.sums.iter_mut().zip(label_vals) {
                    slot.extend(v);
                }
            }
        }
    }
    // Lexicographic, length last: key lists differ in length when the query names no group keys,
    // and equal-on-the-shorter-prefix is not a total order (the sort panicked on it; fuzz seed).
    groups.sort_by(|a, b| {
        a.sort
            .iter()
            .zip(&b.sort)
            .map(|(x, y)| x.cmp_total(y))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or_else(|| a.sort.len().cmp(&b.sort.len()))
    });
    if let Some(limit) = spec.group_limit {
        groups.truncate(limit);
    }
    out.push(b'[');
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        for (j, (key, value)) in g.members.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(json_string(key).as_bytes());
            out.push(b':');
            match labels.iter().position(|l| l == key) {
                Some(li) => {
                    let vals = g.sums.get(li).map(Vec::as_slice).unwrap_or_default();
                    combine_values(vals, Combine::Sum, &|_| Combine::Sum, out)?;
                }
                None => out.extend_from_slice(value.as_bytes()),
            }
        }
        out.push(b'}');
    }
    out.push(b']');
    Ok(())
}

/// A map key equal for equal group values: strings compare unescaped, numbers by value.
fn canonical_key(key_vals: &[(&str, &str)], sort: &[OrdVal<'_>]) -> String {
    let mut s = String::new();
    for ((k, raw), v) in key_vals.iter().zip(sort) {
        s.push_str(k);
        s.push('\u{1}');
        match v {
            OrdVal::Str(t) => {
                s.push('s');
                s.push_str(t);
            }
            OrdVal::Int(i) => {
                s.push('i');
                s.push_str(&i.to_string());
            }
            OrdVal::Float(f) => {
                s.push('f');
                s.push_str(&f.to_string());
            }
            _ => {
                s.push('r');
                s.push_str(raw);
            }
        }
        s.push('\u{0}');
    }
    s
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
