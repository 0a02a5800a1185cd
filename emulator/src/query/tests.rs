//! Query-engine tests: ranking, filters through queries, RRF, include/exclude, errors.

use serde_json::{Value, json};

use super::*;
use crate::error::parse_body;
use crate::write::{self, WriteLimits, WriteRequest};

const LIMITS: WriteLimits = WriteLimits {
    patch_by_filter_rows: 50_000,
    delete_by_filter_rows: 5_000_000,
    backpressure_bytes: u64::MAX,
};

fn ns(body: Value) -> NsState {
    let mut st = NsState::new(0);
    let bytes = body.to_string().into_bytes();
    let req: WriteRequest = parse_body(&bytes).unwrap();
    write::apply(&mut st, req, bytes.len() as u64, LIMITS, 1, false).unwrap();
    st
}

fn q(st: &NsState, body: Value) -> ApiResult<Value> {
    let req: QueryRankBy = parse_body(body.to_string().as_bytes())?;
    run_single(st, &st.docs, &req, req.vector_encoding.unwrap_or_default()).map(Value::Object)
}

fn ids(v: &Value) -> Vec<Value> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect()
}

fn sample() -> NsState {
    ns(json!({
        "upsert_rows": [
            {"id": 1, "vector": [1.0, 0.0], "title": "the quick brown fox", "n": 3, "tag": "a"},
            {"id": 2, "vector": [0.0, 1.0], "title": "a lazy dog sleeps", "n": 1, "tag": "b"},
            {"id": 3, "vector": [0.7, 0.7], "title": "quick quick fox jumps", "n": 2},
        ],
        "distance_metric": "euclidean_squared",
        "schema": {"title": {"type": "string", "full_text_search": true}},
    }))
}

#[test]
fn ann_orders_by_distance() {
    let st = sample();
    let r = q(
        &st,
        json!({"rank_by": ["vector", "ANN", [1.0, 0.0]], "top_k": 3}),
    )
    .unwrap();
    assert_eq!(ids(&r), vec![json!(1), json!(3), json!(2)]);
    let d = r["rows"][1]["$dist"].as_f64().unwrap();
    let expected = (0.7f32 - 1.0) as f64 * (0.7f32 - 1.0) as f64 + (0.7f32 as f64).powi(2);
    assert!((d - expected).abs() < 1e-6, "{d} vs {expected}");
}

#[test]
fn bm25_prefers_more_matches_and_drops_zero_scores() {
    let st = sample();
    let r = q(
        &st,
        json!({"rank_by": ["title", "BM25", "quick fox"], "top_k": 10}),
    )
    .unwrap();
    assert_eq!(ids(&r), vec![json!(3), json!(1)]);
    assert!(r["rows"][0]["$dist"].as_f64().unwrap() > r["rows"][1]["$dist"].as_f64().unwrap());
}

#[test]
fn attribute_order_with_nulls_and_offset() {
    let st = sample();
    let r = q(
        &st,
        json!({"rank_by": ["tag", "asc"], "top_k": 10, "include_attributes": ["tag"]}),
    )
    .unwrap();
    assert_eq!(
        ids(&r),
        vec![json!(3), json!(1), json!(2)],
        "null first ascending"
    );
    assert!(r["rows"][0].get("$dist").is_none());
    let r = q(
        &st,
        json!({"rank_by": ["n", "desc"], "top_k": 1, "offset": 1}),
    )
    .unwrap();
    assert_eq!(ids(&r), vec![json!(3)]);
}

#[test]
fn filters_and_projection() {
    let st = sample();
    let r = q(&st, json!({"rank_by": ["id", "asc"], "top_k": 10, "filters": ["n", "Lte", 2], "include_attributes": true})).unwrap();
    assert_eq!(ids(&r), vec![json!(2), json!(3)]);
    assert_eq!(r["rows"][0]["vector"], json!([0.0, 1.0]));
    let r = q(
        &st,
        json!({"rank_by": ["id", "asc"], "top_k": 1, "exclude_attributes": ["vector", "title"]}),
    )
    .unwrap();
    assert_eq!(r["rows"][0], json!({"id": 1, "n": 3, "tag": "a"}));
    let r = q(&st, json!({"rank_by": ["id", "asc"], "top_k": 1, "include_attributes": ["vector"], "vector_encoding": "base64"})).unwrap();
    assert_eq!(r["rows"][0]["vector"], json!("AACAPwAAAAA="));
}

#[test]
fn error_texts() {
    let st = sample();
    let err = |b: Value| q(&st, b).unwrap_err().to_string();
    assert_eq!(
        err(json!({"rank_by": ["id", "asc"]})),
        "💔 rank_by queries must specify top_k or limit"
    );
    assert_eq!(
        err(json!({"rank_by": ["id", "asc"], "top_k": 0})),
        "💔 top_k must be between 1 and 10000"
    );
    assert_eq!(
        err(json!({"rank_by": ["id", "asc"], "top_k": 10001})),
        "💔 top_k must be between 1 and 10000"
    );
    assert_eq!(
        err(
            json!({"rank_by": ["id", "asc"], "top_k": 1, "include_attributes": ["x"], "exclude_attributes": []})
        ),
        "💔 cannot specify both include_attributes and exclude_attributes"
    );
    assert!(
        err(json!({"rank_by": ["id", "asc"], "top_k": 1, "include_attributes": ["nope"]}))
            .contains("attribute \"nope\" not found in schema")
    );
    assert!(
        err(json!({"rank_by": ["vector", "kNN", [1.0, 0.0]], "top_k": 1}))
            .contains("kNN requires filters")
    );
    assert_eq!(
        err(
            json!({"rank_by": ["vector", "ANN", [1.0, 0.0]], "limit": {"total": 2, "per": {"attributes": ["tag"], "limit": 1}}})
        ),
        "💔 `limit.per` is only supported when ranking by an attribute"
    );
    assert!(
        err(json!({"rank_by": ["id", "asc"], "top_k": 1, "consistency": "eventual"})).contains(
            "consistency: invalid type: string \"eventual\", expected struct Consistency"
        )
    );
    assert!(
        err(json!({"rank_by": ["id", "asc"], "top_k": 1, "consistency": {"level": "x"}}))
            .contains("unknown variant `x`, expected `strong` or `eventual`")
    );
    assert!(
        err(json!({"rank_by": ["id", "asc"], "top_k": 1, "vector_encoding": "bad"}))
            .contains("unknown variant `bad`, expected `float` or `base64`")
    );
    assert!(
        err(json!({"rank_by": ["title", "BM25", ["a", "b"]], "top_k": 1}))
            .contains("invalid input '[a, b]' for rank_by field \"title\", expecting string")
    );
}

#[test]
fn limit_per_groups() {
    let st = ns(json!({"upsert_columns": {"id": [1, 2, 3, 4], "g": ["x", "x", "y", "x"]}}));
    let r = q(&st, json!({"rank_by": ["id", "asc"], "limit": {"total": 10, "per": {"attributes": ["g"], "limit": 2}}})).unwrap();
    assert_eq!(ids(&r), vec![json!(1), json!(2), json!(3)]);
}

#[test]
fn rrf_fuses_with_weights() {
    let st = sample();
    let m: MultiQuery = parse_body(
        json!({
            "queries": [
                {"rank_by": ["vector", "ANN", [0.0, 1.0]], "top_k": 3},
                {"rank_by": ["title", "BM25", "quick"], "top_k": 3},
            ],
            "rerank_by": ["RRF", {"rank_constant": 1, "weights": [1.0, 3.0]}],
            "limit": 2,
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let out = run_multi(&st, &st.docs, &m).unwrap();
    assert_eq!(out.len(), 1);
    let rows = out[0]["rows"].as_array().unwrap();
    // Query 1: 2, 3, 1. Query 2: 3, 1 (BM25 "quick": doc 3 has it twice).
    // id 3: 1/(1+2) + 3/(1+1) = 1.8333; id 1: 1/(1+3) + 3/(1+2) = 1.25; id 2: 1/(1+1) = 0.5.
    assert_eq!(
        rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        vec![json!(3), json!(1)]
    );
    assert!((rows[0]["$score"].as_f64().unwrap() - (1.0 / 3.0 + 1.5)).abs() < 1e-9);
}

#[test]
fn multi_query_limits() {
    let st = sample();
    let parse = |v: Value| parse_body::<MultiQuery>(v.to_string().as_bytes()).unwrap();
    let err = run_multi(&st, &st.docs, &parse(json!({"queries": []}))).unwrap_err();
    assert_eq!(err.to_string(), "💔 must send at least one sub-query");
    let many: Vec<Value> = (0..17)
        .map(|_| json!({"rank_by": ["id", "asc"], "top_k": 1}))
        .collect();
    let err = run_multi(&st, &st.docs, &parse(json!({"queries": many}))).unwrap_err();
    assert!(err.to_string().contains("requires 17 permits, max is 16"));
    let two = parse(
        json!({"queries": [{"rank_by": ["id", "asc"], "top_k": 1}, {"aggregate_by": {"c": ["Count"]}}]}),
    );
    let out = run_multi(&st, &st.docs, &two).unwrap();
    assert_eq!(
        Value::Object(out[1].clone()),
        json!({"aggregations": {"c": 3}})
    );
}

#[test]
fn array_attributes_are_not_orderable() {
    let st = ns(json!({"upsert_rows": [
        {"id": 1, "tags": ["b"], "n": 2},
        {"id": 2, "tags": ["a"], "n": 1},
    ]}));
    for rank_by in [
        json!(["tags", "asc"]),
        json!([["n", "asc"], ["tags", "desc"]]),
    ] {
        let err = q(&st, json!({"rank_by": rank_by, "top_k": 5})).unwrap_err();
        assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
        assert!(
            err.to_string()
                .contains("cannot order by attribute \"tags\" of type []string"),
            "{err}"
        );
    }
    // Scalars (and id, and attributes no document has) still order.
    let r = q(&st, json!({"rank_by": ["n", "asc"], "top_k": 5})).unwrap();
    assert_eq!(ids(&r), vec![json!(2), json!(1)]);
    assert!(q(&st, json!({"rank_by": ["id", "desc"], "top_k": 5})).is_ok());
    assert!(q(&st, json!({"rank_by": ["nope", "asc"], "top_k": 5})).is_ok());
}

#[test]
fn aggregations_refuse_include_attributes() {
    let st = sample();
    let err = q(
        &st,
        json!({"aggregate_by": {"c": ["Count"]}, "include_attributes": ["n"]}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "💔 aggregate_by cannot be combined with include_attributes"
    );
    let err = q(
        &st,
        json!({"aggregate_by": {"c": ["Count"]}, "include_attributes": true}),
    )
    .unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    // `false` means "omitted".
    let r = q(
        &st,
        json!({"aggregate_by": {"c": ["Count"]}, "include_attributes": false}),
    )
    .unwrap();
    assert_eq!(r["aggregations"], json!({"c": 3}));
}
