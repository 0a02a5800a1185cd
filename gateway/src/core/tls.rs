//! Inbound TLS: the certificate and key from PEM files (rustls, the ring provider), offered with
//! ALPN `h2` and `http/1.1`, and reloaded when the files change — checked every
//! `gateway.tls.reloadIntervalMs` on the control runtime. New connections get the new pair; a
//! pair that fails to load (half-written files, a key that does not match) is reported and the
//! old one keeps serving. Plain HTTP stays the default: this is only on when both files are set.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::config::TlsConfig;

/// The serving TLS configuration, swapped when the files change.
pub struct Tls {
    current: ArcSwap<ServerConfig>,
    cert: PathBuf,
    key: PathBuf,
    every: Duration,
}

impl Tls {
    /// Loads the pair `cfg` names; `Ok(None)` when TLS is off.
    pub fn open(cfg: &TlsConfig) -> Result<Option<Arc<Tls>>, String> {
        let (Some(cert), Some(key)) = (&cfg.cert_file, &cfg.key_file) else {
            return Ok(None);
        };
        let server = load(cert, key)?;
        Ok(Some(Arc::new(Tls {
            current: ArcSwap::from_pointee(server),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            every: Duration::from_millis(cfg.reload_interval_ms),
        })))
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Watches the files and swaps in a changed pair (runs until the process ends).
    pub async fn reload_loop(self: Arc<Self>) {
        let mut seen = stamp(&self.cert, &self.key);
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = stamp(&self.cert, &self.key);
            if now == seen {
                continue;
            }
            match load(&self.cert, &self.key) {
                Ok(server) => {
                    self.current.store(Arc::new(server));
                    seen = now;
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    super::metrics::feature_event(
                        "layer_tls_reloads_total",
                        "outcome",
                        "loaded",
                        1,
                    );
                }
                Err(e) => {
                    // Keep serving the old pair; try again at the next tick (the files may be
                    // half-written). `seen` stays, so the change is retried.
                    tracing::warn!(error = %e, "TLS reload failed; the previous certificate keeps serving");
                    super::metrics::feature_event(
                        "layer_tls_reloads_total",
                        "outcome",
                        "failed",
                        1,
                    );
                }
            }
        }
    }
}

/// Modification times and sizes of the pair (a change in either means reload).
fn stamp(cert: &Path, key: &Path) -> Option<[(SystemTime, u64); 2]> {
    let m = |p: &Path| {
        let md = std::fs::metadata(p).ok()?;
        Some((md.modified().ok()?, md.len()))
    };
    Some([m(cert)?, m(key)?])
}

/// Builds a server configuration from PEM files.
fn load(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("reading {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("parsing {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("reading the private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the certificate and key do not make a TLS identity: {e}"))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_mismatched_files_are_reported_without_their_contents() {
        let dir = std::env::temp_dir().join(format!("layer-tls-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
        let cfg = TlsConfig {
            cert_file: Some(cert.clone()),
            key_file: Some(key.clone()),
            reload_interval_ms: 10_000,
        };
        let err = Tls::open(&cfg).err().expect("missing files");
        assert!(err.contains("c.pem"), "{err}");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = Tls::open(&cfg).err().expect("no certificate");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        assert!(Tls::open(&TlsConfig::default()).unwrap().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
