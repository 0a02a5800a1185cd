//! The child processes of `layer dev`: started with their stdout piped so the
//! `... listening on http://ADDR` line each server prints can be read, watched for an early exit,
//! and stopped with SIGTERM, then SIGKILL after a grace period, always reaped.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::{CliError, Result};

/// How long a server may take to print its listening line.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a child may take to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(10);

/// A running child.
pub struct Proc {
    pub name: &'static str,
    pub pid: u32,
    child: Child,
}

/// The binary `name`: `explicit` (a flag or its environment variable) when set, else next to
/// the running `layer` executable, else on `PATH`.
pub fn find_binary(explicit: Option<&Path>, name: &str) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let p = dir.join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Spawns `cmd` (stdin closed, stdout piped) as component `name`.
pub fn spawn(name: &'static str, cmd: &mut Command) -> Result<Proc> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            CliError::failure(format!(
                "{name}: cannot start {:?}: {e}",
                cmd.as_std().get_program()
            ))
        })?;
    let pid = child.id().unwrap_or(0);
    Ok(Proc { name, pid, child })
}

impl Proc {
    /// Reads stdout until the `listening on http://ADDR` line and answers `http://ADDR`; the
    /// rest of stdout is drained in the background (so the child never blocks on a full pipe).
    pub async fn listening_url(&mut self) -> Result<String> {
        let name = self.name;
        let Some(stdout) = self.child.stdout.take() else {
            return Err(CliError::failure(format!("{name}: stdout is not piped")));
        };
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(READY_WITHIN, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((_, url)) = line.split_once(" listening on ") {
                    return Some(url.trim().to_string());
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(url)) => {
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(url)
            }
            Ok(None) => {
                let status = self.child.wait().await.ok();
                Err(CliError::failure(format!(
                    "{name} exited before listening ({})",
                    status.map_or("unknown status".to_string(), |s| s.to_string())
                )))
            }
            Err(_) => Err(CliError::failure(format!(
                "{name} printed no listening line within {}s",
                READY_WITHIN.as_secs()
            ))),
        }
    }

    /// Reads and drops stdout in the background (a server that prints no listening line must
    /// not block on a full pipe).
    pub fn discard_stdout(&mut self) {
        if let Some(stdout) = self.child.stdout.take() {
            let mut lines = BufReader::new(stdout).lines();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        }
    }

    /// The exit status, if the child has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM unless the child already exited.
    pub fn terminate(&mut self) {
        if self.exited().is_none()
            && let Ok(pid) = i32::try_from(self.pid)
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// Waits for the exit (after [`Proc::terminate`]); SIGKILL after the grace period.
    pub async fn reap(&mut self) -> Option<ExitStatus> {
        match tokio::time::timeout(GRACE, self.child.wait()).await {
            Ok(s) => s.ok(),
            Err(_) => {
                let _ = self.child.kill().await;
                self.child.wait().await.ok()
            }
        }
    }
}

/// A free port on `host` when `addr` asks for port 0 (for servers that do not print the port
/// they bound); `addr` itself otherwise.
pub fn concrete_addr(addr: &str) -> Result<String> {
    let parsed: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| CliError::usage(format!("{addr:?} is not a HOST:PORT address")))?;
    if parsed.port() != 0 {
        return Ok(addr.to_string());
    }
    let l = std::net::TcpListener::bind(parsed)
        .map_err(|e| CliError::failure(format!("cannot pick a free port on {addr}: {e}")))?;
    let a = l
        .local_addr()
        .map_err(|e| CliError::failure(format!("{addr}: {e}")))?;
    Ok(a.to_string())
}

/// Waits until `addr` accepts TCP connections (a server that prints no listening line).
pub async fn wait_listening(name: &str, addr: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + READY_WITHIN;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CliError::failure(format!(
                "{name} is not listening on {addr} after {}s",
                READY_WITHIN.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
