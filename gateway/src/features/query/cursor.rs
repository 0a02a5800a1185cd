//! Cursor pagination for single queries ranked by an attribute (`rank_by: [attr, "asc"|"desc"]`,
//! `id` included): `x-layer-next-cursor` (and `next_cursor` in the body) on a page that has more
//! rows after it, the token accepted back as `cursor`. Start at [`serve`].
//!
//! - **Order.** The attribute's order with ties broken by `id` ascending (upstream leaves ties
//!   unordered, so the gateway sorts them), nulls first ascending and last descending as
//!   upstream orders them. A page resumes strictly after the last row's `(value, id)`.
//! - **One cut.** The first page fixes a cut: the watermark when the stable read injected it,
//!   else the time the page was served. Every later page reads with
//!   `_hevlayer_upserted_at <= cut` (under `stable` and `eventual` consistency; `strong`
//!   namespaces read the latest state on every page), so rows written after the first page do
//!   not shift later pages.
//! - **Cost.** A page asks upstream for `top_k + 1` rows: the extra row says whether more follow
//!   and whether the page's last value continues past the page. Only then (a tie straddling the
//!   page's end) a second request reads that value's rows by `id`.
//! - **Refusals (422).** A cursor on a query that cannot page (scores, multi-query, aggregations,
//!   `offset`) says why; a cursor issued for another query (different body or ranking) or not
//!   one of ours is refused.
//!
//! The token is base64url JSON: the ranking, the cut, the last `(value, id)` and a fingerprint of
//! the query it belongs to. It is not signed: it only ever narrows the caller's own query.

use std::cmp::Ordering;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderMap;
use http::header::HeaderValue;
use scatter::MergeSpec;
use scatter::layer_query::{Merge, UpstreamQuery};
use scatter::page::{MAX_TOP_K, Pageable, Paging, page_body, paging_of};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::plan::{Answer, Cut, execute, memfind};
use crate::core::ShardCtx;
use crate::core::config::IndexConsistency;
use crate::core::error::GatewayError;
use crate::core::http::now_ms;
use crate::core::watcher::Status;

/// The response header carrying the next page's token.
pub const NEXT_CURSOR: &str = "x-layer-next-cursor";

/// A cheap pre-check before any parse: only bodies naming `"asc"` or `"desc"` can page.
pub(super) fn may_page(body: &[u8]) -> bool {
    memfind(body, b"\"asc\"") || memfind(body, b"\"desc\"")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Token {
    /// Token format.
    v: u8,
    /// Ranking attribute and direction.
    a: String,
    d: bool,
    /// The cut (`None` under strong consistency).
    c: Option<u64>,
    /// The last row's value and id.
    x: Value,
    i: Value,
    /// The query's fingerprint.
    f: String,
}

fn encode(t: &Token) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(t).unwrap_or_default())
}

fn decode(raw: &str, paging: &Paging, fingerprint: &str) -> Result<Token, GatewayError> {
    let bad = || {
        GatewayError::Validation(
        "cursor is not a token this gateway issued: pass the x-layer-next-cursor value back unchanged".into(),
    )
    };
    let s = match serde_json::from_str::<Value>(raw) {
        Ok(Value::String(s)) => s,
        _ => return Err(bad()),
    };
    let bytes = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?;
    let t: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if t.v != 1 {
        return Err(bad());
    }
    if t.a != paging.attr || t.d != paging.desc || t.f != fingerprint {
        return Err(GatewayError::Validation(
            "cursor was issued for another query: send the same body (ranking, filters, projection, top_k) with the cursor".into(),
        ));
    }
    Ok(t)
}

fn fingerprint(body: &[u8]) -> String {
    let d = Sha256::digest(body);
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The filter that continues strictly after `(value, id)` in the page order.
fn after_filter(p: &Paging, value: &Value, id: &Value) -> Value {
    let a = p.attr.as_str();
    if a == "id" {
        return json!(["id", if p.desc { "Lt" } else { "Gt" }, id]);
    }
    let tie = json!(["And", [[a, "Eq", value], ["id", "Gt", id]]]);
    match (p.desc, value.is_null()) {
        // Nulls come first ascending: every non-null value follows.
        (false, true) => json!(["Or", [[a, "NotEq", null], tie]]),
        (false, false) => json!(["Or", [[a, "Gt", value], tie]]),
        // Nulls come last descending (and `Lt` matches them upstream).
        (true, false) => json!(["Or", [[a, "Lt", value], tie]]),
        (true, true) => tie,
    }
}

fn value_of<'r>(row: &'r Value, attr: &str) -> &'r Value {
    row.get(attr).unwrap_or(&Value::Null)
}

/// Attribute values equal as upstream compares them (numbers by value).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Ids in upstream's order: numbers numerically, strings bytewise, numbers first.
fn cmp_id(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_u64(), y.as_u64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
        },
        (Value::Number(_), _) => Ordering::Less,
        (_, Value::Number(_)) => Ordering::Greater,
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Sorts each run of equal values by id (upstream leaves ties unordered).
fn sort_ties(rows: &mut [Value], attr: &str) {
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        while end < rows.len() && same(value_of(&rows[start], attr), value_of(&rows[end], attr)) {
            end += 1;
        }
        if let Some(run) = rows.get_mut(start..end) {
            run.sort_by(|x, y| cmp_id(&x["id"], &y["id"]));
        }
        start = end;
    }
}

/// How a page's first answer (`asked` rows requested, in upstream's order) becomes a page.
#[derive(Debug, PartialEq)]
enum Split {
    /// The first `take` rows are the page; `more` when rows follow it.
    Done { take: usize, more: bool },
    /// The page's last value continues past it: the first `before` rows (other values) are in
    /// the page; the rest is that value's rows by id.
    Ties { before: usize, value: Value },
}

fn split(rows: &[Value], p: &Paging, asked: usize) -> Split {
    let k = p.top_k as usize;
    let attr = p.attr.as_str();
    if rows.len() < asked || (asked > k && rows.len() <= k) {
        return Split::Done {
            take: rows.len().min(k),
            more: false,
        };
    }
    let last = value_of(&rows[k - 1], attr);
    if asked > k && !same(last, value_of(&rows[k], attr)) {
        return Split::Done {
            take: k,
            more: true,
        };
    }
    Split::Ties {
        before: rows[..k]
            .iter()
            .filter(|r| !same(value_of(r, attr), last))
            .count(),
        value: last.clone(),
    }
}

/// Serves one page of a pageable query. `None` when the query cannot page and carries no
/// cursor (it is served as usual); 422 when it carries one.
pub(super) async fn serve(
    ctx: &ShardCtx,
    ns: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    q: &UpstreamQuery,
    cut: Cut,
) -> Result<Option<Answer>, GatewayError> {
    let paging = match paging_of(&q.body)? {
        Pageable::Yes(p) => p,
        Pageable::No(why) => {
            return match q.cursor {
                Some(_) => Err(GatewayError::Validation(format!("cursor: {why}"))),
                None => Ok(None),
            };
        }
    };
    let Cut {
        mode,
        status,
        watermark,
        ..
    } = cut;
    let fp = fingerprint(&q.body);
    let token = match q.cursor.as_deref() {
        Some(raw) => Some(decode(raw, &paging, &fp)?),
        None => None,
    };
    let read_at = match &token {
        Some(t) => t.c,
        None => match (mode, status, watermark) {
            (IndexConsistency::Strong, ..) => None,
            (IndexConsistency::Stable, Status::Updating, Some(wm)) => Some(wm),
            _ => Some(now_ms()),
        },
    };
    // The first page reads like any query; later ones at the first page's cut.
    let forced = token.as_ref().and_then(|t| t.c);
    let after = token.as_ref().map(|t| after_filter(&paging, &t.x, &t.i));
    let k = paging.top_k as usize;
    let asked = (paging.top_k + 1).min(MAX_TOP_K) as usize;

    let run = |body: scatter::Validated| async move {
        let body: scatter::Validated<bytes::Bytes> = body.convert();
        let merge = if cut.shards > 1 {
            Merge::Single(MergeSpec::for_body(&body)?)
        } else {
            q.merge.clone()
        };
        // Built field by field: `..q.clone()` would copy the caller's body only to drop it.
        let leg = UpstreamQuery {
            body,
            shape: q.shape,
            merge,
            echo: q.echo.clone(),
            threads: q.threads,
            cursor: None,
            root: scatter::filter::RootHint::default(),
        };
        execute(ctx, ns, path_and_query, headers, &leg, cut, forced).await
    };

    let filter = after.as_ref().map(Value::to_string);
    let body = page_body(
        &q.body,
        &paging,
        asked as u32,
        None,
        filter.as_deref().map(str::as_bytes),
    )?;
    let first = run(body).await?;
    if !first.status.is_success() {
        return Ok(Some(first));
    }
    let mut answer: Value = serde_json::from_slice(&first.body)
        .map_err(|e| GatewayError::Upstream(format!("query answer is not JSON: {e}")))?;
    let mut rows = match answer.get_mut("rows").map(Value::take) {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    };
    let (mut page, more) = match split(&rows, &paging, asked) {
        Split::Done { take, more } => {
            rows.truncate(take);
            sort_ties(&mut rows, &paging.attr);
            (rows, more)
        }
        Split::Ties { before, value } => {
            rows.truncate(before);
            sort_ties(&mut rows, &paging.attr);
            let need = k - before;
            let eq = json!([paging.attr, "Eq", value]);
            let filter = match &after {
                Some(a) => json!(["And", [a, eq]]),
                None => eq,
            };
            let ask = (need + 1).min(MAX_TOP_K as usize) as u32;
            let body = page_body(
                &q.body,
                &paging,
                ask,
                Some(r#"["id","asc"]"#),
                Some(filter.to_string().as_bytes()),
            )?;
            let second = run(body).await?;
            if !second.status.is_success() {
                return Ok(Some(second));
            }
            let tied: Value = serde_json::from_slice(&second.body)
                .map_err(|e| GatewayError::Upstream(format!("query answer is not JSON: {e}")))?;
            let mut tied = match tied.get("rows") {
                Some(Value::Array(r)) => r.clone(),
                _ => Vec::new(),
            };
            // The tie leg came back by id; the page continues with its first `need` rows.
            let more = tied.len() >= need;
            tied.truncate(need);
            rows.extend(tied);
            (rows, more)
        }
    };
    let next = match page.last() {
        Some(last) if more => Some(encode(&Token {
            v: 1,
            a: paging.attr.clone(),
            d: paging.desc,
            c: read_at,
            x: value_of(last, &paging.attr).clone(),
            i: last.get("id").cloned().unwrap_or(Value::Null),
            f: fp,
        })),
        _ => None,
    };
    if !paging.projected {
        for row in &mut page {
            if let Some(o) = row.as_object_mut() {
                o.shift_remove(&paging.attr);
            }
        }
    }
    if let Some(o) = answer.as_object_mut() {
        o.insert("rows".into(), Value::Array(page));
        if let Some(n) = &next {
            o.insert("next_cursor".into(), Value::String(n.clone()));
        }
    }
    let body = serde_json::to_vec(&answer)
        .map_err(|e| GatewayError::Internal(format!("page answer: {e}")))?;
    let mut a = Answer::json(
        body,
        if token.is_some() {
            read_at
        } else {
            first.watermark
        },
    );
    if let Some(n) = next
        && let Ok(v) = HeaderValue::from_str(&n)
    {
        a.headers.insert(NEXT_CURSOR, v);
    }
    Ok(Some(a))
}

#[cfg(test)]
#[path = "cursor_tests.rs"]
mod tests;
