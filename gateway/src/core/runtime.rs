//! Threads and runtimes (ARCHITECTURE §2): one pinned tokio `current_thread` runtime per shard,
//! each with its own `SO_REUSEPORT` listener, HTTP/1.1 server ([`super::h1_server`], handing
//! what it does not serve to hyper's HTTP/1.1 + h2c server) and upstream pool; or,
//! with `workStealing`, one multi-thread runtime sharing a listener. Graceful shutdown: stop
//! accepting, let in-flight requests finish until the drain deadline, then close.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::h1_server::{self, Outcome};
use super::http::RequestBody;
use super::router::Router;
use super::upstream::Upstreams;
use super::upstreams::{ClientOptions, StoreEndpoint, StoreSnapshot};
use super::{Control, Core, ShardCtx};

/// A feature's work on the control runtime: loops started once the gateway runs, and what must
/// happen at graceful shutdown after the shards drained.
pub trait Background: Send + Sync {
    /// Starts the loops (called once, on start).
    fn start(self: Arc<Self>, control: &Control);
    /// Finishes up at graceful shutdown (runs on the control runtime after the shards drained).
    fn stop(self: Arc<Self>) -> futures_util::future::BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Errors while starting the data plane.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("starting runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    #[error(transparent)]
    Gateway(#[from] super::error::GatewayError),
    #[error("route table: {0}")]
    Routes(String),
    #[error("inbound TLS: {0}")]
    Tls(String),
    #[error("opening the cache tier: {0}")]
    Cache(String),
    #[error("opening the object store: {0}")]
    Store(String),
}

/// A running data plane.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    /// The control runtime: consistency watcher, background loops, signal handling.
    control: tokio::runtime::Runtime,
    background: Vec<Arc<dyn Background>>,
    core: Arc<Core>,
}

/// The signals a running gateway handles, registered (see [`Running::signals`]).
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Running {
    /// Blocks until SIGTERM or SIGINT (on the control runtime).
    pub fn wait_for_signal(&self) -> std::io::Result<()> {
        self.control.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r,
                _ = term.recv() => Ok(()),
            }
        })
    }

    /// The shared state (the config reload publishes into it).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Registers SIGTERM, SIGINT and SIGHUP on the control runtime. Call it before announcing
    /// the listener, so that no signal sent after the announcement meets the default action
    /// (SIGHUP's terminates).
    pub fn signals(&self) -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let _rt = self.control.enter();
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Blocks until SIGTERM or SIGINT; calls `on_hup` on each SIGHUP (on the control runtime's
    /// thread, never a shard's).
    pub fn wait_for_signals(
        &self,
        mut signals: Signals,
        mut on_hup: impl FnMut(),
    ) -> std::io::Result<()> {
        self.control.block_on(async {
            loop {
                tokio::select! {
                    _ = signals.term.recv() => return Ok(()),
                    _ = signals.int.recv() => return Ok(()),
                    _ = signals.hup.recv() => on_hup(),
                }
            }
        })
    }

    /// Stops accepting, drains in-flight requests (bounded by the drain deadline), joins every
    /// shard thread, then lets each background part finish.
    pub fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.threads {
            let _ = t.join();
        }
        // The shards drained, so every served request is queued (e.g. history batches).
        for b in self.background {
            self.control.block_on(b.stop());
        }
        self.control.shutdown_background();
    }
}

fn bind(addr: SocketAddr, reuse_port: bool) -> Result<StdListener, StartError> {
    let err = |source| StartError::Bind { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(err)?;
    }
    socket.set_tcp_nodelay(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(4096).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

/// Starts the control runtime (watcher and `background`) and the shards (or the work-stealing
/// runtime); returns once every listener is bound.
pub fn start(
    core: Arc<Core>,
    router: Arc<Router>,
    store_keys: Vec<Option<String>>,
    registrations: tokio::sync::mpsc::Receiver<super::watcher::Registration>,
    background: Vec<Arc<dyn Background>>,
) -> Result<Running, StartError> {
    super::reload::describe();
    let g = &core.config.gateway;
    let vs = &core.config.vector_store;
    let first = bind(g.listen, !g.work_stealing)?;
    let addr = first.local_addr().map_err(|source| StartError::Bind {
        addr: g.listen,
        source,
    })?;
    let (tx, rx) = watch::channel(false);
    let drain = Duration::from_millis(g.drain_timeout_ms);
    // One client per store (each shard and the control runtime get their own pools), and the
    // namespaces the indexes route to a store other than the default.
    let routes: std::collections::HashMap<String, String> = core
        .config
        .indexes
        .iter()
        .filter_map(|i| Some((i.namespace().to_string(), i.backend.store_ref.clone()?)))
        .collect();
    let stores: Vec<StoreEndpoint> = core
        .config
        .stores()
        .enumerate()
        .map(|(i, s)| StoreEndpoint {
            name: Arc::from(s.name.as_str()),
            url: s.endpoint.url.clone(),
            key: store_keys.get(i).cloned().flatten(),
            connect: Duration::from_millis(s.connect_timeout_ms),
            request: Duration::from_millis(s.request_timeout_ms),
        })
        .collect();
    let file = StoreSnapshot { stores, routes };
    // Only an open gateway without a credential of its own relays the caller's bearer; a
    // `keys` gateway's bearers are Layer tokens, which must never reach the upstream.
    let options = ClientOptions {
        caller_auth: vs.inbound_auth.mode == super::config::AuthMode::Open,
        usage: core.usage.clone(),
    };
    core.stores.set_file(file.clone(), options.clone());
    // With a cluster watch, every set follows the stores and routes it publishes.
    let live = g.kubernetes.enabled.then(|| core.stores.clone());
    if let Some(l) = &live {
        // Key grants limited to one store judge a namespace by the same routes.
        core.auth.routing().follow(l.clone());
    }
    let make_upstream = move || Upstreams::build(&file, &options, live.clone());
    // Fail fast on a bad upstream URL before any thread starts.
    let control_upstream = make_upstream()?;
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("layer-control")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    control.spawn(
        core.watcher
            .clone()
            .run(registrations, control_upstream.clone()),
    );
    let ctl = Control {
        handle: control.handle().clone(),
        upstreams: control_upstream,
    };
    core.set_control(ctl.clone());
    let tls = super::tls::Tls::open(&g.tls).map_err(StartError::Tls)?;
    if let Some(t) = &tls {
        control.spawn(t.clone().reload_loop());
    }
    for b in &background {
        b.clone().start(&ctl);
    }
    let mut threads = Vec::new();
    let shard_ctx = || -> Result<Arc<ShardCtx>, StartError> {
        Ok(Arc::new(ShardCtx::new(
            core.clone(),
            make_upstream()?,
            router.clone(),
        )))
    };
    if g.work_stealing {
        let workers = core.shards;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("layer-worker")
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let ctx = shard_ctx()?;
        let rx = rx.clone();
        let tls = tls.clone();
        threads.push(
            std::thread::Builder::new()
                .name("layer-ws".into())
                .spawn(move || {
                    rt.block_on(async move {
                        match TcpListener::from_std(first) {
                            Ok(l) => serve(l, ctx, rx, drain, tls).await,
                            Err(e) => tracing::error!(error = %e, "listener"),
                        }
                    });
                })
                .map_err(StartError::Runtime)?,
        );
        return Ok(Running {
            addr,
            shutdown: tx,
            threads,
            control,
            background,
            core,
        });
    }
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut listeners = vec![first];
    for _ in 1..core.shards {
        listeners.push(bind(addr, true)?);
    }
    for (i, listener) in listeners.into_iter().enumerate() {
        let ctx = shard_ctx()?;
        let rx = rx.clone();
        let tls = tls.clone();
        let pin = (!cores.is_empty()).then(|| cores[i % cores.len()]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Runtime)?;
        let t = std::thread::Builder::new()
            .name(format!("layer-shard-{i}"))
            .spawn(move || {
                if let Some(c) = pin {
                    core_affinity::set_for_current(c);
                }
                rt.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => serve(l, ctx, rx, drain, tls).await,
                        Err(e) => tracing::error!(shard = i, error = %e, "listener"),
                    }
                });
            })
            .map_err(StartError::Runtime)?;
        threads.push(t);
    }
    Ok(Running {
        addr,
        shutdown: tx,
        threads,
        control,
        background,
        core,
    })
}

/// One accept loop: serves connections until shutdown, then drains.
///
/// Each connection is served by [`connection`]: the shard's own HTTP/1.1 server, and hyper's
/// for what it hands over.
///
/// Slow and greedy clients are bounded here (`gateway.server`): each request head must arrive
/// within `headerReadTimeoutMs` (the wait for a new connection's first byte and for the next
/// request on an idle keep-alive connection included, so idle connections close after it too;
/// hyper applies it to the connections it serves), and the shard holds at
/// most `maxConnectionsPerShard` connections: one beyond it gets a 503 with `retry-after` and is
/// closed, so a flood of idle sockets cannot take the shard's memory or file descriptors.
async fn serve(
    listener: TcpListener,
    ctx: Arc<ShardCtx>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    tls: Option<Arc<super::tls::Tls>>,
) {
    let server = ctx.core.config.gateway.server.clone();
    let graceful = GracefulShutdown::new();
    let header_timeout = Duration::from_millis(server.header_read_timeout_ms);
    let mut auto = auto::Builder::new(TokioExecutor::new());
    auto.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    auto.http2().timer(hyper_util::rt::TokioTimer::new());
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    let builder = Builders { auto, http1 };
    // Each request arms a header timer (the shard's codec or hyper's); without an armed timer
    // of the shard's own, arming it can cost a system call (see `timer_anchor`).
    let anchor = super::timer_anchor::spawn(super::timer_anchor::period(Duration::from_millis(
        server.header_read_timeout_ms,
    )));
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let Some(slot) = Connection::take(&open, server.max_connections_per_shard) else {
                        super::metrics::feature_event(
                            "layer_overload_rejections_total",
                            "reason",
                            "connections",
                            1,
                        );
                        tokio::spawn(refuse(stream));
                        continue;
                    };
                    let (ctx, builder, watcher, shutdown) =
                        (ctx.clone(), builder.clone(), graceful.watcher(), shutdown.clone());
                    let Some(tls) = &tls else {
                        tokio::spawn(async move {
                            let _slot = slot;
                            connection(stream, ctx, builder, watcher, header_timeout, shutdown).await;
                        });
                        continue;
                    };
                    // The handshake runs in the connection's task (a slow client must not hold
                    // the accept loop), bounded like a header read.
                    let acceptor = tls.acceptor();
                    tokio::spawn(async move {
                        let _slot = slot;
                        let stream = match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake timed out");
                                return;
                            }
                        };
                        connection(stream, ctx, builder, watcher, header_timeout, shutdown).await;
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    // hyper's connections finish through `graceful`; the shard's own HTTP/1.1 connections close
    // once idle (they watch `shutdown`), and every connection holds a slot until it ends.
    let drained = async {
        graceful.shutdown().await;
        while open.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        () = drained => {}
        () = tokio::time::sleep(drain) => tracing::warn!("drain deadline reached with requests still in flight"),
    }
    anchor.abort();
}

/// Serves one accepted connection: the shard's own HTTP/1.1 server ([`super::h1_server`])
/// first, and hyper's (HTTP/1 and h2c) for a connection it hands over, with the bytes it read.
async fn connection<S>(
    stream: S,
    ctx: Arc<ShardCtx>,
    builder: Builders,
    watcher: Watcher,
    header_timeout: Duration,
    shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = |req| super::service::handle(ctx.clone(), req);
    let (stream, read) = match h1_server::serve(stream, service, header_timeout, shutdown).await {
        Outcome::Closed => return,
        Outcome::FirstHeadTimedOut => {
            super::metrics::feature_event(
                "layer_overload_rejections_total",
                "reason",
                "header_timeout",
                1,
            );
            return;
        }
        Outcome::Handover(stream, read) => (stream, read),
    };
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let ctx = ctx.clone();
        async move {
            let req = req.map(RequestBody::Hyper);
            Ok::<_, std::convert::Infallible>(super::service::handle(ctx, req).await)
        }
    });
    // HTTP/2's preface goes to the protocol-sniffing builder; anything else is HTTP/1.x, served
    // by hyper's HTTP/1 connection directly: that one starts busy, so a graceful shutdown
    // already under way still answers the request it was handed (the sniffing state would
    // cancel it).
    let h2 = read.starts_with(b"PRI ");
    let io = TokioIo::new(h1_server::Prefixed::new(read, stream));
    let ended = if h2 {
        watcher
            .watch(builder.auto.serve_connection(io, svc).into_owned())
            .await
    } else {
        watcher
            .watch(builder.http1.serve_connection(io, svc))
            .await
            .map_err(Into::into)
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// hyper's servers, for the connections the shard's own HTTP/1.1 server hands over.
#[derive(Clone)]
struct Builders {
    /// HTTP/1 or HTTP/2 by the first bytes (h2c with prior knowledge).
    auto: auto::Builder<TokioExecutor>,
    http1: hyper::server::conn::http1::Builder,
}

/// One of the shard's open connections, released on drop.
struct Connection(Arc<std::sync::atomic::AtomicUsize>);

impl Connection {
    fn take(open: &Arc<std::sync::atomic::AtomicUsize>, max: usize) -> Option<Connection> {
        use std::sync::atomic::Ordering;
        if open.fetch_add(1, Ordering::Relaxed) >= max {
            open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Connection(open.clone()))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Answers a connection beyond the shard's bound with a 503 and closes it (best effort, bounded
/// in time: a client that does not read is dropped).
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = r#"{"error":"overloaded","message":"this shard holds its maximum of connections (gateway.server.maxConnectionsPerShard); retry shortly"}"#;
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        // Read what the client already sent (a close with unread data would reset the
        // connection before it reads the answer), then answer and close.
        let mut buf = [0u8; 8192];
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    })
    .await;
}
