//! Namespace layouts, durable, and the `layer` block that reports them.
//!
//! Init records a namespace's Layer state ([`crate::core::layout::Layout`]) in the object store,
//! one object per namespace, and publishes it in [`crate::core::Core::layouts`]; the gateway reads
//! every object back at start ([`load_all`]) and re-reads the prefix periodically, so a layout
//! survives restarts and reaches the other replicas:
//!
//! ```text
//! layouts/{ns}.json   {"schema_version": 1, "shard_count": 4, "initialized_at_ms": …}
//! ```
//!
//! [`layer_block`] builds the `layer` object of the metadata answer (`NamespaceMetadataLayer`):
//! the watcher's `stable_as_of` / `is_stable`, `indexed` / `index_lag_rows` from the latest
//! snapshot, and — for a namespace that was initialized or is configured sharded — its schema
//! version, init and shard state. Init is synchronous (a sharded layout is only accepted for a
//! namespace with no rows yet, so nothing needs a backfill): `init_state` is `ready` and the lag
//! counts are 0 as soon as it answers.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::core::Core;
use crate::core::layout::Layout;
use crate::core::store::{ObjectStore, StoreError};
use crate::core::watcher::Status;
use crate::sources::schema::vector_dim;

/// The key prefix of the durable layouts.
pub const PREFIX: &str = "layouts/";

fn key(ns: &str) -> String {
    format!("{PREFIX}{ns}.json")
}

/// Writes one namespace's layout.
pub async fn save(store: &ObjectStore, ns: &str, layout: &Layout) -> Result<(), StoreError> {
    let body = serde_json::to_vec(layout).unwrap_or_default();
    store.put(&key(ns), Bytes::from(body)).await
}

/// Reads every recorded layout. An unreadable object is skipped with a warning (it cannot be
/// told apart from a namespace never initialized, and must not stop the gateway).
pub async fn load_all(store: &ObjectStore) -> Result<Vec<(String, Layout)>, StoreError> {
    load_new(store, |_| false).await
}

/// Reads the recorded layouts of namespaces `known` does not know yet (layouts never change, so
/// the periodic re-read lists the prefix and reads only new objects).
pub async fn load_new(
    store: &ObjectStore,
    known: impl Fn(&str) -> bool,
) -> Result<Vec<(String, Layout)>, StoreError> {
    let mut out = Vec::new();
    for listed in store.list(PREFIX).await? {
        let Some(ns) = listed
            .key
            .strip_prefix(PREFIX)
            .and_then(|k| k.strip_suffix(".json"))
        else {
            continue;
        };
        if known(ns) {
            continue;
        }
        let Some(body) = store.get(&listed.key).await? else {
            continue;
        };
        match serde_json::from_slice::<Layout>(&body) {
            Ok(l) => out.push((ns.to_string(), l)),
            Err(e) => tracing::warn!(key = %listed.key, error = %e, "unreadable namespace layout"),
        }
    }
    Ok(out)
}

/// Reads the recorded layouts into `core.layouts` before the gateway serves (so no write is
/// stamped without the shard of a namespace init sharded). Runs on a thread and runtime of its
/// own with a store handle of its own (callable from any context); bounded to 10 s. A failure is
/// logged and left to the periodic re-read (the import feature's background loop).
pub fn load_at_start(core: &Core, env: &dyn Fn(&str) -> Option<String>) {
    let store = match ObjectStore::open(&core.config, env) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "namespace layouts not read at start");
            return;
        }
    };
    let loaded = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(10), load_all(&store))
                    .await
                    .map_err(|_| "timed out after 10 s".to_string())?
                    .map_err(|e| e.to_string())
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the reading thread panicked".into()))
    });
    match loaded {
        Ok(v) => core.layouts.extend(v),
        Err(e) => tracing::warn!(error = %e, "namespace layouts not read at start"),
    }
}

/// The `layer` block for `ns`: `watch` is the watcher's (status, watermark); `metadata` the
/// upstream metadata body when there is one (for `index_lag_rows`), `snapshot_rows` the latest
/// snapshot's row count.
pub fn layer_block(
    core: &Core,
    ns: &str,
    watch: (Status, Option<u64>),
    metadata: Option<&[u8]>,
    snapshot_rows: Option<u64>,
) -> Value {
    let (status, wm) = watch;
    let (indexed, lag) = match metadata.and_then(|m| index_lag(m, snapshot_rows)) {
        Some(lag) => (json!(lag == 0), json!(lag)),
        None => (Value::Null, Value::Null),
    };
    let mut block = Map::new();
    block.insert("stable_as_of".into(), json!(wm));
    block.insert("is_stable".into(), json!(status == Status::Stable));
    block.insert("indexed".into(), indexed);
    block.insert("index_lag_rows".into(), lag);
    let layout = core.layouts.get(ns);
    let shards = core.shards_of(ns);
    if layout.is_some() || shards > 1 {
        if let Some(l) = layout {
            block.insert("schema_version".into(), json!(l.schema_version));
            block.insert("init_state".into(), json!("ready"));
            block.insert("init_lag_rows".into(), json!(0));
        }
        block.insert("shard_count".into(), json!(shards));
        let state = if shards > 1 { "ready" } else { "unsharded" };
        block.insert("shard_state".into(), json!(state));
        block.insert("shard_lag_rows".into(), json!(0));
        block.insert("scatter_gather_active".into(), json!(shards > 1));
    }
    Value::Object(block)
}

/// Rows of a vector namespace not yet in its latest snapshot: `approx_row_count` minus the
/// snapshot's `row_count` (the rows a stable origin pass saw). `None` — reported as null — for
/// namespaces without a vector attribute (FTS-only) or without a snapshot yet.
pub fn index_lag(body: &[u8], snapshot_rows: Option<u64>) -> Option<u64> {
    let rows = snapshot_rows?;
    let v: Value = serde_json::from_slice(body).ok()?;
    let has_vector = v.get("schema")?.as_object()?.values().any(|t| {
        let ty = t.get("type").unwrap_or(t);
        ty.as_str().and_then(vector_dim).is_some()
    });
    if !has_vector {
        return None;
    }
    let total = v.get("approx_row_count")?.as_u64()?;
    Some(total.saturating_sub(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lag_reconciles_vector_namespaces_only() {
        let vec_ns = br#"{"approx_row_count": 10, "schema": {"vector": {"type": "[3]f32"}, "t": {"type": "string"}}}"#;
        assert_eq!(index_lag(vec_ns, Some(7)), Some(3));
        assert_eq!(index_lag(vec_ns, Some(12)), Some(0));
        assert_eq!(index_lag(vec_ns, None), None);
        let fts = br#"{"approx_row_count": 10, "schema": {"t": {"type": "string", "full_text_search": true}, "tags": {"type": "[]string"}}}"#;
        assert_eq!(index_lag(fts, Some(7)), None);
    }

    #[test]
    fn the_block_reports_layouts_only_for_initialized_or_sharded_namespaces() {
        let core = crate::core::test_core();
        let plain = layer_block(&core, "a", (Status::Stable, Some(7)), None, None);
        assert_eq!(
            plain,
            json!({"stable_as_of": 7, "is_stable": true, "indexed": null, "index_lag_rows": null})
        );
        let l = Layout {
            schema_version: 1,
            shard_count: 4,
            initialized_at_ms: 1,
        };
        core.layouts.insert("a", l);
        assert_eq!(core.shards_of("a"), 4);
        let b = layer_block(&core, "a", (Status::Unknown, None), None, None);
        assert_eq!(b["schema_version"], 1);
        assert_eq!(b["init_state"], "ready");
        assert_eq!(b["shard_count"], 4);
        assert_eq!(b["shard_state"], "ready");
        assert_eq!(b["scatter_gather_active"], true);
        core.layouts.insert(
            "u",
            Layout {
                shard_count: 1,
                ..l
            },
        );
        let u = layer_block(&core, "u", (Status::Unknown, None), None, None);
        assert_eq!(
            (u["shard_state"].clone(), u["scatter_gather_active"].clone()),
            (json!("unsharded"), json!(false))
        );
    }

    #[tokio::test]
    async fn layouts_round_trip_through_the_store() {
        let core = crate::core::test_core();
        let l = Layout {
            schema_version: 1,
            shard_count: 3,
            initialized_at_ms: 5,
        };
        save(&core.store, "n1", &l).await.unwrap();
        core.store
            .put("layouts/bad.json", Bytes::from_static(b"{"))
            .await
            .unwrap();
        assert_eq!(load_all(&core.store).await.unwrap(), vec![("n1".into(), l)]);
    }
}
