//! A UDF's items on the lease queue: enqueue (discovery), claim, complete, fail, heartbeat and
//! reset. An item is one row of an index: its key is `<namespace>/<id>` (namespaces cannot
//! contain `/`), its payload what the gateway hands workers and writes back with.
//!
//! Stages: `pending` (claimable, or waiting out a retry backoff), `processing` (leased),
//! `indexed` (completed: the marker is written), `failed`. Claims, leases, the lease-expiry cap
//! and retry backoff are the queue's own ([`crate::lease`], [`Queue::retry_later`]).
//!
//! The rules this module adds:
//! - **Enqueue is idempotent.** A row already `pending` or `processing` is left alone. A completed
//!   row is queued again only when its version differs from the sweep's, or its marker was
//!   acknowledged at or before the sweep's cut (the read saw the marker, so the row really needs
//!   work again: its `stale_after` passed). A completed row whose marker came after the cut was
//!   read from before its completion and is skipped. A failed row is queued again only for a new
//!   version (`reset-failed` requeues failed rows otherwise).
//! - **Claims** answer nothing while the UDF is paused, and nothing when `max_in_flight` other
//!   workers hold live leases (one batch per worker). Claims of one UDF are serialised by an
//!   advisory lock, so the bound is exact; the claim is one statement pipelined behind the lock
//!   ([`UDF_CLAIM_SQL`]).
//! - **Completion holds the rows.** [`Queue::begin_completion`] locks the named rows in a
//!   transaction and keeps them locked while the gateway writes the attributes and the marker
//!   upstream; [`Completion::commit`] marks them `indexed`. A claim meanwhile skips locked rows,
//!   so a lease that runs out during the write cannot hand the row to another worker. Only rows
//!   the reporting worker holds (its lease, even run out, as long as no other claim took the row)
//!   are written; rows another worker took over are left to it (and not counted), and rows this
//!   worker's own earlier report completed count as completed again (a retried call after a lost
//!   answer). A failed write rolls back: the
//!   rows stay leased to the worker.

use std::time::Duration;

use serde_json::Value;

use crate::transition::RetryPolicy;
use crate::udfs::queue_id;
use crate::{MAX_CLAIM, Queue, QueueError, check_ids, check_name, lease_millis, stages};

/// The stage a claimed item sits in while leased.
pub const PROCESSING: &str = "processing";
/// The `failure_reason` of an item a worker failed permanently.
pub const PERMANENT: &str = "permanent";
/// The `failure_reason` of an item whose transient failures used up its attempts.
pub const MAX_ATTEMPTS: &str = "max_attempts";
/// How long a completion may hold its rows before PostgreSQL ends the transaction (a gateway
/// that stopped mid-write must not keep rows from being claimed again).
pub const COMPLETION_HOLD: Duration = Duration::from_secs(120);

/// The claim statement of UDF items: the pipelines' [`crate::lease::CLAIM_SQL`] with two more
/// conditions on the rows it picks, evaluated once per statement: the UDF ($9) is not paused, and
/// fewer than $10 other workers than the claimer ($4) hold live leases. An item whose lease ran
/// out too often is failed on the way (as for pipelines) and left out of the answer.
pub static UDF_CLAIM_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let gate = "      AND ($7::text IS NULL OR starts_with(document_id, $7::text))
      AND NOT coalesce((SELECT paused FROM udfs WHERE id = $9::text), true)
      AND (SELECT count(DISTINCT lease_owner) FROM documents
           WHERE pipeline_id = $1 AND ready_stage = $2
             AND ready_stage NOT IN ('indexed', 'failed')
             AND lease_expires_at > now() AND lease_owner IS NOT NULL
             AND lease_owner <> $4) < $10::bigint";
    crate::lease::CLAIM_SQL.replace(
        "      AND ($7::text IS NULL OR starts_with(document_id, $7::text))",
        gate,
    )
});

/// An item discovery found.
#[derive(Clone, Debug)]
pub struct NewItem {
    /// `<namespace>/<id as text>`.
    pub key: String,
    pub payload: Value,
}

/// A claimed item.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedItem {
    pub key: String,
    pub payload: Value,
    pub attempts: i32,
    /// Another worker's lease on it ran out.
    pub lease_expired: bool,
}

/// The item key of row `id` in namespace `ns`.
pub fn item_key(ns: &str, id: &str) -> String {
    format!("{ns}/{id}")
}

/// What a claim asks for.
#[derive(Clone, Debug)]
pub struct ItemClaim {
    pub worker_id: String,
    pub limit: u32,
    pub lease: Duration,
    /// Live batches (workers with leases) beyond which claims answer nothing.
    pub max_in_flight: i64,
}

impl Queue {
    /// Enqueues what a discovery sweep found under the module's rules; returns how many items
    /// were queued (new, or completed or failed ones queued again).
    pub async fn enqueue_items(
        &self,
        udf: &str,
        version: &str,
        cut_ms: i64,
        items: &[NewItem],
    ) -> Result<u64, QueueError> {
        if items.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&str> = items.iter().map(|i| i.key.as_str()).collect();
        for k in &keys {
            check_name("item key", k)?;
        }
        let payloads: Vec<&Value> = items.iter().map(|i| &i.payload).collect();
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO documents (pipeline_id, document_id, stage, ready_stage, payload, tag)
                 SELECT $1, k, 'pending', 'pending', p, $3
                 FROM unnest($2::text[], $4::jsonb[]) AS t(k, p)
                 ON CONFLICT (pipeline_id, document_id) DO UPDATE SET
                     stage = 'pending', ready_stage = 'pending', payload = EXCLUDED.payload,
                     tag = EXCLUDED.tag, lease_owner = NULL, lease_expires_at = NULL,
                     lease_expiries = 0, attempts = 0, failure_reason = NULL,
                     marked_at_ms = NULL, updated_at = now()
                 WHERE (documents.stage = 'indexed'
                        AND (documents.tag IS DISTINCT FROM EXCLUDED.tag
                             OR documents.marked_at_ms IS NULL
                             OR documents.marked_at_ms <= $5))
                    OR (documents.stage = 'failed' AND documents.tag IS DISTINCT FROM EXCLUDED.tag)",
            )
            .await?;
        let n = client
            .execute(
                &stmt,
                &[&queue_id(udf), &keys, &version, &payloads, &cut_ms],
            )
            .await
            .map_err(|e| crate::stage::missing_pipeline(e, udf))?;
        self.staged(n);
        Ok(n)
    }

    /// Claims up to `claim.limit` items under the module's rules. [`QueueError::NotFound`] for an
    /// unknown UDF.
    ///
    /// Three round trips: `BEGIN`; the UDF's advisory lock and [`UDF_CLAIM_SQL`] pipelined (the
    /// claim's snapshot is taken once the lock is held, so its count of live batches is exact);
    /// `COMMIT`. Claims of one UDF run one at a time for as long as that takes.
    pub async fn claim_items(
        &self,
        udf: &str,
        claim: &ItemClaim,
    ) -> Result<Vec<ClaimedItem>, QueueError> {
        check_name("worker_id", &claim.worker_id)?;
        if claim.limit == 0 || claim.limit > MAX_CLAIM {
            return Err(QueueError::Invalid(format!(
                "limit must be between 1 and {MAX_CLAIM}"
            )));
        }
        let lease = lease_millis(claim.lease)?;
        let qid = queue_id(udf);
        let mut client = self.client().await?;
        let lock = client
            .prepare_cached("SELECT pg_advisory_xact_lock(hashtext($1))")
            .await?;
        let stmt = client.prepare_cached(&UDF_CLAIM_SQL).await?;
        let tx = client.transaction().await?;
        let limit = i64::from(claim.limit);
        let no_prefix: Option<String> = None;
        let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&qid];
        let claim_params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
            &qid,
            &stages::PENDING,
            &PROCESSING,
            &claim.worker_id,
            &limit,
            &lease,
            &no_prefix,
            &self.max_lease_expiries,
            &udf,
            &claim.max_in_flight,
        ];
        let (locked, rows) = tokio::join!(
            tx.execute(&lock, &lock_params),
            tx.query(&stmt, &claim_params)
        );
        locked?;
        let rows = rows?;
        tx.commit().await?;
        let claimed: Vec<ClaimedItem> = rows
            .iter()
            .filter(|row| !row.get::<_, bool>(4))
            .map(|row| ClaimedItem {
                key: row.get(0),
                payload: row.get::<_, Option<Value>>(5).unwrap_or(Value::Null),
                attempts: row.get(2),
                lease_expired: row.get(3),
            })
            .collect();
        if claimed.is_empty() {
            // Nothing claimable, paused, at the batch bound, or no such UDF: only the empty
            // case pays for the check.
            self.get_udf(udf).await?;
        }
        Ok(claimed)
    }

    /// Extends the leases `worker_id` holds on these items; returns how many.
    pub async fn heartbeat_items<S: AsRef<str>>(
        &self,
        udf: &str,
        keys: &[S],
        worker_id: &str,
        lease: Duration,
    ) -> Result<u64, QueueError> {
        self.get_udf(udf).await?;
        let extended = self
            .heartbeat(&queue_id(udf), keys, worker_id, PROCESSING, Some(lease))
            .await?;
        Ok(extended.len() as u64)
    }

    /// Transient failures reported by `worker_id`: retried after the policy's backoff, or failed
    /// ([`MAX_ATTEMPTS`]) when their attempts are used up. Items it does not hold are left
    /// alone. Returns how many it changed.
    pub async fn retry_items<S: AsRef<str>>(
        &self,
        udf: &str,
        keys: &[S],
        worker_id: &str,
        policy: RetryPolicy,
    ) -> Result<u64, QueueError> {
        self.get_udf(udf).await?;
        let out = self
            .retry_later(&queue_id(udf), keys, worker_id, policy, Some(MAX_ATTEMPTS))
            .await?;
        Ok((out.requeued.len() + out.failed.len()) as u64)
    }

    /// Permanent failures reported by `worker_id`: `failed` at once ([`PERMANENT`]). Items it does
    /// not hold are left alone. Returns how many it changed.
    pub async fn fail_items<S: AsRef<str>>(
        &self,
        udf: &str,
        keys: &[S],
        worker_id: &str,
    ) -> Result<u64, QueueError> {
        check_name("worker_id", worker_id)?;
        let keys = check_ids(keys)?;
        self.get_udf(udf).await?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "WITH mine AS (
                     SELECT pipeline_id, document_id FROM documents
                     WHERE pipeline_id = $1 AND document_id = ANY($2) AND lease_owner = $3
                       AND stage = 'processing'
                     ORDER BY document_id FOR UPDATE
                 )
                 UPDATE documents d SET stage = 'failed', ready_stage = 'failed',
                     lease_owner = NULL, lease_expires_at = NULL, failure_reason = $4,
                     updated_at = now()
                 FROM mine
                 WHERE d.pipeline_id = mine.pipeline_id AND d.document_id = mine.document_id",
            )
            .await?;
        Ok(client
            .execute(&stmt, &[&queue_id(udf), &keys, &worker_id, &PERMANENT])
            .await?)
    }

    /// `reset-failed`: every failed item back to `pending` with its attempts reset. Returns how
    /// many.
    pub async fn reset_failed_items(&self, udf: &str) -> Result<u64, QueueError> {
        self.get_udf(udf).await?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE documents SET stage = 'pending', ready_stage = 'pending',
                     lease_owner = NULL, lease_expires_at = NULL, lease_expiries = 0,
                     attempts = 0, failure_reason = NULL, updated_at = now()
                 WHERE pipeline_id = $1 AND stage = 'failed'",
            )
            .await?;
        Ok(client.execute(&stmt, &[&queue_id(udf)]).await?)
    }

    /// Starts a completion (see the module docs): locks the UDF's row against deletion and the
    /// named items, and sorts them into the ones `worker_id` holds (to write) and the ones
    /// already completed. The UDF's spec is read in the same transaction, so the version the
    /// marker gets is the one in force while the rows are held.
    pub async fn begin_completion<S: AsRef<str>>(
        &self,
        udf: &str,
        keys: &[S],
        worker_id: &str,
    ) -> Result<Completion, QueueError> {
        check_name("worker_id", worker_id)?;
        let keys = check_ids(keys)?;
        let client = self.client().await?;
        let mut completion = Completion {
            client: Some(client),
            worker_id: worker_id.to_string(),
            queue_id: queue_id(udf),
            spec: Value::Null,
            held: Vec::new(),
            already_completed: 0,
        };
        completion.begin(udf, &keys, worker_id).await?;
        Ok(completion)
    }
}

/// A completion in progress: its rows stay locked until [`Completion::commit`], and are released
/// unchanged by [`Completion::rollback`] or by dropping it (the connection is then closed, which
/// ends the transaction).
pub struct Completion {
    client: Option<deadpool_postgres::Client>,
    worker_id: String,
    queue_id: String,
    /// The UDF's spec, read under the lock.
    pub spec: Value,
    /// The items the worker holds: `(key, payload)`, by key.
    pub held: Vec<(String, Value)>,
    /// Items this worker's own earlier report completed: a retried report (after a lost answer).
    pub already_completed: u64,
}

impl Completion {
    async fn begin(&mut self, udf: &str, keys: &[String], worker: &str) -> Result<(), QueueError> {
        let hold = format!(
            "BEGIN; SET LOCAL idle_in_transaction_session_timeout = '{}s'",
            COMPLETION_HOLD.as_secs()
        );
        let Some(client) = self.client.as_ref() else {
            return Err(QueueError::Database("completion already ended".into()));
        };
        client.batch_execute(&hold).await?;
        let spec = client
            .prepare_cached("SELECT spec FROM udfs WHERE id = $1 FOR KEY SHARE")
            .await?;
        let rows = client
            .prepare_cached(
                "SELECT document_id, stage, lease_owner, payload, done_by FROM documents
                 WHERE pipeline_id = $1 AND document_id = ANY($2)
                 ORDER BY document_id FOR UPDATE",
            )
            .await?;
        // One round trip for both (pipelined; the UDF's row is locked first).
        let spec_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&udf];
        let row_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&self.queue_id, &keys];
        let (spec_row, item_rows) = tokio::join!(
            client.query_opt(&spec, &spec_params),
            client.query(&rows, &row_params)
        );
        let Some(row) = spec_row? else {
            return Err(QueueError::udf_not_found(udf));
        };
        self.spec = row.get(0);
        for row in item_rows? {
            let stage: String = row.get(1);
            let owner: Option<String> = row.get(2);
            if stage == PROCESSING && owner.as_deref() == Some(worker) {
                self.held.push((
                    row.get(0),
                    row.get::<_, Option<Value>>(3).unwrap_or_default(),
                ));
            } else if stage == stages::INDEXED
                && owner.is_none()
                && row.get::<_, Option<String>>(4).as_deref() == Some(worker)
            {
                self.already_completed += 1;
            }
        }
        Ok(())
    }

    /// Marks `keys` (a subset of [`Completion::held`]) completed with `version`, their marker
    /// acknowledged at `marked_at_ms`, and ends the transaction. Returns how many it marked.
    pub async fn commit(
        mut self,
        keys: &[String],
        version: &str,
        marked_at_ms: i64,
    ) -> Result<u64, QueueError> {
        let client = self.take()?;
        let result = async {
            let mut n = 0;
            if !keys.is_empty() {
                let stmt = client
                    .prepare_cached(
                        "UPDATE documents SET stage = 'indexed', ready_stage = 'indexed',
                             lease_owner = NULL, lease_expires_at = NULL, lease_expiries = 0,
                             failure_reason = NULL, tag = $3, marked_at_ms = $4,
                             done_by = $5, updated_at = now()
                         WHERE pipeline_id = $1 AND document_id = ANY($2)",
                    )
                    .await?;
                // The update and the COMMIT in one round trip.
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
                    &self.queue_id,
                    &keys,
                    &version,
                    &marked_at_ms,
                    &self.worker_id,
                ];
                let (updated, committed) = tokio::join!(
                    client.execute(&stmt, &params),
                    client.batch_execute("COMMIT")
                );
                n = updated?;
                committed?;
                return Ok(n);
            }
            client.batch_execute("COMMIT").await?;
            Ok(n)
        }
        .await;
        finish(client, result)
    }

    /// Releases the rows unchanged.
    pub async fn rollback(mut self) -> Result<(), QueueError> {
        let client = self.take()?;
        let result = client
            .batch_execute("ROLLBACK")
            .await
            .map_err(QueueError::from);
        finish(client, result)
    }

    fn take(&mut self) -> Result<deadpool_postgres::Client, QueueError> {
        self.client
            .take()
            .ok_or_else(|| QueueError::Database("completion already ended".into()))
    }
}

/// Hands the connection back to the pool when its transaction ended, and closes it otherwise.
fn finish<T>(
    client: deadpool_postgres::Client,
    result: Result<T, QueueError>,
) -> Result<T, QueueError> {
    if result.is_err() {
        drop(deadpool_postgres::Object::take(client));
    }
    result
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Still inside the transaction (an error or a cancelled caller): never hand that
            // connection back to the pool; closing it makes PostgreSQL roll back.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}
