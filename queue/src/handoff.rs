//! The pipeline hand-off around the chunks and the vectors: staging a document with the object
//! key of its chunks, marking it indexed once its vectors are written, and the counts the
//! gateway's stage gauge shows.
//!
//! The vectors rule ([`Queue::mark_indexed`]): the vectors request carries no worker id (the
//! `hevlayer` client sends none), so the queue cannot tell a stale worker from the lease holder.
//! What it guarantees instead is per **generation**: the gateway reads the document's generation
//! before it writes the vectors upstream, and the document becomes `indexed` only if it is still
//! at that generation and not `indexed` already, in one transaction. So a document is marked
//! indexed once per staging however many workers finish it, and a re-stage that landed while the
//! vectors were being written is not overwritten: the document stays `pending` for its new
//! chunks.

use serde::Serialize;

use crate::pipelines::{COLUMNS, pipeline};
use crate::transition::lock_pipeline;
use crate::{Pipeline, Queue, QueueError, Staged, check_name, stage::missing_pipeline, stages};

/// What [`Queue::mark_indexed`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Indexed {
    /// Moved to `indexed` from this stage (`None`: the document did not exist and was created
    /// `indexed`, as for vectors written without staging chunks first).
    Moved { from: Option<String> },
    /// Already `indexed` at this generation: nothing changed.
    Already,
    /// Re-staged since the generation the caller read: left in its stage for the new chunks.
    Restaged { generation: i64, stage: String },
}

impl Queue {
    /// Stages one document whose chunks are stored under `chunks_key`: a new document starts
    /// `pending` at generation 1; an existing one is reset to `pending` with the next generation
    /// (its lease, attempts and failure reason cleared). [`QueueError::NotFound`] when the
    /// pipeline does not exist. One statement.
    pub async fn stage_with_chunks(
        &self,
        pipeline_id: &str,
        document_id: &str,
        chunks_key: &str,
    ) -> Result<Staged, QueueError> {
        check_name("pipeline id", pipeline_id)?;
        check_name("document id", document_id)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO documents (pipeline_id, document_id, stage, ready_stage, chunks_key)
                 VALUES ($1, $2, 'pending', 'pending', $3)
                 ON CONFLICT (pipeline_id, document_id) DO UPDATE SET
                     stage = 'pending', ready_stage = 'pending',
                     generation = documents.generation + 1, chunks_key = $3,
                     lease_owner = NULL, lease_expires_at = NULL,
                     attempts = 0, lease_expiries = 0, failure_reason = NULL, updated_at = now()
                 RETURNING document_id, generation",
            )
            .await?;
        let row = client
            .query_one(&stmt, &[&pipeline_id, &document_id, &chunks_key])
            .await
            .map_err(|e| missing_pipeline(e, pipeline_id))?;
        self.staged(1);
        Ok(Staged {
            document_id: row.get(0),
            generation: row.get(1),
        })
    }

    /// A pipeline and one document's generation (`None`: no such document) in one statement:
    /// what a vectors call reads before it writes upstream. [`QueueError::NotFound`] for an
    /// unknown pipeline.
    pub async fn pipeline_and_generation(
        &self,
        pipeline_id: &str,
        document_id: &str,
    ) -> Result<(Pipeline, Option<i64>), QueueError> {
        check_name("pipeline id", pipeline_id)?;
        check_name("document id", document_id)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, (SELECT generation FROM documents
                                    WHERE pipeline_id = $1 AND document_id = $2)
                 FROM pipelines WHERE id = $1"
            ))
            .await?;
        match client
            .query_opt(&stmt, &[&pipeline_id, &document_id])
            .await?
        {
            Some(row) => Ok((pipeline(&row), row.get(4))),
            None => Err(QueueError::pipeline_not_found(pipeline_id)),
        }
    }

    /// Marks a document `indexed` after its vectors were written (the module docs give the
    /// rule). The usual case (the document is still at the generation read and not indexed) is
    /// one statement; the others take the transaction below. `seen_generation` is the generation read before the write; `None` when the document
    /// did not exist then (it is created `indexed`). [`QueueError::NotFound`] for an unknown
    /// pipeline, or a document that existed and is gone (its pipeline was deleted meanwhile).
    pub async fn mark_indexed(
        &self,
        pipeline_id: &str,
        document_id: &str,
        seen_generation: Option<i64>,
    ) -> Result<Indexed, QueueError> {
        check_name("pipeline id", pipeline_id)?;
        check_name("document id", document_id)?;
        let mut client = self.client().await?;
        if let Some(generation) = seen_generation {
            // The row lock of the UPDATE also holds off a concurrent pipeline delete (its cascade
            // deletes this row), as the transaction's `FOR KEY SHARE` does.
            let fast = client
                .prepare_cached(
                    "WITH old AS (
                         SELECT stage FROM documents
                         WHERE pipeline_id = $1 AND document_id = $2 AND generation = $3
                           AND stage <> 'indexed'
                         FOR UPDATE
                     )
                     UPDATE documents d SET stage = 'indexed', ready_stage = 'indexed',
                         lease_owner = NULL, lease_expires_at = NULL,
                         failure_reason = NULL, updated_at = now()
                     FROM old
                     WHERE d.pipeline_id = $1 AND d.document_id = $2
                     RETURNING old.stage",
                )
                .await?;
            if let Some(row) = client
                .query_opt(&fast, &[&pipeline_id, &document_id, &generation])
                .await?
            {
                return Ok(Indexed::Moved {
                    from: Some(row.get(0)),
                });
            }
        }
        let tx = client.transaction().await?;
        lock_pipeline(&tx, pipeline_id).await?;
        let lock = tx
            .prepare_cached(
                "SELECT stage, generation FROM documents
                 WHERE pipeline_id = $1 AND document_id = $2 FOR UPDATE",
            )
            .await?;
        let outcome = match tx.query_opt(&lock, &[&pipeline_id, &document_id]).await? {
            None if seen_generation.is_some() => {
                return Err(QueueError::NotFound {
                    message: format!("document {document_id} is gone from pipeline {pipeline_id}"),
                    document_ids: vec![document_id.to_string()],
                });
            }
            None => {
                let insert = tx
                    .prepare_cached(
                        "INSERT INTO documents (pipeline_id, document_id, stage, ready_stage)
                         VALUES ($1, $2, 'indexed', 'indexed')",
                    )
                    .await?;
                tx.execute(&insert, &[&pipeline_id, &document_id]).await?;
                Indexed::Moved { from: None }
            }
            Some(row) => {
                let (stage, generation): (String, i64) = (row.get(0), row.get(1));
                if seen_generation.is_some_and(|g| g != generation) {
                    Indexed::Restaged { generation, stage }
                } else if stage == stages::INDEXED {
                    Indexed::Already
                } else {
                    let update = tx
                        .prepare_cached(
                            "UPDATE documents SET stage = 'indexed', ready_stage = 'indexed',
                                 lease_owner = NULL, lease_expires_at = NULL,
                                 failure_reason = NULL, updated_at = now()
                             WHERE pipeline_id = $1 AND document_id = $2",
                        )
                        .await?;
                    tx.execute(&update, &[&pipeline_id, &document_id]).await?;
                    Indexed::Moved { from: Some(stage) }
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Documents by pipeline and stage, over every pipeline (a document whose lease ran out counts
    /// in the stage it returns to, as in [`Queue::status`]): what the gateway's
    /// `layer_pipeline_stage_count` gauge shows.
    pub async fn stage_counts(&self) -> Result<Vec<(String, String, i64)>, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT pipeline_id,
                        CASE WHEN lease_owner IS NOT NULL AND lease_expires_at <= now()
                             THEN ready_stage ELSE stage END,
                        count(*)
                 FROM documents GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .await?;
        Ok(client
            .query(&stmt, &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}
