//! `HybridText` planning: `rank_by: [attr, "HybridText", input, options?]` becomes ONE upstream
//! multi-query fused by RRF.
//!
//! ```json
//! {"queries":[
//!    {"rank_by":["content","BM25","conection timout kubernets"],"top_k":50,<members>},
//!    {"rank_by":["content","Fuzzy","conection",{"max_edit_distance":[{"min_query_chars":9,"distance":2}],"case_sensitive":false}],"top_k":50,<members>},
//!    {"rank_by":["content","Fuzzy","timout",{"max_edit_distance":[{"min_query_chars":6,"distance":1}],"case_sensitive":false}],"top_k":50,<members>},
//!    {"rank_by":["content","Fuzzy","kubernets",{"max_edit_distance":[{"min_query_chars":9,"distance":2}],"case_sensitive":false}],"top_k":50,<members>}],
//!  "rerank_by":["RRF",{"rank_constant":60}],"limit":10,<root members>}
//! ```
//!
//! - **BM25 leg** (first): `[attr,"BM25",<input>]`, the caller's attribute and input string
//!   copied verbatim.
//! - **Fuzzy leg**, one per token: a *filter-as-score* `rank_by`
//!   `[attr,"Fuzzy",token,{"max_edit_distance":[{"min_query_chars":3(d+1),"distance":d}],"case_sensitive":false}]`.
//!   Upstream scores a filter 1 when it matches and 0 otherwise and drops score-0 rows, so the
//!   leg returns exactly the documents within `d` edits of the token, which BM25 on the
//!   typo'd token cannot (a typo scores 0 under BM25). Ties inside the leg are upstream's order;
//!   RRF then rewards documents that match several tokens and the BM25 leg. Tokens are
//!   lowercase, hence `case_sensitive: false`. The attribute needs `fuzzy: true` in its schema
//!   (and `full_text_search` for the BM25 leg); otherwise upstream rejects the query and, since
//!   the expansion is all-or-nothing, the request fails.
//! - **Edit distance `d`.** Requested: `fuzziness` `"auto"` → 1 for tokens of ≤ 5 characters,
//!   2 for longer; or the fixed 0/1/2. Upstream only accepts `min_query_chars ≥ 3·(d+1)` and
//!   matches nothing for shorter queries, so `d` is clamped to the largest distance the token's
//!   length allows: `d = min(requested, chars/3 − 1)` (3–5 chars → 0, 6–8 → ≤ 1, ≥ 9 → ≤ 2).
//!   When `d` is 0 (including 2-character tokens, which no Fuzzy tier accepts) the leg is an
//!   exact-term leg `[attr,"BM25",token]` instead: a distance-0 fuzzy match is an exact match,
//!   and BM25 orders those by relevance instead of a tie. The echo keeps the requested
//!   `fuzziness`.
//! - Every leg gets `top_k = per_leg_limit` and the request's other members verbatim
//!   (`filters` replicated into every leg, `include_attributes`, `exclude_attributes`,
//!   `compute_attributes`, unknown keys); `consistency`, `vector_encoding` and `offset` go to
//!   the root (upstream reads them there only); the caller's `top_k`/`limit` becomes the root
//!   `limit` (10 when absent).
//!
//! Options (fourth element; `null` or absent → defaults; unknown keys → 422): `fuzziness`
//! `"auto" | 0 | 1 | 2`; `rank_constant` integer > 0 (60); `per_leg_limit` integer 1..=10000
//! (`clamp(5 × top_k, 50, 200)`); `threads` integer ≥ 1 (the namespace's scan threads, else 8;
//! only used for sharded fan-out, clamped to the shard count).

use sonic_rs::LazyValue;

use crate::order::{raw_of, unescape};
use crate::respond::{Fuzziness, HybridEcho};
use crate::shard::json_string;
use crate::splice::{is_null, raw_trimmed};
use crate::validate::json_error;
use crate::{Expansion, QueryError};

/// Default RRF constant.
pub const DEFAULT_RANK_CONSTANT: u64 = 60;
/// Default fan-out width when the namespace sets none.
pub const DEFAULT_THREADS: u32 = 8;
/// Upstream's `top_k` ceiling, also the ceiling of `per_leg_limit`.
pub const MAX_TOP_K: u64 = 10_000;

/// `clamp(5 × top_k, 50, 200)`.
#[must_use]
pub fn default_per_leg_limit(top_k: u64) -> u64 {
    top_k.saturating_mul(5).clamp(50, 200)
}

/// The requested edit distance for a token.
#[must_use]
pub fn requested_distance(token: &str, fuzziness: Fuzziness) -> u8 {
    match fuzziness {
        Fuzziness::Auto if token.chars().count() <= 5 => 1,
        Fuzziness::Auto => 2,
        Fuzziness::Fixed(d) => d,
    }
}

/// The distance actually sent: the requested one clamped to what upstream accepts for the
/// token's length (`min_query_chars ≥ 3·(d+1)`).
#[must_use]
pub fn effective_distance(token: &str, fuzziness: Fuzziness) -> u8 {
    let chars = token.chars().count();
    let allowed = u8::try_from((chars / 3).saturating_sub(1))
        .unwrap_or(2)
        .min(2);
    requested_distance(token, fuzziness).min(allowed)
}

/// A parsed Layer expression `[attr, op, input, options?]`.
#[derive(Debug)]
pub(crate) struct Expr<'a> {
    pub op: Expansion,
    /// The attribute's raw JSON string.
    pub attr: &'a str,
    /// The input's raw JSON string (verbatim into the BM25 leg).
    pub input_raw: &'a str,
    /// The unescaped input.
    pub input: String,
    pub options: Option<LazyValue<'a>>,
}

/// Recognises `[attr, "HybridText" | "Auto", ...]`; `Ok(None)` for any other `rank_by`.
pub(crate) fn parse_expr<'a>(rank_by: &LazyValue<'a>) -> Result<Option<Expr<'a>>, QueryError> {
    let Some(iter) = rank_by.clone().into_array_iter() else {
        return Ok(None);
    };
    // At most five are read (more is an error): held inline, no allocation per query. The
    // operator (the second) is looked at first: any other expression's input, an ANN query's
    // vector of thousands of numbers, is not skipped through again here (the body was
    // validated whole before).
    let mut items: smallvec::SmallVec<[LazyValue<'a>; 5]> = smallvec::SmallVec::new();
    let mut op = None;
    for item in iter {
        items.push(item.map_err(|e| json_error(&e, true))?);
        if items.len() == 2 {
            op = match raw_trimmed(&items[1]) {
                "\"HybridText\"" => Some(Expansion::HybridText),
                "\"Auto\"" => Some(Expansion::Auto),
                _ => return Ok(None),
            };
        }
        if items.len() > 4 {
            break;
        }
    }
    // Fewer than two items: no operator.
    let Some(op) = op else {
        return Ok(None);
    };
    let bad = |message: &str| QueryError::MalformedExpression {
        op,
        message: message.to_owned(),
    };
    if items.len() < 3 || items.len() > 4 {
        return Err(bad("expected 3 or 4 elements"));
    }
    let attr = items.first().map(raw_of).unwrap_or_default();
    if !attr.starts_with('"') {
        return Err(bad("the attribute must be a string"));
    }
    let input_raw = items.get(2).map(raw_of).unwrap_or_default();
    let input = match input_raw
        .starts_with('"')
        .then(|| unescape(input_raw))
        .flatten()
    {
        Some(s) => s.into_owned(),
        None => return Err(bad("the input must be a string")),
    };
    let options = items.get(3).filter(|o| !is_null(o)).cloned();
    Ok(Some(Expr {
        op,
        attr,
        input_raw,
        input,
        options,
    }))
}

/// HybridText options, parsed and range-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HybridOptions {
    /// Edit-distance policy.
    pub fuzziness: Fuzziness,
    /// RRF constant.
    pub rank_constant: u64,
    /// Per-leg depth; `None` → [`default_per_leg_limit`].
    pub per_leg_limit: Option<u64>,
    /// Fan-out width; `None` → the namespace default.
    pub threads: Option<u32>,
}

impl Default for HybridOptions {
    fn default() -> Self {
        Self {
            fuzziness: Fuzziness::Auto,
            rank_constant: DEFAULT_RANK_CONSTANT,
            per_leg_limit: None,
            threads: None,
        }
    }
}

/// The members of an expression's options object (`null` members are "not given" and left
/// out), shared by the HybridText and Auto option parsers.
pub(crate) fn option_fields<'a>(
    options: &LazyValue<'a>,
    op: Expansion,
) -> Result<Vec<(String, LazyValue<'a>)>, QueryError> {
    let fields =
        options
            .clone()
            .into_object_iter()
            .ok_or_else(|| QueryError::MalformedExpression {
                op,
                message: "the options must be an object".into(),
            })?;
    let mut out = Vec::new();
    for field in fields {
        let (key, value) = field.map_err(|e| json_error(&e, true))?;
        if raw_trimmed(&value) != "null" {
            out.push((key.to_string(), value));
        }
    }
    Ok(out)
}

/// Parses the options object of a HybridText expression (see the module docs).
pub(crate) fn parse_options(options: Option<&LazyValue<'_>>) -> Result<HybridOptions, QueryError> {
    let op = Expansion::HybridText;
    let mut out = HybridOptions::default();
    let Some(options) = options else {
        return Ok(out);
    };
    for (key, value) in option_fields(options, op)? {
        let raw = raw_trimmed(&value);
        match key.as_str() {
            "fuzziness" => {
                out.fuzziness = match raw {
                    "\"auto\"" => Fuzziness::Auto,
                    "0" => Fuzziness::Fixed(0),
                    "1" => Fuzziness::Fixed(1),
                    "2" => Fuzziness::Fixed(2),
                    _ => return Err(QueryError::option(op, &key, "must be \"auto\", 0, 1 or 2")),
                };
            }
            "rank_constant" => {
                out.rank_constant = positive(raw, u64::MAX)
                    .ok_or_else(|| QueryError::option(op, &key, "must be an integer > 0"))?;
            }
            "per_leg_limit" => {
                out.per_leg_limit = Some(positive(raw, MAX_TOP_K).ok_or_else(|| {
                    QueryError::option(op, &key, "must be an integer > 0 and at most 10000")
                })?);
            }
            "threads" => {
                let t = positive(raw, u64::from(u32::MAX))
                    .ok_or_else(|| QueryError::option(op, &key, "must be an integer >= 1"))?;
                out.threads = u32::try_from(t).ok();
            }
            other => {
                return Err(QueryError::option(
                    op,
                    other,
                    "is unknown (expected fuzziness, rank_constant, per_leg_limit, threads)",
                ));
            }
        }
    }
    Ok(out)
}

/// An integer in `1..=max` written as a plain JSON integer.
pub(crate) fn positive(raw: &str, max: u64) -> Option<u64> {
    raw.parse::<u64>().ok().filter(|n| (1..=max).contains(n))
}

/// The request members copied into every leg, and those that go to the root.
#[derive(Debug, Default)]
pub(crate) struct Members<'a> {
    pub leg: Vec<(String, &'a str)>,
    pub root: Vec<(String, &'a str)>,
}

/// Writes `{"rank_by":<rank_by>,"top_k":<top_k>,<members>}`.
pub(crate) fn write_leg(out: &mut Vec<u8>, rank_by: &str, top_k: u64, members: &Members<'_>) {
    out.extend_from_slice(b"{\"rank_by\":");
    out.extend_from_slice(rank_by.as_bytes());
    out.extend_from_slice(b",\"top_k\":");
    out.extend_from_slice(top_k.to_string().as_bytes());
    for (k, v) in &members.leg {
        out.push(b',');
        out.extend_from_slice(json_string(k).as_bytes());
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b'}');
}

/// The `rank_by` of one token's leg (fuzzy, or exact BM25 when the distance clamps to 0).
#[must_use]
pub fn token_rank_by(attr_json: &str, token: &str, fuzziness: Fuzziness) -> String {
    let token_json = json_string(token);
    match effective_distance(token, fuzziness) {
        0 => format!("[{attr_json},\"BM25\",{token_json}]"),
        d => format!(
            "[{attr_json},\"Fuzzy\",{token_json},{{\"max_edit_distance\":[{{\"min_query_chars\":{},\"distance\":{d}}}],\"case_sensitive\":false}}]",
            3 * (u32::from(d) + 1)
        ),
    }
}

/// Everything needed to write an expansion body.
pub(crate) struct ExpansionBody<'a, 'm> {
    pub expr: &'a Expr<'a>,
    pub tokens: &'a [String],
    pub fuzziness: Fuzziness,
    pub per_leg_limit: u64,
    pub rank_constant: u64,
    pub limit: u64,
    pub members: &'m Members<'a>,
    /// `[vector_attr,"ANN",<vector>]` for the fused route's last leg.
    pub ann: Option<String>,
}

/// Writes the fused multi-query body; returns the number of legs.
pub(crate) fn write_expansion(b: &ExpansionBody<'_, '_>, out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(b"{\"queries\":[");
    let bm25 = format!("[{},\"BM25\",{}]", b.expr.attr, b.expr.input_raw);
    write_leg(out, &bm25, b.per_leg_limit, b.members);
    let mut legs = 1;
    for token in b.tokens {
        out.push(b',');
        write_leg(
            out,
            &token_rank_by(b.expr.attr, token, b.fuzziness),
            b.per_leg_limit,
            b.members,
        );
        legs += 1;
    }
    if let Some(ann) = &b.ann {
        out.push(b',');
        write_leg(out, ann, b.per_leg_limit, b.members);
        legs += 1;
    }
    out.extend_from_slice(b"],\"rerank_by\":[\"RRF\",{\"rank_constant\":");
    out.extend_from_slice(b.rank_constant.to_string().as_bytes());
    out.extend_from_slice(b"}],\"limit\":");
    out.extend_from_slice(b.limit.to_string().as_bytes());
    for (k, v) in &b.members.root {
        out.push(b',');
        out.extend_from_slice(json_string(k).as_bytes());
        out.push(b':');
        out.extend_from_slice(v.as_bytes());
    }
    out.push(b'}');
    legs
}

/// The echo block for an expansion.
pub(crate) fn echo(
    tokens: Vec<String>,
    tokens_dropped: usize,
    options: &HybridOptions,
    per_leg_limit: u64,
    legs: usize,
    threads: Option<u32>,
) -> HybridEcho {
    HybridEcho {
        tokens,
        tokens_dropped,
        fuzziness: options.fuzziness,
        rank_constant: options.rank_constant,
        legs,
        per_leg_limit,
        threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operator is read before the rest: past a non-expansion operator nothing is read
    /// (here the rest is not even JSON, so reading it would fail); past an expansion's, it is.
    #[test]
    fn only_an_expansions_items_are_read_past_the_operator() {
        use serde::Deserialize as _;
        let lazy = |text| {
            LazyValue::deserialize(serde::de::value::BorrowedStrDeserializer::<
                serde::de::value::Error,
            >::new(text))
            .unwrap()
        };
        assert!(matches!(
            parse_expr(&lazy(r#"["v","ANN",[1,2}}}"#)),
            Ok(None)
        ));
        assert!(parse_expr(&lazy(r#"["c","HybridText",[1,2}}}"#)).is_err());
    }

    #[test]
    fn distances() {
        assert_eq!(requested_distance("pods", Fuzziness::Auto), 1);
        assert_eq!(requested_distance("timout", Fuzziness::Auto), 2);
        assert_eq!(effective_distance("timout", Fuzziness::Auto), 1);
        assert_eq!(effective_distance("kubernets", Fuzziness::Auto), 2);
        assert_eq!(effective_distance("pods", Fuzziness::Auto), 0);
        assert_eq!(effective_distance("go", Fuzziness::Fixed(2)), 0);
        assert_eq!(effective_distance("kubernets", Fuzziness::Fixed(1)), 1);
        assert_eq!(
            effective_distance("kubernetes-long", Fuzziness::Fixed(0)),
            0
        );
        assert_eq!(default_per_leg_limit(10), 50);
        assert_eq!(default_per_leg_limit(20), 100);
        assert_eq!(default_per_leg_limit(1000), 200);
        assert_eq!(default_per_leg_limit(u64::MAX), 200);
    }

    #[test]
    fn token_legs() {
        assert_eq!(
            token_rank_by("\"content\"", "timout", Fuzziness::Auto),
            r#"["content","Fuzzy","timout",{"max_edit_distance":[{"min_query_chars":6,"distance":1}],"case_sensitive":false}]"#
        );
        assert_eq!(
            token_rank_by("\"content\"", "pods", Fuzziness::Auto),
            r#"["content","BM25","pods"]"#
        );
    }

    fn opts(raw: &str) -> Result<HybridOptions, QueryError> {
        let v: LazyValue<'_> = sonic_rs::from_str(raw).unwrap();
        parse_options(Some(&v))
    }

    #[test]
    fn option_ranges() {
        assert_eq!(opts("{}").unwrap(), HybridOptions::default());
        let o = opts(r#"{"fuzziness":2,"rank_constant":1,"per_leg_limit":7,"threads":3}"#).unwrap();
        assert_eq!(o.fuzziness, Fuzziness::Fixed(2));
        assert_eq!(
            (o.rank_constant, o.per_leg_limit, o.threads),
            (1, Some(7), Some(3))
        );
        assert_eq!(
            opts(r#"{"per_leg_limit":null}"#).unwrap().per_leg_limit,
            None
        );
        for bad in [
            r#"{"fuzziness":3}"#,
            r#"{"fuzziness":"AUTO"}"#,
            r#"{"fuzziness":1.0}"#,
            r#"{"rank_constant":0}"#,
            r#"{"rank_constant":-5}"#,
            r#"{"rank_constant":2.5}"#,
            r#"{"per_leg_limit":0}"#,
            r#"{"per_leg_limit":10001}"#,
            r#"{"threads":0}"#,
            r#"{"threads":"4"}"#,
            r#"{"fuzzines":1}"#,
        ] {
            let e = opts(bad).unwrap_err();
            assert!(matches!(e, QueryError::InvalidOption { .. }), "{bad}: {e}");
            assert_eq!(e.status_code(), 422);
        }
        assert!(matches!(
            opts("[1]").unwrap_err(),
            QueryError::MalformedExpression { .. }
        ));
    }
}
