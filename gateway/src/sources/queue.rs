//! The lease queue on PostgreSQL (`layer-queue`), shared by the features that keep queue state:
//! pipelines and UDFs. One pool for both, migrations applied once before the first call that
//! needs them (and tried at start by [`QueueSource::ready`] callers), and every call run on the
//! control runtime, where the pool's connections live, so a shard never drives PostgreSQL I/O.
//!
//! Without a configured database (`LAYER_DATABASE_URL` unset) calls answer 503
//! `database_not_configured`; while PostgreSQL is unreachable the queue's own errors say so (500
//! `database_unavailable`) and every other route keeps serving.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use layer_queue::{Queue, QueueConfig, QueueError};
use tokio::sync::OnceCell;

use crate::core::Core;
use crate::core::config::ConfigError;
use crate::core::error::GatewayError;

/// The queue handle (when a database is configured) and the core whose control runtime runs it.
pub struct QueueSource {
    core: Arc<Core>,
    db: Option<Db>,
}

/// The queue and whether its migrations are applied.
struct Db {
    queue: Queue,
    migrated: OnceCell<()>,
}

impl QueueSource {
    /// Builds the pool without connecting (a database that is down at start is not an error:
    /// calls fail until it is back). A malformed URL or schema is.
    pub fn new(core: Arc<Core>) -> Result<Arc<Self>, ConfigError> {
        let c = &core.config.gateway.queue;
        let db = match &c.url {
            None => None,
            Some(url) => {
                let mut qc = QueueConfig::new(url.clone());
                qc.schema = c.schema.clone();
                qc.pool_size = c.pool_size;
                qc.connect_timeout = Duration::from_millis(c.connect_timeout_ms);
                qc.application_name = "layer-gateway".into();
                qc.max_lease_expiries = c.max_lease_expiries;
                let queue = Queue::new(&qc)
                    .map_err(|e| ConfigError::Invalid(format!("gateway.queue: {e}")))?;
                Some(Db {
                    queue,
                    migrated: OnceCell::new(),
                })
            }
        };
        Ok(Arc::new(QueueSource { core, db }))
    }

    /// The pool's `(busy, idle, waiting)` ([`Queue::pool_use`]); `None` without a database.
    pub fn pool_use(&self) -> Option<(usize, usize, usize)> {
        self.db.as_ref().map(|d| d.queue.pool_use())
    }

    /// Whether a database is configured.
    pub fn configured(&self) -> bool {
        self.db.is_some()
    }

    /// The queue, once its migrations are applied (call on the control runtime). `None` without
    /// a configured database.
    pub async fn ready(&self) -> Option<Result<Queue, QueueError>> {
        let db = self.db.as_ref()?;
        let migrated = db
            .migrated
            .get_or_try_init(|| async {
                let applied = db.queue.migrate().await?;
                if !applied.is_empty() {
                    tracing::info!(?applied, "queue migrations applied");
                }
                Ok::<(), QueueError>(())
            })
            .await;
        Some(migrated.map(|_| db.queue.clone()))
    }

    /// Runs one queue call on the control runtime, after the migrations. The outer error is the
    /// gateway's (503 without a configured database, the control runtime gone); the inner one
    /// is the queue's, for the caller to map (with its own metrics).
    pub async fn run<T, F, Fut>(
        self: &Arc<Self>,
        what: &'static str,
        f: F,
    ) -> Result<Result<T, QueueError>, GatewayError>
    where
        T: Send + 'static,
        F: FnOnce(Queue) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, QueueError>> + Send + 'static,
    {
        if self.db.is_none() {
            return Err(GatewayError::Rejected {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "database_not_configured",
                message: format!(
                    "{what} need PostgreSQL: set LAYER_DATABASE_URL (gateway.queue.url); \
                     scripts/run starts a private cluster"
                ),
            });
        }
        let handle = self.core.control()?.handle.clone();
        let me = self.clone();
        let run = async move {
            match me.ready().await {
                Some(queue) => f(queue?).await,
                None => Err(QueueError::Unavailable("no database configured".into())),
            }
        };
        handle
            .spawn(run)
            .await
            .map_err(|e| GatewayError::Internal(format!("queue call: {e}")))
    }
}

/// A queue error as a response: its own status and code, and the document ids it is about.
/// Callers count database failures in their own metrics first ([`is_database_failure`]).
pub fn queue_error(e: QueueError) -> GatewayError {
    let mut detail = serde_json::Map::new();
    if !e.document_ids().is_empty() {
        detail.insert("document_ids".into(), serde_json::json!(e.document_ids()));
    }
    GatewayError::Detailed {
        status: e.status(),
        code: e.code(),
        message: e.to_string(),
        detail,
    }
}

/// Whether a queue error is PostgreSQL's (unreachable, or an unexpected error), not the caller's.
pub fn is_database_failure(e: &QueueError) -> bool {
    matches!(e, QueueError::Unavailable(_) | QueueError::Database(_))
}
