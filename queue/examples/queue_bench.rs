//! The queue's benchmark (run by `bench/queue.sh`; a program, never a timed test).
//!
//! 1. Throughput: documents per second through claim (batch 16) then complete, with 8 concurrent
//!    workers straight through the Rust API, and the same two statements driven at PostgreSQL
//!    with plain connections (the raw-SQL floor: no pool, no validation, an unguarded
//!    `UPDATE ... SET stage = 'indexed'` instead of the guarded move's transaction).
//! 2. Claim latency as completed rows pile up: 0, 100k and 1M completed documents (written
//!    straight in SQL, then `VACUUM ANALYZE`), the same claim-16 + complete loop, p50/p99 of the
//!    claim call.
//!
//! Usage: `LAYER_TEST_DATABASE_URL=postgresql://... cargo run --release -p layer-queue --example
//! queue_bench [DOCS]` (DOCS: documents of the throughput run, default 40000).

use std::time::{Duration, Instant};

use layer_queue::{Claim, Guard, NewPipeline, Queue, QueueConfig, lease::CLAIM_SQL};

const WORKERS: usize = 8;
const BATCH: u32 = 16;

fn main() {
    let url = std::env::var("LAYER_TEST_DATABASE_URL").expect("LAYER_TEST_DATABASE_URL");
    let docs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("DOCS"))
        .unwrap_or(40_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(url, docs));
}

async fn run(url: String, docs: usize) {
    let mut config = QueueConfig::new(url.clone());
    config.schema = format!("bench_{:08x}", std::process::id());
    config.pool_size = WORKERS + 2;
    let q = Queue::connect(&config).await.expect("connect");
    println!(
        "# queue benchmark: {WORKERS} workers, claim batch {BATCH}, schema {}",
        config.schema
    );

    // 1. Throughput, API then raw SQL, on the same numbers of documents.
    // Each pass starts from a vacuumed table with statistics that describe it: the second pass
    // otherwise runs with statistics of the first pass's documents only (autoanalyze does not
    // catch up within a pass), which made whichever pass ran second 10-15x slower.
    let api = throughput(&q, &config, "api", docs).await;
    let raw = raw_throughput(&q, &config, "raw", docs).await;
    println!();
    println!("| path | documents | seconds | documents/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| Rust API (claim 16 + guarded complete) | {docs} | {:.2} | {:.0} |",
        api.0, api.1
    );
    println!(
        "| raw SQL (claim 16 + plain update) | {docs} | {:.2} | {:.0} |",
        raw.0, raw.1
    );
    println!("| API / raw | | | {:.2} |", api.1 / raw.1);

    // 2. Claim latency with completed rows piling up in the same pipeline.
    println!();
    println!("| completed rows | claims | p50 claim ms | p99 claim ms | documents/s |");
    println!("|---:|---:|---:|---:|---:|");
    let client = raw_client(&config).await;
    q.create_pipeline(&NewPipeline::new("lat", "ns"))
        .await
        .unwrap();
    let mut completed = 0u64;
    for target in [0u64, 100_000, 1_000_000] {
        if target > completed {
            client
                .execute(
                    "INSERT INTO documents (pipeline_id, document_id, stage, ready_stage)
                     SELECT 'lat', 'done-' || g, 'indexed', 'indexed'
                     FROM generate_series($1::bigint + 1, $2::bigint) g",
                    &[&(completed as i64), &(target as i64)],
                )
                .await
                .unwrap();
            completed = target;
        }
        client
            .batch_execute("VACUUM ANALYZE documents")
            .await
            .unwrap();
        let ids: Vec<String> = (0..8000).map(|i| format!("lat-{target}-{i}")).collect();
        q.stage_documents("lat", &ids).await.unwrap();
        let started = Instant::now();
        let latencies = drain(&q, "lat").await;
        let secs = started.elapsed().as_secs_f64();
        let (p50, p99) = percentiles(latencies.clone());
        println!(
            "| {target} | {} | {p50:.2} | {p99:.2} | {:.0} |",
            latencies.len(),
            ids.len() as f64 / secs
        );
        completed += ids.len() as u64;
    }
    client
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", config.schema))
        .await
        .unwrap();
}

/// `VACUUM ANALYZE` of the documents table.
async fn vacuum(config: &QueueConfig) {
    raw_client(config)
        .await
        .batch_execute("VACUUM ANALYZE documents")
        .await
        .expect("vacuum");
}

/// Stages `docs` documents in a new pipeline and drains it; (seconds, documents/s).
async fn throughput(q: &Queue, config: &QueueConfig, name: &str, docs: usize) -> (f64, f64) {
    q.create_pipeline(&NewPipeline::new(name, "ns"))
        .await
        .unwrap();
    stage(q, name, docs).await;
    vacuum(config).await;
    let started = Instant::now();
    drain(q, name).await;
    let secs = started.elapsed().as_secs_f64();
    (secs, docs as f64 / secs)
}

async fn stage(q: &Queue, pipeline: &str, docs: usize) {
    let ids: Vec<String> = (0..docs).map(|i| format!("{pipeline}-{i:08}")).collect();
    for chunk in ids.chunks(5000) {
        q.stage_documents(pipeline, chunk).await.unwrap();
    }
}

/// 8 workers claim 16 and complete until nothing is pending; the claim latencies in ms.
async fn drain(q: &Queue, pipeline: &str) -> Vec<f64> {
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (q, pipeline) = (q.clone(), pipeline.to_string());
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{w}");
            let mut latencies = Vec::new();
            loop {
                let t = Instant::now();
                let claimed = q
                    .claim(&pipeline, &Claim::new(&worker).limit(BATCH))
                    .await
                    .unwrap();
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                if claimed.is_empty() {
                    return latencies;
                }
                let ids: Vec<&str> = claimed.iter().map(|c| c.document_id.as_str()).collect();
                let guard = Guard {
                    from_stage: Some("embedding".into()),
                    worker_id: Some(worker.clone()),
                };
                q.complete(&pipeline, &ids, guard).await.unwrap();
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn raw_client(config: &QueueConfig) -> tokio_postgres::Client {
    let mut pg: tokio_postgres::Config = config.url.parse().unwrap();
    pg.options(format!("-c search_path={}", config.schema));
    let (client, conn) = pg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The floor: the claim statement and a plain update, prepared on 8 plain connections.
async fn raw_throughput(q: &Queue, config: &QueueConfig, name: &str, docs: usize) -> (f64, f64) {
    q.create_pipeline(&NewPipeline::new(name, "ns"))
        .await
        .unwrap();
    stage(q, name, docs).await;
    vacuum(config).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let client = raw_client(config).await;
        let name = name.to_string();
        tasks.push(tokio::spawn(async move {
            let claim = client.prepare(CLAIM_SQL).await.unwrap();
            let complete = client
                .prepare(
                    "UPDATE documents SET stage = 'indexed', ready_stage = 'indexed',
                         lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
                     WHERE pipeline_id = $1 AND document_id = ANY($2) AND lease_owner = $3",
                )
                .await
                .unwrap();
            let worker = format!("w{w}");
            let lease = Duration::from_secs(900).as_millis() as i64;
            loop {
                let rows = client
                    .query(
                        &claim,
                        &[
                            &name,
                            &"pending",
                            &"embedding",
                            &worker,
                            &i64::from(BATCH),
                            &lease,
                            &None::<String>,
                            &layer_queue::DEFAULT_MAX_LEASE_EXPIRIES,
                        ],
                    )
                    .await
                    .unwrap();
                if rows.is_empty() {
                    return;
                }
                let ids: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                client
                    .execute(&complete, &[&name, &ids, &worker])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    (secs, docs as f64 / secs)
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.50), at(0.99))
}
