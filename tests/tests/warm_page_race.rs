//! A write landing on a page a warm job is copying: the cache ends up holding the new row, never
//! the one the write replaced (docs/src/warm.md: the affected page is re-read).
//!
//! The emulator executes the warm's page read, then holds its answer (`hold_ms`); the test waits
//! until that read reached upstream, writes new values for two ids of the page through the
//! gateway, and checks that the warm has not consumed the page yet. So the page the warm then
//! puts into the tier carries the old rows, and only the warm's race handling can replace them.
//! Run twice: at the defaults (the write-path mirror off, so only the warm's re-read can put the
//! new rows there), and with the opt-in mirror on, so the write also puts its rows into the cache
//! in the background and the two must agree.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_cache::{NvmeConfig, NvmeTier, Set, Tier};
use layer_e2e::{Stack, UPSTREAM_KEY, now_ms, pause, temp_dir};
use serde_json::{Value, json};

const ROWS: u64 = 10;
/// The ids the racing write changes.
const CHANGED: [&str; 2] = ["r3", "r7"];

fn get(stack: &Stack, path: &str) -> Value {
    let r = stack.gw(Method::GET, path, Bytes::new());
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// The tier's copy of `id` (panics when absent).
fn cached(stack: &Stack, tier: &Arc<dyn Tier>, ns: &str, id: &str) -> Value {
    let bytes = stack
        .http
        .block_on(tier.get(Set::Documents, ns, id))
        .expect("tier read")
        .unwrap_or_else(|| panic!("{id} is not in the cache"));
    serde_json::from_slice(&bytes).expect("a cached row is JSON")
}

fn race(mirror: bool) {
    let ns = if mirror {
        "race-mirror"
    } else {
        "race-no-mirror"
    };
    let nvme: Arc<dyn Tier> = Arc::new(
        NvmeTier::open(NvmeConfig::new(temp_dir("race-nvme"), 64 << 20)).expect("nvme tier"),
    );
    let stack = Stack::start_with_tier(
        |c| {
            // The mirror is opt-in (default off); the second run turns it on.
            if mirror {
                c.gateway.cache.populate_max_ids = 1000;
            }
        },
        Some(nvme.clone()),
    );
    let rows: Vec<Value> = (0..ROWS)
        .map(|i| json!({"id": format!("r{i}"), "v": "old"}))
        .collect();
    stack.write(ns, json!({"upsert_rows": rows}));
    // The warm copies what the watermark covers: wait until it covers the rows.
    stack.wait_watermark(ns, now_ms());
    if mirror {
        // The mirror's read-back of that write must not meet the fault rule below.
        let sample = r#"layer_document_cache_events_total{event="populated"}"#;
        let deadline = Instant::now() + Duration::from_secs(10);
        while stack.metric(sample) < 1.0 {
            assert!(Instant::now() < deadline, "the mirror never ran");
            pause(Duration::from_millis(20));
        }
    }
    stack.clear_requests();
    // The next query of the namespace (the warm's page read) runs, then its answer waits 3 s.
    let rule = json!({"rules": [{"route": "query", "namespace": ns, "count": 1, "hold_ms": 3000}]});
    let r = stack.direct(Method::POST, "/_emu/faults", rule.to_string());
    assert!(r.status.is_success(), "{}", r.text());
    let bearer = format!("Bearer {UPSTREAM_KEY}");
    let r = stack.http.send(
        Method::POST,
        &format!("{}/v2/namespaces/{ns}/warm", stack.gateway_url),
        &[("authorization", &bearer)],
        Bytes::new(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let job = r.json()["id"].as_str().expect("job id").to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stack.upstream_requests().iter().any(|q| {
        q["path"] == format!("/v2/namespaces/{ns}/query")
            && q["body"]
                .as_str()
                .is_some_and(|b| b.contains("_hevlayer_upserted_at"))
    }) {
        assert!(Instant::now() < deadline, "the warm never read a page");
        pause(Duration::from_millis(10));
    }
    let updates: Vec<Value> = CHANGED
        .iter()
        .map(|id| json!({"id": id, "v": "new"}))
        .collect();
    stack.write(ns, json!({"upsert_rows": updates}));
    let running = get(&stack, &format!("/v2/namespaces/{ns}/warm-jobs/{job}"));
    assert_eq!(
        (&running["status"], &running["documents_scanned"]),
        (&json!("running"), &json!(0)),
        "the write landed while the page was in flight: {running}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let j = get(&stack, &format!("/v2/namespaces/{ns}/warm-jobs/{job}"));
        if j["status"] != "running" {
            break j;
        }
        assert!(Instant::now() < deadline, "warm never finished: {j}");
        pause(Duration::from_millis(20));
    };
    assert_eq!(done["status"], "completed", "{done}");
    for i in 0..ROWS {
        let id = format!("r{i}");
        let want = if CHANGED.contains(&id.as_str()) {
            "new"
        } else {
            "old"
        };
        let row = cached(&stack, &nvme, ns, &id);
        assert_eq!(row["v"], want, "mirror {mirror}: the cache's {id}: {row}");
        let doc = get(
            &stack,
            &format!("/v2/namespaces/{ns}/documents/{id}?include_attributes=v"),
        );
        assert_eq!(
            doc["attributes"]["v"], want,
            "mirror {mirror}: fetch of {id}"
        );
    }
}

#[test]
fn a_write_during_a_warm_leaves_the_new_row_in_the_cache() {
    // At the defaults: the mirror is off, so only the warm's re-read can put the new rows there.
    race(false);
}

#[test]
fn with_the_write_mirror_on_the_warm_and_the_mirror_agree() {
    race(true);
}
