//! The floor: the same `patch_columns` writes the gateway's completions make, sent straight to
//! the emulator by 4 writers; and the gateway's own last completion body, read back from the
//! emulator's request log for comparison.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};

use crate::client::{Http, send};
use crate::cpu::{Cpu, CpuDelta};
use crate::setup::row_id;
use crate::{Scenario, WORKERS};

/// The floor's body for rows `from..to`: the columns the gateway's completion writes.
pub(crate) fn floor_body(sc: &Scenario, from: usize, to: usize) -> String {
    let n = to - from;
    let ids: Vec<String> = (from..to).map(row_id).collect();
    let mut cols = serde_json::Map::new();
    cols.insert("id".into(), json!(ids));
    cols.insert("tag".into(), json!(vec!["x"; n]));
    cols.insert(sc.marker(), json!(vec!["v1"; n]));
    cols.insert(sc.stale(), Value::Array(vec![Value::Null; n]));
    json!({ "patch_columns": cols }).to_string()
}

/// One pass of the floor.
pub(crate) struct Floor {
    pub(crate) secs: f64,
    pub(crate) calls: Vec<Duration>,
    pub(crate) cpu: CpuDelta,
}

impl Floor {
    pub(crate) fn rate(&self, rows: usize) -> f64 {
        rows as f64 / self.secs
    }
}

/// Every row of the floor namespace patched straight on the emulator, `batch` ids a call, 4
/// writers.
pub(crate) async fn floor(http: &Http, emulator: &str, sc: &Scenario) -> Floor {
    let (rows, batch) = (sc.rows, sc.batch);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = Cpu::take();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let (http, next) = (http.clone(), next.clone());
        let url = format!("{emulator}/v2/namespaces/{}", sc.floor_ns);
        let sc = *sc;
        tasks.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            loop {
                let from = next.fetch_add(batch, Ordering::Relaxed);
                if from >= rows {
                    return calls;
                }
                let body = floor_body(&sc, from, (from + batch).min(rows));
                let t = Instant::now();
                let (s, v) = send(&http, Method::POST, &url, body).await;
                calls.push(t.elapsed());
                assert_eq!(s, 200, "floor write: {v}");
            }
        }));
    }
    let mut calls = Vec::new();
    for t in tasks {
        calls.extend(t.await.expect("floor writer"));
    }
    let secs = started.elapsed().as_secs_f64();
    Floor {
        secs,
        calls,
        cpu: Cpu::take().since(&cpu),
    }
}

/// The largest of the last completion writes the emulator logged for `ns` (a full batch, not
/// the tail).
pub(crate) async fn last_completion_body(http: &Http, emulator: &str, ns: &str) -> String {
    let (_, v) = send(
        http,
        Method::GET,
        &format!("{emulator}/_emu/requests?limit=200"),
        String::new(),
    )
    .await;
    let path = format!("/v2/namespaces/{ns}");
    v["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["method"] == "POST" && r["path"] == path.as_str())
        .filter_map(|r| r["body"].as_str())
        .filter(|b| b.contains("patch_columns"))
        .max_by_key(|b| b.len())
        .unwrap_or_default()
        .to_string()
}
