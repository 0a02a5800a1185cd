//! The TUI in a real terminal: the built `layer` in a detached `tmux` session (its own socket)
//! against a running gateway + emulator, driven with `send-keys` and read with `capture-pane`.
//! It shows a namespace the test wrote, picks up one written after it started (auto-refresh),
//! opens a detail view, switches views (a failing view shows the gateway's error) and exits with
//! status 0 on `q`; on a gateway with the queue database, the functions, pipelines and keys views
//! and their details. Screen content is polled with a generous deadline; nothing is timed.
//! Without tmux the test is skipped, except under `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use layer_e2e::{Stack, UPSTREAM_KEY};
use serde_json::json;

/// How long a screen may take to show what the test waits for.
const DEADLINE: Duration = Duration::from_secs(90);

/// A tmux server on a socket of its own, killed on drop.
struct Tmux {
    socket: String,
    /// Where the wrapper shell writes `layer`'s exit status when it returns.
    status_file: PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cmd(args);
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-t", "tui"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        self.ok(&args);
    }

    /// Polls the pane until `pred` holds for its text; panics with the last screen at the
    /// deadline.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "waiting for {what}; screen:\n{s}"
            );
            layer_e2e::pause(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// Whether tmux can run here; under `CI=true` its absence is a failure.
fn have_tmux() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "tmux is required under CI for the TUI test"
        );
        eprintln!("skipping the TUI test: tmux is not installed");
    }
    found
}

fn add_env(home: &Path, gw: &str) {
    for args in [
        vec![
            "env",
            "add",
            "local",
            "--base-url",
            gw,
            "--api-key",
            UPSTREAM_KEY,
        ],
        vec!["env", "use", "local"],
    ] {
        super::layer(home, &args, &[]).ok();
    }
}

/// Starts `layer` (bare: a TTY makes it the TUI) in a detached 120x40 session on a socket named
/// for `tag` (tests run in parallel) with only HOME, TERM and PATH in its environment. A wrapper
/// shell writes its exit status to a file when it returns: the test reads the status from there,
/// not from tmux's pane state (tmux 3.3 can show a pane dead with no status recorded yet).
fn start(home: &Path, tag: &str) -> Tmux {
    start_with(home, tag, &[])
}

/// [`start`] with arguments for `layer`.
fn start_with(home: &Path, tag: &str, args: &[&str]) -> Tmux {
    let socket = format!("layer-tui-{tag}-{}", std::process::id());
    let tmux = Tmux {
        status_file: home.join(format!("{socket}.status")),
        socket,
    };
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_layer"));
    let home_var = format!("HOME={}", home.display());
    tmux.ok(&[
        "new-session",
        "-d",
        "-s",
        "tui",
        "-x",
        "120",
        "-y",
        "40",
        "env",
        "-i",
        &home_var,
        "TERM=xterm-256color",
        "PATH=/usr/bin:/bin",
        "sh",
        "-c",
        r#"status=$1; shift; "$0" "$@"; echo $? > "$status.tmp" && mv "$status.tmp" "$status"; exec sleep 3600"#,
        bin.to_str().expect("utf-8 path"),
        tmux.status_file.to_str().expect("utf-8 path"),
    ]
    .into_iter()
    .chain(args.iter().copied())
    .collect::<Vec<_>>());
    tmux
}

/// What the kernel says about each `layer` process under the pane's shell: state, and each
/// thread's name, wait channel and kernel stack (for a failure message).
fn diagnose(tmux: &Tmux) -> String {
    let shell = tmux.ok(&["display-message", "-p", "-t", "tui", "#{pane_pid}"]);
    let shell = shell.trim();
    let read = |p: String| std::fs::read_to_string(p).unwrap_or_else(|e| format!("({e})"));
    let children = read(format!("/proc/{shell}/task/{shell}/children"));
    let mut out = format!("pane shell {shell}, children [{}]\n", children.trim());
    for pid in children.split_whitespace() {
        out += &format!("pid {pid}: {}", read(format!("/proc/{pid}/stat")));
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let t = t.path();
            let at = |f: &str| read(t.join(f).display().to_string());
            out += &format!(
                "  thread {} {} wchan={}\n{}",
                t.display(),
                at("comm").trim(),
                at("wchan"),
                at("stack")
            );
        }
    }
    out
}

/// Presses `q` on a list and waits for the process to exit with status 0.
fn quit(tmux: &Tmux) {
    tmux.keys(&["q"]);
    exited(tmux);
}

/// Waits for `layer` to return and asserts its exit status is 0.
fn exited(tmux: &Tmux) {
    let start = Instant::now();
    loop {
        if let Ok(status) = std::fs::read_to_string(&tmux.status_file) {
            assert_eq!(
                status.trim(),
                "0",
                "exit status; screen:\n{}",
                tmux.screen()
            );
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "layer still running after q; screen:\n{}\n{}",
            tmux.screen(),
            diagnose(tmux)
        );
        layer_e2e::pause(Duration::from_millis(200));
    }
}

#[test]
fn tui_shows_live_data_switches_views_and_quits() {
    if !have_tmux() {
        return;
    }
    // Non-TTY: `layer browse` is a usage error (bare `layer` is checked with the other usage
    // errors in cli.rs).
    let h = super::home("cli-tui");
    let r = super::layer(&h, &["browse"], &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    let stack = Stack::start();
    let gw = stack.gateway_url.clone();
    stack.write(
        "tui-live-docs",
        json!({"upsert_rows": [{"id": "a", "text": "hello"}, {"id": "b", "text": "world"}]}),
    );
    add_env(&h, &gw);
    let tmux = start(&h, "live");

    // The indexes view with the namespace the test wrote, read through the active env.
    let s = tmux.wait("the indexes view with tui-live-docs", |s| {
        s.contains("Indexes (") && s.contains("tui-live-docs")
    });
    assert!(s.contains("env local"), "{s}");
    assert!(s.contains(&gw.replace("http://", "")), "{s}");

    // Auto-refresh: a namespace written now appears without a key press.
    stack.write(
        "tui-later",
        json!({"upsert_rows": [{"id": "c", "text": "later"}]}),
    );
    tmux.wait("tui-later after a refresh", |s| s.contains("tui-later"));

    // enter on the first row opens its detail; esc goes back to the list.
    tmux.keys(&["Home", "Enter"]);
    let s = tmux.wait("the index detail", |s| {
        s.contains("Index tui-l") && s.contains("rows") && s.contains("Attributes")
    });
    assert!(s.contains("raw values: layer index get NAME"), "{s}");
    tmux.keys(&["Escape"]);
    tmux.wait("the indexes list again", |s| s.contains("Indexes (2)"));

    // Pipelines: this gateway has no queue database, so the view shows the gateway's error.
    tmux.keys(&["p"]);
    tmux.wait("the pipelines view with its error", |s| {
        s.contains(" Pipelines ") && s.contains("error: GET /v2/pipelines")
    });

    // Environments: the config's env, key masked.
    tmux.keys(&["e"]);
    let s = tmux.wait("the environments view", |s| {
        s.contains("Environments (1)") && s.contains("local")
    });
    assert!(!s.contains(UPSTREAM_KEY), "the key is masked: {s}");
    assert!(s.contains("****"), "{s}");

    // Back to indexes from anywhere, then q quits with status 0 and restores the screen.
    tmux.keys(&["i"]);
    tmux.wait("the indexes view", |s| s.contains("tui-live-docs"));
    quit(&tmux);
    let s = tmux.screen();
    assert!(
        !s.contains("[i] Indexes"),
        "the alternate screen is left on exit: {s}"
    );
}

/// Functions, pipelines and keys on a gateway with the queue database (skipped loudly without
/// `LAYER_TEST_DATABASE_URL`, a failure under CI): each list shows what the test registered, and
/// each detail view opens.
#[test]
fn tui_functions_pipelines_and_keys_views() {
    if !have_tmux() {
        return;
    }
    let Some((db, schema)) = layer_e2e::test_database("cli_tui") else {
        return;
    };
    let stack = Stack::start_with(layer_e2e::pipelines::with_db(&db, &schema));
    let gw = stack.gateway_url.clone();
    stack.write(
        "tui-docs",
        json!({"upsert_rows": [{"id": "a", "text": "hello"}]}),
    );
    for (path, body) in [
        (
            "/v2/pipelines",
            json!({"id": "tui-pipe", "target_namespace": "tui-vectors"}),
        ),
        (
            "/v2/udfs",
            json!({"id": "tui-udf", "spec": {"version": "v7", "worker": {"batch_size": 8}, "target_namespaces": ["tui-docs"], "inputs": ["text"]}}),
        ),
        (
            "/v2/keys",
            json!({"name": "tui-reader", "owner": "acme", "entitlements": {"vectorstore.default": {"scopes": ["read"]}}, "expiresAfter": "30d"}),
        ),
    ] {
        let r = stack.gw(http::Method::POST, path, body.to_string());
        assert!(r.status.is_success(), "{path}: {}", r.text());
    }
    let h = super::home("cli-tui-db");
    add_env(&h, &gw);
    let tmux = start(&h, "db");
    tmux.wait("the indexes view", |s| s.contains("tui-docs"));

    tmux.keys(&["f"]);
    tmux.wait("the functions view", |s| {
        s.contains("Functions (1)") && s.contains("tui-udf")
    });
    tmux.keys(&["Enter"]);
    tmux.wait("the function detail", |s| {
        s.contains("Function tui-udf") && s.contains("discovery sweeps") && s.contains("v7")
    });
    tmux.keys(&["Escape", "p"]);
    tmux.wait("the pipelines view", |s| {
        s.contains("Pipelines (1)") && s.contains("tui-pipe") && s.contains("tui-vectors")
    });
    tmux.keys(&["Enter"]);
    tmux.wait("the pipeline detail", |s| {
        s.contains("Pipeline tui-pipe")
            && s.contains("target namespace")
            && s.contains("distance metric")
    });
    tmux.keys(&["k"]);
    tmux.wait("the keys view", |s| {
        s.contains("tui-reader") && s.contains("acme") && s.contains("in 29d")
    });
    tmux.keys(&["End", "Enter"]);
    let s = tmux.wait("a key detail", |s| {
        s.contains("Entitlements") && s.contains("expires after")
    });
    assert!(!s.contains("hvl_"), "no token in the key views: {s}");
    // q backs out of the detail view, then quits.
    tmux.keys(&["q"]);
    tmux.wait("the keys list again", |s| s.contains(" Keys ("));
    quit(&tmux);
}

/// `env add` on a terminal prompts for what the flags did not give, and the API key is read
/// without echo: it never shows on the screen, yet lands in the config file.
#[test]
fn env_add_prompts_on_a_terminal_and_hides_the_key() {
    if !have_tmux() {
        return;
    }
    let h = super::home("cli-env-tty");
    let tmux = start_with(&h, "env", &["env", "add", "tty"]);
    tmux.wait("the base URL prompt", |s| s.contains("Base URL:"));
    tmux.keys(&["-l", "http://127.0.0.1:9"]);
    tmux.keys(&["Enter"]);
    tmux.wait("the API key prompt", |s| s.contains("API key (not shown):"));
    tmux.keys(&["-l", "hvl_TYPED_SECRET_0123"]);
    tmux.keys(&["BSpace"]);
    tmux.keys(&["-l", "4"]);
    tmux.keys(&["Enter"]);
    exited(&tmux);
    let screen = tmux.screen();
    assert!(!screen.contains("TYPED_SECRET"), "{screen}");
    let config = std::fs::read_to_string(h.join(".hevlayer/config.toml")).expect("config");
    assert!(config.contains("hvl_TYPED_SECRET_0124"), "{config}");
    assert!(config.contains("http://127.0.0.1:9"), "{config}");
}
