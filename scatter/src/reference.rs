//! DOM reference implementations (feature `reference`, and always in tests).
//!
//! The same transformations as [`crate::stamp_write_with`] and [`crate::inject_filter`], written
//! the obvious way: parse with serde_json into a `Value`, edit the tree, return it. The property
//! tests and the fuzz targets parse the splicer's output and require it to equal what these
//! return (order-sensitively, see [`same_order`]). Whole-body validation (duplicate keys, depth,
//! size) is not reproduced: serde_json silently keeps the last duplicate, so this is only
//! meaningful on bodies the splicer's validation accepted. Never used on the request path.
//!
//! [`hide_then_plan`] is the two-call path that [`crate::hide_and_plan`] fuses, kept as its
//! reference.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::layer_query::{QueryContext, QueryPlan, plan_validated};

use crate::{
    IdRef, IdValue, Limits, QueryError, RESERVED_PREFIX, RewriteError, SHARD, StampOptions,
    UPSERTED_AT, hide_reserved,
};

/// Reference for [`crate::hide_and_plan`]: [`hide_reserved`], then [`plan_validated`] on what it
/// returns (each reading the body's top level).
///
/// # Errors
/// `hide_reserved`'s; the plan's own result is the inner one.
pub fn hide_then_plan(
    body: Bytes,
    ctx: &QueryContext,
) -> Result<(Bytes, Result<QueryPlan, QueryError>), RewriteError> {
    hide_reserved(body, &ctx.limits).map(|hidden| {
        let planned = plan_validated(&hidden, ctx);
        (hidden.into_inner(), planned)
    })
}

/// Parses a body with serde_json; the top level must be an object.
///
/// # Errors
/// [`RewriteError::InvalidJson`] or [`RewriteError::NotAnObject`].
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, RewriteError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RewriteError::NotAnObject),
        Err(e) => Err(RewriteError::InvalidJson {
            message: e.to_string(),
        }),
    }
}

/// Reference for [`crate::stamp_write_with`]: returns the stamped document.
///
/// # Errors
/// As the splicer, minus the validation-only errors.
pub fn stamp_write(body: &[u8], opts: &StampOptions<'_>) -> Result<Value, RewriteError> {
    let mut doc = parse_object(body)?;
    let mut any_op = false;
    for (key, value) in &mut doc {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "upsert_rows" | "patch_rows" => {
                any_op = true;
                let Value::Array(rows) = value else {
                    return Err(RewriteError::malformed(format!(
                        "`{key}` must be an array of row objects"
                    )));
                };
                for (i, row) in rows.iter_mut().enumerate() {
                    let Value::Object(row) = row else {
                        return Err(RewriteError::malformed(format!(
                            "`{key}[{i}]` must be an object"
                        )));
                    };
                    check_reserved(row)?;
                    let shard = match (opts.shard, row.get("id")) {
                        (Some(f), Some(id)) => Some(shard_of(f, id)),
                        (Some(_), None) => {
                            return Err(RewriteError::malformed(format!(
                                "`{key}[{i}]` has no `id` (needed to assign a shard)"
                            )));
                        }
                        (None, _) => None,
                    };
                    row.shift_insert(0, UPSERTED_AT.to_owned(), Value::from(opts.now_ms));
                    if let Some(s) = shard {
                        row.shift_insert(1, SHARD.to_owned(), Value::from(s));
                    }
                }
            }
            "upsert_columns" | "patch_columns" => {
                any_op = true;
                let Value::Object(cols) = value else {
                    return Err(RewriteError::malformed(format!(
                        "`{key}` must be an object of attribute columns"
                    )));
                };
                check_reserved(cols)?;
                let Some(Value::Array(ids)) = cols.get("id") else {
                    return Err(RewriteError::malformed(format!(
                        "`{key}.id` must be an array of ids"
                    )));
                };
                let shards: Option<Vec<Value>> = opts
                    .shard
                    .map(|f| ids.iter().map(|id| Value::from(shard_of(f, id))).collect());
                let stamps = vec![Value::from(opts.now_ms); ids.len()];
                cols.shift_insert(0, UPSERTED_AT.to_owned(), Value::Array(stamps));
                if let Some(shards) = shards {
                    cols.shift_insert(1, SHARD.to_owned(), Value::Array(shards));
                }
            }
            "patch_by_filter" => {
                any_op = true;
                let Value::Object(pbf) = value else {
                    return Err(RewriteError::malformed(
                        "`patch_by_filter` must be an object with `filters` and `patch`",
                    ));
                };
                match pbf.get_mut("patch") {
                    None => {
                        return Err(RewriteError::malformed(
                            "`patch_by_filter` has no `patch` object",
                        ));
                    }
                    Some(Value::Object(patch)) => {
                        check_reserved(patch)?;
                        patch.shift_insert(0, UPSERTED_AT.to_owned(), Value::from(opts.now_ms));
                    }
                    Some(_) => {
                        return Err(RewriteError::malformed(
                            "`patch_by_filter.patch` must be an object of attributes",
                        ));
                    }
                }
            }
            "schema" => {
                any_op = true;
                let Value::Object(schema) = value else {
                    return Err(RewriteError::malformed(
                        "`schema` must be an object of attribute schemas",
                    ));
                };
                check_reserved(schema)?;
            }
            "deletes" | "delete_by_filter" | "copy_from_namespace" | "branch_from_namespace" => {
                any_op = true;
            }
            _ => {}
        }
    }
    if !any_op {
        return Err(RewriteError::NoWriteOperation);
    }
    Ok(Value::Object(doc))
}

/// Reference for [`crate::inject_filter`]: returns the rewritten document.
///
/// # Errors
/// As the splicer, minus the validation-only errors.
pub fn inject_filter(body: &[u8], predicate: &[u8]) -> Result<Value, RewriteError> {
    let pred: Value =
        serde_json::from_slice(predicate).map_err(|e| RewriteError::InvalidPredicate {
            message: e.to_string(),
        })?;
    let mut doc = parse_object(body)?;
    match doc.get_mut("queries") {
        Some(Value::Null) | None => add_filter(&mut doc, &pred),
        Some(Value::Array(subs)) => {
            for (i, sub) in subs.iter_mut().enumerate() {
                let Value::Object(sub) = sub else {
                    return Err(RewriteError::malformed(format!(
                        "`queries[{i}]` must be a query object"
                    )));
                };
                add_filter(sub, &pred);
            }
        }
        Some(_) => {
            return Err(RewriteError::malformed(
                "`queries` must be an array of query objects",
            ));
        }
    }
    Ok(Value::Object(doc))
}

fn add_filter(query: &mut Map<String, Value>, pred: &Value) {
    match query.get_mut("filters") {
        Some(Value::Null) => {
            query.insert("filters".to_owned(), pred.clone());
        }
        Some(old) => {
            let old = old.take();
            query.insert(
                "filters".to_owned(),
                Value::Array(vec![
                    Value::from("And"),
                    Value::Array(vec![old, pred.clone()]),
                ]),
            );
        }
        None => {
            query.shift_insert(0, "filters".to_owned(), pred.clone());
        }
    }
}

fn check_reserved(map: &Map<String, Value>) -> Result<(), RewriteError> {
    match map.keys().find(|k| k.starts_with(RESERVED_PREFIX)) {
        Some(k) => Err(RewriteError::ReservedAttribute {
            attribute: k.clone(),
        }),
        None => Ok(()),
    }
}

fn shard_of(f: &dyn Fn(&IdRef<'_>) -> u32, id: &Value) -> u32 {
    let raw = id.to_string();
    let value = match id {
        Value::Number(n) => n.as_u64().map_or(IdValue::Other, IdValue::Uint),
        Value::String(s) => IdValue::Str(s.as_str().into()),
        _ => IdValue::Other,
    };
    f(&IdRef::from_parts(&raw, value))
}

/// Runs [`crate::stamp_write_with`] and [`stamp_write`] on `body` and explains any disagreement.
///
/// # Errors
/// A description of the disagreement (the fuzz targets panic with it).
pub fn check_stamp(body: &[u8], opts: &StampOptions<'_>, limits: &Limits) -> Result<(), String> {
    compare(
        crate::stamp_write_with(body, opts, limits),
        || stamp_write(body, opts),
        limits,
    )
}

/// Runs [`crate::inject_filter`] and [`inject_filter`] on `body` and explains any disagreement.
///
/// # Errors
/// A description of the disagreement.
pub fn check_inject(body: &[u8], predicate: &[u8], limits: &Limits) -> Result<(), String> {
    compare(
        crate::inject_filter(body, predicate, limits),
        || inject_filter(body, predicate),
        limits,
    )
}

/// Errors only the splicer's whole-body validation can raise (the DOM reference is laxer).
fn is_validation_error(e: &RewriteError) -> bool {
    matches!(
        e,
        RewriteError::Oversize { .. }
            | RewriteError::InvalidJson { .. }
            | RewriteError::NotAnObject
            | RewriteError::DuplicateKey { .. }
            | RewriteError::TooDeep { .. }
    )
}

fn compare(
    ours: Result<Vec<u8>, RewriteError>,
    reference: impl FnOnce() -> Result<Value, RewriteError>,
    limits: &Limits,
) -> Result<(), String> {
    match ours {
        Err(e) if is_validation_error(&e) => Ok(()),
        Err(e) => match reference() {
            Err(r) if std::mem::discriminant(&r) == std::mem::discriminant(&e) => Ok(()),
            // serde_json rejects a few things sonic-rs accepts (numbers beyond f64 such as
            // `1e400`, lone surrogate escapes inside string values).
            Err(RewriteError::InvalidJson { .. }) => Ok(()),
            other => Err(format!(
                "splicer failed with {e:?}, reference gave {other:?}"
            )),
        },
        Ok(out) => {
            // The output must itself pass validation: well-formed, no duplicate key. Injection
            // nests the old filter two levels deeper.
            let relaxed = Limits {
                max_body_bytes: usize::MAX,
                max_depth: limits.effective_max_depth() + 2,
            };
            crate::validate(&out, &relaxed)
                .map_err(|e| format!("splicer output does not validate: {e}"))?;
            match reference() {
                Ok(want) => {
                    let got: Value = serde_json::from_slice(&out)
                        .map_err(|e| format!("serde_json cannot parse splicer output: {e}"))?;
                    if same_order(&got, &want) {
                        Ok(())
                    } else {
                        Err(format!(
                            "splicer and reference disagree\n splicer:   {got}\n reference: {want}"
                        ))
                    }
                }
                Err(RewriteError::InvalidJson { .. }) => Ok(()),
                Err(e) => Err(format!("splicer succeeded, reference failed with {e:?}")),
            }
        }
    }
}

/// Deep equality that also requires every object's keys in the same order (serde_json's own
/// `==` ignores key order).
#[must_use]
pub fn same_order(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && same_order(va, vb))
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_order(x, y))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_order_sees_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":[{"c":1,"d":2}]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":1,"b":[{"d":2,"c":1}]}"#).unwrap();
        assert_eq!(a, b);
        assert!(!same_order(&a, &b));
        assert!(same_order(&a, &a));
    }

    #[test]
    fn reference_agrees_with_a_hand_example() {
        let out = stamp_write(
            br#"{"upsert_rows":[{"id":1}],"patch_by_filter":{"filters":1,"patch":{"x":2}}}"#,
            &StampOptions::new(7),
        )
        .unwrap();
        let want: Value = serde_json::from_str(
            r#"{"upsert_rows":[{"_hevlayer_upserted_at":7,"id":1}],"patch_by_filter":{"filters":1,"patch":{"_hevlayer_upserted_at":7,"x":2}}}"#,
        )
        .unwrap();
        assert!(same_order(&out, &want));
    }
}
