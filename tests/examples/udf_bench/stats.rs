//! Small statistics over call latencies and shares: percentiles, means, sums, percentages.

use std::time::Duration;

pub(crate) fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

pub(crate) fn mean_ms(d: &[Duration]) -> f64 {
    if d.is_empty() {
        return 0.0;
    }
    d.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / d.len() as f64
}

pub(crate) fn sum(d: &[Duration]) -> f64 {
    d.iter().map(Duration::as_secs_f64).sum()
}

pub(crate) fn pct_of(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        100.0 * part / whole
    } else {
        0.0
    }
}
