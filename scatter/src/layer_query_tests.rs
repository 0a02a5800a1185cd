//! Unit tests for [`super`] (the Layer query planner): native bodies pass byte for byte, Layer
//! vector and `nearest_to_id` shapes, `HybridText` expansion, `Auto` routing, multi-query rules,
//! and the 422 texts of each. Start at the helpers at the top (`ctx`, `upstream`, `err`).

use serde_json::{Value, json};

use super::*;
use bytes::Bytes;

fn ctx() -> QueryContext {
    QueryContext::default()
}

fn upstream(body: &str, ctx: &QueryContext) -> UpstreamQuery {
    match plan_query(&Bytes::copy_from_slice(body.as_bytes()), ctx).unwrap() {
        QueryPlan::Upstream(u) => u,
        other => panic!("expected an upstream plan, got {other:?}"),
    }
}

fn json_of(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
}

fn err(body: &str) -> QueryError {
    let e = plan_query(&Bytes::copy_from_slice(body.as_bytes()), &ctx()).unwrap_err();
    assert_eq!(e.status_code(), 422, "{body}: {e}");
    e
}

#[test]
fn native_query_is_byte_for_byte() {
    let body = r#"{"rank_by":["vector","ANN",[0.10,0.2]],"top_k":10,"include_attributes":["t"]}"#;
    let u = upstream(body, &ctx());
    assert_eq!(u.body.as_bytes(), body.as_bytes());
    assert_eq!(u.shape, UpstreamShape::Single);
    // The gather spec is derived only where a gather happens (sharded namespaces).
    let sharded = QueryContext { shards: 4, ..ctx() };
    assert_eq!(
        upstream(body, &sharded).merge,
        Merge::Single(MergeSpec::rows(RowOrder::DistAsc, 10))
    );
}

#[test]
fn layer_vector_becomes_ann_and_layer_keys_are_stripped() {
    let u = upstream(
        r#"{"vector":[0.10,-1],"top_k":10,"include_leg_breakdown":false,"cursor":"abc","filters":["a","Eq",1]}"#,
        &ctx(),
    );
    assert_eq!(
        String::from_utf8(u.body.into_inner().to_vec()).unwrap(),
        r#"{"rank_by":["vector","ANN",[0.10,-1]],"top_k":10,"filters":["a","Eq",1]}"#
    );
    assert_eq!(u.cursor.as_deref(), Some("\"abc\""));
    // A null `rank_by` beside `vector` is replaced, not repeated (sharded or not).
    for shards in [1, 4] {
        let c = QueryContext { shards, ..ctx() };
        let u = upstream(r#"{"rank_by":null,"vector":[1,2],"top_k":3}"#, &c);
        assert_eq!(
            u.body.as_bytes(),
            br#"{"rank_by":["vector","ANN",[1,2]],"top_k":3}"#
        );
    }
}

#[test]
fn nearest_to_id_goes_through_the_centroid_hook() {
    let body = r#"{"nearest_to_id":["asin-1",7],"top_k":10}"#;
    let QueryPlan::NeedsCentroids(p) =
        plan_query(&Bytes::copy_from_slice(body.as_bytes()), &ctx()).unwrap()
    else {
        panic!("expected NeedsCentroids");
    };
    assert_eq!(
        p.requests(),
        [CentroidRequest {
            leg: None,
            ids: vec!["\"asin-1\"".into(), "7".into()]
        }]
    );
    let QueryPlan::Upstream(u) = p.clone().resolve(&[vec![0.5, 0.25]]).unwrap() else {
        panic!("expected upstream");
    };
    assert_eq!(
        String::from_utf8(u.body.into_inner().to_vec()).unwrap(),
        r#"{"rank_by":["vector","ANN",[0.5,0.25]],"top_k":10}"#
    );
    assert_eq!(
        p.clone()
            .resolve(&[vec![f32::NAN]])
            .unwrap_err()
            .status_code(),
        500
    );
    assert_eq!(p.resolve(&[]).unwrap_err(), QueryError::BadCentroid);
}

#[test]
fn single_query_422s() {
    assert_eq!(
        err(r#"{"vector":[1],"nearest_to_id":["a"],"top_k":10}"#),
        QueryError::VectorAndNearestToId
    );
    assert_eq!(
        err(r#"{"nearest_to_id":[],"top_k":10}"#),
        QueryError::EmptyNearestToId
    );
    assert_eq!(
        err(r#"{"nearest_to_id":"a","top_k":10}"#),
        QueryError::EmptyNearestToId
    );
    assert_eq!(
        err(r#"{"top_k":10,"include_leg_breakdown":false}"#),
        QueryError::NoRanking
    );
    assert!(matches!(
        err(r#"{"vector":[1],"rank_by":["id","asc"],"top_k":1}"#),
        QueryError::RankingConflict { field: "vector" }
    ));
    assert!(matches!(
        err(r#"{"vector":["x"],"top_k":1}"#),
        QueryError::BadVector { .. }
    ));
    assert!(matches!(
        err(r#"{"vector":[1],"as_of":5,"top_k":1}"#),
        QueryError::Unsupported { field: "as_of", .. }
    ));
    assert!(matches!(
        err(r#"{"vector":[1],"between":[1,2],"top_k":1}"#),
        QueryError::Unsupported {
            field: "between",
            ..
        }
    ));
    let c = QueryContext {
        vector_dims: Some(3),
        ..ctx()
    };
    assert_eq!(
        plan_query(&Bytes::from_static(br#"{"vector":[1,2],"top_k":1}"#), &c).unwrap_err(),
        QueryError::VectorDimensions {
            expected: 3,
            got: 2
        }
    );
    // Aggregation-only queries need no ranking; null Layer keys are dropped.
    let u = upstream(r#"{"aggregate_by":{"n":["Count"]},"vector":null}"#, &ctx());
    assert_eq!(u.body.as_bytes(), br#"{"aggregate_by":{"n":["Count"]}}"#);
}

const HYBRID: &str = r#"{"rank_by":["content","HybridText","Conection timout kubernets"],"top_k":10,"filters":["tenant","Eq","t-42"],"include_attributes":["content","title"],"include_leg_breakdown":false,"consistency":{"level":"eventual"}}"#;

#[test]
fn hybrid_text_expands_into_one_fused_multi_query() {
    let u = upstream(HYBRID, &ctx());
    let filters = r#""filters":["tenant","Eq","t-42"],"include_attributes":["content","title"]"#;
    let fuzzy = |t: &str, m: u32, d: u32| {
        format!(
            r#"{{"rank_by":["content","Fuzzy","{t}",{{"max_edit_distance":[{{"min_query_chars":{m},"distance":{d}}}],"case_sensitive":false}}],"top_k":50,{filters}}}"#
        )
    };
    let expect = format!(
        r#"{{"queries":[{{"rank_by":["content","BM25","Conection timout kubernets"],"top_k":50,{filters}}},{},{},{}],"rerank_by":["RRF",{{"rank_constant":60}}],"limit":10,"consistency":{{"level":"eventual"}}}}"#,
        fuzzy("conection", 9, 2),
        fuzzy("timout", 6, 1),
        fuzzy("kubernets", 9, 2)
    );
    assert_eq!(
        String::from_utf8(u.body.into_inner().to_vec()).unwrap(),
        expect
    );
    assert_eq!(u.shape, UpstreamShape::Expansion);
    let h = u.echo.hybrid.unwrap();
    assert_eq!(
        h.to_json(),
        r#"{"tokens":["conection","timout","kubernets"],"tokens_dropped":0,"fuzziness":"auto","rank_constant":60,"legs":4,"per_leg_limit":50}"#
    );
    assert!(u.echo.routing.is_none());
    assert_eq!(u.threads, None);
}

#[test]
fn hybrid_options_threads_and_cap() {
    let words: Vec<String> = (0..17).map(|i| format!("tok{i:02}")).collect();
    let body = format!(
        r#"{{"rank_by":["c","HybridText","{}",{{"fuzziness":0,"rank_constant":5,"per_leg_limit":7,"threads":3}}],"top_k":20}}"#,
        words.join(" ")
    );
    let c = QueryContext { shards: 2, ..ctx() };
    let u = upstream(&body, &c);
    let v = json_of(&u.body);
    assert_eq!(v["queries"].as_array().unwrap().len(), 16);
    assert_eq!(
        v["queries"][1],
        json!({"rank_by": ["c", "BM25", "tok00"], "top_k": 7})
    );
    assert_eq!(v["rerank_by"], json!(["RRF", {"rank_constant": 5}]));
    assert_eq!(v["limit"], 20);
    let h = u.echo.hybrid.unwrap();
    assert_eq!(
        (h.tokens.len(), h.tokens_dropped, h.legs, h.threads),
        (15, 2, 16, Some(2))
    );
    assert_eq!(u.threads, Some(2));
    // Default per-leg limit follows top_k; unsharded → no threads.
    let u = upstream(
        r#"{"rank_by":["c","HybridText","timout"],"top_k":30}"#,
        &ctx(),
    );
    assert_eq!(u.echo.hybrid.unwrap().per_leg_limit, 150);
}

#[test]
fn hybrid_422s() {
    let no_tokens = err(r#"{"rank_by":["c","HybridText","a ! ?"],"top_k":10}"#);
    assert_eq!(
        no_tokens,
        QueryError::NoTokens {
            op: Expansion::HybridText
        }
    );
    assert_eq!(
        err(r#"{"rank_by":["c","HybridText","timout"],"top_k":10,"cursor":"x"}"#),
        QueryError::CursorWithExpansion {
            op: Expansion::HybridText
        }
    );
    assert_eq!(
        err(
            r#"{"queries":[{"rank_by":["c","BM25","x"],"top_k":1},{"rank_by":["c","HybridText","x y"],"top_k":1}]}"#
        ),
        QueryError::ExpansionInQueries {
            op: Expansion::HybridText,
            leg: 1
        }
    );
    for opt in [
        r#"{"fuzziness":3}"#,
        r#"{"rank_constant":0}"#,
        r#"{"per_leg_limit":0}"#,
        r#"{"threads":0}"#,
    ] {
        let body = format!(r#"{{"rank_by":["c","HybridText","timout",{opt}],"top_k":10}}"#);
        assert!(
            matches!(err(&body), QueryError::InvalidOption { .. }),
            "{opt}"
        );
    }
    assert!(matches!(
        err(r#"{"rank_by":["c","HybridText",5],"top_k":10}"#),
        QueryError::MalformedExpression { .. }
    ));
    assert!(matches!(
        err(r#"{"rank_by":[1,"HybridText","x"],"top_k":10}"#),
        QueryError::MalformedExpression { .. }
    ));
    assert!(matches!(
        err(r#"{"rank_by":["c","HybridText"],"top_k":10}"#),
        QueryError::MalformedExpression { .. }
    ));
    // The operator is read before the rest: five items are still too many for an expansion,
    // and any other expression is not the planner's to judge, whatever its length.
    assert!(matches!(
        err(r#"{"rank_by":["c","HybridText","x",{},5],"top_k":10}"#),
        QueryError::MalformedExpression { .. }
    ));
    assert!(matches!(
        err(r#"{"rank_by":["c","Auto","x",{},5,6],"top_k":10}"#),
        QueryError::MalformedExpression { .. }
    ));
    for rank_by in [
        r#"["v","ANN",[1,2],{},5]"#,
        r#"["c","BM25"]"#,
        r#"["c","asc"]"#,
        r#"["c"]"#,
    ] {
        let body = format!(r#"{{"rank_by":{rank_by},"top_k":10}}"#);
        let u = upstream(&body, &ctx());
        assert_eq!(u.body.as_bytes(), body.as_bytes(), "{rank_by}");
        assert!(u.echo.hybrid.is_none(), "{rank_by}");
    }
    assert!(matches!(
        err(r#"{"rank_by":["c","HybridText","xy"],"vector":[1],"top_k":10}"#),
        QueryError::RankingConflict { .. }
    ));
    assert!(matches!(
        err(r#"{"rank_by":["c","HybridText","xy"],"aggregate_by":{"n":["Count"]}}"#),
        QueryError::Invalid { .. }
    ));
}

fn auto(input: &str, opts: &str) -> Result<QueryPlan, QueryError> {
    let body = format!(
        r#"{{"rank_by":["content","Auto","{input}"{opts}],"top_k":10,"filters":["tenant","Eq","t-42"]}}"#
    );
    plan_query(&Bytes::copy_from_slice(body.as_bytes()), &ctx())
}

#[test]
fn auto_routes_and_defers() {
    // ≤ 2 tokens: hybrid_text, executed, both echo blocks.
    let Ok(QueryPlan::Upstream(u)) = auto("timout", "") else {
        panic!()
    };
    assert_eq!(u.shape, UpstreamShape::Expansion);
    assert_eq!(
        u.echo.routing.unwrap().to_json(),
        r#"{"route":"hybrid_text","policy":"v1","tokens":1,"executed":true}"#
    );
    assert_eq!(u.echo.hybrid.unwrap().legs, 2);
    // ≥ 8 tokens without a vector: deferral.
    let long = "why do pods lose their connection during deploys";
    let Ok(QueryPlan::Deferred { body, routing }) = auto(long, "") else {
        panic!()
    };
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"rows":[],"routing":{"route":"semantic","policy":"v1","tokens":8,"executed":false}}"#
    );
    assert!(!routing.executed);
    // 3-7 tokens without a vector: fused deferral.
    let Ok(QueryPlan::Deferred { routing, .. }) = auto("pods lose connection", "") else {
        panic!()
    };
    assert_eq!((routing.route, routing.tokens), (Route::Fused, 3));
    // Forced semantic with a vector: one ANN query.
    let Ok(QueryPlan::Upstream(u)) =
        auto(long, r#",{"route":"semantic","vector":[0.0012,-0.043]}"#)
    else {
        panic!()
    };
    assert_eq!(
        String::from_utf8(u.body.into_inner().to_vec()).unwrap(),
        r#"{"rank_by":["vector","ANN",[0.0012,-0.043]],"top_k":10,"filters":["tenant","Eq","t-42"]}"#
    );
    assert_eq!(u.shape, UpstreamShape::Single);
    assert_eq!(u.echo.routing.as_ref().unwrap().policy, "forced");
    assert!(u.echo.hybrid.is_none());
    // Fused with a vector: hybrid legs + ANN leg.
    let Ok(QueryPlan::Upstream(u)) =
        auto("pods lose connection", r#",{"vector":"zczMPc3MTD6amZk+"}"#)
    else {
        panic!()
    };
    let v = json_of(&u.body);
    let legs = v["queries"].as_array().unwrap();
    assert_eq!(legs.len(), 5);
    assert_eq!(
        legs[4],
        json!({"rank_by": ["vector", "ANN", "zczMPc3MTD6amZk+"], "top_k": 50, "filters": ["tenant", "Eq", "t-42"]})
    );
    assert_eq!(u.echo.hybrid.unwrap().legs, 5);
    assert_eq!(u.echo.routing.unwrap().policy, "v1");
    // Forced hybrid_text ignores the route's vector need.
    let Ok(QueryPlan::Upstream(u)) = auto(long, r#",{"route":"hybrid_text"}"#) else {
        panic!()
    };
    assert_eq!(u.echo.hybrid.unwrap().legs, 9);
}

#[test]
fn forced_fused_caps_tokens_at_fourteen() {
    let words: Vec<String> = (0..16).map(|i| format!("word{i:02}")).collect();
    let Ok(QueryPlan::Upstream(u)) = auto(&words.join(" "), r#",{"route":"fused","vector":[1]}"#)
    else {
        panic!()
    };
    let h = u.echo.hybrid.unwrap();
    assert_eq!((h.tokens.len(), h.tokens_dropped, h.legs), (14, 2, 16));
    assert_eq!(u.echo.routing.unwrap().tokens, 15);
}

#[test]
fn auto_422s() {
    assert_eq!(
        auto("timout", r#",{"route":"semantic"}"#).unwrap_err(),
        QueryError::ForcedRouteWithoutVector { route: "semantic" }
    );
    assert_eq!(
        auto("timout", r#",{"route":"fused"}"#).unwrap_err(),
        QueryError::ForcedRouteWithoutVector { route: "fused" }
    );
    assert_eq!(
        auto("! ?", "").unwrap_err(),
        QueryError::NoTokens {
            op: Expansion::Auto
        }
    );
    let c = QueryContext {
        vector_dims: Some(2),
        ..ctx()
    };
    let body =
        r#"{"rank_by":["c","Auto","pods",{"route":"semantic","vector":[1,2,3]}],"top_k":10}"#;
    assert_eq!(
        plan_query(&Bytes::copy_from_slice(body.as_bytes()), &c).unwrap_err(),
        QueryError::VectorDimensions {
            expected: 2,
            got: 3
        }
    );
    assert_eq!(
        err(r#"{"rank_by":["c","Auto","timout"],"top_k":10,"cursor":"x"}"#),
        QueryError::CursorWithExpansion {
            op: Expansion::Auto
        }
    );
    assert_eq!(
        err(
            r#"{"queries":[{"rank_by":["c","Auto","x y"],"top_k":1},{"rank_by":["id","asc"],"top_k":1}],"rerank_by":["RRF"]}"#
        ),
        QueryError::ExpansionInQueries {
            op: Expansion::Auto,
            leg: 0
        }
    );
    assert!(matches!(
        auto("x", r#",{"route":"lexical"}"#).unwrap_err(),
        QueryError::InvalidOption { .. }
    ));
    assert!(matches!(
        auto("xy", r#",{"vektor":[1]}"#).unwrap_err(),
        QueryError::InvalidOption { .. }
    ));
}

#[test]
fn multi_query_validation_and_translation() {
    let fused = r#"{"queries":[{"rank_by":["vector","ANN",[0.1]],"top_k":20,"cursor":"x"}],"rerank_by":["RRF"],"limit":5}"#;
    let u = upstream(fused, &ctx());
    assert_eq!(u.body.as_bytes(), fused.as_bytes());
    assert_eq!(
        u.merge,
        Merge::PerLeg(vec![MergeSpec::rows(RowOrder::ScoreDesc, 5)])
    );
    let one = r#"{"queries":[{"rank_by":["id","asc"],"top_k":1}]}"#;
    assert_eq!(err(one), QueryError::LegCount { got: 1 });
    let leg = r#"{"rank_by":["id","asc"],"top_k":1}"#;
    let many = format!(r#"{{"queries":[{}]}}"#, vec![leg; 17].join(","));
    assert_eq!(err(&many), QueryError::LegCount { got: 17 });
    assert_eq!(
        err(&format!(r#"{{"queries":[{leg},{leg}],"cursor":"c"}}"#)),
        QueryError::CursorInMultiQuery { leg: None }
    );
    assert_eq!(
        err(&format!(
            r#"{{"queries":[{leg},{{"rank_by":["id","asc"],"top_k":1,"cursor":"c"}}]}}"#
        )),
        QueryError::CursorInMultiQuery { leg: Some(1) }
    );
    let body = format!(
        r#"{{"queries":[{leg}, {{"vector":[1,2],"top_k":3,"include_leg_breakdown":true}}],"consistency":{{"level":"strong"}}}}"#
    );
    let u = upstream(&body, &ctx());
    assert_eq!(
        String::from_utf8(u.body.into_inner().to_vec()).unwrap(),
        format!(
            r#"{{"queries":[{leg}, {{"rank_by":["vector","ANN",[1,2]],"top_k":3}}],"consistency":{{"level":"strong"}}}}"#
        )
    );
    assert_eq!(u.shape, UpstreamShape::MultiQuery);
    let Merge::PerLeg(specs) = u.merge else {
        panic!()
    };
    assert_eq!(specs[1].order, RowOrder::DistAsc);
    // nearest_to_id in a leg goes through the hook with its leg index.
    let body = format!(r#"{{"queries":[{leg},{{"nearest_to_id":["a"],"top_k":3}}]}}"#);
    let QueryPlan::NeedsCentroids(p) =
        plan_query(&Bytes::copy_from_slice(body.as_bytes()), &ctx()).unwrap()
    else {
        panic!()
    };
    assert_eq!(p.requests()[0].leg, Some(1));
    let QueryPlan::Upstream(u) = p.resolve(&[vec![1.0]]).unwrap() else {
        panic!()
    };
    assert_eq!(
        json_of(&u.body)["queries"][1]["rank_by"],
        json!(["vector", "ANN", [1]])
    );
}

#[test]
fn hide_and_plan_is_hide_reserved_then_plan_validated() {
    let ctx = ctx();
    for body in [
        // Nothing to hide: planned from the members the validation read.
        r#"{"rank_by":["id","asc"],"top_k":3,"include_attributes":["id"]}"#,
        r#"{"vector":[1,2],"top_k":3,"include_attributes":["title"],"cursor":null}"#,
        // Rewritten projections (single and multi-query): planned from the new body.
        r#"{"rank_by":["id","asc"],"top_k":3,"include_attributes":true}"#,
        r#"{"queries":[{"rank_by":["id","asc"],"top_k":1,"exclude_attributes":["a"]},{"vector":[1,2],"top_k":2}]}"#,
        // A plan error stays the plan's; a validation error is the outer one.
        r#"{"vector":[1,2],"nearest_to_id":["a"],"top_k":3,"include_attributes":true}"#,
        r#"{"top_k":3,"include_attributes":true,"top_k":4}"#,
        r#"{"top_k":3,"include_attributes":true"#,
    ] {
        let bytes = Bytes::from(body);
        let two_steps = crate::reference::hide_then_plan(bytes.clone(), &ctx);
        assert_eq!(hide_and_plan(bytes, &ctx), two_steps, "{body}");
    }
    let conflict = r#"{"vector":[1,2],"nearest_to_id":["a"],"top_k":3,"include_attributes":true}"#;
    assert!(matches!(
        hide_and_plan(Bytes::from(conflict), &ctx),
        Ok((_, Err(QueryError::VectorAndNearestToId)))
    ));
    let duplicate = r#"{"top_k":3,"include_attributes":true,"top_k":4}"#;
    assert!(matches!(
        hide_and_plan(Bytes::from(duplicate), &ctx),
        Err(RewriteError::DuplicateKey { .. })
    ));
    // The unchanged body is the caller's buffer, not a copy.
    let bytes =
        Bytes::from_static(br#"{"rank_by":["id","asc"],"top_k":3,"include_attributes":["id"]}"#);
    let (sent, planned) = hide_and_plan(bytes.clone(), &ctx).unwrap();
    assert_eq!(sent.as_ptr(), bytes.as_ptr());
    let Ok(QueryPlan::Upstream(q)) = planned else {
        panic!("a native query plans upstream");
    };
    assert_eq!(q.body.as_bytes(), bytes.as_ref());
    // A rewritten projection is what is sent and what is planned.
    let (sent, planned) = hide_and_plan(
        Bytes::from_static(br#"{"rank_by":["id","asc"],"top_k":3,"include_attributes":true}"#),
        &ctx,
    )
    .unwrap();
    assert!(
        std::str::from_utf8(&sent)
            .unwrap()
            .contains("exclude_attributes")
    );
    let Ok(QueryPlan::Upstream(q)) = planned else {
        panic!("a native query plans upstream");
    };
    assert_eq!(q.body.as_bytes(), sent.as_ref());
}
