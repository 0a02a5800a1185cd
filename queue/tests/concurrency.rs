//! The queue under concurrency, against a real PostgreSQL: many workers never share a document
//! and complete each exactly once; migrations started twice at once apply once; claims keep
//! using the claim index when completed rows pile up (checked with EXPLAIN, not timing).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use layer_queue::{Claim, Guard, NewPipeline, Queue, lease::CLAIM_SQL, migrate::MIGRATIONS};
use rand::{Rng, SeedableRng, rngs::SmallRng};

/// What the workers saw, checked as they go and at the end.
#[derive(Default)]
struct Ledger {
    /// Documents currently held, and by whom.
    held: HashMap<String, usize>,
    /// Completions per document.
    completed: HashMap<String, usize>,
    claims: usize,
}

async fn run_workers(q: &Queue, pipeline: &str, workers: usize, batch: u32, seed: u64) -> Ledger {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (q, ledger, pipeline) = (q.clone(), ledger.clone(), pipeline.to_string());
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut rng = SmallRng::seed_from_u64(seed ^ w as u64);
            loop {
                let claimed = q
                    .claim(&pipeline, &Claim::new(&worker).limit(batch))
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    let s = q.status(&pipeline).await.unwrap();
                    if s.pending_count == 0 && s.processing_count == 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                let ids: Vec<String> = claimed.iter().map(|c| c.document_id.clone()).collect();
                {
                    let mut l = ledger.lock().unwrap();
                    l.claims += ids.len();
                    for id in &ids {
                        if let Some(other) = l.held.insert(id.clone(), w) {
                            panic!("{id} claimed by w{w} while w{other} holds it");
                        }
                    }
                }
                tokio::task::yield_now().await;
                let guard = Guard {
                    from_stage: Some("embedding".into()),
                    worker_id: Some(worker.clone()),
                };
                // About one batch in five is released instead (a worker giving work back), so
                // documents are claimed more than once and the property is about holding.
                let release = rng.random_range(0..5) == 0;
                // The ledger is updated before the call: once the call commits, another worker
                // may claim (after a release) at once.
                {
                    let mut l = ledger.lock().unwrap();
                    for id in &ids {
                        l.held.remove(id);
                        if !release {
                            *l.completed.entry(id.clone()).or_default() += 1;
                        }
                    }
                }
                let moved = if release {
                    q.release(&pipeline, &ids, guard).await.unwrap()
                } else {
                    q.complete(&pipeline, &ids, guard).await.unwrap()
                };
                assert_eq!(moved, ids.len() as u64);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_never_share_a_document_and_complete_each_once() {
    let Some(db) = common::queue("concurrency").await else {
        return;
    };
    let q = &db.queue;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = SmallRng::seed_from_u64(seed);
    // A few random shapes: N workers x batches of M over D documents.
    for case in 0..3 {
        let workers = rng.random_range(2..=8);
        let batch = rng.random_range(1..=16);
        let docs = rng.random_range(100..=400);
        let pipeline = format!("p{case}");
        q.create_pipeline(&NewPipeline::new(&pipeline, "ns"))
            .await
            .unwrap();
        let ids: Vec<String> = (0..docs).map(|i| format!("doc-{i:05}")).collect();
        q.stage_documents(&pipeline, &ids).await.unwrap();

        let ledger = run_workers(q, &pipeline, workers, batch, seed ^ case).await;
        let shape = format!("seed {seed} case {case}: {workers} workers x {batch} over {docs}");
        assert!(ledger.held.is_empty(), "{shape}");
        assert_eq!(ledger.completed.len(), docs, "{shape}");
        assert!(ledger.completed.values().all(|&n| n == 1), "{shape}");
        assert!(ledger.claims >= docs, "{shape}");
        let status = q.status(&pipeline).await.unwrap();
        assert_eq!(
            status.counts.get("indexed"),
            Some(&(docs as i64)),
            "{shape}: {status:?}"
        );
        assert_eq!(status.counts.len(), 1, "{shape}: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_started_twice_at_once_apply_once() {
    let Some(url) = common::database_url("migrations_concurrent") else {
        return;
    };
    let mut config = layer_queue::QueueConfig::new(url);
    config.schema = common::schema_for("migrations");
    let (a, b) = (Queue::new(&config).unwrap(), Queue::new(&config).unwrap());
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let mut applied = [ra, rb].concat();
    applied.sort();
    let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(
        applied, all,
        "each version applied by exactly one of the two"
    );
    assert!(
        a.migrate().await.unwrap().is_empty(),
        "a current schema applies nothing"
    );
    let raw = common::raw(&config).await;
    let rows = raw
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let recorded: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(recorded, all);
    // And the queue works on it.
    a.create_pipeline(&NewPipeline::new("p", "ns"))
        .await
        .unwrap();
    assert_eq!(b.list_pipelines().await.unwrap().len(), 1);
}

#[tokio::test]
async fn claims_use_the_claim_index_after_100k_completed_rows() {
    let Some(db) = common::with_pipeline("claim_index").await else {
        return;
    };
    let q = &db.queue;
    q.create_pipeline(&NewPipeline::new("other", "ns"))
        .await
        .unwrap();
    let raw = db.raw().await;
    // 100,000 completed documents (and some in another pipeline), written straight in SQL: the
    // API would only make the setup slower. Then a few pending ones.
    raw.batch_execute(
        "INSERT INTO documents (pipeline_id, document_id, stage, ready_stage)
         SELECT 'p', 'done-' || g, 'indexed', 'indexed' FROM generate_series(1, 100000) g;
         INSERT INTO documents (pipeline_id, document_id, stage, ready_stage)
         SELECT 'other', 'o-' || g, 'pending', 'pending' FROM generate_series(1, 1000) g;
         ANALYZE documents;",
    )
    .await
    .unwrap();
    let pending: Vec<String> = (0..50).map(|i| format!("new-{i}")).collect();
    q.stage_documents("p", &pending).await.unwrap();

    // The plan a prepared claim runs: generic (what a cached statement settles on) and custom.
    raw.batch_execute(&format!(
        "PREPARE claim(text, text, text, text, bigint, bigint, text, integer) AS {CLAIM_SQL}"
    ))
    .await
    .unwrap();
    for mode in ["force_generic_plan", "force_custom_plan"] {
        raw.batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .await
            .unwrap();
        let plan: Vec<String> = raw
            .query(
                "EXPLAIN EXECUTE claim('p', 'pending', 'embedding', 'w', 16, 60000, NULL, 5)",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("documents_claimable"), "{mode}:\n{plan}");
        assert!(!plan.contains("Seq Scan"), "{mode}:\n{plan}");
    }
    // The partial index holds only the claimable rows, not the completed ones.
    let indexed: i64 = raw
        .query_one(
            "SELECT count(*) FROM documents WHERE ready_stage NOT IN ('indexed', 'failed')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexed, 1050);
    let claimed = q.claim("p", &Claim::new("w").limit(16)).await.unwrap();
    assert_eq!(claimed.len(), 16);
    assert!(claimed.iter().all(|c| c.document_id.starts_with("new-")));
    let seen: HashSet<&str> = claimed.iter().map(|c| c.document_id.as_str()).collect();
    assert_eq!(seen.len(), 16);
    drop(raw);
    db.drop_schema().await;
}
