//! [`QueryError`]: why a Layer query could not be planned, or upstream responses not merged.
//!
//! Kept apart from [`RewriteError`] (the body-level validation errors, wrapped here as
//! [`QueryError::Rewrite`]) so the query-expansion rules can grow without touching the write
//! path. Messages are lowercase human text for the `message` field of Layer's error body
//! `{"error": <error_code>, "message": ...}`; the 422 messages name the condition and say why,
//! following the Validation tables of `spec/api_query.md`.

use std::fmt;

use thiserror::Error;

use crate::RewriteError;

/// Which Layer-only `rank_by` expression an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expansion {
    /// `[attr, "HybridText", input, options?]`.
    HybridText,
    /// `[attr, "Auto", input, options?]`.
    Auto,
}

impl fmt::Display for Expansion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HybridText => "HybridText",
            Self::Auto => "Auto",
        })
    }
}

/// Why a query could not be planned (4xx) or its upstream responses not gathered (5xx).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    /// Body-level validation (size, JSON, duplicate keys, depth, ...): status from
    /// [`RewriteError::status_code`].
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
    /// 422: the input string yields zero tokens under the tokenizer policy.
    #[error("the {op} input yields no tokens under the tokenizer policy (words of 2 or more characters): nothing to {verb}", verb = if matches!(op, Expansion::HybridText) { "expand" } else { "route" })]
    NoTokens {
        /// The expression.
        op: Expansion,
    },
    /// 422: `cursor` combined with `HybridText` / `Auto`.
    #[error(
        "cursor cannot be combined with {op}: fused scores do not form the monotone bands pagination relies on"
    )]
    CursorWithExpansion {
        /// The expression.
        op: Expansion,
    },
    /// 422: `HybridText` / `Auto` inside a `queries` array.
    #[error(
        "{op} cannot be used inside a queries array (queries[{leg}]): the expansion is one multi-query deep by construction"
    )]
    ExpansionInQueries {
        /// The expression.
        op: Expansion,
        /// Index of the offending leg.
        leg: usize,
    },
    /// 422: an option of the fourth tuple element is out of range or unknown.
    #[error("{op} option `{option}` {message}")]
    InvalidOption {
        /// The expression.
        op: Expansion,
        /// The option name as sent.
        option: String,
        /// What is wrong, e.g. `must be an integer > 0`.
        message: String,
    },
    /// 422: the `rank_by` tuple itself is malformed (attribute or input not a string, ...).
    #[error("{op} rank_by must be [attribute, \"{op}\", input string, options?]: {message}")]
    MalformedExpression {
        /// The expression.
        op: Expansion,
        /// What is wrong.
        message: String,
    },
    /// 422: `Auto` forced to `semantic` / `fused` without a `vector`.
    #[error(
        "route \"{route}\" was forced without a vector: forcing asserts you have the vector; only auto-routing defers"
    )]
    ForcedRouteWithoutVector {
        /// `semantic` or `fused`.
        route: &'static str,
    },
    /// 422: a query vector's dimensionality differs from the namespace's.
    #[error("vector has {got} dimensions but the namespace's vectors have {expected}")]
    VectorDimensions {
        /// The namespace's dimensionality.
        expected: usize,
        /// The query vector's.
        got: usize,
    },
    /// 422: a query vector is not an array of numbers or a base64 string of f32s.
    #[error("{field} must be an array of numbers or a base64 string of little-endian f32s")]
    BadVector {
        /// Which field (`vector`, `Auto option vector`).
        field: &'static str,
    },
    /// 422: both `vector` and `nearest_to_id`.
    #[error("send exactly one of vector and nearest_to_id, not both")]
    VectorAndNearestToId,
    /// 422: `nearest_to_id` is empty (or not an array of ids).
    #[error("nearest_to_id must be a non-empty array of document ids")]
    EmptyNearestToId,
    /// 422: neither `vector`, `nearest_to_id` nor `rank_by` (nor `aggregate_by`).
    #[error("exactly one of vector and nearest_to_id is required when the query has no rank_by")]
    NoRanking,
    /// 422: `vector` / `nearest_to_id` next to an explicit `rank_by`.
    #[error("{field} cannot be combined with rank_by: both choose the ranking")]
    RankingConflict {
        /// `vector` or `nearest_to_id`.
        field: &'static str,
    },
    /// 422: `cursor` in a multi-query body (top level, or leg `Some(i)`).
    #[error("cursor is not accepted in a multi-query{}: pagination is single-query only", leg.map(|i| format!(" (queries[{i}])")).unwrap_or_default())]
    CursorInMultiQuery {
        /// `None` for the top level.
        leg: Option<usize>,
    },
    /// 422: a multi-query with fewer than 2 or more than 16 legs.
    #[error("a multi-query must contain 2 to 16 queries, got {got}")]
    LegCount {
        /// How many legs were sent.
        got: usize,
    },
    /// 422: a field Layer recognises but does not implement yet.
    #[error("{field} is not supported yet: {why}")]
    Unsupported {
        /// The field.
        field: &'static str,
        /// Why, and what to do instead.
        why: &'static str,
    },
    /// 422: another shape problem in a Layer query field.
    #[error("{message}")]
    Invalid {
        /// Which field and what was expected.
        message: String,
    },
    /// 500: the gateway handed a non-finite or empty centroid to the `nearest_to_id` hook.
    #[error("internal error: the resolved nearest_to_id centroid is empty or not finite")]
    BadCentroid,
    /// 502: an upstream response could not be parsed or merged.
    #[error("upstream response could not be merged: {message}")]
    BadUpstreamResponse {
        /// What was wrong.
        message: String,
    },
}

impl QueryError {
    /// The HTTP status: 422 for every Layer validation rule, [`RewriteError::status_code`] for
    /// body-level errors, 500 for [`QueryError::BadCentroid`], 502 for
    /// [`QueryError::BadUpstreamResponse`].
    #[must_use]
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Rewrite(e) => e.status_code(),
            Self::BadCentroid => 500,
            Self::BadUpstreamResponse { .. } => 502,
            _ => 422,
        }
    }

    /// The stable `error` code: [`RewriteError::error_code`] for body errors, `internal_error`
    /// (500), `upstream_error` (502), `validation_error` otherwise.
    #[must_use]
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::Rewrite(e) => e.error_code(),
            Self::BadCentroid => "internal_error",
            Self::BadUpstreamResponse { .. } => "upstream_error",
            _ => "validation_error",
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
        }
    }

    /// An upstream response as text, for sonic-rs's serde path: it must never see bytes that
    /// are not UTF-8 (it makes borrowed keys with `from_utf8_unchecked`, checked by a
    /// `debug_assert` only); 502 when they are not UTF-8.
    pub(crate) fn utf8_response(body: &[u8]) -> Result<&str, QueryError> {
        std::str::from_utf8(body).map_err(|_| Self::upstream("response is not UTF-8"))
    }

    pub(crate) fn upstream(message: impl Into<String>) -> Self {
        Self::BadUpstreamResponse {
            message: message.into(),
        }
    }

    pub(crate) fn option(op: Expansion, option: &str, message: impl Into<String>) -> Self {
        Self::InvalidOption {
            op,
            option: option.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(QueryError::NoRanking.status_code(), 422);
        assert_eq!(QueryError::NoRanking.error_code(), "validation_error");
        assert_eq!(QueryError::BadCentroid.status_code(), 500);
        assert_eq!(QueryError::upstream("x").status_code(), 502);
        assert_eq!(QueryError::upstream("x").error_code(), "upstream_error");
        let e = QueryError::from(RewriteError::Oversize { len: 2, max: 1 });
        assert_eq!(
            (e.status_code(), e.error_code()),
            (413, "payload_too_large")
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            QueryError::NoTokens {
                op: Expansion::Auto
            }
            .to_string(),
            "the Auto input yields no tokens under the tokenizer policy (words of 2 or more characters): nothing to route"
        );
        assert_eq!(
            QueryError::CursorInMultiQuery { leg: Some(1) }.to_string(),
            "cursor is not accepted in a multi-query (queries[1]): pagination is single-query only"
        );
        assert_eq!(
            QueryError::option(
                Expansion::HybridText,
                "rank_constant",
                "must be an integer > 0"
            )
            .to_string(),
            "HybridText option `rank_constant` must be an integer > 0"
        );
    }
}
