//! Scheduler math: the measurement window and the open-loop arrival schedule.
//!
//! All times are offsets from the run's start instant `t0`.
//!
//! * A run is `warmup` followed by `duration`; it ends at `end = warmup + duration`.
//! * A request is **measured** when its *scheduled* start lies in `[warmup, end)`. Requests
//!   scheduled earlier only warm connections and caches. Requests scheduled inside the window are
//!   always awaited (up to the request timeout), even when they finish after `end`, so a slow tail
//!   at the end of the run is counted rather than cut off.
//! * Throughput is `measured completions / duration`.
//!
//! Open loop (constant arrival rate): request `i` (0-based) is scheduled at `i / rate` seconds,
//! whatever happened to the requests before it. Connections take the next ticket as soon as they
//! are free; when all are busy the schedule keeps running, so latency is measured from the
//! scheduled time and includes the queueing a real client population would see. That is what
//! avoids coordinated omission. Closed loop (fixed concurrency): each connection sends its next
//! request as soon as the previous response is read, so the scheduled time is the send time.

use std::time::Duration;

/// Warm-up plus measured duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Time before measurement starts.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
}

impl Window {
    /// Offset at which no further request is scheduled.
    pub fn end(&self) -> Duration {
        self.warmup + self.duration
    }

    /// Whether a request scheduled at `at` is measured.
    pub fn is_measured(&self, at: Duration) -> bool {
        at >= self.warmup && at < self.end()
    }

    /// Whether a request may still be scheduled at `at`.
    pub fn is_open(&self, at: Duration) -> bool {
        at < self.end()
    }
}

/// Constant arrival rate schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenSchedule {
    rate: f64,
}

impl OpenSchedule {
    /// `rate` requests per second; must be finite and positive.
    pub fn new(rate: f64) -> Result<Self, String> {
        if !rate.is_finite() || rate <= 0.0 {
            return Err(format!("rate must be a positive number, got {rate}"));
        }
        Ok(OpenSchedule { rate })
    }

    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Scheduled offset of ticket `i` (0-based), rounded to the nearest nanosecond.
    pub fn offset(&self, i: u64) -> Duration {
        let nanos = (i as f64 * 1e9 / self.rate).round();
        if nanos >= u64::MAX as f64 {
            Duration::MAX
        } else {
            Duration::from_nanos(nanos as u64)
        }
    }

    /// Number of tickets scheduled strictly before `t`, consistent with [`Self::offset`].
    pub fn tickets_before(&self, t: Duration) -> u64 {
        let mut n = (t.as_secs_f64() * self.rate).ceil().max(0.0) as u64;
        // Correct any floating-point disagreement with `offset` by at most a step or two.
        while n > 0 && self.offset(n - 1) >= t {
            n -= 1;
        }
        while self.offset(n) < t {
            n += 1;
        }
        n
    }

    /// How many tickets a window schedules and measures: `(total, measured)`.
    pub fn counts(&self, w: &Window) -> (u64, u64) {
        let total = self.tickets_before(w.end());
        let warm = self.tickets_before(w.warmup);
        (total, total - warm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn window_boundaries() {
        let w = Window {
            warmup: ms(2000),
            duration: ms(10_000),
        };
        assert_eq!(w.end(), ms(12_000));
        assert!(!w.is_measured(ms(0)));
        assert!(!w.is_measured(ms(1999)));
        assert!(w.is_measured(ms(2000)));
        assert!(w.is_measured(ms(11_999)));
        assert!(!w.is_measured(ms(12_000)));
        assert!(w.is_open(ms(11_999)));
        assert!(!w.is_open(ms(12_000)));
        let no_warm = Window {
            warmup: Duration::ZERO,
            duration: ms(1),
        };
        assert!(no_warm.is_measured(Duration::ZERO));
    }

    #[test]
    fn offsets_are_evenly_spaced() {
        let s = OpenSchedule::new(1000.0).unwrap();
        assert_eq!(s.offset(0), Duration::ZERO);
        assert_eq!(s.offset(1), Duration::from_micros(1000));
        assert_eq!(s.offset(2500), ms(2500));
        let s = OpenSchedule::new(3.0).unwrap();
        assert_eq!(s.offset(3), ms(1000));
        assert_eq!(s.offset(1), Duration::from_nanos(333_333_333));
        let slow = OpenSchedule::new(0.5).unwrap();
        assert_eq!(slow.offset(1), ms(2000));
        assert!(OpenSchedule::new(0.0).is_err());
        assert!(OpenSchedule::new(-1.0).is_err());
        assert!(OpenSchedule::new(f64::INFINITY).is_err());
    }

    #[test]
    fn counts_match_rate_times_duration() {
        let w = Window {
            warmup: ms(1000),
            duration: ms(2000),
        };
        let s = OpenSchedule::new(1000.0).unwrap();
        assert_eq!(s.counts(&w), (3000, 2000));
        // First measured ticket is 1000 (scheduled exactly at the warm-up boundary).
        assert!(!w.is_measured(s.offset(999)));
        assert!(w.is_measured(s.offset(1000)));
        assert!(w.is_measured(s.offset(2999)));
        assert!(!w.is_open(s.offset(3000)));
        // Fractional rates.
        let s = OpenSchedule::new(2.5).unwrap();
        assert_eq!(s.tickets_before(ms(1000)), 3); // 0, 0.4, 0.8
        assert_eq!(s.tickets_before(ms(1200)), 3); // 1.2 is not strictly before
        assert_eq!(s.tickets_before(ms(1201)), 4);
        assert_eq!(s.tickets_before(Duration::ZERO), 0);
    }

    #[test]
    fn tickets_before_agrees_with_offset_everywhere() {
        for rate in [1.0, 3.0, 7.3, 999.9, 12_345.0, 100_000.0] {
            let s = OpenSchedule::new(rate).unwrap();
            for t_us in [0u64, 1, 17, 999, 1_000_000, 2_345_678, 10_000_001] {
                let t = Duration::from_micros(t_us);
                let n = s.tickets_before(t);
                assert!(n == 0 || s.offset(n - 1) < t, "rate {rate} t {t:?}");
                assert!(s.offset(n) >= t, "rate {rate} t {t:?}");
            }
        }
    }

    #[test]
    fn measured_count_equals_window_membership() {
        let w = Window {
            warmup: Duration::from_micros(333_333),
            duration: Duration::from_micros(1_234_567),
        };
        let s = OpenSchedule::new(777.0).unwrap();
        let (total, measured) = s.counts(&w);
        let by_scan = (0..total).filter(|&i| w.is_measured(s.offset(i))).count() as u64;
        assert_eq!(measured, by_scan);
        assert!(!w.is_open(s.offset(total)));
        assert!(w.is_open(s.offset(total - 1)));
    }
}
