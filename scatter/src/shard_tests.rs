//! Unit tests for [`super`] (shard hashing and the scatter plan): the documented hash bytes, the
//! spread of ids over shards, per-leg shard filters and watermarks, verbatim untouched bytes,
//! multi-query legs, and bodies that cannot be scattered. Start at the `legs` helper.

use serde_json::{Value, json};

use super::*;
use crate::Limits;

/// A body checked as the gateway checks a request's.
fn valid(body: &str) -> Validated<&[u8]> {
    Validated::check(body.as_bytes(), &Limits::default()).unwrap()
}

const WM: &[u8] = br#"["_hevlayer_upserted_at","Lte",42]"#;

fn legs(body: &str, shards: u32, wm: Option<&[u8]>) -> Vec<Value> {
    plan_shards(&valid(body), shards, wm)
        .unwrap()
        .legs
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect()
}

#[test]
fn hashes_the_documented_bytes() {
    let n = 1_234_567_890_123_u64;
    let expect = (xxh64(&n.to_le_bytes(), 0) % 16) as u32;
    assert_eq!(shard_of(&IdValue::Uint(n), 16), expect);
    let expect = (xxh64("asin-B08N5WRWNW".as_bytes(), 0) % 7) as u32;
    assert_eq!(shard_of(&IdValue::Str("asin-B08N5WRWNW".into()), 7), expect);
    // Escaped and unescaped spellings of one id land together.
    let a = IdRef::parse(r#""ab""#);
    let b = IdRef::parse(r#""a\u0062""#);
    assert_eq!(shard_of_ref(&a, 1000), shard_of_ref(&b, 1000));
    // Pinned value: xxh64("", 0) = 0xEF46DB3751D8E999.
    assert_eq!(
        shard_of(&IdValue::Str("".into()), u32::MAX),
        (0xEF46_DB37_51D8_E999_u64 % u64::from(u32::MAX)) as u32
    );
    assert_eq!(shard_of(&IdValue::Uint(5), 0), 0);
    assert_eq!(shard_of(&IdValue::Uint(5), 1), 0);
    assert_eq!(shard_of(&IdValue::Other, 8), 0);
}

#[test]
fn spreads_ids_over_shards() {
    let mut counts = [0u32; 8];
    for i in 0..8000u64 {
        counts[shard_of(&IdValue::Uint(i), 8) as usize] += 1;
    }
    assert!(
        counts.iter().all(|&c| (800..1200).contains(&c)),
        "{counts:?}"
    );
}

#[test]
fn single_query_gets_shard_and_watermark() {
    let out = legs(
        r#"{"rank_by":["v","ANN",[0.1]],"top_k":5,"filters":["a","Eq",1]}"#,
        3,
        Some(WM),
    );
    assert_eq!(out.len(), 3);
    for (i, leg) in out.iter().enumerate() {
        assert_eq!(
            leg["filters"],
            json!([
                "And",
                [
                    ["a", "Eq", 1],
                    ["_hevlayer_upserted_at", "Lte", 42],
                    ["_hevlayer_shard", "Eq", i]
                ]
            ])
        );
        assert_eq!(leg["top_k"], 5);
    }
    let out = legs(r#"{"rank_by":["v","ANN",[0.1]],"top_k":5}"#, 2, None);
    assert_eq!(out[1]["filters"], json!(["_hevlayer_shard", "Eq", 1]));
    let out = legs(r#"{"filters":null,"top_k":5}"#, 2, Some(WM));
    assert_eq!(
        out[0]["filters"],
        json!([
            "And",
            [
                ["_hevlayer_upserted_at", "Lte", 42],
                ["_hevlayer_shard", "Eq", 0]
            ]
        ])
    );
    assert_eq!(
        legs("{}", 1, None)[0],
        json!({"filters": ["_hevlayer_shard", "Eq", 0]})
    );
}

#[test]
fn untouched_bytes_are_verbatim() {
    let body = r#"{"rank_by":["v","ANN",[0.10,1e-3]], "filters" : ["id","Eq",18446744073709551615], "top_k":10}"#;
    let plan = plan_shards(&valid(body), 2, None).unwrap();
    assert_eq!(
        String::from_utf8(plan.legs[1].clone()).unwrap(),
        r#"{"rank_by":["v","ANN",[0.10,1e-3]], "filters" : ["And",[["id","Eq",18446744073709551615],["_hevlayer_shard","Eq",1]]], "top_k":10}"#
    );
}

#[test]
fn multi_query_every_leg() {
    let out = legs(
        r#"{"queries":[{"rank_by":["id","asc"],"top_k":1},{"filters":["x","Eq",2],"top_k":1}],"rerank_by":["RRF"]}"#,
        2,
        Some(WM),
    );
    assert_eq!(
        out[1]["queries"][0]["filters"],
        json!([
            "And",
            [
                ["_hevlayer_upserted_at", "Lte", 42],
                ["_hevlayer_shard", "Eq", 1]
            ]
        ])
    );
    assert_eq!(
        out[1]["queries"][1]["filters"][1][2],
        json!(["_hevlayer_shard", "Eq", 1])
    );
    assert!(out[0].get("filters").is_none());
}

#[test]
fn attribute_order_keys_are_requested_and_reported() {
    let plan = |body: &str| plan_shards(&valid(body), 2, None).unwrap();
    let p = plan(r#"{"rank_by":["price","desc"],"top_k":3}"#);
    assert_eq!(p.strip, ["price"]);
    let v: Value = serde_json::from_slice(&p.legs[0]).unwrap();
    assert_eq!(v["include_attributes"], json!(["price"]));
    let p = plan(
        r#"{"rank_by":[["a","asc"],["id","desc"],["b","asc"]],"include_attributes":["b", "t"],"top_k":3}"#,
    );
    assert_eq!(p.strip, ["a"]);
    let v: Value = serde_json::from_slice(&p.legs[0]).unwrap();
    assert_eq!(v["include_attributes"], json!(["b", "t", "a"]));
    let p = plan(r#"{"rank_by":["a","asc"],"include_attributes":[ ],"top_k":3}"#);
    let v: Value = serde_json::from_slice(&p.legs[0]).unwrap();
    assert_eq!(v["include_attributes"], json!(["a"]));
    let p = plan(r#"{"rank_by":["a","asc"],"include_attributes":false,"top_k":3}"#);
    let v: Value = serde_json::from_slice(&p.legs[0]).unwrap();
    assert_eq!(v["include_attributes"], json!(["a"]));
    for body in [
        r#"{"rank_by":["a","asc"],"include_attributes":true,"top_k":3}"#,
        r#"{"rank_by":["id","asc"],"top_k":3}"#,
        r#"{"rank_by":["v","ANN",[1]],"top_k":3}"#,
    ] {
        let p = plan(body);
        assert!(p.strip.is_empty(), "{body}");
    }
}

#[test]
fn rejects_what_cannot_scatter() {
    let err = |body: &str, wm: Option<&[u8]>| plan_shards(&valid(body), 2, wm).unwrap_err();
    assert_eq!(err(r#"{"top_k":1,"offset":5}"#, None).status_code(), 422);
    assert_eq!(err(r#"{"queries":[1]}"#, None).status_code(), 422);
    // A repeated key never gets this far: the check refuses the body.
    assert!(Validated::check(br#"{"a":1,"a":2}"#.as_slice(), &Limits::default()).is_err());
    assert_eq!(err("{}", Some(b"[1")).status_code(), 500);
}
