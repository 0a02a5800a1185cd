//! Minted API keys in PostgreSQL: the standalone key store (the gateway's `keys` feature puts
//! HTTP in front and keeps the request path on an in-memory map it reloads from here). Only
//! one-way hashes of tokens are stored. Every change bumps `api_key_epoch`, which replicas poll
//! to know when to reload.

use serde_json::Value;

use crate::{Queue, QueueError, check_name};

/// A stored key (never its token).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredKey {
    pub key_id: String,
    pub name: String,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub entitlements: Value,
    pub expires_after: String,
    /// Epoch milliseconds; `None` for `never`.
    pub expires_at_ms: Option<i64>,
    /// `sha256:<hex>` of the token.
    pub lookup_hash: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub last_seen_at_ms: Option<i64>,
}

/// What a mint stores.
#[derive(Clone, Debug)]
pub struct NewKey {
    pub key_id: String,
    pub name: String,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub entitlements: Value,
    pub expires_after: String,
    pub expires_at_ms: Option<i64>,
    pub lookup_hash: String,
}

const COLUMNS: &str = "key_id, name, owner, description, entitlements, expires_after,
    (extract(epoch FROM expires_at) * 1000)::bigint, lookup_hash,
    (extract(epoch FROM created_at) * 1000)::bigint,
    (extract(epoch FROM revoked_at) * 1000)::bigint,
    (extract(epoch FROM last_seen_at) * 1000)::bigint";

fn key(row: &tokio_postgres::Row) -> StoredKey {
    StoredKey {
        key_id: row.get(0),
        name: row.get(1),
        owner: row.get(2),
        description: row.get(3),
        entitlements: row.get(4),
        expires_after: row.get(5),
        expires_at_ms: row.get(6),
        lookup_hash: row.get(7),
        created_at_ms: row.get(8),
        revoked_at_ms: row.get(9),
        last_seen_at_ms: row.get(10),
    }
}

fn not_found(id: &str) -> QueueError {
    QueueError::NotFound {
        message: format!("key {id} not found"),
        document_ids: Vec::new(),
    }
}

const BUMP: &str = "UPDATE api_key_epoch SET epoch = epoch + 1 WHERE id = 1";

impl Queue {
    /// Stores a minted key; [`QueueError::AlreadyExists`] when its name is taken.
    pub async fn insert_key(&self, new: &NewKey) -> Result<StoredKey, QueueError> {
        check_name("name", &new.name)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare_cached(&format!(
                "INSERT INTO api_keys (key_id, name, owner, description, entitlements,
                     expires_after, expires_at, lookup_hash)
                 VALUES ($1, $2, $3, $4, $5, $6,
                     CASE WHEN $7::bigint IS NULL THEN NULL
                          ELSE to_timestamp($7::bigint / 1000.0) END, $8)
                 ON CONFLICT (name) DO NOTHING
                 RETURNING {COLUMNS}"
            ))
            .await?;
        let row = tx
            .query_opt(
                &stmt,
                &[
                    &new.key_id,
                    &new.name,
                    &new.owner,
                    &new.description,
                    &new.entitlements,
                    &new.expires_after,
                    &new.expires_at_ms,
                    &new.lookup_hash,
                ],
            )
            .await?;
        let Some(row) = row else {
            return Err(QueueError::AlreadyExists {
                kind: "key",
                id: new.name.clone(),
            });
        };
        tx.execute(BUMP, &[]).await?;
        tx.commit().await?;
        Ok(key(&row))
    }

    /// Every key, oldest first; revoked and expired ones only with `include_revoked`.
    pub async fn list_keys(&self, include_revoked: bool) -> Result<Vec<StoredKey>, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_keys
                 WHERE $1 OR (revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()))
                 ORDER BY created_at, key_id"
            ))
            .await?;
        Ok(client
            .query(&stmt, &[&include_revoked])
            .await?
            .iter()
            .map(key)
            .collect())
    }

    /// One key by id, or [`QueueError::NotFound`].
    pub async fn get_key(&self, key_id: &str) -> Result<StoredKey, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_id = $1"))
            .await?;
        match client.query_opt(&stmt, &[&key_id]).await? {
            Some(row) => Ok(key(&row)),
            None => Err(not_found(key_id)),
        }
    }

    /// Revokes a key (idempotent: the first revocation's time is kept); the record stays.
    pub async fn revoke_key(&self, key_id: &str) -> Result<StoredKey, QueueError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare_cached(&format!(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
                 WHERE key_id = $1 RETURNING {COLUMNS}"
            ))
            .await?;
        let Some(row) = tx.query_opt(&stmt, &[&key_id]).await? else {
            return Err(not_found(key_id));
        };
        tx.execute(BUMP, &[]).await?;
        tx.commit().await?;
        Ok(key(&row))
    }

    /// Deletes a key for good.
    pub async fn delete_key(&self, key_id: &str) -> Result<(), QueueError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare_cached("DELETE FROM api_keys WHERE key_id = $1")
            .await?;
        if tx.execute(&stmt, &[&key_id]).await? == 0 {
            return Err(not_found(key_id));
        }
        tx.execute(BUMP, &[]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The change counter of the key table.
    pub async fn key_epoch(&self) -> Result<i64, QueueError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT epoch FROM api_key_epoch WHERE id = 1")
            .await?;
        Ok(client.query_one(&stmt, &[]).await?.get(0))
    }

    /// The epoch and every key that is not revoked, read in one snapshot (expired keys are in
    /// it: the request path refuses them by their expiry).
    pub async fn live_keys(&self) -> Result<(i64, Vec<StoredKey>), QueueError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await?;
        let epoch: i64 = tx
            .query_one("SELECT epoch FROM api_key_epoch WHERE id = 1", &[])
            .await?
            .get(0);
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_keys WHERE revoked_at IS NULL"
            ))
            .await?;
        let keys = tx.query(&stmt, &[]).await?.iter().map(key).collect();
        tx.commit().await?;
        Ok((epoch, keys))
    }

    /// Records that these keys were used: `last_seen_at` advances, at most once per five
    /// minutes per key (the rate the docs give), and the epoch does not move.
    pub async fn touch_keys(&self, key_ids: &[String]) -> Result<u64, QueueError> {
        if key_ids.is_empty() {
            return Ok(0);
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE api_keys SET last_seen_at = now()
                 WHERE key_id = ANY($1)
                   AND (last_seen_at IS NULL OR last_seen_at <= now() - interval '5 minutes')",
            )
            .await?;
        Ok(client.execute(&stmt, &[&key_ids]).await?)
    }
}
