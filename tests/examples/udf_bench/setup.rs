//! Setup, not measured: the rows written through the gateway, the watermarks waited for, the
//! UDFs created paused; and the emulator's write delay each comparison sets.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use layer_e2e::now_ms;
use serde_json::{Value, json};

use crate::client::{Http, send};
use crate::{SEED_BATCH, Scenario};

pub(crate) fn row_id(i: usize) -> String {
    format!("r{i:07}")
}

/// Every namespace written through the gateway, the watermarks waited for, the UDFs created
/// paused.
pub(crate) async fn setup(http: &Http, base: &str, scenarios: &[Scenario]) {
    let t = Instant::now();
    let mut written = 0;
    for s in scenarios {
        for ns in [s.ns, s.floor_ns] {
            seed(http, base, ns, s.rows).await;
            written += s.rows;
        }
    }
    let seeded = t.elapsed().as_secs_f64();
    let after = now_ms();
    let mut note = String::new();
    for s in scenarios {
        for ns in [s.ns, s.floor_ns] {
            if !wait_watermark(http, base, ns, after).await {
                note.push_str(&format!(
                    " The watermark of {ns} did not pass the last write within 60 s: discovery \
                     may read an earlier cut (checked below)."
                ));
            }
        }
    }
    let covered = t.elapsed().as_secs_f64();
    for s in scenarios {
        let spec = json!({
            "target_namespaces": [s.ns], "inputs": ["id", "title"],
            "worker": {"batch_size": s.batch},
            "schedule": {"discovery_interval_seconds": 86_400},
            "paused": true,
        });
        let (st, v) = send(
            http,
            Method::POST,
            &format!("{base}/v2/udfs"),
            json!({"id": s.udf, "spec": spec}).to_string(),
        )
        .await;
        assert_eq!(st, 201, "create {}: {v}", s.udf);
    }
    println!();
    println!(
        "Setup (not measured): {written} rows written through the gateway into {} namespaces in \
         {seeded:.1} s, the watermarks covering them after {covered:.1} s.{note}",
        2 * scenarios.len()
    );
}

/// Sets (or with 0 clears) the emulator's write delay.
pub(crate) async fn write_delay(http: &Http, emulator: &str, delay_ms: u64) {
    let (s, v) = send(
        http,
        Method::DELETE,
        &format!("{emulator}/_emu/faults"),
        String::new(),
    )
    .await;
    assert!((200..300).contains(&s), "clear faults: {v}");
    if delay_ms > 0 {
        let rule = json!({"rules": [{"route": "write", "delay_ms": delay_ms}]});
        let (s, v) = send(
            http,
            Method::POST,
            &format!("{emulator}/_emu/faults"),
            rule.to_string(),
        )
        .await;
        assert_eq!(s, 200, "write delay: {v}");
    }
}

/// Writes `rows` rows to `ns` through the gateway, `SEED_BATCH` a call, 4 writers.
async fn seed(http: &Http, base: &str, ns: &str, rows: usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (http, next) = (http.clone(), next.clone());
        let url = format!("{base}/v2/namespaces/{ns}");
        tasks.push(tokio::spawn(async move {
            loop {
                let from = next.fetch_add(SEED_BATCH, Ordering::Relaxed);
                if from >= rows {
                    return;
                }
                let upsert: Vec<Value> = (from..(from + SEED_BATCH).min(rows))
                    .map(|i| {
                        json!({"id": row_id(i), "title": format!("product {i} in a bench title"),
                               "n": i})
                    })
                    .collect();
                let (s, v) = send(
                    &http,
                    Method::POST,
                    &url,
                    json!({ "upsert_rows": upsert }).to_string(),
                )
                .await;
                assert_eq!(s, 200, "seed {url}: {v}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("seed writer");
    }
}

/// Waits (up to 60 s) until the gateway's watermark for `ns` passes `after_ms` or the namespace
/// is stable; false when it did not.
async fn wait_watermark(http: &Http, base: &str, ns: &str, after_ms: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let (s, v) = send(
            http,
            Method::GET,
            &format!("{base}/v2/namespaces/{ns}/metadata"),
            String::new(),
        )
        .await;
        let layer = &v["layer"];
        if s == 200
            && layer["stable_as_of"]
                .as_u64()
                .is_some_and(|wm| wm > after_ms || layer["is_stable"] == true)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
