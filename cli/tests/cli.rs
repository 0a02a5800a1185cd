//! The built `layer` binary against a real gateway + emulator (and the test PostgreSQL for the
//! key routes), with a temporary HOME: environments and their file modes, masked keys, index
//! list/get on a namespace written through the gateway, pipelines and UDFs with their status
//! fan-out, keys mint → ls → get → revoke → rm (the token alone on stdout) and `mint -f key.yaml`,
//! the resolution order seen from outside, and the exit codes (0 ok, 1 failure, 2 usage).
//! Modules: [`tui`] (the TUI under tmux), [`docgen`] (completions and man pages), [`run_f`]
//! (`layer run -f` against a scripted Kubernetes API server, the real gateway and a test worker),
//! [`dev`] (`layer dev`).

#[path = "cli/dev.rs"]
mod dev;
#[path = "cli/docgen.rs"]
mod docgen;
#[path = "cli/run_f.rs"]
mod run_f;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use layer_e2e::pipelines::with_db;
use layer_e2e::{Stack, UPSTREAM_KEY, test_database};
use serde_json::{Value, json};

mod tui;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// Runs `layer` with `home` as HOME, no inherited `LAYER_*`/`HEVLAYER_*` variables, `vars`
/// added, and stdin not a terminal.
fn layer(home: &Path, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_layer"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LAYER_") || k.starts_with("HEVLAYER_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home).envs(vars.iter().copied()).args(args);
    let o: Output = c.stdin(Stdio::null()).output().expect("run layer");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn home(tag: &str) -> PathBuf {
    layer_e2e::temp_dir(tag)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn environments_indexes_and_exit_codes() {
    let stack = Stack::start();
    let gw = stack.gateway_url.clone();
    stack.write(
        "cli-docs",
        json!({"upsert_rows": [{"id": "a", "text": "hello"}, {"id": "b", "text": "world"}]}),
    );
    let h = home("cli-home");

    // env add: flags required on a non-TTY (usage, exit 2), nothing written.
    let r = layer(&h, &["env", "add", "local", "--base-url", &gw], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--api-key"), "{}", r.stderr);
    assert!(!h.join(".hevlayer").exists());

    layer(
        &h,
        &[
            "env",
            "add",
            "local",
            "--base-url",
            &gw,
            "--api-key",
            UPSTREAM_KEY,
            "--kube-context",
            "kind-x",
        ],
        &[],
    )
    .ok();
    layer(
        &h,
        &[
            "env",
            "add",
            "dead",
            "--base-url",
            "http://127.0.0.1:1",
            "--api-key",
            "dead-key-0123456789",
        ],
        &[],
    )
    .ok();
    assert_eq!(mode(&h.join(".hevlayer")), 0o700);
    assert_eq!(mode(&h.join(".hevlayer/config.toml")), 0o600);
    // Adding an existing name needs --force.
    let r = layer(
        &h,
        &["env", "add", "local", "--base-url", &gw, "--api-key", "x"],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);

    // No active env yet: the built-in default base URL applies, and nothing is listening there
    // for us, so use the explicit selection instead.
    layer(&h, &["env", "use", "local"], &[]).ok();
    assert_eq!(mode(&h.join(".hevlayer/config.toml")), 0o600);
    let ls = layer(&h, &["env", "ls"], &[]).ok();
    assert!(
        ls.stdout
            .lines()
            .any(|l| l.starts_with('*') && l.contains("local")),
        "{}",
        ls.stdout
    );
    assert!(!ls.stdout.contains(UPSTREAM_KEY) && !ls.stdout.contains("dead-key-0123456789"));
    assert!(ls.stdout.contains("****6789"), "{}", ls.stdout);
    let names = layer(&h, &["env", "ls", "-o", "names"], &[]).ok();
    assert_eq!(names.stdout, "dead\nlocal\n");
    let show = layer(&h, &["env", "show", "-o", "json"], &[]).ok().json();
    assert_eq!(show["name"], "local");
    assert_eq!(show["kube_context"], "kind-x");
    assert_ne!(show["api_key"], UPSTREAM_KEY);

    // index list/get through the active env.
    let list = layer(&h, &["index", "list", "-o", "names"], &[]).ok();
    assert!(
        list.stdout.lines().any(|l| l == "cli-docs"),
        "{}",
        list.stdout
    );
    let list = layer(&h, &["index", "list", "-o", "json"], &[]).ok().json();
    assert!(
        list["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "cli-docs")
    );
    let table = layer(&h, &["index", "list"], &[]).ok();
    assert!(table.stdout.starts_with("NAME "), "{}", table.stdout);
    let get = layer(&h, &["index", "get", "cli-docs", "-o", "json"], &[])
        .ok()
        .json();
    assert_eq!(get["metadata"]["id"], "cli-docs");
    assert_eq!(get["listing"]["name"], "cli-docs");
    let rows = get["metadata"]["approx_row_count"].as_u64().unwrap();
    let get = layer(&h, &["index", "get", "cli-docs"], &[]).ok();
    for field in [
        "rows",
        "size_bytes",
        "schema",
        "stable_as_of_ms",
        "stable_lag_ms",
        "cache",
        "last_write_ms",
    ] {
        assert!(
            get.stdout.lines().any(|l| l.starts_with(field)),
            "{field}: {}",
            get.stdout
        );
    }
    assert!(
        get.stdout
            .lines()
            .any(|l| l.starts_with("rows") && l.ends_with(&format!(" {rows}"))),
        "{}",
        get.stdout
    );
    assert!(
        get.stdout.contains("text"),
        "schema lists the attribute: {}",
        get.stdout
    );

    // A missing index: one line on stderr, exit 1.
    let r = layer(&h, &["index", "get", "no-such-index"], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("error: ") && r.stderr.contains("404"),
        "{}",
        r.stderr
    );

    // Resolution from outside: --env beats the active env, LAYER_ENV too; LAYER_BASE_URL beats
    // --env; --base-url beats LAYER_BASE_URL.
    let r = layer(&h, &["--env", "dead", "index", "list"], &[]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot reach http://127.0.0.1:1"),
        "{}",
        r.stderr
    );
    let r = layer(&h, &["index", "list"], &[("LAYER_ENV", "dead")]);
    assert!(r.stderr.contains("127.0.0.1:1"), "{}", r.stderr);
    layer(
        &h,
        &["--env", "dead", "index", "list"],
        &[("LAYER_BASE_URL", &gw), ("HEVLAYER_API_KEY", UPSTREAM_KEY)],
    )
    .ok();
    let r = layer(
        &h,
        &["--base-url", "http://127.0.0.1:1", "index", "list"],
        &[("LAYER_BASE_URL", &gw)],
    );
    assert!(r.stderr.contains("127.0.0.1:1"), "{}", r.stderr);
    let r = layer(&h, &["--env", "nope", "index", "list"], &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unknown environment \"nope\""),
        "{}",
        r.stderr
    );
    // The wrong key from a flag: the gateway's 401 in one line.
    let r = layer(&h, &["--api-key", "wrong", "index", "list"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("401"), "{}", r.stderr);
    // Variables alone need no config file.
    let bare = home("cli-bare");
    layer(
        &bare,
        &["index", "list", "-o", "names"],
        &[("HEVLAYER_BASE_URL", &gw), ("LAYER_API_KEY", UPSTREAM_KEY)],
    )
    .ok();
    assert!(!bare.join(".hevlayer").exists());

    // Usage errors exit 2: a missing argument, an unknown flag, a bad -o, bare `layer` on a
    // non-TTY, a malformed --entitle (before any request), delete without --yes on a non-TTY.
    for args in [
        vec!["index", "get"],
        vec!["index", "list", "--bogus"],
        vec!["index", "list", "-o", "yaml"],
        vec![],
        vec!["keys", "mint", "k", "--entitle", "bogus.x=read"],
        vec!["index", "delete", "cli-docs"],
    ] {
        let r = layer(&h, &args, &[]);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
    let r = layer(&h, &["--help"], &[]).ok();
    assert!(
        r.stdout.contains("layer ask") && r.stdout.contains("out of scope"),
        "{}",
        r.stdout
    );
    // `layer ask` itself says why it is not there (usage, exit 2), whatever follows it.
    let r = layer(&h, &["ask", "how", "do", "I", "--warm", "an index?"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("out of scope"), "{}", r.stderr);
    assert!(!r.stdout.contains("ask"), "{}", r.stdout);

    // index delete, then it is gone.
    layer(&h, &["index", "delete", "cli-docs", "--yes"], &[]).ok();
    let r = layer(&h, &["index", "get", "cli-docs"], &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);

    // env rm of the active env clears the selection; a malformed config names its line.
    layer(&h, &["env", "rm", "local"], &[]).ok();
    let show = layer(&h, &["env", "ls", "-o", "json"], &[]).ok().json();
    assert_eq!(show["active"], Value::Null);
    std::fs::write(
        h.join(".hevlayer/config.toml"),
        "active = \"x\"\n[envs.x]\nbase_url = 3\n",
    )
    .unwrap();
    let r = layer(&h, &["env", "ls"], &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("config.toml: line 3"), "{}", r.stderr);
}

#[test]
fn keys_pipelines_and_udfs() {
    let Some((db, schema)) = test_database("cli_keys") else {
        return;
    };
    let stack = Stack::start_with(with_db(&db, &schema));
    let gw = stack.gateway_url.clone();
    let h = home("cli-keys");
    let vars = [
        ("LAYER_BASE_URL", gw.as_str()),
        ("LAYER_API_KEY", UPSTREAM_KEY),
    ];

    // mint: the token alone on stdout, the metadata on stderr.
    let m = layer(
        &h,
        &[
            "keys",
            "mint",
            "cli-reader",
            "--owner",
            "acme",
            "--entitle",
            "vectorstore.default=read",
            "--namespaces",
            "cli-*",
            "--claim",
            "warehouse.snow=notes:cli:*:read",
            "--expires-after",
            "30d",
        ],
        &vars,
    )
    .ok();
    let token = m.stdout.trim_end_matches('\n');
    assert!(
        !token.contains('\n') && token.starts_with("hvl_"),
        "{}",
        m.stdout
    );
    assert!(
        m.stderr.contains("cli-reader") && m.stderr.contains("acme"),
        "{}",
        m.stderr
    );
    assert!(!m.stderr.contains(token));

    // ls / get: metadata, never the token.
    let ls = layer(&h, &["keys", "ls", "-o", "json"], &vars).ok();
    assert!(!ls.stdout.contains(token));
    let key = ls.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "cli-reader")
        .cloned()
        .expect("minted key listed");
    assert_eq!(
        key["entitlements"]["vectorstore.default"],
        json!({"scopes": ["read"], "namespaces": ["cli-*"]})
    );
    assert_eq!(
        key["entitlements"]["warehouse.snow"]["claims"],
        json!(["notes:cli:*:read"])
    );
    let id = key["keyId"].as_str().unwrap().to_string();
    let table = layer(&h, &["keys", "ls"], &vars).ok();
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("cli-reader")),
        "{}",
        table.stdout
    );
    let by_name = layer(&h, &["keys", "get", "cli-reader", "-o", "json"], &vars)
        .ok()
        .json();
    assert_eq!(by_name["keyId"], id.as_str());
    assert_eq!(by_name["phase"], "Active");

    // The token works as a bearer for the CLI itself (a read entitlement on cli-*).
    stack.write(
        "cli-one",
        json!({"upsert_rows": [{"id": "a", "text": "x"}]}),
    );
    layer(
        &h,
        &["index", "get", "cli-one", "-o", "names", "--api-key", token],
        &vars,
    )
    .ok();

    // revoke (idempotent, record kept), then rm.
    layer(&h, &["keys", "revoke", "cli-reader"], &vars).ok();
    layer(&h, &["keys", "revoke", &id], &vars).ok();
    let got = layer(&h, &["keys", "get", &id, "-o", "json"], &vars)
        .ok()
        .json();
    assert_eq!(got["phase"], "Revoked");
    let r = layer(&h, &["index", "get", "cli-one", "--api-key", token], &vars);
    assert_eq!(r.code, 1, "a revoked token is refused: {}", r.stdout);
    let names = layer(&h, &["keys", "ls", "-o", "names"], &vars).ok();
    assert!(
        !names.stdout.lines().any(|l| l == "cli-reader"),
        "{}",
        names.stdout
    );
    let names = layer(
        &h,
        &["keys", "ls", "--include-revoked", "-o", "names"],
        &vars,
    )
    .ok();
    assert!(
        names.stdout.lines().any(|l| l == "cli-reader"),
        "{}",
        names.stdout
    );
    layer(&h, &["keys", "rm", "cli-reader"], &vars).ok();
    let r = layer(&h, &["keys", "get", &id], &vars);
    assert_eq!(r.code, 1, "{}", r.stdout);

    // mint -f: the ApiKey manifest kubectl applies; a bad one names the field, nothing minted.
    let manifest = h.join("key.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: hevlayer.com/v1alpha1\nkind: ApiKey\nmetadata:\n  name: cli-from-file\nspec:\n  owner: ops\n  entitlements:\n    layer:\n      scopes: [admin]\n  expiresAfter: never\nstatus:\n  phase: Active\n",
    )
    .unwrap();
    let m = layer(
        &h,
        &["keys", "mint", "-f", manifest.to_str().unwrap()],
        &vars,
    )
    .ok();
    assert!(
        m.stdout.trim_end().starts_with("hvl_") && m.stdout.lines().count() == 1,
        "{}",
        m.stdout
    );
    let got = layer(&h, &["keys", "get", "cli-from-file", "-o", "json"], &vars)
        .ok()
        .json();
    assert_eq!(got["owner"], "ops");
    assert_eq!(got["entitlements"]["layer"]["scopes"], json!(["admin"]));
    std::fs::write(&manifest, "kind: ApiKey\nmetadata: {name: cli-bad}\nspec: {entitlements: {layer: {scopes: [root]}}}\n").unwrap();
    let r = layer(
        &h,
        &["keys", "mint", "-f", manifest.to_str().unwrap()],
        &vars,
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("spec.entitlements.layer.scopes[0]"),
        "{}",
        r.stderr
    );
    let r = layer(
        &h,
        &[
            "keys",
            "mint",
            "-f",
            manifest.to_str().unwrap(),
            "--entitle",
            "layer=read",
        ],
        &vars,
    );
    assert_eq!(r.code, 2, "-f with flags is a usage error: {}", r.stderr);
    let names = layer(&h, &["keys", "ls", "-o", "names"], &vars).ok();
    assert!(!names.stdout.contains("cli-bad"), "{}", names.stdout);

    // Pipelines: one registered, no worker yet.
    let r = stack.gw(
        http::Method::POST,
        "/v2/pipelines",
        json!({"id": "cli-pipe", "target_namespace": "cli-vectors"}).to_string(),
    );
    assert!(r.status.is_success(), "{}", r.text());
    let list = layer(&h, &["pipeline", "list"], &vars).ok();
    let line = list
        .stdout
        .lines()
        .find(|l| l.starts_with("cli-pipe"))
        .unwrap_or_else(|| panic!("{}", list.stdout));
    assert!(line.contains("cli-vectors"), "{line}");
    assert!(
        list.stdout.starts_with("ID ") && list.stdout.contains("RATE/MIN"),
        "{}",
        list.stdout
    );
    let get = layer(&h, &["pipeline", "get", "cli-pipe", "-o", "json"], &vars)
        .ok()
        .json();
    assert_eq!(get["pipeline"]["target_namespace"], "cli-vectors");
    let r = layer(&h, &["pipeline", "get", "no-such-pipe"], &vars);
    assert_eq!(r.code, 1);

    // UDFs: one registered; list shows the sweep count and rate, get the status.
    let r = stack.gw(
        http::Method::POST,
        "/v2/udfs",
        json!({"id": "cli-udf", "spec": {"worker": {"batch_size": 8}, "target_namespaces": ["cli-one"], "inputs": ["text"]}}).to_string(),
    );
    assert!(r.status.is_success(), "{}", r.text());
    let list = layer(&h, &["udf", "list"], &vars).ok();
    assert!(
        list.stdout.contains("SWEEPS") && list.stdout.lines().any(|l| l.starts_with("cli-udf")),
        "{}",
        list.stdout
    );
    let get = layer(&h, &["udf", "get", "cli-udf", "-o", "json"], &vars)
        .ok()
        .json();
    assert_eq!(get["udf"]["id"], "cli-udf");
    assert!(
        get["status"]["discovery"]["sweeps_completed"].is_u64(),
        "{get}"
    );
    let get = layer(&h, &["udf", "get", "cli-udf"], &vars).ok();
    assert!(
        get.stdout
            .lines()
            .any(|l| l.starts_with("discovery_sweeps")),
        "{}",
        get.stdout
    );
    // --watch on a UDF whose filter matches no row: the queue is empty, so it prints one status
    // line and returns 0.
    let r = stack.gw(
        http::Method::POST,
        "/v2/udfs",
        json!({"id": "cli-udf-empty", "spec": {"worker": {}, "target_namespaces": ["cli-one"], "inputs": ["id"], "filter": ["id", "Eq", "no-such-row"]}}).to_string(),
    );
    assert!(r.status.is_success(), "{}", r.text());
    let w = layer(
        &h,
        &[
            "udf",
            "get",
            "cli-udf-empty",
            "--watch",
            "--interval",
            "0.2",
        ],
        &vars,
    )
    .ok();
    assert_eq!(w.stdout.lines().count(), 1, "{}", w.stdout);
    assert!(
        w.stdout
            .starts_with("pending=0 processing=0 failed=0 sweeps="),
        "{}",
        w.stdout
    );
    let r = layer(
        &h,
        &["udf", "get", "cli-udf-empty", "--watch", "--interval", "0"],
        &vars,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
}
