//! Warm jobs, cache-sourced scans and the Auto-mode policy end to end: a warm backfills the
//! cache tier and stamps `cache_warmed_through`; cache scans then agree with origin on every
//! filter the cache evaluator supports (a differential check of the gateway's evaluator against
//! the emulator's); every row of the Auto table; `hint_cache_warm` as a raw passthrough and as
//! the per-step orchestration; 503 `cache_cold`; a namespace clear landing mid-warm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_cache::{FaultyTier, NvmeConfig, NvmeTier, Set, Tier};
use layer_e2e::{Stack, UPSTREAM_KEY, now_ms, pause, temp_dir};
use layer_gateway::config::IndexConfig;
use layer_gateway::sources::cache_rows::WARM_MARKER_ID;
use serde_json::{Value, json};

const CATS: [&str; 4] = ["books", "toys", "food", "games"];

/// How many ids a write may mirror into the cache when a test asks for the write-path mirror
/// (the harness turns it off by default).
const MIRROR_MAX_IDS: usize = 1000;

/// A stack whose cache tier the test can take down. `write_mirror: true` turns on the write-path
/// mirror (`populateMaxIds` = [`MIRROR_MAX_IDS`]), so writes also update the cache; `false`
/// keeps it off (`0`), so writes leave the cache as it was.
fn stack(indexes: Vec<IndexConfig>, write_mirror: bool) -> (Stack, FaultyTier) {
    let nvme: Arc<dyn Tier> = Arc::new(
        NvmeTier::open(NvmeConfig::new(temp_dir("warm-nvme"), 64 << 20)).expect("nvme tier"),
    );
    let faulty = FaultyTier::new(nvme);
    let tier: Arc<dyn Tier> = Arc::new(faulty.clone());
    let stack = Stack::start_with_tier(
        |c| {
            c.indexes = indexes;
            c.gateway.cache.populate_max_ids = if write_mirror { MIRROR_MAX_IDS } else { 0 };
        },
        Some(tier),
    );
    (stack, faulty)
}

fn row(i: u64) -> Value {
    let mut r = json!({
        "id": format!("w{i:05}"),
        "category": CATS[(i % 4) as usize],
        "n": i % 13,
        "price": (i % 50) as f64 * 1.5,
        "tags": [format!("t{}", i % 3), format!("t{}", i % 5)],
    });
    if i.is_multiple_of(7) {
        r["note"] = json!(format!("note {}", i % 3));
    }
    r
}

fn write(stack: &Stack, ns: &str, rows: &[Value]) {
    stack.write(ns, json!({"upsert_rows": rows}));
}

/// Waits (bounded) until the write-path mirror has populated the cache at least once, proving
/// it is on for a test that asked for it.
fn wait_mirrored(stack: &Stack) {
    let sample = r#"layer_document_cache_events_total{event="populated"}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.metric(sample) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the write-path mirror never populated the cache"
        );
        pause(Duration::from_millis(20));
    }
}

/// `POST …/warm` the way the hevlayer client sends it: no body, no content type.
fn warm(stack: &Stack, ns: &str, query: &str) -> (u16, Value) {
    let bearer = format!("Bearer {UPSTREAM_KEY}");
    let r = stack.http.send(
        Method::POST,
        &format!("{}/v2/namespaces/{ns}/warm{query}", stack.gateway_url),
        &[("authorization", &bearer)],
        Bytes::new(),
    );
    (r.status.as_u16(), r.json())
}

fn warm_jobs(stack: &Stack, ns: &str) -> Vec<Value> {
    let r = stack.gw(
        Method::GET,
        &format!("/v2/namespaces/{ns}/warm-jobs"),
        Bytes::new(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["warm_jobs"].as_array().expect("warm_jobs").clone()
}

fn wait_warm(stack: &Stack, ns: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = stack
            .gw(
                Method::GET,
                &format!("/v2/namespaces/{ns}/warm-jobs/{id}"),
                Bytes::new(),
            )
            .json();
        for k in [
            "id",
            "namespace",
            "status",
            "progress",
            "documents_scanned",
            "created_at",
        ] {
            assert!(j.get(k).is_some(), "{k} missing from {j}");
        }
        if j["status"] != "running" {
            assert_eq!(j["status"], "completed", "{j}");
            return j;
        }
        assert!(Instant::now() < deadline, "warm never finished: {j}");
        pause(Duration::from_millis(20));
    }
}

fn wait_all_warms(stack: &Stack, ns: &str) {
    for j in warm_jobs(stack, ns) {
        wait_warm(stack, ns, j["id"].as_str().expect("id"));
    }
}

fn scan(stack: &Stack, ns: &str, body: Value) -> (u16, Value) {
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/scans"),
        body.to_string(),
    );
    (r.status.as_u16(), r.json())
}

fn count(stack: &Stack, ns: &str, source: &str, filters: Option<&Value>) -> Value {
    let mut body = json!({"mode": "count", "source": source});
    if let Some(f) = filters {
        body["filters"] = f.clone();
    }
    let (status, v) = scan(stack, ns, body);
    assert_eq!(status, 200, "{filters:?}: {v}");
    v
}

fn job_results(stack: &Stack, ns: &str, body: Value) -> (Value, Value) {
    let (status, created) = scan(stack, ns, body);
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let r = stack.gw(
            Method::GET,
            &format!("/v2/namespaces/{ns}/scans/{id}"),
            Bytes::new(),
        );
        assert_eq!(r.status, 200, "scan job {id}: {}", r.text());
        let j = r.json();
        if j["status"] != "running" {
            break j;
        }
        assert!(Instant::now() < deadline, "{j}");
        pause(Duration::from_millis(20));
    };
    assert_eq!(job["status"], "completed", "{job}");
    let r = stack.gw(
        Method::GET,
        &format!("/v2/namespaces/{ns}/scans/{id}/results"),
        Bytes::new(),
    );
    assert_eq!(r.status, 200, "results of scan job {id}: {}", r.text());
    (job, r.json())
}

/// A deterministic stream of type-correct filters over the test rows, nested up to depth 2.
fn filters(seed: u64, n: usize) -> Vec<Value> {
    let mut x = seed;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let leaf = |r: &mut dyn FnMut() -> u64| -> Value {
        let ops = ["Eq", "NotEq", "Gt", "Gte", "Lt", "Lte", "In", "NotIn"];
        let op = ops[(r() % 8) as usize];
        let list = op == "In" || op == "NotIn";
        let (attr, one, many): (&str, Value, Value) = match r() % 6 {
            0 => (
                "category",
                json!(CATS[(r() % 5) as usize % 4]),
                json!([CATS[(r() % 4) as usize], "none"]),
            ),
            1 => ("n", json!(r() % 15), json!([r() % 13, r() % 13, 99])),
            2 => (
                "price",
                json!((r() % 80) as f64 * 0.75),
                json!([1.5, (r() % 50) as f64 * 1.5]),
            ),
            3 => (
                "tags",
                json!(format!("t{}", r() % 6)),
                json!([format!("t{}", r() % 6), "x"]),
            ),
            4 => (
                "note",
                if r().is_multiple_of(3) {
                    json!(null)
                } else {
                    json!(format!("note {}", r() % 3))
                },
                json!([null, "note 1"]),
            ),
            _ => (
                "id",
                json!(format!("w{:05}", r() % 900)),
                json!([format!("w{:05}", r() % 900), "w00003"]),
            ),
        };
        json!([attr, op, if list { many } else { one }])
    };
    (0..n)
        .map(|_| match next() % 5 {
            0 | 1 => leaf(&mut next),
            2 => json!(["And", [leaf(&mut next), leaf(&mut next)]]),
            3 => json!(["Or", [leaf(&mut next), ["Not", leaf(&mut next)]]]),
            _ => json!([
                "Not",
                [
                    "Or",
                    [leaf(&mut next), ["And", [leaf(&mut next), leaf(&mut next)]]]
                ]
            ]),
        })
        .collect()
}

#[test]
fn warm_then_cache_scans_agree_with_origin() {
    let ns = "warm-diff";
    let (stack, _) = stack(
        vec![IndexConfig {
            name: ns.into(),
            shards: 2,
            ..IndexConfig::default()
        }],
        true,
    );
    let rows: Vec<Value> = (0..900).map(row).collect();
    write(&stack, ns, &rows);
    wait_mirrored(&stack);
    stack.wait_watermark(ns, now_ms());
    let (status, job) = warm(&stack, ns, "?page_size=200");
    assert_eq!(status, 202, "{job}");
    let done = wait_warm(&stack, ns, job["id"].as_str().unwrap());
    assert_eq!(done["documents_scanned"], 900);
    assert_eq!(done["progress"], 1.0);
    let warmed = done["cache_warmed_through"].as_u64().expect("cut");
    assert!(warm_jobs(&stack, ns).iter().any(|j| j["id"] == job["id"]));

    // Differential: the gateway's evaluator over cached rows vs the emulator's over its own.
    let mut nonzero = 0;
    for f in filters(0x9e37_79b9_7f4a_7c15, 120) {
        let origin = count(&stack, ns, "origin", Some(&f));
        let cache = count(&stack, ns, "cache", Some(&f));
        assert_eq!(cache["served_by"], "cache");
        assert_eq!(cache["count"], origin["count"], "{f}");
        assert!(
            cache["watermark_ms"].as_u64().is_some_and(|w| w >= warmed),
            "{cache}"
        );
        nonzero += usize::from(cache["count"].as_u64() != Some(0));
    }
    assert!(
        nonzero > 60,
        "the generated filters should mostly match something ({nonzero})"
    );

    // Ids and values from the cache equal origin's.
    let f = json!(["Or", [["category", "Eq", "toys"], ["n", "Gt", 10]]]);
    let (j, cached) = job_results(&stack, ns, json!({"source": "cache", "filters": f}));
    assert_eq!(
        (j["effective_source"].as_str(), j.get("threads")),
        (Some("cache"), None)
    );
    assert_eq!(j["documents_scanned"], 900);
    let (_, origin) = job_results(&stack, ns, json!({"source": "origin", "filters": f}));
    let sorted = |v: &Value| {
        let mut ids: Vec<String> = v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().into())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(sorted(&cached), sorted(&origin));
    for field in ["category", "tags", "n", "note"] {
        let (_, c) = job_results(
            &stack,
            ns,
            json!({"mode": "values", "field": field, "source": "cache"}),
        );
        let (_, o) = job_results(
            &stack,
            ns,
            json!({"mode": "values", "field": field, "source": "origin"}),
        );
        assert!(
            c["values"].is_array() && o["values"].is_array(),
            "{field}: cache {c}, origin {o}"
        );
        assert_eq!(c["values"], o["values"], "{field}");
    }

    // Operators the cache cannot evaluate: explicit cache refuses, auto uses origin.
    let glob = json!(["category", "Glob", "b*"]);
    let (status, v) = scan(
        &stack,
        ns,
        json!({"mode": "count", "source": "cache", "filters": glob}),
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("validation_error")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("Glob"));
    let auto = count(&stack, ns, "auto", Some(&glob));
    assert_eq!(
        (auto["served_by"].as_str(), auto["count"].as_u64()),
        (Some("origin"), Some(225))
    );
}

#[test]
fn every_row_of_the_auto_table() {
    let (mut stack, faulty) = stack(Vec::new(), false);

    // Empty cache: origin, and a background warm that stamps cache_warmed_through.
    let ns = "auto-empty";
    write(&stack, ns, &(0..300).map(row).collect::<Vec<_>>());
    stack.wait_watermark(ns, now_ms());
    let c = count(&stack, ns, "auto", None);
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("origin"), Some(300)),
        "{c}"
    );
    assert_eq!(
        warm_jobs(&stack, ns).len(),
        1,
        "the empty cache started a warm"
    );
    wait_all_warms(&stack, ns);
    // Populated, warmed through the watermark: cache, no new warm.
    let c = count(&stack, ns, "auto", None);
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("cache"), Some(300)),
        "{c}"
    );
    assert_eq!(warm_jobs(&stack, ns).len(), 1);

    // Populated, a write after the warm's cut (stale): the cached view lacks what writes changed,
    // so origin answers (every acknowledged write, once stable), and a background warm starts.
    write(&stack, ns, &(300..350).map(row).collect::<Vec<_>>());
    stack.wait_watermark(ns, now_ms());
    let c = count(&stack, ns, "auto", None);
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("origin"), Some(350)),
        "{c}"
    );
    assert_eq!(
        warm_jobs(&stack, ns).len(),
        2,
        "a stale cache started a warm"
    );
    wait_all_warms(&stack, ns);
    let c = count(&stack, ns, "auto", None);
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("cache"), Some(350)),
        "{c}"
    );

    // Documents cached one by one (fetch backfills) are not a complete copy: still empty.
    let ns = "auto-fetched";
    write(&stack, ns, &(0..100).map(row).collect::<Vec<_>>());
    stack.wait_watermark(ns, now_ms());
    fetch_some(&stack, ns, 10);
    let c = count(&stack, ns, "auto", None);
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("origin"), Some(100)),
        "{c}"
    );
    assert_eq!(warm_jobs(&stack, ns).len(), 1);
    wait_all_warms(&stack, ns);
    let c = count(&stack, ns, "auto", None);
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("cache"), Some(100)),
        "{c}"
    );

    // Populated, watermark not yet observed (data written straight to upstream, so the watcher
    // never saw the namespace; warmed explicitly): cache, no background warm.
    let ns = "auto-outside";
    let r = stack.direct(
        Method::POST,
        &format!("/v2/namespaces/{ns}"),
        json!({"upsert_rows": (0..50).map(row).collect::<Vec<_>>()}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (status, job) = warm(&stack, ns, "");
    assert_eq!(status, 202, "{job}");
    wait_warm(&stack, ns, job["id"].as_str().unwrap());
    let c = count(&stack, ns, "auto", None);
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("cache"), Some(50)),
        "{c}"
    );
    assert_eq!(
        warm_jobs(&stack, ns).len(),
        1,
        "no watermark, no background warm"
    );

    // A cold cache: auto reads origin (no warm), explicit cache and warm answer 503 cache_cold.
    faulty.set_down(true);
    let c = count(&stack, "auto-empty", "auto", None);
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("origin"), Some(350))
    );
    let (status, v) = scan(
        &stack,
        "auto-empty",
        json!({"mode": "count", "source": "cache"}),
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (503, Some("cache_cold")),
        "{v}"
    );
    let (status, v) = warm(&stack, "auto-empty", "");
    assert_eq!(
        (status, v["error"].as_str()),
        (503, Some("cache_cold")),
        "{v}"
    );
    faulty.set_down(false);

    // Populated, no cache_warmed_through yet (a restarted gateway over the same, recovered tier:
    // writes before the restart may have changed rows after the tier's cut): origin, and a
    // background warm; once it lands, cache.
    restart_over(&mut stack, &faulty, "auto-empty");
    stack.wait_watermark("auto-empty", 0);
    let c = count(&stack, "auto-empty", "auto", None);
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("origin"), Some(350)),
        "{c}"
    );
    assert_eq!(
        warm_jobs(&stack, "auto-empty").len(),
        1,
        "a background warm started"
    );
    wait_all_warms(&stack, "auto-empty");
    let c = count(&stack, "auto-empty", "auto", None);
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("cache"), Some(350)),
        "{c}"
    );
}

/// Replaces the gateway with a new one (fresh memory) over the same cache tier, with `ns`
/// configured as an index so its watcher observes it.
fn restart_over(stack: &mut Stack, faulty: &FaultyTier, ns: &str) {
    let tier: Arc<dyn Tier> = Arc::new(faulty.clone());
    stack.restart_gateway(
        |c| {
            c.indexes = vec![IndexConfig {
                name: ns.into(),
                ..IndexConfig::default()
            }];
        },
        Some(tier),
    );
}

/// Fetches the first `n` rows through the gateway (backfilling the cache) and waits until the
/// cache holds them.
fn fetch_some(stack: &Stack, ns: &str, n: u64) {
    for i in 0..n {
        let r = stack.gw(
            Method::GET,
            &format!("/v2/namespaces/{ns}/documents/w{i:05}"),
            Bytes::new(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(stack, ns, "cache", None)["count"].as_u64() != Some(n) {
        assert!(
            Instant::now() < deadline,
            "fetch backfills never reached the cache"
        );
        pause(Duration::from_millis(20));
    }
}

#[test]
fn hint_cache_warm_passthrough_and_steps() {
    let (stack, faulty) = stack(Vec::new(), true);
    let ns = "hint";
    write(&stack, ns, &(0..120).map(row).collect::<Vec<_>>());
    wait_mirrored(&stack);
    stack.wait_watermark(ns, now_ms());
    let path = format!("/v1/namespaces/{ns}/hint_cache_warm");
    let direct = stack.direct(Method::GET, &path, Bytes::new());
    let bare = stack.gw(Method::GET, &path, Bytes::new());
    assert_eq!(
        (bare.status, bare.body.clone()),
        (direct.status, direct.body.clone()),
        "verbatim passthrough"
    );

    let steps = |q: &str| {
        let r = stack.gw(Method::GET, &format!("{path}?{q}"), Bytes::new());
        (r.status.as_u16(), r.json())
    };
    let (status, v) = steps("turbopuffer=false&documents=false&snapshots=true");
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["turbopuffer"],
        json!({"enabled": false, "status": "skipped"})
    );
    assert_eq!(
        v["documents"],
        json!({"enabled": false, "status": "skipped"})
    );
    assert_eq!(
        v["snapshots"],
        json!({"enabled": true, "status": "no_snapshot"})
    );
    stack.clear_requests();
    let (status, v) = steps("page_size=50");
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["namespace"].as_str(), v["turbopuffer"]["status"].as_str()),
        (Some(ns), Some("completed"))
    );
    let job = &v["documents"]["job"];
    assert_eq!(v["documents"]["status"], "started");
    for k in [
        "id",
        "namespace",
        "status",
        "progress",
        "documents_scanned",
        "created_at",
    ] {
        assert!(
            job.get(k).is_some(),
            "{k} missing from the nested WarmJob {job}"
        );
    }
    let done = wait_warm(&stack, ns, job["id"].as_str().unwrap());
    assert_eq!(done["documents_scanned"], 120);
    assert!(
        stack
            .upstream_requests()
            .iter()
            .any(|r| r["path"] == path.as_str()),
        "the hint went upstream"
    );

    // A snapshot to mirror: a policy on `category`, and the automatic writer's first snapshot
    // (manual bodies join the history only next to a policy's).
    let r = stack.gw(
        Method::PUT,
        &format!("/v2/namespaces/{ns}/snapshot-policy"),
        json!({"facetFields": ["category"], "interval": "1h", "retention": "never"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(30);
    let sha = loop {
        let h = stack
            .gw(
                Method::GET,
                &format!("/v2/namespaces/{ns}/history"),
                Bytes::new(),
            )
            .json();
        if let Some(sha) = h[0]["sha"].as_str() {
            break sha.to_string();
        }
        assert!(Instant::now() < deadline, "{h}");
        pause(Duration::from_millis(50));
    };
    let (status, v) = steps("turbopuffer=false&documents=false&snapshots=true");
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (
            v["snapshots"]["status"].as_str(),
            v["snapshots"]["sha"].as_str()
        ),
        (Some("completed"), Some(sha.as_str()))
    );
    assert!(
        v["snapshots"]["key"]
            .as_str()
            .unwrap()
            .starts_with(&format!("snapshots/{ns}/"))
    );
    assert!(v["snapshots"]["watermark_ms"].as_u64().is_some());

    // Cold cache: the bare hint and the turbopuffer-only step still work; documents or
    // snapshots answer 503 cache_cold.
    faulty.set_down(true);
    let bare = stack.gw(Method::GET, &path, Bytes::new());
    assert_eq!(
        (bare.status, bare.body),
        (direct.status, direct.body),
        "passthrough while cold"
    );
    let (status, _) = steps("documents=false&snapshots=false");
    assert_eq!(status, 200);
    for q in [
        "documents=true&snapshots=false",
        "documents=false&snapshots=true",
        "page_size=10",
    ] {
        let (status, v) = steps(q);
        assert_eq!(
            (status, v["error"].as_str()),
            (503, Some("cache_cold")),
            "{q}: {v}"
        );
    }
    faulty.set_down(false);
    let (status, v) = steps("documents=maybe");
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("validation_error"))
    );
}

#[test]
fn warm_pages_larger_than_the_tier_queue() {
    // One 10,000-row page is more puts than the NVMe tier queues (4,096): the warm must pace them.
    let (stack, faulty) = stack(Vec::new(), false);
    let ns = "warm-big-page";
    for chunk in (0..6000).collect::<Vec<u64>>().chunks(2000) {
        write(
            &stack,
            ns,
            &chunk.iter().map(|i| row(*i)).collect::<Vec<_>>(),
        );
    }
    stack.wait_watermark(ns, now_ms());
    let (status, job) = warm(&stack, ns, "?page_size=10000");
    assert_eq!(status, 202, "{job}");
    let done = wait_warm(&stack, ns, job["id"].as_str().unwrap());
    assert_eq!(done["documents_scanned"], 6000);
    let c = count(&stack, ns, "cache", None);
    assert_eq!(c["count"], 6000, "{c}");
    // The rows went in vouched for (serialized by the warm), so a fetch keeps them without
    // validating them again; the completed-warm marker, not a row, went in plainly.
    let stored = |id: &str| {
        stack
            .http
            .block_on(faulty.get_stored(Set::Documents, ns, id))
            .expect("tier read")
            .expect("stored")
    };
    let warmed = stored("w00042");
    assert!(warmed.vouched);
    assert_eq!(
        serde_json::from_slice::<Value>(&warmed.value).unwrap()["n"],
        42 % 13
    );
    assert!(!stored(WARM_MARKER_ID).vouched);
}

#[test]
fn a_namespace_clear_during_a_warm_restarts_it() {
    // delete_by_filter clears the namespace in the cache tier. Landing mid-warm, it wipes the
    // pages already written: the warm must not then mark the cache populated with what is left.
    let (stack, _) = stack(Vec::new(), false);
    let ns = "warm-clear";
    let rows: Vec<Value> = (0..1000).map(row).collect();
    write(&stack, ns, &rows);
    stack.wait_watermark(ns, now_ms());
    // Slow upstream pages, so the clear lands while the warm is under way.
    let rule = json!({"rules": [{"route": "query", "namespace": ns, "delay_ms": 200}]});
    assert_eq!(
        stack
            .direct(Method::POST, "/_emu/faults", rule.to_string())
            .status,
        200
    );
    let (status, job) = warm(&stack, ns, "?page_size=100");
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = stack
            .gw(
                Method::GET,
                &format!("/v2/namespaces/{ns}/warm-jobs/{id}"),
                Bytes::new(),
            )
            .json();
        assert_eq!(j["status"], "running", "the warm ended too soon: {j}");
        if j["documents_scanned"].as_u64().unwrap() >= 300 {
            break;
        }
        assert!(Instant::now() < deadline, "{j}");
        pause(Duration::from_millis(10));
    }
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}"),
        json!({"delete_by_filter": ["category", "Eq", "toys"]}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = stack.direct(Method::DELETE, "/_emu/faults", Bytes::new());
    assert_eq!(r.status, 200);
    let done = wait_warm(&stack, ns, &id);
    assert!(
        done["restarts"].as_u64().is_some_and(|n| n >= 1),
        "the warm saw the clear and started over: {done}"
    );
    let left = rows.iter().filter(|r| r["category"] != "toys").count() as u64;
    assert_eq!(done["documents_scanned"], left, "{done}");
    stack.wait_watermark(ns, now_ms());
    let origin = count(&stack, ns, "origin", None);
    assert_eq!(origin["count"], left, "{origin}");
    let cache = count(&stack, ns, "cache", None);
    assert_eq!(
        cache["count"], left,
        "every remaining row is cached: {cache}"
    );
    // Auto reads the cache only if the restarted pass's cut is at or after the clear's stamp
    // (otherwise origin, and a background warm); either way the count is exact.
    let auto = count(&stack, ns, "auto", None);
    assert_eq!(auto["count"].as_u64(), Some(left), "{auto}");
}
