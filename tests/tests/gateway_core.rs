//! Gateway core end to end: passthrough byte-compatibility, write stamping and rejections,
//! upstream failures, auth modes, unknown routes, gzip, async copy, HTTP/2, health, metrics and
//! graceful shutdown. Every test runs its own emulator + gateway on 127.0.0.1:0.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::{Emulator, Http, Stack, UPSTREAM_KEY};
use layer_gateway::config::{AuthMode, KeyConfig, Scope};
use serde_json::{Value, json};

/// Removes every stamp the gateway inserts (`"_hevlayer_upserted_at":N,` as the first key of an
/// object, or a stamped column), so the rest can be compared byte for byte with the original.
fn unstamp(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    let key = "\"_hevlayer_upserted_at\":";
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i]);
        let after = &rest[i + key.len()..];
        let end = if let Some(arr) = after.strip_prefix('[') {
            1 + arr.find(']').expect("stamp column closes") + 1
        } else {
            after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len())
        };
        let after = &after[end..];
        rest = after.strip_prefix(',').unwrap_or(after);
    }
    out.push_str(rest);
    out
}

/// The last request the emulator saw, other than the consistency watcher's metadata polls.
fn last_upstream(stack: &Stack) -> Value {
    stack
        .upstream_requests()
        .into_iter()
        .rev()
        .find(|r| {
            // Not the watcher's metadata polls, nor the cache's write-path read-back (a strong
            // read by id the gateway makes after a write is acknowledged).
            let poll = r["method"] == "GET"
                && r["path"].as_str().is_some_and(|p| p.ends_with("/metadata"));
            let read_back = r["body"]
                .as_str()
                .is_some_and(|b| b.starts_with(r#"{"filters":["id","In","#));
            !(poll || read_back)
        })
        .expect("the emulator saw a request")
}

#[test]
fn writes_are_stamped_and_otherwise_byte_identical() {
    let stack = Stack::start();
    let body = r#"{"upsert_rows":[{"id":18446744073709551615,"vector":"zczMPc3MTD6amZk+","title":"caf\u00e9 \"q\"","n":1.50}],"distance_metric":"cosine_distance"}"#;
    let before = layer_gateway::core::http::now_ms();
    let r = stack.gw(Method::POST, "/v2/namespaces/stamp", body);
    assert_eq!(r.status, 200, "{}", r.text());
    let up = last_upstream(&stack);
    let sent = up["body"].as_str().unwrap();
    assert_eq!(
        unstamp(sent),
        body,
        "everything but the stamp is byte-identical"
    );
    let stamped: Value = serde_json::from_str(sent).unwrap();
    let ts = stamped["upsert_rows"][0]["_hevlayer_upserted_at"]
        .as_u64()
        .unwrap();
    assert!(ts >= before && ts <= layer_gateway::core::http::now_ms());

    // Columns get a full column; patches and patch_by_filter are stamped; deletes are not.
    let body = r#"{"upsert_columns":{"id":[1,2,3],"c":["a","b","c"]},"patch_rows":[{"id":18446744073709551615,"n":2}],"patch_by_filter":{"filters":["c","Eq","a"],"patch":{"c":"z"}},"deletes":[9]}"#;
    let r = stack.gw(Method::POST, "/v2/namespaces/stamp", body);
    assert_eq!(r.status, 200, "{}", r.text());
    let sent = last_upstream(&stack)["body"].as_str().unwrap().to_string();
    assert_eq!(unstamp(&sent), body);
    let v: Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(
        v["upsert_columns"]["_hevlayer_upserted_at"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(v["patch_rows"][0]["_hevlayer_upserted_at"].is_u64());
    assert!(v["patch_by_filter"]["patch"]["_hevlayer_upserted_at"].is_u64());

    // Schema-only and delete-only writes pass unchanged.
    for body in [
        r#"{"schema":{"title":{"type":"string","full_text_search":true}}}"#,
        r#"{"deletes":[1]}"#,
    ] {
        assert_eq!(
            stack.gw(Method::POST, "/v2/namespaces/stamp", body).status,
            200
        );
        assert_eq!(last_upstream(&stack)["body"], body);
    }
}

#[test]
fn reserved_attributes_and_bad_bodies_never_reach_upstream() {
    let stack = Stack::start();
    stack.clear_requests();
    let cases = [
        r#"{"upsert_rows":[{"id":1,"_hevlayer_upserted_at":5}]}"#,
        r#"{"upsert_columns":{"id":[1],"_hevlayer_shard":[0]}}"#,
        r#"{"patch_rows":[{"id":1,"_hevlayer_x":1}]}"#,
        r#"{"patch_by_filter":{"filters":["id","Eq",1],"patch":{"_hevlayer_upserted_at":1}}}"#,
        r#"{"schema":{"_hevlayer_upserted_at":"int"}}"#,
        r#"{"unknown_op":true}"#,
        r#"{"upsert_rows":[{"id":1}],"upsert_rows":[{"id":2}]}"#,
        r#"{"upsert_rows":[{"id":1,"m":{"a":1,"a":2}}]}"#,
    ];
    for body in cases {
        let r = stack.gw(Method::POST, "/v2/namespaces/reserved", body);
        assert_eq!(r.status, 422, "{body} -> {}", r.text());
        assert_eq!(r.json()["error"], "validation_error");
        assert!(r.json()["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let r = stack.gw(
        Method::POST,
        "/v1/namespaces/reserved/schema",
        r#"{"_hevlayer_upserted_at":"int"}"#,
    );
    assert_eq!(r.status, 422);
    assert!(
        stack.upstream_requests().is_empty(),
        "rejected bodies are not forwarded"
    );
    // Bodies upstream rejects by itself (bad JSON, wrong shapes) are forwarded untouched, so
    // the caller gets upstream's own error, exactly as talking to it directly.
    for body in [
        r#"{"upsert_rows":[{"id":1}]} trailing"#,
        r#"{"upsert_rows":{"id":1}}"#,
        "[1,2]",
    ] {
        let via = stack.gw(Method::POST, "/v2/namespaces/reserved", body);
        let direct = stack.direct(Method::POST, "/v2/namespaces/reserved", body);
        assert_eq!(
            (via.status, via.text()),
            (direct.status, direct.text()),
            "{body}"
        );
        assert!(
            via.status == 400 || via.status == 422,
            "{body} -> {}",
            via.status
        );
    }
    // The schema route forwards a clean map byte for byte.
    let body = r#"{"title":{"type":"string"}}"#;
    assert_eq!(
        stack
            .gw(Method::POST, "/v1/namespaces/reserved/schema", body)
            .status,
        200
    );
    assert_eq!(last_upstream(&stack)["body"], body);
}

#[test]
fn oversize_bodies_get_413() {
    let stack = Stack::start_with(|c| c.gateway.max_body_bytes = 1024);
    let big = format!(
        r#"{{"upsert_rows":[{{"id":1,"t":"{}"}}]}}"#,
        "x".repeat(4096)
    );
    let r = stack.gw(Method::POST, "/v2/namespaces/big", big);
    assert_eq!(r.status, 413, "{}", r.text());
}

#[test]
fn query_passthrough_matches_direct_and_keeps_bytes() {
    let stack = Stack::start();
    let w = r#"{"upsert_rows":[{"id":1,"vector":[0.1,0.2]},{"id":2,"vector":[0.3,0.1]}],"distance_metric":"euclidean_squared"}"#;
    assert_eq!(stack.gw(Method::POST, "/v2/namespaces/q", w).status, 200);
    let q = r#"{"rank_by":["vector","ANN",[0.1,0.2]],"top_k":2,"consistency":{"level":"strong"}}"#;
    stack.clear_requests();
    let via = stack.gw(
        Method::POST,
        "/v2/namespaces/q/query?stainless_overload=x",
        q,
    );
    assert_eq!(via.status, 200);
    let up = last_upstream(&stack);
    assert_eq!(up["body"], q, "query body forwarded byte for byte");
    assert_eq!(up["query"], "stainless_overload=x");
    assert_eq!(
        up["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    assert!(
        up["headers"]["traceparent"]
            .as_str()
            .is_some_and(|t| t.starts_with("00-"))
    );
    let direct = stack.direct(Method::POST, "/v2/namespaces/q/query", q);
    assert_eq!(via.json()["rows"], direct.json()["rows"]);
    // Upstream errors are relayed verbatim: status, envelope and content type.
    let via = stack.gw(Method::POST, "/v2/namespaces/missing/query", q);
    let direct = stack.direct(Method::POST, "/v2/namespaces/missing/query", q);
    assert_eq!((via.status, via.text()), (direct.status, direct.text()));
    assert_eq!(via.status, 404);
    // Plain-text URL errors too.
    let via = stack.gw(Method::GET, "/v1/namespaces/bad!name/schema", Bytes::new());
    assert_eq!(via.status, 400);
    assert!(
        via.text()
            .starts_with("Invalid URL: Namespace contains invalid characters")
    );
}

#[test]
fn injected_faults_are_relayed_with_their_headers() {
    let stack = Stack::start();
    let rule = json!({"rules": [{"route": "metadata", "status": 503, "count": 1, "body": {"status": "error", "error": "💁 try later"}, "headers": {"retry-after-ms": "250"}}]});
    assert_eq!(
        stack
            .direct(Method::POST, "/_emu/faults", rule.to_string())
            .status,
        200
    );
    let r = stack.gw(Method::GET, "/v2/namespaces/x/metadata", Bytes::new());
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "💁 try later");
    assert_eq!(r.headers["retry-after-ms"], "250");
}

#[test]
fn unreachable_upstream_is_502() {
    let stack = Stack::start_with(|c| c.vector_store.endpoint.url = "http://127.0.0.1:9".into());
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/x/query",
        r#"{"rank_by":["id","asc"],"top_k":1}"#,
    );
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "upstream_error");
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/x",
        r#"{"upsert_rows":[{"id":1}]}"#,
    );
    assert_eq!(r.status, 502);
}

#[test]
fn unknown_routes_are_404_and_never_forwarded() {
    let stack = Stack::start();
    stack.clear_requests();
    for (m, p) in [
        (Method::GET, "/v2/namespaces/a/nope"),
        (Method::PUT, "/v2/namespaces/a"),
        (Method::GET, "/_emu/requests"),
        (Method::GET, "/"),
    ] {
        let r = stack.gw(m, p, Bytes::new());
        assert_eq!(r.status, 404, "{p}");
        assert_eq!(r.json()["error"], "not_found");
    }
    assert!(stack.upstream_requests().is_empty());
}

#[test]
fn derive_from_store_auth() {
    let stack = Stack::start();
    let r = stack.gw_with(
        Method::GET,
        "/v1/namespaces",
        &[("authorization", "Bearer wrong")],
        Bytes::new(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "unauthorized");
    let r = stack.http.send(
        Method::GET,
        &format!("{}/v1/namespaces", stack.gateway_url),
        &[],
        Bytes::new(),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        stack.gw(Method::GET, "/v1/namespaces", Bytes::new()).status,
        200
    );
}

#[test]
fn keys_mode_scopes_and_grants() {
    let stack = Stack::start_with(|c| {
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = vec![
            KeyConfig {
                name: "shop-ro".into(),
                scopes: vec![Scope::Read],
                namespaces: vec!["shop-*".into()],
                token: Some("ro".into()),
                token_env: None,
            },
            KeyConfig {
                name: "rw".into(),
                scopes: vec![Scope::Read, Scope::Write],
                namespaces: vec![],
                token: Some("rw".into()),
                token_env: None,
            },
        ];
    });
    let as_key = |k: &str, m: Method, p: &str, b: &'static str| {
        stack.gw_with(m, p, &[("authorization", &format!("Bearer {k}"))], b)
    };
    assert_eq!(
        as_key(
            "rw",
            Method::POST,
            "/v2/namespaces/shop-1",
            r#"{"upsert_rows":[{"id":1}]}"#
        )
        .status,
        200
    );
    assert_eq!(
        as_key(
            "rw",
            Method::POST,
            "/v2/namespaces/orders",
            r#"{"upsert_rows":[{"id":1}]}"#
        )
        .status,
        200
    );
    // The configured key is replaced by the upstream credential on the way out.
    assert_eq!(
        last_upstream(&stack)["headers"]["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    let r = as_key(
        "ro",
        Method::POST,
        "/v2/namespaces/shop-1",
        r#"{"upsert_rows":[{"id":2}]}"#,
    );
    assert_eq!(
        (
            r.status.as_u16(),
            r.json()["error"].clone(),
            r.json()["required_scope"].clone()
        ),
        (403, json!("insufficient API key scope"), json!("write"))
    );
    let r = as_key(
        "ro",
        Method::POST,
        "/v2/namespaces/orders/query",
        r#"{"rank_by":["id","asc"],"top_k":1}"#,
    );
    assert_eq!(
        (
            r.status.as_u16(),
            r.json()["error"].clone(),
            r.json()["namespace"].clone()
        ),
        (403, json!("namespace not in key grant"), json!("orders"))
    );
    assert_eq!(
        as_key(
            "ro",
            Method::POST,
            "/v2/namespaces/shop-1/query",
            r#"{"rank_by":["id","asc"],"top_k":1}"#
        )
        .status,
        200
    );
    // A namespace-limited key only sees its namespaces in the listing.
    let ids: Vec<Value> = as_key("ro", Method::GET, "/v1/namespaces", "").json()["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("shop-1")]);
    // The same with `accept-encoding: gzip`, as httpx-based clients send it.
    let gz = stack.gw_with(
        Method::GET,
        "/v1/namespaces",
        &[("authorization", "Bearer ro"), ("accept-encoding", "gzip")],
        "",
    );
    assert_eq!(gz.status, 200);
    let body = if gz
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip")
    {
        let mut out = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(gz.body.as_ref()),
            &mut out,
        )
        .unwrap();
        out
    } else {
        gz.body.to_vec()
    };
    let page: Value = serde_json::from_slice(&body).unwrap();
    let ids: Vec<&Value> = page["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["id"])
        .collect();
    assert_eq!(ids, vec![&json!("shop-1")]);
    assert_eq!(
        as_key("upstream", Method::GET, "/v1/namespaces", "").status,
        401
    );
    assert_eq!(
        stack.gw(Method::GET, "/v1/namespaces", "").status,
        401,
        "the store key is not a bearer in keys mode"
    );
}

#[test]
fn open_mode_needs_no_bearer() {
    let stack = Stack::start_with(|c| c.vector_store.inbound_auth.mode = AuthMode::Open);
    let r = stack.http.send(
        Method::GET,
        &format!("{}/v1/namespaces", stack.gateway_url),
        &[],
        Bytes::new(),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn gzip_bodies() {
    let stack = Stack::start();
    // Large enough that the gateway compresses the query answer it builds.
    let text = format!("zipped {}", "z".repeat(2000));
    let body = format!(r#"{{"upsert_rows":[{{"id":1,"t":"{text}"}}]}}"#);
    let body = body.as_bytes();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(body).unwrap();
    let gz = enc.finish().unwrap();
    let r = stack.gw_with(
        Method::POST,
        "/v2/namespaces/gz",
        &[("content-encoding", "gzip")],
        gz.clone(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let up = last_upstream(&stack);
    assert_eq!(
        unstamp(up["body"].as_str().unwrap()),
        std::str::from_utf8(body).unwrap()
    );
    assert!(
        up["content_encoding"].is_null(),
        "the stamped body is forwarded uncompressed"
    );
    // A gzip query is accepted; gzip responses come back when asked for.
    let q = br#"{"rank_by":["id","asc"],"top_k":1,"include_attributes":["t"]}"#;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(q).unwrap();
    let r = stack.gw_with(
        Method::POST,
        "/v2/namespaces/gz/query",
        &[("content-encoding", "gzip"), ("accept-encoding", "gzip")],
        enc.finish().unwrap(),
    );
    assert_eq!(r.status, 200);
    // Stable reads parse the query, so it is forwarded decoded (and planned: eventual read).
    let up = last_upstream(&stack);
    assert!(up["content_encoding"].is_null());
    let sent: Value = serde_json::from_str(up["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["include_attributes"], json!(["t"]));
    assert_eq!(sent["consistency"], json!({"level": "eventual"}));
    assert_eq!(r.headers["content-encoding"], "gzip");
    let mut plain = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(r.body.as_ref()),
        &mut plain,
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&plain).unwrap()["rows"][0]["t"],
        text.as_str()
    );
}

#[test]
fn async_copy_keeps_location_relative_and_polls_through_the_gateway() {
    let stack = Stack::start();
    assert_eq!(
        stack
            .gw(
                Method::POST,
                "/v2/namespaces/src",
                r#"{"upsert_rows":[{"id":1},{"id":2}]}"#
            )
            .status,
        200
    );
    let r = stack.gw_with(
        Method::POST,
        "/v2/namespaces/dst?stainless_overload=copyFrom",
        &[("prefer", "respond-async")],
        r#"{"copy_from_namespace":{"source_namespace":"src"}}"#,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.headers["preference-applied"], "respond-async");
    let loc = r.headers["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("/v1/namespaces/dst/operations/"), "{loc}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p = stack.gw(Method::GET, &loc, Bytes::new());
        assert_eq!(p.status, 200);
        if p.json()["status"] == "finished" {
            assert_eq!(p.json()["result"]["success"]["rows_affected"], 2);
            break;
        }
        assert!(Instant::now() < deadline, "copy never finished");
        layer_e2e::pause(Duration::from_millis(50));
    }
}

#[test]
fn http2_clients_are_served() {
    let stack = Stack::start();
    let h2 = Http::new(true);
    let r = h2.send(
        Method::GET,
        &format!("{}/v1/namespaces", stack.gateway_url),
        &[("authorization", &format!("Bearer {UPSTREAM_KEY}"))],
        Bytes::new(),
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["namespaces"].is_array());
}

#[test]
fn health_and_metrics() {
    let stack = Stack::start();
    stack.gw(
        Method::POST,
        "/v2/namespaces/m",
        r#"{"upsert_rows":[{"id":1}]}"#,
    );
    stack.gw(
        Method::POST,
        "/v2/namespaces/m/query",
        r#"{"rank_by":["id","asc"],"top_k":1}"#,
    );
    let h = stack.http.send(
        Method::GET,
        &format!("{}/health", stack.gateway_url),
        &[],
        Bytes::new(),
    );
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
    assert_eq!(h.json()["shards"], 2);
    let m = stack
        .http
        .send(
            Method::GET,
            &format!("{}/metrics", stack.gateway_url),
            &[],
            Bytes::new(),
        )
        .text();
    assert!(
        m.contains("layer_query_duration_seconds_count{namespace=\"m\",status=\"200\"}"),
        "{m}"
    );
    assert!(m.contains("layer_requests_total{route=\"write\",status=\"200\"}"));
    assert!(m.contains("layer_upstream_duration_seconds_bucket{route=\"query\",le=\"+Inf\"}"));
    assert!(m.contains("# TYPE layer_in_flight_requests gauge"));
}

#[test]
fn shutdown_drains_in_flight_requests() {
    let mut stack = Stack::start();
    stack.gw(
        Method::POST,
        "/v2/namespaces/slow",
        r#"{"upsert_rows":[{"id":1}]}"#,
    );
    let rule = json!({"rules": [{"route": "query", "delay_ms": 1000}]});
    stack.direct(Method::POST, "/_emu/faults", rule.to_string());
    let url = format!("{}/v2/namespaces/slow/query", stack.gateway_url);
    let req = http::Request::post(url)
        .header("authorization", format!("Bearer {UPSTREAM_KEY}"))
        .body(http_body_util::Full::new(Bytes::from_static(
            br#"{"rank_by":["id","asc"],"top_k":1}"#,
        )))
        .unwrap();
    let handle = stack.http.spawn(stack.http.client().request(req));
    // Stop once upstream holds the query (1 s); its 200 then shows shutdown drained it.
    let in_flight = |r: &Value| r["path"] == "/v2/namespaces/slow/query";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stack.upstream_requests().iter().any(in_flight) {
        assert!(Instant::now() < deadline, "never reached upstream");
        layer_e2e::pause(Duration::from_millis(5));
    }
    stack.stop_gateway();
    let resp = stack
        .http
        .block_on(handle)
        .unwrap()
        .expect("in-flight request completed");
    assert_eq!(resp.status(), 200);
    // After shutdown nothing accepts.
    let gone = stack.http.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(stack.gateway_url.trim_start_matches("http://")),
        )
        .await
    });
    assert!(matches!(gone, Ok(Err(_))), "listener closed after shutdown");
}

#[test]
fn emulator_alone_serves_the_indexer_knobs() {
    let emu = Emulator::start();
    let http = Http::default();
    let auth = format!("Bearer {UPSTREAM_KEY}");
    let h = [("authorization", auth.as_str())];
    let url = |p: &str| format!("{}{p}", emu.url());
    assert_eq!(
        http.send(
            Method::POST,
            &url("/_emu/indexer"),
            &h,
            r#"{"paused":true}"#
        )
        .status,
        200
    );
    http.send(
        Method::POST,
        &url("/v2/namespaces/k"),
        &h,
        r#"{"upsert_rows":[{"id":1},{"id":2}]}"#,
    );
    let meta = http
        .send(Method::GET, &url("/v2/namespaces/k/metadata"), &h, "")
        .json();
    assert_eq!(meta["index"]["status"], "updating");
    assert_eq!(meta["index"]["unindexed_rows"], 2);
    assert_eq!(meta["approx_row_count"], 0);
    http.send(Method::POST, &url("/_emu/indexer/flush"), &h, "{}");
    let meta = http
        .send(Method::GET, &url("/v2/namespaces/k/metadata"), &h, "")
        .json();
    assert_eq!(meta["index"], json!({"status": "up-to-date"}));
    assert_eq!(meta["approx_row_count"], 2);
}

#[test]
fn head_is_served_on_every_get_route_without_a_body() {
    // The `read` scope covers GET and HEAD: HEAD runs the GET (upstream sees a GET) and answers
    // its status, headers and length without a body. HEAD on a route that has no GET is a 404.
    let stack = Stack::start();
    stack.write("headns", json!({"upsert_rows": [{"id": "d1", "t": "x"}]}));
    for path in [
        "/v2/namespaces/headns/metadata",
        "/v2/namespaces/headns/documents/d1",
        "/v1/namespaces",
        "/health",
    ] {
        let get = stack.gw(Method::GET, path, Bytes::new());
        assert_eq!(get.status, 200, "GET {path}: {}", get.text());
        let head = stack.gw(Method::HEAD, path, Bytes::new());
        assert_eq!(head.status, 200, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            head.headers.get("content-type"),
            get.headers.get("content-type"),
            "HEAD {path}"
        );
    }
    let missing = stack.gw(
        Method::HEAD,
        "/v2/namespaces/headns/documents/nope",
        Bytes::new(),
    );
    assert_eq!(missing.status, 404);
    let no_get = stack.gw(Method::HEAD, "/v2/namespaces/headns/query", Bytes::new());
    assert_eq!(no_get.status, 404);
    // Unauthenticated HEAD on a read route is refused like the GET.
    let anon = stack.http.send(
        Method::HEAD,
        &format!("{}/v2/namespaces/headns/metadata", stack.gateway_url),
        &[],
        Bytes::new(),
    );
    assert_eq!(anon.status, 401);
    // Upstream saw GETs only.
    assert!(
        stack
            .upstream_requests()
            .iter()
            .all(|r| r["method"] != "HEAD"),
        "HEAD was forwarded"
    );
}

#[test]
fn path_tricks_never_reach_upstream_or_cross_a_grant() {
    // A key limited to `shop-*`: encoded slashes, dot segments, NULs, overlong UTF-8, spaces and
    // pluses in the namespace segment are refused with upstream's own plain-text 400, before auth
    // and before anything is forwarded; doubled slashes and other casings match no route (404).
    let stack = Stack::start_with(|c| {
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = vec![KeyConfig {
            name: "shop".into(),
            scopes: vec![Scope::Read, Scope::Write],
            namespaces: vec!["shop-*".into()],
            token: Some("shop-token".into()),
            token_env: None,
        }];
    });
    let before = stack.upstream_requests().len();
    let auth = [("authorization", "Bearer shop-token")];
    let query = r#"{"rank_by":["id","asc"],"top_k":1}"#;
    for ns in [
        "shop-%2F..%2Forders",
        "shop-%2f..%2forders",
        "..",
        ".",
        "shop-a%00",
        "shop-%C0%AF",
        "shop-a+b",
        "shop-a%20b",
        "shop-caf%C3%A9",
    ] {
        for (m, path, body) in [
            (Method::POST, format!("/v2/namespaces/{ns}/query"), query),
            (
                Method::POST,
                format!("/v2/namespaces/{ns}"),
                r#"{"upsert_rows":[{"id":1}]}"#,
            ),
            (Method::GET, format!("/v2/namespaces/{ns}/metadata"), ""),
            (Method::GET, format!("/v2/namespaces/{ns}/documents/x"), ""),
        ] {
            let r = stack.gw_with(m.clone(), &path, &auth, body);
            assert_eq!(r.status, 400, "{m} {path}: {}", r.text());
            assert!(
                r.text().starts_with("Invalid URL: Namespace"),
                "{m} {path}: {}",
                r.text()
            );
            assert!(
                r.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain"),
                "{m} {path}"
            );
        }
    }
    for path in [
        "//v2/namespaces/shop-1/query",
        "/v2//namespaces/shop-1/query",
        "/v2/namespaces//query",
        "/V2/namespaces/shop-1/query",
        "/v2/Namespaces/shop-1/query",
        "/v2/namespaces/shop-1/query/",
        "/v2/namespaces/shop-1/./query",
    ] {
        let r = stack.gw_with(Method::POST, path, &auth, query);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    // The grant still works for a real name, and nothing above reached upstream.
    assert_eq!(
        stack
            .gw_with(Method::POST, "/v2/namespaces/orders/query", &auth, query)
            .status,
        403
    );
    assert_eq!(
        stack.upstream_requests().len(),
        before,
        "a refused request was forwarded"
    );
}
