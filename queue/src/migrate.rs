//! Versioned schema migrations: numbered SQL files under `queue/migrations/`, embedded in the
//! binary with `include_str!` and applied in order by [`Queue::migrate`].
//!
//! A run is one transaction that first takes a transaction-scoped advisory lock keyed on the
//! schema name, so two processes starting at once apply each migration exactly once: the second
//! waits for the first to commit, then finds every version recorded in `schema_migrations` and
//! applies nothing. The schema itself and the version table are created in the same transaction
//! (under the lock); every other table, index or change is a numbered file. A version recorded
//! in the database that this binary does not know (a newer binary migrated it) is accepted: the
//! migrations are additive and an older binary keeps working on the columns it knows.

use crate::{Queue, QueueError};

/// One migration: its version (the file's number) and its SQL.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Add a file `NNNN_name.sql` and a line here; never edit a released
/// file.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_queue",
        sql: include_str!("../migrations/0001_queue.sql"),
    },
    Migration {
        version: 2,
        name: "0002_chunks_key",
        sql: include_str!("../migrations/0002_chunks_key.sql"),
    },
    Migration {
        version: 3,
        name: "0003_lease_expiries",
        sql: include_str!("../migrations/0003_lease_expiries.sql"),
    },
    Migration {
        version: 4,
        name: "0004_udfs",
        sql: include_str!("../migrations/0004_udfs.sql"),
    },
    Migration {
        version: 5,
        name: "0005_api_keys",
        sql: include_str!("../migrations/0005_api_keys.sql"),
    },
];

impl Queue {
    /// Applies the migrations this database lacks; returns the versions it applied (empty when
    /// the schema was current). Safe to call from several processes at once.
    pub async fn migrate(&self) -> Result<Vec<i32>, QueueError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // hashtext gives a stable 32-bit key per schema; the constant keeps it apart from other
        // users of advisory locks on the same database.
        tx.execute(
            "SELECT pg_advisory_xact_lock(7243, hashtext($1))",
            &[&self.schema],
        )
        .await?;
        // The schema name was checked to be [a-z0-9_] in Queue::new, so quoting it is enough.
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             CREATE TABLE IF NOT EXISTS \"{schema}\".schema_migrations (
                 version    integer     PRIMARY KEY,
                 name       text        NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );",
            schema = self.schema
        ))
        .await?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut done = Vec::new();
        for m in MIGRATIONS {
            if applied.contains(&m.version) {
                continue;
            }
            tx.batch_execute(m.sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&m.version, &m.name],
            )
            .await?;
            tracing::info!(schema = %self.schema, version = m.version, name = m.name, "queue migration applied");
            done.push(m.version);
        }
        tx.commit().await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_and_named_after_their_number() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        for m in MIGRATIONS {
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "{}",
                m.name
            );
            assert!(!m.sql.trim().is_empty());
        }
    }
}
