//! Secrets stay secret (issue 16, item 7): the upstream key and the client tokens never appear in
//! the gateway's logs, in any response body or header, in `/metrics` or in `/health`, and no
//! client token ever reaches the upstream.
//!
//! Unlike the rest of the suite, the gateway runs here as a child process (the real
//! `layer-gateway` binary, `keys` auth from a `layer.yaml`) so its stderr can be read whole; the
//! emulator is a child too, so it can be stopped to make the gateway answer 502. The binaries are
//! found the way the Python suites find them ([`layer_e2e::process::binary`]:
//! `LAYER_GATEWAY_BIN` / `LAYER_EMULATOR_BIN`, else next to this test's executable, else
//! `$CARGO_TARGET_DIR/debug/`). Build them first: `cargo build -p layer-gateway -p
//! turbopuffer-emulator --bins`.
//!
//! Each run makes fresh random tokens and upstream key, drives every kind of answer (2xx writes,
//! queries, fetches and listings; 401 for missing, malformed and wrong bearers — a prefix, a
//! suffix and an extension of a real token among them; 403 for scope and grant; 404; 422; 413;
//! relayed upstream errors; 504 on an upstream timeout; 502 with the upstream stopped), with
//! bearers also in odd spellings and odd places, then scans everything it collected for each
//! secret, for `Bearer <secret>`, and for any 16-character piece of its random part. Two more
//! tests check that startup errors do not repeat a misplaced secret, and that a `keys` gateway
//! without an upstream credential relays no client token.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::process::{Server, binary, run_to_exit};
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

/// Starts the emulator binary, accepting only `api_key` (any bearer without one).
fn start_emulator(api_key: Option<&str>) -> Server {
    let mut cmd = Command::new(binary("LAYER_EMULATOR_BIN", "turbopuffer-emulator"));
    cmd.args(["--listen", "127.0.0.1:0", "--threads", "1"])
        .args(api_key.map(|k| ["--api-key", k]).into_iter().flatten())
        .env_clear();
    Server::start(cmd, "turbopuffer-emulator")
}

/// Starts the gateway binary on `dir/layer.yaml` (written from [`layer_yaml`]) at `LAYER_LOG=log`,
/// with only the environment given here (nothing `LAYER_*` or `TURBOPUFFER_*` of the caller's).
fn start_gateway(s: &Secrets, emulator: &Server, dir: &Path, source: Source, log: &str) -> Server {
    let config = dir.join("layer.yaml");
    let yaml = layer_yaml(s, &emulator.url, &dir.join("data"), source);
    std::fs::write(&config, yaml).expect("write layer.yaml");
    let mut cmd = Command::new(binary("LAYER_GATEWAY_BIN", "layer-gateway"));
    cmd.arg("--config")
        .arg(&config)
        .env_clear()
        .env("LAYER_LOG", log);
    if source == Source::Env {
        cmd.env("SECRETS_TEST_UPSTREAM_KEY", &s.upstream.value)
            .env("SECRETS_TEST_WRITER_TOKEN", &s.writer.value);
    }
    Server::start(cmd, "layer-gateway")
}

/// One request of a table: bearer token (`""`: none), method, path, body, expected status.
type Call<'a> = (&'a str, Method, &'a str, &'a str, Option<u16>);

/// The client side of a run: sends requests to the gateway and keeps every answer.
struct Driver {
    http: Http,
    gateway: String,
    emulator: String,
    /// The bearer for the emulator's control routes.
    emulator_key: String,
    /// `(where, text)` of everything the gateway sent back.
    seen: Vec<(String, String)>,
}

impl Driver {
    fn new(gateway: &Server, emulator: &Server, h2c: bool, emulator_key: &str) -> Driver {
        Driver {
            http: Http::new(h2c),
            gateway: gateway.url.clone(),
            emulator: emulator.url.clone(),
            emulator_key: emulator_key.to_string(),
            seen: Vec::new(),
        }
    }

    /// Sends `method path` with `headers` and `body`, keeps every header and the body of the
    /// answer, and checks its status when `expect` is given.
    fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
        expect: Option<u16>,
    ) -> Reply {
        let mut h = headers.to_vec();
        h.push(("content-type", "application/json"));
        let url = format!("{}{path}", self.gateway);
        let r = self.http.send(method.clone(), &url, &h, body.to_string());
        let place = format!("the answer to {method} {path} ({})", r.status);
        for (name, value) in &r.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            self.seen.push((format!("header {name} of {place}"), value));
        }
        self.seen.push((format!("body of {place}"), r.text()));
        if let Some(want) = expect {
            let got = r.status.as_u16();
            assert_eq!(got, want, "{method} {path} {headers:?}: {}", r.text());
        }
        r
    }

    /// The value of one sample on the gateway's `/metrics` (0 when absent); the answer is kept
    /// like every other.
    fn metric(&mut self, sample: &str) -> f64 {
        let text = self
            .send(Method::GET, "/metrics", &[], "", Some(200))
            .text();
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

    /// Sends each call with `authorization: Bearer <token>` (none for an empty token).
    fn calls(&mut self, calls: &[Call<'_>]) {
        for (token, method, path, body, expect) in calls {
            let bearer = format!("Bearer {token}");
            let auth = [("authorization", bearer.as_str())];
            let headers: &[(&str, &str)] = if token.is_empty() { &[] } else { &auth };
            self.send(method.clone(), path, headers, body, *expect);
        }
    }

    /// A control request straight to the emulator (not collected: it is not the gateway's).
    fn emulator(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
        let bearer = format!("Bearer {}", self.emulator_key);
        let h = [("authorization", bearer.as_str())];
        let r = self
            .http
            .send(method, &format!("{}{path}", self.emulator), &h, body);
        assert!(r.status.is_success(), "emulator {path}: {}", r.text());
        r
    }

    fn fault(&self, rule: Value) {
        let rules = json!({"rules": [rule]}).to_string();
        self.emulator(Method::POST, "/_emu/faults", rules);
    }
}

fn run(spec: RunSpec) {
    use Method as M;
    let s = Secrets::new();
    let mut emulator = start_emulator(Some(&s.upstream.value));
    let dir = temp_dir("secrets");
    let mut gateway = start_gateway(&s, &emulator, &dir, spec.source, spec.log);
    let mut d = Driver::new(&gateway, &emulator, spec.h2c, &s.upstream.value);
    let (r, w, a, up) = (
        s.reader.value.as_str(),
        s.writer.value.as_str(),
        s.admin.value.as_str(),
        s.upstream.value.as_str(),
    );
    let ok = Some(200);
    let docs = json!({"upsert_rows": [
        {"id": 1, "vector": [0.1, 0.2], "title": "one"},
        {"id": 2, "vector": [0.3, 0.1], "title": "two"},
    ], "distance_metric": "euclidean_squared"})
    .to_string();
    let query = json!({"rank_by": ["vector", "ANN", [0.1, 0.2]], "top_k": 2,
        "include_attributes": ["title"], "consistency": {"level": "strong"}})
    .to_string();
    let (docs, query) = (docs.as_str(), query.as_str());
    let (ns, q) = ("/v2/namespaces/sec-a", "/v2/namespaces/sec-a/query");

    // Successful traffic: writes, queries, fetches, listings, metadata, schema, Layer's own
    // routes (whatever they answer), a delete.
    d.calls(&[
        (w, M::POST, ns, docs, ok),
        (a, M::POST, "/v2/namespaces/sec-b", docs, ok),
        (w, M::POST, "/v1/namespaces/sec-a/query", query, ok),
        (
            r,
            M::POST,
            q,
            r#"{"rank_by":["id","asc"],"top_k":9,"filters":["title","Eq","two"]}"#,
            ok,
        ),
        (r, M::GET, "/v2/namespaces/sec-a/documents/1", "", ok),
        (r, M::GET, "/v2/namespaces/sec-a/documents/1", "", ok),
        (r, M::GET, "/v2/namespaces/sec-a/documents/404", "", None),
        (
            r,
            M::POST,
            "/v2/namespaces/sec-a/documents",
            r#"{"ids":[1,2,3]}"#,
            None,
        ),
        (r, M::GET, "/v1/namespaces", "", ok),
        (a, M::GET, "/v1/namespaces", "", ok),
        (r, M::GET, "/v2/namespaces", "", None),
        (r, M::GET, "/v2/namespaces/sec-a/metadata", "", ok),
        (r, M::HEAD, "/v2/namespaces/sec-a/metadata", "", ok),
        (r, M::GET, "/v1/namespaces/sec-a/schema", "", ok),
        (
            w,
            M::POST,
            "/v1/namespaces/sec-a/schema",
            r#"{"title":{"type":"string"}}"#,
            ok,
        ),
        (r, M::GET, "/v2/namespaces/sec-a/search-history", "", None),
        (r, M::GET, "/v2/namespaces/sec-a/clickstream", "", None),
        (r, M::GET, "/v2/namespaces/sec-a/snapshots", "", None),
        (r, M::GET, "/v2/namespaces/sec-a/history", "", None),
        (r, M::GET, "/v2/activity/snapshots", "", None),
        (w, M::POST, "/v2/namespaces/sec-a/warm", "{}", None),
        (w, M::POST, "/v2/namespaces/sec-a/snapshot-jobs", "{}", None),
        (a, M::DELETE, "/v2/namespaces/sec-b", "", ok),
    ]);
    // A search with a trace context, then a fetch with the same one (search history and
    // clickstream record both).
    let traceparent = format!("00-{}-{}-01", random_hex(32), random_hex(16));
    let bearer_r = format!("Bearer {r}");
    let traced = [
        ("authorization", bearer_r.as_str()),
        ("traceparent", &traceparent),
    ];
    d.send(M::POST, q, &traced, query, ok);
    d.send(M::GET, "/v2/namespaces/sec-a/documents/2", &traced, "", ok);

    // The bearer in odd spellings that are still the bearer: scheme case, extra spaces.
    for v in [
        format!("bearer {r}"),
        format!("BEARER {r}"),
        format!("Bearer    {r}"),
        format!("  Bearer {r}   "),
    ] {
        d.send(
            M::GET,
            "/v2/namespaces/sec-a/metadata",
            &[("authorization", &v)],
            "",
            ok,
        );
    }

    // 401: missing, malformed, wrong (a prefix, a suffix and an extension of a real token,
    // another case, a random one, and the upstream key, which is no client key in `keys` mode).
    let bad = [
        String::new(),
        "Bearer".into(),
        "Bearer ".into(),
        r.to_string(),
        format!("Token {r}"),
        format!("Basic {r}"),
        format!("Bearer\t{r}"),
        format!("Bearer{r}"),
        format!("Bearer {}", &r[..r.len() - 1]),
        format!("Bearer {}", &r[1..]),
        format!("Bearer {r}0"),
        format!("Bearer {}", r.to_ascii_uppercase()),
        format!("Bearer {} {r}", random_hex(8)),
        format!("Bearer hvl_{}", random_hex(40)),
        format!("Bearer {up}"),
    ];
    d.send(M::POST, q, &[], query, Some(401));
    for v in &bad {
        d.send(M::POST, q, &[("authorization", v)], query, Some(401));
        d.send(M::POST, ns, &[("authorization", v)], docs, Some(401));
    }
    // The token elsewhere than in `authorization`, and two `authorization`s, the wrong first.
    let bearer_w = format!("Bearer {w}");
    let cookie = format!("token={w}");
    let wrong = format!("Bearer {}", &w[..w.len() - 2]);
    for h in [
        [("x-api-key", w)],
        [("proxy-authorization", &bearer_w)],
        [("cookie", &cookie)],
    ] {
        d.send(M::GET, "/v1/namespaces", &h, "", Some(401));
    }
    d.send(
        M::GET,
        &format!("/v1/namespaces?api_key={w}"),
        &[],
        "",
        Some(401),
    );
    let twice = [
        ("authorization", wrong.as_str()),
        ("authorization", &bearer_w),
    ];
    d.send(M::GET, "/v1/namespaces", &twice, "", None);

    // 403 (scope: a reader writing; grant: outside `sec-*`), 422 from the gateway's own
    // validation, 404 for an unknown route, 413 past maxBodyBytes (64 KiB).
    let big = json!({"upsert_rows": [{"id": 9, "t": "x".repeat(70_000)}]}).to_string();
    d.calls(&[
        (r, M::POST, ns, docs, Some(403)),
        (r, M::DELETE, ns, "", Some(403)),
        (w, M::POST, "/v2/namespaces/other", docs, Some(403)),
        (r, M::POST, "/v2/namespaces/other/query", query, Some(403)),
        (r, M::GET, "/v2/namespaces/other/documents/1", "", Some(403)),
        (
            w,
            M::POST,
            ns,
            r#"{"upsert_rows":[{"id":1,"_hevlayer_upserted_at":5}]}"#,
            Some(422),
        ),
        (w, M::POST, ns, r#"{"unknown_op":true}"#, Some(422)),
        (
            w,
            M::POST,
            ns,
            r#"{"upsert_rows":[{"id":1}],"upsert_rows":[{"id":2}]}"#,
            Some(422),
        ),
        (r, M::POST, q, r#"{"top_k":"x"}"#, None),
        (r, M::GET, "/v2/namespaces/sec-a/nope", "", Some(404)),
        (w, M::POST, ns, &big, Some(413)),
    ]);

    // Upstream errors relayed, and upstream timeouts (504). Each rule stays in force (a large
    // count) until the call it is meant for is answered, then every rule is removed: a one-shot
    // rule could be taken by the gateway's own requests (the watcher's metadata polls, the
    // write-path mirror's read-back query) instead of the call under test.
    let sticky = |mut rule: Value| {
        rule["count"] = json!(1_000_000);
        rule
    };
    let cases = [
        (
            json!({"route": "query", "status": 500}),
            (r, M::POST, q, query, Some(500)),
        ),
        (
            json!({"route": "write", "status": 401,
                "body": {"status": "error", "error": "unauthorized"}}),
            (w, M::POST, ns, docs, Some(401)),
        ),
        (
            json!({"route": "metadata", "namespace": "sec-a", "status": 429,
                "headers": {"retry-after": "1"}}),
            (r, M::GET, "/v2/namespaces/sec-a/metadata", "", Some(429)),
        ),
        (
            json!({"route": "query", "delay_ms": 4000}),
            (r, M::POST, q, query, Some(504)),
        ),
        (
            json!({"route": "write", "delay_ms": 4000}),
            (w, M::POST, ns, docs, Some(504)),
        ),
    ];
    for (rule, call) in cases {
        d.fault(sticky(rule));
        d.calls(&[call]);
        d.emulator(M::DELETE, "/_emu/faults", "");
    }

    // Only the upstream key reached the emulator as a credential, and no client token at all.
    let log = d.emulator(M::GET, "/_emu/requests?limit=10000", "").json();
    let logged = log["requests"].as_array().expect("request log");
    assert!(!logged.is_empty(), "the emulator saw requests");
    let want = format!("Bearer {up}");
    for req in logged {
        let auth = req["headers"]["authorization"].as_str();
        assert_eq!(
            auth,
            Some(want.as_str()),
            "upstream request without the key: {req}"
        );
    }
    let upstream = [("the emulator's request log".to_string(), log.to_string())];
    let leaks = find_leaks(&s.clients(), &upstream);
    assert!(
        leaks.is_empty(),
        "client tokens upstream:\n{}",
        leaks.join("\n")
    );
    d.calls(&[
        ("", M::GET, "/metrics", "", ok),
        ("", M::GET, "/health", "", ok),
    ]);

    // The upstream stops: 502 on forwarded routes, while the watcher's polls fail too.
    let polls_failed = d.metric("layer_consistency_events_total{event=\"poll_failed\"}");
    emulator.stop(false);
    d.calls(&[
        (r, M::POST, q, query, Some(502)),
        (w, M::POST, ns, docs, Some(502)),
        (r, M::GET, "/v2/namespaces/sec-a/metadata", "", Some(502)),
        (r, M::GET, "/v1/namespaces", "", Some(502)),
        (r, M::GET, "/v2/namespaces/sec-a/documents/7", "", None),
        (w, M::DELETE, ns, "", Some(502)),
    ]);
    // The watcher's polls fail too (their logs are scanned below): wait until one has.
    let deadline = Instant::now() + Duration::from_secs(90);
    while d.metric("layer_consistency_events_total{event=\"poll_failed\"}") <= polls_failed {
        assert!(Instant::now() < deadline, "no watcher poll failed");
        pause(Duration::from_millis(50));
    }
    d.calls(&[
        ("", M::GET, "/metrics", "", ok),
        ("", M::GET, "/health", "", None),
        ("", M::HEAD, "/health", "", None),
    ]);

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
    for (i, line) in stderr.lines().enumerate() {
        texts.push((
            format!("line {} of the gateway's stderr", i + 1),
            line.into(),
        ));
    }
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

/// A `layer.yaml` whose mistake holds a secret stops the gateway at start, with an error that
/// names the key at fault but not the secret: credentials in the endpoint URL (refused, since
/// they would be unused and show in connection-pool logs), the upstream key written as the
/// `credential` itself, a token where a key entry belongs.
#[test]
fn startup_errors_do_not_repeat_secrets() {
    let s = Secrets::new();
    let (up, token) = (&s.upstream.value, &s.reader.value);
    let cases = [
        (
            "vectorStore.endpoint.url must not carry credentials",
            format!(
                "vectorStore:\n  endpoint: {{url: 'http://u:{token}@127.0.0.1:9'}}\n  credential: {{value: {up}}}\n"
            ),
        ),
        (
            "vectorStore.credential: invalid type",
            format!("vectorStore:\n  credential: {up}\n"),
        ),
        (
            "vectorStore.inboundAuth.keys[0]: invalid type",
            format!(
                "vectorStore:\n  credential: {{value: {up}}}\n  inboundAuth: {{mode: keys, keys: [{token}]}}\n"
            ),
        ),
    ];
    for (want, yaml) in cases {
        let dir = temp_dir("secrets-startup");
        let config = dir.join("layer.yaml");
        std::fs::write(&config, &yaml).expect("write layer.yaml");
        let mut cmd = Command::new(binary("LAYER_GATEWAY_BIN", "layer-gateway"));
        cmd.arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .env_clear()
            .env("LAYER_LOG", "trace");
        let (ok, stdout, stderr) = run_to_exit(cmd, Duration::from_secs(20));
        assert!(!ok, "started with:\n{yaml}\nstdout:\n{stdout}");
        assert!(stderr.contains(want), "expected {want:?} in:\n{stderr}");
        let texts = [("stderr".into(), stderr.clone()), ("stdout".into(), stdout)];
        let leaks = find_leaks(&s.all(), &texts);
        assert!(leaks.is_empty(), "{want}:\n{}", leaks.join("\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A `keys` gateway without an upstream credential does not relay its callers' bearers (Layer
/// tokens) upstream: the upstream sees no `authorization` and refuses the request itself.
#[test]
fn keys_mode_without_a_credential_never_relays_client_tokens() {
    use Method as M;
    let s = Secrets::new();
    // No --api-key: the emulator takes any bearer, so it would take a relayed client token.
    let mut emulator = start_emulator(None);
    let dir = temp_dir("secrets-keyless");
    let mut gateway = start_gateway(&s, &emulator, &dir, Source::NoCredential, "debug");
    let mut d = Driver::new(&gateway, &emulator, false, "any");
    let (docs, query) = (
        r#"{"upsert_rows":[{"id":1}]}"#,
        r#"{"rank_by":["id","asc"],"top_k":1}"#,
    );
    d.calls(&[
        (
            &s.writer.value,
            M::POST,
            "/v2/namespaces/sec-a",
            docs,
            Some(401),
        ),
        (
            &s.reader.value,
            M::POST,
            "/v2/namespaces/sec-a/query",
            query,
            Some(401),
        ),
        (&s.admin.value, M::GET, "/v1/namespaces", "", Some(401)),
    ]);
    let log = d.emulator(M::GET, "/_emu/requests?limit=1000", "").json();
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
