//! End-to-end harness: starts a `turbopuffer-emulator` and a `layer-gateway` in process on
//! `127.0.0.1:0` and talks to both over real HTTP. Tests in `tests/tests/` use [`Stack`].
//!
//! The emulator's request log (`GET /_emu/requests`) is how tests prove the exact bytes the
//! gateway sent upstream. [`history`] holds the helpers the two search-history suites share;
//! [`process`] runs the real binaries as child processes (for a test that needs their stderr);
//! [`proxy`] is a TCP link a test can cut and restore (an object store made unreachable);
//! [`tier`] is a cache tier behind a link a test can cut and restore; [`kube_api`] is a scripted
//! Kubernetes API server (LIST and chunked WATCH) for the gateway's cluster watch.

pub mod history;
pub mod kube_api;
pub mod pipelines;
pub mod process;
pub mod proxy;
pub mod tier;
pub mod vm;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Blocks the calling test thread. Test threads are not runtime threads, so the workspace ban on
/// `std::thread::sleep` (which protects shard runtimes) does not apply here.
#[allow(clippy::disallowed_methods)]
pub fn pause(d: Duration) {
    std::thread::sleep(d);
}

/// A fresh directory under the system temp dir, unique to this process and call.
/// A configured inbound key (`keys` mode) whose token is its name.
pub fn configured_key(
    name: &str,
    scopes: Vec<layer_gateway::config::Scope>,
    namespaces: &[&str],
) -> layer_gateway::config::KeyConfig {
    layer_gateway::config::KeyConfig {
        name: name.into(),
        scopes,
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        token: Some(name.into()),
        token_env: None,
    }
}

pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("layer-e2e-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The upstream key every stack uses.
pub const UPSTREAM_KEY: &str = "tpuf_e2e_upstream_key";

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (panics with the body text when it is not JSON: tests only).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTP/1.1 client on its own runtime, with blocking helpers.
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Http {
    /// `h2c` selects HTTP/2 with prior knowledge.
    pub fn new(h2c: bool) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("client runtime");
        let client = Client::builder(TokioExecutor::new())
            .http2_only(h2c)
            .build_http();
        Http { rt, client }
    }

    /// Sends a request and reads the response.
    pub fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let what = format!("{method} {url}");
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).expect("request");
        self.rt.block_on(async {
            let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
                .await
                .unwrap_or_else(|_| panic!("{what}: timed out"))
                .unwrap_or_else(|e| panic!("{what}: request failed: {e:?}"));
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.expect("body").to_bytes();
            Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        })
    }

    /// Runs a future on the client runtime (for concurrent requests in a test).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Starts a future on the client runtime and returns its handle.
    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn(f)
    }

    /// The underlying client (for concurrent requests).
    pub fn client(&self) -> &Client<HttpConnector, Full<Bytes>> {
        &self.client
    }
}

/// An emulator on its own runtime.
pub struct Emulator {
    _rt: tokio::runtime::Runtime,
    pub addr: SocketAddr,
}

impl Emulator {
    pub fn start() -> Self {
        Self::start_with_keys(&[UPSTREAM_KEY])
    }

    /// An emulator that accepts only `keys` as bearer.
    pub fn start_with_keys(keys: &[&str]) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("emulator runtime");
        let running = rt
            .block_on(turbopuffer_emulator::start(turbopuffer_emulator::Config {
                api_keys: keys.iter().map(|k| k.to_string()).collect(),
                ..Default::default()
            }))
            .expect("emulator start");
        Emulator {
            addr: running.addr,
            _rt: rt,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Emulator + gateway.
pub struct Stack {
    pub http: Http,
    pub emulator: Emulator,
    pub gateway: Option<layer_gateway::Running>,
    pub gateway_url: String,
}

impl Stack {
    /// Emulator plus a gateway in the default mode (`deriveFromStore`, 2 shards).
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// Emulator plus a gateway whose config `tweak` adjusts.
    pub fn start_with(tweak: impl FnOnce(&mut layer_gateway::Config)) -> Self {
        Self::start_with_tier(tweak, None)
    }

    /// Like [`Stack::start_with`], with the gateway's cache tier supplied (e.g. a `FaultyTier`).
    pub fn start_with_tier(
        tweak: impl FnOnce(&mut layer_gateway::Config),
        tier: Option<std::sync::Arc<dyn layer_cache::Tier>>,
    ) -> Self {
        let emulator = Emulator::start();
        let mut cfg = base_config(&emulator.url());
        tweak(&mut cfg);
        let gateway = layer_gateway::start_with_tier(cfg, &|_| None, tier).expect("gateway start");
        let gateway_url = format!("http://{}", gateway.addr);
        Stack {
            http: Http::default(),
            emulator,
            gateway: Some(gateway),
            gateway_url,
        }
    }

    /// A request to the gateway with the upstream key as bearer.
    pub fn gw(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
        self.gw_with(method, path, &[], body)
    }

    /// A request to the gateway with extra headers (the bearer is added unless given).
    pub fn gw_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let bearer = format!("Bearer {UPSTREAM_KEY}");
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        if !h
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            h.push(("authorization", bearer.as_str()));
        }
        if !h
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            h.push(("content-type", "application/json"));
        }
        self.http
            .send(method, &format!("{}{path}", self.gateway_url), &h, body)
    }

    /// A request straight to the emulator.
    pub fn direct(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
        let bearer = format!("Bearer {UPSTREAM_KEY}");
        self.http.send(
            method,
            &format!("{}{path}", self.emulator.url()),
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            body,
        )
    }

    /// The requests the emulator received, oldest first (panics when the log cannot be read, so
    /// an empty list always means no requests).
    pub fn upstream_requests(&self) -> Vec<Value> {
        let r = self.direct(Method::GET, "/_emu/requests?limit=100000", Bytes::new());
        assert_eq!(r.status, 200, "request log: {}", r.text());
        r.json()["requests"]
            .as_array()
            .unwrap_or_else(|| panic!("request log without a `requests` array: {}", r.text()))
            .clone()
    }

    /// Clears the emulator's request log (panics when the clear fails).
    pub fn clear_requests(&self) {
        let r = self.direct(Method::DELETE, "/_emu/requests", Bytes::new());
        assert!(r.status.is_success(), "clear request log: {}", r.text());
    }

    /// Writes `body` to `ns` through the gateway, asserting 200.
    pub fn write(&self, ns: &str, body: impl std::fmt::Display) {
        let r = self.gw(
            Method::POST,
            &format!("/v2/namespaces/{ns}"),
            body.to_string(),
        );
        assert_eq!(r.status, 200, "write to {ns}: {}", r.text());
    }

    /// Waits (up to 30 s) until reads at the watcher's watermark for `ns` see every write made
    /// through this gateway before the call (`after_ms` = [`now_ms`]) or before `after_ms`:
    /// until the watermark passes `after_ms`, or metadata says `is_stable: true` (the watermark
    /// then covers every write this gateway got acknowledged, and at the default stable tier it
    /// may not move again for a minute). Returns the watermark.
    pub fn wait_watermark(&self, ns: &str, after_ms: u64) -> u64 {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.gw(
                Method::GET,
                &format!("/v2/namespaces/{ns}/metadata"),
                Bytes::new(),
            );
            if r.status == StatusCode::OK {
                let layer = &r.json()["layer"];
                if let Some(wm) = layer["stable_as_of"].as_u64()
                    && (wm > after_ms || layer["is_stable"] == true)
                {
                    return wm;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "watermark of {ns} never passed {after_ms}: {} {}",
                r.status,
                r.text()
            );
            pause(Duration::from_millis(20));
        }
    }

    /// Stops the gateway (graceful drain).
    pub fn stop_gateway(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown();
        }
    }
}

impl Stack {
    /// Stops the gateway (graceful: it drains and flushes) and starts a new one against the same
    /// emulator, configured like [`Stack::start_with`] ([`base_config`], a fresh data dir), then
    /// `tweak`, with the cache tier `tier` when given (e.g. the previous gateway's, to restart
    /// over the same cache).
    pub fn restart_gateway(
        &mut self,
        tweak: impl FnOnce(&mut layer_gateway::Config),
        tier: Option<std::sync::Arc<dyn layer_cache::Tier>>,
    ) {
        self.stop_gateway();
        let mut cfg = base_config(&self.emulator.url());
        tweak(&mut cfg);
        let gateway =
            layer_gateway::start_with_tier(cfg, &|_| None, tier).expect("gateway restart");
        self.gateway_url = format!("http://{}", gateway.addr);
        self.gateway = Some(gateway);
    }

    /// Sends `request` (raw bytes: request line, headers, any body) on a new connection to the
    /// gateway and returns the status line of what came back (empty when nothing did within
    /// 30 s): for requests an HTTP client will not send, or whose answer it would lose.
    pub fn raw_status(&self, request: &str) -> String {
        use std::io::{Read, Write};
        let addr = self.gateway_url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).expect("connect to the gateway");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(request.as_bytes())
            .expect("send the raw request");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// The value of one Prometheus sample on the gateway's `/metrics` (`name{labels}` exactly as
    /// rendered, e.g. `layer_search_history_events_total{outcome="written"}`); 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        let text = self.gw(Method::GET, "/metrics", Bytes::new()).text();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(sample)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    }
}

/// The gateway config every stack starts from: loopback listener, 2 shards, `emulator_url` as
/// upstream with [`UPSTREAM_KEY`], a fresh data dir, a 64 MiB cache without recovery, and the
/// write-path mirror off (its default).
pub fn base_config(emulator_url: &str) -> layer_gateway::Config {
    let mut cfg = layer_gateway::Config::default();
    cfg.gateway.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    cfg.gateway.shards = 2;
    cfg.vector_store.endpoint.url = emulator_url.to_string();
    cfg.vector_store.credential.value = Some(UPSTREAM_KEY.into());
    cfg.gateway.data_dir = temp_dir("gateway");
    cfg.gateway.cache.max_bytes = 64 << 20;
    cfg.gateway.cache.recover = false;
    cfg
}

/// Milliseconds since the Unix epoch (the unit of the gateway's watermarks).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// The S3-compatible server `scripts/s3-server` started for this test run
/// (`LAYER_TEST_S3_ENDPOINT`, `LAYER_TEST_S3_BUCKET`), if any.
#[derive(Clone, Debug)]
pub struct TestS3 {
    pub endpoint: String,
    pub bucket: String,
}

impl TestS3 {
    /// `None` when no S3 server was started. Credentials come from the process environment
    /// (`object_store` reads `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`; the server accepts
    /// any), so their absence is a setup error, not a skip.
    pub fn from_env() -> Option<TestS3> {
        let endpoint = std::env::var("LAYER_TEST_S3_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())?;
        let bucket =
            std::env::var("LAYER_TEST_S3_BUCKET").unwrap_or_else(|_| "layer-test".to_string());
        assert!(
            std::env::var("AWS_ACCESS_KEY_ID").is_ok()
                && std::env::var("AWS_SECRET_ACCESS_KEY").is_ok(),
            "LAYER_TEST_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not \
             (any value works with the test server; `eval \"$(scripts/s3-server)\"` exports them)"
        );
        Some(TestS3 { endpoint, bucket })
    }

    /// A key prefix unique to this process and moment (`e2e/{tag}-{pid}-{nanos}`), so tests
    /// sharing the bucket never see each other's objects.
    pub fn unique_prefix(tag: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("e2e/{tag}-{}-{nanos}", std::process::id())
    }

    /// Points a gateway's object store at this server, under `prefix` (unique per test).
    pub fn configure(&self, cfg: &mut layer_gateway::Config, prefix: &str) {
        let o = &mut cfg.gateway.object_store;
        o.backend = layer_gateway::config::ObjectStoreBackend::S3;
        o.bucket = Some(self.bucket.clone());
        o.endpoint = Some(self.endpoint.clone());
        o.region = Some("us-east-1".into());
        o.allow_http = true;
        o.prefix = prefix.to_string();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_gateway();
    }
}

/// The PostgreSQL `scripts/pg-server` started for this test run (`LAYER_TEST_DATABASE_URL`), as
/// a URL and a schema unique to the calling test, or `None` (after a loud message) when none was
/// started. Under CI (`CI=true`) a missing database is a failure: CI must never report the
/// pipelines tested when they were not.
pub fn test_database(tag: &str) -> Option<(String, String)> {
    match std::env::var("LAYER_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let schema = format!("e2e_{tag}_{}_{nanos:x}", std::process::id());
            Some((url, schema))
        }
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "LAYER_TEST_DATABASE_URL is unset under CI: start PostgreSQL with scripts/pg-server"
            )
        }
        _ => {
            eprintln!(
                "\n!!! SKIPPED {tag}: LAYER_TEST_DATABASE_URL is unset. Run \
                 `eval \"$(scripts/pg-server)\"` first (scripts/test does). !!!\n"
            );
            None
        }
    }
}
