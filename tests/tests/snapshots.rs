//! Snapshots end to end: the automatic writer (event-driven, interval-floored, retention-pruned),
//! manual jobs per source, history / body / activity / policy routes, metadata `indexed`, and
//! survival across a gateway restart. Facet counts are checked against counts computed here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::{Stack, TestS3, now_ms, pause, temp_dir};
use layer_gateway::config::{IndexConfig, IndexSnapshot};
use serde_json::{Value, json};

const COLORS: [&str; 4] = ["red", "green", "blue", "amber"];

/// Where snapshot bodies and history live: the local directory (always) or the S3-compatible
/// server the test command starts (`LAYER_TEST_S3_ENDPOINT`, `LAYER_TEST_S3_BUCKET`).
#[derive(Clone, Copy, Debug)]
enum Backend {
    Local,
    S3,
}

/// Points the gateway's object store at `backend`; S3 runs get a unique key prefix so parallel
/// tests share the bucket safely. `false` when S3 was asked for but none is running.
fn use_backend(backend: Backend, c: &mut layer_gateway::Config, prefix: &str) -> bool {
    match backend {
        Backend::Local => true,
        Backend::S3 => match TestS3::from_env() {
            Some(s3) => {
                s3.configure(c, prefix);
                true
            }
            None => false,
        },
    }
}

/// Runs `test` against `backend`, or says why it is skipped.
fn on(backend: Backend, test: fn(Backend)) {
    if matches!(backend, Backend::S3) && TestS3::from_env().is_none() {
        eprintln!("skipped: no S3 server (set LAYER_TEST_S3_ENDPOINT; scripts/test starts one)");
        return;
    }
    test(backend);
}

fn index(name: &str, fields: &[&str], interval: &str, retention: &str) -> IndexConfig {
    IndexConfig {
        name: name.into(),
        snapshot: IndexSnapshot {
            facet_fields: fields.iter().map(|s| s.to_string()).collect(),
            interval: interval.into(),
            retention: retention.into(),
        },
        ..Default::default()
    }
}

/// Rows `from..to` with a color, a size and a tag list derived from the id.
fn rows(from: u64, to: u64) -> Vec<Value> {
    (from..to)
        .map(|i| {
            let mut tags = vec![format!("t{}", i % 3)];
            if i % 2 == 0 {
                tags.push("even".into());
            }
            json!({
                "id": i,
                "vector": [i as f32, 1.0],
                "color": COLORS[(i % 4) as usize],
                "size": i % 5,
                "tags": tags,
            })
        })
        .collect()
}

fn write(stack: &Stack, ns: &str, rows: &[Value]) {
    stack.write(
        ns,
        json!({"upsert_rows": rows, "distance_metric": "euclidean_squared"}),
    );
}

/// `{value: count}` for `field` over `rows` (arrays count each distinct element once per row).
fn expected(rows: &[Value], field: &str, keep: impl Fn(&Value) -> bool) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in rows.iter().filter(|r| keep(r)) {
        let mut vals: Vec<String> = match &r[field] {
            Value::Array(a) => a.iter().map(text).collect(),
            Value::Null => vec![],
            v => vec![text(v)],
        };
        vals.sort();
        vals.dedup();
        for v in vals {
            *m.entry(v).or_insert(0) += 1;
        }
    }
    m
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn histogram(body: &Value, field: &str) -> BTreeMap<String, u64> {
    let f = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == field)
        .unwrap_or_else(|| panic!("no field {field} in {body}"));
    let values = f["values"].as_array().unwrap();
    // Ordered n descending, then v ascending.
    for w in values.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(
            a["n"].as_u64() > b["n"].as_u64()
                || (a["n"] == b["n"] && a["v"].as_str() < b["v"].as_str()),
            "order: {a} before {b}"
        );
    }
    values
        .iter()
        .map(|v| {
            (
                v["v"].as_str().unwrap().to_string(),
                v["n"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn get(stack: &Stack, path: &str) -> Value {
    let r = stack.gw(Method::GET, path, Bytes::new());
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

fn history(stack: &Stack, ns: &str) -> Vec<Value> {
    get(stack, &format!("/v2/namespaces/{ns}/history"))
        .as_array()
        .cloned()
        .unwrap()
}

/// Waits until the namespace's history has at least `n` entries.
fn wait_history(stack: &Stack, ns: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = history(stack, ns);
        if h.len() >= n {
            return h;
        }
        assert!(Instant::now() < deadline, "history of {ns} stayed at {h:?}");
        pause(Duration::from_millis(50));
    }
}

fn create_job(stack: &Stack, ns: &str, body: Value) -> (u16, Value) {
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/snapshots"),
        body.to_string(),
    );
    (r.status.as_u16(), r.json())
}

fn wait_job(stack: &Stack, ns: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let j = get(stack, &format!("/v2/namespaces/{ns}/snapshot-jobs/{id}"));
        if j["status"] != "running" {
            return j;
        }
        assert!(Instant::now() < deadline, "job never finished: {j}");
        pause(Duration::from_millis(30));
    }
}

#[test]
fn automatic_snapshots_count_facets_and_survive_a_restart_local() {
    on(Backend::Local, automatic_snapshots);
}

#[test]
fn automatic_snapshots_count_facets_and_survive_a_restart_s3() {
    on(Backend::S3, automatic_snapshots);
}

fn automatic_snapshots(backend: Backend) {
    let dir = temp_dir("snapshot-restart");
    let cfg_dir = dir.clone();
    let prefix = TestS3::unique_prefix("snap-auto");
    let store_prefix = prefix.clone();
    let mut stack = Stack::start_with(move |c| {
        // The stable tier at 150 ms instead of a minute (every other knob at its default): the
        // test checks that a watermark advancing with no write in between brings no new
        // snapshot, so the watermark must advance several times within its 1.5 s pause.
        // watermark_defaults.rs covers the automatic writer at the full defaults.
        c.gateway.consistency.stable_poll_interval_ms = 150;
        assert!(use_backend(backend, c, &store_prefix));
        c.gateway.data_dir = cfg_dir;
        c.gateway.snapshots.field_cap = 4;
        c.indexes = vec![index(
            "snap-auto",
            &["color", "tags", "size"],
            "1s",
            "never",
        )];
    });
    let data = rows(0, 300);
    write(&stack, "snap-auto", &data);
    let h = wait_history(&stack, "snap-auto", 1);
    let sha = h[0]["sha"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    let body = get(
        &stack,
        &format!("/v2/namespaces/snap-auto/snapshots/{}", &sha[..7]),
    );
    assert_eq!(body["sha"], sha.as_str());
    assert_eq!(body["row_count"], 300);
    assert_eq!(body["watermark_ms"], h[0]["watermark_ms"]);
    assert_eq!(
        histogram(&body, "color"),
        expected(&data, "color", |_| true)
    );
    assert_eq!(histogram(&body, "tags"), expected(&data, "tags", |_| true));
    // size has 5 distinct values, over the test cap of 4: listed as skipped, not partial.
    assert_eq!(
        body["fields_skipped"],
        json!([{"name": "size", "reason": "exceeded_cap", "distinct_observed": 5, "cap": 4}])
    );

    // No write since: the watermark keeps advancing with stable polls, but no new snapshot —
    // checked once it is 1.5 s past the snapshot's cut (several polls, more than the 1 s
    // interval, three of the writer's ticks).
    let past = h[0]["watermark_ms"].as_u64().unwrap() + 1_500;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // A stable read answers with the watermark it was cut at.
        let r = stack.gw(
            Method::POST,
            "/v2/namespaces/snap-auto/query",
            json!({"rank_by": ["id", "asc"], "top_k": 1}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let wm = r.headers.get("x-layer-stable-as-of");
        if wm.and_then(|v| v.to_str().ok()?.parse::<u64>().ok()) > Some(past) {
            break;
        }
        assert!(Instant::now() < deadline, "the watermark stopped at {wm:?}");
        pause(Duration::from_millis(50));
    }
    assert_eq!(history(&stack, "snap-auto").len(), 1);

    // A write after the cut brings a second snapshot once the interval has passed.
    let more = rows(300, 340);
    write(&stack, "snap-auto", &more);
    let written = now_ms();
    // The writer waits at most one interval (1 s here) for the watermark to cover a write, so
    // the first snapshot after it may be cut before it; then the next one covers it. Wait for a
    // snapshot whose cut is past the write.
    let deadline = Instant::now() + Duration::from_secs(20);
    let h2 = loop {
        let h = history(&stack, "snap-auto");
        if h.len() >= 2 && h[0]["watermark_ms"].as_u64() >= Some(written) {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot covers the write: {h:?}"
        );
        pause(Duration::from_millis(50));
    };
    assert!(
        h2.windows(2)
            .all(|w| w[0]["watermark_ms"].as_u64() > w[1]["watermark_ms"].as_u64())
    );
    let all: Vec<Value> = data.iter().chain(more.iter()).cloned().collect();
    let latest = get(
        &stack,
        &format!(
            "/v2/namespaces/snap-auto/snapshots/{}",
            h2[0]["sha"].as_str().unwrap()
        ),
    );
    assert_eq!(
        histogram(&latest, "color"),
        expected(&all, "color", |_| true)
    );

    // Activity lists every snapshot write; `before` pages the history.
    let act = get(&stack, "/v2/activity/snapshots?since=0&namespace=snap-auto");
    assert_eq!(act["events"].as_array().unwrap().len(), h2.len());
    let older = get(
        &stack,
        &format!(
            "/v2/namespaces/snap-auto/history?before={}",
            &h2[0]["sha"].as_str().unwrap()[..7]
        ),
    );
    assert_eq!(older.as_array().unwrap().len(), h2.len() - 1);
    assert_eq!(older[0]["sha"], h2[1]["sha"]);
    let one = get(&stack, "/v2/namespaces/snap-auto/history?limit=1");
    assert_eq!(one.as_array().unwrap().len(), 1);

    // Metadata reconciles `indexed` from the latest snapshot (a vector namespace).
    let m = get(&stack, "/v2/namespaces/snap-auto/metadata");
    assert_eq!(m["layer"]["index_lag_rows"], 0, "{m}");
    assert_eq!(m["layer"]["indexed"], true);

    // A restart keeps history, bodies and activity (local object store under --data-dir).
    stack.restart_gateway(
        |c| {
            c.gateway.shards = 1;
            c.gateway.data_dir = dir;
            assert!(use_backend(backend, c, &prefix));
        },
        None,
    );
    assert_eq!(history(&stack, "snap-auto"), h2);
    let again = get(
        &stack,
        &format!(
            "/v2/namespaces/snap-auto/snapshots/{}",
            h2[0]["sha"].as_str().unwrap()
        ),
    );
    assert_eq!(again, latest);
    let act = get(&stack, "/v2/activity/snapshots?since=0");
    assert_eq!(act["events"].as_array().unwrap().len(), h2.len());
}

#[test]
fn manual_jobs_by_source_local() {
    on(Backend::Local, manual_jobs_by_source);
}

#[test]
fn manual_jobs_by_source_s3() {
    on(Backend::S3, manual_jobs_by_source);
}

fn manual_jobs_by_source(backend: Backend) {
    let prefix = TestS3::unique_prefix("snap-manual");
    let stack = Stack::start_with(move |c| {
        assert!(use_backend(backend, c, &prefix));
        c.indexes = vec![index("snap-manual", &["color"], "1s", "never")];
    });
    let data = rows(0, 120);
    write(&stack, "snap-manual", &data);
    let h = wait_history(&stack, "snap-manual", 1);

    // auto + a configured field: served from the stored snapshot, completed in the 202.
    let (status, job) = create_job(&stack, "snap-manual", json!({"field": "color"}));
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["status"], "completed");
    assert_eq!(job["effective_source"], "stored");
    assert_eq!(job["sha"], h[0]["sha"]);
    for k in [
        "id",
        "namespace",
        "progress",
        "documents_scanned",
        "created_at",
        "field",
        "source",
    ] {
        assert!(job.get(k).is_some(), "{k} missing from {job}");
    }

    // stored cannot serve a field the snapshot does not have, nor a filter: 412.
    let (status, err) = create_job(
        &stack,
        "snap-manual",
        json!({"field": "size", "source": "stored"}),
    );
    assert_eq!(status, 412, "{err}");
    assert_eq!(err["error"], "precondition_failed");
    let (status, _) = create_job(
        &stack,
        "snap-manual",
        json!({"field": "color", "source": "stored", "filters": ["size", "Eq", 1]}),
    );
    assert_eq!(status, 412);

    // A filtered origin job: a body addressable by sha, not part of the history.
    let (status, job) = create_job(
        &stack,
        "snap-manual",
        json!({"field": "color", "source": "origin", "filters": ["size", "Lt", 2], "page_size": 7}),
    );
    assert_eq!(status, 202, "{job}");
    let done = wait_job(&stack, "snap-manual", job["id"].as_str().unwrap());
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["effective_source"], "origin");
    let keep = |r: &Value| r["size"].as_u64().unwrap() < 2;
    assert_eq!(
        done["documents_scanned"],
        data.iter().filter(|r| keep(r)).count()
    );
    let body = get(
        &stack,
        &format!(
            "/v2/namespaces/snap-manual/snapshots/{}",
            done["sha"].as_str().unwrap()
        ),
    );
    assert_eq!(histogram(&body, "color"), expected(&data, "color", keep));
    assert_eq!(history(&stack, "snap-manual").len(), 1);

    // An unfiltered origin job for a new field joins the history; auto then serves it stored.
    let (_, job) = create_job(
        &stack,
        "snap-manual",
        json!({"field": "size", "source": "origin"}),
    );
    let done = wait_job(&stack, "snap-manual", job["id"].as_str().unwrap());
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(history(&stack, "snap-manual").len(), 2);
    let (_, job) = create_job(&stack, "snap-manual", json!({"field": "size"}));
    assert_eq!(job["effective_source"], "stored");
    let body = get(
        &stack,
        &format!(
            "/v2/namespaces/snap-manual/snapshots/{}",
            job["sha"].as_str().unwrap()
        ),
    );
    assert_eq!(histogram(&body, "size"), expected(&data, "size", |_| true));
    // Same cut as the automatic body: the configured field stays in the latest view.
    assert_eq!(
        histogram(&body, "color"),
        expected(&data, "color", |_| true)
    );

    // Without a snapshot policy, manual bodies are stored by sha but history stays empty.
    // Origin jobs read at the watermark: wait until it covers the write.
    write(&stack, "snap-nopolicy", &data);
    stack.wait_watermark("snap-nopolicy", now_ms());
    let (_, job) = create_job(
        &stack,
        "snap-nopolicy",
        json!({"field": "color", "source": "origin"}),
    );
    let done = wait_job(&stack, "snap-nopolicy", job["id"].as_str().unwrap());
    assert_eq!(done["status"], "completed", "{done}");
    assert!(history(&stack, "snap-nopolicy").is_empty());
    let body = get(
        &stack,
        &format!(
            "/v2/namespaces/snap-nopolicy/snapshots/{}",
            done["sha"].as_str().unwrap()
        ),
    );
    assert_eq!(
        histogram(&body, "color"),
        expected(&data, "color", |_| true)
    );

    let list = get(&stack, "/v2/namespaces/snap-manual/snapshot-jobs");
    assert_eq!(list["snapshot_jobs"].as_array().unwrap().len(), 4);

    // Bad input: a clear 4xx, nothing created.
    for (body, want) in [
        (json!({}), 422),
        (json!({"field": "color", "source": "nowhere"}), 422),
        (json!({"field": "color", "page_size": 0}), 422),
        (json!({"field": "_hevlayer_upserted_at"}), 422),
    ] {
        let (status, err) = create_job(&stack, "snap-manual", body.clone());
        assert_eq!(status, want, "{body}: {err}");
    }
    let r = stack.gw(
        Method::GET,
        "/v2/namespaces/snap-manual/snapshot-jobs/nope",
        Bytes::new(),
    );
    assert_eq!(r.status, 404);
    let r = stack.gw(
        Method::GET,
        "/v2/namespaces/snap-manual/snapshots/0000000",
        Bytes::new(),
    );
    assert_eq!(r.status, 404);
    let r = stack.gw(
        Method::GET,
        "/v2/namespaces/snap-manual/snapshots/xyz",
        Bytes::new(),
    );
    assert_eq!(r.status, 422);
    let r = stack.gw(Method::GET, "/v2/activity/snapshots", Bytes::new());
    assert_eq!(r.status, 422, "since is required");
}

#[test]
fn policy_set_through_the_api_drives_the_writer_and_retention_local() {
    on(Backend::Local, policy_and_retention);
}

#[test]
fn policy_set_through_the_api_drives_the_writer_and_retention_s3() {
    on(Backend::S3, policy_and_retention);
}

fn policy_and_retention(backend: Backend) {
    let prefix = TestS3::unique_prefix("snap-policy");
    let stack = Stack::start_with(move |c| {
        assert!(use_backend(backend, c, &prefix));
    });
    let ns = "snap-policy";
    let p = get(&stack, &format!("/v2/namespaces/{ns}/snapshot-policy"));
    assert_eq!(
        p,
        json!({"facetFields": [], "interval": "5m", "retention": "never"})
    );
    let r = stack.gw(
        Method::PUT,
        &format!("/v2/namespaces/{ns}/snapshot-policy"),
        json!({"facetFields": ["color"], "interval": "1s", "retention": "1s"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        get(&stack, &format!("/v2/namespaces/{ns}/snapshot-policy")),
        json!({"facetFields": ["color"], "interval": "1s", "retention": "1s"})
    );
    let bad = stack.gw(
        Method::PUT,
        &format!("/v2/namespaces/{ns}/snapshot-policy"),
        json!({"facetFields": ["color"], "interval": "often"}).to_string(),
    );
    assert_eq!(bad.status, 422);

    write(&stack, ns, &rows(0, 20));
    let first = wait_history(&stack, ns, 1);
    // Past the 1 s retention window, the next snapshot prunes the first but keeps itself. The
    // first one's cut must be more than 1 s old when the next is taken: a wait on the clock,
    // which is what retention is about.
    let first_cut = first[0]["watermark_ms"].as_u64().unwrap();
    while now_ms() <= first_cut + 1_000 {
        pause(Duration::from_millis(20));
    }
    write(&stack, ns, &rows(20, 30));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = history(&stack, ns);
        if h.len() == 1 && h[0]["sha"] != first[0]["sha"] {
            break;
        }
        assert!(Instant::now() < deadline, "retention never pruned: {h:?}");
        pause(Duration::from_millis(50));
    }
    // The prune drops the history entry before the body (an entry never names a missing body):
    // the body goes a moment later.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = stack.gw(
            Method::GET,
            &format!(
                "/v2/namespaces/{ns}/snapshots/{}",
                first[0]["sha"].as_str().unwrap()
            ),
            Bytes::new(),
        );
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "the pruned body was never deleted"
        );
        pause(Duration::from_millis(50));
    }
}

#[test]
fn object_store_down_fails_snapshot_jobs_but_not_queries() {
    // An S3 endpoint nothing listens on.
    let stack = Stack::start_with(|c| {
        let nowhere = TestS3 {
            endpoint: "http://127.0.0.1:9".into(),
            bucket: "nowhere".into(),
        };
        nowhere.configure(c, "");
    });
    let ns = "snap-down";
    let data = rows(0, 10);
    write(&stack, ns, &data);
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        r#"{"rank_by":["id","asc"],"top_k":100,"consistency":{"level":"strong"}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 10);

    let (status, job) = create_job(&stack, ns, json!({"field": "color", "source": "origin"}));
    assert_eq!(status, 202, "{job}");
    let done = wait_job(&stack, ns, job["id"].as_str().unwrap());
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("object store"),
        "{done}"
    );
    let r = stack.gw(
        Method::GET,
        &format!("/v2/namespaces/{ns}/history"),
        Bytes::new(),
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"], "object_store_error");
}

#[test]
fn cache_sourced_jobs_read_the_warmed_cache() {
    let stack = Stack::start();
    let ns = "snap-cache";
    let data = rows(0, 60);
    write(&stack, ns, &data);
    // Warms read origin at the watermark: wait until it covers the write.
    stack.wait_watermark(ns, now_ms());
    // Nothing cached yet: auto uses origin (and starts a background warm).
    let (_, job) = create_job(
        &stack,
        ns,
        json!({"field": "color", "filters": ["size", "Lt", 3]}),
    );
    assert_eq!(job["effective_source"], "origin", "{job}");
    // Warm the cache, then an explicit cache job over the same filter gives the same counts.
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/warm?page_size=25"),
        Bytes::new(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let warm_id = r.json()["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let w = get(&stack, &format!("/v2/namespaces/{ns}/warm-jobs/{warm_id}"));
        if w["status"] == "completed" {
            break;
        }
        assert_ne!(w["status"], "failed", "{w}");
        assert!(Instant::now() < deadline, "warm never finished: {w}");
        pause(Duration::from_millis(30));
    }
    let keep = |r: &Value| r["size"].as_u64().unwrap() < 3;
    for source in ["cache", "auto"] {
        let (status, job) = create_job(
            &stack,
            ns,
            json!({"field": "color", "source": source, "filters": ["size", "Lt", 3]}),
        );
        assert_eq!(status, 202, "{job}");
        assert_eq!(job["effective_source"], "cache", "{source}: {job}");
        let done = wait_job(&stack, ns, job["id"].as_str().unwrap());
        assert_eq!(done["status"], "completed", "{done}");
        let body = get(
            &stack,
            &format!(
                "/v2/namespaces/{ns}/snapshots/{}",
                done["sha"].as_str().unwrap()
            ),
        );
        assert_eq!(histogram(&body, "color"), expected(&data, "color", keep));
        assert_eq!(body["row_count"], data.iter().filter(|r| keep(r)).count());
    }
    // A filter the cache evaluator cannot run: explicit cache refuses, auto uses origin.
    let glob = json!(["color", "Glob", "r*"]);
    let (status, err) = create_job(
        &stack,
        ns,
        json!({"field": "color", "source": "cache", "filters": glob}),
    );
    assert_eq!(status, 422, "{err}");
    let (_, job) = create_job(&stack, ns, json!({"field": "color", "filters": glob}));
    assert_eq!(job["effective_source"], "origin");

    // A cold cache: explicit cache jobs answer 503 cache_cold.
    let cold = Stack::start_with(|c| {
        c.gateway.cache.tier = layer_gateway::config::CacheTierKind::Disabled;
    });
    write(&cold, ns, &data);
    let (status, err) = create_job(&cold, ns, json!({"field": "color", "source": "cache"}));
    assert_eq!(
        (status, err["error"].as_str()),
        (503, Some("cache_cold")),
        "{err}"
    );
}
