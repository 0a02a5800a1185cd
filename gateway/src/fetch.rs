//! The document cache on the request path: fetch, batch fetch, `nearest_to_id` vectors, and the
//! write-path invalidation that keeps them fresh. Start at [`fetch_one`] / [`fetch_many`].
//!
//! Lookup order for a document: this shard's hot cache (thread-local, no locks) → the node's
//! shared tier (NVMe or Aerospike; concurrent misses for one key coalesced) → origin, by a strong
//! upstream read without the stable-read predicate (a fetch never misses a document that
//! exists). Origin results are backfilled best-effort. Every cache failure is soft: the request
//! is served from origin with `x-layer-cache: miss-on-error`.
//!
//! Cached value: the full upstream row (`include_attributes: true`), so any projection can be
//! served from it. Ids are strings on the wire; an id that parses as a u64 is looked up upstream
//! as both the number and the string, since the namespace's id type is not known here.
//!
//! Freshness: a write through the gateway invalidates, before forwarding and again after
//! upstream acknowledged it, every hot-cache entry of the namespace (on every shard) and the
//! written ids in the shared tier (the whole namespace for `delete_by_filter` /
//! `patch_by_filter`). A backfill is skipped when any invalidation happened while its origin read
//! was in flight, so a read after a write never serves a stale document.

use std::cell::RefCell;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use layer_cache::{
    CacheError, HotCache, HotCacheConfig, Invalidations, Set, SharedCoalescer, Tier,
};
use serde_json::{Map, Value, json};

use crate::error::GatewayError;
use crate::handler::ShardCtx;
use crate::metrics;

/// The node's cache tier: shared tier, invalidation record, miss coalescer.
pub struct CacheTier {
    pub tier: Arc<dyn Tier>,
    pub invalidations: Arc<Invalidations>,
    pub hot_bytes: usize,
    coalescer: SharedCoalescer<(String, String), Result<Option<Bytes>, CacheError>>,
}

impl CacheTier {
    pub fn new(tier: Arc<dyn Tier>, hot_bytes: usize) -> Self {
        CacheTier {
            tier,
            invalidations: Arc::new(Invalidations::new()),
            hot_bytes,
            coalescer: SharedCoalescer::new(),
        }
    }
}

thread_local! {
    /// This shard's hot cache, created on first use.
    static HOT: RefCell<Option<HotCache>> = const { RefCell::new(None) };
}

fn with_hot<R>(cache: &CacheTier, f: impl FnOnce(&mut HotCache) -> R) -> R {
    HOT.with(|h| {
        let mut h = h.borrow_mut();
        let hot = h.get_or_insert_with(|| {
            HotCache::new(HotCacheConfig::new(cache.hot_bytes))
                .with_invalidations(cache.invalidations.clone())
        });
        f(hot)
    })
}

/// Where a document came from, for `x-layer-cache`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    Hit,
    Miss,
    MissOnError,
}

impl Served {
    pub fn header(self) -> &'static str {
        match self {
            Served::Hit => "hit",
            Served::Miss => "miss",
            Served::MissOnError => "miss-on-error",
        }
    }

    fn worst(self, other: Served) -> Served {
        match (self, other) {
            (Served::MissOnError, _) | (_, Served::MissOnError) => Served::MissOnError,
            (Served::Miss, _) | (_, Served::Miss) => Served::Miss,
            _ => Served::Hit,
        }
    }
}

/// Looks up full rows for `ids` (wire ids, strings). Returns the rows in request order (`None` =
/// absent everywhere) and how they were served.
pub async fn rows(
    ctx: &ShardCtx,
    ns: &str,
    ids: &[String],
) -> Result<(Vec<Option<Value>>, Served), GatewayError> {
    let cache = &ctx.shared.cache;
    let mut out: Vec<Option<Value>> = vec![None; ids.len()];
    let mut served = Served::Hit;
    let mut pending: Vec<usize> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if let Some(v) = with_hot(cache, |h| h.get(Set::Documents, ns, id)) {
            metrics::cache_event("hot_hit");
            out[i] = serde_json::from_slice(&v).ok();
            continue;
        }
        let key = (ns.to_string(), id.clone());
        let (tier, ns_owned, id_owned) = (cache.tier.clone(), ns.to_string(), id.clone());
        let got = cache
            .coalescer
            .get_or_load(key, move || async move {
                tier.get(Set::Documents, &ns_owned, &id_owned).await
            })
            .await;
        match got {
            Ok(Some(v)) => {
                metrics::cache_event("tier_hit");
                with_hot(cache, |h| h.insert(Set::Documents, ns, id, v.clone()));
                out[i] = serde_json::from_slice(&v).ok();
            }
            Ok(None) => {
                metrics::cache_event("miss");
                served = served.worst(Served::Miss);
                pending.push(i);
            }
            Err(e) => {
                metrics::cache_event(if matches!(e, CacheError::Disabled) {
                    "disabled"
                } else {
                    "error"
                });
                served = served.worst(if matches!(e, CacheError::Disabled) {
                    Served::Miss
                } else {
                    Served::MissOnError
                });
                pending.push(i);
            }
        }
    }
    if pending.is_empty() {
        return Ok((out, served));
    }
    let epoch = cache.invalidations.epoch();
    let wanted: Vec<&String> = pending.iter().map(|&i| &ids[i]).collect();
    let found = origin(ctx, ns, &wanted).await?;
    // Backfill only if no write invalidated anything while the origin read was in flight.
    let fresh = cache.invalidations.epoch() == epoch;
    for &i in &pending {
        let Some(row) = found
            .iter()
            .find(|(id, _)| *id == ids[i])
            .map(|(_, r)| r.clone())
        else {
            continue;
        };
        if fresh && let Ok(bytes) = serde_json::to_vec(&row) {
            let bytes = Bytes::from(bytes);
            with_hot(cache, |h| {
                h.insert(Set::Documents, ns, &ids[i], bytes.clone())
            });
            let put = cache.tier.put(Set::Documents, ns, &ids[i], bytes);
            tokio::spawn(async move {
                if put.await.is_err() {
                    metrics::cache_event("backfill_failed");
                }
            });
        }
        out[i] = Some(row);
    }
    Ok((out, served))
}

/// Strong upstream read of the rows for `ids`; returns (wire id, row) pairs.
async fn origin(
    ctx: &ShardCtx,
    ns: &str,
    ids: &[&String],
) -> Result<Vec<(String, Value)>, GatewayError> {
    let mut filter_ids: Vec<Value> = Vec::with_capacity(ids.len() * 2);
    for id in ids {
        filter_ids.push(Value::String((*id).clone()));
        if let Ok(n) = id.parse::<u64>() {
            filter_ids.push(Value::from(n));
        }
    }
    let body = json!({
        "filters": ["id", "In", filter_ids],
        "rank_by": ["id", "asc"],
        "top_k": (ids.len() * 2).clamp(1, 10_000),
        "include_attributes": true,
        "consistency": {"level": "strong"},
    });
    // A missing namespace holds no documents; upstream's other 4xx verdicts (e.g. an invalid
    // namespace name) are relayed.
    let mut v = match crate::origin::upstream_json(
        &ctx.upstream,
        "fetch_origin",
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        Bytes::from(body.to_string()),
        "origin read",
    )
    .await
    {
        Ok(v) => v,
        Err(GatewayError::Relay { status, .. }) if status == StatusCode::NOT_FOUND => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let rows = match v.get_mut("rows").map(Value::take) {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    };
    Ok(rows
        .into_iter()
        .filter_map(|mut row| {
            let obj = row.as_object_mut()?;
            obj.remove("$dist");
            let id = wire_id(obj.get("id")?)?;
            Some((id, row))
        })
        .collect())
}

fn wire_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => n.as_u64().map(layer_cache::render_u64_id),
        _ => None,
    }
}

/// A row as a hevlayer `Document`: `{id, attributes}`, projected. Reserved attributes appear only
/// when named.
pub fn document(id: &str, row: &Value, include: Option<&[String]>) -> Value {
    let mut attrs = Map::new();
    if let Some(obj) = row.as_object() {
        for (k, v) in obj {
            let keep = match include {
                Some(list) => list.iter().any(|a| a == k),
                None => k != "id" && !k.starts_with(scatter::RESERVED_PREFIX),
            };
            if keep && k != "id" {
                attrs.insert(k.clone(), v.clone());
            }
        }
    }
    json!({"id": id, "attributes": attrs})
}

/// `GET /v2/namespaces/{ns}/documents/{id}`.
pub async fn fetch_one(
    ctx: &ShardCtx,
    ns: &str,
    id: &str,
    include: Option<Vec<String>>,
) -> Result<(Value, Served), GatewayError> {
    let (mut rows, served) = rows(ctx, ns, &[id.to_string()]).await?;
    match rows.pop().flatten() {
        Some(row) => Ok((document(id, &row, include.as_deref()), served)),
        None => Err(GatewayError::NotFoundDocs {
            message: format!("document {id:?} was not found in namespace {ns:?}"),
            missing: vec![serde_json::to_string(id).unwrap_or_default()],
        }),
    }
}

/// `POST /v2/namespaces/{ns}/documents` `{ids, include_attributes?}`: documents in request order,
/// absent ids in `missing`.
pub async fn fetch_many(
    ctx: &ShardCtx,
    ns: &str,
    body: &[u8],
) -> Result<(Value, Served), GatewayError> {
    let req: Value = serde_json::from_slice(body)
        .map_err(|e| GatewayError::Validation(format!("body is not JSON: {e}")))?;
    let ids: Vec<String> = match req.get("ids") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                wire_id(v).ok_or_else(|| {
                    GatewayError::Validation("ids must be strings (or unsigned integers)".into())
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(GatewayError::Validation(
                "ids must be an array of document ids".into(),
            ));
        }
    };
    if ids.len() > 10_000 {
        return Err(GatewayError::Validation(format!(
            "at most 10000 ids per batch fetch, got {}",
            ids.len()
        )));
    }
    let include: Option<Vec<String>> = match req.get("include_attributes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
        ),
        Some(_) => {
            return Err(GatewayError::Validation(
                "include_attributes must be an array of attribute names".into(),
            ));
        }
    };
    let (rows, served) = rows(ctx, ns, &ids).await?;
    let mut documents = Vec::new();
    let mut missing = Vec::new();
    for (id, row) in ids.iter().zip(rows) {
        match row {
            Some(r) => documents.push(document(id, &r, include.as_deref())),
            None => missing.push(Value::String(id.clone())),
        }
    }
    Ok((json!({"documents": documents, "missing": missing}), served))
}

/// What a write touches, for invalidation.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Touched {
    pub ids: Vec<String>,
    /// Ids of upserted or patched rows: read back from origin into the cache once the write is
    /// acknowledged (the write-path mirror).
    pub populate: Vec<String>,
    /// `delete_by_filter` / `patch_by_filter` (or an unreadable body): the whole namespace.
    pub whole_namespace: bool,
}

/// Reads the ids a (validated) write body touches, lazily: only the id fields are decoded, so a
/// large write is not turned into a JSON tree a second time. An unreadable body counts as touching
/// the whole namespace.
pub fn touched(body: &[u8]) -> Touched {
    let whole = Touched {
        ids: Vec::new(),
        populate: Vec::new(),
        whole_namespace: true,
    };
    let mut t = Touched::default();
    let mut deleted: Vec<String> = Vec::new();
    for field in sonic_rs::to_object_iter(body) {
        let Ok((key, value)) = field else {
            return whole;
        };
        let raw = value.as_raw_str();
        match key.as_ref() {
            "upsert_rows" | "patch_rows" => {
                for row in sonic_rs::to_array_iter(raw) {
                    let Ok(row) = row else { return whole };
                    if let Ok(id) = sonic_rs::get(row.as_raw_str(), ["id"])
                        && let Some(id) = raw_id(id.as_raw_str())
                    {
                        t.populate.push(id.clone());
                        t.ids.push(id);
                    }
                }
            }
            "upsert_columns" | "patch_columns" => {
                if let Ok(ids) = sonic_rs::get(raw, ["id"]) {
                    for id in sonic_rs::to_array_iter(ids.as_raw_str()) {
                        let Ok(id) = id else { return whole };
                        if let Some(id) = raw_id(id.as_raw_str()) {
                            t.populate.push(id.clone());
                            t.ids.push(id);
                        }
                    }
                }
            }
            "deletes" => {
                for id in sonic_rs::to_array_iter(raw) {
                    let Ok(id) = id else { return whole };
                    if let Some(id) = raw_id(id.as_raw_str()) {
                        deleted.push(id.clone());
                        t.ids.push(id);
                    }
                }
            }
            "delete_by_filter"
            | "patch_by_filter"
            | "copy_from_namespace"
            | "branch_from_namespace" => {
                t.whole_namespace |= raw.trim() != "null";
            }
            _ => {}
        }
    }
    // A row deleted in the same request is not read back.
    if !deleted.is_empty() {
        let deleted: std::collections::HashSet<String> = deleted.into_iter().collect();
        t.populate.retain(|id| !deleted.contains(id));
    }
    t
}

/// The write-path mirror: reads the rows a write upserted or patched back from origin (a strong
/// read, after upstream acknowledged the write) and stores them in this shard's hot cache and the
/// shared tier, so the first fetch after a write is a hit. The origin read — not the write body —
/// is cached because the body is not the stored representation (base64 vectors, datetime and UUID
/// normalisation, patches). At most `max_ids` ids (the first ones) per write; best-effort: any
/// failure only costs the next fetch a miss, and the backfill is dropped if another write
/// invalidated the cache while the read was in flight. The cache is not consulted first: a stale
/// tier entry whose invalidation is still in flight must not be re-inserted.
pub async fn populate(ctx: &ShardCtx, ns: &str, ids: &[String], max_ids: usize) {
    let cache = &ctx.shared.cache;
    let ids = &ids[..ids.len().min(max_ids)];
    if ids.is_empty() {
        return;
    }
    let inv = &cache.invalidations;
    // Let this write's own tier invalidation land first, so it is not mistaken for a racing one.
    for _ in 0..500 {
        if inv.pending(Set::Documents, ns) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let epoch = inv.epoch();
    let ns_epoch = inv.namespace_epoch(Set::Documents, ns);
    let wanted: Vec<&String> = ids.iter().collect();
    let found = match origin(ctx, ns, &wanted).await {
        Ok(f) => f,
        Err(_) => {
            metrics::cache_event("populate_failed");
            return;
        }
    };
    if cache.invalidations.epoch() != epoch {
        metrics::cache_event("populate_raced");
        return;
    }
    let mut put = Vec::with_capacity(found.len());
    for (id, row) in found {
        let Ok(bytes) = serde_json::to_vec(&row) else {
            continue;
        };
        let bytes = Bytes::from(bytes);
        with_hot(cache, |h| h.insert(Set::Documents, ns, &id, bytes.clone()));
        if cache
            .tier
            .put(Set::Documents, ns, &id, bytes)
            .await
            .is_err()
        {
            metrics::cache_event("populate_failed");
        } else {
            metrics::cache_event("populated");
            put.push(id);
        }
    }
    // A write that landed while these puts ran may have had its tier deletes applied first: the
    // rows just put could be older than it. Withdraw them (the next fetch reads origin).
    if inv.namespace_epoch(Set::Documents, ns) != ns_epoch
        || inv.pending(Set::Documents, ns) > 0
        || inv.epoch() != epoch
    {
        metrics::cache_event("populate_raced");
        inv.clear_namespace(Set::Documents, ns);
        for id in &put {
            let _ = cache.tier.delete(Set::Documents, ns, id).await;
        }
    }
}

/// A raw JSON id (`"a"`, `7`) as a wire id.
fn raw_id(raw: &str) -> Option<String> {
    serde_json::from_str::<Value>(raw.trim())
        .ok()
        .as_ref()
        .and_then(wire_id)
}

/// Invalidates what a write touches: every shard's hot entries of the namespace, and the ids (or
/// the namespace) in the shared tier. Best-effort and non-blocking for the tier.
pub fn invalidate(ctx: &ShardCtx, ns: &str, t: &Touched) {
    let cache = &ctx.shared.cache;
    cache.invalidations.clear_namespace(Set::Documents, ns);
    let tier = cache.tier.clone();
    // Registered until the tier deletes land: a warm job or the write-path mirror that wrote the
    // tier meanwhile sees it (pending / namespace epoch) and re-reads or withdraws its rows.
    let guard = cache.invalidations.tier_update(Set::Documents, ns);
    let (ns, ids, whole) = (ns.to_string(), t.ids.clone(), t.whole_namespace);
    tokio::spawn(async move {
        let _guard = guard;
        let failed = if whole {
            tier.clear_namespace(Set::Documents, &ns).await.is_err()
        } else {
            let mut failed = false;
            for id in &ids {
                failed |= tier.delete(Set::Documents, &ns, id).await.is_err();
            }
            failed
        };
        if failed {
            metrics::cache_event("invalidate_failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_ids_cover_every_write_form() {
        let t = touched(
            br#"{"upsert_rows":[{"id":1},{"id":"a"}],"patch_columns":{"id":[2]},"deletes":[3]}"#,
        );
        assert_eq!(t.ids, vec!["1", "a", "2", "3"]);
        assert_eq!(t.populate, vec!["1", "a", "2"]);
        assert!(!t.whole_namespace);
        let both = touched(br#"{"upsert_rows":[{"id":1},{"id":2}],"deletes":[2]}"#);
        assert_eq!(both.populate, vec!["1"]);
        assert_eq!(
            touched(br#"{"deletes":["a\u0062"],"delete_by_filter":null}"#),
            Touched {
                ids: vec!["ab".into()],
                populate: vec![],
                whole_namespace: false
            }
        );
        assert!(touched(b"{not json").whole_namespace);
        assert!(touched(br#"{"delete_by_filter":["a","Eq",1]}"#).whole_namespace);
    }

    #[test]
    fn documents_hide_reserved_attributes_unless_named() {
        let row = json!({"id": 5, "title": "t", "_hevlayer_upserted_at": 1});
        assert_eq!(
            document("5", &row, None),
            json!({"id": "5", "attributes": {"title": "t"}})
        );
        let named = vec!["_hevlayer_upserted_at".to_string()];
        assert_eq!(
            document("5", &row, Some(&named))["attributes"],
            json!({"_hevlayer_upserted_at": 1})
        );
    }
}
