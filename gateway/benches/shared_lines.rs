//! What a per-request write to a cache line every shard shares costs, against a shard-local one
//! (issue 17, lever 5). Two threads stand for two shards, each pinned to its own CPU when the
//! machine has two; each runs the same per-request step in a loop:
//!
//! - `admit`: the default auth mode's admission (one principal for all traffic), through one
//!   `Auth` both threads share, then through each thread's [`Auth::shard_copy`] (what a shard
//!   does now);
//! - `watch`: a query's read of its namespace's consistency state, as a counted reference
//!   (`Watcher::get`, what a query did before) and as a borrow (`Watcher::snapshot`, now).
//!
//! Run: `cargo bench -p layer-gateway --bench shared_lines` (`SHARED_LINES_N` steps per thread,
//! 5,000,000 by default). Prints ns per step, alone and with both threads running.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use http::HeaderMap;
use layer_gateway::Config;
use layer_gateway::core::auth::{Auth, Surface};
use layer_gateway::core::config::Scope;
use layer_gateway::core::watcher::Watcher;

fn headers(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    h
}

/// Runs `step` `n` times on each of `threads` threads (thread `i` on CPU `i` when there is one)
/// and returns the mean ns per step over all threads.
fn run<S: Fn() + Send + Sync>(threads: usize, n: u64, make: impl Fn() -> S) -> f64 {
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    let barrier = Barrier::new(threads);
    let steps: Vec<S> = (0..threads).map(|_| make()).collect();
    let total: f64 = std::thread::scope(|s| {
        let handles: Vec<_> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let (barrier, cpu) = (&barrier, cpus.get(i).copied());
                s.spawn(move || {
                    if let Some(cpu) = cpu {
                        core_affinity::set_for_current(cpu);
                    }
                    barrier.wait();
                    let t = Instant::now();
                    for _ in 0..n {
                        step();
                    }
                    t.elapsed().as_nanos() as f64 / n as f64
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total / threads as f64
}

fn main() {
    let n: u64 = std::env::var("SHARED_LINES_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let mut cfg = Config::default();
    cfg.vector_store.credential.value = Some("tpuf_store_key".into());
    let auth = Arc::new(Auth::from_config(&cfg, &|_| None).unwrap());
    let h = headers("tpuf_store_key");
    let admit = |a: &Auth| {
        black_box(
            a.admit(&h, Some(Scope::Read), Surface::Data, Some("products"))
                .unwrap(),
        );
    };
    let (watcher, _rx) = Watcher::new(cfg.gateway.consistency.clone());
    watcher.register("products");

    println!("| step | 1 thread, ns | 2 threads, ns each |");
    println!("|---|---:|---:|");
    let row = |name: &str, one: f64, two: f64| println!("| {name} | {one:.1} | {two:.1} |");
    let shared = |t| run(t, n, || || admit(&auth));
    row("admit, one shared `Auth`", shared(1), shared(2));
    let own = |t| {
        run(t, n, || {
            let copy = auth.shard_copy();
            move || admit(&copy)
        })
    };
    row("admit, each shard's copy", own(1), own(2));
    let counted = |t| run(t, n, || || drop(black_box(watcher.get("products"))));
    row("namespace state, counted reference", counted(1), counted(2));
    let borrowed = |t| {
        run(t, n, || {
            || {
                black_box(watcher.snapshot("products"));
            }
        })
    };
    row("namespace state, borrowed", borrowed(1), borrowed(2));
}
