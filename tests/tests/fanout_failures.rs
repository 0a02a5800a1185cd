//! Upstream errors in the middle of fan-outs and jobs fail cleanly: one failing shard leg fails
//! the query with that leg's error (never a partial top-k), and origin count scans, ids scans,
//! snapshot jobs and warm jobs meeting 5xx answers or timeouts fail — never a partial count, a
//! partial listing, or a partial warm marked populated.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::{Stack, pause};
use layer_gateway::config::IndexConfig;
use serde_json::{Value, json};

fn stack(ns: &str, shards: u32, tweak: impl FnOnce(&mut layer_gateway::Config)) -> Stack {
    let ns = ns.to_string();
    Stack::start_with(move |c| {
        c.indexes = vec![IndexConfig {
            name: ns,
            shards,
            ..IndexConfig::default()
        }];
        tweak(c);
    })
}

fn seed(stack: &Stack, ns: &str, n: usize) {
    let rows: Vec<Value> = (0..n)
        .map(|i| json!({"id": i, "color": if i % 2 == 0 { "red" } else { "blue" }}))
        .collect();
    stack.write(ns, json!({"upsert_rows": rows}));
    stack.wait_watermark(ns, layer_e2e::now_ms());
}

fn fault(stack: &Stack, rule: Value) {
    let r = stack.direct(
        Method::POST,
        "/_emu/faults",
        json!({"rules": [rule]}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn clear_faults(stack: &Stack) {
    let r = stack.direct(Method::DELETE, "/_emu/faults", Bytes::new());
    assert_eq!(r.status, 200, "{}", r.text());
}

fn wait_job(stack: &Stack, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = stack.gw(Method::GET, path, Bytes::new()).json();
        if j["status"] != "running" {
            return j;
        }
        assert!(Instant::now() < deadline, "job never finished: {j}");
        pause(Duration::from_millis(20));
    }
}

#[test]
fn one_failing_shard_leg_fails_the_query_with_its_error() {
    let ns = "fan-legs";
    let stack = stack(ns, 4, |_| {});
    seed(&stack, ns, 40);
    // Exactly one of the four legs fails: the rule fires once, and only on requests carrying
    // the test's header (the gateway forwards the caller's headers on every leg, and its own
    // requests carry none).
    fault(
        &stack,
        json!({"route": "query", "namespace": ns, "status": 500, "count": 1,
            "match_headers": {"x-test-fault": "one-leg"}, "headers": {"x-leg-failed": "yes"}}),
    );
    let query = r#"{"rank_by":["id","asc"],"top_k":100,"include_attributes":["color"]}"#;
    let path = format!("/v2/namespaces/{ns}/query");
    let failed = stack.gw_with(Method::POST, &path, &[("x-test-fault", "one-leg")], query);
    assert_eq!(failed.status, 500, "{}", failed.text());
    assert_eq!(
        failed.headers["x-leg-failed"], "yes",
        "the leg's own fields"
    );
    assert!(
        failed.json().get("rows").is_none(),
        "no partial top-k: {}",
        failed.text()
    );
    // The rule is spent: the same query now answers every row from all four legs.
    let ok = stack.gw_with(Method::POST, &path, &[("x-test-fault", "one-leg")], query);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["rows"].as_array().map(Vec::len), Some(40));
}

#[test]
fn origin_jobs_meeting_upstream_errors_fail_cleanly() {
    let ns = "fan-jobs";
    let stack = stack(ns, 2, |_| {});
    seed(&stack, ns, 60);
    // Every upstream query of the namespace fails while the rule stands (the gateway's own
    // pages carry no header to aim at, so the rule is sticky and removed afterwards).
    fault(
        &stack,
        json!({"route": "query", "namespace": ns, "status": 500}),
    );
    let scans = format!("/v2/namespaces/{ns}/scans");
    let count = stack.gw(
        Method::POST,
        &scans,
        json!({"mode": "count", "source": "origin"}).to_string(),
    );
    assert_eq!(count.status, 502, "never a partial count: {}", count.text());
    assert_eq!(count.json()["error"], "upstream_error");

    let ids = stack.gw(
        Method::POST,
        &scans,
        json!({"mode": "ids", "source": "origin"}).to_string(),
    );
    assert_eq!(ids.status, 202, "{}", ids.text());
    let id = ids.json()["id"].as_str().unwrap().to_string();
    let job = wait_job(&stack, &format!("{scans}/{id}"));
    assert_eq!(job["status"], "failed", "{job}");
    let results = stack.gw(Method::GET, &format!("{scans}/{id}/results"), Bytes::new());
    assert_eq!(
        results.status,
        412,
        "no partial listing: {}",
        results.text()
    );

    let snap = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/snapshots"),
        json!({"field": "color", "source": "origin"}).to_string(),
    );
    assert_eq!(snap.status, 202, "{}", snap.text());
    let sid = snap.json()["id"].as_str().unwrap().to_string();
    let sjob = wait_job(&stack, &format!("/v2/namespaces/{ns}/snapshot-jobs/{sid}"));
    assert_eq!(sjob["status"], "failed", "{sjob}");
    assert!(sjob.get("sha").is_none(), "{sjob}");

    let warm = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/warm"),
        Bytes::new(),
    );
    assert_eq!(warm.status, 202, "{}", warm.text());
    let wid = warm.json()["id"].as_str().unwrap().to_string();
    let wjob = wait_job(&stack, &format!("/v2/namespaces/{ns}/warm-jobs/{wid}"));
    assert_eq!(wjob["status"], "failed", "{wjob}");
    assert!(wjob.get("cache_warmed_through").is_none(), "{wjob}");

    // With upstream healthy again, nothing claims the failed warm's pages: the cache is not
    // "populated", so an auto count reads origin (and counts every row).
    clear_faults(&stack);
    let auto = stack.gw(
        Method::POST,
        &scans,
        json!({"mode": "count", "source": "auto"}).to_string(),
    );
    assert_eq!(auto.status, 200, "{}", auto.text());
    assert_eq!(auto.json()["count"], 60, "{}", auto.text());
    assert_eq!(auto.json()["served_by"], "origin", "{}", auto.text());
}

#[test]
fn an_upstream_timeout_during_a_count_is_a_504() {
    // The upstream request timeout is lowered to 500 ms so the test does not wait the default
    // 30 s; the path from a timed-out page to the answer is the same at any timeout, and
    // upstream_failures.rs shows the 504 at the default 30 s.
    let ns = "fan-timeout";
    let stack = stack(ns, 2, |c| c.vector_store.request_timeout_ms = 500);
    seed(&stack, ns, 20);
    fault(
        &stack,
        json!({"route": "query", "namespace": ns, "delay_ms": 2000}),
    );
    let count = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/scans"),
        json!({"mode": "count", "source": "origin"}).to_string(),
    );
    assert_eq!(count.status, 504, "never a partial count: {}", count.text());
    assert_eq!(count.json()["error"], "upstream_error");
    clear_faults(&stack);
}
