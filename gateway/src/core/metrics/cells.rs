//! The values behind one thread's series: counters, gauges and latency histograms that only the
//! thread they belong to writes, and that the scrape reads while the thread keeps writing.
//!
//! They are atomics so that the scrape may read them at any time without a lock, but a write is
//! a plain load and store (no locked instruction): there is one writer. That is this module's
//! rule, kept by [`super`]: a cell is written only through the thread-local it was created in;
//! the scrape holds the same cells (through the thread's published index) and only reads them.
//! All accesses are `Relaxed`: a scrape reads a histogram's buckets and sum (and different
//! series) at slightly different moments, so they may disagree by the samples recorded during
//! the scrape, as every Prometheus client allows; each counter and bucket on its own only grows.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::super::labeled::{BUCKETS, Hist};

/// A counter.
#[derive(Default)]
pub(super) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning thread calls this (see the module docs).
    pub(super) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The current value.
    pub(super) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A gauge: the owning thread's share (the scrape sums every thread's).
#[derive(Default)]
pub(super) struct Gauge(AtomicI64);

impl Gauge {
    /// Moves the gauge by `delta`. Only the owning thread calls this (see the module docs).
    pub(super) fn add(&self, delta: i64) {
        self.0
            .store(self.0.load(Relaxed).wrapping_add(delta), Relaxed);
    }

    /// The current value.
    pub(super) fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// A latency histogram over [`BUCKETS`], as [`Hist`] counts it (its snapshot is a `Hist`).
#[derive(Default)]
pub(super) struct LatencyCells {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl LatencyCells {
    /// Counts one value. Only the owning thread calls this (see the module docs).
    pub(super) fn record(&self, d: Duration) {
        let (slot, ns) = Hist::place(d);
        if let Some(slot) = self.counts.get(slot) {
            slot.store(slot.load(Relaxed).wrapping_add(1), Relaxed);
        }
        let sum = self.sum_ns.load(Relaxed);
        self.sum_ns.store(sum.saturating_add(ns), Relaxed);
    }

    /// What has been counted so far.
    pub(super) fn snapshot(&self) -> Hist {
        Hist::from_parts(
            std::array::from_fn(|i| self.counts[i].load(Relaxed)),
            self.sum_ns.load(Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_count_as_the_plain_histogram_does() {
        let cells = LatencyCells::default();
        let mut plain = Hist::default();
        for us in [1, 500, 501, 2_000, 40_000_000] {
            let d = Duration::from_micros(us);
            cells.record(d);
            plain.record(d);
        }
        let (mut a, mut b) = (String::new(), String::new());
        cells.snapshot().render(&mut a, "t", "r=\"x\"");
        plain.render(&mut b, "t", "r=\"x\"");
        assert_eq!(a, b);
        assert!(a.contains("t_count{r=\"x\"} 5"), "{a}");
        let (c, g) = (Counter::default(), Gauge::default());
        c.add(2);
        c.add(3);
        g.add(4);
        g.add(-6);
        assert_eq!((c.get(), g.get()), (5, -2));
    }
}
