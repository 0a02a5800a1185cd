//! Pipelines and staging against a real PostgreSQL: create, duplicate, list, get, delete;
//! stage and re-stage; status counts; a database that cannot be reached.

mod common;

use layer_queue::{Claim, NewPipeline, Queue, QueueConfig, QueueError};

#[tokio::test]
async fn create_duplicate_list_get_delete() {
    let Some(db) = common::queue("pipelines_crud").await else {
        return;
    };
    let q = &db.queue;
    let b = q
        .create_pipeline(&NewPipeline::new("b", "ns-b"))
        .await
        .unwrap();
    assert_eq!(b.id, "b");
    assert_eq!(b.target_namespace, "ns-b");
    assert_eq!(b.distance_metric(), "cosine_distance");
    assert!(b.created_at.ends_with('Z'), "{}", b.created_at);

    let mut other = NewPipeline::new("a", "ns-a");
    other
        .config
        .insert("distance_metric".into(), "euclidean_squared".into());
    q.create_pipeline(&other).await.unwrap();

    // A duplicate id is a typed 409, whatever its target namespace.
    let dup = q
        .create_pipeline(&NewPipeline::new("b", "elsewhere"))
        .await
        .unwrap_err();
    assert!(
        matches!(dup, QueueError::AlreadyExists { ref id, .. } if id == "b"),
        "{dup:?}"
    );
    assert_eq!(dup.status().as_u16(), 409);
    assert_eq!(q.get_pipeline("b").await.unwrap().target_namespace, "ns-b");

    let listed = q.list_pipelines().await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(listed[0].distance_metric(), "euclidean_squared");

    // Deleting a pipeline deletes its documents: recreated, it starts empty.
    q.stage_documents("b", &["d1", "d2"]).await.unwrap();
    q.delete_pipeline("b").await.unwrap();
    assert_eq!(
        q.get_pipeline("b").await.unwrap_err().status().as_u16(),
        404
    );
    assert_eq!(
        q.delete_pipeline("b").await.unwrap_err().status().as_u16(),
        404
    );
    q.create_pipeline(&NewPipeline::new("b", "ns-b"))
        .await
        .unwrap();
    let status = q.status("b").await.unwrap();
    assert!(status.counts.is_empty(), "{status:?}");
    assert_eq!(status.status, "idle");

    let bad = q
        .create_pipeline(&NewPipeline::new("", "ns"))
        .await
        .unwrap_err();
    assert_eq!(bad.status().as_u16(), 422);
}

#[tokio::test]
async fn stage_and_restage_reset_to_pending() {
    let Some(db) = common::queue("stage_restage").await else {
        return;
    };
    let q = &db.queue;
    // Staging into a pipeline that does not exist is a 404, and writes nothing.
    let missing = q.stage_documents("nope", &["x"]).await.unwrap_err();
    assert_eq!(missing.status().as_u16(), 404, "{missing:?}");

    q.create_pipeline(&NewPipeline::new("p", "ns"))
        .await
        .unwrap();
    let staged = q.stage_documents("p", &["b", "a", "b"]).await.unwrap();
    assert_eq!(staged.len(), 2, "duplicates in one call count once");
    assert!(staged.iter().all(|s| s.generation == 1));

    let claimed = q.claim("p", &Claim::new("w1").limit(1)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let held = &claimed[0].document_id;
    let state = q.document("p", held).await.unwrap();
    assert_eq!(state.stage, "embedding");
    assert_eq!(state.lease_owner.as_deref(), Some("w1"));
    assert_eq!(state.attempts, 1);

    // Re-staging resets the claimed document: pending, next generation, no lease, no attempts.
    let again = q.stage_documents("p", &[held.as_str()]).await.unwrap();
    assert_eq!(again[0].generation, 2);
    let state = q.document("p", held).await.unwrap();
    assert_eq!(
        (state.stage.as_str(), state.ready_stage.as_str()),
        ("pending", "pending")
    );
    assert_eq!(state.lease_owner, None);
    assert_eq!(state.lease_expires_at, None);
    assert_eq!(state.attempts, 0);

    // Idempotent: the same call again leaves the same state (the generation counts stagings).
    let third = q.stage_documents("p", &[held.as_str()]).await.unwrap();
    assert_eq!(third[0].generation, 3);
    let status = q.status("p").await.unwrap();
    assert_eq!(status.counts.get("pending"), Some(&2), "{status:?}");
    assert_eq!(status.pending_count, 2);
    assert_eq!(status.processing_count, 0);
    assert_eq!(status.status, "pending");

    // The old holder's lease is gone with the re-stage: its completion is refused.
    let late = q
        .complete(
            "p",
            &[held.as_str()],
            layer_queue::Guard {
                from_stage: Some("embedding".into()),
                worker_id: Some("w1".into()),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(late.status().as_u16(), 409, "{late:?}");

    assert_eq!(
        q.stage_documents::<&str>("p", &[])
            .await
            .unwrap_err()
            .status()
            .as_u16(),
        422
    );
}

#[tokio::test]
async fn unreachable_database_is_a_500_and_needs_no_server() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = QueueConfig::new(format!("postgresql://postgres@127.0.0.1:{port}/postgres"));
    config.connect_timeout = std::time::Duration::from_secs(2);
    let q = Queue::new(&config).unwrap();
    let e = q.list_pipelines().await.unwrap_err();
    assert!(matches!(e, QueueError::Unavailable(_)), "{e:?}");
    assert_eq!(e.status().as_u16(), 500);
    assert_eq!(e.code(), "database_unavailable");
    assert!(Queue::connect(&config).await.is_err());
}

#[tokio::test]
async fn dropped_connections_recover_by_themselves() {
    let Some(url) = common::database_url("reconnect") else {
        return;
    };
    let mut config = QueueConfig::new(url);
    config.schema = common::schema_for("reconnect");
    // Its own application name, so the test ends only this queue's connections, not those of
    // the tests running beside it.
    config.application_name = config.schema.clone();
    config.pool_size = 4;
    let q = Queue::connect(&config).await.unwrap();
    q.create_pipeline(&NewPipeline::new("p", "ns"))
        .await
        .unwrap();
    let raw = common::raw(&config).await;
    // A database blip: the server ends every connection of the pool.
    let ended: i64 = raw
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1) t",
            &[&config.application_name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ended >= 1);
    // A call that meets a dead connection answers 500 `database_unavailable` (usually none
    // does: the pool checks a connection is open before handing it out); the pool replaces the
    // connections by itself, and calls work again without any restart.
    let mut failures = 0;
    loop {
        match q.list_pipelines().await {
            Ok(list) => {
                assert_eq!(list.len(), 1);
                break;
            }
            Err(e) => {
                assert!(matches!(e, QueueError::Unavailable(_)), "{e:?}");
                failures += 1;
                assert!(failures <= 8, "the pool did not recover: {e:?}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    eprintln!("{failures} call(s) failed before the pool recovered");
    q.stage_documents("p", &["a"]).await.unwrap();
    assert_eq!(q.claim("p", &Claim::new("w")).await.unwrap().len(), 1);
}
