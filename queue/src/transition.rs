//! Stage moves: the generic guarded [`Queue::set_stage`], the client helpers' shapes
//! ([`Queue::complete`], [`Queue::fail`], [`Queue::release`]) and the UDF runtime's
//! [`Queue::retry_later`].
//!
//! A stage move is one transaction that locks the named rows (in id order), checks every guard,
//! and writes all of them or none:
//! - a document that does not exist is created in the target stage when `create_missing` is set,
//!   and is otherwise a 404 naming it;
//! - `from_stage`, when given, must be the document's stored stage;
//! - `worker_id`, when given, must be the lease owner: a lease is lost only when another claim
//!   takes the document, so a late worker whose lease ran out but was not re-claimed still
//!   finishes its work;
//! - a document already in the target stage with no lease passes the guards and is left as it
//!   is (a retried `complete` after a lost response is not a conflict);
//! - any other guard failure is a 409 naming the documents, and nothing is written.
//!
//! A moved document's lease is cleared, its `ready_stage` becomes the new stage and its count of
//! run-out leases starts again (a worker moved it on, or an operator sent it back: the cap on
//! leases that keep running out counts from there).

use std::collections::HashMap;
use std::time::Duration;

use crate::{Queue, QueueError, check_ids, check_name, stages};

/// Optional guards of a stage move.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// The stage the documents must be in.
    pub from_stage: Option<String>,
    /// The worker that must hold their leases.
    pub worker_id: Option<String>,
}

/// A stage move: the body of `set_documents_stage`.
#[derive(Clone, Debug)]
pub struct StageMove {
    pub document_ids: Vec<String>,
    pub stage: String,
    pub guard: Guard,
    /// Create documents that do not exist, in `stage` (guards apply to existing documents only).
    pub create_missing: bool,
    /// Stored with the move (status counts failed documents by it).
    pub failure_reason: Option<String>,
}

impl StageMove {
    /// A move of these documents to `stage`, unguarded, not creating missing ones.
    pub fn new<S: AsRef<str>>(document_ids: &[S], stage: impl Into<String>) -> Self {
        StageMove {
            document_ids: document_ids
                .iter()
                .map(|s| s.as_ref().to_string())
                .collect(),
            stage: stage.into(),
            guard: Guard::default(),
            create_missing: false,
            failure_reason: None,
        }
    }
}

/// The UDF runtime's retry rule: a transient failure goes back to the stage it was claimed from
/// after a backoff of `initial_backoff * 2^(attempts-1)` (at most `max_backoff`), jittered to a
/// uniform draw from the upper half of that (so workers that failed together do not come back
/// together), until `max_attempts` claims have failed; then it is `failed`.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// The UDF spec's defaults: 8 attempts, 5 s initial backoff, 300 s at most.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What [`Queue::retry_later`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryOutcome {
    /// Back in their ready stage, claimable after the backoff.
    pub requeued: Vec<String>,
    /// Out of attempts: now `failed`.
    pub failed: Vec<String>,
}

/// [`Queue::set_stage`]'s one-statement path: locks the named rows in id order and moves them
/// only when every one exists, passes the guards and is not already resting in the target stage
/// (the transaction leaves such a row untouched, which this statement could not say). Returns
/// the moved ids: all of them, or none. The row locks hold off a concurrent pipeline delete
/// (its cascade deletes these rows) as the transaction's `FOR KEY SHARE` does.
/// Parameters: $1 pipeline, $2 ids (deduplicated), $3 from stage or NULL, $4 worker or NULL,
/// $5 target stage, $6 failure reason or NULL.
const FAST_MOVE_SQL: &str = "\
WITH locked AS (
    SELECT document_id, stage, lease_owner FROM documents
    WHERE pipeline_id = $1 AND document_id = ANY($2)
    ORDER BY document_id
    FOR UPDATE
), verdict AS (
    SELECT count(*) = cardinality($2::text[])
           -- Per row, NULL (a NULL lease owner against a worker guard) is a failed guard:
           -- bool_and would skip it.
           AND coalesce(bool_and(coalesce(($3::text IS NULL OR stage = $3::text)
                                          AND ($4::text IS NULL OR lease_owner = $4::text)
                                          AND NOT (stage = $5::text AND lease_owner IS NULL),
                                          false)), false) AS ok
    FROM locked
)
UPDATE documents d SET stage = $5::text, ready_stage = $5::text,
    lease_owner = NULL, lease_expires_at = NULL, lease_expiries = 0,
    failure_reason = $6::text, updated_at = now()
FROM locked, verdict
WHERE verdict.ok AND d.pipeline_id = $1 AND d.document_id = locked.document_id
RETURNING d.document_id";

impl Queue {
    /// Moves documents to a stage under the module's rules; returns how many documents are in
    /// the target stage because of this call (moved, created, or already there).
    pub async fn set_stage(&self, pipeline_id: &str, mv: &StageMove) -> Result<u64, QueueError> {
        check_name("pipeline id", pipeline_id)?;
        check_name("stage", &mv.stage)?;
        let mut ids = check_ids(&mv.document_ids)?;
        ids.sort_unstable();
        if let Some(s) = &mv.guard.from_stage {
            check_name("from_stage", s)?;
        }
        if let Some(w) = &mv.guard.worker_id {
            check_name("worker_id", w)?;
        }
        let mut client = self.client().await?;
        // The common move (a worker completing what it holds) in one statement; anything else
        // (a guard failing, a missing or already-moved document) falls through to the
        // transaction, which finds out which. The fast path writes all or nothing.
        let fast = client.prepare_cached(FAST_MOVE_SQL).await?;
        let moved = client
            .query(
                &fast,
                &[
                    &pipeline_id,
                    &ids,
                    &mv.guard.from_stage,
                    &mv.guard.worker_id,
                    &mv.stage,
                    &mv.failure_reason,
                ],
            )
            .await?;
        if moved.len() == ids.len() {
            return Ok(ids.len() as u64);
        }
        let tx = client.transaction().await?;
        lock_pipeline(&tx, pipeline_id).await?;
        let lock = tx
            .prepare_cached(
                "SELECT document_id, stage, lease_owner FROM documents
                 WHERE pipeline_id = $1 AND document_id = ANY($2)
                 ORDER BY document_id FOR UPDATE",
            )
            .await?;
        let rows = tx.query(&lock, &[&pipeline_id, &ids]).await?;
        let found: HashMap<String, (String, Option<String>)> = rows
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !found.contains_key(*id))
            .cloned()
            .collect();
        if !missing.is_empty() && !mv.create_missing {
            return Err(QueueError::NotFound {
                message: format!(
                    "{} document(s) not found in pipeline {pipeline_id} (create_missing is false)",
                    missing.len()
                ),
                document_ids: missing,
            });
        }
        let mut to_move = Vec::new();
        let mut refused = Vec::new();
        for id in &ids {
            let Some((stage, owner)) = found.get(id) else {
                continue;
            };
            if *stage == mv.stage && owner.is_none() {
                continue; // already there: nothing to write
            }
            let stage_ok = mv.guard.from_stage.as_ref().is_none_or(|f| f == stage);
            let owner_ok = mv
                .guard
                .worker_id
                .as_ref()
                .is_none_or(|w| owner.as_ref() == Some(w));
            if stage_ok && owner_ok {
                to_move.push(id.clone());
            } else {
                refused.push(id.clone());
            }
        }
        if !refused.is_empty() {
            return Err(QueueError::Conflict {
                message: format!(
                    "{} document(s) fail the guard (from_stage {:?}, worker_id {:?}); nothing was moved",
                    refused.len(),
                    mv.guard.from_stage,
                    mv.guard.worker_id
                ),
                document_ids: refused,
            });
        }
        if !to_move.is_empty() {
            let update = tx
                .prepare_cached(
                    "UPDATE documents SET stage = $3, ready_stage = $3,
                         lease_owner = NULL, lease_expires_at = NULL, lease_expiries = 0,
                         failure_reason = $4, updated_at = now()
                     WHERE pipeline_id = $1 AND document_id = ANY($2)",
                )
                .await?;
            tx.execute(
                &update,
                &[&pipeline_id, &to_move, &mv.stage, &mv.failure_reason],
            )
            .await?;
        }
        if !missing.is_empty() {
            let insert = tx
                .prepare_cached(
                    "INSERT INTO documents (pipeline_id, document_id, stage, ready_stage,
                                            failure_reason)
                     SELECT $1, d, $3, $3, $4 FROM unnest($2::text[]) AS d
                     ON CONFLICT (pipeline_id, document_id) DO UPDATE SET
                         stage = $3, ready_stage = $3, lease_owner = NULL,
                         lease_expires_at = NULL, lease_expiries = 0, failure_reason = $4,
                         updated_at = now()",
                )
                .await?;
            tx.execute(
                &insert,
                &[&pipeline_id, &missing, &mv.stage, &mv.failure_reason],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// `complete_documents`: to `indexed`, under the given guards.
    pub async fn complete<S: AsRef<str>>(
        &self,
        pipeline_id: &str,
        document_ids: &[S],
        guard: Guard,
    ) -> Result<u64, QueueError> {
        self.set_stage(pipeline_id, &moved(document_ids, stages::INDEXED, guard))
            .await
    }

    /// `fail_documents`: to `failed`, under the given guards, with an optional reason.
    pub async fn fail<S: AsRef<str>>(
        &self,
        pipeline_id: &str,
        document_ids: &[S],
        guard: Guard,
        reason: Option<&str>,
    ) -> Result<u64, QueueError> {
        let mut mv = moved(document_ids, stages::FAILED, guard);
        mv.failure_reason = reason.map(str::to_string);
        self.set_stage(pipeline_id, &mv).await
    }

    /// `release_documents`: back to `pending` (claimable at once), under the given guards.
    pub async fn release<S: AsRef<str>>(
        &self,
        pipeline_id: &str,
        document_ids: &[S],
        guard: Guard,
    ) -> Result<u64, QueueError> {
        self.set_stage(pipeline_id, &moved(document_ids, stages::PENDING, guard))
            .await
    }

    /// A transient failure reported by `worker_id` (the UDF runtime's `items/fail` with
    /// `kind: transient`): each document it still holds goes back to the stage it was claimed
    /// from, claimable after the policy's backoff, or to `failed` when its attempts are used up.
    /// Documents the worker does not hold are left alone and listed in neither set.
    pub async fn retry_later<S: AsRef<str>>(
        &self,
        pipeline_id: &str,
        document_ids: &[S],
        worker_id: &str,
        policy: RetryPolicy,
        reason: Option<&str>,
    ) -> Result<RetryOutcome, QueueError> {
        check_name("pipeline id", pipeline_id)?;
        check_name("worker_id", worker_id)?;
        let ids = check_ids(document_ids)?;
        if policy.max_attempts < 1 {
            return Err(QueueError::Invalid(
                "max_attempts must be at least 1".into(),
            ));
        }
        let initial = policy.initial_backoff.as_millis() as f64;
        let max = policy.max_backoff.as_millis() as f64;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "WITH mine AS (
                     SELECT pipeline_id, document_id FROM documents
                     WHERE pipeline_id = $1 AND document_id = ANY($2) AND lease_owner = $3
                     ORDER BY document_id FOR UPDATE
                 )
                 UPDATE documents d SET
                     stage = CASE WHEN d.attempts >= $4 THEN 'failed' ELSE d.ready_stage END,
                     ready_stage = CASE WHEN d.attempts >= $4 THEN 'failed' ELSE d.ready_stage END,
                     lease_owner = NULL,
                     lease_expires_at = CASE WHEN d.attempts >= $4 THEN NULL
                         ELSE now() + least($6::float8,
                                            $5::float8 * power(2::float8, greatest(d.attempts - 1, 0)))
                                      * (0.5 + random() * 0.5)
                                      * interval '1 millisecond' END,
                     failure_reason = $7, updated_at = now()
                 FROM mine
                 WHERE d.pipeline_id = mine.pipeline_id AND d.document_id = mine.document_id
                 RETURNING d.document_id, d.stage = 'failed'",
            )
            .await?;
        let rows = client
            .query(
                &stmt,
                &[
                    &pipeline_id,
                    &ids,
                    &worker_id,
                    &policy.max_attempts,
                    &initial,
                    &max,
                    &reason,
                ],
            )
            .await?;
        let mut out = RetryOutcome::default();
        for row in rows {
            let id: String = row.get(0);
            if row.get::<_, bool>(1) {
                out.failed.push(id);
            } else {
                out.requeued.push(id);
            }
        }
        out.requeued.sort_unstable();
        out.failed.sort_unstable();
        Ok(out)
    }
}

fn moved<S: AsRef<str>>(document_ids: &[S], stage: &str, guard: Guard) -> StageMove {
    let mut mv = StageMove::new(document_ids, stage);
    mv.guard = guard;
    mv
}

/// Locks the pipeline's row `FOR KEY SHARE` inside `tx`, which holds off a concurrent delete of
/// the pipeline (its cascade would take the documents the transaction is changing) until `tx`
/// ends; [`QueueError::NotFound`] when there is no such pipeline.
pub(crate) async fn lock_pipeline(
    tx: &deadpool_postgres::Transaction<'_>,
    pipeline_id: &str,
) -> Result<(), QueueError> {
    let stmt = tx
        .prepare_cached("SELECT 1 FROM pipelines WHERE id = $1 FOR KEY SHARE")
        .await?;
    match tx.query_opt(&stmt, &[&pipeline_id]).await? {
        Some(_) => Ok(()),
        None => Err(QueueError::pipeline_not_found(pipeline_id)),
    }
}
