//! Pipelines: create (a duplicate id is [`QueueError::AlreadyExists`]), get, list, delete.
//!
//! A pipeline row holds what the contract's `CreatePipelineRequest` carries: the id, the target
//! namespace, and the rest as a JSON config (`distance_metric` today). Deleting a pipeline deletes
//! its documents in the same statement (`ON DELETE CASCADE`). UDF queues are rows of the same
//! table (`kind = 'udf'`, ids with [`crate::udfs::QUEUE_PREFIX`]); these calls never see them.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{Queue, QueueError, check_name};

/// The `distance_metric` a pipeline gets when the request names none (the client always sends
/// it, with this value by default).
pub const DEFAULT_DISTANCE_METRIC: &str = "cosine_distance";

/// What `create_pipeline` takes.
#[derive(Clone, Debug)]
pub struct NewPipeline {
    pub id: String,
    pub target_namespace: String,
    /// The rest of the create request, kept as JSON (`distance_metric`, and fields later versions
    /// add).
    pub config: Map<String, Value>,
}

impl NewPipeline {
    /// A pipeline with the default config (`distance_metric: cosine_distance`).
    pub fn new(id: impl Into<String>, target_namespace: impl Into<String>) -> Self {
        let mut config = Map::new();
        config.insert(
            "distance_metric".into(),
            Value::String(DEFAULT_DISTANCE_METRIC.into()),
        );
        NewPipeline {
            id: id.into(),
            target_namespace: target_namespace.into(),
            config,
        }
    }
}

/// A stored pipeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pipeline {
    pub id: String,
    pub target_namespace: String,
    pub config: Value,
    /// RFC 3339, UTC, microseconds.
    pub created_at: String,
}

impl Pipeline {
    /// The config's `distance_metric`, or the default.
    pub fn distance_metric(&self) -> &str {
        self.config
            .get("distance_metric")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_DISTANCE_METRIC)
    }
}

pub(crate) const COLUMNS: &str = "id, target_namespace, config, \
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

pub(crate) fn pipeline(row: &tokio_postgres::Row) -> Pipeline {
    Pipeline {
        id: row.get(0),
        target_namespace: row.get(1),
        config: row.get(2),
        created_at: row.get(3),
    }
}

impl Queue {
    /// Creates a pipeline; [`QueueError::AlreadyExists`] when the id is taken (whatever its
    /// target namespace).
    pub async fn create_pipeline(&self, new: &NewPipeline) -> Result<Pipeline, QueueError> {
        check_name("pipeline id", &new.id)?;
        check_name("target_namespace", &new.target_namespace)?;
        if crate::udfs::is_udf_queue(&new.id) {
            return Err(QueueError::Invalid(format!(
                "pipeline id must not start with {:?}: the prefix names UDF queues",
                crate::udfs::QUEUE_PREFIX
            )));
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "INSERT INTO pipelines (id, target_namespace, config) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
            ))
            .await?;
        let config = Value::Object(new.config.clone());
        let row = client
            .query_opt(&stmt, &[&new.id, &new.target_namespace, &config])
            .await?;
        match row {
            Some(row) => Ok(pipeline(&row)),
            None => Err(QueueError::AlreadyExists {
                kind: "pipeline",
                id: new.id.clone(),
            }),
        }
    }

    /// The pipeline, or [`QueueError::NotFound`].
    pub async fn get_pipeline(&self, id: &str) -> Result<Pipeline, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM pipelines WHERE id = $1 AND kind = 'pipeline'"
            ))
            .await?;
        match client.query_opt(&stmt, &[&id]).await? {
            Some(row) => Ok(pipeline(&row)),
            None => Err(QueueError::pipeline_not_found(id)),
        }
    }

    /// Every pipeline, by id.
    pub async fn list_pipelines(&self) -> Result<Vec<Pipeline>, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM pipelines WHERE kind = 'pipeline' ORDER BY id"
            ))
            .await?;
        Ok(client
            .query(&stmt, &[])
            .await?
            .iter()
            .map(pipeline)
            .collect())
    }

    /// Deletes a pipeline and all its documents; [`QueueError::NotFound`] when it does not exist.
    pub async fn delete_pipeline(&self, id: &str) -> Result<(), QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("DELETE FROM pipelines WHERE id = $1 AND kind = 'pipeline'")
            .await?;
        match client.execute(&stmt, &[&id]).await? {
            0 => Err(QueueError::pipeline_not_found(id)),
            _ => Ok(()),
        }
    }
}
