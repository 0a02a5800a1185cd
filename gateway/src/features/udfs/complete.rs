//! Completions and failures: `items/complete` writes each item's `attributes` with the version
//! marker (and a cleared `stale_after`) in one write per namespace, through the gateway's own
//! write path (stamped, invalidating the document cache), and marks the items completed;
//! `items/fail` retries or fails them.
//!
//! The double-apply rule ([`layer_queue::items`]): the items stay locked in a PostgreSQL
//! transaction from before the write until they are marked, so a lease that runs out during the
//! write cannot hand them to another worker; only items the reporting worker holds are written
//! (its lease, even run out, as long as no other claim took the item). A worker whose items were
//! re-claimed (or completed) by another has its report ignored for those items (`updated` does
//! not count them); an item its own earlier report completed counts as completed again and is
//! not rewritten (a retried report after a lost answer).
//! An upstream failure (5xx, unreachable: 502) leaves the items leased for retry, never done; an
//! upstream 4xx is relayed and leaves them leased too. With items in several namespaces, the
//! namespaces whose writes succeeded are marked even when another failed.
//!
//! Attributes named `_hevlayer_*` (or `id`) are refused (422) before anything is written. Each
//! namespace's write is `patch_columns` when every item sets the same attributes (the bundled
//! worker's single `output`), and `patch_rows` otherwise, so an item never clears an attribute
//! another item set. Patches never create rows: an item whose row was deleted meanwhile is
//! marked completed and nothing is written for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use layer_queue::{ClaimedItem, Udf};
use serde_json::{Map, Value, json};

use super::spec::{self, Spec, bad};
use super::{Udfs, metrics, queue_error};
use crate::core::ShardCtx;
use crate::core::error::GatewayError;
use crate::core::fields::{object, string};
use crate::core::http::now_ms;
use crate::sources::writes;
use layer_queue::items::item_key;

/// The `UdfClaimedItem` of a claimed item.
pub fn claimed_item(c: &ClaimedItem) -> Value {
    let p = &c.payload;
    json!({
        "namespace": p["namespace"],
        "id": p["id_text"],
        "input": p.get("input").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One completed item as reported.
#[derive(Clone, Debug)]
pub struct Done {
    pub namespace: String,
    pub id: String,
    pub attributes: Map<String, Value>,
}

/// An `items/complete` body.
#[derive(Clone, Debug)]
pub struct Report {
    pub worker_id: String,
    pub items: Vec<Done>,
}

/// An id as the client sends it: a string (numbers accepted, as text).
fn id_text(v: Option<&Value>, field: &str) -> Result<String, GatewayError> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(bad(field, "must be a non-empty string")),
    }
}

fn items(o: &Map<String, Value>) -> Result<&Vec<Value>, GatewayError> {
    match o.get("items") {
        Some(Value::Array(a)) => Ok(a),
        _ => Err(bad("items", "must be a list")),
    }
}

/// One reported item: its position, its object, and its checked namespace and id.
struct Reported<'a> {
    i: usize,
    item: &'a Map<String, Value>,
    namespace: String,
    id: String,
}

/// The `items` of a worker report, each an object with a namespace and an id.
fn reported(o: &Map<String, Value>) -> Result<Vec<Reported<'_>>, GatewayError> {
    items(o)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let item = item
                .as_object()
                .ok_or_else(|| bad(&format!("items[{i}]"), "must be an object"))?;
            Ok(Reported {
                i,
                item,
                namespace: namespace_of(item, i)?,
                id: id_text(item.get("id"), &format!("items[{i}].id"))?,
            })
        })
        .collect()
}

fn namespace_of(item: &Map<String, Value>, i: usize) -> Result<String, GatewayError> {
    let field = format!("items[{i}].namespace");
    let ns = string(item, "namespace").map_err(|_| bad(&field, "must be a string"))?;
    crate::core::service::check_namespace(&ns).map_err(|_| bad(&field, "not a namespace name"))?;
    Ok(ns)
}

impl Report {
    /// Parses an `items/complete` body; reserved attribute names refuse the whole report.
    pub fn parse(body: &Value) -> Result<Report, GatewayError> {
        let o = object(body)?;
        let worker_id = string(o, "worker_id")?;
        let mut out = Vec::new();
        for Reported {
            i,
            item,
            namespace,
            id,
        } in reported(o)?
        {
            let field = format!("items[{i}].attributes");
            let attributes = match item.get("attributes") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(a)) => a.clone(),
                Some(_) => return Err(bad(&field, "must be an object")),
            };
            for k in attributes.keys() {
                if k.starts_with(scatter::RESERVED_PREFIX) {
                    return Err(bad(
                        &field,
                        format!("{k} is reserved: the gateway writes the _hevlayer_ markers"),
                    ));
                }
                if k == "id" || k == "vector" || k.starts_with('$') {
                    return Err(bad(&field, format!("{k} cannot be patched")));
                }
            }
            if item.get("vector").is_some_and(|v| !v.is_null())
                || item.get("vectors").is_some_and(|v| !v.is_null())
            {
                return Err(GatewayError::Rejected {
                    status: http::StatusCode::UNPROCESSABLE_ENTITY,
                    code: "unsupported",
                    message: format!(
                        "items[{i}]: vector completions are not supported yet (Turbopuffer \
                         cannot patch vectors); write vectors through the tpuf client and \
                         complete with attributes only"
                    ),
                });
            }
            out.push(Done {
                namespace,
                id,
                attributes,
            });
        }
        Ok(Report {
            worker_id,
            items: out,
        })
    }
}

/// The `(namespace, id)` refs of a heartbeat, as item keys.
pub fn item_refs(o: &Map<String, Value>) -> Result<Vec<String>, GatewayError> {
    Ok(reported(o)?
        .iter()
        .map(|r| item_key(&r.namespace, &r.id))
        .collect())
}

/// Applies a report (on the control runtime); returns how many items are completed by it.
pub async fn run(udfs: &Arc<Udfs>, udf: &str, report: Report) -> Result<u64, GatewayError> {
    if report.items.is_empty() {
        return Ok(0);
    }
    let ctx = udfs.control_ctx()?;
    let source = udfs.queue.clone();
    let handle = udfs.core.control()?.handle.clone();
    let udf = udf.to_string();
    handle
        .spawn(async move { apply(&ctx, &source, &udf, report).await })
        .await
        .map_err(|e| GatewayError::Internal(format!("completion: {e}")))?
}

async fn apply(
    ctx: &Arc<ShardCtx>,
    source: &crate::sources::queue::QueueSource,
    udf: &str,
    report: Report,
) -> Result<u64, GatewayError> {
    let started = std::time::Instant::now();
    let queue = match source.ready().await {
        Some(q) => q.map_err(queue_error)?,
        None => return Err(GatewayError::Internal("no database configured".into())),
    };
    // The last report of an item wins (a duplicate in one call).
    let mut by_key: HashMap<String, Done> = HashMap::new();
    for d in report.items {
        by_key.insert(item_key(&d.namespace, &d.id), d);
    }
    let keys: Vec<String> = by_key.keys().cloned().collect();
    let completion = queue
        .begin_completion(udf, &keys, &report.worker_id)
        .await
        .map_err(queue_error)?;
    let version = completion.spec["version"]
        .as_str()
        .unwrap_or("v1")
        .to_string();
    let mut by_ns: BTreeMap<String, Vec<(String, Value, &Done)>> = BTreeMap::new();
    for (key, payload) in &completion.held {
        if let Some(done) = by_key.get(key) {
            let raw_id = payload.get("id").cloned().unwrap_or_else(|| json!(done.id));
            by_ns
                .entry(done.namespace.clone())
                .or_default()
                .push((key.clone(), raw_id, done));
        }
    }
    let marker = spec::version_marker(udf);
    let stale = spec::stale_marker(udf);
    let writes = by_ns.iter().map(|(ns, rows)| {
        let body = patch_body(rows, &marker, &stale, &version);
        let own = [marker.as_str(), stale.as_str()];
        async move {
            let up = writes::write_own(ctx, "udf_complete", ns, body, &own).await?;
            if up.status.is_success() {
                Ok(())
            } else if up.status.is_client_error() {
                Err(GatewayError::Relay {
                    status: up.status,
                    content_type: up.headers.get(http::header::CONTENT_TYPE).cloned(),
                    body: up.body,
                })
            } else {
                Err(GatewayError::Upstream(format!(
                    "the completion write to {ns} answered {}: {}",
                    up.status,
                    String::from_utf8_lossy(&up.body)
                )))
            }
        }
    });
    let results = futures_util::future::join_all(writes).await;
    let marked_at = now_ms() as i64;
    let mut ok_keys = Vec::new();
    let mut first_error = None;
    for ((_, rows), result) in by_ns.iter().zip(results) {
        match result {
            Ok(()) => ok_keys.extend(rows.iter().map(|(k, _, _)| k.clone())),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let ignored = by_key.len() as u64 - completion.held.len() as u64 - completion.already_completed;
    let already = completion.already_completed;
    let marked = completion
        .commit(&ok_keys, &version, marked_at)
        .await
        .map_err(queue_error)?;
    metrics::completed(udf, marked, ignored, first_error.is_none(), started);
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(marked + already)
}

/// One namespace's write: `patch_columns` when every row sets the same attributes, else
/// `patch_rows`; each row also gets the version marker and a cleared `stale_after`.
/// Serialized by serde_json from a map: one object, no key twice.
fn patch_body(
    rows: &[(String, Value, &Done)],
    marker: &str,
    stale: &str,
    version: &str,
) -> scatter::Validated<Bytes> {
    let same = rows.windows(2).all(|w| {
        w[0].2.attributes.len() == w[1].2.attributes.len()
            && w[0]
                .2
                .attributes
                .keys()
                .all(|k| w[1].2.attributes.contains_key(k))
    });
    let body = if same {
        let mut cols = Map::new();
        cols.insert(
            "id".into(),
            Value::Array(rows.iter().map(|(_, id, _)| id.clone()).collect()),
        );
        if let Some((_, _, first)) = rows.first() {
            for k in first.attributes.keys() {
                let col = rows
                    .iter()
                    .map(|(_, _, d)| d.attributes.get(k).cloned().unwrap_or(Value::Null))
                    .collect();
                cols.insert(k.clone(), Value::Array(col));
            }
        }
        cols.insert(
            marker.into(),
            Value::Array(vec![json!(version); rows.len()]),
        );
        cols.insert(stale.into(), Value::Array(vec![Value::Null; rows.len()]));
        json!({ "patch_columns": cols })
    } else {
        let patch: Vec<Value> = rows
            .iter()
            .map(|(_, id, d)| {
                let mut row = d.attributes.clone();
                row.insert("id".into(), id.clone());
                row.insert(marker.into(), json!(version));
                row.insert(stale.into(), Value::Null);
                Value::Object(row)
            })
            .collect();
        json!({ "patch_rows": patch })
    };
    scatter::Validated::serialized(Bytes::from(body.to_string()))
}

/// An `items/fail` body: transient and permanent item keys.
#[derive(Clone, Debug, Default)]
pub struct Failures {
    pub worker_id: String,
    pub transient: Vec<String>,
    pub permanent: Vec<String>,
}

impl Failures {
    pub fn parse(body: &Value) -> Result<Failures, GatewayError> {
        let o = object(body)?;
        let mut out = Failures {
            worker_id: string(o, "worker_id")?,
            ..Failures::default()
        };
        for Reported {
            i,
            item,
            namespace,
            id,
        } in reported(o)?
        {
            let key = item_key(&namespace, &id);
            match item.get("kind").and_then(Value::as_str) {
                Some("transient") => out.transient.push(key),
                Some("permanent") => out.permanent.push(key),
                _ => {
                    return Err(bad(
                        &format!("items[{i}].kind"),
                        "must be \"transient\" or \"permanent\"",
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Applies a failure report: transient items back off and retry (or fail when out of
/// attempts), permanent ones fail at once. Items the worker does not hold are left alone.
pub async fn fail(udfs: &Arc<Udfs>, udf: &Udf, f: Failures) -> Result<u64, GatewayError> {
    let policy = Spec::parse(&udf.spec)?.retry_policy();
    let id = udf.id.clone();
    let (transient, permanent) = (f.transient.len(), f.permanent.len());
    let n = udfs
        .db(move |q| async move {
            let mut n = 0;
            if !f.transient.is_empty() {
                n += q
                    .retry_items(&id, &f.transient, &f.worker_id, policy)
                    .await?;
            }
            if !f.permanent.is_empty() {
                n += q.fail_items(&id, &f.permanent, &f.worker_id).await?;
            }
            Ok(n)
        })
        .await?;
    metrics::failed(&udf.id, transient, permanent);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(id: &str, attrs: Value) -> Done {
        Done {
            namespace: "ns".into(),
            id: id.into(),
            attributes: attrs.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn one_attribute_set_is_one_patch_columns() {
        let (a, b) = (
            done("a", json!({"tags": ["x"]})),
            done("b", json!({"tags": []})),
        );
        let rows = vec![
            ("ns/a".to_string(), json!("a"), &a),
            ("ns/1".to_string(), json!(1), &b),
        ];
        let body: Value = serde_json::from_slice(&patch_body(
            &rows,
            "_hevlayer_udf_t_v",
            "_hevlayer_udf_t_stale_after",
            "v2",
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({"patch_columns": {
                "id": ["a", 1], "tags": [["x"], []],
                "_hevlayer_udf_t_v": ["v2", "v2"], "_hevlayer_udf_t_stale_after": [null, null],
            }})
        );
    }

    #[test]
    fn different_attribute_sets_patch_rows_and_clear_nothing_else() {
        let (a, b) = (done("a", json!({"tags": ["x"]})), done("b", json!({})));
        let rows = vec![
            ("ns/a".to_string(), json!("a"), &a),
            ("ns/b".to_string(), json!("b"), &b),
        ];
        let body: Value = serde_json::from_slice(&patch_body(&rows, "m", "s", "v1")).unwrap();
        assert_eq!(
            body["patch_rows"][1],
            json!({"id": "b", "m": "v1", "s": null})
        );
        assert_eq!(body["patch_rows"][0]["tags"], json!(["x"]));
    }

    #[test]
    fn reserved_attributes_refuse_the_report() {
        let body = json!({"worker_id": "w", "items": [
            {"namespace": "ns", "id": "a", "attributes": {"tags": 1}},
            {"namespace": "ns", "id": "b", "attributes": {"_hevlayer_udf_x_v": "v9"}},
        ]});
        match Report::parse(&body) {
            Err(GatewayError::Detailed { status, detail, .. }) => {
                assert_eq!(status, 422);
                assert_eq!(detail["field"], "items[1].attributes");
            }
            other => panic!("{other:?}"),
        }
        let marker_only = json!({"worker_id": "w", "items": [{"namespace": "ns", "id": 7}]});
        let r = Report::parse(&marker_only).unwrap();
        assert_eq!(
            (r.items[0].id.as_str(), r.items[0].attributes.len()),
            ("7", 0)
        );
    }
}
