//! Metrics whose label values are known only at run time (a pipeline id, a stage name), for the
//! features' control-plane routes: counters, histograms and gauges keyed by metric name and the
//! rendered label set. They sit behind one process-wide mutex, which is fine for routes that
//! also wait on PostgreSQL; the data plane's hot path records through [`super::metrics`]
//! (per-thread, fixed labels) instead. `GET /metrics` appends [`render`] to the core metrics.
//!
//! A metric is declared once with [`describe`] (kind and help text), then recorded with
//! [`count`], [`observe`] or [`set_gauges`]; label sets are built with [`labels`], which escapes
//! the values.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Histogram bucket bounds (seconds), for these metrics and the core ones ([`super::metrics`]).
pub(super) const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A label value escaped as the Prometheus text format wants.
pub(super) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A help text as the text format wants it (`\` and newlines escaped).
pub(super) fn help_text(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Distinct values a free-text label (`namespace`, `field`) takes in these metrics,
/// process-wide; the rest share [`super::metrics::OTHER_NAMESPACE`] (`_other`), so a caller
/// cannot mint series without bound.
pub const MAX_NAMESPACES: usize = 256;

/// `value` if it is one of the first [`MAX_NAMESPACES`] values of `label` seen, else `_other`.
pub fn bounded_value(label: &'static str, value: &str) -> String {
    static SEEN: OnceLock<Mutex<BTreeMap<&'static str, std::collections::BTreeSet<String>>>> =
        OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let set = seen.entry(label).or_default();
    if set.contains(value) {
        return value.to_string();
    }
    if set.len() < MAX_NAMESPACES {
        set.insert(value.to_string());
        return value.to_string();
    }
    super::metrics::OTHER_NAMESPACE.to_string()
}

/// [`bounded_value`] of the `namespace` label.
pub fn bounded_namespace(ns: &str) -> String {
    bounded_value("namespace", ns)
}

/// What a described metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Histogram,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
            Kind::Gauge => "gauge",
        }
    }
}

/// [`BUCKETS`] in nanoseconds, for recording without floating point.
const BOUNDS_NS: [u64; BUCKETS.len()] = {
    let mut ns = [0u64; BUCKETS.len()];
    let mut i = 0;
    while i < BUCKETS.len() {
        // Exact for these bounds (whole numbers of nanoseconds).
        ns[i] = (BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    ns
};

/// A latency histogram over [`BUCKETS`]: one counter per bucket (not cumulative; the render
/// adds them up), one for the values above the last bound, and the exact sum. ~140 bytes, so a
/// series costs nothing to create or to copy at a scrape.
#[derive(Clone, Default)]
pub(super) struct Hist {
    /// `counts[i]`: values in `(BUCKETS[i - 1], BUCKETS[i]]`; the last slot: above every bound.
    counts: [u64; BUCKETS.len() + 1],
    sum_ns: u64,
}

impl Hist {
    /// Counts one value.
    pub(super) fn record(&mut self, d: Duration) {
        let (slot, ns) = Hist::place(d);
        if let Some(slot) = self.counts.get_mut(slot) {
            *slot += 1;
        }
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Where a value goes: the slot of `counts` it falls in, and its nanoseconds (for the sum).
    pub(super) fn place(d: Duration) -> (usize, u64) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        (BOUNDS_NS.partition_point(|b| *b < ns), ns)
    }

    /// A histogram with these counts (as [`Hist::record`] fills them) and sum.
    pub(super) fn from_parts(counts: [u64; BUCKETS.len() + 1], sum_ns: u64) -> Hist {
        Hist { counts, sum_ns }
    }

    /// Adds another thread's counts.
    pub(super) fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(o.counts) {
            *a += b;
        }
        self.sum_ns = self.sum_ns.saturating_add(o.sum_ns);
    }

    /// The `_bucket` (cumulative, then `+Inf`), `_sum` (seconds) and `_count` lines of one series.
    pub(super) fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut below = 0u64;
        for (n, b) in self.counts.iter().zip(BUCKETS) {
            below += n;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {below}");
        }
        let total: u64 = self.counts.iter().sum();
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
    }
}

#[derive(Default)]
struct Registry {
    described: BTreeMap<&'static str, (Kind, &'static str)>,
    counters: BTreeMap<(&'static str, String), u64>,
    hists: BTreeMap<(&'static str, String), Hist>,
    gauges: BTreeMap<(&'static str, String), i64>,
}

fn registry() -> MutexGuard<'static, Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Declares a metric (idempotent): only described metrics are rendered.
pub fn describe(metric: &'static str, kind: Kind, help: &'static str) {
    registry().described.insert(metric, (kind, help));
}

/// A rendered label set, `a="x",b="y"`, with the values escaped as the text format wants.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape(v));
    }
    out
}

/// Adds `n` to a counter.
pub fn count(metric: &'static str, labels: String, n: u64) {
    *registry().counters.entry((metric, labels)).or_default() += n;
}

/// Records one duration in a histogram.
pub fn observe(metric: &'static str, labels: String, d: Duration) {
    registry()
        .hists
        .entry((metric, labels))
        .or_default()
        .record(d);
}

/// Replaces every series of a gauge with `values` (label set → value): series not listed are
/// gone, as a deleted pipeline's are.
pub fn set_gauges(metric: &'static str, values: impl IntoIterator<Item = (String, i64)>) {
    let mut r = registry();
    r.gauges.retain(|(m, _), _| *m != metric);
    for (l, v) in values {
        r.gauges.insert((metric, l), v);
    }
}

/// Removes every series of every metric whose label set contains `label` (e.g.
/// `pipeline_id="p"`), when what it describes is deleted.
pub fn forget(label: &str) {
    let mut r = registry();
    // A whole `name="value"` pair of the set: values are escaped (a `"` inside one is `\"`), so
    // the pair cannot occur inside another value, but a value may hold a comma.
    let has = |l: &String| {
        l.match_indices(label).any(|(i, _)| {
            let end = i + label.len();
            (i == 0 || l.as_bytes()[i - 1] == b',') && (end == l.len() || l.as_bytes()[end] == b',')
        })
    };
    r.counters.retain(|(_, l), _| !has(l));
    r.hists.retain(|(_, l), _| !has(l));
    r.gauges.retain(|(_, l), _| !has(l));
}

/// Every described metric in the Prometheus text format; the help text is the catalog's
/// description when the catalog has the family.
pub fn render() -> String {
    let r = registry();
    let mut out = String::new();
    for (metric, (kind, help)) in &r.described {
        let help = help_text(metrics_catalog::get(metric).map_or(*help, |e| e.description));
        let _ = writeln!(
            out,
            "# HELP {metric} {help}\n# TYPE {metric} {}",
            kind.as_str()
        );
        let of = |m: &&'static str| m == metric;
        match kind {
            Kind::Counter => {
                for ((_, l), n) in r.counters.iter().filter(|((m, _), _)| of(m)) {
                    let _ = writeln!(out, "{metric}{{{l}}} {n}");
                }
            }
            Kind::Gauge => {
                for ((_, l), v) in r.gauges.iter().filter(|((m, _), _)| of(m)) {
                    let _ = writeln!(out, "{metric}{{{l}}} {v}");
                }
            }
            Kind::Histogram => {
                for ((_, l), h) in r.hists.iter().filter(|((m, _), _)| of(m)) {
                    h.render(&mut out, metric, l);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_inclusive_cumulative_and_merge() {
        let mut a = Hist::default();
        // On a bound (le is "less than or equal"), between two bounds, above the last one.
        a.record(Duration::from_micros(500));
        a.record(Duration::from_micros(501));
        a.record(Duration::from_secs(31));
        let mut b = Hist::default();
        b.record(Duration::from_nanos(1));
        a.merge(&b);
        let mut out = String::new();
        a.render(&mut out, "t", "r=\"x\"");
        for line in [
            "t_bucket{r=\"x\",le=\"0.0005\"} 2",
            "t_bucket{r=\"x\",le=\"0.001\"} 3",
            "t_bucket{r=\"x\",le=\"10\"} 3",
            "t_bucket{r=\"x\",le=\"30\"} 3",
            "t_bucket{r=\"x\",le=\"+Inf\"} 4",
            "t_sum{r=\"x\"} 31.001001001",
            "t_count{r=\"x\"} 4",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing from\n{out}");
        }
    }

    #[test]
    fn series_render_with_escaped_labels_and_go_when_forgotten() {
        describe("test_labeled_total", Kind::Counter, "A test counter.");
        describe("test_labeled_seconds", Kind::Histogram, "A test histogram.");
        describe("test_labeled_count", Kind::Gauge, "A test gauge.");
        let l = labels(&[("pipeline_id", "p\"1"), ("stage", "pending")]);
        assert_eq!(l, r#"pipeline_id="p\"1",stage="pending""#);
        count("test_labeled_total", l.clone(), 2);
        observe("test_labeled_seconds", l.clone(), Duration::from_millis(3));
        set_gauges("test_labeled_count", [(l.clone(), 7)]);
        let text = render();
        assert!(
            text.contains(&format!("test_labeled_total{{{l}}} 2")),
            "{text}"
        );
        assert!(text.contains(&format!(
            "test_labeled_seconds_bucket{{{l},le=\"0.005\"}} 1"
        )));
        assert!(text.contains(&format!(
            "test_labeled_seconds_bucket{{{l},le=\"0.0025\"}} 0"
        )));
        assert!(text.contains(&format!("test_labeled_seconds_count{{{l}}} 1")));
        assert!(text.contains(&format!("test_labeled_count{{{l}}} 7")));
        set_gauges("test_labeled_count", []);
        assert!(!render().contains("test_labeled_count{"));
        forget(r#"pipeline_id="p\"1""#);
        assert!(!render().contains("test_labeled_total{"));
        // A value holding a comma is still forgotten whole, and only its own series.
        let comma = labels(&[("pipeline_id", "a,b"), ("stage", "x")]);
        let other = labels(&[("pipeline_id", "a"), ("stage", "x")]);
        count("test_labeled_total", comma.clone(), 1);
        count("test_labeled_total", other.clone(), 1);
        forget(&labels(&[("pipeline_id", "a,b")]));
        let text = render();
        assert!(!text.contains(&comma), "{text}");
        assert!(text.contains(&other), "{text}");
    }
}
