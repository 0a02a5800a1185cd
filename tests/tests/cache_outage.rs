//! The document cache tier down and back, seen through `/health`, fetch, warm and cache scans.
//!
//! The tier is an NVMe tier behind `layer_e2e::tier::RemoteTier`, a link the test cuts and
//! restores; its health comes from the outcomes of the gateway's own operations (cold after the
//! backends' default of 8 consecutive failures, warm at the next success), not from a switch.
//! While it is down: fetches fall through to origin (`x-layer-cache: miss-on-error`, the right
//! row), `/health` answers 503 `degraded` with the cache and the warmed namespace `cold`, warm
//! jobs and cache-sourced scans answer 503 `cache_cold`. Once it is back: the gateway's next
//! tier operation turns `/health` 200 again (a new reconnect generation), fetches hit the cache,
//! a warm completes and a cache scan counts every row.
//!
//! Every knob is at its default except the write-path mirror (off, see the test).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_cache::{NvmeConfig, NvmeTier, Tier};
use layer_e2e::tier::RemoteTier;
use layer_e2e::{Reply, Stack, UPSTREAM_KEY, pause, temp_dir};
use serde_json::{Value, json};

const NS: &str = "tier-outage";
const ROWS: usize = 20;

fn health(stack: &Stack) -> Reply {
    stack.http.send(
        Method::GET,
        &format!("{}/health", stack.gateway_url),
        &[],
        Bytes::new(),
    )
}

/// `GET …/documents/{id}`: status, `x-layer-cache`, body.
fn fetch(stack: &Stack, id: &str) -> (u16, String, Value) {
    let r = stack.gw(
        Method::GET,
        &format!("/v2/namespaces/{NS}/documents/{id}?include_attributes=n"),
        Bytes::new(),
    );
    let cache = r
        .headers
        .get("x-layer-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (r.status.as_u16(), cache, r.json())
}

/// `POST …/warm` the way the hevlayer client sends it (no body).
fn warm(stack: &Stack) -> Reply {
    stack.http.send(
        Method::POST,
        &format!("{}/v2/namespaces/{NS}/warm", stack.gateway_url),
        &[("authorization", &format!("Bearer {UPSTREAM_KEY}"))],
        Bytes::new(),
    )
}

/// Starts a warm and waits for it to complete.
fn warm_to_completion(stack: &Stack) {
    let r = warm(stack);
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = stack
            .gw(
                Method::GET,
                &format!("/v2/namespaces/{NS}/warm-jobs/{id}"),
                Bytes::new(),
            )
            .json();
        if j["status"] != "running" {
            assert_eq!(j["status"], "completed", "{j}");
            return;
        }
        assert!(Instant::now() < deadline, "warm never finished: {j}");
        pause(Duration::from_millis(20));
    }
}

fn cache_count(stack: &Stack) -> Reply {
    stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{NS}/scans"),
        json!({"mode": "count", "source": "cache"}).to_string(),
    )
}

fn namespace_state(h: &Value) -> Value {
    h["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .find(|n| n["namespace"] == NS)
        .map(|n| n["state"].clone())
        .unwrap_or(Value::Null)
}

#[test]
fn a_cache_tier_outage_and_recovery_through_health() {
    let nvme: Arc<dyn Tier> = Arc::new(
        NvmeTier::open(NvmeConfig::new(temp_dir("outage-nvme"), 64 << 20)).expect("nvme tier"),
    );
    let link = RemoteTier::new(nvme);
    let tier: Arc<dyn Tier> = Arc::new(link.clone());
    // The write-path mirror stays off (the harness's setting; on by default): it would put the
    // written rows into the writing shard's in-memory hot cache, and this test needs fetches
    // that reach the tier.
    let stack = Stack::start_with_tier(|_| {}, Some(tier));
    let rows: Vec<Value> = (0..ROWS)
        .map(|i| json!({"id": format!("d{i}"), "n": i}))
        .collect();
    stack.write(NS, json!({"upsert_rows": rows}));
    stack.wait_watermark(NS, layer_e2e::now_ms());
    warm_to_completion(&stack);
    let h = health(&stack);
    assert_eq!(h.status, 200, "{}", h.text());
    let (body, generation) = (h.json(), h.json()["cache"]["reconnect_generation"].clone());
    assert_eq!(body["cache"]["state"], "warm", "{body}");
    assert_eq!(namespace_state(&body), "warm", "{body}");
    assert_eq!(
        fetch(&stack, "d0").1,
        "hit",
        "warmed rows are served from the cache"
    );

    // The tier goes away. Fetches of rows no shard holds in memory need it: they fall through
    // to origin, and their failures turn the tier cold.
    link.cut();
    let mut next = 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    let down = loop {
        assert!(
            next < ROWS,
            "{ROWS} fetches failed on the tier and it never went cold"
        );
        let id = format!("d{next}");
        let (status, cache, doc) = fetch(&stack, &id);
        assert_eq!((status, cache.as_str()), (200, "miss-on-error"), "{doc}");
        assert_eq!(
            (&doc["id"], &doc["attributes"]["n"]),
            (&json!(id), &json!(next))
        );
        next += 1;
        let h = health(&stack);
        if h.status != 200 {
            break h;
        }
        assert!(Instant::now() < deadline, "the tier never went cold");
    };
    assert!(link.failed() >= 8, "cold only after the threshold");
    assert_eq!(down.status, 503, "{}", down.text());
    let body = down.json();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["cache"]["state"], "cold", "{body}");
    assert_eq!(namespace_state(&body), "cold", "{body}");
    for r in [warm(&stack), cache_count(&stack)] {
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.json()["error"], "cache_cold", "{}", r.text());
    }
    let (status, cache, doc) = fetch(&stack, &format!("d{next}"));
    assert_eq!((status, cache.as_str()), (200, "miss-on-error"), "{doc}");

    // The tier comes back: the gateway's next fetch reaches it and the health recovers.
    link.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    let up = loop {
        let (status, _, doc) = fetch(&stack, "d19");
        assert_eq!(status, 200, "{doc}");
        let h = health(&stack);
        if h.status == 200 {
            break h.json();
        }
        assert!(Instant::now() < deadline, "the health never recovered");
        pause(Duration::from_millis(20));
    };
    assert_eq!(up["cache"]["state"], "warm", "{up}");
    assert!(
        up["cache"]["reconnect_generation"].as_u64() > generation.as_u64(),
        "a new reconnect generation: {up}"
    );
    // Rows the warm cached before the outage are hits again (no shard fetched them since).
    let id = format!("d{}", next + 1);
    assert!(next + 1 < 19, "a row left that was never fetched");
    let (status, cache, doc) = fetch(&stack, &id);
    assert_eq!((status, cache.as_str()), (200, "hit"), "{doc}");
    assert_eq!(doc["attributes"]["n"], json!(next + 1));
    warm_to_completion(&stack);
    let r = cache_count(&stack);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["count"], ROWS, "{}", r.text());
    let h = health(&stack);
    assert_eq!(h.status, 200);
    assert_eq!(namespace_state(&h.json()), "warm", "{}", h.text());
}
