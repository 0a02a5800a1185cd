//! The gateway killed with SIGKILL under write load: every write it acknowledged is in upstream.
//! The real binaries run as child processes (the emulator outlives the killed gateway); the
//! gateway runs at its defaults (write stamping, the write-path mirror, stable reads).

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::process::{Server, binary};
use layer_e2e::{Http, UPSTREAM_KEY};
use serde_json::{Value, json};

#[test]
fn nothing_acknowledged_is_lost_when_the_gateway_is_killed_under_write_load() {
    let mut emulator = Server::start(
        {
            let mut c = Command::new(binary("LAYER_EMULATOR_BIN", "turbopuffer-emulator"));
            c.args(["--listen", "127.0.0.1:0", "--api-key", UPSTREAM_KEY])
                .env_clear();
            c
        },
        "turbopuffer-emulator",
    );
    let data = layer_e2e::temp_dir("kill");
    let mut gateway = Server::start(
        {
            let mut c = Command::new(binary("LAYER_GATEWAY_BIN", "layer-gateway"));
            c.args(["--listen", "127.0.0.1:0", "--upstream-url", &emulator.url])
                .args(["--upstream-api-key", UPSTREAM_KEY])
                .arg("--data-dir")
                .arg(&data)
                .env_clear();
            c
        },
        "layer-gateway",
    );
    let http = Arc::new(Http::default());
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let bearer = format!("Bearer {UPSTREAM_KEY}");
    // Four writers, each upserting batches of 10 fresh ids as fast as answers come back, and
    // recording the ids of every batch the gateway acknowledged (2xx).
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (http, acked, stop, url, bearer) = (
                http.clone(),
                acked.clone(),
                stop.clone(),
                gateway.url.clone(),
                bearer.clone(),
            );
            std::thread::spawn(move || {
                let mut batch = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let ids: Vec<u64> = (0..10).map(|i| w * 1_000_000 + batch * 10 + i).collect();
                    batch += 1;
                    let rows: Vec<Value> = ids.iter().map(|id| json!({"id": id, "w": w})).collect();
                    let body = json!({"upsert_rows": rows}).to_string();
                    let r = http.block_on(async {
                        let req = http::Request::post(format!("{url}/v2/namespaces/killed"))
                            .header("authorization", &bearer)
                            .header("content-type", "application/json")
                            .body(http_body_util::Full::new(Bytes::from(body)))
                            .unwrap();
                        tokio::time::timeout(Duration::from_secs(5), http.client().request(req))
                            .await
                    });
                    match r {
                        Ok(Ok(resp)) if resp.status().is_success() => {
                            acked.lock().unwrap().extend(ids)
                        }
                        // The gateway died (connection refused or reset): stop writing.
                        _ => break,
                    }
                }
            })
        })
        .collect();
    // Kill once a good number of writes were acknowledged (observable state, not a sleep).
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 2_000 {
        assert!(Instant::now() < deadline, "the write load never got going");
        layer_e2e::pause(Duration::from_millis(5));
    }
    gateway.stop(false); // SIGKILL, mid-load
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // Every acknowledged id is in upstream: count them with strong reads, page by page.
    let mut found = std::collections::HashSet::new();
    let mut after: Option<u64> = None;
    loop {
        let mut body = json!({"rank_by": ["id", "asc"], "top_k": 10_000,
            "include_attributes": false, "consistency": {"level": "strong"}});
        if let Some(a) = after {
            body["filters"] = json!(["id", "Gt", a]);
        }
        let r = http.send(
            Method::POST,
            &format!("{}/v2/namespaces/killed/query", emulator.url),
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let rows = r.json()["rows"].as_array().cloned().unwrap_or_default();
        for row in &rows {
            found.insert(row["id"].as_u64().expect("u64 id"));
        }
        if rows.len() < 10_000 {
            break;
        }
        after = rows.last().and_then(|r| r["id"].as_u64());
    }
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged ids are missing upstream, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );
    emulator.stop(false);
}
