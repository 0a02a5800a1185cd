//! CPU ticks by part: this process's threads grouped by name (gateway shards, gateway control
//! runtime, emulator, client), the PostgreSQL server `LAYER_TEST_PG_PID` names with its
//! backends, and the whole machine (tasks, irq + softirq); and one table row of the seconds each
//! part used between two moments.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::stats::pct_of;

/// CPU ticks by part at one moment: this process's threads grouped by name, the PostgreSQL
/// server (when `LAYER_TEST_PG_PID` names it) and the whole machine.
#[derive(Clone)]
pub(crate) struct Cpu {
    at: Instant,
    groups: BTreeMap<&'static str, u64>,
    process: u64,
    postgres: Option<u64>,
    /// user + nice + system of every CPU.
    machine_tasks: u64,
    /// irq + softirq of every CPU (the loopback traffic's receive side, mostly).
    machine_irq: u64,
    machine_all: u64,
}

/// What [`Cpu`] counted between two moments.
pub(crate) struct CpuDelta {
    wall: f64,
    groups: BTreeMap<&'static str, u64>,
    process: u64,
    postgres: Option<u64>,
    machine_tasks: u64,
    machine_irq: u64,
    machine_all: u64,
}

const GROUPS: [&str; 4] = ["gateway shards", "gateway control", "emulator", "client"];

fn group_of(comm: &str) -> Option<&'static str> {
    if comm.starts_with("layer-shard") {
        Some(GROUPS[0])
    } else if comm.starts_with("layer-control") {
        Some(GROUPS[1])
    } else if comm.starts_with("tokio-r") {
        // The emulator's runtime keeps tokio's default thread name; every other runtime here
        // is named.
        Some(GROUPS[2])
    } else if comm.starts_with("bench-client") {
        Some(GROUPS[3])
    } else {
        None
    }
}

/// `(comm, ppid, utime + stime)` of a `/proc/.../stat` line.
fn parse_stat(text: &str) -> Option<(String, u32, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let ppid = rest.get(1)?.parse().ok()?;
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, ppid, utime + stime))
}

/// CPU ticks of the PostgreSQL server `LAYER_TEST_PG_PID` names and its children (the backends).
fn postgres_ticks() -> Option<u64> {
    let pid: u32 = std::env::var("LAYER_TEST_PG_PID")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(this) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((_, ppid, ticks)) = parse_stat(&text)
            && (this == pid || ppid == pid)
        {
            total += ticks;
        }
    }
    Some(total)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when that fails).
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

impl Cpu {
    pub(crate) fn take() -> Cpu {
        let mut groups = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for entry in dir.flatten() {
                let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, _, ticks)) = parse_stat(&text)
                    && let Some(g) = group_of(&comm)
                {
                    *groups.entry(g).or_default() += ticks;
                }
            }
        }
        let process = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| parse_stat(&t))
            .map_or(0, |(_, _, ticks)| ticks);
        let (mut machine_tasks, mut machine_irq, mut machine_all) = (0, 0, 0);
        if let Ok(stat) = std::fs::read_to_string("/proc/stat")
            && let Some(line) = stat.lines().next()
        {
            let f: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal (steal: not ours, not busy)
            if f.len() >= 8 {
                machine_tasks = f[0] + f[1] + f[2];
                machine_irq = f[5] + f[6];
                machine_all = f[..8].iter().sum();
            }
        }
        Cpu {
            at: Instant::now(),
            groups,
            process,
            postgres: postgres_ticks(),
            machine_tasks,
            machine_irq,
            machine_all,
        }
    }

    pub(crate) fn since(&self, before: &Cpu) -> CpuDelta {
        let groups = GROUPS
            .iter()
            .map(|g| {
                let now = self.groups.get(g).copied().unwrap_or(0);
                let then = before.groups.get(g).copied().unwrap_or(0);
                (*g, now.saturating_sub(then))
            })
            .collect();
        CpuDelta {
            wall: self.at.duration_since(before.at).as_secs_f64(),
            groups,
            process: self.process.saturating_sub(before.process),
            postgres: self
                .postgres
                .zip(before.postgres)
                .map(|(a, b)| a.saturating_sub(b)),
            machine_tasks: self.machine_tasks.saturating_sub(before.machine_tasks),
            machine_irq: self.machine_irq.saturating_sub(before.machine_irq),
            machine_all: self.machine_all.saturating_sub(before.machine_all),
        }
    }
}

impl CpuDelta {
    /// One table row: CPU seconds of each part.
    pub(crate) fn row(&self, phase: &str) {
        let hz = clk_tck();
        let secs = |t: u64| t as f64 / hz;
        let mut cells = vec![phase.to_string(), format!("{:.2}", self.wall)];
        let mut grouped = 0;
        for g in GROUPS {
            let t = self.groups.get(g).copied().unwrap_or(0);
            grouped += t;
            cells.push(format!("{:.2}", secs(t)));
        }
        cells.push(format!("{:.2}", secs(self.process.saturating_sub(grouped))));
        let pg = self.postgres.unwrap_or(0);
        cells.push(
            self.postgres
                .map_or_else(|| "n/a".to_string(), |t| format!("{:.2}", secs(t))),
        );
        let other = self.machine_tasks as f64 - self.process as f64 - pg as f64;
        cells.push(format!("{:.2}", other / hz));
        cells.push(format!("{:.2}", secs(self.machine_irq)));
        cells.push(format!(
            "{:.0}",
            pct_of(
                (self.machine_tasks + self.machine_irq) as f64,
                self.machine_all as f64
            )
        ));
        println!("| {} |", cells.join(" | "));
    }
}
