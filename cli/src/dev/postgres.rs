//! The private PostgreSQL cluster of `layer dev` (the pipeline and UDF queue): the system's
//! server binaries (`initdb`, `pg_ctl`), a cluster kept under the data directory across runs,
//! reached over a Unix socket only (`listen_addresses=''`, so no port can clash), started with
//! `pg_ctl start -w` and stopped with `pg_ctl stop -m fast -w`. As root the server runs as the
//! `postgres` user (`runuser`), which cannot enter root's home: root's cluster then lives under
//! `/var/lib/layer/postgres` unless `--pg-dir` names one.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::error::{CliError, Result};

/// A started cluster.
pub struct Postgres {
    bin: PathBuf,
    pub dir: PathBuf,
    /// The `LAYER_DATABASE_URL` of the gateway (libpq key/value form).
    pub url: String,
    /// The postmaster's pid (from `postmaster.pid`), for the status line.
    pub pid: Option<u32>,
    as_postgres: bool,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `cmd args...`, as the `postgres` user when `as_postgres` (from `/tmp`, which it can enter).
fn command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(program)
            .current_dir("/tmp");
        c
    } else {
        Command::new(program)
    }
}

async fn run(what: &str, mut c: Command) -> Result<()> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| CliError::failure(format!("postgres: {what}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(CliError::failure(format!(
        "postgres: {what} failed ({}): {}",
        out.status,
        last.trim()
    )))
}

/// Whether the `postgres` user can enter `dir`.
async fn postgres_can_enter(dir: &Path) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "test", "-x"])
        .arg(dir)
        .current_dir("/tmp")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

impl Postgres {
    /// `bin/initdb` exists.
    pub fn installed(bin: &Path) -> bool {
        bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()
    }

    /// Creates the cluster on first use and starts it.
    pub async fn start(bin: &Path, data: &Path, pg_dir: Option<&Path>) -> Result<Postgres> {
        let as_postgres = is_root();
        let dir = match pg_dir {
            Some(d) => d.to_path_buf(),
            None if as_postgres && !postgres_can_enter(data).await => {
                PathBuf::from("/var/lib/layer/postgres")
            }
            None => data.join("postgres"),
        };
        let fail = |e: std::io::Error| CliError::failure(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir.join("sock")).map_err(fail)?;
        if as_postgres {
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:postgres"]).arg(&dir);
            run("chown", c).await?;
        }
        let data_dir = dir.join("data");
        if !data_dir.join("PG_VERSION").is_file() {
            let mut c = command(as_postgres, &bin.join("initdb"));
            c.arg("-D").arg(&data_dir).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]);
            run("initdb", c).await?;
        }
        let sock = dir.join("sock");
        let mut c = command(as_postgres, &bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&data_dir)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-k {} -c listen_addresses=''", sock.display()))
            .arg("start");
        run("pg_ctl start", c).await.map_err(|e| {
            CliError::failure(format!(
                "{} (log: {})",
                e.message,
                dir.join("server.log").display()
            ))
        })?;
        let pid = std::fs::read_to_string(data_dir.join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()));
        Ok(Postgres {
            bin: bin.to_path_buf(),
            url: format!("host={} user=postgres dbname=postgres", sock.display()),
            dir,
            pid,
            as_postgres,
        })
    }

    /// Stops the cluster (fast shutdown, waiting for it).
    pub async fn stop(&self) -> Result<()> {
        let mut c = command(self.as_postgres, &self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"]);
        run("pg_ctl stop", c).await
    }
}
