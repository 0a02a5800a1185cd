//! The real binaries as child processes, for tests that need what the in-process harness cannot
//! give: a process's whole stderr (its logs), its exit status, its command line. [`binary`] finds
//! a binary the way the Python suites do; [`Server`] runs one that announces
//! `listening on http://ADDR` on stdout; [`run_to_exit`] runs one that should stop by itself.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::pause;

/// The binary `name` (`layer-gateway`, `turbopuffer-emulator`): `$var` (`LAYER_GATEWAY_BIN`,
/// `LAYER_EMULATOR_BIN`) when set, else next to the running test executable
/// (`<target>/<profile>/deps/<test>` → `<target>/<profile>/<name>`), else
/// `$CARGO_TARGET_DIR/debug/<name>`. Panics with how to build it when none exists: `cargo test`
/// does not build other packages' binaries (`cargo build -p layer-gateway -p
/// turbopuffer-emulator --bins` does; the test command runs it first).
pub fn binary(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return p.into();
    }
    let mut candidates = Vec::new();
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

/// Reads `r` to its end on a thread (so the child never blocks on a full pipe).
fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits up to `timeout` for `child` to exit; `None` when it is still running.
fn wait_for(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        pause(Duration::from_millis(20));
    }
}

/// Runs `cmd` to its end (killed after `timeout`): `(exited successfully, stdout, stderr)`.
pub fn run_to_exit(mut cmd: Command, timeout: Duration) -> (bool, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let status = wait_for(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    (status.is_some_and(|s| s.success()), out, err)
}

/// A server child process that prints `listening on http://ADDR` on stdout. Both its pipes are
/// read for its whole life; [`Server::stop`] returns what it wrote. Killed on drop.
pub struct Server {
    child: Option<Child>,
    /// `http://ADDR`, as announced.
    pub url: String,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Server {
    /// Starts `cmd` and waits (up to 30 s) for its `listening on` line; panics with its output
    /// when it does not come.
    pub fn start(mut cmd: Command, what: &str) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
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
        let stderr = drain(child.stderr.take().expect("stderr"));
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

    /// Sends `signal` (a `kill -s` name: `HUP`, `TERM`) to the process; panics when that fails.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server was stopped");
        let sent = Command::new("kill")
            .args(["-s", signal, &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill -s {signal} failed");
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops the process and returns everything it wrote, `(stdout, stderr)`. `graceful`
    /// sends SIGTERM first and asserts a clean exit within 20 s (then SIGKILL); otherwise
    /// SIGKILL at once.
    pub fn stop(&mut self, graceful: bool) -> (String, String) {
        let mut clean = None;
        if let Some(mut child) = self.child.take() {
            if graceful {
                let sent = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                clean = Some(sent.then(|| wait_for(&mut child, Duration::from_secs(20))));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let join = |h: Option<JoinHandle<String>>| h.map(|h| h.join().unwrap_or_default());
        let (out, err) = (
            join(self.stdout.take()).unwrap_or_default(),
            join(self.stderr.take()).unwrap_or_default(),
        );
        if let Some(status) = clean {
            assert!(
                status.flatten().is_some_and(|s| s.success()),
                "no clean exit after SIGTERM ({status:?}); stderr:\n{err}"
            );
        }
        (out, err)
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
