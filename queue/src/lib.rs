//! `layer-queue`: Layer's lease queue on PostgreSQL, with no HTTP in it.
//!
//! One row per document (pipeline id, document id, stage, generation, lease owner, lease expiry,
//! attempts). Workers [`Queue::claim`] documents under a lease with one
//! `FOR UPDATE SKIP LOCKED` statement, extend it with [`Queue::heartbeat`], and move documents on
//! with [`Queue::set_stage`] (or the [`Queue::complete`] / [`Queue::fail`] / [`Queue::release`]
//! helpers the `hevlayer` client's helpers map to). A lease that runs out makes the document
//! claimable again from the stage it was claimed from: no sweeper is needed for correctness.
//! The pipelines feature of the gateway puts HTTP in front of this; the UDF runtime reuses the
//! same table, claim, lease and retry rules for its items ([`udfs`] for the registry, [`items`]
//! for enqueue, claim and completion).
//!
//! The same database keeps the standalone key store ([`keys`]: minted API keys, hashes only).
//!
//! Schema changes are numbered SQL files under `migrations/`, embedded in the binary and applied
//! by [`Queue::migrate`] under an advisory lock ([`migrate`]).

pub mod error;
pub mod handoff;
pub mod items;
pub mod keys;
pub mod lease;
pub mod migrate;
pub mod pipelines;
pub mod stage;
pub mod transition;
pub mod udfs;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use error::QueueError;
pub use handoff::Indexed;
pub use items::{ClaimedItem, Completion, ItemClaim, NewItem};
pub use lease::{Claim, Claimed};
pub use pipelines::{NewPipeline, Pipeline};
pub use stage::{DocumentState, PipelineStatus, Staged};
pub use transition::{Guard, RetryOutcome, RetryPolicy, StageMove};
pub use udfs::{Discovery, Udf};

/// The stages the `hevlayer` client's flow uses. Stage names are free-form otherwise.
pub mod stages {
    /// Chunks staged, waiting to be claimed.
    pub const PENDING: &str = "pending";
    /// The default claim stage: documents sit in it only while leased.
    pub const EMBEDDING: &str = "embedding";
    /// Vectors written: terminal.
    pub const INDEXED: &str = "indexed";
    /// Given up on: terminal.
    pub const FAILED: &str = "failed";
    /// Stages no claim takes documents from; the claim index leaves them out.
    pub const TERMINAL: [&str; 2] = [INDEXED, FAILED];
}

/// The lease a claim gets when the caller names none: the contract's `lease_seconds` default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(900);
/// How many times a document's lease may run out before the document is failed.
pub const DEFAULT_MAX_LEASE_EXPIRIES: i32 = 5;
/// After this many documents staged through one [`Queue`] handle it runs `ANALYZE` on the
/// documents table in the background, so claims and stage moves do not plan with statistics that
/// describe another run's documents until autoanalyze catches up (a large staging ran 10-15x
/// slower for it in the benchmark).
pub const ANALYZE_AFTER_STAGED: u64 = 20_000;
/// The longest lease a claim or heartbeat may ask for.
pub const MAX_LEASE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The most documents one claim may take.
pub const MAX_CLAIM: u32 = 1000;
/// The most document ids one call may name.
pub const MAX_IDS_PER_CALL: usize = 10_000;
/// The longest pipeline id, stage name, worker id or document id accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 512;

/// How to reach PostgreSQL.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// A `postgresql://` URL (or a libpq key=value string).
    pub url: String,
    /// The schema the queue's tables live in (created by the first migration run). Tests use one
    /// schema each so they can run in parallel against one server.
    pub schema: String,
    /// Connections in the pool.
    pub pool_size: usize,
    /// How long a call waits for a connection (or to open one) before it answers
    /// [`QueueError::Unavailable`].
    pub connect_timeout: Duration,
    /// The lease of a claim that names none.
    pub default_lease: Duration,
    /// The connections' `application_name` (what `pg_stat_activity` shows).
    pub application_name: String,
    /// A document whose lease runs out this many times since it was staged goes to `failed`
    /// (reason [`lease::LEASE_EXPIRED`]) instead of being claimed again.
    pub max_lease_expiries: i32,
}

impl QueueConfig {
    /// The defaults: schema `layer_queue`, 16 connections, 5 s connect timeout, 900 s lease,
    /// application name `layer-queue`, [`DEFAULT_MAX_LEASE_EXPIRIES`].
    pub fn new(url: impl Into<String>) -> Self {
        QueueConfig {
            url: url.into(),
            schema: "layer_queue".to_string(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            default_lease: DEFAULT_LEASE,
            application_name: "layer-queue".to_string(),
            max_lease_expiries: DEFAULT_MAX_LEASE_EXPIRIES,
        }
    }
}

/// A handle on the queue: a connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    schema: String,
    default_lease: Duration,
    max_lease_expiries: i32,
    /// Documents staged since this handle last ran (or started) an `ANALYZE`.
    staged: Arc<AtomicU64>,
}

impl Queue {
    /// Builds the pool without connecting: calls fail with [`QueueError::Unavailable`] until
    /// PostgreSQL answers, and work by themselves once it does.
    pub fn new(config: &QueueConfig) -> Result<Queue, QueueError> {
        check_name("schema", &config.schema)?;
        if config.max_lease_expiries < 1 {
            return Err(QueueError::Invalid(
                "max_lease_expiries must be at least 1".into(),
            ));
        }
        if !config
            .schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(QueueError::Invalid(
                "schema: lowercase ASCII letters, digits and '_' only".into(),
            ));
        }
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| QueueError::Invalid(format!("database URL: {e}")))?;
        pg.connect_timeout(config.connect_timeout);
        pg.application_name(&config.application_name);
        pg.options(format!("-c search_path={}", config.schema));
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| QueueError::Invalid(format!("pool: {e}")))?;
        Ok(Queue {
            pool,
            schema: config.schema.clone(),
            default_lease: config.default_lease,
            max_lease_expiries: config.max_lease_expiries,
            staged: Arc::new(AtomicU64::new(0)),
        })
    }

    /// [`Queue::new`], then [`Queue::migrate`]: the usual way to start.
    pub async fn connect(config: &QueueConfig) -> Result<Queue, QueueError> {
        let queue = Queue::new(config)?;
        queue.migrate().await?;
        Ok(queue)
    }

    /// The schema this queue's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The lease a claim gets when it names none.
    pub fn default_lease(&self) -> Duration {
        self.default_lease
    }

    /// Counts `n` staged documents; past [`ANALYZE_AFTER_STAGED`] since the last time, starts an
    /// `ANALYZE` of the documents table in the background (its failure is only logged: the
    /// statistics are an optimisation, autoanalyze still runs).
    pub(crate) fn staged(&self, n: u64) {
        let before = self.staged.fetch_add(n, Ordering::Relaxed);
        if before + n < ANALYZE_AFTER_STAGED || before >= ANALYZE_AFTER_STAGED {
            return; // below the threshold, or another call crossed it and resets the count
        }
        // Counted from now: documents staged while the ANALYZE runs count towards the next.
        self.staged.store(0, Ordering::Relaxed);
        let queue = self.clone();
        tokio::spawn(async move {
            let result = async {
                let client = queue.client().await?;
                // Bounded, so a lock held by a manual VACUUM or an index build cannot keep a
                // pool connection waiting: the statistics are an optimisation.
                let analyzed = client
                    .batch_execute(
                        "BEGIN; SET LOCAL lock_timeout = '5s'; SET LOCAL statement_timeout = '120s';
                         ANALYZE documents; COMMIT",
                    )
                    .await;
                if analyzed.is_err() {
                    // Leave no aborted transaction on a pooled connection.
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                analyzed?;
                Ok::<_, QueueError>(())
            }
            .await;
            match result {
                Ok(()) => tracing::debug!(schema = %queue.schema, "analyzed the documents table"),
                Err(e) => {
                    tracing::warn!(schema = %queue.schema, error = %e, "ANALYZE after staging failed")
                }
            }
        });
    }

    /// The connection pool's use now: `(busy, idle, waiting)` — connections lent out,
    /// connections open and free, callers waiting for one.
    pub fn pool_use(&self) -> (usize, usize, usize) {
        let s = self.pool.status();
        (s.size.saturating_sub(s.available), s.available, s.waiting)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Client, QueueError> {
        Ok(self.pool.get().await?)
    }
}

/// Rejects an empty or oversize name (pipeline id, stage, worker id, document id).
pub(crate) fn check_name(what: &str, value: &str) -> Result<(), QueueError> {
    if value.is_empty() {
        return Err(QueueError::Invalid(format!("{what} must not be empty")));
    }
    if value.len() > MAX_NAME_BYTES {
        return Err(QueueError::Invalid(format!(
            "{what} is {} bytes; the limit is {MAX_NAME_BYTES}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(QueueError::Invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// Checks a list of document ids and returns it without duplicates, in its first order.
pub(crate) fn check_ids<S: AsRef<str>>(ids: &[S]) -> Result<Vec<String>, QueueError> {
    if ids.is_empty() {
        return Err(QueueError::Invalid("document_ids must not be empty".into()));
    }
    if ids.len() > MAX_IDS_PER_CALL {
        return Err(QueueError::Invalid(format!(
            "{} document ids; the limit per call is {MAX_IDS_PER_CALL}",
            ids.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id = id.as_ref();
        check_name("document id", id)?;
        if seen.insert(id) {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

/// A lease duration in whole milliseconds, checked against (0, [`MAX_LEASE`]].
pub(crate) fn lease_millis(lease: Duration) -> Result<i64, QueueError> {
    if lease.is_zero() || lease > MAX_LEASE {
        return Err(QueueError::Invalid(format!(
            "lease must be between 1 ms and {} s",
            MAX_LEASE.as_secs()
        )));
    }
    Ok(lease.as_millis().max(1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_deduplicated() {
        assert!(check_ids::<&str>(&[]).is_err());
        assert!(check_ids(&[""]).is_err());
        assert!(check_ids(&["a\nb"]).is_err());
        assert!(check_ids(&["x".repeat(MAX_NAME_BYTES + 1)]).is_err());
        assert_eq!(check_ids(&["b", "a", "b"]).unwrap(), vec!["b", "a"]);
    }

    #[test]
    fn lease_bounds() {
        assert!(lease_millis(Duration::ZERO).is_err());
        assert!(lease_millis(MAX_LEASE + Duration::from_secs(1)).is_err());
        assert_eq!(lease_millis(Duration::from_micros(10)).unwrap(), 1);
        assert_eq!(lease_millis(DEFAULT_LEASE).unwrap(), 900_000);
    }

    #[test]
    fn bad_schema_names_are_refused() {
        let mut config = QueueConfig::new("postgresql://127.0.0.1/x");
        config.schema = "Robert'); drop".into();
        assert!(matches!(Queue::new(&config), Err(QueueError::Invalid(_))));
    }
}
