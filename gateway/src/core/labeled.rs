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

#[derive(Clone, Default)]
struct Hist {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
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
    let secs = d.as_secs_f64();
    let mut r = registry();
    let h = r.hists.entry((metric, labels)).or_default();
    for (slot, bound) in h.buckets.iter_mut().zip(BUCKETS) {
        if secs <= *bound {
            *slot += 1;
        }
    }
    h.count += 1;
    h.sum += secs;
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
                    for (n, b) in h.buckets.iter().zip(BUCKETS) {
                        let _ = writeln!(out, "{metric}_bucket{{{l},le=\"{b}\"}} {n}");
                    }
                    let _ = writeln!(out, "{metric}_bucket{{{l},le=\"+Inf\"}} {}", h.count);
                    let _ = writeln!(out, "{metric}_sum{{{l}}} {}", h.sum);
                    let _ = writeln!(out, "{metric}_count{{{l}}} {}", h.count);
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
