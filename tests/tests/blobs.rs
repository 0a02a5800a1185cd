//! Blobs end to end: a 10 MiB binary body round-trips byte-identical (object store, then the
//! cache tier with `?warm=true`), bad and unknown hashes, and the `blobs` step of
//! `hint_cache_warm` finding the refs documents hold and copying them into the cache tier within
//! its budget.

use bytes::Bytes;
use http::Method;
use layer_e2e::Stack;
use serde_json::{Value, json};

fn put(stack: &Stack, ns: &str, body: Vec<u8>, warm: bool) -> Value {
    let path = format!(
        "/v1/namespaces/{ns}/blobs{}",
        if warm { "?warm=true" } else { "" }
    );
    let r = stack.gw_with(
        Method::PUT,
        &path,
        &[("content-type", "application/octet-stream")],
        Bytes::from(body),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn blobs_round_trip_and_warm() {
    let stack = Stack::start();
    // 10 MiB of every byte value.
    let big: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let put1 = put(&stack, "bl", big.clone(), false);
    let sha = put1["sha256"].as_str().unwrap().to_string();
    assert_eq!(put1["size"], big.len());
    assert_eq!(put1["ref"], format!("sha256:{sha}"));
    // Idempotent: the same bytes, the same answer.
    assert_eq!(
        put(&stack, "bl", big.clone(), false)["sha256"],
        sha.as_str()
    );
    let r = stack.gw(
        Method::GET,
        &format!("/v1/namespaces/bl/blobs/{sha}"),
        Bytes::new(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "application/octet-stream");
    assert_eq!(r.headers["x-layer-cache"], "miss");
    assert!(r.body == big, "the bytes differ");
    // Warmed: served from the cache tier.
    let small = b"\x00\x01 small blob \xff".to_vec();
    let s = put(&stack, "bl", small.clone(), true);
    assert_eq!(s["warmed"], true);
    let r = stack.gw(
        Method::GET,
        &format!("/v1/namespaces/bl/blobs/{}", s["sha256"].as_str().unwrap()),
        Bytes::new(),
    );
    assert_eq!(
        (
            r.headers["x-layer-cache"].to_str().unwrap(),
            r.body.to_vec()
        ),
        ("hit", small)
    );
    // A malformed hash is 422; an unknown one 404; another namespace does not see it.
    assert_eq!(
        stack
            .gw(Method::GET, "/v1/namespaces/bl/blobs/xyz", Bytes::new())
            .status,
        422
    );
    let unknown = "0".repeat(64);
    assert_eq!(
        stack
            .gw(
                Method::GET,
                &format!("/v1/namespaces/bl/blobs/{unknown}"),
                Bytes::new()
            )
            .status,
        404
    );
    assert_eq!(
        stack
            .gw(
                Method::GET,
                &format!("/v1/namespaces/other/blobs/{sha}"),
                Bytes::new()
            )
            .status,
        404
    );

    // Documents holding refs; the warm step copies the blobs they name into the cache tier.
    let a = put(&stack, "docs", b"alpha".to_vec(), false);
    let b = put(&stack, "docs", b"bravo-bravo".to_vec(), false);
    let missing = format!("sha256:{}", "1".repeat(64));
    stack.write(
        "docs",
        json!({"upsert_rows": [
            {"id": 1, "image": a["ref"], "title": "x"},
            {"id": 2, "images": [b["ref"], a["ref"]]},
            {"id": 3, "image": missing},
            {"id": 4, "image": "sha256:not-a-hash"},
        ]}),
    );
    let q = "turbopuffer=false&documents=false&snapshots=false&blobs=true";
    let r = stack.gw(
        Method::GET,
        &format!("/v1/namespaces/docs/hint_cache_warm?{q}"),
        Bytes::new(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let step = r.json()["blobs"].clone();
    assert_eq!(step["documents_scanned"], 4, "{step}");
    assert_eq!(step["refs_seen"], 3, "{step}");
    assert_eq!(
        (
            step["objects"].clone(),
            step["missing"].clone(),
            step["invalid_refs"].clone()
        ),
        (json!(2), json!(1), json!(1)),
        "{step}"
    );
    assert_eq!(step["bytes"], 16, "{step}");
    assert_eq!(step["budget_exhausted"], false);
    let r = stack.gw(
        Method::GET,
        &format!(
            "/v1/namespaces/docs/blobs/{}",
            a["sha256"].as_str().unwrap()
        ),
        Bytes::new(),
    );
    assert_eq!(r.headers["x-layer-cache"], "hit");
    // A budget smaller than a blob stops the copy and says so.
    let c = put(&stack, "docs2", b"0123456789ABCDEF".to_vec(), false);
    stack.write(
        "docs2",
        json!({"upsert_rows": [{"id": 1, "image": c["ref"]}]}),
    );
    let r = stack.gw(
        Method::GET,
        &format!("/v1/namespaces/docs2/hint_cache_warm?{q}&blob_budget_bytes=10"),
        Bytes::new(),
    );
    let step = r.json()["blobs"].clone();
    assert_eq!(
        (step["budget_exhausted"].clone(), step["objects"].clone()),
        (json!(true), json!(0)),
        "{step}"
    );
    assert_eq!(step["status"], "budget_exhausted");
}
