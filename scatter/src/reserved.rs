//! Keeps the gateway's own `_hevlayer_*` attributes out of query results the caller did not ask
//! them for.
//!
//! Upstream returns every attribute for `include_attributes: true` and every non-excluded one for
//! `exclude_attributes`, which would surface the stamps the gateway writes. [`hide_reserved`]
//! rewrites the request instead of the (much larger) response:
//!
//! - `"include_attributes": true` becomes `"exclude_attributes":[<reserved names>]` (the same set of
//!   attributes, vectors included, minus the reserved ones);
//! - `"exclude_attributes": [...]` gets the reserved names appended;
//! - an explicit list in `include_attributes` is left alone: naming a reserved attribute is an
//!   explicit request, and reading it is allowed.
//!
//! Single queries and every sub-query of a multi-query are handled. The body is validated whole
//! on the way, and comes back as a [`Validated`] (the same bytes when nothing needed changing).

use sonic_rs::LazyValue;

use crate::splice::{Splice, is_null, raw_trimmed, span_of};
use crate::validate::{Entries, json_error, parse_top};
use crate::{Limits, RewriteError, SHARD, UPSERTED_AT, Validated};

/// The reserved attributes hidden from wildcard projections.
const HIDDEN: [&str; 2] = [UPSERTED_AT, SHARD];

/// Validates `body` whole and rewrites its projections so reserved attributes stay hidden; the
/// body itself when it needs no change.
///
/// # Errors
/// Any validation error of the body; [`RewriteError::Malformed`] for a non-array `queries`.
pub fn hide_reserved<B>(body: B, limits: &Limits) -> Result<Validated<B>, RewriteError>
where
    B: AsRef<[u8]> + From<Vec<u8>>,
{
    let rewritten = match hide(body.as_ref(), limits)? {
        Hidden::Rewritten(rewritten) => Some(rewritten),
        Hidden::Unchanged(_) => None,
    };
    Ok(Validated::spliced(rewritten.map_or(body, B::from)))
}

/// What [`hide`] made of a body (validated whole either way).
#[expect(
    clippy::large_enum_variant,
    reason = "taken apart at once; boxing the members would add the allocation they avoid"
)]
pub(crate) enum Hidden<'a> {
    /// The body with its projections rewritten.
    Rewritten(Vec<u8>),
    /// The body needs no change: its top-level members as its validation read them, so a
    /// planner can start from them instead of reading the top level again.
    Unchanged(Entries<'a>),
}

/// Validates `body` whole and rewrites its projections when they would show reserved attributes.
pub(crate) fn hide<'a>(body: &'a [u8], limits: &Limits) -> Result<Hidden<'a>, RewriteError> {
    let entries = parse_top(body, limits)?;
    let mut splice = Splice::new(body);
    let queries = entries.iter().find(|(k, v)| k == "queries" && !is_null(v));
    match queries {
        Some((_, q)) => {
            let subs = q.clone().into_array_iter().ok_or_else(|| {
                RewriteError::malformed("`queries` must be an array of query objects")
            })?;
            for sub in subs {
                let sub = sub.map_err(|e| json_error(&e, true))?;
                let Some(fields) = sub.clone().into_object_iter() else {
                    continue;
                };
                let mut pairs = Vec::new();
                for f in fields {
                    let (k, v) = f.map_err(|e| json_error(&e, true))?;
                    pairs.push((k.into_owned(), v));
                }
                rewrite(
                    body,
                    &mut splice,
                    pairs.iter().map(|(k, v)| (k.as_str(), v)),
                )?;
            }
        }
        None => rewrite(
            body,
            &mut splice,
            entries.iter().map(|(k, v)| (k.as_ref(), v)),
        )?,
    }
    if splice.is_empty() {
        return Ok(Hidden::Unchanged(entries));
    }
    splice.finish().map(Hidden::Rewritten)
}

/// Edits one query object's projection fields.
///
/// With both `include_attributes: true` and an `exclude_attributes` member, the exclusion is
/// extended (a `null` one becomes the reserved list) and the inclusion left alone: replacing it
/// as well would write the key twice.
fn rewrite<'a, 'b>(
    body: &'a [u8],
    splice: &mut Splice<'a>,
    fields: impl Iterator<Item = (&'b str, &'b LazyValue<'a>)> + Clone,
) -> Result<(), RewriteError>
where
    'a: 'b,
{
    let has_exclude = fields.clone().any(|(k, _)| k == "exclude_attributes");
    let include_all = fields
        .clone()
        .any(|(k, v)| k == "include_attributes" && raw_trimmed(v) == "true");
    for (key, value) in fields {
        match key {
            "exclude_attributes" if include_all && is_null(value) => {
                let vr = span_of(body, value)?;
                let piece = format!("[{}]", quoted_list());
                let p = splice.piece(piece.as_bytes());
                splice.replace_piece(vr, p);
            }
            "include_attributes" if raw_trimmed(value) == "true" && !has_exclude => {
                // Replace the whole `"include_attributes":true` member (key through value).
                let vr = span_of(body, value)?;
                let key_start = member_start(body, vr.start).ok_or(RewriteError::Internal {
                    message: "member key not found",
                })?;
                let piece = format!("\"exclude_attributes\":[{}]", quoted_list());
                let p = splice.piece(piece.as_bytes());
                splice.replace_piece(key_start..vr.end, p);
            }
            "exclude_attributes" => {
                let vr = span_of(body, value)?;
                let raw = raw_trimmed(value);
                if !raw.starts_with('[') {
                    continue; // Upstream rejects a non-array; leave it to say so.
                }
                let empty = raw[1..raw.len() - 1].trim().is_empty();
                let piece = if empty {
                    quoted_list()
                } else {
                    format!(",{}", quoted_list())
                };
                splice.insert(vr.end - 1, piece.as_bytes());
            }
            _ => {}
        }
    }
    Ok(())
}

fn quoted_list() -> String {
    HIDDEN
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(",")
}

/// The offset of the opening quote of the key whose value starts at `value_start`.
fn member_start(body: &[u8], value_start: usize) -> Option<usize> {
    // Walk back over `:` and whitespace to the key's closing quote, then to its opening quote.
    let mut i = value_start.checked_sub(1)?;
    while body[i].is_ascii_whitespace() || body[i] == b':' {
        i = i.checked_sub(1)?;
    }
    if body[i] != b'"' {
        return None;
    }
    // Keys here are plain ASCII names (`include_attributes`), so no escaped quote precedes.
    let close = i;
    let open = body[..close].iter().rposition(|&b| b == b'"')?;
    Some(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hide(body: &str) -> Option<String> {
        let out = hide_reserved(body.as_bytes().to_vec(), &Limits::default()).unwrap();
        let out = String::from_utf8(out.into_inner()).unwrap();
        (out != body).then_some(out)
    }

    #[test]
    fn invalid_bodies_are_refused() {
        let limits = Limits::default();
        assert!(hide_reserved(br#"{"a":{"b":1,"b":2}}"#.to_vec(), &limits).is_err());
        assert!(hide_reserved(b"{} {}".to_vec(), &limits).is_err());
    }

    #[test]
    fn include_true_becomes_an_exclusion() {
        assert_eq!(
            hide(r#"{"rank_by":["id","asc"],"include_attributes" : true,"top_k":1}"#).unwrap(),
            r#"{"rank_by":["id","asc"],"exclude_attributes":["_hevlayer_upserted_at","_hevlayer_shard"],"top_k":1}"#
        );
    }

    #[test]
    fn exclusions_are_extended() {
        assert_eq!(
            hide(r#"{"exclude_attributes":["a"]}"#).unwrap(),
            r#"{"exclude_attributes":["a","_hevlayer_upserted_at","_hevlayer_shard"]}"#
        );
        assert_eq!(
            hide(r#"{"exclude_attributes":[ ]}"#).unwrap(),
            r#"{"exclude_attributes":[ "_hevlayer_upserted_at","_hevlayer_shard"]}"#
        );
    }

    #[test]
    fn explicit_lists_and_plain_queries_are_untouched() {
        assert_eq!(
            hide(r#"{"include_attributes":["_hevlayer_upserted_at"]}"#),
            None
        );
        assert_eq!(
            hide(r#"{"include_attributes":false,"rank_by":["id","asc"]}"#),
            None
        );
        assert_eq!(hide(r#"{"exclude_attributes":"x"}"#), None);
    }

    #[test]
    fn an_inclusion_beside_an_exclusion_extends_the_exclusion_only() {
        let list = r#""_hevlayer_upserted_at","_hevlayer_shard""#;
        assert_eq!(
            hide(r#"{"include_attributes":true,"exclude_attributes":["a"]}"#).unwrap(),
            format!(r#"{{"include_attributes":true,"exclude_attributes":["a",{list}]}}"#)
        );
        assert_eq!(
            hide(r#"{"exclude_attributes":null,"include_attributes":true}"#).unwrap(),
            format!(r#"{{"exclude_attributes":[{list}],"include_attributes":true}}"#)
        );
        // Without an inclusion, a null exclusion is left as it is.
        assert_eq!(hide(r#"{"exclude_attributes":null}"#), None);
    }

    #[test]
    fn every_sub_query_is_handled() {
        let out = hide(
            r#"{"queries":[{"include_attributes":true},{"top_k":1},{"exclude_attributes":["v"]}]}"#,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v["queries"][0]["exclude_attributes"],
            serde_json::json!(["_hevlayer_upserted_at", "_hevlayer_shard"])
        );
        assert!(v["queries"][0].get("include_attributes").is_none());
        assert_eq!(
            v["queries"][2]["exclude_attributes"],
            serde_json::json!(["v", "_hevlayer_upserted_at", "_hevlayer_shard"])
        );
    }
}
