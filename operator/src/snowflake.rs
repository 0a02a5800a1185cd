//! The Snowflake driver's Warehouse probe: a key-pair session through Snowflake's SQL API
//! (`POST /api/v2/statements`, `X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT`) that runs
//! `SELECT 1` on the declared compute warehouse (and role). Start at [`SnowflakeProbe`].
//!
//! The JWT is Snowflake's key-pair form: `iss` = `ACCOUNT.USER.SHA256:<fingerprint>` (the base64
//! SHA-256 of the public key's SubjectPublicKeyInfo DER, as `DESC USER` shows it), `sub` =
//! `ACCOUNT.USER`, signed RS256 with the Secret's `private-key.pem` (PKCS#8 `PRIVATE KEY` or
//! PKCS#1 `RSA PRIVATE KEY`). A passphrase-protected key (`ENCRYPTED PRIVATE KEY`) is reported as
//! unavailable: this build cannot decrypt it. The endpoint is
//! `https://<account>.snowflakecomputing.com` unless the operator is given another
//! (`--snowflake-endpoint`, e.g. a private link).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use crds::k8s::warehouse::Warehouse;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Secret;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::probe::{ProbeOutcome, WarehouseProbe, parse_duration, secret_value};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// How long the probe's statement may run when the Warehouse sets no `pool.timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The Snowflake driver's probe.
pub struct SnowflakeProbe {
    client: Client<Https, Full<Bytes>>,
    endpoint: Option<Arc<str>>,
}

impl SnowflakeProbe {
    /// A probe reaching `https://<account>.snowflakecomputing.com`, or `endpoint` when given.
    pub fn new(endpoint: Option<&str>) -> Result<SnowflakeProbe, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|e| format!("TLS setup: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(SnowflakeProbe {
            client: Client::builder(TokioExecutor::new()).build(https),
            endpoint: endpoint
                .map(|e| e.trim().trim_end_matches('/'))
                .filter(|e| !e.is_empty())
                .map(Arc::from),
        })
    }

    fn base(&self, account: &str) -> String {
        match &self.endpoint {
            Some(e) => e.to_string(),
            None => format!(
                "https://{}.snowflakecomputing.com",
                account.trim().to_ascii_lowercase()
            ),
        }
    }

    async fn run(&self, w: &Warehouse, secret: &Secret) -> ProbeOutcome {
        let Some(sf) = w.spec.snowflake.as_ref() else {
            return ProbeOutcome::Failed("spec.snowflake is missing".into());
        };
        let pem = match secret_value(secret, "private-key.pem") {
            Some(p) => p,
            None => return ProbeOutcome::Failed("the Secret has no private-key.pem".into()),
        };
        let key = match private_key(&pem) {
            Ok(k) => k,
            Err(KeyError::Encrypted) => {
                return ProbeOutcome::Unavailable(
                    "private-key.pem is passphrase-protected (ENCRYPTED PRIVATE KEY); this \
                     build's driver cannot decrypt it: store an unencrypted PKCS#8 key"
                        .into(),
                );
            }
            Err(KeyError::Invalid(m)) => return ProbeOutcome::Failed(m),
        };
        let now = chrono::Utc::now().timestamp();
        let token = match jwt(&sf.account, &sf.user, &key, now) {
            Ok(t) => t,
            Err(m) => return ProbeOutcome::Failed(m),
        };
        let timeout = sf
            .pool
            .as_ref()
            .and_then(|p| parse_duration(&p.timeout))
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let mut body = json!({
            "statement": "SELECT 1",
            "timeout": timeout.as_secs(),
            "warehouse": sf.warehouse,
        });
        if let Some(role) = sf.role.as_deref().filter(|r| !r.is_empty()) {
            body["role"] = json!(role);
        }
        let base = self.base(&sf.account);
        let deadline = tokio::time::Instant::now() + timeout + Duration::from_secs(10);
        let mut answer = self
            .call(
                Method::POST,
                format!("{base}/api/v2/statements"),
                &token,
                Some(&body),
                deadline,
            )
            .await;
        // 202: accepted and still running; follow its status URL until it answers.
        while let Ok((StatusCode::ACCEPTED, v)) = &answer {
            let Some(path) = v["statementStatusUrl"].as_str() else {
                return ProbeOutcome::Failed("202 without statementStatusUrl".into());
            };
            if tokio::time::Instant::now() >= deadline {
                return ProbeOutcome::Failed(format!(
                    "SELECT 1 did not finish within {}s",
                    timeout.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            answer = self
                .call(Method::GET, format!("{base}{path}"), &token, None, deadline)
                .await;
        }
        match answer {
            Ok((StatusCode::OK, v)) if v["data"][0][0].as_str() == Some("1") => {
                ProbeOutcome::Verified
            }
            Ok((StatusCode::OK, v)) => {
                ProbeOutcome::Failed(format!("SELECT 1 answered {}", v["data"]))
            }
            Ok((status, v)) => {
                let message = v["message"].as_str().unwrap_or("no message");
                ProbeOutcome::Failed(format!("Snowflake answered {status}: {message}"))
            }
            Err(m) => ProbeOutcome::Failed(format!("Snowflake unreachable: {m}")),
        }
    }

    async fn call(
        &self,
        method: Method,
        url: String,
        token: &str,
        body: Option<&Value>,
        deadline: tokio::time::Instant,
    ) -> Result<(StatusCode, Value), String> {
        let req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, "layer-operator")
            .body(Full::new(Bytes::from(
                body.map(Value::to_string).unwrap_or_default(),
            )))
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{method} {url}: {e}"))?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{method} {url}: {e}"))?
                .to_bytes();
            Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .map_err(|_| format!("{method} {url}: timed out"))?
    }
}

impl WarehouseProbe for SnowflakeProbe {
    fn probe<'a>(
        &'a self,
        warehouse: &'a Warehouse,
        secret: &'a Secret,
    ) -> Pin<Box<dyn Future<Output = ProbeOutcome> + Send + 'a>> {
        Box::pin(self.run(warehouse, secret))
    }
}

/// Why a private key could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    /// `ENCRYPTED PRIVATE KEY`: needs the passphrase and a decrypter this build lacks.
    Encrypted,
    /// Not a PEM RSA key ring accepts; the reason.
    Invalid(String),
}

/// The RSA key of a PEM document (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
pub fn private_key(pem: &str) -> Result<RsaKeyPair, KeyError> {
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(KeyError::Encrypted);
    }
    let (label, der) = pem_block(pem).ok_or_else(|| {
        KeyError::Invalid("private-key.pem holds no PEM block (-----BEGIN ...-----)".into())
    })?;
    let parsed = match label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        other => {
            return Err(KeyError::Invalid(format!(
                "private-key.pem is a {other:?} block, not an RSA private key"
            )));
        }
    };
    parsed.map_err(|e| KeyError::Invalid(format!("private-key.pem is not a usable RSA key: {e}")))
}

/// The first PEM block: its label and decoded bytes.
fn pem_block(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + "-----".len();
    let end = rest.find(&format!("-----END {label}-----"))?;
    let b64: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(b64).ok().map(|der| (label, der))
}

/// The public key's fingerprint as Snowflake shows it: `SHA256:` + base64 of the SHA-256 of its
/// SubjectPublicKeyInfo DER.
pub fn fingerprint(key: &RsaKeyPair) -> String {
    let spki = spki_der(key.public().as_ref());
    format!("SHA256:{}", STANDARD.encode(Sha256::digest(&spki)))
}

/// `SubjectPublicKeyInfo { AlgorithmIdentifier { rsaEncryption, NULL }, BIT STRING { key } }`
/// around a PKCS#1 `RSAPublicKey`.
pub fn spki_der(rsa_public_key: &[u8]) -> Vec<u8> {
    // OID 1.2.840.113549.1.1.1 and NULL, in their SEQUENCE.
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x00]; // no unused bits
    bits.extend_from_slice(rsa_public_key);
    let mut inner = ALGORITHM.to_vec();
    inner.extend(der_tlv(0x03, &bits));
    der_tlv(0x30, &inner)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// The key-pair JWT for `account` and `user`, issued at `now` (Unix seconds), valid 5 minutes.
/// The account part is the identifier before any `.` (a locator's region suffix is not part of
/// it), upper-cased, as is the user.
pub fn jwt(account: &str, user: &str, key: &RsaKeyPair, now: i64) -> Result<String, String> {
    let account = account
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let user = user.trim().to_ascii_uppercase();
    if account.is_empty() || user.is_empty() {
        return Err("snowflake.account and snowflake.user must be set".into());
    }
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = json!({
        "iss": format!("{account}.{user}.{}", fingerprint(key)),
        "sub": format!("{account}.{user}"),
        "iat": now,
        "exp": now + 300,
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let message = format!("{header}.{payload}");
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing the JWT failed".to_string())?;
    Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_the_short_and_long_forms() {
        assert_eq!(der_tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der_tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }

    #[test]
    fn bad_keys_say_why() {
        assert!(matches!(private_key("nothing"), Err(KeyError::Invalid(_))));
        assert_eq!(
            private_key(
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----"
            )
            .err(),
            Some(KeyError::Encrypted)
        );
        assert!(matches!(
            private_key("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----"),
            Err(KeyError::Invalid(m)) if m.contains("CERTIFICATE")
        ));
    }
}
