//! The operator's own metrics and its HTTP endpoint: `/metrics` (Prometheus text) and
//! `/healthz`.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `layer_operator_reconciles_total` | counter | `kind` |
//! | `layer_operator_reconcile_errors_total` | counter | `kind` |
//! | `layer_operator_reconcile_duration_seconds` | histogram | `kind` |
//! | `layer_operator_leader` | gauge | – (1 while this replica holds the Lease) |
//!
//! The metric catalog names no operator metrics; these follow its `layer_<area>_…` convention.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;

/// Histogram bucket bounds, in seconds.
pub const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default, Clone)]
struct KindStats {
    reconciles: u64,
    errors: u64,
    buckets: [u64; BUCKETS.len()],
    sum: f64,
}

/// Reconcile counts, errors and durations per kind, and leadership.
#[derive(Default)]
pub struct Metrics {
    kinds: Mutex<BTreeMap<&'static str, KindStats>>,
    leader: AtomicBool,
}

impl Metrics {
    /// Counts one reconcile of `kind` that took `took` and failed or not.
    pub fn reconciled(&self, kind: &'static str, took: Duration, failed: bool) {
        let mut kinds = self.kinds.lock();
        let s = kinds.entry(kind).or_default();
        s.reconciles += 1;
        if failed {
            s.errors += 1;
        }
        let secs = took.as_secs_f64();
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let kinds = self.kinds.lock().clone();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP layer_operator_reconciles_total Reconciles run, per kind.\n\
             # TYPE layer_operator_reconciles_total counter"
        );
        for (k, s) in &kinds {
            let _ = writeln!(
                out,
                "layer_operator_reconciles_total{{kind=\"{k}\"}} {}",
                s.reconciles
            );
        }
        let _ = writeln!(
            out,
            "# HELP layer_operator_reconcile_errors_total Reconciles that failed (retried with backoff), per kind.\n\
             # TYPE layer_operator_reconcile_errors_total counter"
        );
        for (k, s) in &kinds {
            let _ = writeln!(
                out,
                "layer_operator_reconcile_errors_total{{kind=\"{k}\"}} {}",
                s.errors
            );
        }
        let _ = writeln!(
            out,
            "# HELP layer_operator_reconcile_duration_seconds How long a reconcile took, per kind.\n\
             # TYPE layer_operator_reconcile_duration_seconds histogram"
        );
        for (k, s) in &kinds {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "layer_operator_reconcile_duration_seconds_bucket{{kind=\"{k}\",le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "layer_operator_reconcile_duration_seconds_bucket{{kind=\"{k}\",le=\"+Inf\"}} {}\n\
                 layer_operator_reconcile_duration_seconds_sum{{kind=\"{k}\"}} {}\n\
                 layer_operator_reconcile_duration_seconds_count{{kind=\"{k}\"}} {}",
                s.reconciles, s.sum, s.reconciles
            );
        }
        let _ = writeln!(
            out,
            "# HELP layer_operator_leader 1 while this replica holds the leader Lease.\n\
             # TYPE layer_operator_leader gauge\nlayer_operator_leader {}",
            u8::from(self.is_leader())
        );
        out
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (status, body) = match req.uri().path() {
                        "/metrics" => (StatusCode::OK, metrics.render()),
                        "/healthz" => (StatusCode::OK, "ok\n".to_string()),
                        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
                    };
                    Response::builder()
                        .status(status)
                        .header("content-type", "text/plain; version=0.0.4")
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_errors_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.reconciled("Function", Duration::from_millis(3), false);
        m.reconciled("Function", Duration::from_millis(300), true);
        m.set_leader(true);
        let text = m.render();
        assert!(text.contains("layer_operator_reconciles_total{kind=\"Function\"} 2"));
        assert!(text.contains("layer_operator_reconcile_errors_total{kind=\"Function\"} 1"));
        assert!(text.contains(
            "layer_operator_reconcile_duration_seconds_bucket{kind=\"Function\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "layer_operator_reconcile_duration_seconds_bucket{kind=\"Function\",le=\"0.5\"} 2"
        ));
        assert!(text.contains("layer_operator_leader 1"));
    }

    #[tokio::test]
    async fn serves_healthz_and_metrics_and_404_elsewhere() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let m = Arc::new(Metrics::default());
        m.reconciled("Index", Duration::from_millis(1), false);
        tokio::spawn(serve(listener, m));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"));
        assert!(metrics.contains("layer_operator_reconciles_total{kind=\"Index\"} 1"));
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    }
}
