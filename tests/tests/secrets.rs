//! Secrets stay secret (issue 16, item 7): the upstream key and the client tokens never appear in
//! the gateway's logs, in any response body or header, in `/metrics` or in `/health`, and no
//! client token ever reaches the upstream.
//!
//! Unlike the rest of the suite, the gateway runs here as a child process (the real
//! `layer-gateway` binary, `keys` auth from a `layer.yaml`) so its stderr can be read whole; the
//! emulator is a child too, so it can be stopped to make the gateway answer 502. The binaries are
//! found the way the Python suites find them: `LAYER_GATEWAY_BIN` / `LAYER_EMULATOR_BIN`, else
//! next to this test's executable (`<target>/<profile>/`), else `$CARGO_TARGET_DIR/debug/`. Build
//! them first: `cargo build -p layer-gateway -p turbopuffer-emulator --bins`.
//!
//! Each run makes fresh random tokens and upstream key, drives every kind of answer (2xx writes,
//! queries, fetches and listings; 401 for missing, malformed and wrong bearers — a prefix, a
//! suffix and an extension of a real token among them; 403 for scope and grant; 422; 413;
//! relayed upstream errors; 504 on an upstream timeout; 502 with the upstream stopped), with
//! bearers also in odd spellings and odd places, then scans everything it collected for each
//! secret, for `Bearer <secret>`, and for any 16-character piece of its random part.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::{Http, Reply, pause, temp_dir};
use serde_json::{Value, json};

/// A random lowercase hex string of `n` characters (no `rand` dependency: std's per-instance
/// randomly keyed hasher, fed the clock and a counter).
fn random_hex(n: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut out = String::new();
    while out.len() < n {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_usize(out.len());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(n);
    out
}

/// One secret: a name for reports, its value, and the random part it was made from.
struct Secret {
    name: &'static str,
    value: String,
    random: String,
}

impl Secret {
    fn new(name: &'static str, prefix: &str) -> Secret {
        let random = random_hex(40);
        Secret {
            name,
            value: format!("{prefix}{random}"),
            random,
        }
    }

    /// What must not appear (compared lowercase): the value, `bearer <value>`, the random part,
    /// and every 16-character window of it (a truncated or partly masked echo is a leak too).
    fn needles(&self) -> Vec<String> {
        let mut n = vec![
            self.value.to_ascii_lowercase(),
            format!("bearer {}", self.value).to_ascii_lowercase(),
            self.random.clone(),
        ];
        let r = self.random.as_bytes();
        for w in r.windows(16) {
            n.push(String::from_utf8_lossy(w).into_owned());
        }
        n
    }
}

/// Every secret of one run.
struct Secrets {
    upstream: Secret,
    reader: Secret,
    writer: Secret,
    admin: Secret,
}

impl Secrets {
    fn new() -> Secrets {
        Secrets {
            upstream: Secret::new("upstream key", "tpuf_"),
            reader: Secret::new("reader token", "hvl_"),
            writer: Secret::new("writer token", "hvl_"),
            admin: Secret::new("admin token", "hvl_"),
        }
    }

    fn all(&self) -> [&Secret; 4] {
        [&self.upstream, &self.reader, &self.writer, &self.admin]
    }

    fn clients(&self) -> [&Secret; 3] {
        [&self.reader, &self.writer, &self.admin]
    }
}

/// `text` without ANSI escape sequences (the gateway's log lines are colored), so an escape
/// between two characters cannot hide a secret from the scan.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Where each secret occurs in `texts` (`(where, text)` pairs), one report line per secret and
/// place, with an excerpt.
fn find_leaks(secrets: &[&Secret], texts: &[(String, String)]) -> Vec<String> {
    let mut leaks = Vec::new();
    for (place, text) in texts {
        let text = strip_ansi(text);
        let lower = text.to_ascii_lowercase();
        for s in secrets {
            if let Some((needle, at)) = s
                .needles()
                .into_iter()
                .find_map(|n| lower.find(&n).map(|at| (n, at)))
            {
                let from = lower[..at]
                    .char_indices()
                    .rev()
                    .nth(120)
                    .map_or(0, |(i, _)| i);
                let to = (at + needle.len() + 120).min(text.len());
                let to = (to..=text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(text.len());
                leaks.push(format!("{} in {place}: ...{}...", s.name, &text[from..to]));
            }
        }
    }
    leaks
}

/// The binary `name`: `$var`, else next to this test executable, else in
/// `$CARGO_TARGET_DIR/debug`.
fn binary(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return p.into();
    }
    let mut candidates = Vec::new();
    // <target>/<profile>/deps/secrets-<hash> → <target>/<profile>/<name>
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.join(name));
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()) {
        candidates.push(PathBuf::from(t).join("debug").join(name));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{name} not found (looked at {candidates:?}); build it first \
                 (cargo build -p layer-gateway -p turbopuffer-emulator --bins) or set {var}"
            )
        })
}

/// A server child process that prints `listening on http://ADDR` on stdout. Killed on drop.
struct Server {
    child: Option<Child>,
    url: String,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Server {
    fn start(mut cmd: Command, what: &str) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        // Both pipes are drained for the life of the process, so it never blocks on a full one.
        let stdout = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().trim_end_matches('/').to_string());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let stderr = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = BufReader::new(err).read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        let mut server = Server {
            child: Some(child),
            url: String::new(),
            stdout: Some(stdout),
            stderr: Some(stderr),
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => server.url = url,
            Err(_) => {
                let (out, err) = server.stop(false);
                panic!("{what} never said it was listening\nstdout:\n{out}\nstderr:\n{err}");
            }
        }
        server
    }

    /// Stops the process (SIGTERM first when `graceful`, SIGKILL after 20 s or at once
    /// otherwise) and returns everything it wrote: `(stdout, stderr)`.
    fn stop(&mut self, graceful: bool) -> (String, String) {
        if let Some(mut child) = self.child.take() {
            if graceful {
                let sent = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                let deadline = Instant::now() + Duration::from_secs(20);
                while sent && Instant::now() < deadline {
                    if let Ok(Some(status)) = child.try_wait() {
                        assert!(status.success(), "exited with {status} after SIGTERM");
                        break;
                    }
                    pause(Duration::from_millis(20));
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let join = |h: Option<JoinHandle<String>>| h.map(|h| h.join().unwrap_or_default());
        (
            join(self.stdout.take()).unwrap_or_default(),
            join(self.stderr.take()).unwrap_or_default(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How one run is set up.
struct RunSpec {
    /// `LAYER_LOG` for the gateway.
    log: &'static str,
    /// The client speaks HTTP/2 with prior knowledge instead of HTTP/1.1.
    h2c: bool,
    /// The upstream key and the writer's token are in the file, or in environment variables
    /// the file names.
    source: Source,
}

/// Where the gateway's secrets are written.
#[derive(Clone, Copy, PartialEq)]
enum Source {
    /// In `layer.yaml`.
    File,
    /// In environment variables `layer.yaml` names (`credential.env`, the writer's `tokenEnv`).
    Env,
    /// No upstream credential at all (client tokens in the file).
    NoCredential,
}

/// The gateway's `layer.yaml`: `keys` auth with a reader, a writer (both limited to `sec-*`)
/// and an admin key, in front of `emulator_url`.
fn layer_yaml(s: &Secrets, emulator_url: &str, data_dir: &Path, source: Source) -> String {
    let credential = match source {
        Source::File => format!("credential:\n    value: {}", s.upstream.value),
        Source::Env => "credential:\n    env: SECRETS_TEST_UPSTREAM_KEY".to_string(),
        Source::NoCredential => "credential: {}".to_string(),
    };
    let writer = if source == Source::Env {
        "tokenEnv: SECRETS_TEST_WRITER_TOKEN".to_string()
    } else {
        format!("token: {}", s.writer.value)
    };
    format!(
        r#"gateway:
  listen: 127.0.0.1:0
  shards: 2
  dataDir: {data_dir}
  maxBodyBytes: 65536
  cache:
    maxBytes: 67108864
    recover: false
  consistency:
    pollIntervalMs: 200
  history:
    flushIntervalMs: 200
vectorStore:
  endpoint:
    url: {emulator_url}
  {credential}
  connectTimeoutMs: 500
  requestTimeoutMs: 1500
  inboundAuth:
    mode: keys
    keys:
      - name: reader
        scopes: [read]
        namespaces: ["sec-*"]
        token: {reader}
      - name: writer
        scopes: [read, write]
        namespaces: ["sec-*"]
        {writer}
      - name: admin
        scopes: [admin]
        token: {admin}
"#,
        data_dir = data_dir.display(),
        reader = s.reader.value,
        admin = s.admin.value,
    )
}

/// The client side of a run: sends requests to the gateway and keeps every answer.
struct Driver<'a> {
    http: Http,
    gateway: String,
    emulator: String,
    upstream_key: &'a str,
    /// `(where, text)` of everything the gateway sent back.
    seen: Vec<(String, String)>,
}

impl Driver<'_> {
    /// Sends `method path` with `headers` and `body`, keeps every header and the body of the
    /// answer, and checks its status when `expect` is given.
    fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
        expect: Option<u16>,
    ) -> Reply {
        let mut h = headers.to_vec();
        if !h
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            h.push(("content-type", "application/json"));
        }
        let r = self
            .http
            .send(method.clone(), &format!("{}{path}", self.gateway), &h, body);
        let place = format!("the answer to {method} {path} ({})", r.status);
        for (name, value) in &r.headers {
            self.seen.push((
                format!("header {name} of {place}"),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
        self.seen.push((format!("body of {place}"), r.text()));
        if let Some(want) = expect {
            assert_eq!(
                r.status.as_u16(),
                want,
                "{method} {path} with {headers:?}: {}",
                r.text()
            );
        }
        r
    }

    /// Sends with `authorization: Bearer <token>`.
    fn as_key(
        &mut self,
        token: &str,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
        expect: Option<u16>,
    ) -> Reply {
        let bearer = format!("Bearer {token}");
        self.send(method, path, &[("authorization", &bearer)], body, expect)
    }

    /// A control request straight to the emulator (not collected: it is not the gateway's).
    fn emulator(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
        let bearer = format!("Bearer {}", self.upstream_key);
        let r = self.http.send(
            method,
            &format!("{}{path}", self.emulator),
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            body,
        );
        assert!(r.status.is_success(), "emulator {path}: {}", r.text());
        r
    }

    fn fault(&self, rule: Value) {
        self.emulator(
            Method::POST,
            "/_emu/faults",
            json!({"rules": [rule]}).to_string(),
        );
    }
}

fn run(spec: RunSpec) {
    let s = Secrets::new();
    let gateway_bin = binary("LAYER_GATEWAY_BIN", "layer-gateway");
    let emulator_bin = binary("LAYER_EMULATOR_BIN", "turbopuffer-emulator");

    let mut emu_cmd = Command::new(&emulator_bin);
    emu_cmd
        .args(["--listen", "127.0.0.1:0", "--threads", "1", "--api-key"])
        .arg(&s.upstream.value)
        .env_clear();
    let mut emulator = Server::start(emu_cmd, "turbopuffer-emulator");

    let dir = temp_dir("secrets");
    let config = dir.join("layer.yaml");
    std::fs::write(
        &config,
        layer_yaml(&s, &emulator.url, &dir.join("data"), spec.source),
    )
    .expect("write layer.yaml");
    let mut gw_cmd = Command::new(&gateway_bin);
    // Only what this run sets: no LAYER_* or TURBOPUFFER_* from the caller's environment.
    gw_cmd
        .arg("--config")
        .arg(&config)
        .env_clear()
        .env("LAYER_LOG", spec.log);
    if spec.source == Source::Env {
        gw_cmd
            .env("SECRETS_TEST_UPSTREAM_KEY", &s.upstream.value)
            .env("SECRETS_TEST_WRITER_TOKEN", &s.writer.value);
    }
    let mut gateway = Server::start(gw_cmd, "layer-gateway");

    let mut d = Driver {
        http: Http::new(spec.h2c),
        gateway: gateway.url.clone(),
        emulator: emulator.url.clone(),
        upstream_key: &s.upstream.value,
        seen: Vec::new(),
    };
    let (r, w, a) = (
        s.reader.value.clone(),
        s.writer.value.clone(),
        s.admin.value.clone(),
    );
    let ok = Some(200);

    // Successful traffic: writes, queries, fetches, listings, metadata, Layer's own routes.
    let docs = json!({"upsert_rows": [
        {"id": 1, "vector": [0.1, 0.2], "title": "one"},
        {"id": 2, "vector": [0.3, 0.1], "title": "two"},
    ], "distance_metric": "euclidean_squared"});
    d.as_key(
        &w,
        Method::POST,
        "/v2/namespaces/sec-a",
        docs.to_string(),
        ok,
    );
    d.as_key(
        &a,
        Method::POST,
        "/v2/namespaces/sec-b",
        docs.to_string(),
        ok,
    );
    let query = json!({"rank_by": ["vector", "ANN", [0.1, 0.2]], "top_k": 2,
        "include_attributes": ["title"], "consistency": {"level": "strong"}});
    // A search with a trace context, and a fetch with the same one (search history and
    // clickstream record both).
    let traceparent = format!("00-{}-{}-01", random_hex(32), random_hex(16));
    let bearer_r = format!("Bearer {r}");
    let traced = [
        ("authorization", bearer_r.as_str()),
        ("traceparent", traceparent.as_str()),
    ];
    d.send(
        Method::POST,
        "/v2/namespaces/sec-a/query",
        &traced,
        query.to_string(),
        ok,
    );
    d.as_key(
        &w,
        Method::POST,
        "/v1/namespaces/sec-a/query",
        query.to_string(),
        ok,
    );
    d.as_key(
        &r,
        Method::POST,
        "/v2/namespaces/sec-a/query",
        r#"{"rank_by":["id","asc"],"top_k":10,"filters":["title","Eq","two"]}"#,
        ok,
    );
    d.as_key(&r, Method::GET, "/v2/namespaces/sec-a/documents/1", "", ok);
    d.as_key(&r, Method::GET, "/v2/namespaces/sec-a/documents/1", "", ok);
    d.as_key(
        &r,
        Method::GET,
        "/v2/namespaces/sec-a/documents/404",
        "",
        None,
    );
    d.as_key(
        &r,
        Method::POST,
        "/v2/namespaces/sec-a/documents",
        r#"{"ids":[1,2,3]}"#,
        None,
    );
    d.send(
        Method::GET,
        "/v2/namespaces/sec-a/documents/2",
        &traced,
        "",
        ok,
    );
    d.as_key(&r, Method::GET, "/v1/namespaces", "", ok);
    d.as_key(&a, Method::GET, "/v1/namespaces", "", ok);
    d.as_key(&r, Method::GET, "/v2/namespaces", "", None);
    d.as_key(&r, Method::GET, "/v2/namespaces/sec-a/metadata", "", ok);
    d.as_key(&r, Method::GET, "/v1/namespaces/sec-a/schema", "", ok);
    d.as_key(&r, Method::HEAD, "/v2/namespaces/sec-a/metadata", "", ok);
    d.as_key(
        &w,
        Method::POST,
        "/v1/namespaces/sec-a/schema",
        r#"{"title":{"type":"string"}}"#,
        ok,
    );
    for path in [
        "/v2/namespaces/sec-a/search-history",
        "/v2/namespaces/sec-a/clickstream",
        "/v2/namespaces/sec-a/snapshots",
        "/v2/namespaces/sec-a/history",
        "/v2/activity/snapshots",
    ] {
        d.as_key(&r, Method::GET, path, "", None);
    }
    d.as_key(&w, Method::POST, "/v2/namespaces/sec-a/warm", "{}", None);
    d.as_key(
        &w,
        Method::POST,
        "/v2/namespaces/sec-a/snapshot-jobs",
        "{}",
        None,
    );
    d.as_key(&a, Method::DELETE, "/v2/namespaces/sec-b", "", ok);

    // The bearer in odd spellings that are still the bearer: lowercase or capital scheme,
    // extra spaces.
    for value in [
        format!("bearer {r}"),
        format!("BEARER {r}"),
        format!("Bearer    {r}"),
        format!("  Bearer {r}   "),
    ] {
        d.send(
            Method::GET,
            "/v2/namespaces/sec-a/metadata",
            &[("authorization", &value)],
            "",
            ok,
        );
    }

    // 401: missing, malformed, wrong (including a prefix, a suffix and an extension of a real
    // token, another case, and the upstream key, which is not a client key in `keys` mode).
    let query_path = "/v2/namespaces/sec-a/query";
    d.send(Method::POST, query_path, &[], query.to_string(), Some(401));
    let mut bad: Vec<String> = vec![
        String::new(),
        "Bearer".into(),
        "Bearer ".into(),
        r.clone(),
        format!("Token {r}"),
        format!("Basic {r}"),
        format!("Bearer\t{r}"),
        format!("Bearer{r}"),
        format!("Bearer {}", &r[..r.len() - 1]),
        format!("Bearer {}", &r[1..]),
        format!("Bearer {r}0"),
        format!("Bearer {}", r.to_ascii_uppercase()),
        format!("Bearer {} {r}", random_hex(8)),
        format!("Bearer {}", s.upstream.value),
    ];
    bad.push(format!("Bearer hvl_{}", random_hex(40)));
    for value in &bad {
        d.send(
            Method::POST,
            query_path,
            &[("authorization", value)],
            query.to_string(),
            Some(401),
        );
        d.send(
            Method::POST,
            "/v2/namespaces/sec-a",
            &[("authorization", value)],
            docs.to_string(),
            Some(401),
        );
    }
    // The token somewhere else than `authorization`.
    let bearer_w = format!("Bearer {w}");
    for (name, value) in [
        ("x-api-key", w.as_str()),
        ("proxy-authorization", bearer_w.as_str()),
        ("cookie", &format!("token={w}")),
    ] {
        d.send(
            Method::GET,
            "/v1/namespaces",
            &[(name, value)],
            "",
            Some(401),
        );
    }
    d.send(
        Method::GET,
        &format!("/v1/namespaces?api_key={w}"),
        &[],
        "",
        Some(401),
    );
    // Two `authorization` headers, the wrong one first.
    let wrong = format!("Bearer {}", &w[..w.len() - 2]);
    d.send(
        Method::GET,
        "/v1/namespaces",
        &[("authorization", &wrong), ("authorization", &bearer_w)],
        "",
        None,
    );

    // 403: scope (a reader writing) and grant (outside `sec-*`).
    d.as_key(
        &r,
        Method::POST,
        "/v2/namespaces/sec-a",
        docs.to_string(),
        Some(403),
    );
    d.as_key(&r, Method::DELETE, "/v2/namespaces/sec-a", "", Some(403));
    d.as_key(
        &w,
        Method::POST,
        "/v2/namespaces/other",
        docs.to_string(),
        Some(403),
    );
    d.as_key(
        &r,
        Method::POST,
        "/v2/namespaces/other/query",
        query.to_string(),
        Some(403),
    );
    d.as_key(
        &r,
        Method::GET,
        "/v2/namespaces/other/documents/1",
        "",
        Some(403),
    );

    // 422 from the gateway's own validation, and 404 for an unknown route.
    for body in [
        r#"{"upsert_rows":[{"id":1,"_hevlayer_upserted_at":5}]}"#,
        r#"{"unknown_op":true}"#,
        r#"{"upsert_rows":[{"id":1}],"upsert_rows":[{"id":2}]}"#,
    ] {
        d.as_key(&w, Method::POST, "/v2/namespaces/sec-a", body, Some(422));
    }
    d.as_key(&r, Method::POST, query_path, r#"{"top_k":"x"}"#, None);
    d.as_key(&r, Method::GET, "/v2/namespaces/sec-a/nope", "", Some(404));
    // 413: past maxBodyBytes (64 KiB).
    let big = json!({"upsert_rows": [{"id": 9, "t": "x".repeat(70_000)}]});
    d.as_key(
        &w,
        Method::POST,
        "/v2/namespaces/sec-a",
        big.to_string(),
        Some(413),
    );

    // Upstream errors relayed, and an upstream timeout (504).
    d.fault(json!({"route": "query", "status": 500, "count": 1}));
    d.as_key(&r, Method::POST, query_path, query.to_string(), Some(500));
    d.fault(json!({"route": "write", "status": 401, "count": 1,
        "body": {"status": "error", "error": "unauthorized"}}));
    d.as_key(
        &w,
        Method::POST,
        "/v2/namespaces/sec-a",
        docs.to_string(),
        Some(401),
    );
    d.fault(
        json!({"route": "metadata", "namespace": "sec-a", "status": 429, "count": 1,
        "headers": {"retry-after": "1"}}),
    );
    d.as_key(
        &r,
        Method::GET,
        "/v2/namespaces/sec-a/metadata",
        "",
        Some(429),
    );
    d.fault(json!({"route": "query", "delay_ms": 4000, "count": 1}));
    d.as_key(&r, Method::POST, query_path, query.to_string(), Some(504));
    d.fault(json!({"route": "write", "delay_ms": 4000, "count": 1}));
    d.as_key(
        &w,
        Method::POST,
        "/v2/namespaces/sec-a",
        docs.to_string(),
        Some(504),
    );
    d.emulator(Method::DELETE, "/_emu/faults", "");

    // Nothing but the upstream key reached the emulator as a credential, and no client token
    // reached it at all.
    let log = d
        .emulator(Method::GET, "/_emu/requests?limit=10000", "")
        .json();
    let logged = log["requests"].as_array().expect("request log").clone();
    assert!(!logged.is_empty(), "the emulator saw requests");
    let want = format!("Bearer {}", s.upstream.value);
    for req in &logged {
        assert_eq!(
            req["headers"]["authorization"].as_str(),
            Some(want.as_str()),
            "upstream request without the upstream key: {req}"
        );
    }
    let upstream_seen = vec![("the emulator's request log".to_string(), log.to_string())];
    let leaks = find_leaks(&s.clients(), &upstream_seen);
    assert!(
        leaks.is_empty(),
        "client tokens reached upstream:\n{}",
        leaks.join("\n")
    );

    d.send(Method::GET, "/metrics", &[], "", ok);
    d.send(Method::GET, "/health", &[], "", ok);

    // The upstream stops: 502 on every forwarded route, while the watcher polls fail too.
    let (_, _) = emulator.stop(false);
    d.as_key(&r, Method::POST, query_path, query.to_string(), Some(502));
    d.as_key(
        &w,
        Method::POST,
        "/v2/namespaces/sec-a",
        docs.to_string(),
        Some(502),
    );
    d.as_key(
        &r,
        Method::GET,
        "/v2/namespaces/sec-a/metadata",
        "",
        Some(502),
    );
    d.as_key(&r, Method::GET, "/v1/namespaces", "", Some(502));
    d.as_key(
        &r,
        Method::GET,
        "/v2/namespaces/sec-a/documents/7",
        "",
        None,
    );
    d.as_key(&w, Method::DELETE, "/v2/namespaces/sec-a", "", Some(502));
    pause(Duration::from_millis(600));
    d.send(Method::GET, "/metrics", &[], "", ok);
    d.send(Method::GET, "/health", &[], "", None);
    d.send(Method::HEAD, "/health", &[], "", None);

    let (stdout, stderr) = gateway.stop(true);
    // Kept for a failing run (the directory is removed when the run passes).
    let _ = std::fs::write(dir.join("gateway.stderr"), &stderr);
    // The whole stderr was captured, at the level asked for.
    let plain = strip_ansi(&stderr);
    let level = if spec.log.contains("trace") {
        " TRACE "
    } else {
        " DEBUG "
    };
    assert!(
        plain.contains("shutting down") && plain.lines().any(|l| l.contains(level)),
        "no{level}lines or no shutdown line in the gateway's stderr:\n{plain}"
    );
    let mut texts = d.seen;
    texts.push(("the gateway's stdout".into(), stdout));
    texts.extend(stderr.lines().enumerate().map(|(i, l)| {
        (
            format!("line {} of the gateway's stderr", i + 1),
            l.to_string(),
        )
    }));
    let leaks = find_leaks(&s.all(), &texts);
    assert!(
        leaks.is_empty(),
        "{} leaks (LAYER_LOG={}, {} texts, {} bytes of stderr in {}), the first ones:\n{}",
        leaks.len(),
        spec.log,
        texts.len(),
        stderr.len(),
        dir.display(),
        leaks[..leaks.len().min(20)].join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_secret_in_logs_answers_or_metrics_at_debug_over_http1() {
    run(RunSpec {
        log: "debug",
        h2c: false,
        source: Source::File,
    });
}

#[test]
fn no_secret_in_logs_answers_or_metrics_at_trace_over_h2c() {
    run(RunSpec {
        log: "trace",
        h2c: true,
        source: Source::Env,
    });
}

/// Runs `cmd` to its end (killed after 20 s): `(exited successfully, stdout, stderr)`.
fn run_to_exit(mut cmd: Command) -> (bool, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        pause(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    (status.is_some_and(|s| s.success()), out, err)
}

/// A `layer.yaml` whose mistake holds a secret stops the gateway at start, with an error that
/// names the key at fault but not the secret: credentials in the endpoint URL (refused, since
/// they would be unused and show in connection-pool logs), the upstream key written as the
/// `credential` itself, a token where a key entry belongs.
#[test]
fn startup_errors_do_not_repeat_secrets() {
    let s = Secrets::new();
    let gateway_bin = binary("LAYER_GATEWAY_BIN", "layer-gateway");
    let (up, token) = (&s.upstream.value, &s.reader.value);
    let cases = [
        (
            "vectorStore.endpoint.url must not carry credentials",
            format!(
                "vectorStore:\n  endpoint:\n    url: http://layer:{token}@127.0.0.1:9\n  \
                 credential:\n    value: {up}\n"
            ),
        ),
        (
            "vectorStore.credential: invalid type",
            format!("vectorStore:\n  credential: {up}\n"),
        ),
        (
            "vectorStore.inboundAuth.keys[0]: invalid type",
            format!(
                "vectorStore:\n  credential: {{value: {up}}}\n  inboundAuth:\n    mode: keys\n    \
                 keys:\n      - {token}\n"
            ),
        ),
    ];
    for (want, yaml) in cases {
        let dir = temp_dir("secrets-startup");
        let config = dir.join("layer.yaml");
        std::fs::write(&config, &yaml).expect("write layer.yaml");
        let mut cmd = Command::new(&gateway_bin);
        cmd.arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .env_clear()
            .env("LAYER_LOG", "trace");
        let (ok, stdout, stderr) = run_to_exit(cmd);
        assert!(!ok, "started with:\n{yaml}\nstdout:\n{stdout}");
        assert!(stderr.contains(want), "expected {want:?} in:\n{stderr}");
        let leaks = find_leaks(
            &s.all(),
            &[
                ("stderr".to_string(), stderr.clone()),
                ("stdout".to_string(), stdout),
            ],
        );
        assert!(leaks.is_empty(), "{want}:\n{}", leaks.join("\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A `keys` gateway without an upstream credential does not relay its callers' bearers (Layer
/// tokens) upstream: the upstream sees no `authorization` and refuses the request itself.
#[test]
fn keys_mode_without_a_credential_never_relays_client_tokens() {
    let s = Secrets::new();
    let emulator_bin = binary("LAYER_EMULATOR_BIN", "turbopuffer-emulator");
    // No --api-key: the emulator takes any bearer, and would take a relayed client token.
    let mut emu_cmd = Command::new(&emulator_bin);
    emu_cmd
        .args(["--listen", "127.0.0.1:0", "--threads", "1"])
        .env_clear();
    let mut emulator = Server::start(emu_cmd, "turbopuffer-emulator");
    let dir = temp_dir("secrets-keyless");
    let config = dir.join("layer.yaml");
    let yaml = layer_yaml(&s, &emulator.url, &dir.join("data"), Source::NoCredential);
    std::fs::write(&config, yaml).expect("write layer.yaml");
    let mut gw_cmd = Command::new(binary("LAYER_GATEWAY_BIN", "layer-gateway"));
    gw_cmd
        .arg("--config")
        .arg(&config)
        .env_clear()
        .env("LAYER_LOG", "debug");
    let mut gateway = Server::start(gw_cmd, "layer-gateway");
    let mut d = Driver {
        http: Http::default(),
        gateway: gateway.url.clone(),
        emulator: emulator.url.clone(),
        upstream_key: "any",
        seen: Vec::new(),
    };
    let docs = r#"{"upsert_rows":[{"id":1}]}"#;
    let query = r#"{"rank_by":["id","asc"],"top_k":1}"#;
    d.as_key(
        &s.writer.value,
        Method::POST,
        "/v2/namespaces/sec-a",
        docs,
        Some(401),
    );
    d.as_key(
        &s.reader.value,
        Method::POST,
        "/v2/namespaces/sec-a/query",
        query,
        Some(401),
    );
    d.as_key(&s.admin.value, Method::GET, "/v1/namespaces", "", Some(401));
    let log = d
        .emulator(Method::GET, "/_emu/requests?limit=1000", "")
        .json();
    let logged = log["requests"].as_array().expect("request log");
    assert!(logged.len() >= 3, "the requests were forwarded: {log}");
    for req in logged {
        assert!(
            req["headers"].get("authorization").is_none(),
            "relayed: {req}"
        );
    }
    emulator.stop(false);
    let (stdout, stderr) = gateway.stop(true);
    let mut texts = d.seen;
    texts.push(("the emulator's request log".into(), log.to_string()));
    texts.push(("the gateway's stdout".into(), stdout));
    texts.push(("the gateway's stderr".into(), stderr));
    let leaks = find_leaks(&s.clients(), &texts);
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scan itself finds a secret however it is echoed: whole, as a bearer, lowercased or
/// uppercased, cut, or split by color codes.
#[test]
fn the_scan_finds_whole_and_partial_secrets() {
    let s = Secret::new("t", "hvl_");
    let clean = vec![("clean".to_string(), "Bearer hvl_x nothing here".to_string())];
    assert!(find_leaks(&[&s], &clean).is_empty());
    for text in [
        s.value.clone(),
        format!("authorization: Bearer {}", s.value),
        s.value.to_ascii_uppercase(),
        format!("token={}...", &s.value[..24]),
        format!("...{}", &s.random[20..]),
        format!(
            "\u{1b}[2m{}\u{1b}[3m{}\u{1b}[0m",
            &s.value[..10],
            &s.value[10..]
        ),
    ] {
        let found = find_leaks(&[&s], &[("x".into(), text.clone())]);
        assert_eq!(found.len(), 1, "{text}");
    }
    assert_ne!(Secret::new("a", "").random, Secret::new("b", "").random);
}
