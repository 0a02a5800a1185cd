//! Where snapshots live in the object store, and the reads and writes over that layout.
//!
//! ```text
//! snapshots/{ns}/bodies/{sha}.json                      the body (content-addressed)
//! snapshots/{ns}/history/{watermark_ms:020}-{sha}       empty marker: one history entry
//! snapshot-activity/{YYYY-MM-DD}/{ts_ms:020}.{sha}.{ns} empty marker: one activity event
//! snapshot-policy/{ns}.json                             a policy set through the API
//! ```
//!
//! History and activity are *key listings*: the routes never read bodies to answer them
//! (zero-padded numbers make lexical order numeric order).

use bytes::Bytes;

use super::body::SnapshotBody;
use crate::core::store::{ObjectStore, StoreError};

/// One history entry (`{watermark_ms, sha}`), from a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub watermark_ms: u64,
    pub sha: String,
}

/// One activity event, from a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityEvent {
    pub ts_ms: u64,
    pub namespace: String,
    pub sha: String,
    /// `YYYY-MM-DD/name`: the pagination cursor.
    pub cursor: String,
}

pub fn body_key(ns: &str, sha: &str) -> String {
    format!("snapshots/{ns}/bodies/{sha}.json")
}

fn history_prefix(ns: &str) -> String {
    format!("snapshots/{ns}/history/")
}

fn history_key(ns: &str, wm: u64, sha: &str) -> String {
    format!("snapshots/{ns}/history/{wm:020}-{sha}")
}

pub fn policy_key(ns: &str) -> String {
    format!("snapshot-policy/{ns}.json")
}

const ACTIVITY: &str = "snapshot-activity/";

fn day_of(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// Stores a body only (addressable by sha; not part of the history).
pub async fn put_body(store: &ObjectStore, body: &SnapshotBody) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    store
        .put(&body_key(&body.namespace, &body.sha), Bytes::from(bytes))
        .await
}

/// Records a stored body's activity event (`snapshot-activity/...`).
pub async fn put_activity(
    store: &ObjectStore,
    body: &SnapshotBody,
    now_ms: u64,
) -> Result<(), StoreError> {
    let key = format!(
        "{ACTIVITY}{}/{now_ms:020}.{}.{}",
        day_of(now_ms),
        body.sha,
        body.namespace
    );
    store.put(&key, Bytes::new()).await
}

/// Records a stored body in its namespace's history. Written after the body and its activity
/// event ([`super::SnapshotStore::record`]): a listed entry has both.
pub async fn put_history(store: &ObjectStore, body: &SnapshotBody) -> Result<(), StoreError> {
    let key = history_key(&body.namespace, body.watermark_ms, &body.sha);
    store.put(&key, Bytes::new()).await
}

/// The namespace's history, newest first.
pub async fn history(store: &ObjectStore, ns: &str) -> Result<Vec<HistoryEntry>, StoreError> {
    let prefix = history_prefix(ns);
    let mut out: Vec<HistoryEntry> = store
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|l| {
            let name = l.key.strip_prefix(&prefix)?;
            let (wm, sha) = name.split_once('-')?;
            Some(HistoryEntry {
                watermark_ms: wm.parse().ok()?,
                sha: sha.to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.watermark_ms
            .cmp(&a.watermark_ms)
            .then_with(|| b.sha.cmp(&a.sha))
    });
    Ok(out)
}

/// Reads a body by full sha.
pub async fn get_body(
    store: &ObjectStore,
    ns: &str,
    sha: &str,
) -> Result<Option<SnapshotBody>, StoreError> {
    Ok(store
        .get(&body_key(ns, sha))
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Full shas of the namespace's bodies that start with `prefix`.
pub async fn resolve_sha(
    store: &ObjectStore,
    ns: &str,
    prefix: &str,
) -> Result<Vec<String>, StoreError> {
    let dir = format!("snapshots/{ns}/bodies/");
    Ok(store
        .list(&dir)
        .await?
        .into_iter()
        .filter_map(|l| {
            let sha = l.key.strip_prefix(&dir)?.strip_suffix(".json")?;
            sha.starts_with(prefix).then(|| sha.to_string())
        })
        .collect())
}

/// Activity events with `ts_ms >= since` (and after `cursor`, when given), oldest first.
pub async fn activity(
    store: &ObjectStore,
    since_ms: u64,
    cursor: Option<&str>,
) -> Result<Vec<ActivityEvent>, StoreError> {
    let first_day = day_of(since_ms);
    let mut out = Vec::new();
    for day in store.list_dirs(ACTIVITY).await? {
        if day < first_day || cursor.is_some_and(|c| c.get(..10).is_some_and(|d| day.as_str() < d))
        {
            continue;
        }
        let dir = format!("{ACTIVITY}{day}/");
        for l in store.list(&dir).await? {
            let Some(name) = l.key.strip_prefix(&dir) else {
                continue;
            };
            let cursor_here = format!("{day}/{name}");
            if cursor.is_some_and(|c| cursor_here.as_str() <= c) {
                continue;
            }
            let mut parts = name.splitn(3, '.');
            let (Some(ts), Some(sha), Some(ns)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let Ok(ts_ms) = ts.parse::<u64>() else {
                continue;
            };
            if ts_ms < since_ms {
                continue;
            }
            out.push(ActivityEvent {
                ts_ms,
                namespace: ns.to_string(),
                sha: sha.to_string(),
                cursor: cursor_here,
            });
        }
    }
    out.sort_by(|a, b| a.cursor.cmp(&b.cursor));
    Ok(out)
}

/// Deletes history entries (and their bodies) with `watermark_ms < cutoff_ms`, always keeping
/// the newest entry. Returns how many entries were pruned.
pub async fn prune(store: &ObjectStore, ns: &str, cutoff_ms: u64) -> Result<usize, StoreError> {
    let entries = history(store, ns).await?;
    let Some(newest) = entries.first().cloned() else {
        return Ok(0);
    };
    let mut pruned = 0;
    for e in entries.iter().skip(1) {
        if e.watermark_ms >= cutoff_ms {
            continue;
        }
        store
            .delete(&history_key(ns, e.watermark_ms, &e.sha))
            .await?;
        // A body shared with a kept entry (same sha) stays.
        let still_used = e.sha == newest.sha
            || entries
                .iter()
                .any(|k| k.sha == e.sha && k.watermark_ms >= cutoff_ms);
        if !still_used {
            store.delete(&body_key(ns, &e.sha)).await?;
        }
        pruned += 1;
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::body::{FacetValue, FieldHistogram};
    use super::*;

    fn body(ns: &str, wm: u64, n: u64) -> SnapshotBody {
        SnapshotBody::new(
            ns,
            wm,
            n,
            vec![FieldHistogram {
                name: "c".into(),
                values: vec![FacetValue { v: "x".into(), n }],
            }],
            vec![],
        )
    }

    /// What [`super::super::SnapshotStore::record`] writes, in its order.
    async fn record(s: &ObjectStore, b: &SnapshotBody, now_ms: u64) -> Result<(), StoreError> {
        put_body(s, b).await?;
        put_activity(s, b, now_ms).await?;
        put_history(s, b).await
    }

    fn mem() -> ObjectStore {
        ObjectStore::from_inner(Arc::new(object_store::memory::InMemory::new()), "memory")
    }

    #[tokio::test]
    async fn history_activity_resolve_and_prune() {
        let s = mem();
        let day = 86_400_000;
        let (a, b, c) = (
            body("ns", 1_000, 1),
            body("ns", 5_000, 2),
            body("ns", 9_000, 3),
        );
        record(&s, &a, 10 * day).await.unwrap();
        record(&s, &b, 11 * day + 5).await.unwrap();
        record(&s, &c, 11 * day + 9).await.unwrap();
        record(&s, &body("other", 1, 1), 11 * day + 7)
            .await
            .unwrap();
        let h = history(&s, "ns").await.unwrap();
        assert_eq!(
            h.iter().map(|e| e.watermark_ms).collect::<Vec<_>>(),
            [9_000, 5_000, 1_000]
        );
        assert_eq!(
            resolve_sha(&s, "ns", &b.sha[..7]).await.unwrap(),
            std::slice::from_ref(&b.sha)
        );
        assert_eq!(get_body(&s, "ns", &c.sha).await.unwrap(), Some(c.clone()));

        let all = activity(&s, 0, None).await.unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
        let later = activity(&s, 11 * day, None).await.unwrap();
        assert_eq!(later.len(), 3);
        let after = activity(&s, 0, Some(&all[1].cursor)).await.unwrap();
        assert_eq!(after, all[2..].to_vec());
        assert_eq!(after[0].namespace, "other");

        assert_eq!(prune(&s, "ns", 6_000).await.unwrap(), 2);
        let h = history(&s, "ns").await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(get_body(&s, "ns", &a.sha).await.unwrap(), None);
        // The newest entry is kept even when it is older than the cutoff.
        assert_eq!(prune(&s, "ns", u64::MAX).await.unwrap(), 0);
        assert_eq!(history(&s, "ns").await.unwrap().len(), 1);
    }
}
