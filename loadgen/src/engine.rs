//! The load engine: connection slots, the closed and open loops, and request construction.
//!
//! Every connection slot is one HTTP/1.1 keep-alive connection (hyper's low-level
//! `client::conn::http1`, no pool) with at most one request in flight. All slots are connected
//! before the clock starts, so connection set-up is not part of warm-up or measurement. A slot
//! whose connection is closed by the server reconnects before its next request (counted as a
//! reconnect, not an error); a slot whose request fails or times out drops the connection.
//!
//! Closed loop: each slot sends, reads the whole response, and sends again, until the window
//! closes. With a `fanout` of N, a slot holds N connections and each of its requests is N sent
//! at once (one per connection, `${leg}` = 0..N-1); it is booked as one request whose latency
//! is the slowest of the N, whose status is the highest, and whose bytes are their sum (any
//! failed member fails it). Open loop: slots take tickets from a shared counter; ticket `i` is
//! sent at `t0 + i/rate` and its latency is measured from that scheduled instant (see
//! [`crate::schedule`]). With [`Pacing::Timer`] a slot waits on tokio's timer, which has
//! millisecond granularity, so requests leave up to ~1 ms late and at high rates in small bursts;
//! with [`Pacing::Spin`] one pacer task spins (yielding to the runtime) for the last
//! [`SPIN_AHEAD`] before each instant and releases the ticket to a free slot (a semaphore
//! permit), so requests leave within microseconds. Either way the `send_lag` histogram reports
//! how late requests actually left, and that lateness is part of the measured latency, never
//! hidden.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::guard::{Target, is_loopback_addr};
use crate::report::Stats;
use crate::scenario::{Mode, Pacing, Plan, SPIN_AHEAD};
use crate::template::RenderCtx;
use crate::zipf::SplitMix64;

/// Pause after a failed connect, so a dead target does not turn into a busy loop.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// One keep-alive connection; dropping it closes the socket.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

async fn connect(addr: SocketAddr) -> Result<Conn, String> {
    if !is_loopback_addr(&addr) {
        return Err(format!("refusing to connect to non-loopback {addr}"));
    }
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn { sender, driver })
}

/// Request parts that never change, prepared once.
struct Fixed {
    uri: Uri,
    body: Bytes,
}

/// Builds requests for one plan.
struct Factory {
    plan: Arc<Plan>,
    /// Static headers plus `Host`.
    base_headers: HeaderMap,
    fixed: Option<Fixed>,
}

impl Factory {
    fn new(plan: Arc<Plan>, target: &Target) -> Result<Factory, String> {
        let mut base_headers = HeaderMap::new();
        base_headers.insert(
            http::header::HOST,
            HeaderValue::from_str(&target.authority).map_err(|e| format!("Host header: {e}"))?,
        );
        for (k, t) in &plan.headers {
            if let Some(v) = t.as_static() {
                let v = HeaderValue::from_bytes(v).map_err(|e| format!("header {k}: {e}"))?;
                base_headers.append(k.clone(), v);
            }
        }
        let fixed = if plan.is_static() {
            let uri = Uri::try_from(plan.path.as_static().unwrap_or(b"/"))
                .map_err(|e| format!("path: {e}"))?;
            let body = plan
                .body
                .as_ref()
                .and_then(|b| b.as_static())
                .map(Bytes::copy_from_slice)
                .unwrap_or_default();
            Some(Fixed { uri, body })
        } else {
            None
        };
        Ok(Factory {
            plan,
            base_headers,
            fixed,
        })
    }

    /// One request and its body length; `None` only if a rendering is invalid, which
    /// [`Plan::compile`] already rules out.
    fn build(
        &self,
        seq: u64,
        leg: u64,
        rng: &mut SplitMix64,
    ) -> Option<(Request<Full<Bytes>>, u64)> {
        let (uri, headers, body) = self.parts(seq, leg, rng)?;
        let len = body.len() as u64;
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = self.plan.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        Some((req, len))
    }

    fn parts(&self, seq: u64, leg: u64, rng: &mut SplitMix64) -> Option<(Uri, HeaderMap, Bytes)> {
        Some(match &self.fixed {
            Some(f) => (f.uri.clone(), self.base_headers.clone(), f.body.clone()),
            None => {
                let mut ctx = RenderCtx {
                    seq,
                    leg,
                    rng,
                    zipf: self.plan.zipf.as_deref(),
                };
                let uri = Uri::try_from(self.plan.path.render_vec(&mut ctx)).ok()?;
                let mut headers = self.base_headers.clone();
                for (k, t) in &self.plan.headers {
                    if t.as_static().is_none() {
                        let v = HeaderValue::from_maybe_shared(Bytes::from(t.render_vec(&mut ctx)))
                            .ok()?;
                        headers.append(k.clone(), v);
                    }
                }
                let body = match &self.plan.body {
                    Some(b) => Bytes::from(b.render_vec(&mut ctx)),
                    None => Bytes::new(),
                };
                (uri, headers, body)
            }
        })
    }
}

/// State shared by all slots of a run.
struct Shared {
    plan: Arc<Plan>,
    factory: Factory,
    addr: SocketAddr,
    seed: u64,
    t0: Instant,
    /// Closed loop: the next sequence number. Open loop: the next ticket.
    next: AtomicU64,
}

enum Outcome {
    Response { status: u16, bytes: u64 },
    Connect,
    Io,
    Timeout,
}

/// Returns a ready connection, reconnecting if the slot is empty or its connection closed.
async fn ready<'a>(
    addr: SocketAddr,
    slot: &'a mut Option<Conn>,
    st: &mut Stats,
) -> Option<&'a mut Conn> {
    let alive = match slot.as_mut() {
        Some(c) => !c.sender.is_closed() && c.sender.ready().await.is_ok(),
        None => false,
    };
    if !alive {
        *slot = None;
        let c = connect(addr).await.ok()?;
        st.reconnects += 1;
        *slot = Some(c);
    }
    slot.as_mut()
}

async fn exchange(c: &mut Conn, req: Request<Full<Bytes>>) -> Result<(u16, u64), hyper::Error> {
    let resp = c.sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame?.into_data() {
            n += d.len() as u64;
        }
    }
    Ok((status, n))
}

/// Sends one request on the slot, with the plan's timeout.
async fn send_one(
    sh: &Shared,
    slot: &mut Option<Conn>,
    req: Request<Full<Bytes>>,
    st: &mut Stats,
) -> Outcome {
    let attempt = async {
        let Some(c) = ready(sh.addr, slot, st).await else {
            return Outcome::Connect;
        };
        match exchange(c, req).await {
            Ok((status, bytes)) => Outcome::Response { status, bytes },
            Err(_) => {
                *slot = None;
                Outcome::Io
            }
        }
    };
    match tokio::time::timeout(sh.plan.timeout, attempt).await {
        Ok(o) => o,
        Err(_) => {
            // The connection is mid-request; drop it rather than wait for the late response.
            *slot = None;
            Outcome::Timeout
        }
    }
}

/// Books an outcome; `latency` is measured by the caller from the scheduled start.
fn account(st: &mut Stats, o: &Outcome, measured: bool, latency: Duration, body_len: u64) {
    if let Outcome::Response { .. } = o {
        st.all_responses += 1;
    }
    if !measured {
        return;
    }
    match *o {
        Outcome::Response { status, bytes } => {
            st.record_latency(latency);
            *st.status.entry(status).or_default() += 1;
            st.bytes_in += bytes;
            st.bytes_out += body_len;
        }
        Outcome::Connect => st.errors.connect += 1,
        Outcome::Io => st.errors.io += 1,
        Outcome::Timeout => st.errors.timeout += 1,
    }
}

/// The start of a closed-loop iteration and whether it falls in the measured window; `None`
/// once the window has closed.
fn turn(sh: &Shared) -> Option<(Instant, bool)> {
    let start = Instant::now();
    let at = start.saturating_duration_since(sh.t0);
    let window = sh.plan.window;
    window.is_open(at).then(|| (start, window.is_measured(at)))
}

async fn closed_slot(sh: Arc<Shared>, id: u64, mut slot: Option<Conn>) -> Stats {
    let mut st = Stats::default();
    let mut rng = SplitMix64::new(sh.seed, id);
    while let Some((start, measured)) = turn(&sh) {
        let seq = sh.next.fetch_add(1, Ordering::Relaxed);
        let Some((req, body_len)) = sh.factory.build(seq, 0, &mut rng) else {
            st.errors.io += 1;
            break;
        };
        let o = send_one(&sh, &mut slot, req, &mut st).await;
        account(&mut st, &o, measured, start.elapsed(), body_len);
        if let Outcome::Connect = o {
            tokio::time::sleep(CONNECT_BACKOFF).await;
        }
    }
    st
}

/// A closed-loop slot with `fanout` connections: every iteration sends one request per
/// connection at once and books them as one (see the module docs).
async fn fanout_slot(sh: Arc<Shared>, id: u64, conns: Vec<Conn>) -> Stats {
    let mut st = Stats::default();
    let mut rng = SplitMix64::new(sh.seed, id);
    let n = conns.len() as u64;
    let mut slots: Vec<Option<Conn>> = conns.into_iter().map(Some).collect();
    while let Some((start, measured)) = turn(&sh) {
        let seq = sh.next.fetch_add(n, Ordering::Relaxed);
        let mut legs = tokio::task::JoinSet::new();
        let mut body_len = 0;
        for (leg, mut slot) in (0..n).zip(slots.drain(..)) {
            let Some((req, len)) = sh.factory.build(seq + leg, leg, &mut rng) else {
                st.errors.io += 1;
                return st;
            };
            body_len += len;
            let sh = sh.clone();
            legs.spawn(async move {
                let mut leg_st = Stats::default();
                let o = send_one(&sh, &mut slot, req, &mut leg_st).await;
                (leg, slot, o, leg_st)
            });
        }
        let mut done = Vec::with_capacity(n as usize);
        let mut lost = false;
        while let Some(r) = legs.join_next().await {
            match r {
                Ok(r) => done.push(r),
                // A panicked leg task fails the group and loses its connection (the next
                // iteration reconnects).
                Err(_) => lost = true,
            }
        }
        let latency = start.elapsed();
        done.sort_by_key(|d| d.0);
        let mut outcome = Outcome::Response {
            status: 0,
            bytes: 0,
        };
        for (_, slot, o, leg_st) in done {
            st.reconnects += leg_st.reconnects;
            slots.push(slot);
            outcome = match (outcome, o) {
                (
                    Outcome::Response { status, bytes },
                    Outcome::Response {
                        status: s,
                        bytes: b,
                    },
                ) => Outcome::Response {
                    status: status.max(s),
                    bytes: bytes + b,
                },
                (Outcome::Response { .. }, failed) => failed,
                (failed, _) => failed,
            };
        }
        slots.resize_with(n as usize, || None);
        if lost {
            outcome = Outcome::Io;
        }
        let connect_failed = matches!(outcome, Outcome::Connect);
        account(&mut st, &outcome, measured, latency, body_len);
        if connect_failed {
            tokio::time::sleep(CONNECT_BACKOFF).await;
        }
    }
    st
}

/// Where an open-loop slot gets its tickets: the shared counter, each slot then waiting for its
/// own ticket's instant on the timer; or, with the spin pacer, a permit per released ticket
/// (the semaphore hands a permit straight to the longest-waiting slot), after which the slot
/// claims the next ticket from the same counter. Claims never outrun releases, so a claimed
/// ticket's instant has always passed.
#[derive(Clone)]
enum Tickets {
    Counter,
    Paced(Arc<Semaphore>),
}

async fn open_slot(sh: Arc<Shared>, id: u64, mut slot: Option<Conn>, tickets: Tickets) -> Stats {
    let Mode::Open { schedule, .. } = sh.plan.mode else {
        return Stats::default();
    };
    let mut st = Stats::default();
    let mut rng = SplitMix64::new(sh.seed, id);
    let window = sh.plan.window;
    loop {
        if let Tickets::Paced(released) = &tickets {
            match released.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => break,
            }
        }
        let i = sh.next.fetch_add(1, Ordering::Relaxed);
        let offset = schedule.offset(i);
        if !window.is_open(offset) {
            break;
        }
        let due = sh.t0 + offset;
        if let Tickets::Counter = tickets {
            wait_until(due, Pacing::Timer).await;
        }
        let measured = window.is_measured(offset);
        if measured {
            st.record_lag(Instant::now().saturating_duration_since(due));
        }
        let Some((req, body_len)) = sh.factory.build(i, 0, &mut rng) else {
            st.errors.io += 1;
            break;
        };
        let o = send_one(&sh, &mut slot, req, &mut st).await;
        account(&mut st, &o, measured, due.elapsed(), body_len);
        if let Outcome::Connect = o {
            tokio::time::sleep(CONNECT_BACKOFF).await;
        }
    }
    st
}

/// [`Pacing::Spin`]'s pacer: releases each ticket at its instant to whichever slot is free.
/// One task spins, however many slots wait; when every slot is busy, released tickets wait (a
/// permit count, no memory per ticket) and their latency, measured from the instant, includes
/// that wait. After the last ticket it releases one more per slot: each claims a ticket past the
/// window and stops. Its stats hold only how late it released the measured tickets.
async fn pace(sh: Arc<Shared>, released: Arc<Semaphore>) -> Stats {
    let mut st = Stats::default();
    let Mode::Open {
        schedule,
        connections,
        ..
    } = sh.plan.mode
    else {
        return st;
    };
    let window = sh.plan.window;
    for i in 0.. {
        let offset = schedule.offset(i);
        if !window.is_open(offset) {
            break;
        }
        let due = sh.t0 + offset;
        wait_until(due, Pacing::Spin).await;
        if window.is_measured(offset) {
            st.record_release_lag(Instant::now().saturating_duration_since(due));
        }
        released.add_permits(1);
        // A pacer behind its schedule waits for nothing above; this lets the slots it released
        // run before it catches up.
        tokio::task::coop::consume_budget().await;
    }
    released.add_permits(connections);
    st
}

/// Returns at `due` (at once when it has passed): on the timer, or spinning for the last
/// [`SPIN_AHEAD`] (see [`Pacing`]).
async fn wait_until(due: Instant, pacing: Pacing) {
    match pacing {
        Pacing::Timer => {
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        Pacing::Spin => {
            if let Some(coarse) = due.checked_sub(SPIN_AHEAD)
                && coarse > Instant::now()
            {
                tokio::time::sleep_until(coarse.into()).await;
            }
            // Each yield lets the runtime poll sockets (the slots' answers) before this task runs
            // again, so spinning delays no answer by more than one pass.
            while Instant::now() < due {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Connects every slot, runs the plan, and returns the merged stats and the wall time.
///
/// Must be called inside a tokio runtime with the time and I/O drivers enabled.
pub async fn run(plan: Arc<Plan>, target: &Target, seed: u64) -> Result<(Stats, Duration), String> {
    let wall = Instant::now();
    let n = plan.mode.connections() * plan.fanout;
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let c = connect(target.addr).await.map_err(|e| {
            format!(
                "could not open connection {} of {n} to {target}: {e}",
                i + 1
            )
        })?;
        conns.push(c);
    }
    let sh = Arc::new(Shared {
        factory: Factory::new(plan.clone(), target)?,
        plan: plan.clone(),
        addr: target.addr,
        seed,
        t0: Instant::now(),
        next: AtomicU64::new(0),
    });
    let mut tasks = Vec::with_capacity(n);
    let mut conns = conns.into_iter();
    let tickets = match plan.mode {
        Mode::Open {
            pacing: Pacing::Spin,
            ..
        } => {
            let released = Arc::new(Semaphore::new(0));
            tasks.push(tokio::spawn(pace(sh.clone(), released.clone())));
            Tickets::Paced(released)
        }
        _ => Tickets::Counter,
    };
    for id in 0..plan.mode.connections() {
        let sh = sh.clone();
        let id = id as u64;
        let mut group: Vec<Conn> = conns.by_ref().take(plan.fanout).collect();
        tasks.push(match (plan.mode, group.len()) {
            (Mode::Closed { .. }, 1) => tokio::spawn(closed_slot(sh, id, group.pop())),
            (Mode::Closed { .. }, _) => tokio::spawn(fanout_slot(sh, id, group)),
            (Mode::Open { .. }, _) => tokio::spawn(open_slot(sh, id, group.pop(), tickets.clone())),
        });
    }
    let mut total = Stats::default();
    for t in tasks {
        let st = t.await.map_err(|e| format!("load task failed: {e}"))?;
        total.merge(&st);
    }
    Ok((total, wall.elapsed()))
}

/// Renders the first request of a plan as text (for `--dry-run`).
pub fn describe_first_request(plan: Arc<Plan>, target: &Target, seed: u64) -> String {
    let factory = match Factory::new(plan, target) {
        Ok(f) => f,
        Err(e) => return format!("error: {e}"),
    };
    let mut rng = SplitMix64::new(seed, 0);
    let Some((uri, headers, body)) = factory.parts(0, 0, &mut rng) else {
        return "error: the request does not render".into();
    };
    let mut out = format!("{} {uri} HTTP/1.1\n", factory.plan.method);
    for (k, v) in &headers {
        out.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    if !body.is_empty() {
        out.push_str(&format!("content-length: {}\n", body.len()));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(&body));
    if !body.ends_with(b"\n") {
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
