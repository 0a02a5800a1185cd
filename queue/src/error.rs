//! The queue's error type: each variant knows its HTTP status and its stable error code, so the
//! gateway maps a [`QueueError`] to a response without knowing the queue's internals (the same
//! style as `scatter`'s errors and the gateway's `core/error.rs`).

use http::StatusCode;

/// Everything a queue operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The pipeline (or the documents) the call names do not exist: 404 `not_found`.
    #[error("{message}")]
    NotFound {
        message: String,
        /// Document ids that do not exist (empty when the pipeline itself is missing).
        document_ids: Vec<String>,
    },
    /// `create_pipeline` (or `create_udf`) with an id that exists: 409 `already_exists`
    /// (`ensure_pipeline` relies on the 409). `kind` is `pipeline` or `udf`.
    #[error("{kind} {id} already exists")]
    AlreadyExists { kind: &'static str, id: String },
    /// A guarded stage move whose guard does not hold (`from_stage` differs, or `worker_id` does
    /// not hold the lease): 409 `conflict`. Nothing was written.
    #[error("{message}")]
    Conflict {
        message: String,
        /// The documents that failed the guard.
        document_ids: Vec<String>,
    },
    /// Bad input (an empty id list, a limit out of range, an unknown stage for the operation):
    /// 422 `validation_error`.
    #[error("{0}")]
    Invalid(String),
    /// PostgreSQL cannot be reached (refused, timed out, connection lost): 500
    /// `database_unavailable`, as the pipeline docs say ("PostgreSQL connectivity failures return
    /// 500 and should be retried with backoff").
    #[error("PostgreSQL unavailable: {0}")]
    Unavailable(String),
    /// PostgreSQL answered with an error the queue did not expect: 500 `database_error`.
    #[error("PostgreSQL error: {0}")]
    Database(String),
}

impl QueueError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            QueueError::NotFound { .. } => StatusCode::NOT_FOUND,
            QueueError::AlreadyExists { .. } | QueueError::Conflict { .. } => StatusCode::CONFLICT,
            QueueError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            QueueError::Unavailable(_) | QueueError::Database(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The stable `error` code of the response body.
    pub fn code(&self) -> &'static str {
        match self {
            QueueError::NotFound { .. } => "not_found",
            QueueError::AlreadyExists { .. } => "already_exists",
            QueueError::Conflict { .. } => "conflict",
            QueueError::Invalid(_) => "validation_error",
            QueueError::Unavailable(_) => "database_unavailable",
            QueueError::Database(_) => "database_error",
        }
    }

    /// The document ids the error is about (missing or failing a guard), for the response body.
    pub fn document_ids(&self) -> &[String] {
        match self {
            QueueError::NotFound { document_ids, .. }
            | QueueError::Conflict { document_ids, .. } => document_ids,
            _ => &[],
        }
    }

    pub(crate) fn udf_not_found(id: &str) -> Self {
        QueueError::NotFound {
            message: format!("udf {id} not found"),
            document_ids: Vec::new(),
        }
    }

    pub(crate) fn pipeline_not_found(id: &str) -> Self {
        QueueError::NotFound {
            message: format!("pipeline {id} not found"),
            document_ids: Vec::new(),
        }
    }
}

/// SQLSTATE classes that mean "the database is not there right now" rather than "the statement
/// is wrong": connection exceptions (08), insufficient resources (53), operator intervention
/// (57: admin shutdown, crash shutdown, cannot connect now).
fn unavailable_state(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57")
}

/// Whether an error without a server error code is the connection's: it could not be opened,
/// it closed, it timed out, or its socket failed.
fn connection_trouble(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    // tokio-postgres keeps its error kinds private; these are its Connect and Timeout messages.
    let text = e.to_string();
    text.starts_with("error connecting") || text.starts_with("timeout")
}

impl From<tokio_postgres::Error> for QueueError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if unavailable_state(db.code().code()) => {
                QueueError::Unavailable(db.message().to_string())
            }
            Some(db) => QueueError::Database(format!("{} ({})", db.message(), db.code().code())),
            None if connection_trouble(&e) => QueueError::Unavailable(e.to_string()),
            // A client-side error (a parameter that does not serialize, an unexpected column
            // type): a bug here, not the database's absence.
            None => QueueError::Database(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for QueueError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => QueueError::Unavailable(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (QueueError::pipeline_not_found("p"), 404, "not_found"),
            (
                QueueError::AlreadyExists {
                    kind: "pipeline",
                    id: "p".into(),
                },
                409,
                "already_exists",
            ),
            (
                QueueError::Conflict {
                    message: "m".into(),
                    document_ids: vec!["a".into()],
                },
                409,
                "conflict",
            ),
            (QueueError::Invalid("x".into()), 422, "validation_error"),
            (
                QueueError::Unavailable("x".into()),
                500,
                "database_unavailable",
            ),
            (QueueError::Database("x".into()), 500, "database_error"),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status().as_u16(), status, "{e:?}");
            assert_eq!(e.code(), code, "{e:?}");
        }
    }
}
