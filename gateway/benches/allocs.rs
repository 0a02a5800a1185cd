//! Heap allocations per request on the gateway's paths, counted by a test-only global allocator.
//!
//! Run: `cargo bench -p layer-gateway --bench allocs` (prints a Markdown table; `ALLOCS_N`
//! requests per scenario, 2,000 by default, after 200 of warm-up). `ALLOCS_TRACE="query stable"`
//! also records a backtrace per allocation over 20 requests of that scenario and prints the
//! allocation sites by count (slow; for finding what to remove, not for the numbers).
//!
//! One process holds three parts: the emulator (upstream) on its own tokio runtime, the gateway
//! (`layer_gateway::start`, one shard, every other setting at its default) and a sequential
//! HTTP/1.1 keep-alive client. The allocator counts every allocation made on a thread that is not
//! marked as the emulator's or the client's, so the gateway's shard, its control runtime and its
//! background loops are counted and nothing else is; the allocations made on the shard thread
//! (the request path itself) are also reported alone. Background work that is not per request is
//! measured in an idle window and subtracted from the total (the footer says how much).
//!
//! Scenarios (the namespace holds 1,000 rows written through the gateway, so rows carry the
//! stamp; vectors are 16-dim):
//! - `query stable`: a point query (id filter, `top_k` 1, `include_attributes: ["id"]`) on a
//!   namespace the watcher sees as stable: forwarded with eventual consistency, no predicate;
//! - `query top_k 100`: the same namespace, 100 rows with every attribute (a ~20 KB answer):
//!   the allocation count should not grow with the answer;
//! - `query strong`: `consistency: {"level": "strong"}`: the body is forwarded unchanged;
//! - `query predicate`: the emulator's indexer is paused and one more row written, so the
//!   namespace is updating and the watermark predicate is spliced into every query;
//! - `fetch hot`: `GET /v2/namespaces/{ns}/documents/{id}` on ids already in the hot cache;
//! - `write 1 row`: an upsert of one row (stamp, forward, invalidate).

// The one file of this crate that may use `unsafe` (see the manifest): a `GlobalAlloc` impl.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// The part of `ALLOCS` made on the gateway's shard threads (`layer-shard-N`): the request path.
static SHARD_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the emulator's and the client's threads: their allocations are not the gateway's.
    /// Also set while a trace is being taken (its own allocations are not the gateway's).
    static EXCLUDED: Cell<bool> = const { Cell::new(false) };
    /// 0: not looked at yet; 1: a gateway shard thread; 2: any other counted thread. (Const
    /// thread-locals without a destructor stay readable while a thread is torn down.)
    static KIND: Cell<u8> = const { Cell::new(0) };
}

/// While set, every counted allocation also records a backtrace (`ALLOCS_TRACE`).
static TRACING: AtomicBool = AtomicBool::new(false);
static TRACES: Mutex<Vec<Backtrace>> = Mutex::new(Vec::new());

fn count(size: usize) {
    if !EXCLUDED.with(Cell::get) {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
        if KIND.with(Cell::get) == 0 {
            // `thread::current` may allocate the first time: those allocations are not counted.
            EXCLUDED.with(|e| e.set(true));
            let shard = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("layer-shard"));
            EXCLUDED.with(|e| e.set(false));
            KIND.with(|k| k.set(if shard { 1 } else { 2 }));
        }
        if KIND.with(Cell::get) == 1 {
            SHARD_ALLOCS.fetch_add(1, Relaxed);
        }
        if TRACING.load(Relaxed) {
            EXCLUDED.with(|e| e.set(true));
            let bt = Backtrace::force_capture();
            if let Ok(mut t) = TRACES.lock() {
                t.push(bt);
            }
            EXCLUDED.with(|e| e.set(false));
        }
    }
}

/// Groups the recorded traces by allocation site: the first frame outside the allocator and
/// the standard library, and the first frame in this workspace's crates under it.
fn report_traces(requests: u64) {
    let traces = std::mem::take(&mut *TRACES.lock().expect("traces"));
    let mut sites: std::collections::HashMap<(String, String), u64> = Default::default();
    let mut sample: std::collections::HashMap<(String, String), String> = Default::default();
    for bt in &traces {
        let text = bt.to_string();
        let frames: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let (n, rest) = l.split_once(": ")?;
                n.parse::<u32>().ok().map(|_| rest)
            })
            .collect();
        let internal = |f: &&str| {
            [
                "std::",
                "core::",
                "alloc::",
                "allocs::",
                "<allocs::",
                "<alloc::",
                "<core::",
                "<std::",
                "__rustc",
                "__rust",
            ]
            .iter()
            .any(|p| f.starts_with(p))
        };
        let site = frames.iter().find(|f| !internal(f)).copied().unwrap_or("?");
        let mut ours: Vec<&str> = Vec::new();
        for f in &frames {
            let f = f.split("::{{closure}}").next().unwrap_or(f);
            let in_workspace = ["layer_gateway::", "scatter::", "layer_cache::"]
                .iter()
                .any(|p| f.contains(p));
            if in_workspace && ours.last() != Some(&f) && ours.len() < 3 {
                ours.push(f);
            }
        }
        let k = (site.to_string(), ours.join(" < "));
        sample.entry(k.clone()).or_insert_with(|| {
            let shown: Vec<&str> = frames
                .iter()
                .filter(|f| !internal(f))
                .take(14)
                .copied()
                .collect();
            shown.join("\n             ")
        });
        *sites.entry(k).or_default() += 1;
    }
    let mut v: Vec<_> = sites.into_iter().collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    println!(
        "\nallocation sites over {requests} requests ({} allocations):",
        traces.len()
    );
    for ((site, ours), n) in v.iter().take(60) {
        println!(
            "{:7.2}/req  {site}\n           in {ours}",
            *n as f64 / requests as f64
        );
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting
// touches only atomics and a const-initialized thread-local (neither allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const KEY: &str = "alloc-bench-key";
const NS: &str = "alloc-bench";

/// Blocks the bench's main thread (not a runtime thread: the workspace ban on
/// `std::thread::sleep` protects shard runtimes).
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d);
}

fn snapshot() -> (u64, u64, u64) {
    (
        ALLOCS.load(Relaxed),
        BYTES.load(Relaxed),
        SHARD_ALLOCS.load(Relaxed),
    )
}

fn excluded_runtime(threads: usize) -> tokio::runtime::Runtime {
    let mut b = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    b.enable_all()
        .on_thread_start(|| EXCLUDED.with(|e| e.set(true)))
        .build()
        .expect("runtime")
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Bench {
    rt: tokio::runtime::Runtime,
    client: HttpClient,
    base: String,
}

impl Bench {
    fn send(&self, method: &str, path: &str, body: &str) -> (u16, Bytes) {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .expect("request");
        self.rt.block_on(async {
            let resp = self.client.request(req).await.expect("gateway answers");
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (status, body)
        })
    }

    fn ok(&self, method: &str, path: &str, body: &str) -> Bytes {
        let (status, b) = self.send(method, path, body);
        assert_eq!(
            status,
            200,
            "{method} {path}: {}",
            String::from_utf8_lossy(&b)
        );
        b
    }

    /// Allocations and bytes per request over `n` requests (after `warmup`), less the idle rate.
    fn measure(
        &self,
        name: &str,
        n: u64,
        idle_per_s: (f64, f64),
        mut one: impl FnMut(u64),
    ) -> (f64, f64, f64) {
        for i in 0..200 {
            one(i);
        }
        if std::env::var("ALLOCS_TRACE").is_ok_and(|t| t == name) {
            TRACING.store(true, Relaxed);
            for i in 0..20 {
                one(i);
            }
            // The history writer takes its events off the queue every 5 ms: let it record
            // these before the trace ends (the idle rate adds well under one allocation).
            pause(Duration::from_millis(50));
            TRACING.store(false, Relaxed);
            report_traces(20);
        }
        let (a0, b0, s0) = snapshot();
        let start = Instant::now();
        for i in 0..n {
            one(i);
        }
        let secs = start.elapsed().as_secs_f64();
        let (a1, b1, s1) = snapshot();
        let a = (a1 - a0) as f64 - idle_per_s.0 * secs;
        let b = (b1 - b0) as f64 - idle_per_s.1 * secs;
        (a / n as f64, b / n as f64, (s1 - s0) as f64 / n as f64)
    }
}

fn main() {
    EXCLUDED.with(|e| e.set(true));
    let n: u64 = std::env::var("ALLOCS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let emu_rt = excluded_runtime(1);
    let emu = emu_rt
        .block_on(turbopuffer_emulator::start(turbopuffer_emulator::Config {
            api_keys: vec![KEY.into()],
            ..Default::default()
        }))
        .expect("emulator");
    let emu_thread = std::thread::spawn(move || {
        EXCLUDED.with(|e| e.set(true));
        emu_rt.block_on(std::future::pending::<()>());
    });
    drop(emu_thread);

    let data = std::env::temp_dir().join(format!("layer-allocs-{}", std::process::id()));
    let env = |_: &str| None;
    let mut cfg = layer_gateway::Config::load(None, &env).expect("default config");
    cfg.gateway.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.gateway.shards = 1;
    cfg.gateway.data_dir = data.clone();
    cfg.vector_store.endpoint.url = format!("http://{}", emu.addr);
    cfg.vector_store.credential.value = Some(KEY.into());
    let gw = layer_gateway::start(cfg, &env).expect("gateway");
    let bench = Bench {
        rt: excluded_runtime(1),
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{}", gw.addr),
    };

    // 1,000 rows written through the gateway (stamped), in batches of 100.
    for batch in 0..10 {
        let rows: Vec<String> = (0..100)
            .map(|i| {
                let id = batch * 100 + i;
                let v: Vec<String> = (0..16).map(|d| format!("{:.3}", ((id * 31 + d) % 97) as f64 / 97.0)).collect();
                format!(
                    r#"{{"id":{id},"vector":[{}],"title":"row number {id} of the allocation bench","category":"c{}","price":{}}}"#,
                    v.join(","),
                    id % 7,
                    id % 300
                )
            })
            .collect();
        bench.ok(
            "POST",
            &format!("/v2/namespaces/{NS}"),
            &format!(
                r#"{{"upsert_rows":[{}],"distance_metric":"cosine_distance"}}"#,
                rows.join(",")
            ),
        );
    }
    let qpath = format!("/v2/namespaces/{NS}/query");
    let point = r#"{"filters":["id","Eq",42],"rank_by":["id","asc"],"top_k":1,"include_attributes":["id"]}"#;
    // Wait until the gateway reports the namespace stable (no predicate on queries).
    let by = Instant::now() + Duration::from_secs(60);
    while !is_stable(&bench) {
        assert!(Instant::now() < by, "the namespace never became stable");
        pause(Duration::from_millis(100));
    }
    let ctl = Bench {
        rt: excluded_runtime(1),
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{}", emu.addr),
    };
    bench.ok("POST", &qpath, point);
    assert!(
        !last_query_has_predicate(&ctl),
        "a stable namespace's query carries no predicate"
    );

    // The idle rate: background loops only.
    let (a0, b0, _) = snapshot();
    let idle_start = Instant::now();
    pause(Duration::from_secs(3));
    let (a1, b1, _) = snapshot();
    let secs = idle_start.elapsed().as_secs_f64();
    let idle = ((a1 - a0) as f64 / secs, (b1 - b0) as f64 / secs);

    let mut rows: Vec<(String, f64, f64, f64, usize)> = Vec::new();
    let mut record = |name: &str, r: (f64, f64, f64), answer: usize| {
        rows.push((name.to_string(), r.0, r.2, r.1, answer));
    };

    let big = r#"{"rank_by":["id","asc"],"top_k":100,"include_attributes":true}"#;
    let strong = r#"{"filters":["id","Eq",42],"rank_by":["id","asc"],"top_k":1,"include_attributes":["id"],"consistency":{"level":"strong"}}"#;
    for (name, body) in [
        ("query stable", point),
        ("query top_k 100", big),
        ("query strong", strong),
    ] {
        let ans = bench.ok("POST", &qpath, body).len();
        let r = bench.measure(name, n, idle, |_| {
            bench.ok("POST", &qpath, body);
        });
        record(name, r, ans);
    }

    let fpath = |i: u64| format!("/v2/namespaces/{NS}/documents/{}", i % 50);
    for i in 0..50 {
        bench.ok("GET", &fpath(i), "");
    }
    let ans = bench.ok("GET", &fpath(7), "").len();
    record(
        "fetch hot",
        bench.measure("fetch hot", n, idle, |i| {
            bench.ok("GET", &fpath(i), "");
        }),
        ans,
    );

    // Pause the emulator's indexer and write one row: the namespace is now updating.
    ctl.ok(
        "POST",
        "/_emu/indexer",
        &format!(r#"{{"namespace":"{NS}","paused":true}}"#),
    );
    bench.ok(
        "POST",
        &format!("/v2/namespaces/{NS}"),
        r#"{"upsert_rows":[{"id":5000,"vector":[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]}]}"#,
    );
    let by = Instant::now() + Duration::from_secs(60);
    loop {
        bench.ok("POST", &qpath, point);
        if last_query_has_predicate(&ctl) {
            break;
        }
        assert!(Instant::now() < by, "the predicate was never spliced");
        pause(Duration::from_millis(100));
    }
    let ans = bench.ok("POST", &qpath, point).len();
    record(
        "query predicate",
        bench.measure("query predicate", n, idle, |_| {
            bench.ok("POST", &qpath, point);
        }),
        ans,
    );

    let wpath = format!("/v2/namespaces/{NS}");
    record("write 1 row", bench.measure("write 1 row", n / 4, idle, |i| {
        bench.ok(
            "POST",
            &wpath,
            &format!(r#"{{"upsert_rows":[{{"id":{},"title":"w","vector":[0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2]}}]}}"#, 10_000 + i),
        );
    }), 0);

    println!(
        "| scenario | allocations / request | of which on the shard | bytes allocated / request | answer bytes |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, a, sh, b, ans) in &rows {
        println!("| {name} | {a:.1} | {sh:.1} | {b:.0} | {ans} |");
    }
    println!(
        "\n{n} requests per scenario (writes: {}); idle background: {:.1} allocations/s, {:.0} bytes/s (subtracted)",
        n / 4,
        idle.0,
        idle.1
    );
    gw.shutdown();
    let _ = std::fs::remove_dir_all(&data);
}

/// The gateway's `layer.is_stable` for the bench namespace.
fn is_stable(bench: &Bench) -> bool {
    let (status, body) = bench.send("GET", &format!("/v2/namespaces/{NS}/metadata"), "");
    status == 200
        && serde_json::from_slice::<serde_json::Value>(&body)
            .is_ok_and(|v| v["layer"]["is_stable"] == serde_json::Value::Bool(true))
}

/// Whether the last query the emulator received carried the watermark predicate.
fn last_query_has_predicate(ctl: &Bench) -> bool {
    let log = ctl.ok("GET", "/_emu/requests?limit=20", "");
    let v: serde_json::Value = serde_json::from_slice(&log).expect("request log");
    let last = v["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .rev()
        .find(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/query")))
        .expect("a query in the log")
        .clone();
    last["body"].to_string().contains("_hevlayer_upserted_at")
}
