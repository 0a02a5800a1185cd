//! Counters, HDR histograms, and the JSON and human-readable reports.
//!
//! Latencies are recorded in microseconds in [`hdrhistogram`] histograms with three significant
//! digits (so every reported percentile is within 0.1 % of the true value) up to one hour.
//! Each connection task owns its own [`Stats`]; they are merged once at the end, so the hot
//! path takes no lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenario::{Mode, Pacing, Plan};
use crate::schedule::Window;

/// Highest trackable latency, in microseconds (1 h).
const MAX_US: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; failure would be a programming error.
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// Transport-level failures (no HTTP status was received).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    /// TCP connect or HTTP handshake failed.
    pub connect: u64,
    /// The connection failed while sending or reading.
    pub io: u64,
    /// No complete response within the request timeout.
    pub timeout: u64,
}

impl Errors {
    /// Sum of all kinds.
    pub fn total(&self) -> u64 {
        self.connect + self.io + self.timeout
    }
}

/// What one connection task observed.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of measured responses (any status), µs.
    pub latency: Histogram<u64>,
    /// Open loop only: actual send time minus scheduled time, µs.
    pub send_lag: Histogram<u64>,
    /// Spin pacing only: when the pacer released a ticket minus its scheduled time, µs: the
    /// pacer's own lateness. The rest of a send lag is the wait for a free connection and for
    /// the load generator to run the slot that takes the ticket.
    pub release_lag: Histogram<u64>,
    /// Measured responses by status.
    pub status: BTreeMap<u16, u64>,
    /// Measured transport errors.
    pub errors: Errors,
    /// Responses received at any time, warm-up and drain included (for CPU-per-request maths).
    pub all_responses: u64,
    /// Response body bytes (measured requests).
    pub bytes_in: u64,
    /// Request body bytes (measured requests).
    pub bytes_out: u64,
    /// Connections opened after the initial one (server closes, errors).
    pub reconnects: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: histogram(),
            send_lag: histogram(),
            release_lag: histogram(),
            status: BTreeMap::new(),
            errors: Errors::default(),
            all_responses: 0,
            bytes_in: 0,
            bytes_out: 0,
            reconnects: 0,
        }
    }
}

impl Stats {
    /// Records a latency (saturating at one hour; at least 1 µs).
    pub fn record_latency(&mut self, d: Duration) {
        self.latency.saturating_record(micros(d));
    }

    /// Records an open-loop send lag.
    pub fn record_lag(&mut self, d: Duration) {
        self.send_lag.saturating_record(micros(d));
    }

    /// Records how late the spin pacer released a ticket.
    pub fn record_release_lag(&mut self, d: Duration) {
        self.release_lag.saturating_record(micros(d));
    }

    /// Adds another task's stats.
    pub fn merge(&mut self, o: &Stats) {
        // Same bounds on both sides, so `add` cannot fail; saturate defensively anyway.
        if self.latency.add(&o.latency).is_err() {
            for v in o.latency.iter_recorded() {
                self.latency
                    .saturating_record_n(v.value_iterated_to(), v.count_at_value());
            }
        }
        for (into, from) in [
            (&mut self.send_lag, &o.send_lag),
            (&mut self.release_lag, &o.release_lag),
        ] {
            if into.add(from).is_err() {
                for v in from.iter_recorded() {
                    into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
                }
            }
        }
        for (k, v) in &o.status {
            *self.status.entry(*k).or_default() += v;
        }
        self.errors.connect += o.errors.connect;
        self.errors.io += o.errors.io;
        self.errors.timeout += o.errors.timeout;
        self.all_responses += o.all_responses;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.reconnects += o.reconnects;
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros().min(MAX_US as u128) as u64).max(1)
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Minimum.
    pub min: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// Maximum.
    pub max: u64,
}

impl Percentiles {
    /// Reads the standard percentiles out of a histogram (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// The run report (the JSON output; field names are stable).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Target URL.
    pub target: String,
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Closed loop: requests in flight.
    pub concurrency: Option<usize>,
    /// Open loop: offered requests per second.
    pub rate: Option<f64>,
    /// Open loop: `timer` or `spin` (see [`crate::scenario::Pacing`]).
    pub pacing: Option<&'static str>,
    /// Connections opened.
    pub connections: usize,
    /// Requests sent together per booked request (1: no fan-out).
    pub fanout: usize,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Measured duration, seconds.
    pub duration_s: f64,
    /// Measured requests that got a response (any status).
    pub requests: u64,
    /// `requests / duration_s`.
    pub throughput_rps: f64,
    /// Measured responses with an expected status.
    pub ok: u64,
    /// Measured responses with another status.
    pub unexpected_status: u64,
    /// Measured responses by status code.
    pub status: BTreeMap<String, u64>,
    /// Measured transport errors.
    pub errors: Errors,
    /// Responses over the whole run, warm-up and drain included.
    pub all_responses: u64,
    /// Latency percentiles, µs (open loop: from the scheduled send time).
    pub latency_us: Percentiles,
    /// Open loop: how late requests left relative to their schedule, µs.
    pub send_lag_us: Option<Percentiles>,
    /// Spin pacing: how late the pacer released tickets, µs (the rest of `send_lag_us` is
    /// waiting for a free connection and for the load generator to run the slot).
    pub release_lag_us: Option<Percentiles>,
    /// Open loop: requests the schedule measured (responses + errors should equal it).
    pub scheduled: Option<u64>,
    /// Response body bytes (measured).
    pub bytes_in: u64,
    /// Request body bytes (measured).
    pub bytes_out: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Wall time of the whole run including connect, warm-up and drain, seconds.
    pub wall_s: f64,
}

impl Report {
    /// Builds the report from merged stats.
    pub fn new(plan: &Plan, target: &str, s: &Stats, wall: Duration) -> Report {
        let Window { warmup, duration } = plan.window;
        let requests: u64 = s.status.values().sum();
        let ok: u64 = s
            .status
            .iter()
            .filter(|(k, _)| plan.is_expected(**k))
            .map(|(_, v)| v)
            .sum();
        let (mode, concurrency, rate, pacing, lag, scheduled) = match plan.mode {
            Mode::Closed { concurrency } => ("closed", Some(concurrency), None, None, None, None),
            Mode::Open {
                schedule, pacing, ..
            } => (
                "open",
                None,
                Some(schedule.rate()),
                Some(pacing),
                Some(Percentiles::of(&s.send_lag)),
                Some(schedule.counts(&plan.window).1),
            ),
        };
        Report {
            scenario: plan.name.clone(),
            target: target.to_string(),
            mode,
            concurrency,
            rate,
            pacing: pacing.map(Pacing::name),
            connections: plan.mode.connections() * plan.fanout,
            fanout: plan.fanout,
            warmup_s: warmup.as_secs_f64(),
            duration_s: duration.as_secs_f64(),
            requests,
            throughput_rps: (requests as f64 / duration.as_secs_f64() * 10.0).round() / 10.0,
            ok,
            unexpected_status: requests - ok,
            status: s.status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            errors: s.errors,
            all_responses: s.all_responses,
            latency_us: Percentiles::of(&s.latency),
            send_lag_us: lag,
            release_lag_us: (pacing == Some(Pacing::Spin)).then(|| Percentiles::of(&s.release_lag)),
            scheduled,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            reconnects: s.reconnects,
            wall_s: (wall.as_secs_f64() * 1000.0).round() / 1000.0,
        }
    }

    /// Whether anything went wrong (transport errors or unexpected statuses).
    pub fn has_failures(&self) -> bool {
        self.errors.total() > 0 || self.unexpected_status > 0
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        // A plain data struct of numbers and strings always serializes.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human-readable summary.
    pub fn to_human(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "scenario   {}  →  {}", self.scenario, self.target);
        let shape = match (self.concurrency, self.rate) {
            (Some(c), _) if self.fanout > 1 => format!(
                "closed loop, {c} x {} connections (each request a fan-out of {})",
                self.fanout, self.fanout
            ),
            (Some(c), _) => format!("closed loop, {c} connections"),
            (_, Some(r)) => format!(
                "open loop, {r} req/s over {} connections ({} pacing)",
                self.connections,
                self.pacing.unwrap_or("timer")
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "load       {shape}; warm-up {}s, measured {}s (wall {:.1}s)",
            self.warmup_s, self.duration_s, self.wall_s
        );
        let _ = writeln!(
            o,
            "requests   {} ({:.1} req/s); ok {}, unexpected status {}, errors {} \
             (connect {}, io {}, timeout {}), reconnects {}",
            self.requests,
            self.throughput_rps,
            self.ok,
            self.unexpected_status,
            self.errors.total(),
            self.errors.connect,
            self.errors.io,
            self.errors.timeout,
            self.reconnects
        );
        if let Some(s) = self.scheduled {
            let _ = writeln!(o, "scheduled  {s} requests in the measured window");
        }
        let status: Vec<String> = self
            .status
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(o, "status     {}", status.join(" "));
        let _ = writeln!(o, "latency    {}", fmt_pct(&self.latency_us));
        if let Some(l) = &self.send_lag_us {
            let _ = writeln!(o, "send lag   {}", fmt_pct(l));
        }
        if let Some(l) = &self.release_lag_us {
            let _ = writeln!(o, "paced      {} (the pacer's own lateness)", fmt_pct(l));
        }
        let _ = writeln!(
            o,
            "bytes      in {} B, out {} B (bodies, measured requests)",
            self.bytes_in, self.bytes_out
        );
        o
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

fn fmt_pct(p: &Percentiles) -> String {
    format!(
        "ms  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {:.3}, min {})",
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.p99_9),
        ms(p.max),
        p.mean / 1000.0,
        ms(p.min)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_merge() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for us in 1..=1000u64 {
            a.record_latency(Duration::from_micros(us));
        }
        b.record_latency(Duration::from_secs(2));
        b.record_latency(Duration::from_nanos(10)); // rounds up to 1 µs
        b.record_latency(Duration::from_secs(7200)); // saturates at 1 h
        *a.status.entry(200).or_default() += 1000;
        *b.status.entry(200).or_default() += 2;
        *b.status.entry(503).or_default() += 1;
        b.errors.timeout = 4;
        b.all_responses = 9;
        a.merge(&b);
        let p = Percentiles::of(&a.latency);
        assert_eq!(p.count, 1003);
        assert_eq!(p.min, 1);
        assert!((499..=502).contains(&p.p50), "{p:?}");
        assert!((899..=903).contains(&p.p90), "{p:?}");
        assert!((989..=993).contains(&p.p99), "{p:?}");
        assert!(p.max >= MAX_US - MAX_US / 1000, "{p:?}");
        assert_eq!(a.status[&200], 1002);
        assert_eq!(a.status[&503], 1);
        assert_eq!(a.errors.total(), 4);
        assert_eq!(a.all_responses, 9);
        assert_eq!(
            Percentiles::of(&Stats::default().latency),
            Percentiles::default()
        );
    }
}
