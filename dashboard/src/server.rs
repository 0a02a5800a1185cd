//! The listener and the route table: Basic auth on every route (401 with a challenge without
//! it), `GET` of a tab, the pause/resume confirm pages and their `POST`s, and a
//! `Server-Timing: render;dur=<ms>` header on every page (each view's server time).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::gateway::{Gateway, decode_segment};
use crate::views::{self, Ctx, actions};
use crate::{auth, html};

/// A form body's bound.
const MAX_FORM: usize = 4096;

/// A running dashboard.
pub struct Running {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Running {
    /// Stops accepting connections.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// Validates `config`, binds its listen address and serves on the current tokio runtime.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    config
        .validate()
        .map_err(|e: ConfigError| anyhow::anyhow!(e))?;
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let ctx = Arc::new(Ctx {
        gateway: Gateway::new(&config.gateway_url, &config.bearer),
        config,
    });
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        continue;
                    }
                },
                _ = stopped.changed() => return,
            };
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let ctx = ctx.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&ctx, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(Running { addr, stop })
}

fn respond(status: StatusCode, body: String, started: Instant) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        "text/html; charset=utf-8".parse().expect("static"),
    );
    h.insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    if let Ok(v) = format!("render;dur={:.1}", started.elapsed().as_secs_f64() * 1000.0).parse() {
        h.insert("server-timing", v);
    }
    resp
}

async fn handle(ctx: &Ctx, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    if !auth::allowed(req.headers(), &ctx.config.user, &ctx.config.password) {
        let mut resp = respond(
            StatusCode::UNAUTHORIZED,
            "<!doctype html><title>401</title><p>Authentication required.</p>".into(),
            started,
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"layer-dashboard\", charset=\"UTF-8\""
                .parse()
                .expect("static"),
        );
        return resp;
    }
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["udfs", udf, verb]) if actions::verb_of(verb).is_some() => {
            let (status, body) = actions::confirm(ctx, &decode_segment(udf), verb);
            respond(status, body, started)
        }
        (Method::POST, ["udfs", udf, verb]) if actions::verb_of(verb).is_some() => {
            let udf = decode_segment(udf);
            let verb = verb.to_string();
            let form = match Limited::new(req.into_body(), MAX_FORM).collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(_) => {
                    return respond(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "form too large".into(),
                        started,
                    );
                }
            };
            match actions::perform(ctx, &udf, &verb, &form).await {
                Ok(()) => {
                    let mut resp = respond(StatusCode::SEE_OTHER, String::new(), started);
                    resp.headers_mut()
                        .insert(header::LOCATION, "/udfs".parse().expect("static"));
                    resp
                }
                Err((status, body)) => respond(status, body, started),
            }
        }
        (Method::GET | Method::HEAD, _) => match views::render(ctx, &path, &query).await {
            Some(page) => respond(StatusCode::OK, page, started),
            None => respond(
                StatusCode::NOT_FOUND,
                html::page(
                    "Not found",
                    "",
                    &html::banner(&format!("No page at {path}"), true),
                    0,
                ),
                started,
            ),
        },
        _ => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".into(),
            started,
        ),
    }
}
