//! Unit tests for [`super`] (the gather/merge): row order by distance, score and attributes with
//! their tie-breaks, aggregations and groups, `MergeSpec` derived from a body, multi-query legs,
//! and malformed upstream responses (502, never a panic). Start at the `merge` helper.

use serde_json::{Value, json};

use super::*;
use crate::order::Direction;

fn merge(parts: &[&str], spec: &MergeSpec) -> Value {
    let bodies: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    let out = merge_query_responses(&bodies, spec).unwrap();
    serde_json::from_slice(&out).unwrap()
}

fn ids(v: &Value) -> Vec<Value> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect()
}

#[test]
fn dist_ascending_with_id_tie_break_and_verbatim_rows() {
    let a = r#"{"rows":[{"id":3,"$dist":0.1,"t":"x"},{"id":"b","$dist":0.5}],"billing":{"billable_logical_bytes_queried":10,"billable_logical_bytes_returned":1}}"#;
    let b = r#"{"rows":[{"id":2,"$dist":0.10},{"id":"a","$dist":0.5},{"id":9,"$dist":0.9}],"billing":{"billable_logical_bytes_queried":5,"billable_logical_bytes_returned":2}}"#;
    let spec = MergeSpec::rows(RowOrder::DistAsc, 4);
    let out = merge_query_responses(&[a.as_bytes(), b.as_bytes()], &spec).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"rows":[{"id":2,"$dist":0.10},{"id":3,"$dist":0.1,"t":"x"},{"id":"a","$dist":0.5},{"id":"b","$dist":0.5}],"billing":{"billable_logical_bytes_queried":15,"billable_logical_bytes_returned":3}}"#
    );
}

#[test]
fn score_descending_prefers_score_then_dist() {
    let a = r#"{"rows":[{"id":1,"$dist":2.5},{"id":2,"$dist":0.5}]}"#;
    let b = r#"{"rows":[{"id":3,"$dist":1.5},{"id":4}]}"#;
    let v = merge(&[a, b], &MergeSpec::rows(RowOrder::ScoreDesc, 10));
    assert_eq!(ids(&v), [json!(1), json!(3), json!(2), json!(4)]);
    let a = r#"{"results":[{"rows":[{"id":1,"$score":0.01},{"id":2,"$score":0.005}]}],"billing":{"x":1}}"#;
    let b = r#"{"results":[{"rows":[{"id":3,"$score":0.02}]}],"billing":{"x":2}}"#;
    let v = merge(&[a, b], &MergeSpec::rows(RowOrder::ScoreDesc, 2));
    assert_eq!(ids(&v), [json!(3), json!(1)]);
    assert_eq!(v["billing"]["x"], 3);
}

#[test]
fn single_input_keeps_upstream_order() {
    let a = r#"{"rows":[{"id":5,"$score":0.1},{"id":1,"$score":0.1},{"id":2,"$score":0.3}]}"#;
    let v = merge(&[a], &MergeSpec::rows(RowOrder::ScoreDesc, 2));
    assert_eq!(ids(&v), [json!(5), json!(1)]);
}

#[test]
fn attribute_order_nulls_and_strip() {
    let a = r#"{"rows":[{"id":1,"p":null},{"id":2,"p":5,"q":"x"}]}"#;
    let b = r#"{"rows":[{"id":3},{"id":4,"p":7}]}"#;
    let mut spec = MergeSpec::rows(RowOrder::Attributes(vec![("p".into(), Direction::Asc)]), 10);
    assert_eq!(
        ids(&merge(&[a, b], &spec)),
        [json!(1), json!(3), json!(2), json!(4)]
    );
    spec.order = RowOrder::Attributes(vec![("p".into(), Direction::Desc)]);
    spec.strip = vec!["p".into()];
    let v = merge(&[a, b], &spec);
    assert_eq!(ids(&v), [json!(4), json!(2), json!(1), json!(3)]);
    assert_eq!(v["rows"][1], json!({"id": 2, "q": "x"}));
    spec.order = RowOrder::Attributes(vec![("id".into(), Direction::Desc)]);
    assert_eq!(
        ids(&merge(&[a, b], &spec)),
        [json!(4), json!(3), json!(2), json!(1)]
    );
}

#[test]
fn aggregations_and_groups() {
    let a = r#"{"aggregations":{"n":3,"s":1.5},"billing":{"q":1},"performance":{"server_total_ms":5,"query_execution_ms":4,"approx_namespace_size":10,"cache_hit_ratio":1.0,"cache_temperature":"hot","exhaustive_search_count":1}}"#;
    let b = r#"{"aggregations":{"n":4,"s":2},"billing":{"q":2},"performance":{"server_total_ms":9,"query_execution_ms":2,"approx_namespace_size":5,"cache_hit_ratio":0.5,"cache_temperature":"cold","exhaustive_search_count":0}}"#;
    let v = merge(&[a, b], &MergeSpec::rows(RowOrder::ScoreDesc, 10));
    assert_eq!(v["aggregations"], json!({"n": 7, "s": 3.5}));
    assert!(v.get("rows").is_none());
    assert_eq!(
        v["performance"],
        json!({"server_total_ms": 9, "query_execution_ms": 4, "approx_namespace_size": 10, "cache_hit_ratio": 0.75, "cache_temperature": "cold", "exhaustive_search_count": 1})
    );
    let a = r#"{"aggregation_groups":[{"color":"blue","n":2},{"color":"red","n":1}]}"#;
    let b = r#"{"aggregation_groups":[{"color":null,"n":5},{"color":"bl\u0075e","n":3},{"color":"green","n":1}]}"#;
    let spec = MergeSpec {
        aggregate_labels: vec!["n".into()],
        group_keys: vec!["color".into()],
        group_limit: Some(3),
        ..MergeSpec::rows(RowOrder::ScoreDesc, 10)
    };
    let v = merge(&[a, b], &spec);
    assert_eq!(
        v["aggregation_groups"],
        json!([{"color": null, "n": 5}, {"color": "blue", "n": 5}, {"color": "green", "n": 1}])
    );
}

#[test]
fn spec_from_body() {
    let valid = |body: &'static [u8]| Validated::check(body, &crate::Limits::default()).unwrap();
    let s = MergeSpec::for_body(&valid(
        br#"{"aggregate_by":{"n":["Count"]},"group_by":["color",{"tag":["ForEachUnique","tags"]}],"top_k":100}"#,
    ))
    .unwrap();
    assert_eq!(s.aggregate_labels, ["n"]);
    assert_eq!(s.group_keys, ["color", "tag"]);
    assert_eq!(s.group_limit, Some(100));
    let s = MergeSpec::for_body(&valid(
        br#"{"rank_by":["v","ANN",[1]],"limit":{"total":7}}"#,
    ))
    .unwrap();
    assert_eq!(
        (s.order, s.top_k, s.group_limit),
        (RowOrder::DistAsc, 7, None)
    );
}

#[test]
fn multi_query_leg_by_leg() {
    let a = r#"{"results":[{"rows":[{"id":1,"$dist":0.2}]},{"aggregations":{"n":1}}],"performance":{"server_total_ms":3}}"#;
    let b = r#"{"results":[{"rows":[{"id":2,"$dist":0.1}]},{"aggregations":{"n":2}}],"performance":{"server_total_ms":4}}"#;
    let specs = [
        MergeSpec::rows(RowOrder::DistAsc, 1),
        MergeSpec::rows(RowOrder::ScoreDesc, 1),
    ];
    let out = merge_multi_query_responses(&[a.as_bytes(), b.as_bytes()], &specs).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        json!({"results": [{"rows": [{"id": 2, "$dist": 0.1}]}, {"aggregations": {"n": 3}}], "performance": {"server_total_ms": 4}})
    );
    assert!(merge_multi_query_responses(&[a.as_bytes()], &specs[..1]).is_err());
}

#[test]
fn bad_responses_are_502_not_panics() {
    let spec = MergeSpec::rows(RowOrder::DistAsc, 3);
    for bad in [
        "",
        "[]",
        "{",
        r#"{"rows":{}}"#,
        r#"{"rows":[1]}"#,
        r#"{"rows":[{"id":1}],"rows":[]}"#,
        r#"{"results":[{},{}]}"#,
        r#"{"aggregations":[1]}"#,
    ] {
        let r = merge_query_responses(&[bad.as_bytes(), br#"{"rows":[]}"#], &spec);
        assert_eq!(r.map_err(|e| e.status_code()).err(), Some(502), "{bad}");
    }
    let v = merge(&[], &spec);
    assert_eq!(v, json!({}));
}

/// Found by the `merge` fuzz target: a response with bytes that are not UTF-8 in a key hit
/// sonic-rs's `debug_assert` (a panic in debug builds, an invalid `&str` in release builds).
#[test]
fn responses_that_are_not_utf8_are_502() {
    let good = br#"{"rows":[{"id":1,"$dist":0.5}]}"#.as_slice();
    let bad = b"{\"rows\":[{\"id\":2,\"$s\xd7core\":0.3}]}".as_slice();
    let spec = MergeSpec::rows(RowOrder::DistAsc, 4);
    for bodies in [vec![bad], vec![good, bad]] {
        let e = merge_query_responses(&bodies, &spec).unwrap_err();
        assert_eq!(e.status_code(), 502, "{e}");
    }
    let e = merge_multi_query_responses(&[good, bad], std::slice::from_ref(&spec)).unwrap_err();
    assert_eq!(e.status_code(), 502, "{e}");
}

#[test]
fn responses_with_an_invalid_escape_are_502() {
    // Found by the `merge` fuzz target: sonic-rs's parse does not check the hex digits of `\u`,
    // so a key or value holding `\u00li` was copied into the merged answer as invalid JSON.
    let good = br#"{"aggregation_groups":[{"g":"b","n":1}]}"#.as_slice();
    let bad = br#"{"aggregation_groups":[{"g":"x\u00limit","n":1}]}"#.as_slice();
    let spec = MergeSpec::rows(RowOrder::DistAsc, 4);
    for bodies in [vec![bad], vec![good, bad]] {
        let e = merge_query_responses(&bodies, &spec).unwrap_err();
        assert_eq!(e.status_code(), 502, "{e}");
    }
    // A valid escape still merges.
    let escaped = br#"{"rows":[{"id":"a\u00e9\n","$dist":0.5}]}"#.as_slice();
    let out = merge_query_responses(&[escaped], &spec).expect("valid escapes merge");
    let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON out");
    assert_eq!(v["rows"][0]["id"], "a\u{e9}\n");
}

#[test]
fn rows_with_escaped_text_merge_across_legs() {
    let a = br#"{"rows":[{"id":"a","$dist":0.5,"text":"say \"hi\"\nthen go"}]}"#.as_slice();
    let b = br#"{"rows":[{"id":"b","$dist":0.25,"text":"plain"}]}"#.as_slice();
    let spec = MergeSpec::rows(RowOrder::DistAsc, 4);
    let out = merge_query_responses(&[a, b], &spec).expect("escaped rows merge");
    let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON out");
    assert_eq!(v["rows"][0]["id"], "b");
    assert_eq!(v["rows"][1]["text"], "say \"hi\"\nthen go");
}
