//! A warm that overlaps a steady stream of writes through the gateway (what the soak runs,
//! `bench/results/2026-12-03-soak.md`): the rows the writes did not touch all reach the cache,
//! and `auto` never answers from a cached view that writes have passed.
//!
//! Everything runs at the documented defaults (the harness's).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::{Stack, UPSTREAM_KEY, now_ms, pause};
use serde_json::{Value, json};

const ROWS: u64 = 4000;

fn row(i: u64, category: &str) -> Value {
    json!({"id": format!("r{i:05}"), "category": category, "n": i % 17})
}

fn write(stack: &Stack, ns: &str, rows: Vec<Value>) {
    stack.write(ns, json!({"upsert_rows": rows}));
}

fn scan(stack: &Stack, ns: &str, body: Value) -> Value {
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/scans"),
        body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn count(stack: &Stack, ns: &str, source: &str, filters: Value) -> Value {
    scan(
        stack,
        ns,
        json!({"mode": "count", "source": source, "filters": filters}),
    )
}

/// Starts a warm (`page_size` small, so the namespace is many pages and every page overlaps
/// writes) and waits for it to complete.
fn warm_and_wait(stack: &Stack, ns: &str) -> Value {
    let bearer = format!("Bearer {UPSTREAM_KEY}");
    let r = stack.http.send(
        Method::POST,
        &format!(
            "{}/v2/namespaces/{ns}/warm?page_size=100",
            stack.gateway_url
        ),
        &[("authorization", &bearer)],
        Bytes::new(),
    );
    assert_eq!(r.status.as_u16(), 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("job id").to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = stack
            .gw(
                Method::GET,
                &format!("/v2/namespaces/{ns}/warm-jobs/{id}"),
                Bytes::new(),
            )
            .json();
        if j["status"] != "running" {
            assert_eq!(j["status"], "completed", "{j}");
            return j;
        }
        assert!(Instant::now() < deadline, "warm never finished: {j}");
        pause(Duration::from_millis(20));
    }
}

/// Writes through the gateway from another thread until stopped: each write inserts a new row
/// (`category: fresh`) and, when `update` is set, also rewrites one of the seeded rows.
struct Writer {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(gateway_url: String, ns: &str, update: bool) -> Writer {
        let (stop, writes) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, w, ns) = (stop.clone(), writes.clone(), ns.to_string());
        let thread = std::thread::spawn(move || {
            let http = layer_e2e::Http::default();
            let bearer = format!("Bearer {UPSTREAM_KEY}");
            let mut i = 0u64;
            while !s.load(Ordering::Acquire) {
                let mut rows = vec![json!({"id": format!("f{i:06}"), "category": "fresh"})];
                if update {
                    rows.push(row((i * 37) % ROWS, "updated"));
                }
                let r = http.send(
                    Method::POST,
                    &format!("{gateway_url}/v2/namespaces/{ns}"),
                    &[
                        ("authorization", &bearer),
                        ("content-type", "application/json"),
                    ],
                    json!({"upsert_rows": rows}).to_string(),
                );
                assert_eq!(r.status, 200, "write: {}", r.text());
                w.fetch_add(1, Ordering::AcqRel);
                i += 1;
            }
        });
        Writer {
            stop,
            writes,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        self.thread.take().expect("running").join().expect("writer");
        self.writes.load(Ordering::Acquire)
    }
}

#[test]
fn a_warm_overlapping_inserts_caches_every_row_they_did_not_touch() {
    let stack = Stack::start();
    let ns = "warm-races-inserts";
    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(1000) {
        write(
            &stack,
            ns,
            chunk.iter().map(|i| row(*i, "seeded")).collect(),
        );
    }
    stack.wait_watermark(ns, now_ms());

    let writer = Writer::start(stack.gateway_url.clone(), ns, false);
    // Wait until writes are flowing, so the warm's pages overlap them from the first one.
    let deadline = Instant::now() + Duration::from_secs(30);
    while writer.writes.load(Ordering::Acquire) < 5 {
        assert!(Instant::now() < deadline, "the writer never wrote");
        pause(Duration::from_millis(5));
    }
    let before = writer.writes.load(Ordering::Acquire);
    let job = warm_and_wait(&stack, ns);
    let during = writer.writes.load(Ordering::Acquire) - before;
    let total = writer.stop();
    assert!(during > 0, "no write overlapped the warm: {job}");

    // The view at the warm's cut: every seeded row, none of which a write touched.
    let c = count(&stack, ns, "cache", json!(["category", "Eq", "seeded"]));
    assert_eq!(
        c["count"], ROWS,
        "{during} writes overlapped the warm ({total} in all); the cache view lost rows no write \
         touched: {c}; {job}"
    );

    // Writes followed the warm's cut: `auto` reads origin (every acknowledged write once
    // stable) and warms again in the background.
    stack.wait_watermark(ns, now_ms());
    let c = count(&stack, ns, "auto", json!(["category", "Eq", "fresh"]));
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("origin"), Some(total)),
        "{c}"
    );
}

#[test]
fn auto_counts_stay_exact_while_updates_race_warms() {
    let stack = Stack::start();
    let ns = "warm-races-updates";
    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(1000) {
        write(
            &stack,
            ns,
            chunk.iter().map(|i| row(*i, "seeded")).collect(),
        );
    }
    stack.wait_watermark(ns, now_ms());
    // A quiet warm: auto answers from the cache, exactly.
    warm_and_wait(&stack, ns);
    let c = count(&stack, ns, "auto", json!(["n", "Lt", 100]));
    assert_eq!(
        (c["served_by"].as_str(), c["count"].as_u64()),
        (Some("cache"), Some(ROWS)),
        "{c}"
    );

    // Updates and inserts race a warm; afterwards, once the namespace is stable, every auto
    // count is exact (rows = the seeded ones plus one per write), whichever source answers.
    let writer = Writer::start(stack.gateway_url.clone(), ns, true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while writer.writes.load(Ordering::Acquire) < 5 {
        assert!(Instant::now() < deadline, "the writer never wrote");
        pause(Duration::from_millis(5));
    }
    warm_and_wait(&stack, ns);
    let total = writer.stop();
    stack.wait_watermark(ns, now_ms());
    let everything = json!(["Or", [["category", "NotEq", "x"], ["n", "Gte", 0]]]);
    let c = count(&stack, ns, "auto", everything.clone());
    assert_eq!(c["count"].as_u64(), Some(ROWS + total), "{c}");
    assert_eq!(c["served_by"], "origin", "writes followed the warm: {c}");
    let updated = count(&stack, ns, "origin", json!(["category", "Eq", "updated"]));
    assert!(
        updated["count"].as_u64() > Some(0),
        "the writer updated seeded rows: {updated}"
    );

    // The background warm auto started lands with no write after its cut: cache, still exact.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = count(&stack, ns, "auto", everything.clone());
        assert_eq!(c["count"].as_u64(), Some(ROWS + total), "{c}");
        if c["served_by"] == "cache" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "auto never served the re-warmed cache: {c}"
        );
        pause(Duration::from_millis(50));
    }
}
