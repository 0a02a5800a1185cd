//! One comparison, run and reported: the floor before, discovery, claim + complete (plain and
//! pipelined workers), the floor after, then the tables: rows/s, the ratios to the floor, where
//! the time goes (client latencies beside the gateway's histograms) and CPU by part per phase.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;

use crate::client::{Http, send, status};
use crate::floor::{floor, floor_body, last_completion_body};
use crate::metrics::{Hist, Snapshot};
use crate::setup::write_delay;
use crate::stats::{mean_ms, pct, pct_of, sum};
use crate::workers::{drain, requeue};
use crate::{POLL, Scenario, WORKERS};

pub(crate) async fn compare(http: &Http, base: &str, emulator: &str, sc: &Scenario) {
    let (udf, rows, batch) = (sc.udf, sc.rows, sc.batch);
    println!();
    if sc.delay_ms == 0 {
        println!("## Upstream answering writes at once ({rows} rows)");
    } else {
        println!(
            "## Every upstream write delayed {} ms, both paths ({rows} rows)",
            sc.delay_ms
        );
    }
    write_delay(http, emulator, sc.delay_ms).await;

    // 4a. The floor, first pass (before the UDF phases).
    let floor_a = floor(http, emulator, sc).await;

    // 1. Discovery.
    let before = Snapshot::take(http, base).await;
    let started = Instant::now();
    let (s, answer) = send(
        http,
        Method::POST,
        &format!("{base}/v2/udfs/{udf}/discover"),
        "{}".into(),
    )
    .await;
    assert_eq!(s, 200, "discover: {answer}");
    let answered = started.elapsed().as_secs_f64();
    let st = loop {
        let st = status(http, base, udf).await;
        let d = &st["discovery"];
        if d["sweeps_completed"].as_i64().unwrap_or(0) >= 1 && d["running"] == false {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "discovery never finished: {st}"
        );
        tokio::time::sleep(POLL).await;
    };
    let discovery_secs = started.elapsed().as_secs_f64();
    let after_discovery = Snapshot::take(http, base).await;
    let pending = st["pending_count"].as_u64().unwrap_or(0);
    if let Some(e) = st["discovery"]["last_error"].as_str() {
        println!();
        println!("**Discovery reported an error: {e}**");
    }

    // 2. Claim + complete.
    let (s, v) = send(
        http,
        Method::POST,
        &format!("{base}/v2/udfs/{udf}/resume"),
        String::new(),
    )
    .await;
    assert_eq!(s, 200, "resume: {v}");
    let before_work = Snapshot::take(http, base).await;
    let work = drain(http, base, udf, false).await;
    let after_work = Snapshot::take(http, base).await;
    let end = status(http, base, udf).await;
    let last_body = last_completion_body(http, emulator, sc.ns).await;

    // 2'. Claim + complete again with pipelined workers (a version bump requeues every row).
    let requeued = requeue(http, base, udf).await;
    let before_piped = Snapshot::take(http, base).await;
    let piped = drain(http, base, udf, true).await;
    let after_piped = Snapshot::take(http, base).await;
    let end_piped = status(http, base, udf).await;

    // 4b. The floor, second pass (after).
    let floor_b = floor(http, emulator, sc).await;
    write_delay(http, emulator, 0).await;

    // Report.
    let n = rows as f64;
    let floor_rate = (floor_a.rate(rows) + floor_b.rate(rows)) / 2.0;
    let work_rate = work.done as f64 / work.secs;
    let total_secs = discovery_secs + work.secs;
    println!();
    println!("| phase | rows | seconds | rows/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| (a) discovery: `discover` call + status polls until the sweep completed ({pending} \
         enqueued; the call answered after {answered:.2} s, complete: {}) | {rows} | \
         {discovery_secs:.2} | {:.0} |",
        answer["complete"],
        n / discovery_secs
    );
    println!(
        "| (b) claim + complete, {WORKERS} workers, no-op function ({} claims, {} completes) | {} \
         | {:.2} | {work_rate:.0} |",
        work.claims.len(),
        work.completes.len(),
        work.done,
        work.secs
    );
    println!(
        "| (c) total: discovery + claim + complete | {rows} | {total_secs:.2} | {:.0} |",
        n / total_secs
    );
    println!(
        "| (b') claim + complete, {WORKERS} pipelined workers (each claims its next batch while \
         its previous completion is in flight; after a version bump requeued {} rows) | {} | \
         {:.2} | {:.0} |",
        requeued,
        piped.done,
        piped.secs,
        piped.done as f64 / piped.secs
    );
    for (label, f) in [("before", &floor_a), ("after", &floor_b)] {
        println!(
            "| (d) floor: the same `patch_columns` straight to the emulator, {WORKERS} writers \
             ({label}) | {rows} | {:.2} | {:.0} |",
            f.secs,
            f.rate(rows)
        );
    }
    println!();
    println!("| ratio | value |");
    println!("|---|---:|");
    println!(
        "| (b) claim + complete / floor (mean of both passes; goal >= 0.8) | {:.2} |",
        work_rate / floor_rate
    );
    println!(
        "| (c) discovery + claim + complete / floor | {:.2} |",
        (n / total_secs) / floor_rate
    );
    println!(
        "| (b') pipelined claim + complete / floor | {:.2} |",
        (piped.done as f64 / piped.secs) / floor_rate
    );
    println!();
    for (label, end) in [("(b)", &end), ("(b')", &end_piped)] {
        let indexed = end["counts"]["indexed"].as_u64().unwrap_or(0);
        let drained = end["pending_count"] == 0 && end["processing_count"] == 0;
        println!(
            "Status after {label}: pending {}, processing {}, failed {}, indexed {indexed} of \
             {rows}{}.",
            end["pending_count"],
            end["processing_count"],
            end["failed_count"],
            if drained && indexed == rows as u64 {
                ""
            } else {
                " — **not drained: the figures above are not valid**"
            }
        );
    }

    // Where the time goes: per-call latencies beside the gateway's histograms.
    let udf_label = format!("udf=\"{udf}\"");
    let m = |name: &str, labels: &[&str]| after_work.hist(&before_work, name, labels);
    let req_claim = m(
        "layer_request_duration_seconds",
        &[r#"route="claim_udf_items""#],
    );
    let req_complete = m(
        "layer_request_duration_seconds",
        &[r#"route="complete_udf_items""#],
    );
    let apply = m(
        "layer_udf_completion_duration_seconds",
        &[&udf_label, r#"status="ok""#],
    );
    let upstream = m(
        "layer_upstream_duration_seconds",
        &[r#"route="udf_complete""#],
    );
    let mut claims = work.claims.clone();
    claims.sort();
    let mut completes = work.completes.clone();
    completes.sort();
    let mut direct = floor_a.calls.clone();
    direct.extend(floor_b.calls.iter().copied());
    direct.sort();
    println!();
    println!("### Where the time goes");
    println!();
    println!(
        "Claim + complete, per call (client: as the workers saw it; gateway: its own histograms \
         over the phase, mean):"
    );
    println!();
    println!("| what | calls | mean ms | p50 ms | p99 ms | seconds summed |");
    println!("|---|---:|---:|---:|---:|---:|");
    let client_row = |name: &str, d: &[Duration]| {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            d.len(),
            mean_ms(d),
            pct(d, 0.5),
            pct(d, 0.99),
            sum(d)
        );
    };
    let gw_row = |name: &str, h: Hist| {
        println!(
            "| {name} | {:.0} | {:.2} | | | {:.2} |",
            h.count,
            h.mean_ms(),
            h.sum
        );
    };
    client_row("client: claim call", &claims);
    gw_row("gateway: claim request (`claim_udf_items`)", req_claim);
    client_row("client: complete call", &completes);
    gw_row(
        "gateway: complete request (`complete_udf_items`)",
        req_complete,
    );
    gw_row(
        "gateway: of which the completion (`layer_udf_completion_duration_seconds`: PostgreSQL \
         begin + stamp + upstream write + commit)",
        apply,
    );
    gw_row(
        "gateway: of which the upstream write \
         (`layer_upstream_duration_seconds{route=\"udf_complete\"}`)",
        upstream,
    );
    client_row("floor: direct `patch_columns` call (both passes)", &direct);
    let mut piped_claims = piped.claims.clone();
    piped_claims.sort();
    let mut piped_completes = piped.completes.clone();
    piped_completes.sort();
    client_row("(b') client: claim call, pipelined", &piped_claims);
    client_row("(b') client: complete call, pipelined", &piped_completes);
    let pm = |name: &str, labels: &[&str]| after_piped.hist(&before_piped, name, labels);
    gw_row(
        "(b') gateway: of which the upstream write, pipelined",
        pm(
            "layer_upstream_duration_seconds",
            &[r#"route="udf_complete""#],
        ),
    );
    let wall = sum(&claims) + sum(&completes);
    println!();
    println!(
        "Of the workers' {wall:.2} s of calls ({WORKERS} x {:.2} s): claims {:.0} %, completes \
         {:.0} %; the upstream write {:.0} %, the completion outside the upstream write \
         (PostgreSQL begin + commit, stamping) {:.0} %, the complete request outside the \
         completion (UDF lookup in PostgreSQL, body parse, runtime hops) {:.0} %, outside the \
         gateway's request timers (client, HTTP, queueing for a shard) {:.0} %.",
        work.secs,
        pct_of(sum(&claims), wall),
        pct_of(sum(&completes), wall),
        pct_of(upstream.sum, wall),
        pct_of(apply.sum - upstream.sum, wall),
        pct_of(req_complete.sum - apply.sum, wall),
        pct_of(wall - req_claim.sum - req_complete.sum, wall),
    );
    println!(
        "The upstream write took {:.2} ms on average through the gateway against {:.2} ms for \
         the same write sent directly ({} vs {} bytes for a full batch; the gateway's body also \
         carries its write stamp).",
        upstream.mean_ms(),
        mean_ms(&direct),
        last_body.len(),
        floor_body(sc, 0, batch.min(rows)).len(),
    );
    if !last_body.is_empty() {
        let cols: Vec<String> = serde_json::from_str::<Value>(&last_body)
            .ok()
            .and_then(|v| {
                v["patch_columns"]
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
            })
            .unwrap_or_default();
        println!(
            "Columns of the gateway's last completion write upstream: {}.",
            cols.join(", ")
        );
    }

    // Discovery's parts.
    let d = |name: &str, labels: &[&str]| after_discovery.hist(&before, name, labels);
    let sweep = d("layer_udf_discovery_duration_seconds", &[&udf_label]);
    let pages = d(
        "layer_upstream_duration_seconds",
        &[r#"route="udf_discovery""#],
    );
    println!();
    println!(
        "Discovery: the sweep itself took {:.2} s (`layer_udf_discovery_duration_seconds`), of \
         which {:.0} upstream pages took {:.2} s \
         (`layer_upstream_duration_seconds{{route=\"udf_discovery\"}}`); the rest, {:.2} s, is \
         enqueueing into PostgreSQL and progress reports.",
        sweep.sum,
        pages.count,
        pages.sum,
        sweep.sum - pages.sum
    );

    println!();
    println!(
        "CPU seconds by part, per phase (per-thread CPU of this process by thread name; \
         PostgreSQL: its server and backends; other processes: the rest of the machine's user \
         and system time, other work on the machine; irq: the kernel's interrupt and softirq \
         time, mostly the loopback traffic; busy: all of these as a share of both cores; the \
         per-thread and machine counters are kept differently by the kernel, so other processes \
         is good to a few hundredths of a second per second and can read slightly negative):"
    );
    println!();
    println!(
        "| phase | wall s | gateway shards | gateway control | emulator | client | other \
         threads | PostgreSQL | other processes | irq + softirq | machine busy % |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    floor_a.cpu.row("floor (before)");
    after_discovery.cpu.since(&before.cpu).row("discovery");
    after_work
        .cpu
        .since(&before_work.cpu)
        .row("claim + complete");
    after_piped
        .cpu
        .since(&before_piped.cpu)
        .row("claim + complete, pipelined");
    floor_b.cpu.row("floor (after)");
}
