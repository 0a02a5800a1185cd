//! The Layer query planner: turns a `POST /v2/namespaces/{ns}/query` body (hevlayer
//! `QueryRequest`, a native upstream query, or a multi-query) into what the gateway sends
//! upstream, how to merge shard responses, and which echo blocks to add.
//!
//! The planner does **not** inject the watermark or the shard filter: the gateway passes
//! [`UpstreamQuery::body`] to [`crate::plan_stable_read`] (one watermark read, injected into every
//! leg of a multi-query) and, on sharded namespaces, to [`crate::plan_shards`]; it then sends,
//! merges ([`Merge`]) and calls [`crate::respond::finish_response`] with [`UpstreamQuery::shape`]
//! and [`UpstreamQuery::echo`].
//!
//! # Single query
//!
//! - `rank_by` `[attr,"HybridText",...]` / `[attr,"Auto",...]`: see [`crate::hybrid`] and
//!   [`crate::route`]. 422 with `cursor`, `vector`, `nearest_to_id`, `aggregate_by`,
//!   `group_by` or `rerank_by`.
//! - `vector: V` → `"rank_by":[<vector attribute>,"ANN",V]` in its place (V verbatim).
//! - `nearest_to_id: [ids]` → [`QueryPlan::NeedsCentroids`]; the gateway resolves and averages
//!   the vectors and calls [`PendingCentroids::resolve`], which plans again with
//!   `"rank_by":[<vector attribute>,"ANN",[centroid]]` in its place.
//! - Stripped (never forwarded): `include_leg_breakdown`; `cursor` (returned in
//!   [`UpstreamQuery::cursor`] for the gateway's pagination); Layer keys whose value is `null`.
//! - `as_of` / `between` (non-null): 422 "not supported yet". A `_hevlayer_upserted_at` filter
//!   would not be a point-in-time read (rows rewritten after the cut would vanish instead of
//!   showing their old version), so it is refused rather than approximated.
//! - 422: both `vector` and `nearest_to_id`; `nearest_to_id` empty or not an array; either of
//!   them next to `rank_by`; none of `vector`, `nearest_to_id`, `rank_by`, `aggregate_by`; a
//!   vector that is not numbers/base64 or (when known) of the wrong dimensionality.
//! - Everything else is copied verbatim; a body with no Layer key is returned byte-for-byte.
//!
//! # Multi-query (`queries` present)
//!
//! - `HybridText`/`Auto` in any leg: 422.
//! - With `rerank_by`: passed through unchanged (an upstream fused query).
//! - Otherwise: 2–16 legs (422), `cursor` rejected at the top level and in every leg (422),
//!   legs translated like single queries (`vector`, `nearest_to_id`, `include_leg_breakdown`).

use std::borrow::Cow;

use bytes::Bytes;
use sonic_rs::LazyValue;

use crate::filter::RootHint;
use crate::hybrid::{
    ExpansionBody, Members, default_per_leg_limit, parse_expr, parse_options, write_expansion,
};
use crate::merge::limit_of;
use crate::order::{RowOrder, raw_of};
use crate::reserved::Hidden;
use crate::respond::{Echo, Route, RoutingEcho, UpstreamShape, deferral_body};
use crate::route::{
    FUSED_MAX_TOKENS, POLICY_FORCED, POLICY_V1, check_vector, parse_auto_options, route_v1,
};
use crate::shard::json_string;
use crate::splice::{Splice, is_null, span_of};
use crate::tokens::{tokenize, tokenize_capped};
use crate::validate::json_error;
use crate::validated::Input;
use crate::{Expansion, Limits, MergeSpec, QueryError, RewriteError, Validated};

/// The gather spec of a body. Only sharded namespaces gather; an unsharded plan's spec is never
/// read, so it is not derived (it costs a full parse of the body: ~20% of a passthrough query's
/// gateway instructions).
fn merge_spec(body: Validated<&[u8]>, ctx: &QueryContext) -> Result<MergeSpec, QueryError> {
    if ctx.shards <= 1 {
        return Ok(MergeSpec::rows(crate::RowOrder::DistAsc, 0));
    }
    MergeSpec::for_body(&body)
}

/// Namespace facts and gateway settings the planner needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryContext {
    /// Body limits for validation ([`plan_query`]; [`plan_validated`] takes a body checked
    /// before).
    pub limits: Limits,
    /// The vector attribute ANN legs rank by (`"vector"`).
    pub vector_attribute: &'static str,
    /// The namespace's vector dimensionality, when known (enables the 422 mismatch check).
    pub vector_dims: Option<usize>,
    /// Active shard count; 0 or 1 = unsharded.
    pub shards: u32,
    /// Default fan-out width (`Index.spec.scan.threads`, else 8).
    pub threads: u32,
}

impl Default for QueryContext {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            vector_attribute: "vector",
            vector_dims: None,
            shards: 1,
            threads: crate::hybrid::DEFAULT_THREADS,
        }
    }
}

/// How to merge the responses of a query's shard legs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// [`crate::merge_query_responses`] with this spec.
    Single(MergeSpec),
    /// [`crate::merge_multi_query_responses`] with one spec per result.
    PerLeg(Vec<MergeSpec>),
}

/// A query ready to send upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamQuery {
    /// The upstream body (no watermark, no shard filter yet), spliced from the validated
    /// request, or the request's own buffer when it is sent as it is.
    pub body: Validated<Bytes>,
    /// What the response will look like.
    pub shape: UpstreamShape,
    /// How to merge shard responses.
    pub merge: Merge,
    /// Echo blocks for [`crate::respond::finish_response`].
    pub echo: Echo,
    /// Fan-out width for a sharded expansion (`min(threads, shards)`); `None` when unsharded
    /// or not an expansion.
    pub threads: Option<u32>,
    /// The caller's `cursor` (raw JSON), stripped from the body.
    pub cursor: Option<String>,
    /// Where `body`'s root members are, when the planner read them from this very buffer (the
    /// request's own, sent as it is); default when unknown. Only a speed-up: see [`RootHint`].
    pub root: RootHint,
}

impl UpstreamQuery {
    /// [`crate::plan_stable_read`] of this query's body, with the planner's [`RootHint`] (used
    /// only while `body` is still the buffer it was noted for).
    ///
    /// # Errors
    /// As [`crate::plan_stable_read`].
    pub fn plan_stable_read(
        &self,
        predicate: Option<&[u8]>,
    ) -> Result<crate::StablePlan, RewriteError> {
        crate::stable::plan_hinted(&self.body, &self.root, predicate)
    }

    /// [`UpstreamQuery::plan_stable_read`] with a spliced body kept as runs over this query's
    /// buffer (sent by a vectored write, it is never copied into one buffer).
    ///
    /// # Errors
    /// As [`crate::plan_stable_read`].
    pub fn plan_stable_parts(
        &self,
        predicate: Option<&[u8]>,
    ) -> Result<crate::StableParts, RewriteError> {
        crate::stable::parts_hinted(&self.body, &self.root, predicate)
    }
}

/// The planner's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one plan per query, moved a few times: boxing the usual variant would add an allocation to every query"
)]
pub enum QueryPlan {
    /// Send upstream.
    Upstream(UpstreamQuery),
    /// Answer without an upstream call (an `Auto` deferral): `body` is the full response.
    Deferred {
        /// `{"rows":[],"routing":{...,"executed":false}}`.
        body: Vec<u8>,
        /// The routing decision.
        routing: RoutingEcho,
    },
    /// `nearest_to_id` must be resolved first.
    NeedsCentroids(PendingCentroids),
}

/// One `nearest_to_id` to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CentroidRequest {
    /// `None` for a single query, `Some(i)` for `queries[i]`.
    pub leg: Option<usize>,
    /// The ids' raw JSON (`"asin-1"` with quotes, or `42`); decode with [`crate::IdRef::parse`].
    pub ids: Vec<String>,
}

/// A plan waiting for centroids (the `nearest_to_id` hook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCentroids {
    body: Validated<Bytes>,
    ctx: QueryContext,
    requests: Vec<CentroidRequest>,
}

impl PendingCentroids {
    /// What to resolve, in order.
    #[must_use]
    pub fn requests(&self) -> &[CentroidRequest] {
        &self.requests
    }

    /// Plans the query with `centroids[i]` (the component-wise mean of request `i`'s vectors)
    /// standing in for request `i`'s `nearest_to_id`.
    ///
    /// # Errors
    /// [`QueryError::BadCentroid`] (500) for a missing, empty or non-finite centroid.
    pub fn resolve(self, centroids: &[Vec<f32>]) -> Result<QueryPlan, QueryError> {
        if centroids.len() != self.requests.len() {
            return Err(QueryError::BadCentroid);
        }
        let mut texts = Vec::with_capacity(centroids.len());
        for c in centroids {
            if c.is_empty() || c.iter().any(|x| !x.is_finite()) {
                return Err(QueryError::BadCentroid);
            }
            let parts: Vec<String> = c.iter().map(f32::to_string).collect();
            texts.push(format!("[{}]", parts.join(",")));
        }
        plan(self.body.get_ref(), true, &self.ctx, Some(&texts))
    }
}

/// Plans a query body (see the module docs), validating it whole under `ctx.limits` first. A
/// body sent as it is shares `body`'s buffer (no copy).
///
/// # Errors
/// Any validation error of the body and every Layer 422.
pub fn plan_query(body: &Bytes, ctx: &QueryContext) -> Result<QueryPlan, QueryError> {
    plan(body, false, ctx, None)
}

/// [`plan_query`] for a body validated before (by [`crate::hide_reserved`], say): only its top
/// level is walked.
///
/// # Errors
/// Every Layer 422.
pub fn plan_validated(
    body: &Validated<Bytes>,
    ctx: &QueryContext,
) -> Result<QueryPlan, QueryError> {
    plan(body.get_ref(), true, ctx, None)
}

/// [`crate::hide_reserved`], then [`plan_validated`] on its result, reading the body's top level
/// once: when no projection needs a rewrite (the common case), the planner starts from the
/// members the validation read. Returns the body to send (the caller's, or the rewritten one)
/// and its plan.
///
/// # Errors
/// The outer error is `hide_reserved`'s (any validation error of the body); the plan's own
/// result is the inner one, as [`plan_validated`] gives it.
pub fn hide_and_plan(
    body: Bytes,
    ctx: &QueryContext,
) -> Result<(Bytes, Result<QueryPlan, QueryError>), RewriteError> {
    let planned = match crate::reserved::hide(&body, &ctx.limits)? {
        Hidden::Rewritten(out) => {
            let valid = Validated::spliced(Bytes::from(out));
            let planned = plan_validated(&valid, ctx);
            return Ok((valid.into_inner(), planned));
        }
        Hidden::Unchanged(entries) => plan_entries(&body, &entries, ctx, None),
    };
    Ok((body, planned))
}

/// Resolved centroid texts, or the requests being collected.
enum Centroids<'c> {
    Collect(Vec<CentroidRequest>),
    Use(std::slice::Iter<'c, String>),
}

type Field<'a> = (Cow<'a, str>, LazyValue<'a>);

/// `checked`: `body` was validated whole before (only its top level is walked).
fn plan(
    body: &Bytes,
    checked: bool,
    ctx: &QueryContext,
    centroids: Option<&[String]>,
) -> Result<QueryPlan, QueryError> {
    let input = if checked {
        Input::Checked(body)
    } else {
        Input::Unchecked(body, ctx.limits)
    };
    let entries = input.members()?;
    plan_entries(body, &entries, ctx, centroids)
}

/// [`plan`] from `body`'s top-level members, read (and validated whole) by the caller.
fn plan_entries(
    body: &Bytes,
    entries: &[Field<'_>],
    ctx: &QueryContext,
    centroids: Option<&[String]>,
) -> Result<QueryPlan, QueryError> {
    let mut cents = match centroids {
        Some(c) => Centroids::Use(c.iter()),
        None => Centroids::Collect(Vec::new()),
    };
    let planned = if get(entries, "queries").is_some() {
        plan_multi(body, entries, ctx, &mut cents)?
    } else {
        plan_single(body, entries, ctx, &mut cents)?
    };
    match cents {
        Centroids::Collect(requests) if !requests.is_empty() => {
            Ok(QueryPlan::NeedsCentroids(PendingCentroids {
                body: Validated::spliced(body.clone()),
                ctx: ctx.clone(),
                requests,
            }))
        }
        _ => Ok(planned),
    }
}

fn get<'e, 'a>(entries: &'e [Field<'a>], key: &str) -> Option<&'e LazyValue<'a>> {
    entries
        .iter()
        .find(|(k, v)| k == key && !is_null(v))
        .map(|(_, v)| v)
}

fn plan_single(
    body: &Bytes,
    entries: &[Field<'_>],
    ctx: &QueryContext,
    cents: &mut Centroids<'_>,
) -> Result<QueryPlan, QueryError> {
    if let Some(rank_by) = get(entries, "rank_by")
        && let Some(expr) = parse_expr(rank_by)?
    {
        return plan_expansion(&expr, entries, ctx);
    }
    let cursor = get(entries, "cursor").map(|c| raw_of(c).to_owned());
    // Sent as it is: the members just read say where the stable read's root members are.
    let (out, root) = match translate(entries, ctx, cents, None)? {
        Some(out) => (Bytes::from(out), RootHint::default()),
        None => {
            let members = entries.iter().map(|(k, v)| (&**k, v));
            let root = RootHint::of(body, members, |v| span_of(body, v))?;
            (body.clone(), root)
        }
    };
    let out = Validated::spliced(out);
    let merge = merge_spec(out.as_slice(), ctx)?;
    Ok(QueryPlan::Upstream(UpstreamQuery {
        body: out,
        shape: UpstreamShape::Single,
        merge: Merge::Single(merge),
        echo: Echo::default(),
        threads: None,
        cursor,
        root,
    }))
}

/// `as_of` / `between` (point-in-time reads) are not served yet: a clear 422 naming the field.
fn reject_point_in_time(fields: &[Field<'_>]) -> Result<(), QueryError> {
    for field in ["as_of", "between"] {
        if get(fields, field).is_some() {
            return Err(QueryError::Unsupported {
                field,
                why: "point-in-time reads are on the roadmap; drop the field to read the stable cut",
            });
        }
    }
    Ok(())
}

/// Translates one query object's Layer keys; `None` when nothing changes.
fn translate(
    fields: &[Field<'_>],
    ctx: &QueryContext,
    cents: &mut Centroids<'_>,
    leg: Option<usize>,
) -> Result<Option<Vec<u8>>, QueryError> {
    reject_point_in_time(fields)?;
    let vector = get(fields, "vector");
    let nearest = get(fields, "nearest_to_id");
    let has_rank = get(fields, "rank_by").is_some();
    if vector.is_some() && nearest.is_some() {
        return Err(QueryError::VectorAndNearestToId);
    }
    let mut ids = Vec::new();
    if let Some(n) = nearest {
        let items = n
            .clone()
            .into_array_iter()
            .ok_or(QueryError::EmptyNearestToId)?;
        for item in items {
            ids.push(raw_of(&item.map_err(|e| json_error(&e, true))?).to_owned());
        }
        if ids.is_empty() {
            return Err(QueryError::EmptyNearestToId);
        }
    }
    if has_rank && (vector.is_some() || nearest.is_some()) {
        return Err(QueryError::RankingConflict {
            field: if vector.is_some() {
                "vector"
            } else {
                "nearest_to_id"
            },
        });
    }
    if !has_rank && vector.is_none() && nearest.is_none() && get(fields, "aggregate_by").is_none() {
        return Err(QueryError::NoRanking);
    }
    let attr = || json_string(ctx.vector_attribute);
    let rank_by = match (vector, nearest) {
        (Some(v), _) => {
            let raw = raw_of(v);
            check_vector(raw, "vector", ctx.vector_dims)?;
            Some(format!("[{},\"ANN\",{raw}]", attr()))
        }
        (None, Some(_)) => match cents {
            Centroids::Collect(requests) => {
                requests.push(CentroidRequest { leg, ids });
                return Ok(None);
            }
            Centroids::Use(texts) => {
                let text = texts.next().ok_or(QueryError::BadCentroid)?;
                Some(format!("[{},\"ANN\",{text}]", attr()))
            }
        },
        (None, None) => None,
    };
    let layer_only = |k: &str| {
        matches!(
            k,
            "vector" | "nearest_to_id" | "include_leg_breakdown" | "cursor" | "as_of" | "between"
        )
    };
    if rank_by.is_none() && !fields.iter().any(|(k, _)| layer_only(k)) {
        return Ok(None);
    }
    let mut out = Vec::new();
    out.push(b'{');
    let mut first = true;
    for (k, v) in fields {
        let raw = match k.as_ref() {
            "vector" | "nearest_to_id" => match (&rank_by, is_null(v)) {
                (Some(r), false) => {
                    push(&mut out, &mut first, "rank_by", r);
                    continue;
                }
                _ => continue,
            },
            k if layer_only(k) => continue,
            // A null `rank_by` beside `vector` / `nearest_to_id`: the ANN ranking replaces it
            // (copying it too would repeat the key).
            "rank_by" if rank_by.is_some() => continue,
            _ => raw_of(v),
        };
        push(&mut out, &mut first, k, raw);
    }
    out.push(b'}');
    Ok(Some(out))
}

fn push(out: &mut Vec<u8>, first: &mut bool, key: &str, raw: &str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.extend_from_slice(json_string(key).as_bytes());
    out.push(b':');
    out.extend_from_slice(raw.as_bytes());
}

fn plan_expansion(
    expr: &crate::hybrid::Expr<'_>,
    entries: &[Field<'_>],
    ctx: &QueryContext,
) -> Result<QueryPlan, QueryError> {
    let op = expr.op;
    if get(entries, "cursor").is_some() {
        return Err(QueryError::CursorWithExpansion { op });
    }
    for field in ["vector", "nearest_to_id"] {
        if get(entries, field).is_some() {
            return Err(QueryError::RankingConflict { field });
        }
    }
    for field in ["aggregate_by", "group_by", "rerank_by"] {
        if get(entries, field).is_some() {
            return Err(QueryError::invalid(format!(
                "{field} cannot be combined with a {op} rank_by"
            )));
        }
    }
    reject_point_in_time(entries)?;
    let top_k = get(entries, "top_k")
        .or_else(|| get(entries, "limit"))
        .and_then(limit_of)
        .unwrap_or(10);
    let mut members = Members::default();
    for (k, v) in entries {
        match k.as_ref() {
            "rank_by"
            | "top_k"
            | "limit"
            | "include_leg_breakdown"
            | "cursor"
            | "vector"
            | "nearest_to_id"
            | "as_of"
            | "between"
            | "aggregate_by"
            | "group_by"
            | "rerank_by" => {}
            "consistency" | "vector_encoding" | "offset" => {
                members.root.push((k.to_string(), raw_of(v)));
            }
            _ => members.leg.push((k.to_string(), raw_of(v))),
        }
    }
    let shards = ctx.shards.max(1);
    let threads_for = |requested: Option<u32>| {
        (shards > 1).then(|| requested.unwrap_or(ctx.threads).clamp(1, shards))
    };
    let hybrid_single = |opts: &crate::hybrid::HybridOptions,
                         tokens: crate::tokens::Tokens,
                         ann: Option<String>,
                         routing: Option<RoutingEcho>| {
        let per_leg = opts
            .per_leg_limit
            .unwrap_or_else(|| default_per_leg_limit(top_k));
        let mut body = Vec::new();
        let legs = write_expansion(
            &ExpansionBody {
                expr,
                tokens: &tokens.tokens,
                fuzziness: opts.fuzziness,
                per_leg_limit: per_leg,
                rank_constant: opts.rank_constant,
                limit: top_k,
                members: &members,
                ann,
            },
            &mut body,
        );
        let threads = threads_for(opts.threads);
        let echo = Echo {
            hybrid: Some(crate::hybrid::echo(
                tokens.tokens,
                tokens.dropped,
                opts,
                per_leg,
                legs,
                threads,
            )),
            routing,
        };
        QueryPlan::Upstream(UpstreamQuery {
            body: Validated::spliced(Bytes::from(body)),
            shape: UpstreamShape::Expansion,
            merge: Merge::Single(MergeSpec::rows(RowOrder::ScoreDesc, usize_of(top_k))),
            echo,
            threads,
            cursor: None,
            root: RootHint::default(),
        })
    };
    match op {
        Expansion::HybridText => {
            let opts = parse_options(expr.options.as_ref())?;
            let tokens = tokenize(&expr.input);
            if tokens.tokens.is_empty() {
                return Err(QueryError::NoTokens { op });
            }
            Ok(hybrid_single(&opts, tokens, None, None))
        }
        Expansion::Auto => {
            let auto = parse_auto_options(expr.options.as_ref())?;
            let tokens = tokenize(&expr.input);
            if tokens.tokens.is_empty() {
                return Err(QueryError::NoTokens { op });
            }
            if let Some(v) = auto.vector {
                check_vector(v, "Auto option vector", ctx.vector_dims)?;
            }
            let (route, policy) = match auto.route {
                Some(r) => (r, POLICY_FORCED),
                None => (route_v1(tokens.tokens.len()), POLICY_V1),
            };
            let mut routing = RoutingEcho {
                route,
                policy,
                tokens: tokens.tokens.len(),
                executed: true,
            };
            let vector = match (route.needs_vector(), auto.vector) {
                (true, None) if auto.route.is_some() => {
                    return Err(QueryError::ForcedRouteWithoutVector {
                        route: route.as_str(),
                    });
                }
                (true, None) => {
                    routing.executed = false;
                    return Ok(QueryPlan::Deferred {
                        body: deferral_body(&routing),
                        routing,
                    });
                }
                (_, v) => v,
            };
            let attr = json_string(ctx.vector_attribute);
            let ann = vector.map(|v| format!("[{attr},\"ANN\",{v}]"));
            let defaults = crate::hybrid::HybridOptions::default();
            match (route, ann) {
                (Route::Semantic, Some(ann)) => {
                    let mut out = Vec::new();
                    out.extend_from_slice(b"{\"rank_by\":");
                    out.extend_from_slice(ann.as_bytes());
                    out.extend_from_slice(format!(",\"top_k\":{top_k}").as_bytes());
                    for (k, v) in members.leg.iter().chain(&members.root) {
                        out.push(b',');
                        out.extend_from_slice(json_string(k).as_bytes());
                        out.push(b':');
                        out.extend_from_slice(v.as_bytes());
                    }
                    out.push(b'}');
                    Ok(QueryPlan::Upstream(UpstreamQuery {
                        body: Validated::spliced(Bytes::from(out)),
                        shape: UpstreamShape::Single,
                        merge: Merge::Single(MergeSpec::rows(RowOrder::DistAsc, usize_of(top_k))),
                        echo: Echo {
                            hybrid: None,
                            routing: Some(routing),
                        },
                        threads: None,
                        cursor: None,
                        root: RootHint::default(),
                    }))
                }
                (Route::Fused, Some(ann)) => {
                    let capped = tokenize_capped(&expr.input, FUSED_MAX_TOKENS);
                    Ok(hybrid_single(&defaults, capped, Some(ann), Some(routing)))
                }
                _ => Ok(hybrid_single(&defaults, tokens, None, Some(routing))),
            }
        }
    }
}

fn usize_of(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn plan_multi(
    body: &Bytes,
    entries: &[Field<'_>],
    ctx: &QueryContext,
    cents: &mut Centroids<'_>,
) -> Result<QueryPlan, QueryError> {
    let Some(queries) = get(entries, "queries") else {
        return Err(QueryError::invalid(
            "`queries` must be an array of query objects",
        ));
    };
    let items = queries
        .clone()
        .into_array_iter()
        .ok_or_else(|| QueryError::invalid("`queries` must be an array of query objects"))?;
    let mut legs: Vec<(LazyValue<'_>, Vec<Field<'_>>)> = Vec::new();
    for (i, item) in items.enumerate() {
        let item = item.map_err(|e| json_error(&e, true))?;
        let fields = item
            .clone()
            .into_object_iter()
            .ok_or_else(|| QueryError::invalid(format!("`queries[{i}]` must be a query object")))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| json_error(&e, true))?;
        if let Some(rank_by) = get(&fields, "rank_by")
            && let Some(expr) = parse_expr(rank_by)?
        {
            return Err(QueryError::ExpansionInQueries {
                op: expr.op,
                leg: i,
            });
        }
        legs.push((item, fields));
    }
    if get(entries, "rerank_by").is_some() {
        let limit = get(entries, "limit")
            .and_then(limit_of)
            .or_else(|| {
                legs.iter()
                    .filter_map(|(_, f)| {
                        get(f, "top_k")
                            .or_else(|| get(f, "limit"))
                            .and_then(limit_of)
                    })
                    .max()
            })
            .unwrap_or(10);
        return Ok(QueryPlan::Upstream(UpstreamQuery {
            body: Validated::spliced(body.clone()),
            shape: UpstreamShape::MultiQuery,
            merge: Merge::PerLeg(vec![MergeSpec::rows(RowOrder::ScoreDesc, usize_of(limit))]),
            echo: Echo::default(),
            threads: None,
            cursor: None,
            root: RootHint::default(),
        }));
    }
    if !(2..=16).contains(&legs.len()) {
        return Err(QueryError::LegCount { got: legs.len() });
    }
    if get(entries, "cursor").is_some() {
        return Err(QueryError::CursorInMultiQuery { leg: None });
    }
    let mut splice = Splice::new(body);
    let mut specs = Vec::with_capacity(legs.len());
    for (i, (item, fields)) in legs.iter().enumerate() {
        if get(fields, "cursor").is_some() {
            return Err(QueryError::CursorInMultiQuery { leg: Some(i) });
        }
        let span = span_of(body, item)?;
        match translate(fields, ctx, cents, Some(i))? {
            Some(text) => {
                specs.push(merge_spec(Validated::spliced(text.as_slice()), ctx)?);
                let piece = splice.piece(&text);
                splice.replace_piece(span, piece);
            }
            None => {
                let item = body.get(span).unwrap_or_default();
                specs.push(merge_spec(Validated::spliced(item), ctx)?);
            }
        }
    }
    Ok(QueryPlan::Upstream(UpstreamQuery {
        body: Validated::spliced(Bytes::from(splice.finish()?)),
        shape: UpstreamShape::MultiQuery,
        merge: Merge::PerLeg(specs),
        echo: Echo::default(),
        threads: None,
        cursor: None,
        root: RootHint::default(),
    }))
}

#[cfg(test)]
#[path = "layer_query_tests.rs"]
mod tests;
