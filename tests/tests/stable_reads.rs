//! Stable reads end to end: the watcher, the watermark predicate, the 429 retry, the metadata
//! `layer` block and the enriched listing, driven with the emulator's indexer and fault knobs.
//! The gateway runs at the documented consistency defaults (`Config::default()`) unless a test
//! says why it changes a knob; `watermark_defaults.rs` covers the watermark at the defaults.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::{Stack, pause};
use layer_gateway::config::{IndexConfig, IndexConsistency};
use serde_json::{Value, json};

fn metadata(stack: &Stack, ns: &str) -> Value {
    let r = stack.gw(
        Method::GET,
        &format!("/v2/namespaces/{ns}/metadata"),
        Bytes::new(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits until the gateway's watcher reports `is_stable == want`.
fn wait_stable(stack: &Stack, ns: &str, want: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = metadata(stack, ns);
        if m["layer"]["is_stable"] == json!(want) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "watcher never reported is_stable={want}: {m}"
        );
        pause(Duration::from_millis(20));
    }
}

fn emu(stack: &Stack, path: &str, body: Value) {
    let r = stack.direct(Method::POST, path, body.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
}

fn query_ids(stack: &Stack, ns: &str, body: &str) -> (Vec<Value>, Option<u64>) {
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let wm = r
        .headers
        .get("x-layer-stable-as-of")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (
        r.json()["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].clone())
            .collect(),
        wm,
    )
}

/// The raw query requests the emulator saw, oldest first: watcher polls excluded, and so are the
/// document cache's write-path read-backs (strong reads by id the gateway makes after a write).
fn raw_queries(stack: &Stack) -> Vec<Value> {
    stack
        .upstream_requests()
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/query")))
        .filter(|r| {
            !r["body"]
                .as_str()
                .is_some_and(|b| b.starts_with(r#"{"filters":["id","In","#))
        })
        .collect()
}

fn upstream_queries(stack: &Stack) -> Vec<Value> {
    raw_queries(stack)
        .into_iter()
        .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
        .collect()
}

/// Writes `first`, waits until the watcher reports the namespace stable, pauses its indexer and
/// writes `second`: the namespace is then updating with `second` above the watermark.
fn stable_then_behind(stack: &Stack, ns: &str, first: &str, second: &str) {
    stack.write(ns, first);
    wait_stable(stack, ns, true);
    emu(
        stack,
        "/_emu/indexer",
        json!({"namespace": ns, "paused": true}),
    );
    stack.write(ns, second);
}

const ALL: &str = r#"{"rank_by":["id","asc"],"top_k":100}"#;

#[test]
fn updating_namespaces_are_cut_at_the_watermark() {
    let stack = Stack::start();
    let ns = "stable-cut";
    assert_eq!(
        stack
            .gw(
                Method::POST,
                &format!("/v2/namespaces/{ns}"),
                r#"{"upsert_rows":[{"id":1},{"id":2}]}"#
            )
            .status,
        200
    );
    let m = wait_stable(&stack, ns, true);
    let wm1 = m["layer"]["stable_as_of"]
        .as_u64()
        .expect("a watermark once stable");
    assert_eq!(m["id"], ns);

    // Writes while the indexer is paused are hidden until it catches up.
    emu(
        &stack,
        "/_emu/indexer",
        json!({"namespace": ns, "paused": true}),
    );
    assert_eq!(
        stack
            .gw(
                Method::POST,
                &format!("/v2/namespaces/{ns}"),
                r#"{"upsert_rows":[{"id":3}],"deletes":[]}"#
            )
            .status,
        200
    );
    stack.clear_requests();
    let (ids, wm) = query_ids(&stack, ns, ALL);
    assert_eq!(
        ids,
        vec![json!(1), json!(2)],
        "the unindexed row is above the cut"
    );
    let wm = wm.expect("x-layer-stable-as-of once a watermark exists");
    assert!(wm >= wm1);
    let sent = upstream_queries(&stack).pop().unwrap();
    assert_eq!(sent["consistency"], json!({"level": "eventual"}));
    assert_eq!(sent["filters"], json!(["_hevlayer_upserted_at", "Lte", wm]));
    // Without the gateway's predicate the emulator would return it: the cut is doing the work.
    let direct = stack
        .direct(Method::POST, &format!("/v2/namespaces/{ns}/query"), ALL)
        .json();
    assert_eq!(direct["rows"].as_array().unwrap().len(), 3);
    // The watcher keeps seeing "updating" while paused.
    assert_eq!(metadata(&stack, ns)["index"]["status"], "updating");

    // Caller filters are ANDed with the cut, not replaced.
    stack.clear_requests();
    let (ids, _) = query_ids(
        &stack,
        ns,
        r#"{"rank_by":["id","asc"],"top_k":10,"filters":["id","Gte",2]}"#,
    );
    assert_eq!(ids, vec![json!(2)]);
    assert_eq!(
        upstream_queries(&stack).pop().unwrap()["filters"],
        json!([
            "And",
            [["id", "Gte", 2], ["_hevlayer_upserted_at", "Lte", wm]]
        ])
    );

    // A caller asking for strong consistency reads its own writes, untouched.
    stack.clear_requests();
    let strong = r#"{"rank_by":["id","asc"],"top_k":100,"consistency":{"level":"strong"}}"#;
    let (ids, _) = query_ids(&stack, ns, strong);
    assert_eq!(ids.len(), 3);
    assert_eq!(raw_queries(&stack).pop().unwrap()["body"], strong);

    // Flush: the watcher sees up-to-date, the watermark moves past the write, no predicate.
    emu(&stack, "/_emu/indexer/flush", json!({"namespace": ns}));
    let m = wait_stable(&stack, ns, true);
    assert!(
        m["layer"]["stable_as_of"].as_u64().unwrap() > wm,
        "the watermark advanced"
    );
    stack.clear_requests();
    let (ids, _) = query_ids(&stack, ns, ALL);
    assert_eq!(ids.len(), 3);
    let sent = upstream_queries(&stack).pop().unwrap();
    assert!(
        sent.get("filters").is_none(),
        "stable namespaces get no predicate: {sent}"
    );
    assert_eq!(sent["consistency"], json!({"level": "eventual"}));
}

#[test]
fn a_write_to_a_stable_namespace_is_cut_immediately() {
    // The stable tier polls once a minute (the default): the write itself must flip the
    // namespace to updating.
    let stack = Stack::start();
    let ns = "stable-write-race";
    stable_then_behind(
        &stack,
        ns,
        r#"{"upsert_rows":[{"id":1}]}"#,
        r#"{"upsert_rows":[{"id":2}]}"#,
    );
    let (ids, _) = query_ids(&stack, ns, ALL);
    assert_eq!(
        ids,
        vec![json!(1)],
        "no poll needed: the write marked the namespace updating"
    );
}

#[test]
fn the_watermark_never_moves_backwards() {
    // At the defaults (1 s fast tier): writes keep coming while the test reads, sampling the
    // watermark every 60 ms (a poll interval, not a wait for anything), until it has advanced
    // three times; every sample is at or after the one before. watermark_defaults.rs also checks
    // that the watermark never goes back between two stable cuts of 12 namespaces.
    let stack = Stack::start();
    let ns = "stable-monotonic";
    stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}"),
        r#"{"upsert_rows":[{"id":1}]}"#,
    );
    wait_stable(&stack, ns, true);
    let mut last = 0;
    let mut advanced = 0;
    let mut samples = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while advanced < 3 || samples < 24 {
        if samples % 3 == 0 {
            stack.gw(
                Method::POST,
                &format!("/v2/namespaces/{ns}"),
                format!(r#"{{"upsert_rows":[{{"id":{}}}]}}"#, 100 + samples),
            );
        }
        let (_, wm) = query_ids(&stack, ns, ALL);
        let wm = wm.unwrap();
        assert!(wm >= last, "watermark went backwards: {wm} < {last}");
        advanced += usize::from(wm > last && last > 0);
        last = wm;
        samples += 1;
        assert!(
            std::time::Instant::now() < deadline,
            "the watermark advanced {advanced} times in {samples} samples while writes were indexed"
        );
        pause(Duration::from_millis(60));
    }
}

#[test]
fn every_leg_of_a_multi_query_shares_one_cut() {
    let stack = Stack::start();
    let ns = "stable-multi";
    stable_then_behind(
        &stack,
        ns,
        r#"{"upsert_rows":[{"id":1,"t":"a"},{"id":2,"t":"b"}]}"#,
        r#"{"upsert_rows":[{"id":3,"t":"c"}]}"#,
    );
    stack.clear_requests();
    let body = r#"{"queries":[{"rank_by":["id","asc"],"top_k":10},{"rank_by":["id","desc"],"top_k":10,"filters":["t","NotEq","z"]},{"aggregate_by":{"n":["Count"]}}]}"#;
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/query?stainless_overload=multiQuery"),
        body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let wm: u64 = r.headers["x-layer-stable-as-of"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let v = r.json();
    assert_eq!(v["results"][0]["rows"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["results"][2]["aggregations"]["n"], 2,
        "counts see the same cut"
    );
    let sent = upstream_queries(&stack).pop().unwrap();
    assert_eq!(sent["consistency"], json!({"level": "eventual"}));
    let pred = json!(["_hevlayer_upserted_at", "Lte", wm]);
    assert_eq!(sent["queries"][0]["filters"], pred);
    assert_eq!(
        sent["queries"][1]["filters"],
        json!(["And", [["t", "NotEq", "z"], pred]])
    );
    assert_eq!(sent["queries"][2]["filters"], pred);
}

#[test]
fn a_429_without_a_predicate_is_retried_once_with_it() {
    let stack = Stack::start();
    let ns = "stable-429";
    stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}"),
        r#"{"upsert_rows":[{"id":1}]}"#,
    );
    wait_stable(&stack, ns, true);
    let wm = metadata(&stack, ns)["layer"]["stable_as_of"]
        .as_u64()
        .unwrap();
    emu(
        &stack,
        "/_emu/faults",
        json!({"rules": [{"route": "query", "namespace": ns, "status": 429, "count": 1}]}),
    );
    stack.clear_requests();
    let (ids, _) = query_ids(&stack, ns, ALL);
    assert_eq!(ids, vec![json!(1)]);
    let sent = upstream_queries(&stack);
    assert_eq!(sent.len(), 2, "exactly one retry");
    assert!(sent[0].get("filters").is_none());
    let forced = sent[1]["filters"].clone();
    assert_eq!(forced[0], "_hevlayer_upserted_at");
    assert!(forced[2].as_u64().unwrap() >= wm);

    // A persistent 429 is retried once, then relayed with upstream's fields.
    emu(
        &stack,
        "/_emu/faults",
        json!({"rules": [{"route": "query", "namespace": ns, "status": 429, "count": 5,
            "headers": {"retry-after-ms": "250"}}]}),
    );
    stack.clear_requests();
    let r = stack.gw(Method::POST, &format!("/v2/namespaces/{ns}/query"), ALL);
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["retry-after-ms"], "250");
    assert_eq!(upstream_queries(&stack).len(), 2);
}

#[test]
fn cold_start_has_no_watermark_and_no_predicate() {
    let stack = Stack::start();
    let ns = "stable-cold";
    // Written around the gateway: not registered, no watermark.
    stack.direct(
        Method::POST,
        &format!("/v2/namespaces/{ns}"),
        r#"{"upsert_rows":[{"id":1}]}"#,
    );
    let r = stack.gw(Method::POST, &format!("/v2/namespaces/{ns}/query"), ALL);
    assert_eq!(r.status, 200);
    assert!(r.headers.get("x-layer-stable-as-of").is_none());
    let m = metadata(&stack, ns);
    assert_eq!(
        m["layer"],
        json!({"stable_as_of": null, "is_stable": false, "indexed": null, "index_lag_rows": null})
    );
    assert_eq!(
        stack
            .gw(Method::GET, "/v2/namespaces/nope/metadata", Bytes::new())
            .status,
        404
    );
}

#[test]
fn unstamped_rows_stay_visible_under_the_cut() {
    // The documented limit: rows written around the gateway carry no stamp, and Lte matches null.
    let stack = Stack::start();
    let ns = "stable-unstamped";
    stable_then_behind(
        &stack,
        ns,
        r#"{"upsert_rows":[{"id":1}]}"#,
        r#"{"upsert_rows":[{"id":2}]}"#,
    );
    stack.direct(
        Method::POST,
        &format!("/v2/namespaces/{ns}"),
        r#"{"upsert_rows":[{"id":3}]}"#,
    );
    let (ids, _) = query_ids(&stack, ns, ALL);
    assert_eq!(ids, vec![json!(1), json!(3)]);
}

#[test]
fn index_consistency_modes() {
    let stack = Stack::start_with(|c| {
        c.indexes = vec![
            IndexConfig {
                name: "mode-strong".into(),
                consistency: IndexConsistency::Strong,
                ..Default::default()
            },
            IndexConfig {
                name: "mode-eventual".into(),
                consistency: IndexConsistency::EventualUncut,
                ..Default::default()
            },
        ];
    });
    for ns in ["mode-strong", "mode-eventual"] {
        stable_then_behind(
            &stack,
            ns,
            r#"{"upsert_rows":[{"id":1}]}"#,
            r#"{"upsert_rows":[{"id":2}]}"#,
        );
        stack.clear_requests();
        let (ids, _) = query_ids(&stack, ns, ALL);
        assert_eq!(ids.len(), 2, "{ns}: stable reads are off");
        let sent = raw_queries(&stack).pop().unwrap();
        if ns == "mode-strong" {
            assert_eq!(sent["body"], ALL, "strong mode forwards the body unchanged");
        } else {
            let v: Value = serde_json::from_str(sent["body"].as_str().unwrap()).unwrap();
            assert_eq!(
                (v["consistency"].clone(), v.get("filters").cloned()),
                (json!({"level": "eventual"}), None)
            );
        }
    }
}

#[test]
fn enriched_listing_degrades_failed_rows_and_caches() {
    // One shard: the listing cache is per shard.
    let stack = Stack::start_with(|c| c.gateway.shards = 1);
    for ns in ["list-a", "list-b", "list-c"] {
        stack.gw(
            Method::POST,
            &format!("/v2/namespaces/{ns}"),
            r#"{"upsert_rows":[{"id":1,"vector":[0.1,0.2]}],"distance_metric":"cosine_distance"}"#,
        );
    }
    emu(&stack, "/_emu/indexer/flush", json!({}));
    emu(
        &stack,
        "/_emu/faults",
        json!({"rules": [{"route": "metadata", "namespace": "list-b", "status": 500}]}),
    );
    stack.clear_requests();
    let r = stack.gw(
        Method::GET,
        "/v2/namespaces?prefix=list-&page_size=5000",
        Bytes::new(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rows = r.json()["namespaces"].as_array().unwrap().clone();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        vec!["list-a", "list-b", "list-c"],
        "a failing row is kept, in order"
    );
    assert!(rows[1]["metadata_error"].as_str().unwrap().contains("500"));
    assert!(rows[1].get("row_count").is_none());
    for row in [&rows[0], &rows[2]] {
        assert_eq!(row["row_count"], 1);
        assert_eq!(row["is_stable"], true);
        assert_eq!(row["index"], json!({"status": "up-to-date"}));
        assert!(
            row["stable_as_of_ms"].as_u64().is_some() && row["last_write_ms"].as_u64().is_some()
        );
        assert_eq!(
            row["cache_state"],
            json!({"state": "cold", "warm_inflight": false})
        );
        assert_eq!(row["schema_summary"]["vector_dim"], 2);
        assert!(row.get("metadata_error").is_none());
    }
    let list_calls = stack
        .upstream_requests()
        .iter()
        .filter(|r| r["path"] == "/v1/namespaces")
        .count();
    assert_eq!(list_calls, 1);
    let first = stack
        .upstream_requests()
        .into_iter()
        .find(|r| r["path"] == "/v1/namespaces")
        .unwrap();
    assert_eq!(
        first["query"], "prefix=list-&page_size=1000",
        "the upstream page is capped at 1000"
    );
    // Served from the TTL cache; listing never registers namespaces with the watcher.
    stack.clear_requests();
    assert_eq!(
        stack
            .gw(
                Method::GET,
                "/v2/namespaces?prefix=list-&page_size=5000",
                Bytes::new()
            )
            .status,
        200
    );
    assert!(
        stack
            .upstream_requests()
            .iter()
            .all(|r| r["path"] != "/v1/namespaces")
    );
}
