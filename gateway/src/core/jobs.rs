//! In-memory background jobs (scan, warm and snapshot jobs): a [`Jobs`] registry per kind and a
//! [`Job`] record that the running task updates (`documents_scanned`, `progress`) and the list
//! and get routes render.
//!
//! Job state lives in gateway memory only and is lost on restart (documented in the README). The
//! registry keeps at most [`MAX_FINISHED_PER_NAMESPACE`] finished jobs per namespace, dropping the
//! oldest first, so a busy namespace cannot grow it without bound; [`Jobs::create_bounded`] also
//! refuses a new job while a namespace already runs a given number (scans use it), and reports
//! the finished jobs it dropped so a kind can drop what it keeps next to them (scan results).
//! Locks here are on the control path (job creation, polling), never on the query hot path.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use serde_json::{Map, Value};

/// Finished jobs kept per namespace and kind.
pub const MAX_FINISHED_PER_NAMESPACE: usize = 256;

/// A job's lifecycle state (the client's `JobStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Completed,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
        }
    }
}

#[derive(Debug)]
struct State {
    status: JobStatus,
    progress: f64,
    completed_at: Option<String>,
    error: Option<String>,
    /// Kind-specific fields set while running or at the end (`sha`, `truncated`, ...).
    extra: Map<String, Value>,
}

/// One job. Cheap to share: the task holds an `Arc<Job>` and updates it; routes render it.
#[derive(Debug)]
pub struct Job {
    pub id: String,
    pub namespace: String,
    pub created_at: String,
    /// Fields fixed at creation (`mode`, `source`, `field`, ...), rendered after the base fields.
    base: Map<String, Value>,
    documents_scanned: AtomicU64,
    cancelled: AtomicBool,
    state: Mutex<State>,
}

impl Job {
    /// Starts the counters over (`documents_scanned` and `progress` back to 0), for a job that
    /// restarts its pass (a warm whose earlier pages a namespace clear wiped).
    pub fn restart_counters(&self) {
        self.documents_scanned.store(0, Ordering::Relaxed);
        self.state.lock().progress = 0.0;
    }

    /// Adds to `documents_scanned`.
    pub fn add_scanned(&self, n: u64) {
        self.documents_scanned.fetch_add(n, Ordering::Relaxed);
    }

    pub fn documents_scanned(&self) -> u64 {
        self.documents_scanned.load(Ordering::Relaxed)
    }

    /// Sets `progress` (clamped to 0..=1).
    pub fn set_progress(&self, p: f64) {
        let p = if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.state.lock().progress = p;
    }

    /// Sets a kind-specific field shown on the job.
    pub fn set(&self, key: &str, value: Value) {
        self.state.lock().extra.insert(key.to_string(), value);
    }

    /// Marks the job completed (progress 1) with its final kind-specific fields.
    pub fn complete(&self, extra: Map<String, Value>) {
        let mut s = self.state.lock();
        if s.status != JobStatus::Running {
            return;
        }
        s.status = JobStatus::Completed;
        s.progress = 1.0;
        s.completed_at = Some(now_rfc3339());
        s.extra.extend(extra);
    }

    /// Marks the job failed with a human-readable reason.
    pub fn fail(&self, error: impl Into<String>) {
        let mut s = self.state.lock();
        if s.status != JobStatus::Running {
            return;
        }
        s.status = JobStatus::Failed;
        s.completed_at = Some(now_rfc3339());
        s.error = Some(error.into());
    }

    pub fn status(&self) -> JobStatus {
        self.state.lock().status
    }

    /// Asks the running task to stop (checked between pages).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// A kind-specific field, if set.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.base
            .get(key)
            .cloned()
            .or_else(|| self.state.lock().extra.get(key).cloned())
    }

    /// The job as a response, with `x-layer-stable-as-of` matching its `stable_as_of` (the
    /// client overwrites the field from the header, so they must agree).
    pub fn response(&self, status: http::StatusCode) -> super::http::Resp {
        let v = self.to_json();
        let wm = v.get("stable_as_of").and_then(Value::as_u64);
        let mut r = super::http::json_response(status, &v);
        super::stable::stamp_header(r.headers_mut(), wm);
        r
    }

    /// The wire shape: the base fields every client model requires (`id`, `namespace`, `status`,
    /// `progress`, `documents_scanned`, `created_at`), then the kind's fields.
    pub fn to_json(&self) -> Value {
        let s = self.state.lock();
        let mut m = Map::new();
        m.insert("id".into(), Value::String(self.id.clone()));
        m.insert("namespace".into(), Value::String(self.namespace.clone()));
        m.insert("status".into(), Value::String(s.status.as_str().into()));
        m.insert(
            "progress".into(),
            serde_json::Number::from_f64(s.progress).map_or(Value::from(0), Value::Number),
        );
        m.insert(
            "documents_scanned".into(),
            Value::from(self.documents_scanned()),
        );
        m.insert("created_at".into(), Value::String(self.created_at.clone()));
        for (k, v) in &self.base {
            m.insert(k.clone(), v.clone());
        }
        if let Some(c) = &s.completed_at {
            m.insert("completed_at".into(), Value::String(c.clone()));
        }
        if let Some(e) = &s.error {
            m.insert("error".into(), Value::String(e.clone()));
        }
        for (k, v) in &s.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// A job [`Jobs::create_bounded`] registered, and the finished jobs it dropped to stay within
/// [`MAX_FINISHED_PER_NAMESPACE`].
#[derive(Debug)]
pub struct Created {
    pub job: Arc<Job>,
    pub dropped: Vec<Arc<Job>>,
}

/// The jobs of one kind, by namespace, in creation order.
#[derive(Debug)]
pub struct Jobs {
    /// Id prefix (`scan`, `warm`, `snapshot-job`).
    prefix: &'static str,
    by_ns: Mutex<HashMap<String, Vec<Arc<Job>>>>,
}

impl Jobs {
    pub fn new(prefix: &'static str) -> Self {
        Jobs {
            prefix,
            by_ns: Mutex::new(HashMap::new()),
        }
    }

    /// Registers a running job with its fixed fields.
    pub fn create(&self, namespace: &str, base: Map<String, Value>) -> Arc<Job> {
        match self.create_bounded(namespace, base, None) {
            Ok(created) => created.job,
            Err(_) => unreachable!("an unbounded create always succeeds"),
        }
    }

    /// Registers a running job unless `namespace` already has `max_running` jobs running (then
    /// `Err` with that count, and nothing is registered). The check and the insert happen under
    /// one lock, so concurrent creates cannot overshoot the cap.
    pub fn create_bounded(
        &self,
        namespace: &str,
        base: Map<String, Value>,
        max_running: Option<usize>,
    ) -> Result<Created, usize> {
        let mut map = self.by_ns.lock();
        let list = map.entry(namespace.to_string()).or_default();
        if let Some(max) = max_running {
            let running = list
                .iter()
                .filter(|j| j.status() == JobStatus::Running)
                .count();
            if running >= max {
                return Err(running);
            }
        }
        let job = Arc::new(Job {
            id: format!("{}-{}", self.prefix, uuid::Uuid::new_v4()),
            namespace: namespace.to_string(),
            created_at: now_rfc3339(),
            base,
            documents_scanned: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            state: Mutex::new(State {
                status: JobStatus::Running,
                progress: 0.0,
                completed_at: None,
                error: None,
                extra: Map::new(),
            }),
        });
        list.push(job.clone());
        let mut dropped = Vec::new();
        let mut finished = list
            .iter()
            .filter(|j| j.status() != JobStatus::Running)
            .count();
        while finished > MAX_FINISHED_PER_NAMESPACE
            && let Some(pos) = list.iter().position(|j| j.status() != JobStatus::Running)
        {
            dropped.push(list.remove(pos));
            finished -= 1;
        }
        Ok(Created { job, dropped })
    }

    pub fn get(&self, namespace: &str, id: &str) -> Option<Arc<Job>> {
        self.by_ns
            .lock()
            .get(namespace)?
            .iter()
            .find(|j| j.id == id)
            .cloned()
    }

    /// A job by id, or 404 `not_found` naming it.
    pub fn find(&self, namespace: &str, id: &str) -> Result<Arc<Job>, super::error::GatewayError> {
        self.get(namespace, id).ok_or_else(|| {
            super::error::GatewayError::Missing(format!("job {id:?} not found in {namespace:?}"))
        })
    }

    /// Every job of `namespace` in its wire shape, oldest first.
    pub fn list_json(&self, namespace: &str) -> Vec<Value> {
        self.list(namespace).iter().map(|j| j.to_json()).collect()
    }

    /// Every job of `namespace`, oldest first.
    pub fn list(&self, namespace: &str) -> Vec<Arc<Job>> {
        self.by_ns
            .lock()
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }

    /// Drops a job (cancelling it if it still runs).
    pub fn remove(&self, namespace: &str, id: &str) -> Option<Arc<Job>> {
        let mut map = self.by_ns.lock();
        let list = map.get_mut(namespace)?;
        let pos = list.iter().position(|j| j.id == id)?;
        let job = list.remove(pos);
        job.cancel();
        Some(job)
    }
}

/// Wall-clock now as RFC 3339 with milliseconds and a `Z` suffix.
pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_wire_shape() {
        let jobs = Jobs::new("scan");
        let mut base = Map::new();
        base.insert("mode".into(), "ids".into());
        let j = jobs.create("ns", base);
        assert!(j.id.starts_with("scan-"));
        j.add_scanned(5);
        j.set_progress(0.5);
        let v = j.to_json();
        for k in [
            "id",
            "namespace",
            "status",
            "progress",
            "documents_scanned",
            "created_at",
            "mode",
        ] {
            assert!(v.get(k).is_some(), "{k} missing");
        }
        assert_eq!(v["status"], "running");
        assert_eq!(v["documents_scanned"], 5);
        let mut extra = Map::new();
        extra.insert("truncated".into(), false.into());
        j.complete(extra);
        j.fail("too late");
        let v = jobs.get("ns", &j.id).unwrap().to_json();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["progress"], 1.0);
        assert!(v.get("error").is_none());
        assert!(v["completed_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(jobs.list("ns").len(), 1);
        assert!(jobs.remove("ns", &j.id).unwrap().is_cancelled());
        assert!(jobs.get("ns", &j.id).is_none());
    }

    #[test]
    fn finished_jobs_are_bounded_per_namespace() {
        let jobs = Jobs::new("warm");
        for _ in 0..MAX_FINISHED_PER_NAMESPACE + 10 {
            jobs.create("ns", Map::new()).complete(Map::new());
        }
        assert!(jobs.list("ns").len() <= MAX_FINISHED_PER_NAMESPACE + 1);
    }

    #[test]
    fn bounded_create_refuses_past_the_running_cap_and_reports_dropped_jobs() {
        let jobs = Jobs::new("scan");
        let running: Vec<Arc<Job>> = (0..3)
            .map(|_| jobs.create_bounded("ns", Map::new(), Some(3)).unwrap().job)
            .collect();
        assert_eq!(
            jobs.create_bounded("ns", Map::new(), Some(3)).unwrap_err(),
            3
        );
        assert_eq!(
            jobs.list("ns").len(),
            3,
            "a refused create registers nothing"
        );
        assert!(jobs.create_bounded("other", Map::new(), Some(3)).is_ok());
        running[0].complete(Map::new());
        let fourth = jobs.create_bounded("ns", Map::new(), Some(3)).unwrap();
        assert!(fourth.dropped.is_empty());
        assert_eq!(
            jobs.create_bounded("ns", Map::new(), Some(3)).unwrap_err(),
            3,
            "running again: two old jobs and the new one"
        );
        running[1].fail("x");
        assert!(jobs.create_bounded("ns", Map::new(), Some(3)).is_ok());

        // The finished jobs dropped to stay under the per-namespace bound, oldest first.
        let first = jobs.create("full", Map::new());
        first.complete(Map::new());
        let mut dropped = Vec::new();
        for _ in 0..MAX_FINISHED_PER_NAMESPACE + 1 {
            let c = jobs.create_bounded("full", Map::new(), None).unwrap();
            c.job.complete(Map::new());
            dropped.extend(c.dropped);
        }
        assert_eq!(dropped.len(), 1, "{dropped:?}");
        assert_eq!(dropped[0].id, first.id);
        assert!(jobs.get("full", &first.id).is_none());
    }

    #[test]
    fn restarted_counters_start_from_zero() {
        let jobs = Jobs::new("warm");
        let j = jobs.create("ns", Map::new());
        j.add_scanned(40);
        j.set_progress(0.4);
        j.restart_counters();
        let v = j.to_json();
        assert_eq!(
            (v["documents_scanned"].as_u64(), v["progress"].as_f64()),
            (Some(0), Some(0.0))
        );
    }
}
