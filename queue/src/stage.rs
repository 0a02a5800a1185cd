//! Staging documents into a pipeline, reading one document's state, and a pipeline's status.
//!
//! Staging is an upsert: a new document starts `pending` at generation 1; staging it again
//! (re-staging, after its source changed) resets it to `pending`, bumps its generation (the
//! chunks of the new generation replace the old ones), clears any lease and the attempt count.
//! Staging the same ids twice leaves them in the same state (`pending`, unleased), so a retried
//! stage call is harmless.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;
use tokio_postgres::error::SqlState;

use crate::{Queue, QueueError, check_ids, check_name, stages};

/// One staged document: its id and the generation its chunks belong to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Staged {
    pub document_id: String,
    pub generation: i64,
}

/// One document's row, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct DocumentState {
    pub document_id: String,
    /// The stage status reports while the lease holds (the claim stage while leased).
    pub stage: String,
    /// The stage the document is claimable from: equal to `stage` when not leased; the stage it
    /// was claimed from (and returns to when the lease runs out) while leased.
    pub ready_stage: String,
    pub generation: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<SystemTime>,
    /// Claims so far (reset by re-staging).
    pub attempts: i32,
    pub failure_reason: Option<String>,
    /// Where the staged chunks are (the gateway's object key); `None` when staged without any.
    pub chunks_key: Option<String>,
}

/// A pipeline's counts: the contract's `PipelineStatus` fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PipelineStatus {
    pub pipeline_id: String,
    /// `idle` when nothing is pending or leased, else `pending`. (The gateway may answer
    /// `waiting_on_upstream`, which the queue cannot know.)
    pub status: &'static str,
    /// Documents by stage. A document whose lease ran out counts in the stage it returns to.
    pub counts: BTreeMap<String, i64>,
    /// Failed documents by the reason they were failed with (`unknown` when none was given).
    pub failed_reasons: BTreeMap<String, i64>,
    pub pending_count: i64,
    /// Documents under a live lease.
    pub processing_count: i64,
    pub failed_count: i64,
    /// Documents that reached `indexed` in the last `rate_window_seconds`, per minute.
    pub indexed_rate_per_min: f64,
    pub rate_window_seconds: i64,
}

/// The window of `indexed_rate_per_min`.
pub const RATE_WINDOW_SECONDS: i64 = 300;

impl Queue {
    /// Stages documents (see the module docs); [`QueueError::NotFound`] when the pipeline does not
    /// exist. One statement: all the ids are staged or none.
    pub async fn stage_documents<S: AsRef<str>>(
        &self,
        pipeline_id: &str,
        document_ids: &[S],
    ) -> Result<Vec<Staged>, QueueError> {
        check_name("pipeline id", pipeline_id)?;
        let mut ids = check_ids(document_ids)?;
        // A fixed row order keeps two overlapping stage calls from deadlocking.
        ids.sort_unstable();
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO documents (pipeline_id, document_id, stage, ready_stage)
                 SELECT $1, d, 'pending', 'pending' FROM unnest($2::text[]) AS d
                 ON CONFLICT (pipeline_id, document_id) DO UPDATE SET
                     stage = 'pending', ready_stage = 'pending',
                     generation = documents.generation + 1,
                     lease_owner = NULL, lease_expires_at = NULL,
                     attempts = 0, lease_expiries = 0, failure_reason = NULL, updated_at = now()
                 RETURNING document_id, generation",
            )
            .await?;
        let rows = client
            .query(&stmt, &[&pipeline_id, &ids])
            .await
            .map_err(|e| missing_pipeline(e, pipeline_id))?;
        self.staged(rows.len() as u64);
        Ok(rows
            .iter()
            .map(|row| Staged {
                document_id: row.get(0),
                generation: row.get(1),
            })
            .collect())
    }

    /// One document's row, or [`QueueError::NotFound`].
    pub async fn document(
        &self,
        pipeline_id: &str,
        document_id: &str,
    ) -> Result<DocumentState, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT document_id, stage, ready_stage, generation, lease_owner,
                        lease_expires_at, attempts, failure_reason, chunks_key
                 FROM documents WHERE pipeline_id = $1 AND document_id = $2",
            )
            .await?;
        match client
            .query_opt(&stmt, &[&pipeline_id, &document_id])
            .await?
        {
            Some(row) => Ok(DocumentState {
                document_id: row.get(0),
                stage: row.get(1),
                ready_stage: row.get(2),
                generation: row.get(3),
                lease_owner: row.get(4),
                lease_expires_at: row.get(5),
                attempts: row.get(6),
                failure_reason: row.get(7),
                chunks_key: row.get(8),
            }),
            None => Err(QueueError::NotFound {
                message: format!("document {document_id} not found in pipeline {pipeline_id}"),
                document_ids: vec![document_id.to_string()],
            }),
        }
    }

    /// Counts by stage and the other `PipelineStatus` fields; [`QueueError::NotFound`] for an
    /// unknown pipeline. Reads one snapshot (a read-only repeatable-read transaction).
    pub async fn status(&self, pipeline_id: &str) -> Result<PipelineStatus, QueueError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let exists = tx
            .prepare_cached("SELECT 1 FROM pipelines WHERE id = $1")
            .await?;
        if tx.query_opt(&exists, &[&pipeline_id]).await?.is_none() {
            return Err(QueueError::pipeline_not_found(pipeline_id));
        }
        let by_stage = tx
            .prepare_cached(
                "SELECT CASE WHEN lease_owner IS NOT NULL AND lease_expires_at <= now()
                             THEN ready_stage ELSE stage END,
                        count(*),
                        count(*) FILTER (WHERE lease_owner IS NOT NULL
                                           AND lease_expires_at > now()),
                        count(*) FILTER (WHERE stage = 'indexed'
                                           AND updated_at > now() - $2 * interval '1 second')
                 FROM documents WHERE pipeline_id = $1 GROUP BY 1",
            )
            .await?;
        let reasons = tx
            .prepare_cached(
                "SELECT coalesce(failure_reason, 'unknown'), count(*) FROM documents
                 WHERE pipeline_id = $1 AND stage = 'failed' GROUP BY 1",
            )
            .await?;
        let window = RATE_WINDOW_SECONDS as f64;
        let mut counts = BTreeMap::new();
        let (mut processing, mut recent) = (0i64, 0i64);
        for row in tx.query(&by_stage, &[&pipeline_id, &window]).await? {
            counts.insert(row.get::<_, String>(0), row.get::<_, i64>(1));
            processing += row.get::<_, i64>(2);
            recent += row.get::<_, i64>(3);
        }
        let failed_reasons: BTreeMap<String, i64> = tx
            .query(&reasons, &[&pipeline_id])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        tx.commit().await?;
        let pending_count = counts.get(stages::PENDING).copied().unwrap_or(0);
        let failed_count = counts.get(stages::FAILED).copied().unwrap_or(0);
        Ok(PipelineStatus {
            pipeline_id: pipeline_id.to_string(),
            status: if pending_count + processing == 0 {
                "idle"
            } else {
                "pending"
            },
            counts,
            failed_reasons,
            pending_count,
            processing_count: processing,
            failed_count,
            indexed_rate_per_min: recent as f64 * 60.0 / window,
            rate_window_seconds: RATE_WINDOW_SECONDS,
        })
    }
}

/// A foreign-key violation on `documents.pipeline_id` means the pipeline does not exist.
pub(crate) fn missing_pipeline(e: tokio_postgres::Error, pipeline_id: &str) -> QueueError {
    if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
        QueueError::pipeline_not_found(pipeline_id)
    } else {
        e.into()
    }
}
