//! The gateway's `/metrics` read at a moment (with the CPU counters) and a histogram's sum and
//! count between two such moments.

use http::Method;

use crate::client::{Http, send_raw};
use crate::cpu::Cpu;

/// A histogram's sum (seconds) and count over a phase.
#[derive(Clone, Copy, Default)]
pub(crate) struct Hist {
    pub(crate) sum: f64,
    pub(crate) count: f64,
}

impl Hist {
    pub(crate) fn mean_ms(&self) -> f64 {
        if self.count > 0.0 {
            self.sum * 1000.0 / self.count
        } else {
            0.0
        }
    }
}

/// The gateway's metrics and the CPU counters at one moment.
pub(crate) struct Snapshot {
    metrics: String,
    pub(crate) cpu: Cpu,
}

impl Snapshot {
    pub(crate) async fn take(http: &Http, base: &str) -> Snapshot {
        let (_, body) =
            send_raw(http, Method::GET, &format!("{base}/metrics"), String::new()).await;
        Snapshot {
            metrics: String::from_utf8_lossy(&body).into_owned(),
            cpu: Cpu::take(),
        }
    }

    /// `name`'s sum and count over every series whose labels contain all of `labels`, since
    /// `before`.
    pub(crate) fn hist(&self, before: &Snapshot, name: &str, labels: &[&str]) -> Hist {
        let now = hist_of(&self.metrics, name, labels);
        let then = hist_of(&before.metrics, name, labels);
        Hist {
            sum: now.sum - then.sum,
            count: now.count - then.count,
        }
    }
}

fn hist_of(text: &str, name: &str, labels: &[&str]) -> Hist {
    let (sum_p, count_p) = (format!("{name}_sum{{"), format!("{name}_count{{"));
    let mut h = Hist::default();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if !labels.iter().all(|l| series.contains(l)) {
            continue;
        }
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        if series.starts_with(&sum_p) {
            h.sum += v;
        } else if series.starts_with(&count_p) {
            h.count += v;
        }
    }
    h
}
