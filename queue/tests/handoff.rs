//! The pipeline hand-off against a real PostgreSQL: staging with a chunks key, the vectors rule
//! (indexed once per generation, a re-stage during the write not overwritten), lease expiries
//! reported by claims, and the stage counts behind the gateway's gauge.

mod common;

use std::time::Duration;

use layer_queue::{Claim, Indexed, NewPipeline, QueueError, StageMove};

#[tokio::test]
async fn staging_with_chunks_records_the_key_and_bumps_the_generation() {
    let Some(db) = common::queue("handoff_stage").await else {
        return;
    };
    let q = &db.queue;
    q.create_pipeline(&NewPipeline::new("p", "ns"))
        .await
        .unwrap();
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
    let Some(db) = common::queue("handoff_indexed").await else {
        return;
    };
    let q = &db.queue;
    q.create_pipeline(&NewPipeline::new("p", "ns"))
        .await
        .unwrap();
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
    let Some(db) = common::queue("handoff_expiry").await else {
        return;
    };
    let q = &db.queue;
    q.create_pipeline(&NewPipeline::new("p", "ns"))
        .await
        .unwrap();
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
