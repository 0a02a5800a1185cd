//! Claims, heartbeats, stage moves and their guards, lease expiry and retries, against a real
//! PostgreSQL.

mod common;

use std::time::{Duration, SystemTime};

use layer_queue::{Claim, Guard, NewPipeline, QueueError, RetryPolicy, StageMove};

fn held_by(worker: &str) -> Guard {
    Guard {
        from_stage: Some("embedding".into()),
        worker_id: Some(worker.into()),
    }
}

fn ids(claimed: &[layer_queue::Claimed]) -> Vec<String> {
    let mut v: Vec<String> = claimed.iter().map(|c| c.document_id.clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn claim_heartbeat_and_guarded_stage_moves() {
    let Some(db) = common::with_pipeline("guards").await else {
        return;
    };
    let q = &db.queue;
    q.stage_documents("p", &["a", "b", "c"]).await.unwrap();

    let w1 = q.claim("p", &Claim::new("w1").limit(2)).await.unwrap();
    let w2 = q.claim("p", &Claim::new("w2").limit(5)).await.unwrap();
    assert_eq!(w1.len(), 2);
    assert_eq!(w2.len(), 1, "the third document only");
    assert!(q.claim("p", &Claim::new("w3")).await.unwrap().is_empty());
    let (w1_ids, w2_id) = (ids(&w1), w2[0].document_id.clone());
    assert!(!w1_ids.contains(&w2_id));
    let status = q.status("p").await.unwrap();
    assert_eq!(status.counts.get("embedding"), Some(&3));
    assert_eq!((status.pending_count, status.processing_count), (0, 3));

    // Heartbeats extend only the caller's own leases.
    let all: Vec<&str> = ["a", "b", "c"].to_vec();
    let extended = q
        .heartbeat("p", &all, "w2", "embedding", None)
        .await
        .unwrap();
    assert_eq!(extended, vec![w2_id.clone()]);
    let extended = q
        .heartbeat("p", &all, "w1", "embedding", None)
        .await
        .unwrap();
    assert_eq!(extended, w1_ids);
    assert!(
        q.heartbeat("p", &all, "w1", "other-stage", None)
            .await
            .unwrap()
            .is_empty()
    );

    // A guarded move over documents w1 does not all hold: 409 naming the others, nothing written.
    let e = q.complete("p", &all, held_by("w1")).await.unwrap_err();
    match &e {
        QueueError::Conflict { document_ids, .. } => assert_eq!(document_ids, &vec![w2_id.clone()]),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(e.status().as_u16(), 409);
    for id in &w1_ids {
        assert_eq!(q.document("p", id).await.unwrap().stage, "embedding");
    }
    // from_stage must match the stored stage.
    let e = q
        .complete(
            "p",
            &w1_ids,
            Guard {
                from_stage: Some("pending".into()),
                worker_id: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 409);

    // The holder completes; a retry of the same call (a lost response) is not a conflict.
    assert_eq!(q.complete("p", &w1_ids, held_by("w1")).await.unwrap(), 2);
    assert_eq!(q.complete("p", &w1_ids, held_by("w1")).await.unwrap(), 2);
    let done = q.document("p", &w1_ids[0]).await.unwrap();
    assert_eq!((done.stage.as_str(), done.lease_owner), ("indexed", None));

    // Release puts a document back: claimable at once, its attempts counted.
    assert_eq!(
        q.release("p", &[w2_id.as_str()], held_by("w2"))
            .await
            .unwrap(),
        1
    );
    let again = q.claim("p", &Claim::new("w3")).await.unwrap();
    assert_eq!(ids(&again), vec![w2_id.clone()]);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(
        q.fail("p", &[w2_id.as_str()], held_by("w3"), Some("bad pdf"))
            .await
            .unwrap(),
        1
    );
    let status = q.status("p").await.unwrap();
    assert_eq!(status.counts.get("indexed"), Some(&2));
    assert_eq!(status.failed_count, 1);
    assert_eq!(status.failed_reasons.get("bad pdf"), Some(&1));
    assert!(status.indexed_rate_per_min > 0.0);
    assert_eq!(status.status, "idle");

    // Missing documents: 404 naming them unless create_missing, which creates them in the stage.
    let mut mv = StageMove::new(&["a", "zz"], "pending");
    let e = q.set_stage("p", &mv).await.unwrap_err();
    match &e {
        QueueError::NotFound { document_ids, .. } => {
            assert_eq!(document_ids, &vec!["zz".to_string()])
        }
        other => panic!("expected not found, got {other:?}"),
    }
    assert_eq!(
        q.document("p", "a").await.unwrap().stage,
        "indexed",
        "nothing written"
    );
    mv.create_missing = true;
    assert_eq!(q.set_stage("p", &mv).await.unwrap(), 2);
    assert_eq!(q.document("p", "zz").await.unwrap().stage, "pending");
    assert_eq!(q.document("p", "a").await.unwrap().stage, "pending");

    // Stage names are free-form: an N-stage pipeline claims from its own stages.
    q.set_stage("p", &StageMove::new(&["a"], "ocr-done"))
        .await
        .unwrap();
    let c = Claim::new("w4").stages("ocr-done", "chunking");
    assert_eq!(ids(&q.claim("p", &c).await.unwrap()), vec!["a".to_string()]);

    // Bad input and unknown pipelines.
    let terminal = Claim::new("w").stages("indexed", "embedding");
    assert_eq!(
        q.claim("p", &terminal).await.unwrap_err().status().as_u16(),
        422
    );
    assert_eq!(
        q.claim("p", &Claim::new("w").limit(0))
            .await
            .unwrap_err()
            .status()
            .as_u16(),
        422
    );
    assert_eq!(
        q.claim("nope", &Claim::new("w"))
            .await
            .unwrap_err()
            .status()
            .as_u16(),
        404
    );
    let e = q
        .set_stage("nope", &StageMove::new(&["a"], "x"))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 404);
    let e = q
        .heartbeat::<&str>("p", &[], "w", "embedding", None)
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 422);
}

#[tokio::test]
async fn expired_leases_are_claimable_again_and_heartbeats_keep_them() {
    let Some(db) = common::with_pipeline("expiry").await else {
        return;
    };
    let q = &db.queue;
    q.stage_documents("p", &["a", "b", "c", "d"]).await.unwrap();

    // Leases here are 300 ms, not the 900 s default, so the test waits a fraction of a second
    // for one to run out; the rules do not depend on the length. The waits are sleeps past the
    // expiry, never assertions on how long anything took.
    let short = Duration::from_millis(300);
    let lost = q
        .claim("p", &Claim::new("crashed").limit(2).lease(short))
        .await
        .unwrap();
    let kept = q
        .claim("p", &Claim::new("alive").limit(2).lease(short))
        .await
        .unwrap();
    assert_eq!(lost.len() + kept.len(), 4);
    // The live worker heartbeats at once with a long lease; the crashed one never does.
    let kept_ids = ids(&kept);
    let extended = q
        .heartbeat(
            "p",
            &kept_ids,
            "alive",
            "embedding",
            Some(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    assert_eq!(extended, kept_ids);
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Without any sweeper: the run-out leases count as pending again and the next claim takes
    // exactly them.
    let status = q.status("p").await.unwrap();
    assert_eq!(status.pending_count, 2, "{status:?}");
    assert_eq!(status.processing_count, 2, "{status:?}");
    let next = q.claim("p", &Claim::new("next")).await.unwrap();
    assert_eq!(ids(&next), ids(&lost));
    assert!(next.iter().all(|c| c.attempts == 2));

    // The crashed worker lost them: its heartbeat extends nothing and its completion is refused.
    let lost_ids = ids(&lost);
    assert!(
        q.heartbeat("p", &lost_ids, "crashed", "embedding", None)
            .await
            .unwrap()
            .is_empty()
    );
    let e = q
        .complete("p", &lost_ids, held_by("crashed"))
        .await
        .unwrap_err();
    assert_eq!(e.status().as_u16(), 409);
    assert_eq!(
        q.complete("p", &lost_ids, held_by("next")).await.unwrap(),
        2
    );

    // A lease that ran out but was not re-claimed is still its owner's: a late worker finishes.
    q.stage_documents("p", &["late"]).await.unwrap();
    q.claim("p", &Claim::new("slow").lease(Duration::from_millis(100)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        q.complete("p", &["late"], held_by("slow")).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn default_lease_is_now_plus_900_seconds() {
    let Some(db) = common::queue("default_lease").await else {
        return;
    };
    let q = &db.queue;
    assert_eq!(q.default_lease(), Duration::from_secs(900));
    q.create_pipeline(&NewPipeline::new("p", "ns"))
        .await
        .unwrap();
    q.stage_documents("p", &["a"]).await.unwrap();
    let raw = db.raw().await;
    let clock = || async {
        raw.query_one("SELECT clock_timestamp()", &[])
            .await
            .unwrap()
            .get::<_, SystemTime>(0)
    };
    let before = clock().await;
    q.claim("p", &Claim::new("w")).await.unwrap();
    let after = clock().await;
    let expires = q
        .document("p", "a")
        .await
        .unwrap()
        .lease_expires_at
        .unwrap();
    let lease = Duration::from_secs(900);
    assert!(
        expires >= before + lease,
        "{expires:?} < {before:?} + 900 s"
    );
    assert!(expires <= after + lease, "{expires:?} > {after:?} + 900 s");
}

#[tokio::test]
async fn transient_failures_back_off_then_fail() {
    let Some(db) = common::queue("retry").await else {
        return;
    };
    let q = &db.queue;
    q.create_pipeline(&NewPipeline::new("u", "ns"))
        .await
        .unwrap();
    q.stage_documents("u", &["x"]).await.unwrap();
    // A backoff short enough to wait out in a test, long enough (0.5–1 s with its jitter) that
    // the claim right after the failure report lands inside it on a loaded machine.
    let policy = RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(3600),
    };
    q.claim("u", &Claim::new("w")).await.unwrap();
    // Someone else's failure report changes nothing.
    let none = q
        .retry_later("u", &["x"], "other", policy, None)
        .await
        .unwrap();
    assert!(none.requeued.is_empty() && none.failed.is_empty());
    let first = q
        .retry_later("u", &["x"], "w", policy, Some("timeout"))
        .await
        .unwrap();
    assert_eq!(first.requeued, vec!["x".to_string()]);
    // Back in pending (status counts it there) but not claimable until the backoff has passed.
    assert!(q.claim("u", &Claim::new("w")).await.unwrap().is_empty());
    let state = q.document("u", "x").await.unwrap();
    assert_eq!(
        (state.stage.as_str(), state.lease_owner.as_deref()),
        ("pending", None)
    );
    assert!(state.lease_expires_at.is_some());
    assert_eq!(q.status("u").await.unwrap().pending_count, 1);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = q.claim("u", &Claim::new("w")).await.unwrap();
    assert_eq!(again[0].attempts, 2);
    // The second failure uses up max_attempts: failed, with its reason.
    let second = q
        .retry_later("u", &["x"], "w", policy, Some("timeout"))
        .await
        .unwrap();
    assert_eq!(second.failed, vec!["x".to_string()]);
    let status = q.status("u").await.unwrap();
    assert_eq!(status.failed_reasons.get("timeout"), Some(&1));
    assert_eq!(status.pending_count, 0);
}

#[tokio::test]
async fn a_worker_guard_never_moves_an_unleased_document() {
    // The one-statement move must treat a NULL lease owner as a failed worker guard, as the
    // transaction does (SQL's bool_and skips NULLs).
    let Some(db) = common::with_pipeline("leases_null_owner").await else {
        return;
    };
    let q = &db.queue;
    q.stage_documents("p", &["held", "free"]).await.unwrap();
    let mut claim = Claim::new("w1").limit(1);
    claim.document_id_prefix = Some("held".into());
    assert_eq!(q.claim("p", &claim).await.unwrap().len(), 1);
    let mut mv = StageMove::new(&["held", "free"], "indexed");
    mv.guard = held_by("w1");
    mv.guard.from_stage = None;
    let err = q.set_stage("p", &mv).await.unwrap_err();
    assert!(matches!(err, QueueError::Conflict { .. }), "{err:?}");
    assert_eq!(q.document("p", "free").await.unwrap().stage, "pending");
    assert_eq!(q.document("p", "held").await.unwrap().stage, "embedding");
    // The holder's own move goes through, in one statement or the other.
    assert_eq!(
        q.set_stage(
            "p",
            &StageMove {
                guard: held_by("w1"),
                ..StageMove::new(&["held"], "indexed")
            }
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(q.document("p", "held").await.unwrap().stage, "indexed");
}
