//! `Auto` routing: `rank_by: [attr, "Auto", input, {route?, vector?}]`.
//!
//! Policy `v1` reads the token count of the input under the tokenizer policy
//! ([`crate::tokens`], cap 15): ≤ 2 tokens → `hybrid_text`, 3–7 → `fused`, ≥ 8 → `semantic`.
//! A supplied `route` (`"hybrid_text"`, `"semantic"`, `"fused"`; `"auto"` or `null` = apply the
//! policy) forces the route and reports `policy: "forced"`.
//!
//! Execution (planned in [`crate::layer_query`]):
//!
//! - `hybrid_text`: exactly the [`crate::hybrid`] expansion with default options, plus the
//!   `hybrid` echo; a supplied `vector` is ignored (but still dimension-checked).
//! - `semantic`: one single-query body `{"rank_by":[<vector attribute>,"ANN",<vector>],
//!   "top_k":<top_k>,<members>}` with the vector copied verbatim (array or base64); response
//!   rows carry `$dist`. No `hybrid` echo.
//! - `fused`: the hybrid expansion (BM25 leg, one leg per token) plus one last leg
//!   `{"rank_by":[<vector attribute>,"ANN",<vector>],"top_k":<per_leg_limit>,<members>}`, all
//!   fused by `rerank_by: ["RRF",{"rank_constant":60}]`. Tokens are capped at 14 on this route
//!   so the fused query stays within upstream's 16 sub-queries (only reachable when forced:
//!   `v1` sends at most 7 tokens here); the cut ones count in `tokens_dropped`.
//! - Deferral: `semantic`/`fused` chosen by the policy without a `vector` → no upstream call,
//!   `{"rows":[],"routing":{...,"executed":false}}`. Forced without a vector → 422.
//!
//! Vectors: an array of numbers, or a base64 string of little-endian f32s (as upstream accepts).
//! When the namespace's dimensionality is known its mismatch is a 422.

use sonic_rs::LazyValue;

use crate::order::raw_of;
use crate::respond::Route;
use crate::splice::raw_trimmed;
use crate::{Expansion, QueryError};

/// The routing policy version.
pub const POLICY_V1: &str = "v1";
/// The `policy` value of a forced route.
pub const POLICY_FORCED: &str = "forced";
/// Token cap on the fused route (16 − the BM25 leg − the ANN leg).
pub const FUSED_MAX_TOKENS: usize = 14;

/// The v1 policy.
#[must_use]
pub fn route_v1(tokens: usize) -> Route {
    match tokens {
        0..=2 => Route::HybridText,
        3..=7 => Route::Fused,
        _ => Route::Semantic,
    }
}

/// Parsed `Auto` options.
#[derive(Debug, Default)]
pub(crate) struct AutoOptions<'a> {
    pub route: Option<Route>,
    /// Raw JSON of the vector.
    pub vector: Option<&'a str>,
}

pub(crate) fn parse_auto_options<'a>(
    options: Option<&LazyValue<'a>>,
) -> Result<AutoOptions<'a>, QueryError> {
    let op = Expansion::Auto;
    let mut out = AutoOptions::default();
    let Some(options) = options else {
        return Ok(out);
    };
    for (key, value) in crate::hybrid::option_fields(options, op)? {
        let raw = raw_trimmed(&value);
        match key.as_str() {
            "route" => {
                out.route = match raw {
                    "\"auto\"" => None,
                    "\"hybrid_text\"" => Some(Route::HybridText),
                    "\"semantic\"" => Some(Route::Semantic),
                    "\"fused\"" => Some(Route::Fused),
                    _ => {
                        return Err(QueryError::option(
                            op,
                            "route",
                            "must be \"auto\", \"hybrid_text\", \"semantic\" or \"fused\"",
                        ));
                    }
                };
            }
            "vector" => out.vector = Some(raw_of(&value)),
            other => {
                return Err(QueryError::option(
                    op,
                    other,
                    "is unknown (expected route, vector)",
                ));
            }
        }
    }
    Ok(out)
}

/// Checks a query vector's shape and returns its dimensionality; with `expected`, a mismatch is
/// [`QueryError::VectorDimensions`].
pub(crate) fn check_vector(
    raw: &str,
    field: &'static str,
    expected: Option<usize>,
) -> Result<usize, QueryError> {
    let dims = vector_dims(raw).ok_or(QueryError::BadVector { field })?;
    match expected {
        Some(e) if e != dims => Err(QueryError::VectorDimensions {
            expected: e,
            got: dims,
        }),
        _ => Ok(dims),
    }
}

fn vector_dims(raw: &str) -> Option<usize> {
    let raw = raw.trim();
    if raw.starts_with('[') {
        let mut n = 0usize;
        for item in sonic_rs::to_array_iter(raw) {
            let item = item.ok()?;
            let text = raw_trimmed(&item);
            if !text.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
                return None;
            }
            n += 1;
        }
        return (n > 0).then_some(n);
    }
    // Base64 of little-endian f32s: 4 bytes per dimension.
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    let body = inner.trim_end_matches('=');
    if body.is_empty()
        || inner.len() - body.len() > 2
        || !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return None;
    }
    let bytes = body.len() * 3 / 4;
    (body.len() % 4 != 1 && bytes % 4 == 0).then_some(bytes / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table() {
        for (tokens, route) in [
            (0, Route::HybridText),
            (1, Route::HybridText),
            (2, Route::HybridText),
            (3, Route::Fused),
            (7, Route::Fused),
            (8, Route::Semantic),
            (15, Route::Semantic),
        ] {
            assert_eq!(route_v1(tokens), route, "{tokens}");
        }
    }

    #[test]
    fn vectors() {
        assert_eq!(vector_dims("[0.1, -2, 3e-4]"), Some(3));
        assert_eq!(vector_dims("[]"), None);
        assert_eq!(vector_dims("[\"a\"]"), None);
        assert_eq!(vector_dims("{}"), None);
        // [0.1, 0.2, 0.3] as LE f32 (the Python SDK's example).
        assert_eq!(vector_dims("\"zczMPc3MTD6amZk+\""), Some(3));
        assert_eq!(vector_dims("\"zczMPQ==\""), Some(1));
        assert_eq!(vector_dims("\"zczM\""), None);
        assert_eq!(vector_dims("\"!!!!\""), None);
        assert_eq!(
            check_vector("[1,2]", "vector", Some(3)).unwrap_err(),
            QueryError::VectorDimensions {
                expected: 3,
                got: 2
            }
        );
        assert_eq!(check_vector("[1,2]", "vector", None).unwrap(), 2);
    }
}
