//! Checkpoints end to end: a label pinned to the namespace's latest snapshot (sha, watermark,
//! row count), 409 for a label that exists and for a namespace with no snapshot, 422 for a bad
//! label, newest-first listing with `limit`, `before` and `x-layer-next-cursor`, and a restart
//! over the same data directory keeping them (the local object store, the default).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::{Stack, pause, temp_dir};
use serde_json::{Value, json};

fn json_of(stack: &Stack, m: Method, path: &str, body: Value) -> (u16, Value, Option<String>) {
    let body = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let r = stack.gw(m, path, body);
    let cursor = r
        .headers
        .get("x-layer-next-cursor")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        r.status.as_u16(),
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
        cursor,
    )
}

#[test]
fn checkpoints_pin_snapshots_and_survive_a_restart() {
    let dir = temp_dir("checkpoints");
    let keep = dir.clone();
    let mut stack = Stack::start_with(move |c| c.gateway.data_dir = keep);
    let rows: Vec<Value> = (0..30)
        .map(|i| json!({"id": i, "color": if i % 2 == 0 { "red" } else { "blue" }}))
        .collect();
    stack.write("ck", json!({ "upsert_rows": rows }));
    // No snapshot yet: nothing to pin.
    let (s, v, _) = json_of(
        &stack,
        Method::POST,
        "/v2/namespaces/ck/checkpoints",
        json!({"label": "v1"}),
    );
    assert_eq!((s, v["error"].as_str()), (409, Some("no_snapshot")), "{v}");
    // A snapshot policy makes the automatic writer record one (interval 1 s so the test does
    // not wait the default 5 minutes between writes; the first write does not wait for it).
    let (s, v, _) = json_of(
        &stack,
        Method::PUT,
        "/v2/namespaces/ck/snapshot-policy",
        json!({"facetFields": ["color"], "interval": "1s"}),
    );
    assert_eq!(s, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, h, _) = json_of(
            &stack,
            Method::GET,
            "/v2/namespaces/ck/history",
            Value::Null,
        );
        if h.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no snapshot recorded: {h}");
        pause(Duration::from_millis(100));
    }
    let mut made = Vec::new();
    for label in ["v1", "release/2026-12", "v3"] {
        let (s, v, _) = json_of(
            &stack,
            Method::POST,
            "/v2/namespaces/ck/checkpoints",
            json!({"label": label}),
        );
        assert_eq!(s, 201, "{v}");
        assert_eq!(
            (v["namespace"].as_str(), v["label"].as_str()),
            (Some("ck"), Some(label))
        );
        assert_eq!(v["row_count"], 30, "{v}");
        assert!(v["sha"].is_string() && v["watermark_ms"].is_u64(), "{v}");
        made.push(v);
        pause(Duration::from_millis(5)); // distinct creation milliseconds order the listing
    }
    let (s, v, _) = json_of(
        &stack,
        Method::POST,
        "/v2/namespaces/ck/checkpoints",
        json!({"label": "v1"}),
    );
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("already_exists")),
        "{v}"
    );
    let (s, _, _) = json_of(
        &stack,
        Method::POST,
        "/v2/namespaces/ck/checkpoints",
        json!({"label": "has space"}),
    );
    assert_eq!(s, 422);
    // Newest first, two per page, the cursor in the header and the body.
    let (s, page1, cursor) = json_of(
        &stack,
        Method::GET,
        "/v2/namespaces/ck/checkpoints?limit=2",
        Value::Null,
    );
    assert_eq!(s, 200);
    let labels = |p: &Value| -> Vec<String> {
        p["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["label"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(labels(&page1), ["v3", "release/2026-12"]);
    let cursor = cursor.expect("x-layer-next-cursor");
    assert_eq!(page1["next_cursor"], cursor.as_str());
    let (_, page2, none) = json_of(
        &stack,
        Method::GET,
        &format!("/v2/namespaces/ck/checkpoints?limit=2&before={cursor}"),
        Value::Null,
    );
    assert_eq!(labels(&page2), ["v1"]);
    assert!(none.is_none() && page2["next_cursor"].is_null());
    // A restart over the same data directory keeps them.
    let keep = dir.clone();
    stack.restart_gateway(move |c| c.gateway.data_dir = keep, None);
    let (s, v, _) = json_of(
        &stack,
        Method::GET,
        "/v2/namespaces/ck/checkpoints/release%2F2026-12",
        Value::Null,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, made[1]);
    let (s, _, _) = json_of(
        &stack,
        Method::GET,
        "/v2/namespaces/ck/checkpoints/nope",
        Value::Null,
    );
    assert_eq!(s, 404);
}
