//! Inbound TLS: certificate and key from PEM files, HTTP/2 or HTTP/1.1 by ALPN, and a new pair
//! picked up when the files change (at the default check interval), with no restart. Plain HTTP
//! stays the default (every other suite). Certificates are made with the `openssl` command.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use layer_e2e::{Stack, pause, temp_dir};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// A self-signed certificate for `localhost` / 127.0.0.1 and its key, written to `dir`.
fn make_pair(dir: &Path, cert: &str, key: &str) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // An end-entity certificate (webpki refuses a CA certificate as the server's own).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(dir.join(key))
        .arg("-out")
        .arg(dir.join(cert))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl command");
    assert!(status.success(), "openssl req failed");
}

fn client(trusted: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(trusted).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// Connects with `trusted` as the only root; returns the ALPN protocol and the status of
/// `GET /health` over it, or the handshake error.
async fn health(addr: &str, trusted: &Path, alpn: &[&[u8]]) -> Result<(Vec<u8>, u16), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = client(trusted, alpn)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let proto = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let req = http::Request::get(format!("https://{addr}/health"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let status = if proto == b"h2" {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let r = send.send_request(req).await.map_err(|e| e.to_string())?;
        let s = r.status().as_u16();
        r.into_body().collect().await.map_err(|e| e.to_string())?;
        s
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = req;
        req.headers_mut()
            .insert("host", "localhost".parse().unwrap());
        let r = send.send_request(req).await.map_err(|e| e.to_string())?;
        let s = r.status().as_u16();
        r.into_body().collect().await.map_err(|e| e.to_string())?;
        s
    };
    Ok((proto, status))
}

#[test]
fn tls_with_alpn_and_a_certificate_reloaded_without_a_restart() {
    let dir = temp_dir("tls");
    make_pair(&dir, "a.crt", "a.key");
    std::fs::copy(dir.join("a.crt"), dir.join("tls.crt")).unwrap();
    std::fs::copy(dir.join("a.key"), dir.join("tls.key")).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    // Default reload interval (10 s).
    let stack = Stack::start_with(|c| {
        c.gateway.tls.cert_file = Some(cert.clone());
        c.gateway.tls.key_file = Some(key.clone());
    });
    let addr = stack.gateway_url.trim_start_matches("http://").to_string();
    let a = dir.join("a.crt");
    let (proto, status) = stack
        .http
        .block_on(health(&addr, &a, &[b"h2", b"http/1.1"]))
        .unwrap();
    assert_eq!((proto.as_slice(), status), (&b"h2"[..], 200));
    let (proto, status) = stack
        .http
        .block_on(health(&addr, &a, &[b"http/1.1"]))
        .unwrap();
    assert_eq!((proto.as_slice(), status), (&b"http/1.1"[..], 200));
    // Plain HTTP on the TLS port is not served.
    let plain = stack.http.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(5),
            stack
                .http
                .client()
                .get(format!("http://{addr}/health").parse().unwrap()),
        )
        .await
    });
    assert!(
        !matches!(plain, Ok(Ok(ref r)) if r.status() == 200),
        "plain HTTP answered"
    );

    // A new pair written over the files is served to new connections within a few intervals;
    // a half-written pair in between never stops the old one from serving.
    make_pair(&dir, "b.crt", "b.key");
    let failed_reloads = || {
        // The gateway runs in this process: its metrics are this process's.
        layer_gateway::core::metrics::render(2)
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"layer_tls_reloads_total{outcome="failed"} "#)?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
    };
    let failed_before = failed_reloads();
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ntruncated\n").unwrap();
    // The reloader sees the half-written pair (within one 10 s interval) and keeps the old one.
    let deadline = Instant::now() + Duration::from_secs(45);
    while failed_reloads() == failed_before {
        assert!(
            Instant::now() < deadline,
            "the half-written pair was never read"
        );
        pause(Duration::from_millis(50));
    }
    let (_, status) = stack
        .http
        .block_on(health(&addr, &a, &[b"h2"]))
        .expect("the old certificate still serves");
    assert_eq!(status, 200);
    std::fs::copy(dir.join("b.key"), &key).unwrap();
    std::fs::copy(dir.join("b.crt"), &cert).unwrap();
    let b = dir.join("b.crt");
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        match stack.http.block_on(health(&addr, &b, &[b"h2"])) {
            Ok((_, status)) => {
                assert_eq!(status, 200);
                break;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "the new certificate was never served: {e}"
                );
                pause(Duration::from_millis(200));
            }
        }
    }
    // The old certificate is no longer presented.
    assert!(stack.http.block_on(health(&addr, &a, &[b"h2"])).is_err());
}
