//! Cursor pagination of single queries ranked by an attribute: which bodies can page
//! ([`paging_of`]) and the rewrite of one page's upstream body ([`page_body`]), by splicing.
//!
//! A query pages when it is one query (no `queries`), ranks by an attribute
//! (`"rank_by": [attr, "asc" | "desc"]`, `id` included), has no `aggregate_by`, `group_by` or
//! `offset`, and its `limit` (when present) is a plain number. Scores (ANN distances, BM25, fused
//! ranks) have no total order to resume after, so everything else is refused with the reason.
//!
//! The gateway resumes a page after the last row's `(value, id)`: the order is the attribute's,
//! ties broken by `id` ascending (upstream leaves ties unordered; the gateway sorts them). The
//! filter that continues after a row, the stable cut and the cursor token itself are the
//! gateway's (`features/query/cursor.rs`); this module only rewrites bytes.

use crate::filter::{check_predicate, inject_filter_validated};
use crate::splice::{Splice, is_null, raw_trimmed, span_of};
use crate::{RewriteError, Validated};

/// Turbopuffer's largest `top_k`.
pub const MAX_TOP_K: u32 = 10_000;

/// How a pageable query is ordered and how many rows a page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    /// The ranking attribute (`id` included).
    pub attr: String,
    /// `"desc"` ranking.
    pub desc: bool,
    /// Rows per page (`top_k`, or a numeric `limit`).
    pub top_k: u32,
    /// Whether the caller's projection already returns `attr` (else a page asks for it and the
    /// gateway removes it from the rows it answers).
    pub projected: bool,
}

/// Whether a body can page, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pageable {
    /// It can.
    Yes(Paging),
    /// It cannot, for this reason (said to a caller who sent a cursor).
    No(&'static str),
}

/// Decides whether `body` (an upstream query body, Layer keys already translated) can page.
///
/// # Errors
/// A top level that cannot be read (not for a body that passed validation).
pub fn paging_of<B: AsRef<[u8]>>(body: &Validated<B>) -> Result<Pageable, RewriteError> {
    let entries = body.members()?;
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, v)| k == key && !is_null(v))
            .map(|(_, v)| raw_trimmed(v))
    };
    if get("queries").is_some() {
        return Ok(Pageable::No(
            "pagination is single-query only: a multi-query cannot take a cursor",
        ));
    }
    if get("aggregate_by").is_some() || get("group_by").is_some() {
        return Ok(Pageable::No(
            "aggregations and grouped queries answer every group at once: there is nothing to page",
        ));
    }
    if get("offset").is_some() {
        return Ok(Pageable::No(
            "a cursor replaces `offset`: send one or the other",
        ));
    }
    let Some(rank_by) = get("rank_by") else {
        return Ok(Pageable::No(
            "pagination needs `rank_by` on an attribute ([attr, \"asc\" | \"desc\"])",
        ));
    };
    let Ok((attr, dir)) = sonic_rs::from_str::<(String, String)>(rank_by) else {
        return Ok(Pageable::No(
            "this query ranks by scores (ANN, BM25 or an expression), which have no total order to resume after; \
             only `rank_by` on an attribute ([attr, \"asc\" | \"desc\"]) can page",
        ));
    };
    let desc = match dir.as_str() {
        "asc" => false,
        "desc" => true,
        _ => {
            return Ok(Pageable::No(
                "pagination needs `rank_by` on an attribute with \"asc\" or \"desc\"",
            ));
        }
    };
    let top_k = match get("top_k").or_else(|| get("limit")) {
        // Upstream refuses a ranking without a count; so does a cursor.
        None => return Ok(Pageable::No("a cursor needs `top_k`")),
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=MAX_TOP_K).contains(&n) => n,
            // Out of range: upstream's own error, on the unpaged body.
            Ok(_) => return Ok(Pageable::No("top_k must be between 1 and 10000")),
            Err(_) => {
                return Ok(Pageable::No(
                    "a cursor needs a numeric `top_k` (a `limit` object pages per group)",
                ));
            }
        },
    };
    let projected = attr == "id"
        || match get("include_attributes") {
            None | Some("false") => false,
            Some("true") => !excluded(get("exclude_attributes"), &attr),
            Some(list) => sonic_rs::from_str::<Vec<String>>(list).is_ok_and(|l| l.contains(&attr)),
        };
    if attr != "id" && excluded(get("exclude_attributes"), &attr) {
        return Ok(Pageable::No(
            "the ranking attribute is in `exclude_attributes`: a cursor needs its values",
        ));
    }
    Ok(Pageable::Yes(Paging {
        attr,
        desc,
        top_k,
        projected,
    }))
}

fn excluded(list: Option<&str>, attr: &str) -> bool {
    list.and_then(|l| sonic_rs::from_str::<Vec<String>>(l).ok())
        .is_some_and(|l| l.iter().any(|a| a == attr))
}

/// One page's upstream body: `body` with `top_k` set to `top_k` (a numeric `limit` is replaced
/// the same way), `paging.attr` added to the projection when the caller's does not return it,
/// `rank_by` replaced when given (the tie query ranks by `["id","asc"]`), and `filter` (raw
/// JSON) ANDed into `filters`. Every other byte is copied.
///
/// # Errors
/// A `rank_by` or a `filter` that is not one JSON value.
pub fn page_body<B: AsRef<[u8]>>(
    body: &Validated<B>,
    paging: &Paging,
    top_k: u32,
    rank_by: Option<&str>,
    filter: Option<&[u8]>,
) -> Result<Validated, RewriteError> {
    if let Some(r) = rank_by {
        check_predicate(r.as_bytes())?;
    }
    let filtered;
    let valid = match filter {
        Some(f) => {
            filtered = inject_filter_validated(body, f)?;
            filtered.as_slice()
        }
        None => body.as_slice(),
    };
    let body = valid.as_bytes();
    let entries = valid.members()?;
    let mut splice = Splice::new(body);
    let mut insert = String::new();
    // A member is replaced even when it is `null`: inserting beside it would repeat the key.
    let set = |key: &str, value: String, splice: &mut Splice<'_>, insert: &mut String| {
        match entries.iter().find(|(k, _)| k == key) {
            Some((_, v)) => {
                let range = span_of(body, v)?;
                let piece = splice.piece(value.as_bytes());
                splice.replace_piece(range, piece);
            }
            None => {
                insert.push_str(&format!("{}:{value},", json_str(key)));
            }
        }
        Ok::<(), RewriteError>(())
    };
    let count_key = if entries.iter().any(|(k, v)| k == "top_k" && !is_null(v))
        || !entries.iter().any(|(k, v)| k == "limit" && !is_null(v))
    {
        "top_k"
    } else {
        "limit"
    };
    set(count_key, top_k.to_string(), &mut splice, &mut insert)?;
    if let Some(r) = rank_by {
        set("rank_by", r.to_string(), &mut splice, &mut insert)?;
    }
    if !paging.projected {
        let current = entries
            .iter()
            .find(|(k, v)| k == "include_attributes" && !is_null(v))
            .map(|(_, v)| raw_trimmed(v));
        let mut list = current
            .and_then(|l| sonic_rs::from_str::<Vec<String>>(l).ok())
            .unwrap_or_default();
        list.push(paging.attr.clone());
        let value = format!(
            "[{}]",
            list.iter()
                .map(|a| json_str(a))
                .collect::<Vec<_>>()
                .join(",")
        );
        set("include_attributes", value, &mut splice, &mut insert)?;
    }
    if !insert.is_empty() {
        let open = crate::validate::skip_ws(body, 0) + 1;
        if entries.is_empty() {
            insert.pop();
        }
        splice.insert(open, insert.as_bytes());
    }
    splice.finish().map(Validated::spliced)
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    crate::shard::json_string(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;

    fn valid(body: &[u8]) -> Validated<&[u8]> {
        Validated::check(body, &Limits::default()).unwrap()
    }

    fn paging(body: &str) -> Pageable {
        paging_of(&valid(body.as_bytes())).unwrap()
    }

    #[test]
    fn attribute_rankings_page_and_scores_do_not() {
        assert_eq!(
            paging(r#"{"rank_by":["n","desc"],"top_k":5}"#),
            Pageable::Yes(Paging {
                attr: "n".into(),
                desc: true,
                top_k: 5,
                projected: false
            })
        );
        let Pageable::Yes(p) = paging(r#"{"rank_by":["id","asc"],"top_k":10}"#) else {
            panic!()
        };
        assert_eq!((p.top_k, p.projected), (10, true));
        let Pageable::Yes(p) =
            paging(r#"{"rank_by":["n","asc"],"top_k":3,"include_attributes":true}"#)
        else {
            panic!()
        };
        assert!(p.projected);
        for body in [
            r#"{"rank_by":["vector","ANN",[0.1]],"top_k":5}"#,
            r#"{"rank_by":["text","BM25","q"],"top_k":5}"#,
            r#"{"rank_by":["Sum",[["a","BM25","q"]]]}"#,
            r#"{"queries":[{"rank_by":["n","asc"]}]}"#,
            r#"{"rank_by":["n","asc"],"aggregate_by":{"c":["Count"]}}"#,
            r#"{"rank_by":["n","asc"],"offset":3}"#,
            r#"{"rank_by":["n","asc"],"limit":{"total":5,"per":{"attributes":["a"],"limit":1}}}"#,
            r#"{"rank_by":["n","asc"],"exclude_attributes":["n"]}"#,
            r#"{"top_k":5}"#,
            r#"{"rank_by":["id","asc"]}"#,
        ] {
            assert!(matches!(paging(body), Pageable::No(_)), "{body}");
        }
    }

    #[test]
    fn page_body_splices_count_projection_rank_and_filter() {
        let body = valid(br#"{"rank_by":["n","asc"],"top_k":3,"filters":["k","Eq",1]}"#);
        let Pageable::Yes(p) = paging_of(&body).unwrap() else {
            panic!()
        };
        let out = page_body(
            &body,
            &p,
            4,
            Some(r#"["id","asc"]"#),
            Some(br#"["n","Gt",2]"#),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["top_k"], 4);
        assert_eq!(v["rank_by"], serde_json::json!(["id", "asc"]));
        assert_eq!(v["include_attributes"], serde_json::json!(["n"]));
        assert_eq!(
            v["filters"],
            serde_json::json!(["And", [["k", "Eq", 1], ["n", "Gt", 2]]])
        );
        // A numeric `limit` is the count; an existing projection list is extended.
        let body = valid(br#"{"rank_by":["n","desc"],"limit":7,"include_attributes":["a"]}"#);
        let Pageable::Yes(p) = paging_of(&body).unwrap() else {
            panic!()
        };
        assert_eq!(p.top_k, 7);
        // What a page splices is JSON a later pass can trust: it validates again.
        assert!(Validated::check(out.as_bytes(), &Limits::default()).is_ok());
        assert!(page_body(&body, &p, 8, Some(r#"["id","#), None).is_err());
        assert!(page_body(&body, &p, 8, None, Some(b"]")).is_err());
        let out = page_body(&body, &p, 8, None, None).unwrap();
        // A null projection is replaced, not repeated.
        let nulls = valid(br#"{"rank_by":["n","asc"],"top_k":2,"include_attributes":null}"#);
        let Pageable::Yes(np) = paging_of(&nulls).unwrap() else {
            panic!()
        };
        let paged = page_body(&nulls, &np, 3, None, None).unwrap();
        assert_eq!(
            paged.as_bytes(),
            br#"{"rank_by":["n","asc"],"top_k":3,"include_attributes":["n"]}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["limit"], 8);
        assert!(v.get("top_k").is_none());
        assert_eq!(v["include_attributes"], serde_json::json!(["a", "n"]));
    }
}
