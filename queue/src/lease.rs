//! Claims and heartbeats: the lease half of the queue.
//!
//! A claim is one statement: it picks up to `limit` claimable rows with
//! `FOR UPDATE SKIP LOCKED` (two concurrent claims never wait on, or take, the same row), moves
//! them to the claim stage, sets the lease owner and expiry (`now() + lease`) and counts the
//! attempt. A row is claimable from stage S when its `ready_stage` is S and it has no lease or
//! its lease ran out; a run-out lease needs no sweeper, the next claim simply takes the document.
//! A lease is lost only when another claim takes the document: until then its owner may still
//! heartbeat it or move it on, even past the expiry.
//!
//! Terminal stages (`indexed`, `failed`) cannot be claimed from: the claim index leaves them out,
//! which is what keeps claims flat however many documents have completed.

use std::time::Duration;

use serde::Serialize;

use crate::{MAX_CLAIM, Queue, QueueError, check_ids, check_name, lease_millis, stages};

/// What a claim asks for. [`Claim::new`] gives the contract's defaults.
#[derive(Clone, Debug)]
pub struct Claim {
    pub worker_id: String,
    /// The stage to claim from (default `pending`).
    pub from_stage: String,
    /// The stage claimed documents sit in while leased (default `embedding`).
    pub claim_stage: String,
    /// At most this many documents (default 100, at most [`MAX_CLAIM`]).
    pub limit: u32,
    /// The lease; `None` is the queue's default lease (900 s unless configured).
    pub lease: Option<Duration>,
    /// Only documents whose id starts with this.
    pub document_id_prefix: Option<String>,
}

impl Claim {
    /// A claim from `pending` to `embedding` of up to 100 documents under the default lease.
    pub fn new(worker_id: impl Into<String>) -> Self {
        Claim {
            worker_id: worker_id.into(),
            from_stage: stages::PENDING.to_string(),
            claim_stage: stages::EMBEDDING.to_string(),
            limit: 100,
            lease: None,
            document_id_prefix: None,
        }
    }

    /// Sets the limit.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Sets the lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Sets the from and claim stages.
    pub fn stages(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.from_stage = from.into();
        self.claim_stage = to.into();
        self
    }
}

/// One claimed document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Claimed {
    pub document_id: String,
    /// The generation of the chunks to read.
    pub generation: i64,
    /// Claims so far, this one included.
    pub attempts: i32,
    /// The document was still under another lease that had run out (its holder neither moved it
    /// on nor released it): a lease expiry, counted by the gateway's metrics.
    pub lease_expired: bool,
}

/// The claim statement. Its predicate repeats the claim index's (`ready_stage NOT IN ('indexed',
/// 'failed')`) literally so a generic (prepared) plan can use `documents_claimable`. Public so
/// that tests and the benchmark can `EXPLAIN` it and drive it straight at PostgreSQL.
/// Parameters: $1 pipeline, $2 from stage, $3 claim stage, $4 worker, $5 limit (bigint),
/// $6 lease in ms (bigint), $7 id prefix (text or NULL), $8 the lease-expiry cap (integer).
/// Columns: id, generation, attempts, lease ran out, exhausted, payload (UDF items' JSON).
///
/// A picked row whose lease ran out for the cap-th time since it was staged is not claimed: it
/// moves to `failed` with the reason [`LEASE_EXPIRED`] and comes back with `exhausted` set;
/// [`Queue::claim`] leaves it out of its answer and claims again for the places it took.
pub const CLAIM_SQL: &str = "\
WITH picked AS (
    SELECT pipeline_id, document_id, lease_owner AS previous_owner,
           lease_owner IS NOT NULL AND lease_expiries + 1 >= $8::integer AS exhausted
    FROM documents
    WHERE pipeline_id = $1 AND ready_stage = $2
      AND ready_stage NOT IN ('indexed', 'failed')
      AND (lease_expires_at IS NULL OR lease_expires_at <= now())
      AND ($7::text IS NULL OR starts_with(document_id, $7::text))
    LIMIT $5
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE documents d SET
        stage = CASE WHEN picked.exhausted THEN 'failed' ELSE $3 END,
        ready_stage = CASE WHEN picked.exhausted THEN 'failed' ELSE d.ready_stage END,
        lease_owner = CASE WHEN picked.exhausted THEN NULL ELSE $4 END,
        lease_expires_at = CASE WHEN picked.exhausted THEN NULL
                                ELSE now() + $6::bigint * interval '1 millisecond' END,
        lease_expiries = d.lease_expiries + (picked.previous_owner IS NOT NULL)::integer,
        attempts = d.attempts + (NOT picked.exhausted)::integer,
        failure_reason = CASE WHEN picked.exhausted THEN 'lease_expired' ELSE NULL END,
        updated_at = now()
    FROM picked
    WHERE d.pipeline_id = picked.pipeline_id AND d.document_id = picked.document_id
    RETURNING d.document_id, d.generation, d.attempts,
              picked.previous_owner IS NOT NULL AS lease_ran_out, picked.exhausted, d.payload
)
SELECT document_id, generation, attempts, lease_ran_out, exhausted, payload FROM moved";

/// The `failure_reason` of a document failed because its lease ran out too often.
pub const LEASE_EXPIRED: &str = "lease_expired";

impl Queue {
    /// Claims up to `claim.limit` documents (see the module docs). An empty result means nothing
    /// is claimable now; [`QueueError::NotFound`] when the pipeline does not exist.
    pub async fn claim(
        &self,
        pipeline_id: &str,
        claim: &Claim,
    ) -> Result<Vec<Claimed>, QueueError> {
        check_name("pipeline id", pipeline_id)?;
        check_name("worker_id", &claim.worker_id)?;
        check_name("stage", &claim.from_stage)?;
        check_name("claim_stage", &claim.claim_stage)?;
        for (what, stage) in [
            ("stage", &claim.from_stage),
            ("claim_stage", &claim.claim_stage),
        ] {
            if stages::TERMINAL.contains(&stage.as_str()) {
                return Err(QueueError::Invalid(format!(
                    "{what} {stage} is terminal: documents are not claimed from or into it"
                )));
            }
        }
        if claim.limit == 0 || claim.limit > MAX_CLAIM {
            return Err(QueueError::Invalid(format!(
                "limit must be between 1 and {MAX_CLAIM}"
            )));
        }
        if let Some(prefix) = &claim.document_id_prefix {
            check_name("document_id_prefix", prefix)?;
        }
        let lease = lease_millis(claim.lease.unwrap_or(self.default_lease))?;
        let client = self.client().await?;
        let claimed: Vec<Claimed> = self
            .claim_rows(&client, pipeline_id, claim, lease)
            .await?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        if claimed.is_empty() {
            // Nothing claimable, or no such pipeline: only the empty case pays for the check.
            let exists = client
                .prepare_cached("SELECT 1 FROM pipelines WHERE id = $1")
                .await?;
            if client.query_opt(&exists, &[&pipeline_id]).await?.is_none() {
                return Err(QueueError::pipeline_not_found(pipeline_id));
            }
        }
        Ok(claimed)
    }

    /// The claim statement run in passes on `client` (a pooled connection or a transaction):
    /// documents failed for their run-out leases take places in a claim's LIMIT without being
    /// claimed, so it claims again for those places, and a worker is not told "nothing to do"
    /// while documents are claimable. Each pass fails at least one document, so this ends; the
    /// bound only keeps one call short when very many fail at once. Returns each claimed
    /// document with its payload (UDF items; `None` for pipeline documents).
    pub(crate) async fn claim_rows<C: deadpool_postgres::GenericClient>(
        &self,
        client: &C,
        pipeline_id: &str,
        claim: &Claim,
        lease_ms: i64,
    ) -> Result<Vec<(Claimed, Option<serde_json::Value>)>, QueueError> {
        let stmt = client.prepare_cached(CLAIM_SQL).await?;
        let mut claimed = Vec::new();
        for _ in 0..8 {
            let want = i64::from(claim.limit) - claimed.len() as i64;
            let rows = client
                .query(
                    &stmt,
                    &[
                        &pipeline_id,
                        &claim.from_stage,
                        &claim.claim_stage,
                        &claim.worker_id,
                        &want,
                        &lease_ms,
                        &claim.document_id_prefix,
                        &self.max_lease_expiries,
                    ],
                )
                .await?;
            let mut failed = 0;
            for row in &rows {
                if row.get::<_, bool>(4) {
                    failed += 1;
                } else {
                    let doc = Claimed {
                        document_id: row.get(0),
                        generation: row.get(1),
                        attempts: row.get(2),
                        lease_expired: row.get(3),
                    };
                    claimed.push((doc, row.get(5)));
                }
            }
            if failed == 0 || claimed.len() >= claim.limit as usize {
                break;
            }
        }
        Ok(claimed)
    }

    /// Extends the leases `worker_id` holds on these documents in `stage` to `now() + lease`
    /// (`None`: the default lease). Returns the ids it extended; documents another worker has
    /// claimed since, or that moved on, are left alone and not returned.
    pub async fn heartbeat<S: AsRef<str>>(
        &self,
        pipeline_id: &str,
        document_ids: &[S],
        worker_id: &str,
        stage: &str,
        lease: Option<Duration>,
    ) -> Result<Vec<String>, QueueError> {
        check_name("pipeline id", pipeline_id)?;
        check_name("worker_id", worker_id)?;
        check_name("stage", stage)?;
        let ids = check_ids(document_ids)?;
        let lease = lease_millis(lease.unwrap_or(self.default_lease))?;
        let client = self.client().await?;
        // Rows are locked in id order, the order every multi-row write here uses, so a heartbeat
        // and a stage move over the same documents cannot deadlock.
        let stmt = client
            .prepare_cached(
                "WITH mine AS (
                     SELECT pipeline_id, document_id FROM documents
                     WHERE pipeline_id = $1 AND document_id = ANY($2)
                       AND stage = $3 AND lease_owner = $4
                     ORDER BY document_id FOR UPDATE
                 )
                 UPDATE documents d SET
                     lease_expires_at = now() + $5::bigint * interval '1 millisecond', updated_at = now()
                 FROM mine
                 WHERE d.pipeline_id = mine.pipeline_id AND d.document_id = mine.document_id
                 RETURNING d.document_id",
            )
            .await?;
        let rows = client
            .query(&stmt, &[&pipeline_id, &ids, &stage, &worker_id, &lease])
            .await?;
        let mut extended: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
        extended.sort_unstable();
        Ok(extended)
    }
}
