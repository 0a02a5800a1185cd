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
//! This runs on the control runtime, never on a shard. Bodies are walked lazily (sonic-rs skips
//! what it does not need), so a large response costs a scan for the row ids, not a full parse.

use std::io::Read;

use serde_json::{Map, Value, json};
use sonic_rs::LazyValue;

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
#[derive(Debug, Default, PartialEq)]
pub struct Summary {
    pub query: Map<String, Value>,
    pub top_result_ids: Vec<String>,
}

/// Summarises a served query: `request` is the caller's body (gzip is undone here), `response`
/// the body the gateway answered with.
pub fn summarize(request: &[u8], response: &[u8]) -> Summary {
    let inflated;
    let request = if request.starts_with(&[0x1f, 0x8b]) {
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
    let mut query = summarize_body(request);
    let mut top_result_ids = Vec::new();
    let mut counts = Vec::new();
    for (key, value) in members_until_error(response) {
        match &*key {
            "rows" => row_ids(&value, &mut top_result_ids),
            "results" => {
                for result in value.into_array_iter().into_iter().flatten().flatten() {
                    let before = top_result_ids.len();
                    if let Ok(rows) = sonic_rs::get(result.as_raw_str(), ["rows"]) {
                        row_ids(&rows, &mut top_result_ids);
                    }
                    counts.push(top_result_ids.len() - before);
                }
            }
            // The echo blocks: the expansion that ran and the routing decision.
            "hybrid" | "routing" => {
                if let Some(v) = parse_small(&value) {
                    query.insert(key.into_owned(), v);
                }
            }
            _ => {}
        }
    }
    if query.contains_key("queries") || !counts.is_empty() {
        query.insert("result_counts".into(), json!(counts));
    }
    Summary {
        query,
        top_result_ids,
    }
}

/// An object's members up to the first malformed one (a body upstream rejected is still
/// summarised as far as it reads). Keys are lent from the text when it reads whole.
fn members_until_error(text: &[u8]) -> Vec<scatter::validate::Entry<'_>> {
    scatter::validate::members(text).unwrap_or_else(|_| {
        sonic_rs::to_object_iter(text)
            .map_while(Result::ok)
            .collect()
    })
}

/// The summary of one query object (a single query or a multi-query leg).
fn summarize_body(body: &[u8]) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in members_until_error(body) {
        let summarized = match &*key {
            "rank_by" | "rerank_by" => expression(&value),
            "vector" => vector_shape(&value),
            "nearest_to_id" => seeds(&value),
            "filters" => small_or_size(&value),
            "cursor" => Value::Bool(true),
            "queries" => Value::Array(
                value
                    .into_array_iter()
                    .into_iter()
                    .flatten()
                    .flatten()
                    .take(MAX_LEGS)
                    .map(|leg| Value::Object(summarize_body(leg.as_raw_str().as_bytes())))
                    .collect(),
            ),
            k if VERBATIM.contains(&k) => small_or_size(&value),
            _ => continue,
        };
        out.insert(key.into_owned(), summarized);
    }
    out
}

/// A ranking expression with every vector replaced by its shape: `[attr, "ANN", V]` and an
/// options object's `vector` (Auto's forced re-issue) become `{"dims": n}`; everything else (the
/// HybridText / Auto input, BM25 text, attribute orderings, Sum/Max combinations) is kept.
fn expression(v: &LazyValue<'_>) -> Value {
    if let Some(iter) = v.clone().into_array_iter() {
        let items: Vec<LazyValue<'_>> = iter.flatten().collect();
        let is_ann = items.len() == 3 && items[1].as_raw_str().trim() == "\"ANN\"";
        return Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    if is_ann && i == 2 {
                        vector_shape(item)
                    } else {
                        expression(item)
                    }
                })
                .collect(),
        );
    }
    if let Some(iter) = v.clone().into_object_iter() {
        return Value::Object(
            iter.flatten()
                .map(|(k, item)| {
                    let value = if k == "vector" {
                        vector_shape(&item)
                    } else {
                        expression(&item)
                    };
                    (k.into_owned(), value)
                })
                .collect(),
        );
    }
    serde_json::from_str(v.as_raw_str()).unwrap_or(Value::Null)
}

/// `{"dims": n}` for a vector of numbers; `{"encoding": "base64", "chars": n}` for a base64 one.
fn vector_shape(v: &LazyValue<'_>) -> Value {
    let raw = v.as_raw_str().trim();
    if raw.starts_with('"') {
        return json!({"encoding": "base64", "chars": raw.len().saturating_sub(2)});
    }
    match v.clone().into_array_iter() {
        Some(iter) => json!({"dims": iter.count()}),
        None => json!({"bytes": raw.len()}),
    }
}

/// `nearest_to_id` seeds: the ids (at most [`MAX_SEEDS`]) and how many there were.
fn seeds(v: &LazyValue<'_>) -> Value {
    let Some(iter) = v.clone().into_array_iter() else {
        return small_or_size(v);
    };
    let mut ids = Vec::new();
    let mut count = 0usize;
    for item in iter.flatten() {
        if ids.len() < MAX_SEEDS {
            ids.push(id_text(item.as_raw_str()));
        }
        count += 1;
    }
    json!({"ids": ids, "count": count})
}

fn parse_small(v: &LazyValue<'_>) -> Option<Value> {
    let raw = v.as_raw_str();
    if raw.len() > MAX_VERBATIM_BYTES {
        return None;
    }
    serde_json::from_str(raw).ok()
}

fn small_or_size(v: &LazyValue<'_>) -> Value {
    parse_small(v).unwrap_or_else(|| json!({"bytes": v.as_raw_str().len()}))
}

/// Appends the `id` of every row, in order.
fn row_ids(rows: &LazyValue<'_>, out: &mut Vec<String>) {
    for row in rows
        .clone()
        .into_array_iter()
        .into_iter()
        .flatten()
        .flatten()
    {
        // `id` leads upstream rows, so this usually reads one key and skips the rest of the row.
        // A path lookup compares keys in place (the lazy object iterator would copy each key).
        if let Ok(id) = sonic_rs::get(row.as_raw_str(), ["id"]) {
            out.push(id_text(id.as_raw_str()));
        }
    }
}

/// A document id as the string the clients use: string ids unescaped, numeric (u64) ids as
/// their decimal text, anything else as its JSON text.
fn id_text(raw: &str) -> String {
    let raw = raw.trim();
    if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_string())
    } else {
        raw.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(request: Value, response: &str) -> Summary {
        summarize(request.to_string().as_bytes(), response.as_bytes())
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
            Value::Object(sum.query),
            json!({
                "vector": {"dims": 3},
                "top_k": 10,
                "filters": ["tenant", "Eq", "t-42"],
                "include_attributes": ["title"]
            })
        );
        assert_eq!(sum.top_result_ids, ["a", "7", "q\"uote"]);
    }

    #[test]
    fn row_ids_match_keys_after_unescaping_and_skip_rows_without_an_id() {
        let sum = s(
            json!({"top_k": 3}),
            r#"{"rows":[{"$dist":0.5,"i\u0064":9},{"title":"no id"},{"id":"b"}]}"#,
        );
        assert_eq!(sum.top_result_ids, ["9", "b"]);
    }

    #[test]
    fn ann_rank_by_and_base64_vectors() {
        let sum = s(
            json!({"rank_by": ["vector", "ANN", [1.0, 0.0, 0.5, 0.5]], "top_k": 2}),
            r#"{"rows":[]}"#,
        );
        assert_eq!(sum.query["rank_by"], json!(["vector", "ANN", {"dims": 4}]));
        assert!(sum.top_result_ids.is_empty());
        let sum = s(json!({"vector": "AACAPwAAAEA="}), r#"{"rows":[]}"#);
        assert_eq!(
            sum.query["vector"],
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
            sum.query["rank_by"],
            json!(["content", "HybridText", "conection timout"])
        );
        assert_eq!(sum.query["hybrid"]["legs"], 3);
        assert_eq!(sum.top_result_ids, ["t-1"]);

        let sum = s(
            json!({"rank_by": ["content", "Auto", "why do pods restart", {"route": "semantic", "vector": [0.5, 0.5]}]}),
            r#"{"rows":[{"id":"d"}],"routing":{"route":"semantic","policy":"forced","tokens":4,"executed":true}}"#,
        );
        assert_eq!(
            sum.query["rank_by"],
            json!(["content", "Auto", "why do pods restart", {"route": "semantic", "vector": {"dims": 2}}])
        );
        assert_eq!(
            sum.query["routing"],
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
            sum.query["rank_by"],
            json!(["Sum", [["title", "BM25", "a b"], ["body", "BM25", "c"]]])
        );
        assert_eq!(
            sum.query["nearest_to_id"],
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
            sum.query["queries"],
            json!([
                {"rank_by": ["vector", "ANN", {"dims": 2}], "top_k": 2},
                {"rank_by": ["title", "BM25", "earbuds"], "top_k": 1}
            ])
        );
        assert_eq!(sum.query["result_counts"], json!([2, 1]));
        assert_eq!(sum.top_result_ids, ["a", "b", "c"]);
    }

    #[test]
    fn large_members_are_recorded_by_size_and_gzip_is_undone() {
        let ids: Vec<String> = (0..2000).map(|i| format!("id-{i}")).collect();
        let body = json!({"filters": ["id", "In", ids], "top_k": 1});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, body.to_string().as_bytes()).unwrap();
        let sum = summarize(&gz.finish().unwrap(), br#"{"rows":[]}"#);
        assert_eq!(sum.query["top_k"], 1);
        assert!(sum.query["filters"]["bytes"].as_u64().unwrap() > MAX_VERBATIM_BYTES as u64);
    }

    #[test]
    fn garbage_never_panics() {
        for (req, resp) in [
            (&b""[..], &b""[..]),
            (b"[1,2]", b"{\"rows\":5}"),
            (b"{\"rank_by\":", b"{\"rows\":[{\"id\""),
            (b"\x1f\x8bnot gzip", b"null"),
        ] {
            let _ = summarize(req, resp);
        }
    }

    #[test]
    fn a_body_malformed_after_some_members_is_summarised_up_to_them() {
        let sum = summarize(
            br#"{"top_k":5,"filters":["a","Eq",1],"rank_by":["vector","ANN",[1,2"#,
            br#"{"rows":[{"id":"x"}],"performance":{"oops"#,
        );
        assert_eq!(sum.query["top_k"], 5);
        assert_eq!(sum.query["filters"], json!(["a", "Eq", 1]));
        assert!(!sum.query.contains_key("rank_by"));
        assert_eq!(sum.top_result_ids, ["x"]);
    }
}
