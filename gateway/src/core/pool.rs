//! A shard's kept-alive HTTP/1.1 connections to one upstream origin: what
//! [`super::upstream::Upstream`] sends through. Start at [`Pool::send`].
//!
//! Each shard builds its own clients, so a pool is used from one thread: its lock is never
//! contended (it is there because clients are `Send`). An exchange runs in the request's own
//! task: [`super::h1`] writes the request and reads the answer whole, with no connection task,
//! channel or oneshot between them.
//!
//! Checkout takes the most recently released idle connection (few connections stay warm) and
//! drops those idle for longer than [`IDLE_TIMEOUT`], closed by the upstream or holding bytes
//! nobody asked for (checked without waiting); each release closes the oldest ones past that
//! age. (A pool that gets no traffic at all keeps its idle connections until the next
//! release: hyper's connection tasks closed them when the upstream did.) A request the upstream
//! never saw — the connection failed the first write — goes out again on another connection, so
//! an upstream closing idle keep-alive connections costs no error. A request that was written
//! and then failed is an error: it may have been applied. A connection goes back to the pool
//! only when its answer was read whole and kept it alive; one whose exchange was dropped before
//! (a timeout, a cancelled request) is closed.
//!
//! Only HTTP/1.1 is offered (ALPN `http/1.1` over TLS): per-shard pools of short exchanges gain
//! nothing from multiplexing, and one protocol keeps this module small. Measured: one HTTP/2
//! connection per shard cost 15% more CPU per query (31k more instructions, hyper's `h2` client
//! and its connection task; `bench/results/2026-12-06-upstream-h2.md`).

use std::future::poll_fn;
use std::pin::Pin;
use std::time::{Duration, Instant};

use http::{Method, Uri};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tower_service::Service;

use super::error::chain;
use super::h1::{self, Answer, AnswerFields, Conn};

/// An idle connection unused for longer than this is closed instead of reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle connections kept per pool; a connection released beyond it is closed.
pub const MAX_IDLE: usize = 256;

/// A connection's stream, boxed: `MaybeHttpsStream` holds a rustls connection inline (~1.1 KB
/// even for plain TCP), and every future on the upstream path holds a [`Conn`] or two, so
/// unboxed it made each of them ~2.3 KB larger and every move of a request's future copy that
/// (`bench/results/2026-12-06-future-sizes.md`). One allocation per connection, not per request.
type Io = Box<TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>>;

/// A connection's deadline timer: it stays with the connection, moved to each exchange's
/// deadline. Moving a registered timer later only records the new deadline (the runtime re-files
/// it when the old one comes due), where a timeout per request put an entry in the timer wheel
/// and took it out again (`bench/results/2026-12-07-timers.md`). Boxed: it is pinned, and it
/// moves in and out of the idle list.
type Timer = Pin<Box<Sleep>>;

struct Idle {
    conn: Conn<Io>,
    timer: Timer,
    since: Instant,
}

/// Why [`Pool::send`] gave no answer.
#[derive(Debug)]
pub enum SendError {
    /// The deadline passed first (connecting or exchanging); the connection is closed.
    TimedOut,
    /// The failure as one line: connecting (`connecting to the upstream: …`), or the exchange
    /// after the request was written.
    Failed(String),
}

/// Connections to one origin (`scheme://authority`).
pub struct Pool {
    connector: HttpsConnector<HttpConnector>,
    origin: Uri,
    /// Most recently released last.
    idle: Mutex<Vec<Idle>>,
}

impl Pool {
    /// A pool for `origin` (`http://` or `https://` with an authority); `connect_timeout` bounds
    /// the TCP connect.
    pub fn new(origin: Uri, connect_timeout: Duration) -> Pool {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Pool {
            connector,
            origin,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `head` (in origin form with `Host`: see [`h1::write_head`]), then the body's
    /// parts, for `method` on an idle connection or a new one, and reads the answer whole; its
    /// body may be at most `max` bytes, its header `fields` as asked. All of it, connecting
    /// included, by `deadline`.
    ///
    /// # Errors
    /// [`SendError::TimedOut`] when `deadline` came first; otherwise the failure as one line.
    pub async fn send(
        &self,
        head: &[u8],
        parts: &[&[u8]],
        method: &Method,
        max: usize,
        fields: AnswerFields,
        deadline: tokio::time::Instant,
    ) -> Result<Answer, SendError> {
        while let Some((mut conn, mut timer)) = self.checkout() {
            timer.as_mut().reset(deadline);
            match exchange_by(&mut conn, &mut timer, head, parts, (method, max, fields)).await? {
                Ok(answer) => {
                    self.release(conn, timer);
                    return Ok(answer);
                }
                // Never written: the connection closed under it. Try another.
                Err(h1::Error::Unsent(_)) => {}
                Err(e) => return Err(SendError::Failed(e.to_string())),
            }
        }
        // Boxed: connecting is rare on a warm pool, and its future would otherwise sit inline
        // in this one (and so in every request's).
        let mut conn = Box::pin(tokio::time::timeout_at(deadline, self.connect()))
            .await
            .map_err(|_| SendError::TimedOut)?
            .map_err(SendError::Failed)?;
        let mut timer = Box::pin(tokio::time::sleep_until(deadline));
        let answer = exchange_by(&mut conn, &mut timer, head, parts, (method, max, fields))
            .await?
            .map_err(|e| SendError::Failed(e.to_string()))?;
        self.release(conn, timer);
        Ok(answer)
    }

    /// Idle connections held now.
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }

    /// Keeps a connection whose answer left it reusable, and closes the oldest idle ones past
    /// [`IDLE_TIMEOUT`] (checkout only ever looks at the newest, so without this a burst's
    /// extra connections would stay open below them, closed by the upstream or not).
    fn release(&self, conn: Conn<Io>, timer: Timer) {
        if !conn.kept_alive() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock();
        let stale = idle
            .iter()
            .take_while(|i| now.duration_since(i.since) > IDLE_TIMEOUT)
            .count();
        idle.drain(..stale);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                timer,
                since: now,
            });
        }
    }

    /// The most recently released usable connection.
    fn checkout(&self) -> Option<(Conn<Io>, Timer)> {
        loop {
            let Idle {
                mut conn,
                timer,
                since,
            } = self.idle.lock().pop()?;
            if since.elapsed() <= IDLE_TIMEOUT && conn.usable() {
                return Some((conn, timer));
            }
        }
    }

    async fn connect(&self) -> Result<Conn<Io>, String> {
        let mut connector = self.connector.clone();
        let io = async {
            poll_fn(|cx| connector.poll_ready(cx)).await?;
            connector.call(self.origin.clone()).await
        }
        .await
        .map_err(|e| format!("connecting to the upstream: {}", chain(&*e)))?;
        Ok(Conn::new(Box::new(TokioIo::new(io))))
    }
}

/// One exchange on `conn`, unless `timer` fires first: then the exchange is dropped part way
/// and the connection must be closed (the caller drops it). The timer is checked even when the
/// exchange spent the task's budget (a long answer read in many reads), as
/// `tokio::time::timeout` does: under `select!` alone it would not be, and such an answer could
/// run past its deadline.
async fn exchange_by(
    conn: &mut Conn<Io>,
    timer: &mut Timer,
    head: &[u8],
    parts: &[&[u8]],
    (method, max, fields): (&Method, usize, AnswerFields),
) -> Result<Result<Answer, h1::Error>, SendError> {
    tokio::select! {
        biased;
        answer = conn.exchange(head, parts, method, max, fields) => Ok(answer),
        () = tokio::task::unconstrained(timer.as_mut()) => Err(SendError::TimedOut),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http::{HeaderMap, Response};
    use http_body_util::Full;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn pool(addr: std::net::SocketAddr) -> Pool {
        let origin = format!("http://{addr}").parse().unwrap();
        Pool::new(origin, Duration::from_secs(2))
    }

    /// One `GET /ping` and its answer's body, within the upstream client's default request
    /// timeout (30 s).
    async fn exchange(p: &Pool, addr: std::net::SocketAddr) -> Result<Bytes, String> {
        exchange_within(p, addr, Duration::from_secs(30)).await
    }

    /// [`exchange`] with its deadline `within` from now; `Err("timed out")` when it passed.
    async fn exchange_within(
        p: &Pool,
        addr: std::net::SocketAddr,
        within: Duration,
    ) -> Result<Bytes, String> {
        let mut fields = HeaderMap::new();
        fields.insert(http::header::HOST, addr.to_string().parse().unwrap());
        let mut head = Vec::new();
        h1::write_head(&mut head, &Method::GET, "", "/ping", &fields, 0).unwrap();
        let deadline = tokio::time::Instant::now() + within;
        match p
            .send(
                &head,
                &[],
                &Method::GET,
                1 << 20,
                AnswerFields::All,
                deadline,
            )
            .await
        {
            Ok(answer) => Ok(answer.body),
            Err(SendError::TimedOut) => Err("timed out".into()),
            Err(SendError::Failed(e)) => Err(e),
        }
    }

    /// Accepts connections on 127.0.0.1, counting them, and serves each with `serve` on a task.
    async fn server<F, Fut>(serve: F) -> (std::net::SocketAddr, Arc<AtomicUsize>)
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s));
            }
        });
        (addr, accepted)
    }

    /// A keep-alive HTTP/1.1 server (hyper's) answering `ok`, after `delay`.
    async fn keep_alive_server(delay: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        delays_server(vec![delay]).await
    }

    #[tokio::test]
    async fn a_kept_alive_connection_is_reused() {
        let (addr, accepted) = keep_alive_server(Duration::ZERO).await;
        let p = pool(addr);
        for _ in 0..5 {
            assert_eq!(exchange(&p, addr).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(p.idle(), 1);
    }

    /// A keep-alive HTTP/1.1 server (hyper's) answering its `n`th request (over all
    /// connections) `ok` after `delays[n]` (the last delay for any later one).
    async fn delays_server(delays: Vec<Duration>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let delays: Arc<[Duration]> = delays.into();
        let served = Arc::new(AtomicUsize::new(0));
        server(move |s| {
            let (delays, served) = (delays.clone(), served.clone());
            async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let delay = delays[served.fetch_add(1, Ordering::SeqCst).min(delays.len() - 1)];
                    async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            }
        })
        .await
    }

    /// A pooled connection keeps its timer, registered at its last exchange's deadline; an
    /// exchange with an earlier deadline must still end there (the timer is filed again, not
    /// only moved later), and the connection it cut is closed.
    #[tokio::test]
    async fn a_reused_connection_times_out_at_an_earlier_deadline() {
        let (addr, accepted) = delays_server(vec![Duration::ZERO, Duration::from_secs(120)]).await;
        let p = pool(addr);
        // The timer is now filed at this exchange's deadline, 30 s out.
        assert_eq!(exchange(&p, addr).await.unwrap(), "ok");
        assert_eq!(p.idle(), 1);
        // The server holds this answer for 120 s; the deadline is 50 ms away. Ending at the
        // 30 s the timer held would run past the outer 10 s bound (a bound, not a timing: the
        // right answer comes at 50 ms).
        let cut = tokio::time::timeout(
            Duration::from_secs(10),
            exchange_within(&p, addr, Duration::from_millis(50)),
        )
        .await
        .expect("cut at the earlier deadline, not at the one the timer held");
        assert_eq!(cut.unwrap_err(), "timed out");
        assert_eq!(p.idle(), 0);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// The other way: a deadline moved later is only recorded; when the earlier one it
    /// replaced comes due, the exchange goes on.
    #[tokio::test]
    async fn a_deadline_moved_later_does_not_fire_at_the_one_before() {
        let (addr, accepted) =
            delays_server(vec![Duration::ZERO, Duration::from_millis(1500)]).await;
        let p = pool(addr);
        assert_eq!(
            exchange_within(&p, addr, Duration::from_millis(500))
                .await
                .unwrap(),
            "ok"
        );
        // Answered after 1.5 s, past the first exchange's deadline, within this one's 30 s.
        assert_eq!(exchange(&p, addr).await.unwrap(), "ok");
        assert_eq!(p.idle(), 1);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_exchange_dropped_before_its_answer_closes_its_connection() {
        let (addr, accepted) = keep_alive_server(Duration::from_millis(300)).await;
        let p = pool(addr);
        // A request timeout, as the upstream client applies one.
        let cut = tokio::time::timeout(Duration::from_millis(20), exchange(&p, addr)).await;
        assert!(cut.is_err());
        assert_eq!(p.idle(), 0);
        assert_eq!(exchange(&p, addr).await.unwrap(), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// An upstream that closes a kept-alive connection while it is idle: the next request goes
    /// out on a new connection, without an error.
    #[tokio::test]
    async fn an_upstream_closing_idle_connections_costs_no_error() {
        let (addr, accepted) = server(|mut s| async move {
            let mut buf = vec![0; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await
                .unwrap();
            // Kept alive by the response's terms, then closed by the server.
            drop(s);
        })
        .await;
        let p = pool(addr);
        for i in 1..=3 {
            assert_eq!(exchange(&p, addr).await.unwrap(), "ok");
            // Let the server's close reach the client before the next request (setup, not
            // a timing assertion: the test is that the next request does not fail).
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(accepted.load(Ordering::SeqCst), i);
        }
    }

    /// An answer that ends its connection (`Connection: close`) is not pooled.
    #[tokio::test]
    async fn a_closing_answer_is_not_pooled() {
        let (addr, accepted) = server(|mut s| async move {
            let mut buf = vec![0; 4096];
            let _ = s.read(&mut buf).await.unwrap();
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
                .await;
            let _ = s.read(&mut buf).await;
        })
        .await;
        let p = pool(addr);
        assert_eq!(exchange(&p, addr).await.unwrap(), "ok");
        assert_eq!(p.idle(), 0);
        assert_eq!(exchange(&p, addr).await.unwrap(), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_one_line_error() {
        // Bound and dropped: nothing listens there now.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let err = exchange(&pool(addr), addr).await.unwrap_err();
        assert!(err.starts_with("connecting to the upstream: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
