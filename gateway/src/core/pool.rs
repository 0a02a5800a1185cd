//! A shard's kept-alive HTTP/1.1 connections to one upstream origin: what
//! [`super::upstream::Upstream`] sends through. Start at [`Pool::send`].
//!
//! Each shard builds its own clients, so a pool is used from one thread: its lock is never
//! contended (it is there because clients are `Send`), and each connection's driver task runs on
//! the runtime that opened it. Against hyper-util's legacy pooled client this drops the pool-key
//! hashing, the checkout futures and channels and the per-request boxing that were a large share
//! of the gateway's instructions per query (`bench/results/2026-12-05-upstream-pool.md`).
//!
//! Checkout takes the most recently released idle connection (few connections stay warm), drops
//! those idle for longer than [`IDLE_TIMEOUT`] or closed by the upstream, and waits until the
//! one it takes is ready. A request the upstream never saw — the connection closed between
//! checkout and the write, which hyper reports by handing the request back — goes out again on
//! another connection, so an upstream closing idle keep-alive connections costs no error. A
//! request that was written and then failed is an error: it may have been applied. A connection
//! goes back to the pool only once its response was read to the end ([`Lease::release`]); one
//! dropped before (a timeout, an error, a cancelled request) is closed.
//!
//! Only HTTP/1.1 is offered (ALPN `http/1.1` over TLS): per-shard pools of short exchanges gain
//! nothing from multiplexing, and one protocol keeps this module small.

use std::future::poll_fn;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use parking_lot::Mutex;
use tower_service::Service;

use super::error::chain;

/// An idle connection unused for longer than this is closed instead of reused.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle connections kept per pool; a connection released beyond it is closed.
pub const MAX_IDLE: usize = 256;

type Sender = http1::SendRequest<Full<Bytes>>;

struct Idle {
    tx: Sender,
    since: Instant,
}

/// Connections to one origin (`scheme://authority`).
pub struct Pool {
    connector: HttpsConnector<HttpConnector>,
    origin: Uri,
    /// Most recently released last.
    idle: Mutex<Vec<Idle>>,
}

/// The connection a response is read from; [`Lease::release`] once the body is read whole.
pub struct Lease<'a> {
    pool: &'a Pool,
    tx: Sender,
}

impl Lease<'_> {
    /// Returns the connection to the pool (the response was read to its end).
    pub fn release(self) {
        if self.tx.is_closed() {
            return;
        }
        let mut idle = self.pool.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                tx: self.tx,
                since: Instant::now(),
            });
        }
    }
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

    /// Sends `req` (origin-form URI, `Host` set) on an idle connection or a new one. The
    /// response's body is still to be read; release the lease after reading it whole.
    ///
    /// # Errors
    /// The failure as one line (its error chain): connecting, or the exchange after the request
    /// was written.
    pub async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease<'_>), String> {
        while let Some(mut tx) = self.checkout().await {
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok((resp, Lease { pool: self, tx })),
                Err(mut e) => match e.take_message() {
                    // Never written: the connection closed under it. Try another.
                    Some(back) => req = back,
                    None => return Err(chain(&e.into_error())),
                },
            }
        }
        let mut tx = self.connect().await?;
        match tx.try_send_request(req).await {
            Ok(resp) => Ok((resp, Lease { pool: self, tx })),
            Err(e) => Err(chain(&e.into_error())),
        }
    }

    /// Idle connections held now.
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }

    /// The most recently released usable connection, ready for a request.
    async fn checkout(&self) -> Option<Sender> {
        loop {
            let Idle { mut tx, since } = self.idle.lock().pop()?;
            if since.elapsed() > IDLE_TIMEOUT || tx.is_closed() {
                continue;
            }
            // Released only after its response ended, so it is ready or about to be; a
            // connection that closed meanwhile answers with an error.
            if tx.ready().await.is_ok() {
                return Some(tx);
            }
        }
    }

    async fn connect(&self) -> Result<Sender, String> {
        let mut connector = self.connector.clone();
        let io = async {
            poll_fn(|cx| connector.poll_ready(cx)).await?;
            connector.call(self.origin.clone()).await
        }
        .await
        .map_err(|e| format!("connecting to the upstream: {}", chain(&*e)))?;
        let (tx, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| format!("connecting to the upstream: {}", chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn pool(addr: std::net::SocketAddr) -> Pool {
        let origin = format!("http://{addr}").parse().unwrap();
        Pool::new(origin, Duration::from_secs(2))
    }

    fn get(addr: std::net::SocketAddr) -> Request<Full<Bytes>> {
        Request::builder()
            .uri("/ping")
            .header(http::header::HOST, addr.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap()
    }

    /// Sends one request and reads its body; releases the connection when `release`.
    async fn exchange(
        p: &Pool,
        addr: std::net::SocketAddr,
        release: bool,
    ) -> Result<Bytes, String> {
        let (resp, lease) = p.send(get(addr)).await?;
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        if release {
            lease.release();
        }
        Ok(body.to_bytes())
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

    /// A keep-alive HTTP/1.1 server (hyper's) answering `ok`.
    async fn keep_alive_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        server(|s| async move {
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                    b"ok",
                ))))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        })
        .await
    }

    #[tokio::test]
    async fn a_released_connection_is_reused() {
        let (addr, accepted) = keep_alive_server().await;
        let p = pool(addr);
        for _ in 0..5 {
            assert_eq!(exchange(&p, addr, true).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(p.idle(), 1);
    }

    #[tokio::test]
    async fn a_response_not_read_to_its_end_closes_its_connection() {
        let (addr, accepted) = keep_alive_server().await;
        let p = pool(addr);
        let (_resp, lease) = p.send(get(addr)).await.unwrap();
        drop(lease);
        assert_eq!(p.idle(), 0);
        assert_eq!(exchange(&p, addr, true).await.unwrap(), "ok");
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
            assert_eq!(exchange(&p, addr, true).await.unwrap(), "ok");
            // Let the server's close reach the client before the next request (setup, not
            // a timing assertion: the test is that the next request does not fail).
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(accepted.load(Ordering::SeqCst), i);
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_one_line_error() {
        // Bound and dropped: nothing listens there now.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let err = exchange(&pool(addr), addr, true).await.unwrap_err();
        assert!(err.starts_with("connecting to the upstream: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
