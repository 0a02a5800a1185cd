//! The crate's single error type, [`RewriteError`], and the HTTP status each variant should map to.
//!
//! Every message is lowercase human text meant for the `message` field of Layer's error body
//! `{"error":"validation_error","message":...}`; [`RewriteError::status_code`] and
//! [`RewriteError::error_code`] tell the gateway's one error-mapping function what to answer.

use thiserror::Error;

/// Why a body could not be validated or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RewriteError {
    /// The body is larger than [`crate::Limits::max_body_bytes`]. Maps to 413.
    #[error("request body is {len} bytes, larger than the {max} byte limit")]
    Oversize {
        /// Length of the rejected body.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The body is not valid JSON (syntax, invalid UTF-8, trailing characters). Maps to 400.
    #[error("invalid JSON: {message}")]
    InvalidJson {
        /// What the parser objected to and where.
        message: String,
    },
    /// The body is valid JSON but its top level is not an object. Maps to 422.
    #[error("request body must be a JSON object")]
    NotAnObject,
    /// Some object in the body (at any depth) repeats a key. Maps to 422.
    ///
    /// Rejected because parsers disagree on which copy wins: `{"filters":A,"filters":B}` would
    /// let a caller smuggle a second, uninspected filter past the gateway.
    #[error("duplicate key \"{key}\" in {path}")]
    DuplicateKey {
        /// The repeated key, unescaped.
        key: String,
        /// Where the object sits, e.g. `upsert_rows[2]` or `the top-level object`.
        path: String,
    },
    /// Arrays and objects nest deeper than [`crate::Limits::max_depth`]. Maps to 400.
    #[error("JSON nesting is deeper than the {max} level limit")]
    TooDeep {
        /// The configured limit.
        max: usize,
    },
    /// A caller tried to set an attribute with the reserved `_hevlayer_` prefix. Maps to 422.
    #[error("attribute \"{attribute}\" uses the reserved _hevlayer_ prefix")]
    ReservedAttribute {
        /// The offending attribute name, unescaped.
        attribute: String,
    },
    /// A write body carries none of the recognised write operations. Maps to 422.
    #[error(
        "no recognised write operation: expected one of upsert_rows, upsert_columns, patch_rows, \
         patch_columns, deletes, delete_by_filter, patch_by_filter, copy_from_namespace, \
         branch_from_namespace, schema"
    )]
    NoWriteOperation,
    /// A field the rewriter must edit has the wrong shape (e.g. `upsert_rows` is not an array,
    /// `upsert_columns` has no `id` column, a sub-query is not an object). Maps to 422.
    #[error("{message}")]
    Malformed {
        /// Which field and what was expected.
        message: String,
    },
    /// The predicate handed to [`crate::inject_filter`] is not a valid JSON value: a gateway bug,
    /// never the caller's fault. Maps to 500.
    #[error("invalid injected filter predicate: {message}")]
    InvalidPredicate {
        /// What the parser objected to.
        message: String,
    },
    /// The splicer's own bookkeeping failed; should be unreachable. Maps to 500.
    #[error("internal rewrite error: {message}")]
    Internal {
        /// What went wrong.
        message: &'static str,
    },
}

impl RewriteError {
    /// The HTTP status the gateway should answer with.
    ///
    /// | variant | status |
    /// |---|---|
    /// | `Oversize` | 413 |
    /// | `InvalidJson`, `TooDeep` | 400 (upstream answers JSON syntax errors with 400) |
    /// | `NotAnObject`, `DuplicateKey`, `ReservedAttribute`, `NoWriteOperation`, `Malformed` | 422 |
    /// | `InvalidPredicate`, `Internal` | 500 |
    #[must_use]
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Oversize { .. } => 413,
            Self::InvalidJson { .. } | Self::TooDeep { .. } => 400,
            Self::NotAnObject
            | Self::DuplicateKey { .. }
            | Self::ReservedAttribute { .. }
            | Self::NoWriteOperation
            | Self::Malformed { .. } => 422,
            Self::InvalidPredicate { .. } | Self::Internal { .. } => 500,
        }
    }

    /// Whether the body is simply not a usable request (bad JSON, not an object, a field of the
    /// wrong shape), as opposed to one Layer refuses on purpose (duplicate keys, reserved
    /// attributes, limits). Upstream rejects such bodies itself, so the gateway may forward them
    /// untouched and relay upstream's own error, which is what Turbopuffer clients expect.
    #[must_use]
    pub fn upstream_would_reject(&self) -> bool {
        matches!(
            self,
            Self::InvalidJson { .. } | Self::NotAnObject | Self::Malformed { .. }
        )
    }

    /// The stable `error` code for Layer's error body: `payload_too_large` for 413,
    /// `internal_error` for 500, `validation_error` for everything else.
    #[must_use]
    pub fn error_code(&self) -> &'static str {
        match self.status_code() {
            413 => "payload_too_large",
            500 => "internal_error",
            _ => "validation_error",
        }
    }

    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Self::Malformed {
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let oversize = RewriteError::Oversize { len: 10, max: 5 };
        assert_eq!(oversize.status_code(), 413);
        assert_eq!(oversize.error_code(), "payload_too_large");
        assert_eq!(RewriteError::NoWriteOperation.status_code(), 422);
        assert_eq!(
            RewriteError::NoWriteOperation.error_code(),
            "validation_error"
        );
        assert_eq!(RewriteError::TooDeep { max: 64 }.status_code(), 400);
        let internal = RewriteError::Internal { message: "x" };
        assert_eq!(internal.error_code(), "internal_error");
    }

    #[test]
    fn messages_are_lowercase_human_text() {
        let e = RewriteError::ReservedAttribute {
            attribute: "_hevlayer_x".into(),
        };
        assert_eq!(
            e.to_string(),
            "attribute \"_hevlayer_x\" uses the reserved _hevlayer_ prefix"
        );
        let e = RewriteError::DuplicateKey {
            key: "filters".into(),
            path: "the top-level object".into(),
        };
        assert_eq!(
            e.to_string(),
            "duplicate key \"filters\" in the top-level object"
        );
    }
}
