//! Documents by id, cache first: [`lookup`] takes each id from the cache ([`cached_row`]) and
//! the rest from origin in one read ([`from_origin`]), and hands each row to the caller's
//! conversion (the fetch routes write documents from the stored text; `nearest_to_id` takes
//! values from [`rows`]); and the write-path invalidation and mirror that keep the cache fresh
//! ([`invalidate`], [`populate`]). Start at [`lookup`].
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
//! Validated once: this shard's hot cache holds only valid rows ([`CachedRow::Kept`]). Every
//! insert is an origin row this process serialized ([`row_text`]), a tier value vouched for by
//! the gateway that wrote it ([`put_row`]: serialized rows only; the NVMe tier keeps the mark
//! under its record's checksum), or any other tier value that passed whole-body validation
//! (under the gateway's body limits) at its hit. So a hot hit is read without checking it again,
//! and a vouched tier hit is not checked either. A tier value that fails (a repeated key,
//! nesting past `maxJsonDepth`, or not a row at all, such as a warm job's sentinel) is handed on
//! unchecked each time it is read and never kept hot.
//!
//! Freshness: a write through the gateway invalidates, before forwarding and again after
//! upstream acknowledged it, every hot-cache entry of the namespace (on every shard) and the
//! written ids in the shared tier (the whole namespace for `delete_by_filter` /
//! `patch_by_filter`). The tier deletes run in the background, so they can land after the write
//! was answered; and a copy of origin rows (a backfill, the write-path mirror, a warm page) read
//! before a write can land in the tier after that write's deletes. Both are registered with the
//! invalidation record while in flight ([`layer_cache::TierUpdate`], [`layer_cache::TierWrite`]),
//! and a tier value read while either was in flight for its namespace is not served: the fetch
//! reads origin instead (`unsettled_skip`). A copy that a write raced is withdrawn before its
//! registration ends. So a read after a write's answer never serves a row older than the write.

use bytes::Bytes;
use http::{Method, StatusCode};
use layer_cache::{CacheError, Set, Stored, Tier};
use scatter::Validated;
use serde_json::{Map, Value, json};

use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::core::metrics;
use std::sync::Arc;

use std::future::Future;

use crate::core::cache::CacheTier;
use crate::core::record::Served;

/// Looks up full rows for `ids` (wire ids, strings). Returns the rows in request order (`None` =
/// absent everywhere) and how they were served.
pub async fn rows(
    ctx: &ShardCtx,
    ns: &str,
    ids: &[String],
) -> Result<(Vec<Option<Value>>, Served), GatewayError> {
    lookup(
        ctx,
        ns,
        ids,
        |_, row| serde_json::from_slice(row.text()).ok(),
        |_, row| row,
    )
    .await
}

/// A row the cache answered: its stored JSON text, and whether it is known valid.
#[derive(Clone, Debug)]
pub enum CachedRow {
    /// From this shard's hot cache, which holds only validated rows (see the module docs), or a
    /// tier value vouched for by the gateway that wrote it or that passed validation at this hit
    /// (either way copied into the hot cache).
    Kept(Validated<Bytes>),
    /// A tier value that failed whole-body validation: not copied into the hot cache; callers
    /// judge it as they would any text (the fetch routes through a value tree).
    Unchecked(Bytes),
}

impl CachedRow {
    /// The stored text.
    pub fn text(&self) -> &[u8] {
        match self {
            CachedRow::Kept(v) => v.as_bytes(),
            CachedRow::Unchecked(b) => b,
        }
    }
}

/// Documents for `ids` (wire ids) in request order, cache first, and how they were served. Each
/// id the cache answers ([`cached_row`]) becomes `cached(id, row)` (`None`: no document,
/// e.g. text that does not parse); the rest are read from origin in one read ([`from_origin`])
/// and become `origin(id, row)`; `None` where origin holds no such row.
pub async fn lookup<T>(
    ctx: &ShardCtx,
    ns: &str,
    ids: &[impl AsRef<str>],
    cached: impl Fn(&str, &CachedRow) -> Option<T>,
    origin: impl Fn(&str, Value) -> T,
) -> Result<(Vec<Option<T>>, Served), GatewayError> {
    let mut out: Vec<Option<T>> = Vec::with_capacity(ids.len());
    let mut served = Served::Hit;
    let mut pending: Vec<usize> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let id = id.as_ref();
        match cached_row(ctx, ns, id).await {
            Ok(row) => out.push(cached(id, &row)),
            Err(miss) => {
                served = served.worst(miss);
                pending.push(i);
                out.push(None);
            }
        }
    }
    if !pending.is_empty() {
        for (i, row) in from_origin(ctx, ns, ids, &pending).await? {
            out[i] = Some(origin(ids[i].as_ref(), row));
        }
    }
    Ok((out, served))
}

/// One id from the cache: this shard's hot cache, then the shared tier. `Ok` is the stored row
/// (counted as `hot_hit` or `tier_hit`; a tier hit is copied into the hot cache when it was
/// vouched for ([`put_row`]) or, validated whole here, passes);
/// `Err` says that origin must be read and how the lookup is reported (`miss` or
/// `miss-on-error`). A tier value that cannot be trusted (a failed invalidation of the
/// namespace, or a write or copy in flight during the read) is a miss.
async fn cached_row(ctx: &ShardCtx, ns: &str, id: &str) -> Result<CachedRow, Served> {
    let cache = &ctx.core.cache;
    if let Some(v) = cache.with_hot(|h| h.get(Set::Documents, ns, id)) {
        metrics::cache_event("hot_hit");
        // Every hot insert is validated or serialized here (see the module docs). Tests check
        // that the promise holds: a kept row is always one JSON object.
        debug_assert!(
            serde_json::from_slice::<Map<String, Value>>(&v).is_ok(),
            "a hot-cache row that is not a JSON object"
        );
        return Ok(CachedRow::Kept(Validated::kept(v)));
    }
    let key = (ns.to_string(), id.to_string());
    let (tier, inv) = (cache.tier.clone(), &*cache.invalidations);
    let (ns_owned, id_owned) = (ns.to_string(), id.to_string());
    let (mark, got) = cache
        .coalescer
        .get_or_load(key, move || async move {
            let mark = inv.read_mark(Set::Documents, &ns_owned);
            (
                mark,
                tier.get_stored(Set::Documents, &ns_owned, &id_owned).await,
            )
        })
        .await;
    match got {
        // A failed invalidation left this namespace's tier entries unverified: read origin.
        Ok(Some(_)) if !cache.is_trusted(ns) => {
            metrics::cache_event("untrusted_skip");
            Err(Served::Miss)
        }
        // An invalidation or a copy of this namespace was in flight during the read: the
        // value may predate a write already answered. Read origin.
        Ok(Some(_)) if !cache.invalidations.settled_since(mark, Set::Documents, ns) => {
            metrics::cache_event("unsettled_skip");
            Err(Served::Miss)
        }
        Ok(Some(Stored { value: v, vouched })) => {
            metrics::cache_event("tier_hit");
            // A row vouched for by the gateway that wrote it ([`put_row`], under the tier's
            // checksum) is kept as it is; any other value is validated whole, here, once.
            let row = if vouched {
                Ok(Validated::kept(v.clone()))
            } else {
                Validated::check(v.clone(), &ctx.core.limits)
            };
            match row {
                Ok(row) => {
                    cache.with_hot(|h| h.insert(Set::Documents, ns, id, v));
                    Ok(CachedRow::Kept(row))
                }
                // Counted as well as the hit: stored text that does not validate (a repeated key,
                // deep nesting, corruption, a value that is not a row) shows up here.
                Err(_) => {
                    metrics::cache_event("tier_unchecked");
                    Ok(CachedRow::Unchecked(v))
                }
            }
        }
        Ok(None) => {
            metrics::cache_event("miss");
            Err(Served::Miss)
        }
        Err(e) => {
            let disabled = matches!(e, CacheError::Disabled);
            metrics::cache_event(if disabled { "disabled" } else { "error" });
            Err(if disabled {
                Served::Miss
            } else {
                Served::MissOnError
            })
        }
    }
}

/// The rows of `ids[i]` for each `i` in `pending` (ids the cache did not answer), read from
/// origin by one strong read and backfilled into the hot cache and, in the background, the
/// shared tier. Returns `(i, row)` for the ids origin holds.
async fn from_origin(
    ctx: &ShardCtx,
    ns: &str,
    ids: &[impl AsRef<str>],
    pending: &[usize],
) -> Result<Vec<(usize, Value)>, GatewayError> {
    let cache = &ctx.core.cache;
    let inv = &cache.invalidations;
    let epoch = inv.epoch();
    let ns_epoch = inv.namespace_epoch(Set::Documents, ns);
    let wanted: Vec<&str> = pending.iter().map(|&i| ids[i].as_ref()).collect();
    let found = origin(ctx, ns, &wanted).await?;
    // Backfill only if no write invalidated anything while the origin read was in flight.
    let fresh = inv.epoch() == epoch;
    let mut backfill = Vec::new();
    let mut out = Vec::with_capacity(pending.len());
    for &i in pending {
        let id = ids[i].as_ref();
        let Some(row) = found
            .iter()
            .find(|(found, _)| found == id)
            .map(|(_, r)| r.clone())
        else {
            continue;
        };
        if fresh && let Some(text) = row_text(&row) {
            cache.with_hot(|h| h.insert(Set::Documents, ns, id, text.get_ref().clone()));
            backfill.push((id.to_string(), text));
        }
        out.push((i, row));
    }
    if !backfill.is_empty() {
        let copy = inv.tier_write(Set::Documents, ns);
        let (cache, ns) = (cache.clone(), ns.to_string());
        tokio::spawn(async move {
            backfill_tier(&cache, &ns, backfill, ns_epoch).await;
            drop(copy);
        });
    }
    Ok(out)
}

/// An origin row as the text the cache stores, in an allocation of exactly its length: the hot
/// cache charges a value's length for the memory it holds, and `serde_json::to_vec` leaves up to
/// twice the length allocated. Serialized here, so valid by construction (the hot cache's
/// invariant, see the module docs).
pub fn row_text(row: &Value) -> Option<Validated<Bytes>> {
    let text = serde_json::to_vec(row).ok()?;
    Some(Validated::serialized(Bytes::from(text.into_boxed_slice())))
}

/// Stores a row in the shared tier, vouched for ([`Tier::put_vouched`]): a tier that keeps the
/// mark hands it back, and [`cached_row`] keeps such a row hot without validating it again. Only
/// a row that carries its proof ([`Validated`]) is written this way; anything else the gateway
/// stores under [`Set::Documents`] (a warm job's sentinel and marker) goes in plainly.
pub fn put_row(
    tier: &dyn Tier,
    ns: &str,
    id: &str,
    row: Validated<Bytes>,
) -> layer_cache::TierFuture<()> {
    tier.put_vouched(Set::Documents, ns, id, row.into_inner())
}

/// Writes a fetch's origin rows to the shared tier, then withdraws them if a write to the
/// namespace started or landed since the origin read began (`ns_epoch`): the rows may predate
/// it, and its tier deletes may have run before these puts. The caller holds a
/// [`layer_cache::TierWrite`] throughout, so no fetch serves them meanwhile.
async fn backfill_tier(
    cache: &Arc<CacheTier>,
    ns: &str,
    rows: Vec<(String, Validated<Bytes>)>,
    ns_epoch: u64,
) {
    let mut put = Vec::with_capacity(rows.len());
    for (id, text) in rows {
        if put_row(&*cache.tier, ns, &id, text).await.is_err() {
            metrics::cache_event("backfill_failed");
        } else {
            put.push(id);
        }
    }
    let inv = &cache.invalidations;
    if inv.namespace_epoch(Set::Documents, ns) != ns_epoch || inv.pending(Set::Documents, ns) > 0 {
        metrics::cache_event("backfill_withdrawn");
        withdraw(cache, ns, &put).await;
    }
}

/// Strong upstream read of the rows for `ids`; returns (wire id, row) pairs.
async fn origin(
    ctx: &ShardCtx,
    ns: &str,
    ids: &[&str],
) -> Result<Vec<(String, Value)>, GatewayError> {
    let mut filter_ids: Vec<Value> = Vec::with_capacity(ids.len() * 2);
    for id in ids {
        filter_ids.push(Value::String((*id).to_string()));
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
    let mut v = match super::origin::upstream_json(
        &ctx.upstream(ns),
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

/// A JSON id (`"a"`, `7`) as the wire id the cache and the document routes use: strings as
/// they are, unsigned integers in decimal. Turbopuffer ids are strings, UUIDs or u64; anything
/// else is not an id.
pub fn wire_id(v: &Value) -> Option<String> {
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

/// [`document`] written straight from a kept row's JSON text (a cache hit): the kept members are
/// copied as they are stored, found by [`Validated::plain_members`] without checking the text
/// again (no value tree is built or re-serialized). `None` when the row holds a backslash (a key
/// may be escaped; serde_json's reading decodes it): the caller then takes the [`document`] path.
pub fn document_bytes(
    id: &str,
    row: Validated<&[u8]>,
    include: Option<&[String]>,
) -> Option<Vec<u8>> {
    let members = row.plain_members()?;
    let mut out = Vec::with_capacity(row.len() + id.len() + 32);
    out.extend_from_slice(b"{\"id\":");
    serde_json::to_writer(&mut out, id).ok()?;
    out.extend_from_slice(b",\"attributes\":{");
    let mut first = true;
    for (k, v) in members {
        let keep = match include {
            Some(list) => list.iter().any(|a| a.as_bytes() == k),
            None => !k.starts_with(scatter::RESERVED_PREFIX.as_bytes()),
        };
        if !keep || k == b"id" {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        // A key of valid JSON without a backslash needs no escaping: it is written as stored.
        out.push(b'"');
        out.extend_from_slice(k);
        out.extend_from_slice(b"\":");
        out.extend_from_slice(v);
    }
    out.extend_from_slice(b"}}");
    Some(out)
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
    let cache = &ctx.core.cache;
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
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
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
    // Registered until the rows are in the tier and checked (withdrawn if raced).
    let _copy = inv.tier_write(Set::Documents, ns);
    let mut put = Vec::with_capacity(found.len());
    for (id, row) in found {
        let Some(text) = row_text(&row) else {
            continue;
        };
        cache.with_hot(|h| h.insert(Set::Documents, ns, &id, text.get_ref().clone()));
        if put_row(&*cache.tier, ns, &id, text).await.is_err() {
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
        withdraw(cache, ns, &put).await;
    }
}

/// A raw JSON id (`"a"`, `7`) of a validated body as a wire id (as [`wire_id`] reads it):
/// decoded without building a JSON value.
pub fn raw_id(raw: &str) -> Option<String> {
    match scatter::IdRef::parse(raw.trim()).value() {
        scatter::IdValue::Uint(n) => Some(layer_cache::render_u64_id(*n)),
        scatter::IdValue::Str(s) => Some(s.clone().into_owned()),
        scatter::IdValue::Other => None,
    }
}

/// What a write touches, for invalidation.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Shared by the invalidation before the write and the one after (no copy per id).
    pub ids: Arc<[String]>,
    /// Ids of upserted or patched rows: read back from origin into the cache once the write is
    /// acknowledged (the write-path mirror).
    pub populate: Vec<String>,
    /// `delete_by_filter` / `patch_by_filter` (or an unreadable body): the whole namespace.
    pub whole_namespace: bool,
}

/// Invalidates what a write touches: every shard's hot entries of the namespace, and the ids (or
/// the namespace) in the shared tier. Best-effort and non-blocking for the tier.
pub fn invalidate(ctx: &ShardCtx, ns: &str, t: &Touched) {
    let cache = &ctx.core.cache;
    cache.invalidations.clear_namespace(Set::Documents, ns);
    // Registered until the tier deletes land: a warm job or the write-path mirror that wrote the
    // tier meanwhile sees it (pending / namespace epoch) and re-reads or withdraws its rows.
    let guard = cache.invalidations.tier_update(Set::Documents, ns);
    let (tier, ns, ids, whole) = (
        cache.tier.clone(),
        Arc::<str>::from(ns),
        t.ids.clone(),
        t.whole_namespace,
    );
    // The ids go in one batch where the tier has one (the NVMe tier: one message to its thread,
    // none for a namespace it never stored, a tombstone only for ids it holds).
    let mut deletes: std::pin::Pin<Box<dyn Future<Output = bool> + Send>> = {
        let (ns, ids) = (ns.clone(), ids.clone());
        Box::pin(async move {
            if whole {
                tier.clear_namespace(Set::Documents, &ns).await.is_err()
            } else {
                layer_cache::delete_ids(&*tier, Set::Documents, &ns, &ids)
                    .await
                    .is_err()
            }
        })
    };
    let landed = move |cache: &Arc<CacheTier>, failed: bool| {
        // Landed (or failed, and then the namespace is distrusted): a warm copying this
        // namespace re-reads whichever of these ids it wrote meanwhile.
        cache.touches.record(&ns, (!whole).then_some(&ids[..]));
        if failed {
            metrics::cache_event("invalidate_failed");
            distrust(cache, &ns);
        }
        drop(guard);
    };
    // Answered at once (nothing to delete): finish here rather than in a task of its own.
    // Polling once with a no-op waker is allowed: the task below polls it again with its own.
    let mut poll = std::task::Context::from_waker(std::task::Waker::noop());
    if let std::task::Poll::Ready(failed) = deletes.as_mut().poll(&mut poll) {
        landed(cache, failed);
        return;
    }
    let cache = cache.clone();
    tokio::spawn(async move {
        let failed = deletes.await;
        landed(&cache, failed);
    });
}

/// Removes copies a write raced from the tier; a failed removal distrusts the namespace (as a
/// failed invalidation does) until a clear repairs it.
async fn withdraw(cache: &Arc<CacheTier>, ns: &str, ids: &[String]) {
    let failed = layer_cache::delete_ids(&*cache.tier, Set::Documents, ns, ids)
        .await
        .is_err();
    if failed {
        metrics::cache_event("invalidate_failed");
        distrust(cache, ns);
    }
}

/// Records a failed tier invalidation of `ns` and, unless one runs already, starts the repair:
/// clear the namespace in the tier (retrying with backoff, up to 10 s apart) until a clear that
/// started after the last failure succeeds; only then are its tier entries served again.
fn distrust(cache: &Arc<CacheTier>, ns: &str) {
    let (first, _) = cache.distrust(ns);
    if !first {
        return;
    }
    let (cache, ns) = (cache.clone(), ns.to_string());
    tokio::spawn(async move {
        let mut backoff = std::time::Duration::from_millis(250);
        loop {
            tokio::time::sleep(backoff).await;
            let failures = cache.failures(&ns);
            let cleared = cache
                .tier
                .clear_namespace(Set::Documents, &ns)
                .await
                .is_ok();
            if cleared && cache.trust_again(&ns, failures) {
                metrics::cache_event("untrusted_repaired");
                return;
            }
            backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn cached_row_text_owns_exactly_its_length() {
        let row = serde_json::json!({"id": "a", "title": "x".repeat(300), "n": [1, 2, 3]});
        let text = super::row_text(&row).expect("serializes").into_inner();
        assert_eq!(text, serde_json::to_vec(&row).unwrap());
        let len = text.len();
        let own = text.try_into_mut().expect("unshared");
        assert_eq!(own.capacity(), len);
    }

    use super::*;

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

    /// The spliced cache-hit body says what [`document`] says, for every row that validates and
    /// that it accepts.
    fn same_as_document(id: &str, row: &str, include: Option<&[String]>) -> bool {
        let Ok(row_checked) = Validated::check(row.as_bytes(), &scatter::Limits::default()) else {
            return false;
        };
        let Some(bytes) = document_bytes(id, row_checked, include) else {
            return false;
        };
        let spliced: Value = serde_json::from_slice(&bytes).expect("valid JSON");
        let tree = document(id, &serde_json::from_str(row).unwrap(), include);
        assert_eq!(spliced, tree, "{row}");
        // Same member order too (the tree keeps the row's order).
        assert_eq!(spliced.to_string(), tree.to_string(), "{row}");
        true
    }

    #[test]
    fn document_bytes_matches_document() {
        let include = ["title".to_string(), "id".to_string(), "missing".to_string()];
        for row in [
            r#"{"id":"a","title":"T","vector":[0.5,1e-3],"_hevlayer_upserted_at":17,"n":{"x":[1,{"y":null}]}}"#,
            r#" { "title" : "spaced" , "price" : 12.50 } "#,
            r#"{}"#,
            r#"{"id":7}"#,
            r#"{"é":"ü","big":18446744073709551615,"neg":-0.0,"t":true}"#,
        ] {
            assert!(same_as_document("a\"b", row, None), "{row}");
            assert!(same_as_document("a", row, Some(&include)), "{row}");
            assert!(same_as_document("a", row, Some(&[])), "{row}");
        }
        // Rows the splice leaves to the tree path: they fail validation (so a tier hit is
        // `Unchecked`), or hold an escape.
        for row in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":1} x"#,
            r#"{"a":1}}"#,
            r#"[1,2]"#,
            r#"{"a":"#,
            "",
        ] {
            assert!(!same_as_document("a", row, None), "{row}");
        }
    }

    proptest::proptest! {
        #[test]
        fn document_bytes_agrees_with_document_on_generated_rows(
            members in proptest::collection::vec(
                ("(id|_hevlayer_[a-z]{1,3}|[a-z]{1,6})", proptest::prelude::any::<i32>(), "[a-z ]{0,8}"),
                0..12,
            ),
            include in proptest::option::of(proptest::collection::vec("[a-z]{1,6}", 0..4)),
        ) {
            let mut row = serde_json::Map::new();
            for (k, n, text) in members {
                let v = if n % 2 == 0 { json!(n) } else { json!({"t": text, "n": [n, null]}) };
                row.insert(k, v);
            }
            let text = Value::Object(row).to_string();
            let accepted = same_as_document("doc-1", &text, include.as_deref());
            proptest::prop_assert!(accepted, "{}", text);
        }
    }
}
