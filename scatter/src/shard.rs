//! Shard hashing and the scatter half of scatter/gather: one `_hevlayer_shard`-filtered body per
//! shard, all cut from one parse of the query and one watermark value.
//!
//! # The shard of an id
//!
//! `_hevlayer_shard = xxh64(bytes, seed 0) % shards`, where `bytes` are:
//!
//! | id ([`IdValue`]) | bytes hashed |
//! |---|---|
//! | `Uint(n)` (JSON integer) | the 8 little-endian bytes of `n` as `u64` (`1` → `01 00 00 00 00 00 00 00`) |
//! | `Str(s)` (JSON string, string or UUID id) | the UTF-8 bytes of the **unescaped** string, no quotes (`"a\u0062"` → `61 62`) |
//! | `Other` (negative/fractional numbers, objects, ...) | nothing: shard 0 (upstream rejects these ids) |
//!
//! UUID strings are hashed as sent, not canonicalised: a caller that writes `"A0EE-..."` and
//! later looks the row up as `"a0ee-..."` computes a different shard. Only lookups by id care
//! (a scattered query filters on the stamped attribute, not on a recomputed hash).
//! `shards == 0` is treated as unsharded (shard 0), never a division by zero.
//!
//! # Scatter
//!
//! [`plan_shards`] walks the validated body's top level once and renders `shards` bodies. Body `i` has
//! `["_hevlayer_shard","Eq",i]` (and the watermark predicate, when given) ANDed into `filters`:
//!
//! - existing `filters` `F`: `["And",[F,<watermark>,["_hevlayer_shard","Eq",i]]]` (`F` verbatim);
//! - absent or `null`: `["And",[<watermark>,["_hevlayer_shard","Eq",i]]]`, or just the shard
//!   predicate without a watermark, inserted as the first key (absent) or in place of `null`;
//! - multi-query bodies: the same in every sub-query (the root is left alone, as in
//!   [`crate::inject_filter`]).
//!
//! Every body uses the same watermark bytes, so all shards read one consistency cut. Callers may
//! filter on `_hevlayer_shard` themselves (reading it is allowed; only writes reject it).
//!
//! Attribute-ordered single queries need the order attributes in each row to merge; when
//! `include_attributes` would not return them they are appended (or the key is added) and
//! reported in [`ShardPlan::strip`] so the merge removes them again. `offset` cannot be
//! scattered exactly and is rejected (422).

use std::ops::Range;

use sonic_rs::LazyValue;
use xxhash_rust::xxh64::xxh64;

use crate::order::{RowOrder, order_of_rank_by};
use crate::splice::{is_null, raw_trimmed, span_of};
use crate::validate::{json_error, skip_ws};
use crate::{IdRef, IdValue, QueryError, SHARD, Validated};

/// The xxh64 seed used for shard hashing.
pub const SHARD_SEED: u64 = 0;

/// The shard bucket of an id: `xxh64(bytes, 0) % shards` (see the module docs for the bytes).
#[must_use]
pub fn shard_of(id: &IdValue<'_>, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let hash = match id {
        IdValue::Uint(n) => xxh64(&n.to_le_bytes(), SHARD_SEED),
        IdValue::Str(s) => xxh64(s.as_bytes(), SHARD_SEED),
        IdValue::Other => return 0,
    };
    // The remainder is < shards <= u32::MAX, so the conversion cannot fail.
    u32::try_from(hash % u64::from(shards)).unwrap_or(0)
}

/// [`shard_of`] for a write's [`IdRef`], shaped for [`crate::StampOptions::shard`]:
/// `let f = |id: &IdRef<'_>| shard_of_ref(id, n); StampOptions { shard: Some(&f), .. }`.
#[must_use]
pub fn shard_of_ref(id: &IdRef<'_>, shards: u32) -> u32 {
    shard_of(id.value(), shards)
}

/// The filter selecting shard `i`: `["_hevlayer_shard","Eq",i]`.
#[must_use]
pub fn shard_predicate(i: u32) -> String {
    format!("[\"{SHARD}\",\"Eq\",{i}]")
}

/// The scattered bodies of one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    /// One body per shard; `legs[i]` reads shard `i`.
    pub legs: Vec<Vec<u8>>,
    /// Attributes added to `include_attributes` for the merge's ordering; pass them to
    /// [`crate::MergeSpec::strip`] so the caller gets the projection it asked for.
    pub strip: Vec<String>,
}

/// Renders one body per shard (see the module docs).
///
/// # Errors
/// 422 when `queries` is not an array of objects or a
/// single query has a non-null `offset`; 500 ([`crate::RewriteError::InvalidPredicate`]) when
/// `watermark` is not one JSON value.
pub fn plan_shards<B: AsRef<[u8]>>(
    valid: &Validated<B>,
    shards: u32,
    watermark: Option<&[u8]>,
) -> Result<ShardPlan, QueryError> {
    let body = valid.as_bytes();
    if let Some(w) = watermark
        && crate::filter::check_predicate(w).is_err()
    {
        return Err(crate::RewriteError::InvalidPredicate {
            message: "watermark predicate is not one JSON value".into(),
        }
        .into());
    }
    let entries = valid.members()?;
    let mut edits: Vec<Edit> = Vec::new();
    let mut strip = Vec::new();
    let queries = entries.iter().find(|(k, v)| k == "queries" && !is_null(v));
    if let Some((_, queries)) = queries {
        let subs = queries
            .clone()
            .into_array_iter()
            .ok_or_else(|| QueryError::invalid("`queries` must be an array of query objects"))?;
        for (i, sub) in subs.enumerate() {
            let sub = sub.map_err(|e| json_error(&e, true))?;
            let fields = collect_object(&sub).ok_or_else(|| {
                QueryError::invalid(format!("`queries[{i}]` must be a query object"))
            })??;
            let at = span_of(body, &sub)?.start + 1;
            filter_edits(body, at, &fields, &mut edits)?;
        }
    } else {
        if entries.iter().any(|(k, v)| k == "offset" && !is_null(v)) {
            return Err(QueryError::Unsupported {
                field: "offset",
                why: "a sharded namespace cannot apply it exactly; page with cursor or filters",
            });
        }
        let open = skip_ws(body, 0) + 1;
        let fields: Vec<(String, LazyValue<'_>)> = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        filter_edits(body, open, &fields, &mut edits)?;
        strip = include_edits(body, open, &fields, &mut edits)?;
    }
    edits.sort_by_key(|e| e.at);
    let n = shards.max(1);
    let mut legs = Vec::with_capacity(n as usize);
    for i in 0..n {
        legs.push(render(body, &edits, watermark, i)?);
    }
    Ok(ShardPlan { legs, strip })
}

/// What goes at an edit point; shard-dependent pieces are rendered per shard.
#[derive(Debug, Clone)]
enum Piece {
    /// `["And",[` before existing filters.
    WrapOpen,
    /// `,<watermark>,<shard>]]` after existing filters.
    WrapClose,
    /// The combined predicate, replacing a `null` filters value.
    Combined,
    /// `"filters":<combined>` plus a comma when the object has other members.
    Key { comma: bool },
    /// Fixed bytes (include_attributes augmentation).
    Fixed(Vec<u8>),
}

#[derive(Debug)]
struct Edit {
    at: usize,
    remove: usize,
    piece: Piece,
}

/// An object's members with unescaped keys, or `None` when the value is not an object.
#[allow(clippy::type_complexity)]
fn collect_object<'a>(
    v: &LazyValue<'a>,
) -> Option<Result<Vec<(String, LazyValue<'a>)>, QueryError>> {
    let iter = v.clone().into_object_iter()?;
    Some(
        iter.map(|f| {
            f.map(|(k, v)| (k.to_string(), v))
                .map_err(|e| json_error(&e, true).into())
        })
        .collect(),
    )
}

fn filter_edits(
    body: &[u8],
    after_open: usize,
    fields: &[(String, LazyValue<'_>)],
    edits: &mut Vec<Edit>,
) -> Result<(), QueryError> {
    match fields.iter().find(|(k, _)| k == "filters").map(|(_, v)| v) {
        Some(old) if !is_null(old) => {
            let span = span_of(body, old)?;
            edits.push(Edit {
                at: span.start,
                remove: 0,
                piece: Piece::WrapOpen,
            });
            edits.push(Edit {
                at: span.end,
                remove: 0,
                piece: Piece::WrapClose,
            });
        }
        Some(null) => {
            let span = span_of(body, null)?;
            edits.push(Edit {
                at: span.start,
                remove: span.len(),
                piece: Piece::Combined,
            });
        }
        None => edits.push(Edit {
            at: after_open,
            remove: 0,
            piece: Piece::Key {
                comma: !fields.is_empty(),
            },
        }),
    }
    Ok(())
}

/// Makes sure attribute-ordered rows carry their order attributes; returns those added.
fn include_edits(
    body: &[u8],
    after_open: usize,
    fields: &[(String, LazyValue<'_>)],
    edits: &mut Vec<Edit>,
) -> Result<Vec<String>, QueryError> {
    let Some((_, rank_by)) = fields.iter().find(|(k, _)| k == "rank_by") else {
        return Ok(Vec::new());
    };
    let RowOrder::Attributes(keys) = order_of_rank_by(rank_by) else {
        return Ok(Vec::new());
    };
    let mut wanted: Vec<String> = Vec::new();
    for (attr, _) in keys {
        if attr != "id" && !wanted.contains(&attr) {
            wanted.push(attr);
        }
    }
    if wanted.is_empty() {
        return Ok(wanted);
    }
    let include = fields.iter().find(|(k, _)| k == "include_attributes");
    match include.map(|(_, v)| (v, raw_trimmed(v))) {
        Some((_, "true")) => Ok(Vec::new()),
        Some((list, raw)) if raw.starts_with('[') => {
            let mut present = Vec::new();
            for item in list.clone().into_array_iter().into_iter().flatten() {
                let item = item.map_err(|e| json_error(&e, true))?;
                if let Ok(s) = sonic_rs::from_str::<String>(raw_trimmed(&item)) {
                    present.push(s);
                }
            }
            wanted.retain(|a| !present.contains(a));
            if wanted.is_empty() {
                return Ok(wanted);
            }
            let span = span_of(body, list)?;
            let mut text = Vec::new();
            for (i, a) in wanted.iter().enumerate() {
                if i > 0 || !present.is_empty() || !array_is_empty(body, &span) {
                    text.push(b',');
                }
                text.extend_from_slice(json_string(a).as_bytes());
            }
            // Before the closing `]` of the list.
            edits.push(Edit {
                at: span.end - 1,
                remove: 0,
                piece: Piece::Fixed(text),
            });
            Ok(wanted)
        }
        other => {
            // Absent, `null`, `false` (id only) or a shape upstream will reject: ask for exactly
            // the order attributes.
            let list = format!(
                "[{}]",
                wanted
                    .iter()
                    .map(|a| json_string(a))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            match other {
                Some((v, _)) => {
                    let span = span_of(body, v)?;
                    edits.push(Edit {
                        at: span.start,
                        remove: span.len(),
                        piece: Piece::Fixed(list.into_bytes()),
                    });
                }
                None => {
                    let text = format!("\"include_attributes\":{list},");
                    edits.push(Edit {
                        at: after_open,
                        remove: 0,
                        piece: Piece::Fixed(text.into_bytes()),
                    });
                }
            }
            Ok(wanted)
        }
    }
}

fn array_is_empty(body: &[u8], span: &Range<usize>) -> bool {
    body.get(span.start + 1..span.end - 1)
        .is_some_and(|inner| inner.iter().all(|b| b" \t\r\n".contains(b)))
}

/// A JSON string literal for `s`.
pub(crate) fn json_string(s: &str) -> String {
    sonic_rs::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

fn render(
    body: &[u8],
    edits: &[Edit],
    watermark: Option<&[u8]>,
    shard: u32,
) -> Result<Vec<u8>, QueryError> {
    let shard_pred = shard_predicate(shard);
    let mut combined = Vec::new();
    match watermark {
        Some(w) => {
            combined.extend_from_slice(b"[\"And\",[");
            combined.extend_from_slice(w);
            combined.push(b',');
            combined.extend_from_slice(shard_pred.as_bytes());
            combined.extend_from_slice(b"]]");
        }
        None => combined.extend_from_slice(shard_pred.as_bytes()),
    }
    let mut out = Vec::with_capacity(body.len() + edits.len() * (combined.len() + 16));
    let mut cursor = 0usize;
    for e in edits {
        let keep = body
            .get(cursor..e.at)
            .ok_or(crate::RewriteError::Internal {
                message: "overlapping shard edits",
            })?;
        out.extend_from_slice(keep);
        match &e.piece {
            Piece::WrapOpen => out.extend_from_slice(b"[\"And\",["),
            Piece::WrapClose => {
                if let Some(w) = watermark {
                    out.push(b',');
                    out.extend_from_slice(w);
                }
                out.push(b',');
                out.extend_from_slice(shard_pred.as_bytes());
                out.extend_from_slice(b"]]");
            }
            Piece::Combined => out.extend_from_slice(&combined),
            Piece::Key { comma } => {
                out.extend_from_slice(b"\"filters\":");
                out.extend_from_slice(&combined);
                if *comma {
                    out.push(b',');
                }
            }
            Piece::Fixed(bytes) => out.extend_from_slice(bytes),
        }
        cursor = e.at + e.remove;
    }
    out.extend_from_slice(body.get(cursor..).unwrap_or_default());
    Ok(out)
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
