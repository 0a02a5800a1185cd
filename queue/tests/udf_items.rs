//! UDF items on the lease queue, against PostgreSQL: the enqueue rules (idempotent; completed rows
//! back only for a new version or a cut past their marker; failed rows only for a new version),
//! the default retry schedule (jittered 5 s doubling to 300 s, 8 attempts), completions holding
//! their rows against a re-claim, and a dropped completion releasing them unchanged.

mod common;

use std::time::{Duration, SystemTime};

use layer_queue::items::{ItemClaim, PROCESSING};
use layer_queue::udfs::queue_id;
use layer_queue::{NewItem, QueueError, RetryPolicy};
use serde_json::json;

fn items(keys: &[&str]) -> Vec<NewItem> {
    keys.iter()
        .map(|k| NewItem {
            key: k.to_string(),
            payload: json!({"namespace": "ns", "id": k, "id_text": k, "input": {}}),
        })
        .collect()
}

fn claim(worker: &str, lease: Duration) -> ItemClaim {
    ItemClaim {
        worker_id: worker.into(),
        limit: 100,
        lease,
        max_in_flight: 8,
    }
}

/// The UDF spec's default lease.
const LEASE: Duration = Duration::from_secs(120);

#[tokio::test]
async fn enqueue_is_idempotent_and_follows_versions_and_cuts() {
    let Some(db) = common::queue("udf_enqueue").await else {
        return;
    };
    let q = &db.queue;
    q.create_udf("u", &json!({"version": "v1"})).await.unwrap();
    assert_eq!(
        q.enqueue_items("u", "v1", 0, &items(&["ns/a", "ns/b"]))
            .await
            .unwrap(),
        2
    );
    // Queued (or leased) rows are not queued twice.
    assert_eq!(
        q.enqueue_items("u", "v1", 0, &items(&["ns/a", "ns/b"]))
            .await
            .unwrap(),
        0
    );
    let claimed = q.claim_items("u", &claim("w", LEASE)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        q.enqueue_items("u", "v1", 0, &items(&["ns/a"]))
            .await
            .unwrap(),
        0
    );
    // Complete a (marker acknowledged at 1000), fail b permanently.
    let c = q.begin_completion("u", &["ns/a"], "w").await.unwrap();
    assert_eq!(c.held.len(), 1);
    assert_eq!(
        c.commit(&["ns/a".to_string()], "v1", 1000).await.unwrap(),
        1
    );
    assert_eq!(q.fail_items("u", &["ns/b"], "w").await.unwrap(), 1);
    // A sweep whose cut is before the marker read a stale row: skipped. One at or after it saw
    // the marker and still selected the row (its stale_after passed): queued again.
    assert_eq!(
        q.enqueue_items("u", "v1", 999, &items(&["ns/a"]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        q.enqueue_items("u", "v1", 1000, &items(&["ns/a"]))
            .await
            .unwrap(),
        1
    );
    // A failed row waits for reset-failed, or a new version.
    assert_eq!(
        q.enqueue_items("u", "v1", 5000, &items(&["ns/b"]))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        q.enqueue_items("u", "v2", 0, &items(&["ns/b"]))
            .await
            .unwrap(),
        1
    );
    let (_, status) = q.udf_status("u").await.unwrap();
    assert_eq!((status.pending_count, status.failed_count), (2, 0));
    // Unknown UDFs are 404.
    assert!(matches!(
        q.enqueue_items("nope", "v1", 0, &items(&["ns/x"])).await,
        Err(QueueError::NotFound { .. })
    ));
}

#[tokio::test]
async fn the_default_retry_schedule_is_jittered_exponential() {
    let Some(db) = common::queue("udf_backoff").await else {
        return;
    };
    let q = &db.queue;
    q.create_udf("u", &json!({})).await.unwrap();
    q.enqueue_items("u", "v1", 0, &items(&["ns/a"]))
        .await
        .unwrap();
    let policy = RetryPolicy::default();
    assert_eq!(policy.max_attempts, 8);
    let qid = queue_id("u");
    // Walk the attempts by hand: claim, fail, look at the backoff, make it claimable at once.
    let raw = db.raw().await;
    for attempt in 1..=8u32 {
        let got = q.claim_items("u", &claim("w", LEASE)).await.unwrap();
        assert_eq!(got.len(), 1, "attempt {attempt}");
        assert_eq!(got[0].attempts, attempt as i32);
        q.retry_items("u", &["ns/a"], "w", policy).await.unwrap();
        let state = q.document(&qid, "ns/a").await.unwrap();
        if attempt == 8 {
            assert_eq!(state.stage, "failed");
            assert_eq!(state.failure_reason.as_deref(), Some("max_attempts"));
            break;
        }
        let full = (5.0 * 2f64.powi(attempt as i32 - 1)).min(300.0);
        let wait = state
            .lease_expires_at
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .as_secs_f64();
        assert!(
            wait > full * 0.5 - 1.0 && wait <= full,
            "attempt {attempt}: backoff {wait:.2}s, expected within ({}, {full}]",
            full * 0.5
        );
        raw.execute(
            "UPDATE documents SET lease_expires_at = now() WHERE pipeline_id = $1",
            &[&qid],
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_completion_holds_its_rows_against_a_reclaim() {
    let Some(db) = common::queue("udf_hold").await else {
        return;
    };
    let q = &db.queue;
    q.create_udf("u", &json!({"version": "v3"})).await.unwrap();
    q.enqueue_items("u", "v3", 0, &items(&["ns/a", "ns/b"]))
        .await
        .unwrap();
    // The default lease is what a claim without one gets from the spec; 120 s here.
    let got = q.claim_items("u", &claim("w1", LEASE)).await.unwrap();
    assert_eq!(got.len(), 2);
    let state = q.document(&queue_id("u"), "ns/a").await.unwrap();
    assert_eq!(state.stage, PROCESSING);
    let left = state
        .lease_expires_at
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(110) && left <= LEASE, "{left:?}");
    // Run the leases out, then start w1's completion: its rows are locked.
    let raw = db.raw().await;
    raw.execute("UPDATE documents SET lease_expires_at = now()", &[])
        .await
        .unwrap();
    let completion = q
        .begin_completion("u", &["ns/a", "ns/b"], "w1")
        .await
        .unwrap();
    assert_eq!(completion.held.len(), 2);
    assert_eq!(completion.spec["version"], "v3");
    // Another worker's claim skips the held rows instead of taking them over.
    assert!(
        q.claim_items("u", &claim("w2", LEASE))
            .await
            .unwrap()
            .is_empty()
    );
    let keys: Vec<String> = completion.held.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(completion.commit(&keys, "v3", 1).await.unwrap(), 2);
    let (_, status) = q.udf_status("u").await.unwrap();
    assert_eq!(status.counts.get("indexed"), Some(&2));
    // A late report of w2 (which holds nothing) changes nothing and counts nothing; a retried
    // w1 report (its answer was lost) counts again.
    let late = q.begin_completion("u", &["ns/a"], "w2").await.unwrap();
    assert_eq!((late.held.len(), late.already_completed), (0, 0));
    late.rollback().await.unwrap();
    let retried = q.begin_completion("u", &["ns/a"], "w1").await.unwrap();
    assert_eq!((retried.held.len(), retried.already_completed), (0, 1));
    retried.rollback().await.unwrap();
}

#[tokio::test]
async fn a_dropped_completion_releases_its_rows_unchanged() {
    let Some(db) = common::queue("udf_drop").await else {
        return;
    };
    let q = &db.queue;
    q.create_udf("u", &json!({})).await.unwrap();
    q.enqueue_items("u", "v1", 0, &items(&["ns/a"]))
        .await
        .unwrap();
    q.claim_items("u", &claim("w1", LEASE)).await.unwrap();
    let c = q.begin_completion("u", &["ns/a"], "w1").await.unwrap();
    drop(c); // the write failed, or the caller went away
    // The row is still w1's, and the pool is healthy: the next completion gets it.
    let c = q.begin_completion("u", &["ns/a"], "w1").await.unwrap();
    assert_eq!(c.held.len(), 1);
    assert_eq!(c.commit(&["ns/a".to_string()], "v1", 1).await.unwrap(), 1);
}

#[tokio::test]
async fn udfs_and_pipelines_do_not_see_each_other() {
    let Some(db) = common::queue("udf_kinds").await else {
        return;
    };
    let q = &db.queue;
    q.create_udf("x", &json!({})).await.unwrap();
    assert!(matches!(
        q.create_udf("x", &json!({})).await,
        Err(QueueError::AlreadyExists { kind: "udf", .. })
    ));
    assert!(q.list_pipelines().await.unwrap().is_empty());
    assert!(q.get_pipeline("udf:x").await.is_err());
    assert!(matches!(
        q.create_pipeline(&layer_queue::NewPipeline::new("udf:y", "ns"))
            .await,
        Err(QueueError::Invalid(_))
    ));
    // Deleting the UDF deletes its items.
    q.enqueue_items("x", "v1", 0, &items(&["ns/a"]))
        .await
        .unwrap();
    q.delete_udf("x").await.unwrap();
    assert!(matches!(
        q.get_udf("x").await,
        Err(QueueError::NotFound { .. })
    ));
    let raw = db.raw().await;
    let n: i64 = raw
        .query_one("SELECT count(*) FROM documents", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // Pause: claims answer nothing, the items stay.
    q.create_udf("p", &json!({})).await.unwrap();
    q.enqueue_items("p", "v1", 0, &items(&["ns/a"]))
        .await
        .unwrap();
    assert!(q.set_udf_paused("p", true).await.unwrap().paused);
    assert!(
        q.claim_items("p", &claim("w", LEASE))
            .await
            .unwrap()
            .is_empty()
    );
    q.set_udf_paused("p", false).await.unwrap();
    assert_eq!(
        q.claim_items("p", &claim("w", LEASE)).await.unwrap().len(),
        1
    );
}
