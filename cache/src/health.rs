//! Health view of a shared tier: `warm` / `cold` / `disabled` plus a reconnect generation.
//!
//! The gateway reads it for `/health`, for the `cache_cold` 503 on warm jobs and chunk reads, and
//! to notice a tier that came back (the generation increases on every cold → warm transition,
//! so "cold starts" can be counted without tracking history).

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

/// Coarse state of a tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheState {
    /// Serving.
    Warm,
    /// Configured but failing (I/O errors, backend down, thread gone).
    Cold,
    /// Configured off.
    Disabled,
}

impl CacheState {
    /// `"warm"`, `"cold"` or `"disabled"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheState::Warm => "warm",
            CacheState::Cold => "cold",
            CacheState::Disabled => "disabled",
        }
    }
}

/// A point-in-time copy of a tier's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    /// Current state.
    pub state: CacheState,
    /// Incremented on every cold → warm transition (a reconnect, or recovery after errors).
    pub reconnect_generation: u64,
}

/// Lock-free health tracker shared between a tier's front end and its I/O side.
///
/// Goes `cold` after `threshold` consecutive tier failures and back to `warm` on the next
/// success, so one failed read does not flip the state but a dead disk does.
#[derive(Debug)]
pub struct HealthCell {
    state: AtomicU8,
    reconnects: AtomicU64,
    consecutive_errors: AtomicU32,
    threshold: u32,
}

const WARM: u8 = 0;
const COLD: u8 = 1;
const DISABLED: u8 = 2;

impl HealthCell {
    /// A tracker in `state` that turns cold after `threshold` consecutive failures (min 1).
    pub fn new(state: CacheState, threshold: u32) -> Self {
        HealthCell {
            state: AtomicU8::new(encode(state)),
            reconnects: AtomicU64::new(0),
            consecutive_errors: AtomicU32::new(0),
            threshold: threshold.max(1),
        }
    }

    /// Records a successful operation (cold → warm bumps the reconnect generation).
    pub fn record_ok(&self) {
        self.consecutive_errors.store(0, Ordering::Relaxed);
        if self
            .state
            .compare_exchange(COLD, WARM, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.reconnects.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Records a failed operation; turns cold once the threshold is reached.
    pub fn record_err(&self) {
        let n = self.consecutive_errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold {
            self.mark_cold();
        }
    }

    /// Forces `cold` now (thread exit, lost connection).
    pub fn mark_cold(&self) {
        let _ = self
            .state
            .compare_exchange(WARM, COLD, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// A copy of the current view.
    pub fn snapshot(&self) -> Health {
        Health {
            state: decode(self.state.load(Ordering::Acquire)),
            reconnect_generation: self.reconnects.load(Ordering::Acquire),
        }
    }
}

fn encode(s: CacheState) -> u8 {
    match s {
        CacheState::Warm => WARM,
        CacheState::Cold => COLD,
        CacheState::Disabled => DISABLED,
    }
}

fn decode(v: u8) -> CacheState {
    match v {
        WARM => CacheState::Warm,
        COLD => CacheState::Cold,
        _ => CacheState::Disabled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_after_threshold_and_back_with_generation() {
        let h = HealthCell::new(CacheState::Warm, 2);
        h.record_err();
        assert_eq!(h.snapshot().state, CacheState::Warm);
        h.record_err();
        assert_eq!(h.snapshot().state, CacheState::Cold);
        h.record_ok();
        assert_eq!(
            h.snapshot(),
            Health {
                state: CacheState::Warm,
                reconnect_generation: 1
            }
        );
        let d = HealthCell::new(CacheState::Disabled, 1);
        d.record_err();
        d.record_ok();
        assert_eq!(d.snapshot().state, CacheState::Disabled);
    }
}
