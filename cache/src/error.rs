//! [`CacheError`]: every way a cache operation can fail. All of them are soft — the gateway maps
//! any of them to "serve from origin" (`x-layer-cache: miss-on-error`), never to an error response.

use std::io;

/// A failed cache operation. `Clone` so one coalesced failure can be handed to every waiter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The tier is configured off.
    #[error("cache disabled")]
    Disabled,
    /// The tier is not serving (its I/O thread stopped, or a backend is not connected).
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    /// A disk operation failed.
    #[error("cache i/o error during {op}: {kind}: {message}")]
    Io {
        /// What the tier was doing (`read`, `write`, `open`, ...).
        op: &'static str,
        /// The OS error kind.
        kind: io::ErrorKind,
        /// The OS error text.
        message: String,
    },
    /// A stored record failed its checksum or framing checks; the entry has been dropped.
    #[error("corrupt cache record: {0}")]
    Corrupt(String),
    /// The value exceeds what the tier stores.
    #[error("value too large for the cache: {len} bytes (max {max})")]
    ValueTooLarge {
        /// Value length in bytes.
        len: usize,
        /// The tier's limit.
        max: usize,
    },
    /// A namespace or id longer than the record format allows.
    #[error("cache key too long: {len} bytes (max {max})")]
    KeyTooLong {
        /// The offending length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A failure injected by a test ([`crate::FaultyTier`], [`crate::NvmeTier::fail_next`]).
    #[error("injected cache fault")]
    Injected,
    /// The backend (e.g. Aerospike) reported an error.
    #[error("cache backend error: {0}")]
    Backend(String),
    /// The tier dropped the request without answering (shutting down).
    #[error("cache request cancelled")]
    Cancelled,
}

impl CacheError {
    /// Builds an [`CacheError::Io`] from an OS error.
    pub fn io(op: &'static str, err: &io::Error) -> Self {
        CacheError::Io {
            op,
            kind: err.kind(),
            message: err.to_string(),
        }
    }

    /// Short label for metrics (`layer_cache_errors_total{kind=...}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            CacheError::Disabled => "disabled",
            CacheError::Unavailable(_) => "unavailable",
            CacheError::Io { .. } => "io",
            CacheError::Corrupt(_) => "corrupt",
            CacheError::ValueTooLarge { .. } => "value_too_large",
            CacheError::KeyTooLong { .. } => "key_too_long",
            CacheError::Injected => "injected",
            CacheError::Backend(_) => "backend",
            CacheError::Cancelled => "cancelled",
        }
    }

    /// Whether this failure says something about the tier's health (as opposed to the request,
    /// like an oversized value). Only these move [`crate::HealthCell`] towards `cold`.
    pub fn is_tier_failure(&self) -> bool {
        !matches!(
            self,
            CacheError::ValueTooLarge { .. } | CacheError::KeyTooLong { .. }
        )
    }
}
