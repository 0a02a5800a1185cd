//! The pipeline hand-off against a real PostgreSQL: staging with a chunks key, the vectors rule
//! (indexed once per generation, a re-stage during the write not overwritten), lease expiries
//! reported by claims, and the stage counts behind the gateway's gauge.

mod common;

use std::time::Duration;

use layer_queue::{Claim, Indexed, NewPipeline, QueueError, StageMove};

#[tokio::test]
async fn staging_with_chunks_records_the_key_and_bumps_the_generation() {
    let Some(db) = common::with_pipeline("handoff_stage").await else {
        return;
    };
    let q = &db.queue;
    let first = q.stage_with_chunks("p", "d", "key-1").await.unwrap();
    assert_eq!(first.generation, 1);
    let doc = q.document("p", "d").await.unwrap();
    assert_eq!(doc.chunks_key.as_deref(), Some("key-1"));
    assert_eq!(doc.stage, "pending");

    // Claimed, then re-staged: back to pending with the new key and the next generation.
    let claimed = q.claim("p", &Claim::new("w")).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(!claimed[0].lease_expired);
    let second = q.stage_with_chunks("p", "d", "key-2").await.unwrap();
    assert_eq!(second.generation, 2);
    let doc = q.document("p", "d").await.unwrap();
    assert_eq!(
        (doc.stage.as_str(), doc.chunks_key.as_deref()),
        ("pending", Some("key-2"))
    );
    assert_eq!(doc.lease_owner, None);

    let missing = q.stage_with_chunks("nope", "d", "k").await.unwrap_err();
    assert!(
        matches!(missing, QueueError::NotFound { .. }),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_document_is_marked_indexed_once_per_generation() {
    let Some(db) = common::with_pipeline("handoff_indexed").await else {
        return;
    };
    let q = &db.queue;
    q.stage_with_chunks("p", "d", "k1").await.unwrap();
    q.claim("p", &Claim::new("w1")).await.unwrap();

    // Two workers finish the same generation: the first moves it, the second changes nothing.
    assert_eq!(
        q.mark_indexed("p", "d", Some(1)).await.unwrap(),
        Indexed::Moved {
            from: Some("embedding".into())
        }
    );
    assert_eq!(
        q.mark_indexed("p", "d", Some(1)).await.unwrap(),
        Indexed::Already
    );
    let doc = q.document("p", "d").await.unwrap();
    assert_eq!((doc.stage.as_str(), doc.lease_owner), ("indexed", None));

    // Re-staged while an old worker's vectors were in flight: it stays pending for the new chunks.
    q.stage_with_chunks("p", "d", "k2").await.unwrap();
    assert_eq!(
        q.mark_indexed("p", "d", Some(1)).await.unwrap(),
        Indexed::Restaged {
            generation: 2,
            stage: "pending".into()
        }
    );
    assert_eq!(q.document("p", "d").await.unwrap().stage, "pending");

    // Vectors for a document never staged create it indexed.
    assert_eq!(
        q.mark_indexed("p", "fresh", None).await.unwrap(),
        Indexed::Moved { from: None }
    );
    assert_eq!(q.document("p", "fresh").await.unwrap().stage, "indexed");
    let gone = q.mark_indexed("p", "never", Some(1)).await.unwrap_err();
    assert!(matches!(gone, QueueError::NotFound { .. }), "{gone:?}");
    let (p, generation) = q.pipeline_and_generation("p", "d").await.unwrap();
    assert_eq!((p.id.as_str(), generation), ("p", Some(2)));
    assert_eq!(
        q.pipeline_and_generation("p", "never").await.unwrap().1,
        None
    );
    assert!(q.pipeline_and_generation("nope", "d").await.is_err());
    let unknown = q.mark_indexed("nope", "d", None).await.unwrap_err();
    assert!(
        matches!(unknown, QueueError::NotFound { .. }),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn a_claim_reports_the_leases_that_ran_out() {
    let Some(db) = common::with_pipeline("handoff_expiry").await else {
        return;
    };
    let q = &db.queue;
    q.stage_with_chunks("p", "a", "k").await.unwrap();
    q.stage_with_chunks("p", "b", "k").await.unwrap();
    // A short lease so the test can watch one run out (the 900 s default is checked in the
    // leases suite); the released document is not an expiry.
    let short = Claim::new("w1").lease(Duration::from_millis(200));
    assert_eq!(q.claim("p", &short).await.unwrap().len(), 2);
    q.set_stage("p", &StageMove::new(&["b"], "pending"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = q.claim("p", &Claim::new("w2")).await.unwrap();
    again.sort_by(|x, y| x.document_id.cmp(&y.document_id));
    let got: Vec<(&str, bool)> = again
        .iter()
        .map(|c| (c.document_id.as_str(), c.lease_expired))
        .collect();
    assert_eq!(got, [("a", true), ("b", false)]);
}

#[tokio::test]
async fn stage_counts_cover_every_pipeline() {
    let Some(db) = common::queue("handoff_counts").await else {
        return;
    };
    let q = &db.queue;
    for p in ["p1", "p2"] {
        q.create_pipeline(&NewPipeline::new(p, "ns")).await.unwrap();
    }
    for d in ["a", "b", "c"] {
        q.stage_with_chunks("p1", d, "k").await.unwrap();
    }
    q.stage_with_chunks("p2", "x", "k").await.unwrap();
    q.claim("p1", &Claim::new("w").limit(1)).await.unwrap();
    let counts = q.stage_counts().await.unwrap();
    let want = [
        ("p1".to_string(), "embedding".to_string(), 1),
        ("p1".to_string(), "pending".to_string(), 2),
        ("p2".to_string(), "pending".to_string(), 1),
    ];
    assert_eq!(counts, want);
}

#[tokio::test]
async fn a_document_whose_lease_keeps_running_out_is_failed_at_the_default_cap() {
    let Some(db) = common::with_pipeline("handoff_expiry_cap").await else {
        return;
    };
    let q = &db.queue;
    let raw = db.raw().await;
    q.stage_with_chunks("p", "poison", "k").await.unwrap();
    q.stage_with_chunks("p", "fine", "k").await.unwrap();
    // Each round a worker claims the document at the default lease and dies; the lease running
    // out is simulated by moving its expiry into the past (what 900 s of waiting would do).
    let expire = || async {
        raw.execute(
            "UPDATE documents SET lease_expires_at = now() - interval '1 second'
             WHERE document_id = 'poison' AND lease_owner IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    };
    let only_poison = |w: &str| {
        let mut c = Claim::new(w);
        c.document_id_prefix = Some("poison".into());
        c
    };
    let first = q.claim("p", &only_poison("w0")).await.unwrap();
    assert_eq!(first.len(), 1);
    for round in 1..layer_queue::DEFAULT_MAX_LEASE_EXPIRIES {
        expire().await;
        let again = q
            .claim("p", &only_poison(&format!("w{round}")))
            .await
            .unwrap();
        assert_eq!(again.len(), 1, "expiry {round} is below the cap");
        assert!(again[0].lease_expired);
        assert_eq!(again[0].attempts, round + 1);
    }
    expire().await;
    // The cap-th expiry: not claimed, failed with the reason, and a claim of one document that
    // meets it first claims the next claimable one instead of coming back empty.
    let one = q.claim("p", &Claim::new("late").limit(1)).await.unwrap();
    let got: Vec<&str> = one.iter().map(|c| c.document_id.as_str()).collect();
    assert_eq!(got, ["fine"]);
    assert!(
        q.claim("p", &only_poison("later"))
            .await
            .unwrap()
            .is_empty()
    );
    let state = q.document("p", "poison").await.unwrap();
    assert_eq!(state.stage, "failed");
    assert_eq!(state.failure_reason.as_deref(), Some("lease_expired"));
    assert_eq!(state.lease_owner, None);
    let status = q.status("p").await.unwrap();
    assert_eq!(status.failed_reasons.get("lease_expired"), Some(&1));
    // An operator sending it back (a stage move) gives it a fresh count, as re-staging does.
    q.set_stage("p", &StageMove::new(&["poison"], "pending"))
        .await
        .unwrap();
    assert_eq!(q.claim("p", &only_poison("w7")).await.unwrap().len(), 1);
    expire().await;
    assert_eq!(
        q.claim("p", &only_poison("w8")).await.unwrap().len(),
        1,
        "one expiry after the move is below the cap"
    );
    // Re-staging gives the document a fresh count.
    q.stage_with_chunks("p", "poison", "k2").await.unwrap();
    let restaged = q.claim("p", &only_poison("w9")).await.unwrap();
    assert_eq!(restaged.len(), 1);
    assert!(!restaged[0].lease_expired);
    expire().await;
    assert_eq!(q.claim("p", &only_poison("w10")).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_large_staging_analyzes_the_documents_table() {
    let Some(db) = common::with_pipeline("handoff_analyze").await else {
        return;
    };
    let q = &db.queue;
    let raw = db.raw().await;
    let analyzes = || async {
        raw.query_one(
            "SELECT analyze_count FROM pg_stat_user_tables
             WHERE schemaname = current_schema() AND relname = 'documents'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };
    // Just below the threshold: no ANALYZE from the queue (autoanalyze is counted apart).
    let below = layer_queue::ANALYZE_AFTER_STAGED - 1;
    let ids: Vec<String> = (0..below).map(|i| format!("d{i:06}")).collect();
    for chunk in ids.chunks(layer_queue::MAX_IDS_PER_CALL) {
        q.stage_documents("p", chunk).await.unwrap();
    }
    assert_eq!(analyzes().await, 0);
    q.stage_with_chunks("p", "last", "k").await.unwrap();
    // The ANALYZE runs in the background; its count reaches the statistics views when its
    // backend next reports (within seconds).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while analyzes().await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no ANALYZE after {} staged documents",
            layer_queue::ANALYZE_AFTER_STAGED
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    db.drop_schema().await;
}
