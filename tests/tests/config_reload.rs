//! Standalone mode: a changed `layer.yaml` reaches the running gateway on SIGHUP. The real
//! binaries run as child processes (the gateway with `--config FILE`); an Index's policy (its
//! labels in the namespace listing, its snapshot policy's facet fields) changes in the file and
//! applies after SIGHUP without a restart. An invalid file (unparseable, or parsing but failing
//! validation) changes nothing: the gateway keeps serving the previous policy and counts
//! `layer_config_reloads_total{result="invalid"}`. A change to a section read only at start is
//! not applied and is logged as needing a restart.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use http::Method;
use layer_e2e::process::{Server, binary};
use layer_e2e::{Http, UPSTREAM_KEY, pause};
use serde_json::{Value, json};

struct Gateway {
    server: Server,
    http: Http,
    bearer: String,
    /// A fresh `page_size` per listing: the enriched listing is cached per query for
    /// `namespaceListCacheTtlMs`, and each read here must see the indexes as they are now.
    listings: std::cell::Cell<u32>,
}

impl Gateway {
    fn get(&self, path: &str) -> Value {
        let r = self.http.send(
            Method::GET,
            &format!("{}{path}", self.server.url),
            &[("authorization", &self.bearer)],
            "",
        );
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    fn labels(&self, ns: &str) -> Value {
        let n = self.listings.get();
        self.listings.set(n + 1);
        let v = self.get(&format!("/v2/namespaces?page_size={}", 100 + n % 800));
        v["namespaces"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == ns).cloned())
            .map_or(Value::Null, |r| r["labels"].clone())
    }

    fn facets(&self, ns: &str) -> Value {
        self.get(&format!("/v2/namespaces/{ns}/snapshot-policy"))["facetFields"].clone()
    }

    /// `layer_config_reloads_total{result}` as `/metrics` shows it (0 before the first).
    fn reloads(&self, result: &str) -> u64 {
        let r = self.http.send(
            Method::GET,
            &format!("{}/metrics", self.server.url),
            &[],
            "",
        );
        assert_eq!(r.status, 200);
        let prefix = format!("layer_config_reloads_total{{result=\"{result}\"}} ");
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse().expect("a count"))
    }

    /// Rewrites the file, sends SIGHUP and waits until the reload of `result` is counted.
    fn reload(&mut self, file: &Path, yaml: &str, result: &str) {
        let before = self.reloads(result);
        std::fs::write(file, yaml).expect("write layer.yaml");
        self.server.signal("HUP");
        eventually(&format!("a reload counted as {result}"), || {
            self.reloads(result) > before
        });
        assert!(self.server.is_running(), "the gateway exited on SIGHUP");
    }
}

fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        pause(Duration::from_millis(50));
    }
}

fn index_yaml(labels: &str, facets: &str) -> String {
    format!(
        "indexes:\n  - name: orders\n    metadata:\n      labels: {labels}\n    \
         snapshot:\n      facetFields: {facets}\n"
    )
}

#[test]
fn a_changed_layer_yaml_applies_on_sighup_and_a_bad_one_changes_nothing() {
    let mut emulator = Server::start(
        {
            let mut c = Command::new(binary("LAYER_EMULATOR_BIN", "turbopuffer-emulator"));
            c.args(["--listen", "127.0.0.1:0", "--api-key", UPSTREAM_KEY])
                .env_clear();
            c
        },
        "turbopuffer-emulator",
    );
    let dir = layer_e2e::temp_dir("config-reload");
    let file = dir.join("layer.yaml");
    std::fs::write(&file, index_yaml("{app: shop}", "[category]")).expect("write layer.yaml");
    let server = Server::start(
        {
            let mut c = Command::new(binary("LAYER_GATEWAY_BIN", "layer-gateway"));
            c.arg("--config")
                .arg(&file)
                .args(["--listen", "127.0.0.1:0", "--upstream-url", &emulator.url])
                .args(["--upstream-api-key", UPSTREAM_KEY])
                .arg("--data-dir")
                .arg(dir.join("data"))
                .env_clear();
            c
        },
        "layer-gateway",
    );
    let mut gw = Gateway {
        server,
        http: Http::default(),
        bearer: format!("Bearer {UPSTREAM_KEY}"),
        listings: std::cell::Cell::new(0),
    };
    // The namespace exists upstream, so the listing shows it.
    let w = gw.http.send(
        Method::POST,
        &format!("{}/v2/namespaces/orders", gw.server.url),
        &[
            ("authorization", &gw.bearer),
            ("content-type", "application/json"),
        ],
        json!({"upsert_rows": [{"id": 1, "category": "a"}]}).to_string(),
    );
    assert_eq!(w.status, 200, "{}", w.text());
    assert_eq!(gw.labels("orders"), json!({"app": "shop"}));
    assert_eq!(gw.facets("orders"), json!(["category"]));
    assert_eq!(gw.reloads("applied"), 0);
    assert_eq!(gw.reloads("invalid"), 0);

    // A policy change applies without a restart.
    gw.reload(
        &file,
        &index_yaml("{app: shop, tier: gold}", "[brand]"),
        "applied",
    );
    assert_eq!(gw.labels("orders"), json!({"app": "shop", "tier": "gold"}));
    assert_eq!(gw.facets("orders"), json!(["brand"]));

    // A file that does not parse (an unknown field on line 3): nothing changes.
    gw.reload(
        &file,
        "indexes:\n  - name: orders\n    bogusField: 1\n",
        "invalid",
    );
    // One that parses but fails validation (two indexes on one namespace): nothing changes.
    gw.reload(
        &file,
        "indexes:\n  - name: orders\n  - name: other\n    backend: {namespace: orders}\n",
        "invalid",
    );
    assert_eq!(gw.reloads("invalid"), 2);
    assert_eq!(gw.reloads("applied"), 1);
    assert_eq!(gw.labels("orders"), json!({"app": "shop", "tier": "gold"}));
    assert_eq!(gw.facets("orders"), json!(["brand"]));

    // A restart-only section changes along with the index: the index applies, the section
    // does not (and the log says so).
    let with_gateway = format!(
        "gateway:\n  scan:\n    defaultThreads: 3\n{}",
        index_yaml("{app: shop, tier: silver}", "[brand]")
    );
    gw.reload(&file, &with_gateway, "applied");
    assert_eq!(
        gw.labels("orders"),
        json!({"app": "shop", "tier": "silver"})
    );

    let (_, stderr) = gw.server.stop(true);
    assert!(
        stderr.contains("at line 3"),
        "no line in the error:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("need a restart").count(),
        1,
        "only the last reload changed a restart-only section:\n{stderr}"
    );
    let warning = stderr
        .lines()
        .find(|l| l.contains("need a restart"))
        .unwrap_or_default();
    assert!(warning.contains("[\"gateway\"]"), "{warning}");
    emulator.stop(false);
}
