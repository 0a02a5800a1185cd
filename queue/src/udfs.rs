//! UDFs (Functions): the registry and its discovery bookkeeping. A UDF's items live on the same
//! lease queue as pipeline documents ([`crate::items`] has the item calls).
//!
//! A UDF row holds the spec as the gateway validated it (opaque JSON here: the gateway owns its
//! shape and defaults), whether it is paused, and what discovery did. Each UDF owns a queue row
//! in `pipelines` (kind `udf`, id [`queue_id`]) created and deleted with it, so its items are
//! claimed, leased, retried and counted by the pipelines' own statements, and deleting a UDF
//! deletes its items (`ON DELETE CASCADE`) but never what its workers wrote.
//!
//! Discovery sweeps are claimed in the database ([`Queue::begin_sweep`]): one sweep per UDF at a
//! time across every gateway replica, started when the last one finished longer ago than the
//! UDF's interval (or at once for `discover`), and taken over when its runner stopped reporting
//! progress for [`SWEEP_STALE_AFTER`].

use std::time::Duration;

use serde_json::Value;

use crate::stage::PipelineStatus;
use crate::{Queue, QueueError, check_name};

/// The prefix of a UDF queue's id in `pipelines`; pipeline ids may not start with it.
pub const QUEUE_PREFIX: &str = "udf:";
/// A sweep whose runner has not reported progress for this long is taken over by the next one
/// that asks (its gateway stopped mid-sweep).
pub const SWEEP_STALE_AFTER: Duration = Duration::from_secs(300);

/// The queue id of UDF `id`.
pub fn queue_id(id: &str) -> String {
    format!("{QUEUE_PREFIX}{id}")
}

/// Whether a `pipelines` id is a UDF queue's.
pub fn is_udf_queue(id: &str) -> bool {
    id.starts_with(QUEUE_PREFIX)
}

/// A stored UDF.
#[derive(Clone, Debug, PartialEq)]
pub struct Udf {
    pub id: String,
    pub spec: Value,
    pub paused: bool,
    /// RFC 3339, UTC, microseconds.
    pub created_at: String,
    pub updated_at: String,
    pub discovery: Discovery,
}

/// What discovery did for a UDF.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Discovery {
    pub sweeps_completed: i64,
    /// When the last sweep finished (RFC 3339), `None` before the first.
    pub last_completed_at: Option<String>,
    /// Milliseconds since the last sweep finished, `None` before the first.
    pub since_last_ms: Option<i64>,
    /// A sweep is running (or its runner stopped less than [`SWEEP_STALE_AFTER`] ago).
    pub running: bool,
    /// The running (or last) sweep's progress, as its runner reported it.
    pub progress: Option<Value>,
    /// Why the last sweep failed, if it did.
    pub last_error: Option<String>,
}

const TS: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

fn columns() -> String {
    format!(
        "id, spec, paused, to_char(created_at AT TIME ZONE 'UTC', {TS}),
         to_char(updated_at AT TIME ZONE 'UTC', {TS}), sweeps_completed,
         to_char(last_completed_at AT TIME ZONE 'UTC', {TS}),
         (extract(epoch FROM now() - last_completed_at) * 1000)::bigint,
         sweep_started_at IS NOT NULL
           AND sweep_started_at > now() - {} * interval '1 millisecond',
         sweep_progress, last_error",
        SWEEP_STALE_AFTER.as_millis()
    )
}

fn udf(row: &tokio_postgres::Row) -> Udf {
    Udf {
        id: row.get(0),
        spec: row.get(1),
        paused: row.get(2),
        created_at: row.get(3),
        updated_at: row.get(4),
        discovery: Discovery {
            sweeps_completed: row.get(5),
            last_completed_at: row.get(6),
            since_last_ms: row.get(7),
            running: row.get(8),
            progress: row.get(9),
            last_error: row.get(10),
        },
    }
}

impl Queue {
    /// Registers a UDF; [`QueueError::AlreadyExists`] when the id is taken.
    pub async fn create_udf(&self, id: &str, spec: &Value) -> Result<Udf, QueueError> {
        check_name("udf id", id)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let queue = tx
            .prepare_cached(
                "INSERT INTO pipelines (id, target_namespace, kind) VALUES ($1, '', 'udf')
                 ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        if tx.execute(&queue, &[&queue_id(id)]).await? == 0 {
            return Err(QueueError::AlreadyExists {
                kind: "udf",
                id: id.to_string(),
            });
        }
        let insert = tx
            .prepare_cached(&format!(
                "INSERT INTO udfs (id, queue_id, spec) VALUES ($1, $2, $3) RETURNING {}",
                columns()
            ))
            .await?;
        let row = tx.query_one(&insert, &[&id, &queue_id(id), spec]).await?;
        tx.commit().await?;
        Ok(udf(&row))
    }

    /// Creates the UDF or replaces its spec; returns it and whether it was created.
    pub async fn upsert_udf(&self, id: &str, spec: &Value) -> Result<(Udf, bool), QueueError> {
        check_name("udf id", id)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let queue = tx
            .prepare_cached(
                "INSERT INTO pipelines (id, target_namespace, kind) VALUES ($1, '', 'udf')
                 ON CONFLICT (id) DO NOTHING",
            )
            .await?;
        let created = tx.execute(&queue, &[&queue_id(id)]).await? == 1;
        let upsert = tx
            .prepare_cached(&format!(
                "INSERT INTO udfs (id, queue_id, spec) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET spec = EXCLUDED.spec, updated_at = now()
                 RETURNING {}",
                columns()
            ))
            .await?;
        let row = tx.query_one(&upsert, &[&id, &queue_id(id), spec]).await?;
        tx.commit().await?;
        Ok((udf(&row), created))
    }

    /// The UDF, or [`QueueError::NotFound`].
    pub async fn get_udf(&self, id: &str) -> Result<Udf, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {} FROM udfs WHERE id = $1", columns()))
            .await?;
        match client.query_opt(&stmt, &[&id]).await? {
            Some(row) => Ok(udf(&row)),
            None => Err(QueueError::udf_not_found(id)),
        }
    }

    /// Every UDF, by id.
    pub async fn list_udfs(&self) -> Result<Vec<Udf>, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {} FROM udfs ORDER BY id", columns()))
            .await?;
        Ok(client.query(&stmt, &[]).await?.iter().map(udf).collect())
    }

    /// Deletes a UDF and its items (not what its workers wrote); [`QueueError::NotFound`] when
    /// it does not exist.
    pub async fn delete_udf(&self, id: &str) -> Result<(), QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("DELETE FROM pipelines WHERE id = $1 AND kind = 'udf'")
            .await?;
        match client.execute(&stmt, &[&queue_id(id)]).await? {
            0 => Err(QueueError::udf_not_found(id)),
            _ => Ok(()),
        }
    }

    /// Pauses or resumes a UDF (claims answer nothing while it is paused; leases and items are
    /// kept). Idempotent.
    pub async fn set_udf_paused(&self, id: &str, paused: bool) -> Result<Udf, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE udfs SET paused = $2, updated_at = now() WHERE id = $1 RETURNING {}",
                columns()
            ))
            .await?;
        match client.query_opt(&stmt, &[&id, &paused]).await? {
            Some(row) => Ok(udf(&row)),
            None => Err(QueueError::udf_not_found(id)),
        }
    }

    /// The UDF and its queue's counts, read in one snapshot.
    pub async fn udf_status(&self, id: &str) -> Result<(Udf, PipelineStatus), QueueError> {
        let udf = self.get_udf(id).await?;
        let mut status = self.status(&queue_id(id)).await.map_err(|e| match e {
            QueueError::NotFound { .. } => QueueError::udf_not_found(id),
            other => other,
        })?;
        status.pipeline_id = id.to_string();
        Ok((udf, status))
    }

    /// Claims the UDF's next discovery sweep for the caller: `true` when no sweep is running
    /// (or the running one went stale) and the last one finished at least `interval` ago (a zero
    /// interval: whenever none is running). The caller then reports with
    /// [`Queue::sweep_progress`] and ends with [`Queue::finish_sweep`].
    pub async fn begin_sweep(&self, id: &str, interval: Duration) -> Result<bool, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE udfs SET sweep_started_at = now(), sweep_progress = NULL
                 WHERE id = $1
                   AND (sweep_started_at IS NULL
                        OR sweep_started_at <= now() - $3::bigint * interval '1 millisecond')
                   AND (last_completed_at IS NULL
                        OR last_completed_at <= now() - $2::bigint * interval '1 millisecond')
                 RETURNING 1",
            )
            .await?;
        let interval = interval.as_millis() as i64;
        let stale = SWEEP_STALE_AFTER.as_millis() as i64;
        Ok(client
            .query_opt(&stmt, &[&id, &interval, &stale])
            .await?
            .is_some())
    }

    /// A running sweep's progress (also shows that its runner is alive).
    pub async fn sweep_progress(&self, id: &str, progress: &Value) -> Result<(), QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE udfs SET sweep_progress = $2, sweep_started_at = now()
                 WHERE id = $1 AND sweep_started_at IS NOT NULL",
            )
            .await?;
        client.execute(&stmt, &[&id, progress]).await?;
        Ok(())
    }

    /// Ends a sweep: counted as completed without `error`, recorded as failed with it.
    pub async fn finish_sweep(
        &self,
        id: &str,
        progress: &Value,
        error: Option<&str>,
    ) -> Result<(), QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE udfs SET sweep_started_at = NULL, sweep_progress = $2, last_error = $3,
                     sweeps_completed = sweeps_completed + ($3::text IS NULL)::integer,
                     last_completed_at = CASE WHEN $3::text IS NULL THEN now()
                                              ELSE last_completed_at END
                 WHERE id = $1",
            )
            .await?;
        client.execute(&stmt, &[&id, progress, &error]).await?;
        Ok(())
    }
}
