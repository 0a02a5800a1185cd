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
    match std::str::from_utf8(text) {
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
mod tests {
    use super::*;

    use serde_json::{Value, json};

    fn s(request: Value, response: &str) -> Summary {
        raw(request.to_string().as_bytes(), response.as_bytes())
    }

    /// The summary of a request nobody validated; a request that is JSON is also summarised as
    /// one the planner validated (read by structure), which must say the same.
    fn raw(request: &[u8], response: &[u8]) -> Summary {
        let strict = summarize(request, false, response, &mut Scratch::default());
        if serde_json::from_slice::<serde::de::IgnoredAny>(request).is_ok() {
            let checked = summarize(request, true, response, &mut Scratch::default());
            assert_eq!(checked, strict, "{}", String::from_utf8_lossy(request));
        }
        strict
    }

    /// The summary as a value, for comparisons.
    fn q(sum: &Summary) -> Value {
        serde_json::from_str(sum.query.get()).expect("a summary is JSON")
    }

    /// The served ids, read back from the entry's array text.
    fn ids(sum: &Summary) -> Vec<String> {
        serde_json::from_str(sum.top_result_ids.get()).expect("the ids are a JSON string array")
    }

    #[test]
    fn vectors_become_shapes_and_the_rest_is_kept() {
        let sum = s(
            json!({
                "vector": [0.1, 0.2, 0.3],
                "top_k": 10,
                "filters": ["tenant", "Eq", "t-42"],
                "include_attributes": ["title"],
                "include_leg_breakdown": false,
                "some_future_key": {"big": [1, 2, 3]}
            }),
            r#"{"rows":[{"id":"a","$dist":0.1},{"id":7,"title":"x"},{"$dist":1,"id":"q\"uote"}]}"#,
        );
        assert_eq!(
            q(&sum),
            json!({
                "vector": {"dims": 3},
                "top_k": 10,
                "filters": ["tenant", "Eq", "t-42"],
                "include_attributes": ["title"]
            })
        );
        assert_eq!(ids(&sum), ["a", "7", "q\"uote"]);
    }

    #[test]
    fn row_ids_match_keys_after_unescaping_and_skip_rows_without_an_id() {
        let sum = s(
            json!({"top_k": 3}),
            r#"{"rows":[{"$dist":0.5,"i\u0064":9},{"title":"no id"},{"id":"b"},{"v":[1],"id":"n"}]}"#,
        );
        assert_eq!(ids(&sum), ["9", "b", "n"]);
    }

    #[test]
    fn ann_rank_by_and_base64_vectors() {
        let sum = s(
            json!({"rank_by": ["vector", "ANN", [1.0, 0.0, 0.5, 0.5]], "top_k": 2}),
            r#"{"rows":[]}"#,
        );
        assert_eq!(q(&sum)["rank_by"], json!(["vector", "ANN", {"dims": 4}]));
        assert!(ids(&sum).is_empty());
        let sum = s(json!({"vector": "AACAPwAAAEA="}), r#"{"rows":[]}"#);
        assert_eq!(
            q(&sum)["vector"],
            json!({"encoding": "base64", "chars": 12})
        );
    }

    #[test]
    fn hybrid_and_auto_keep_the_expression_and_the_decision() {
        let sum = s(
            json!({"rank_by": ["content", "HybridText", "conection timout"], "top_k": 5}),
            r#"{"rows":[{"id":"t-1","$score":0.02}],"hybrid":{"tokens":["conection","timout"],"tokens_dropped":0,"fuzziness":"auto","rank_constant":60,"legs":3,"per_leg_limit":50}}"#,
        );
        assert_eq!(
            q(&sum)["rank_by"],
            json!(["content", "HybridText", "conection timout"])
        );
        assert_eq!(q(&sum)["hybrid"]["legs"], 3);
        assert_eq!(ids(&sum), ["t-1"]);

        let sum = s(
            json!({"rank_by": ["content", "Auto", "why do pods restart", {"route": "semantic", "vector": [0.5, 0.5]}]}),
            r#"{"rows":[{"id":"d"}],"routing":{"route":"semantic","policy":"forced","tokens":4,"executed":true}}"#,
        );
        assert_eq!(
            q(&sum)["rank_by"],
            json!(["content", "Auto", "why do pods restart", {"route": "semantic", "vector": {"dims": 2}}])
        );
        assert_eq!(
            q(&sum)["routing"],
            json!({"route": "semantic", "policy": "forced", "tokens": 4, "executed": true})
        );
    }

    #[test]
    fn nested_rank_by_and_seeds() {
        let sum = s(
            json!({"rank_by": ["Sum", [["title", "BM25", "a b"], ["body", "BM25", "c"]]], "nearest_to_id": ["x", 5]}),
            r#"{"rows":[]}"#,
        );
        assert_eq!(
            q(&sum)["rank_by"],
            json!(["Sum", [["title", "BM25", "a b"], ["body", "BM25", "c"]]])
        );
        assert_eq!(
            q(&sum)["nearest_to_id"],
            json!({"ids": ["x", "5"], "count": 2})
        );
    }

    #[test]
    fn multi_query_gets_one_summary_per_leg_and_split_ids() {
        let sum = s(
            json!({"queries": [
                {"rank_by": ["vector", "ANN", [0.1, 0.2]], "top_k": 2},
                {"rank_by": ["title", "BM25", "earbuds"], "top_k": 1}
            ]}),
            r#"{"results":[{"rows":[{"id":"a"},{"id":"b"}]},{"rows":[{"id":"c"}]}],"billing":{}}"#,
        );
        assert_eq!(
            q(&sum)["queries"],
            json!([
                {"rank_by": ["vector", "ANN", {"dims": 2}], "top_k": 2},
                {"rank_by": ["title", "BM25", "earbuds"], "top_k": 1}
            ])
        );
        assert_eq!(q(&sum)["result_counts"], json!([2, 1]));
        assert_eq!(ids(&sum), ["a", "b", "c"]);
    }

    #[test]
    fn large_members_are_recorded_by_size_and_gzip_is_undone() {
        let ids: Vec<String> = (0..2000).map(|i| format!("id-{i}")).collect();
        let body = json!({"filters": ["id", "In", ids], "top_k": 1});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, body.to_string().as_bytes()).unwrap();
        let sum = raw(&gz.finish().unwrap(), br#"{"rows":[]}"#);
        assert_eq!(q(&sum)["top_k"], 1);
        assert!(q(&sum)["filters"]["bytes"].as_u64().unwrap() > MAX_VERBATIM_BYTES as u64);
    }

    #[test]
    fn members_keep_their_values_whatever_the_spacing_and_escapes() {
        let sum = raw(
            br#"{ "top_k" : 3 , "rank_by": ["c", "Auto", "q \"x\"", {"ro\u0075te": "semantic", "vector": [1, 2], "a\"b": 1}],
                "filters" : ["t", "Eq", "a\nb"], "nearest_to_id": ["x\u0041", 5] }"#,
            br#"{"rows":[]}"#,
        );
        assert_eq!(
            q(&sum),
            json!({
                "top_k": 3,
                "rank_by": ["c", "Auto", "q \"x\"", {"route": "semantic", "vector": {"dims": 2}, "a\"b": 1}],
                "filters": ["t", "Eq", "a\nb"],
                "nearest_to_id": {"ids": ["xA", "5"], "count": 2}
            })
        );
        // Nothing kept: an empty object.
        assert_eq!(raw(b"{}", b"{}").query.get(), "{}");
    }

    #[test]
    fn a_reused_scratch_summarises_like_a_fresh_one() {
        let cases: [(&[u8], &[u8]); 4] = [
            (
                br#"{"rank_by":["v","ANN",[1,2,3]],"top_k":10,"filters":["a","Eq",1]}"#,
                br#"{"rows":[{"id":"a"},{"id":"b"},{"id":3}]}"#,
            ),
            (b"{}", b"{}"),
            (
                br#"{"queries":[{"top_k":1},{"top_k":2}]}"#,
                br#"{"results":[{"rows":[{"id":"x"}]},{"rows":[]}]}"#,
            ),
            (br#"{"top_k":1}"#, br#"{"rows":[{"id":"z"}]}"#),
        ];
        let mut scratch = Scratch::default();
        for round in 0..2 {
            for (req, resp) in cases {
                assert_eq!(
                    summarize(req, false, resp, &mut scratch),
                    raw(req, resp),
                    "round {round}"
                );
            }
        }
    }

    /// A gzip body is read strictly even when the planner validated it: its inflated text is
    /// capped here, so it may be cut short of what was validated (a cut `true` below).
    #[test]
    fn a_gzip_body_is_read_strictly_whatever_the_flag() {
        use std::io::Write as _;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"{"filters":["a","Eq",1],"top_k":tr"#)
            .unwrap();
        let body = gz.finish().unwrap();
        let sum = summarize(&body, true, br#"{"rows":[]}"#, &mut Scratch::default());
        assert_eq!(q(&sum), json!({"filters": ["a", "Eq", 1]}));
    }

    /// Vectors long enough for the 32-byte blocks, counted the same through a validated body
    /// and an unchecked one, with and without whitespace.
    #[test]
    fn long_vectors_are_counted_by_blocks() {
        for dims in [1, 31, 32, 33, 100, 1536] {
            let v: Vec<f64> = (0..dims).map(|i| f64::from(i) / 7.0 - 3.0).collect();
            let body = json!({"vector": v, "rank_by": ["v", "ANN", v]});
            for text in [
                body.to_string(),
                serde_json::to_string_pretty(&body).unwrap(),
            ] {
                let sum = raw(text.as_bytes(), b"{}");
                assert_eq!(
                    q(&sum),
                    json!({"vector": {"dims": dims}, "rank_by": ["v", "ANN", {"dims": dims}]}),
                    "{dims}"
                );
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        for (req, resp) in [
            (&b""[..], &b""[..]),
            (b"[1,2]", b"{\"rows\":5}"),
            (b"{\"rank_by\":", b"{\"rows\":[{\"id\""),
            (b"\x1f\x8bnot gzip", b"null"),
        ] {
            // Whatever came in, the summary is a JSON object and the ids a string array.
            let sum = raw(req, resp);
            assert!(q(&sum).is_object());
            ids(&sum);
        }
    }

    #[test]
    fn ids_with_escapes_numbers_and_other_values_read_back_as_strings() {
        let sum = s(
            json!({"top_k": 5}),
            concat!(
                r#"{"rows":[{"id":"plain"},{"id":"tab\tand\u00e9"},{"id":18446744073709551615},"#,
                r#"{"id":"café"},{"id":{"k":1}}]}"#
            ),
        );
        assert_eq!(
            ids(&sum),
            [
                "plain",
                "tab\tand\u{e9}",
                "18446744073709551615",
                "caf\u{e9}",
                r#"{"k":1}"#
            ]
        );
        // Ids without escapes are copied as written; one with escapes is written again.
        assert!(
            sum.top_result_ids
                .get()
                .starts_with(r#"["plain","tab\tandé","18446744073709551615","café""#),
            "{}",
            sum.top_result_ids.get()
        );
    }

    #[test]
    fn a_body_malformed_after_some_members_is_summarised_up_to_them() {
        let sum = raw(
            br#"{"top_k":5,"filters":["a","Eq",1],"rank_by":["vector","ANN",[1,2"#,
            br#"{"rows":[{"id":"x"}],"performance":{"oops"#,
        );
        assert_eq!(q(&sum)["top_k"], 5);
        assert_eq!(q(&sum)["filters"], json!(["a", "Eq", 1]));
        assert!(q(&sum).get("rank_by").is_none());
        assert_eq!(ids(&sum), ["x"]);
    }

    #[test]
    fn rows_that_do_not_read_whole_give_no_ids() {
        // The rows are read as the walk passes them: what a cut or broken array handed over is
        // dropped, as when the array was skipped whole first and failed there.
        for resp in [
            &br#"{"rows":[{"id":"a"},{"id":"b"}"#[..],
            br#"{"rows":[{"id":"a"},{"id":"b"},]}"#,
            br#"{"rows":[{"id":"a"}],"results":[{"rows":[{"id":"b"}]},{"rows":[{"id":"c"}]"#,
        ] {
            let sum = raw(br#"{"top_k":2}"#, resp);
            let kept: &[&str] = if resp.starts_with(br#"{"rows":[{"id":"a"}],"#) {
                &["a"]
            } else {
                &[]
            };
            assert_eq!(ids(&sum), kept, "{}", String::from_utf8_lossy(resp));
            assert!(q(&sum).get("result_counts").is_none());
        }
        let sum = raw(
            br#"{"top_k":2}"#,
            br#"{"results":[{"rows":[{"id":"b"}]},{"rows":[{"id":"c"}]}],"rows":[1,"#,
        );
        assert_eq!(ids(&sum), ["b", "c"]);
        assert_eq!(q(&sum)["result_counts"], json!([1, 1]));
    }

    /// JSON of any shape, with the keys the summary looks for (and an escaped one) among others.
    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e300f64..1e300).prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
            Just(json!("ANN")),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let key = prop_oneof![
                proptest::sample::select(vec![
                    "rank_by",
                    "rerank_by",
                    "vector",
                    "nearest_to_id",
                    "filters",
                    "cursor",
                    "queries",
                    "top_k",
                    "include_attributes",
                    "rows",
                    "results",
                    "id",
                    "hybrid",
                    "routing",
                    "a\"b\\c\u{1}",
                ])
                .prop_map(str::to_string),
                ".{0,6}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key, inner), 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A body: JSON text, that text cut anywhere, or any bytes.
    fn body() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            json_value().prop_map(|v| v.to_string().into_bytes()),
            // Members past the verbatim limit (recorded by size) and echo blocks.
            (json_value(), 4000..4200usize).prop_map(|(v, n)| {
                let big = "x".repeat(n);
                json!({"filters": ["a", "Eq", big], "hybrid": [big], "routing": v, "rows": [{"id": "a"}]})
                    .to_string()
                    .into_bytes()
            }),
            // Members spread over lines, copied as written.
            json_value().prop_map(|v| serde_json::to_string_pretty(&v).unwrap().replace('\n', "\r\n").into_bytes()),
            (json_value(), any::<proptest::sample::Index>()).prop_map(|(v, cut)| {
                let mut b = v.to_string().into_bytes();
                b.truncate(cut.index(b.len() + 1));
                b
            }),
            proptest::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest::proptest! {
        /// Whatever the bodies hold, the summary is a JSON object and the served ids a JSON array
        /// of strings, each on one line: the texts go to storage unchecked ([`QuerySummary`]), so
        /// this is the check that holds the builder to it (also in a release build of the tests,
        /// where `JsonText::built` does not check).
        #[test]
        fn any_bodies_give_a_json_summary(request in body(), response in body()) {
            let sum = raw(&request, &response);
            proptest::prop_assert!(q(&sum).is_object());
            ids(&sum);
            // On one line: a stored record is one line.
            for text in [sum.query.get(), sum.top_result_ids.get()] {
                proptest::prop_assert!(!text.contains(['\n', '\r']), "{}", text);
            }
        }
    }
}
