//! The queue tests' harness: a fresh schema per test on the PostgreSQL that
//! `LAYER_TEST_DATABASE_URL` names (`scripts/pg-server` starts one; `scripts/test` does so).
//!
//! Without the variable a test prints a loud SKIP and passes, except under CI (`CI=true`), where a
//! missing database is a failure: CI must never report the queue tested when it was not.

#![allow(dead_code)]

use layer_queue::{Queue, QueueConfig};

/// A queue on its own schema, plus what a test needs to look under it.
pub struct TestDb {
    pub queue: Queue,
    pub config: QueueConfig,
}

/// The database URL, or `None` (after a loud message) when the test should be skipped.
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("LAYER_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "LAYER_TEST_DATABASE_URL is unset under CI: start PostgreSQL with scripts/pg-server"
            )
        }
        _ => {
            eprintln!(
                "\n!!! SKIPPED {test}: LAYER_TEST_DATABASE_URL is unset. Run \
                 `eval \"$(scripts/pg-server)\"` first (scripts/test does). !!!\n"
            );
            None
        }
    }
}

/// A unique schema name for one test.
pub fn schema_for(test: &str) -> String {
    format!("t_{test}_{:016x}", rand::random::<u64>())
}

/// A migrated queue on a fresh schema, or `None` when the test is skipped.
pub async fn queue(test: &str) -> Option<TestDb> {
    let url = database_url(test)?;
    let mut config = QueueConfig::new(url);
    config.schema = schema_for(test);
    config.pool_size = 8;
    let queue = Queue::connect(&config).await.expect("connect and migrate");
    Some(TestDb { queue, config })
}

/// [`queue`] with a pipeline `p` (target namespace `ns`) created: most tests' starting point.
pub async fn with_pipeline(test: &str) -> Option<TestDb> {
    let db = queue(test).await?;
    db.queue
        .create_pipeline(&layer_queue::NewPipeline::new("p", "ns"))
        .await
        .expect("create pipeline p");
    Some(db)
}

impl TestDb {
    /// A plain connection with the test's schema on its search path, for looking under the API.
    pub async fn raw(&self) -> tokio_postgres::Client {
        raw(&self.config).await
    }

    /// Drops the test's schema (for tests that write many rows: the cluster is shared by every
    /// test of the run).
    pub async fn drop_schema(self) {
        let client = self.raw().await;
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.config.schema))
            .await
            .expect("drop schema");
    }
}

/// A plain connection for a config's schema.
pub async fn raw(config: &QueueConfig) -> tokio_postgres::Client {
    let mut pg: tokio_postgres::Config = config.url.parse().unwrap();
    pg.options(format!("-c search_path={}", config.schema));
    let (client, conn) = pg
        .connect(tokio_postgres::NoTls)
        .await
        .expect("raw connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}
