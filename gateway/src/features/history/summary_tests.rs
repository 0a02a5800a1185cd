//! Unit and property tests of the query summary (`summary.rs`).

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

/// Text with characters of two, three and four bytes, and bytes no UTF-8 text holds spliced in
/// anywhere.
fn utf8_mostly() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop::collection::vec(
        prop_oneof![
            "[a-z\u{e9}\u{6c0}\u{20ac}\u{10ffff} ,:{}]{0,40}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..3),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
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

    /// The text a body is summarised from is its longest UTF-8 prefix, whether the SIMD
    /// check accepts it whole or the standard library's finds where it stops (text with
    /// multi-byte characters, and bytes no UTF-8 text holds, spliced in anywhere).
    #[test]
    fn the_text_read_is_the_longest_utf8_prefix(text in utf8_mostly()) {
        let longest = (0..=text.len()).rev().find(|&n| std::str::from_utf8(&text[..n]).is_ok()).unwrap_or(0);
        proptest::prop_assert_eq!(utf8_prefix(&text).as_bytes(), &text[..longest]);
    }
}
