//! What a search-history entry says about its query: a small structured `query` summary of the
//! caller's request body, plus the served ids in rank order. Start at [`summarize`].
//!
//! The summary keeps what identifies and replays a query — the ranking expression, `top_k` /
//! `limit`, filters, projections, `nearest_to_id` seeds — and replaces vectors by their shape
//! (`{"dims": 1536}`), so an entry stays a few hundred bytes whatever the embedding size.
//! `HybridText` and `Auto` expressions are kept as the caller wrote them (re-issuing them
//! reproduces the whole expansion), and the response's `hybrid` / `routing` echo blocks are copied
//! in, so the entry carries the routing decision. Multi-query bodies get one summary per leg
//! under `queries` and the served ids of every leg, leg after leg, split by `result_counts`.
//!
//! This runs on the control runtime, never on a shard. Bodies are walked in place
//! ([`scatter::raw`]: members and items as raw text, no parser set up per body), so a large
//! response costs a scan for the row ids, not a full parse. Text is checked once: the answer,
//! a request nobody validated (the v1 route, a body the planner refused) and a gzip request
//! (its inflated text is capped here), by the strict walk; a request the query planner
//! validated whole, and every value a strict walk yielded (a vector, a row), is read again by
//! its structure alone (`raw::*_of_checked`), so a 1536-dimension vector's numbers are not
//! parsed a second and third time here.
//! The summary is written as JSON text straight from the members' raw text (kept members are
//! copied as the caller wrote them), with no value tree built and none to free when the entry
//! leaves the recent window; the finished text is JSON by construction ([`QuerySummary`]).

use std::cell::Cell;
use std::fmt::Write as _;
use std::io::Read;

use scatter::raw;
use smallvec::SmallVec;

use super::entry::{QuerySummary, ResultIds, push_json_str};

/// Members copied verbatim (when no larger than [`MAX_VERBATIM_BYTES`]).
const VERBATIM: &[&str] = &[
    "top_k",
    "limit",
    "include_attributes",
    "exclude_attributes",
    "aggregate_by",
    "group_by",
    "distance_metric",
    "consistency",
    "vector_encoding",
];

/// Larger members are recorded as their size: an entry must stay small whatever the query.
const MAX_VERBATIM_BYTES: usize = 4096;

/// `nearest_to_id` seeds kept per entry (the count is always recorded).
const MAX_SEEDS: usize = 32;

/// Multi-query legs summarised (upstream caps a batch at 16).
const MAX_LEGS: usize = 16;

/// Decompressed request bodies larger than this are not summarised.
const MAX_INFLATED_BYTES: u64 = 64 << 20;

/// The `query` summary and the served ids of one query.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub query: QuerySummary,
    pub top_result_ids: ResultIds,
}

/// Text buffers a summary is written into, kept by the caller across queries: each of the two
/// finished texts is then copied once, exactly sized (a fresh `String` per text grew and was
/// shrunk, three to four allocations per query).
#[derive(Default)]
pub struct Scratch {
    query: String,
    ids: String,
}

/// Summarises a served query: `request` is the caller's body (gzip is undone here), `response`
/// the body the gateway answered with. `request_checked`: the gateway validated `request` whole
/// before serving it (then it is read by its structure; a gzip body is read strictly all the
/// same, as its inflated text is capped here).
pub fn summarize(
    request: &[u8],
    request_checked: bool,
    response: &[u8],
    scratch: &mut Scratch,
) -> Summary {
    let inflated;
    let gzip = request.starts_with(&[0x1f, 0x8b]);
    let request = if gzip {
        let mut out = Vec::new();
        let ok = flate2::read::GzDecoder::new(request)
            .take(MAX_INFLATED_BYTES)
            .read_to_end(&mut out)
            .is_ok();
        inflated = if ok { out } else { Vec::new() };
        &inflated[..]
    } else {
        request
    };
    let Scratch { query: text, ids } = scratch;
    text.clear();
    let mut query = Object::new(text);
    let multi = summarize_body(utf8_prefix(request), &mut query, request_checked && !gzip);
    let mut ids = Ids::new(ids);
    let mut counts: Vec<usize> = Vec::new();
    let mut members = raw::members(utf8_prefix(response));
    loop {
        // `rows` and `results` are read as the walk passes them (one read of the rows, not a
        // skip and then a second walk); what an array that does not read whole handed over is
        // dropped, as if the walk had stopped before it.
        let mark = (ids.text.len(), ids.count, counts.len());
        let in_results = Cell::new(false);
        let member = members.next_descending(
            |key| {
                in_results.set(key == "results");
                key == "rows" || in_results.get()
            },
            |item| {
                if !in_results.get() {
                    return ids.row(item);
                }
                let before = ids.count;
                // A value the strict walk read whole.
                if let Some((_, rows)) = raw::members_of_checked(item).find(|(k, _)| k == "rows") {
                    ids.rows(rows);
                }
                counts.push(ids.count - before);
            },
        );
        let Some((key, value)) = member else {
            ids.text.truncate(mark.0);
            ids.count = mark.1;
            counts.truncate(mark.2);
            break;
        };
        // The echo blocks: the expansion that ran and the routing decision.
        if (key == "hybrid" || key == "routing") && value.len() <= MAX_VERBATIM_BYTES {
            query.member(&key).push_str(value);
        }
    }
    if multi || !counts.is_empty() {
        let out = query.member("result_counts");
        out.push('[');
        for (i, n) in counts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{n}");
        }
        out.push(']');
    }
    query.finish();
    Summary {
        query: QuerySummary::built(text),
        top_result_ids: ids.finish(),
    }
}

/// A JSON object written member by member at the end of `text`.
struct Object<'t> {
    text: &'t mut String,
    empty: bool,
}

impl<'t> Object<'t> {
    fn new(text: &'t mut String) -> Self {
        Object { text, empty: true }
    }

    /// Starts a member: writes its key (escaped) and returns the text to write its value into.
    fn member(&mut self, key: &str) -> &mut String {
        self.text.push(if self.empty { '{' } else { ',' });
        self.empty = false;
        push_json_str(self.text, key);
        self.text.push(':');
        self.text
    }

    /// Closes the object (`{}` when it has no member).
    fn finish(self) {
        if self.empty {
            self.text.push('{');
        }
        self.text.push('}');
    }
}

/// `text` up to its first byte that is not UTF-8 (a body upstream rejected is still summarised
/// as far as it reads; text past invalid UTF-8 is not read).
fn utf8_prefix(text: &[u8]) -> &str {
    // One SIMD pass, which also finds where invalid text stops being UTF-8.
    match simdutf8::compat::from_utf8(text) {
        Ok(t) => t,
        // The prefix up to `valid_up_to` is UTF-8 by definition.
        Err(e) => std::str::from_utf8(&text[..e.valid_up_to()]).unwrap_or_default(),
    }
}

/// Writes the summary of one query object (a single query or a multi-query leg) into `out`;
/// `true` when it has `queries` (a multi-query). `checked`: `body` was read whole before (a
/// validated request, or a leg the strict walk yielded); else its members are read strictly, up
/// to the first that does not read whole. Every value a member yields has then been read whole,
/// so what is read inside it is read by structure.
fn summarize_body(body: &str, out: &mut Object, checked: bool) -> bool {
    let mut multi = false;
    let members = if checked {
        raw::members_of_checked(body)
    } else {
        raw::members(body)
    };
    for (key, value) in members {
        match &*key {
            "rank_by" | "rerank_by" => expression(value, out.member(&key)),
            "vector" => vector_shape(value, out.member(&key)),
            "nearest_to_id" => seeds(value, out.member(&key)),
            "filters" => small_or_size(value, out.member(&key)),
            "cursor" => out.member(&key).push_str("true"),
            "queries" => {
                multi = true;
                let text = out.member(&key);
                text.push('[');
                for (i, leg) in raw::items_of_checked(value).take(MAX_LEGS).enumerate() {
                    if i > 0 {
                        text.push(',');
                    }
                    let mut one = Object::new(text);
                    summarize_body(leg, &mut one, true);
                    one.finish();
                }
                text.push(']');
            }
            k if VERBATIM.contains(&k) => small_or_size(value, out.member(&key)),
            _ => {}
        }
    }
    multi
}

/// A ranking expression with every vector replaced by its shape: `[attr, "ANN", V]` and an
/// options object's `vector` (Auto's forced re-issue) become `{"dims": n}`; everything else (the
/// HybridText / Auto input, BM25 text, attribute orderings, Sum/Max combinations) is kept.
fn expression(v: &str, out: &mut String) {
    if v.starts_with('[') {
        // Inline: most expressions are a few items (`[attr, "ANN", v]`, `[attr, "asc"]`).
        let items: SmallVec<[&str; 4]> = raw::items_of_checked(v).collect();
        let is_ann = items.len() == 3 && items[1] == "\"ANN\"";
        out.push('[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            if is_ann && i == 2 {
                vector_shape(item, out);
            } else {
                expression(item, out);
            }
        }
        out.push(']');
        return;
    }
    if v.starts_with('{') {
        out.push('{');
        for (i, (k, item)) in raw::members_of_checked(v).enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, &k);
            out.push(':');
            if k == "vector" {
                vector_shape(item, out);
            } else {
                expression(item, out);
            }
        }
        out.push('}');
        return;
    }
    out.push_str(v);
}

/// `{"dims": n}` for a vector of numbers; `{"encoding": "base64", "chars": n}` for a base64 one.
/// `v` is always text read whole before (a value a strict walk yielded, or part of a validated
/// body), so its items are counted by structure.
fn vector_shape(v: &str, out: &mut String) {
    if v.starts_with('"') {
        let _ = write!(
            out,
            r#"{{"encoding":"base64","chars":{}}}"#,
            v.len().saturating_sub(2)
        );
        return;
    }
    if v.starts_with('[') {
        let _ = write!(out, r#"{{"dims":{}}}"#, raw::count_items_of_checked(v));
    } else {
        let _ = write!(out, r#"{{"bytes":{}}}"#, v.len());
    }
}

/// `nearest_to_id` seeds: the ids (at most [`MAX_SEEDS`]) and how many there were.
fn seeds(v: &str, out: &mut String) {
    if !v.starts_with('[') {
        return small_or_size(v, out);
    }
    out.push_str(r#"{"ids":["#);
    let mut count = 0usize;
    for item in raw::items_of_checked(v) {
        if count < MAX_SEEDS {
            if count > 0 {
                out.push(',');
            }
            // A string id is already JSON; a number is recorded as its text, quoted.
            if item.starts_with('"') {
                out.push_str(item);
            } else {
                push_json_str(out, item);
            }
        }
        count += 1;
    }
    let _ = write!(out, r#"],"count":{count}}}"#);
}

/// The member's own text when small, else `{"bytes": n}`.
fn small_or_size(v: &str, out: &mut String) {
    if v.len() <= MAX_VERBATIM_BYTES {
        out.push_str(v);
    } else {
        let _ = write!(out, r#"{{"bytes":{}}}"#, v.len());
    }
}

/// The served ids, written as a JSON array of strings while the answer's rows are walked (one
/// growing text, not a `String` per row).
struct Ids<'t> {
    text: &'t mut String,
    count: usize,
}

impl<'t> Ids<'t> {
    fn new(text: &'t mut String) -> Self {
        text.clear();
        text.push('[');
        Ids { text, count: 0 }
    }

    /// Appends the `id` of every row, in order (`rows` was read whole before).
    fn rows(&mut self, rows: &str) {
        for row in raw::items_of_checked(rows) {
            self.row(row);
        }
    }

    /// Appends the `id` of one row (nothing when it has none; `row` was read whole before).
    fn row(&mut self, row: &str) {
        // `id` leads upstream rows: the walk stops at it.
        let Some((_, id)) = raw::members_of_checked(row).find(|(k, _)| k == "id") else {
            return;
        };
        if self.count > 0 {
            self.text.push(',');
        }
        self.count += 1;
        push_id(self.text, id);
    }

    fn finish(self) -> ResultIds {
        self.text.push(']');
        ResultIds::built(self.text)
    }
}

/// A document id as the string the clients use, written as JSON: a string id as it stands (its
/// value unchanged), a numeric (u64) id as its decimal text quoted, anything else as its JSON
/// text quoted.
fn push_id(out: &mut String, id: &str) {
    if id.starts_with('"') {
        // Plain ids are copied as written; one with escapes or control bytes is decoded and
        // written again, so a malformed one cannot break the entry's line.
        if id.len() >= 2 && id.bytes().all(|b| b >= 0x20 && b != b'\\') && id.ends_with('"') {
            out.push_str(id);
        } else {
            match serde_json::from_str::<String>(id) {
                Ok(id) => push_json_str(out, &id),
                Err(_) => push_json_str(out, id),
            }
        }
    } else {
        push_json_str(out, id);
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
