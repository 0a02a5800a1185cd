//! `layer dev`: the embedded stack started on free ports with a temporary data directory; the
//! test waits for the printed lines, talks to the gateway through the printed URL and bearer
//! (with `layer` itself), sends SIGINT, and checks that `layer dev` exits 0, every child it
//! named is gone, the ports are free and PostgreSQL is stopped. PostgreSQL is optional when its
//! server binaries are not installed, required under CI (`CI=true`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use layer_e2e::pause;
use layer_e2e::process::binary;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{home, layer};

/// `pid N` in a component line.
fn pid_of(line: &str) -> Option<i32> {
    let at = line.find("pid ")?;
    line[at + 4..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Whether `pid` still runs: it exists and is not a zombie (PostgreSQL's postmaster is
/// daemonized by `pg_ctl`, so once stopped it waits for PID 1 to reap it, which a container's
/// PID 1 may never do).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
    }
}

#[test]
fn dev_runs_the_stack_and_stops_it_on_sigint() {
    let h = home("cli-dev");
    let data = h.join("data");
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let pg_bin = std::path::Path::new("/usr/lib/postgresql/15/bin");
    let with_pg = pg_bin.join("initdb").is_file();
    if !with_pg {
        assert!(!ci, "PostgreSQL server binaries are required under CI");
        eprintln!("\n!!! cli dev: no PostgreSQL here, `layer dev` runs without the queue !!!\n");
    }
    let log = std::fs::File::create(h.join("dev.log")).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_layer"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LAYER_") || k.starts_with("HEVLAYER_") {
            c.env_remove(k);
        }
    }
    // Free ports everywhere (the defaults are the fixed 8080/8090/8081/8428 of scripts/run),
    // through the variables scripts/run honours.
    c.env("HOME", &h)
        .env("LAYER_DATA_DIR", &data)
        .env("LAYER_LISTEN", "127.0.0.1:0")
        .env("LAYER_EMULATOR_LISTEN", "127.0.0.1:0")
        .env("LAYER_DASHBOARD_LISTEN", "127.0.0.1:0")
        .env("LAYER_VM_LISTEN", "127.0.0.1:0")
        .env("LAYER_API_KEY", "dev-test-bearer")
        // Empty counts as unset (the cluster goes to DATA_DIR/postgres, asserted below).
        .env("LAYER_PG_DIR", "")
        .env(
            "LAYER_GATEWAY_BIN",
            binary("LAYER_GATEWAY_BIN", "layer-gateway"),
        )
        .env(
            "LAYER_EMULATOR_BIN",
            binary("LAYER_EMULATOR_BIN", "turbopuffer-emulator"),
        )
        .env(
            "LAYER_DASHBOARD_BIN",
            binary("LAYER_DASHBOARD_BIN", "layer-dashboard"),
        )
        .arg("dev")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    let mut dev = c.spawn().expect("start layer dev");
    let stdout = dev.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Component lines by name (`gateway:`, `emulator:`, ...) until the closing line.
    let mut lines = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => {
                let _ = dev.kill();
                let log = std::fs::read_to_string(h.join("dev.log")).unwrap_or_default();
                panic!("layer dev never got ready: {lines:?}\n{log}");
            }
        };
        if line.starts_with("Ctrl-C stops everything") {
            break;
        }
        if let Some((name, rest)) = line.trim().split_once(':')
            && !name.contains(' ')
        {
            lines.insert(name.to_string(), rest.trim().to_string());
        }
    }
    let url = |name: &str| -> String {
        let l = lines
            .get(name)
            .unwrap_or_else(|| panic!("no {name} line: {lines:?}"));
        l.split_whitespace().next().unwrap().to_string()
    };
    let gateway = url("gateway");
    let bearer = url("bearer");
    assert_eq!(bearer, "dev-test-bearer");
    assert!(
        lines["gateway"].contains(&data.join("gateway").display().to_string()),
        "{lines:?}"
    );
    assert!(
        lines["emulator"].contains(&data.join("emulator").display().to_string()),
        "{lines:?}"
    );
    assert!(lines.contains_key("dashboard"), "{lines:?}");
    if with_pg {
        let pg = data.join("postgres/data").display().to_string();
        assert!(lines["postgres"].contains(&pg), "{lines:?}");
    }

    // The gateway through the printed URL and bearer: a write, the listing, and (with the
    // queue) the pipeline routes, which answer 503 without it.
    let vars = [
        ("LAYER_BASE_URL", gateway.as_str()),
        ("LAYER_API_KEY", bearer.as_str()),
    ];
    let http = layer_e2e::Http::default();
    let auth = format!("Bearer {bearer}");
    let r = http.send(
        http::Method::POST,
        &format!("{gateway}/v2/namespaces/dev-docs"),
        &[("authorization", auth.as_str())],
        r#"{"upsert_rows":[{"id":"a","title":"hello"}]}"#,
    );
    assert!(r.status.is_success(), "{}", r.text());
    let names = layer(&h, &["index", "list", "-o", "names"], &vars).ok();
    assert!(
        names.stdout.lines().any(|l| l == "dev-docs"),
        "{}",
        names.stdout
    );
    let pipes = layer(&h, &["pipeline", "list", "-o", "json"], &vars);
    assert_eq!(pipes.code == 0, with_pg, "{}", pipes.stderr);

    // SIGINT: everything stops, layer dev exits 0.
    let pids: Vec<(String, i32)> = lines
        .iter()
        .filter_map(|(k, v)| pid_of(v).map(|p| (k.clone(), p)))
        .collect();
    assert!(pids.len() >= 3, "{lines:?}");
    let addrs: Vec<String> = ["gateway", "emulator", "dashboard", "metrics"]
        .iter()
        .filter(|n| lines.get(**n).is_some_and(|l| l.starts_with("http://")))
        .map(|n| url(n).trim_start_matches("http://").to_string())
        .collect();
    kill(Pid::from_raw(dev.id() as i32), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = dev.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "layer dev did not stop");
        pause(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(h.join("dev.log")).unwrap_or_default();
    assert!(status.success(), "{status}: {log}");
    for (name, pid) in &pids {
        assert!(
            !alive(*pid),
            "{name} (pid {pid}) still runs after layer dev exited"
        );
    }
    for a in &addrs {
        assert!(
            std::net::TcpStream::connect(a).is_err(),
            "{a} still accepts connections"
        );
    }
    if with_pg {
        assert!(
            !data.join("postgres/data/postmaster.pid").exists(),
            "PostgreSQL still runs: {log}"
        );
        assert!(log.contains("postgres stopped"), "{log}");
    }
    // The PostgreSQL cluster and the stores are tens of MB: gone once the test passed.
    let _ = std::fs::remove_dir_all(&h);
}
