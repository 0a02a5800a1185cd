//! In-memory background jobs (scan, warm and snapshot jobs): a [`Jobs`] registry per kind and a
//! [`Job`] record that the running task updates (`documents_scanned`, `progress`) and the list
//! and get routes render.
//!
//! Jobs are typed per kind ([`JobKind`]): the fields fixed at creation are the kind's
//! [`JobKind::Spec`], the fields set while it runs or when it completes its
//! [`JobKind::Outcome`]; both are serialised after the base fields every client model requires
//! (`id`, `namespace`, `status`, `progress`, `documents_scanned`, `created_at`, then
//! `completed_at` and `error` once finished). `None` fields are left out.
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
use serde::Serialize;
use serde_json::{Map, Value};

/// One kind of job: its id prefix and its typed fields.
pub trait JobKind: Send + Sync + 'static {
    /// Id prefix (`scan`, `warm`, `snapshot-job`).
    const PREFIX: &'static str;
    /// Fields fixed at creation (`mode`, `source`, `field`, ...).
    type Spec: Serialize + Send + Sync + std::fmt::Debug;
    /// Fields set while the job runs or when it completes (`sha`, `total`, `truncated`, ...).
    type Outcome: Serialize + Default + Send + Sync + std::fmt::Debug;
    /// The cut the job reports as `stable_as_of` (also sent as `x-layer-stable-as-of`).
    fn stable_as_of(outcome: &Self::Outcome) -> Option<u64>;
}

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
struct State<O> {
    status: JobStatus,
    progress: f64,
    completed_at: Option<String>,
    error: Option<String>,
    outcome: O,
}

/// One job. Cheap to share: the task holds an `Arc<Job>` and updates it; routes render it.
#[derive(Debug)]
pub struct Job<K: JobKind> {
    pub id: String,
    pub namespace: String,
    pub created_at: String,
    /// Fields fixed at creation.
    pub spec: K::Spec,
    documents_scanned: AtomicU64,
    cancelled: AtomicBool,
    state: Mutex<State<K::Outcome>>,
}

impl<K: JobKind> Job<K> {
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

    /// Updates the kind's fields while the job runs (or after).
    pub fn update(&self, f: impl FnOnce(&mut K::Outcome)) {
        f(&mut self.state.lock().outcome);
    }

    /// Reads the kind's fields.
    pub fn outcome<R>(&self, f: impl FnOnce(&K::Outcome) -> R) -> R {
        f(&self.state.lock().outcome)
    }

    /// Marks the job completed (progress 1), setting its final fields with `f`.
    pub fn complete(&self, f: impl FnOnce(&mut K::Outcome)) {
        let mut s = self.state.lock();
        if s.status != JobStatus::Running {
            return;
        }
        s.status = JobStatus::Completed;
        s.progress = 1.0;
        s.completed_at = Some(now_rfc3339());
        f(&mut s.outcome);
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

    /// The failure reason of a failed job.
    pub fn error(&self) -> Option<String> {
        self.state.lock().error.clone()
    }

    /// The job as a response, with `x-layer-stable-as-of` matching its `stable_as_of` (the
    /// client overwrites the field from the header, so they must agree).
    pub fn response(&self, status: http::StatusCode) -> super::http::Resp {
        let v = self.to_json();
        let wm = self.outcome(K::stable_as_of);
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
        merge_fields(&mut m, &self.spec);
        if let Some(c) = &s.completed_at {
            m.insert("completed_at".into(), Value::String(c.clone()));
        }
        if let Some(e) = &s.error {
            m.insert("error".into(), Value::String(e.clone()));
        }
        merge_fields(&mut m, &s.outcome);
        Value::Object(m)
    }
}

/// Adds the fields of a kind's struct (serialised as a JSON object; `null`s left out).
fn merge_fields(m: &mut Map<String, Value>, fields: &impl Serialize) {
    if let Ok(Value::Object(o)) = serde_json::to_value(fields) {
        for (k, v) in o {
            if !v.is_null() {
                m.insert(k, v);
            }
        }
    }
}

/// A job [`Jobs::create_bounded`] registered, and the finished jobs it dropped to stay within
/// [`MAX_FINISHED_PER_NAMESPACE`].
#[derive(Debug)]
pub struct Created<K: JobKind> {
    pub job: Arc<Job<K>>,
    pub dropped: Vec<Arc<Job<K>>>,
}

/// The jobs of one kind, by namespace, in creation order.
#[derive(Debug)]
pub struct Jobs<K: JobKind> {
    by_ns: Mutex<HashMap<String, Vec<Arc<Job<K>>>>>,
}

impl<K: JobKind> Default for Jobs<K> {
    fn default() -> Self {
        Jobs {
            by_ns: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: JobKind> Jobs<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a running job with its fixed fields.
    pub fn create(&self, namespace: &str, spec: K::Spec) -> Arc<Job<K>> {
        match self.create_bounded(namespace, spec, None) {
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
        spec: K::Spec,
        max_running: Option<usize>,
    ) -> Result<Created<K>, usize> {
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
            id: format!("{}-{}", K::PREFIX, uuid::Uuid::new_v4()),
            namespace: namespace.to_string(),
            created_at: now_rfc3339(),
            spec,
            documents_scanned: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            state: Mutex::new(State {
                status: JobStatus::Running,
                progress: 0.0,
                completed_at: None,
                error: None,
                outcome: K::Outcome::default(),
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

    pub fn get(&self, namespace: &str, id: &str) -> Option<Arc<Job<K>>> {
        self.by_ns
            .lock()
            .get(namespace)?
            .iter()
            .find(|j| j.id == id)
            .cloned()
    }

    /// A job by id, or 404 `not_found` naming it.
    pub fn find(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Arc<Job<K>>, super::error::GatewayError> {
        self.get(namespace, id).ok_or_else(|| {
            super::error::GatewayError::Missing(format!("job {id:?} not found in {namespace:?}"))
        })
    }

    /// Every job of `namespace` in its wire shape, oldest first.
    pub fn list_json(&self, namespace: &str) -> Vec<Value> {
        self.list(namespace).iter().map(|j| j.to_json()).collect()
    }

    /// Every job of `namespace`, oldest first.
    pub fn list(&self, namespace: &str) -> Vec<Arc<Job<K>>> {
        self.by_ns
            .lock()
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }

    /// Drops a job (cancelling it if it still runs).
    pub fn remove(&self, namespace: &str, id: &str) -> Option<Arc<Job<K>>> {
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

    #[derive(Debug)]
    struct Test;

    #[derive(Debug, Serialize)]
    struct Spec {
        mode: &'static str,
    }

    #[derive(Debug, Default, Serialize)]
    struct Outcome {
        truncated: Option<bool>,
        stable_as_of: Option<u64>,
    }

    impl JobKind for Test {
        const PREFIX: &'static str = "scan";
        type Spec = Spec;
        type Outcome = Outcome;
        fn stable_as_of(o: &Outcome) -> Option<u64> {
            o.stable_as_of
        }
    }

    fn spec() -> Spec {
        Spec { mode: "ids" }
    }

    #[test]
    fn lifecycle_and_wire_shape() {
        let jobs = Jobs::<Test>::new();
        let j = jobs.create("ns", spec());
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
        assert!(v.get("truncated").is_none(), "unset fields are left out");
        assert_eq!(v["status"], "running");
        assert_eq!(v["documents_scanned"], 5);
        j.complete(|o| {
            o.truncated = Some(false);
            o.stable_as_of = Some(9);
        });
        j.fail("too late");
        let job = jobs.get("ns", &j.id).unwrap();
        let v = job.to_json();
        assert_eq!(v["status"], "completed");
        assert_eq!(v["progress"], 1.0);
        assert_eq!(v["truncated"], false);
        assert!(v.get("error").is_none());
        assert!(v["completed_at"].as_str().unwrap().ends_with('Z'));
        let r = job.response(http::StatusCode::OK);
        assert_eq!(r.headers()["x-layer-stable-as-of"], "9");
        assert_eq!(jobs.list("ns").len(), 1);
        assert!(jobs.remove("ns", &j.id).unwrap().is_cancelled());
        assert!(jobs.get("ns", &j.id).is_none());
    }

    #[test]
    fn finished_jobs_are_bounded_per_namespace() {
        let jobs = Jobs::<Test>::new();
        for _ in 0..MAX_FINISHED_PER_NAMESPACE + 10 {
            jobs.create("ns", spec()).complete(|_| {});
        }
        assert!(jobs.list("ns").len() <= MAX_FINISHED_PER_NAMESPACE + 1);
    }

    #[test]
    fn bounded_create_refuses_past_the_running_cap_and_reports_dropped_jobs() {
        let jobs = Jobs::<Test>::new();
        let running: Vec<Arc<Job<Test>>> = (0..3)
            .map(|_| jobs.create_bounded("ns", spec(), Some(3)).unwrap().job)
            .collect();
        assert_eq!(jobs.create_bounded("ns", spec(), Some(3)).unwrap_err(), 3);
        assert_eq!(
            jobs.list("ns").len(),
            3,
            "a refused create registers nothing"
        );
        assert!(jobs.create_bounded("other", spec(), Some(3)).is_ok());
        running[0].complete(|_| {});
        let fourth = jobs.create_bounded("ns", spec(), Some(3)).unwrap();
        assert!(fourth.dropped.is_empty());
        assert_eq!(
            jobs.create_bounded("ns", spec(), Some(3)).unwrap_err(),
            3,
            "running again: two old jobs and the new one"
        );
        running[1].fail("x");
        assert!(jobs.create_bounded("ns", spec(), Some(3)).is_ok());

        // The finished jobs dropped to stay under the per-namespace bound, oldest first.
        let first = jobs.create("full", spec());
        first.complete(|_| {});
        let mut dropped = Vec::new();
        for _ in 0..MAX_FINISHED_PER_NAMESPACE + 1 {
            let c = jobs.create_bounded("full", spec(), None).unwrap();
            c.job.complete(|_| {});
            dropped.extend(c.dropped);
        }
        assert_eq!(dropped.len(), 1, "{dropped:?}");
        assert_eq!(dropped[0].id, first.id);
        assert!(jobs.get("full", &first.id).is_none());
    }

    #[test]
    fn restarted_counters_start_from_zero() {
        let jobs = Jobs::<Test>::new();
        let j = jobs.create("ns", spec());
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
