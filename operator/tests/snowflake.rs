//! The Snowflake driver's probe against a scripted SQL API on 127.0.0.1: the request it sends
//! (path, token type, a JWT whose signature verifies with the key's public half and whose issuer
//! carries the fingerprint `openssl` computes for the fixture key, the statement, warehouse and
//! role), and the outcome it draws from each answer (200, 401, 202 then the status URL, no
//! server), plus the key forms (PKCS#8, PKCS#1, passphrase-protected).
//!
//! Fixture keys: `tests/fixtures/snowflake-test-key*.pem`, generated for these tests only with
//! `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` (and `openssl rsa -traditional`,
//! `openssl pkcs8 -topk8 -v2 aes-256-cbc` for the other two forms).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use crds::k8s::warehouse::{Warehouse, WarehouseSpec};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use layer_operator::probe::{ProbeOutcome, WarehouseProbe};
use layer_operator::snowflake::{SnowflakeProbe, private_key};
use serde_json::{Value, json};

const PKCS8: &str = include_str!("fixtures/snowflake-test-key.pem");
const PKCS1: &str = include_str!("fixtures/snowflake-test-key-pkcs1.pem");
const ENCRYPTED: &str = include_str!("fixtures/snowflake-test-key-encrypted.pem");
/// `openssl rsa -in snowflake-test-key.pem -pubout -outform DER | openssl dgst -sha256 -binary | base64`
const OPENSSL_FINGERPRINT: &str = "SHA256:hM1j9Rq3byEzgOfLOIWkVz5M/JhQVkosWNW4MV2eeuc=";

/// One request the fake received: method, path, headers of interest, body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    token_type: String,
    bearer: String,
    body: Value,
}

/// A scripted SQL API: answers `script` in order (the last one repeats), records requests.
async fn fake(script: Vec<(u16, Value)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let script = Arc::new(script);
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (log, script) = (log.clone(), script.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (log, script) = (log.clone(), script.clone());
                    async move {
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string()
                        };
                        let mut seen = Seen {
                            method: req.method().to_string(),
                            path: req.uri().path().to_string(),
                            token_type: header("x-snowflake-authorization-token-type"),
                            bearer: header("authorization"),
                            body: Value::Null,
                        };
                        let bytes = req.into_body().collect().await.unwrap().to_bytes();
                        seen.body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let n = {
                            let mut l = log.lock().unwrap();
                            l.push(seen);
                            l.len()
                        };
                        let (status, body) = &script[(n - 1).min(script.len() - 1)];
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(*status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(body.to_string())))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    (url, seen)
}

fn warehouse(role: Option<&str>) -> Warehouse {
    let mut spec: WarehouseSpec = serde_json::from_value(json!({
        "kind": "snowflake",
        "snowflake": {
            "account": "acme-xy12345",
            "user": "svc_layer",
            "warehouse": "EXTRACT_WH",
            "keyPairSecretRef": {"name": "snowflake-rsa"},
            "pool": {"size": 5, "timeout": "30s"}
        }
    }))
    .unwrap();
    if let Some(sf) = spec.snowflake.as_mut() {
        sf.role = role.map(str::to_string);
    }
    Warehouse::new("prod-snowflake", spec)
}

fn secret(pem: &str) -> Secret {
    Secret {
        data: Some(BTreeMap::from([(
            "private-key.pem".to_string(),
            ByteString(pem.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Verifies the JWT's signature with the fixture's public key and returns its claims.
fn claims(bearer: &str) -> Value {
    let token = bearer.strip_prefix("Bearer ").expect("bearer");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "RS256", "typ": "JWT"}));
    let key = private_key(PKCS8).unwrap();
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        ring::signature::KeyPair::public_key(&key).as_ref().to_vec(),
    );
    public
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .expect("the JWT's signature verifies with the key's public half");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn a_key_pair_session_runs_select_1_on_the_declared_warehouse() {
    let (url, seen) = fake(vec![(
        200,
        json!({"data": [["1"]], "resultSetMetaData": {"numRows": 1}}),
    )])
    .await;
    let probe = SnowflakeProbe::new(Some(&url)).unwrap();
    let outcome = probe
        .probe(&warehouse(Some("SVC_LAYER_ROLE")), &secret(PKCS8))
        .await;
    assert_eq!(outcome, ProbeOutcome::Verified);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/api/v2/statements")
    );
    assert_eq!(req.token_type, "KEYPAIR_JWT");
    assert_eq!(
        req.body,
        json!({"statement": "SELECT 1", "timeout": 30, "warehouse": "EXTRACT_WH", "role": "SVC_LAYER_ROLE"})
    );
    let c = claims(&req.bearer);
    assert_eq!(c["sub"], "ACME-XY12345.SVC_LAYER");
    assert_eq!(
        c["iss"],
        format!("ACME-XY12345.SVC_LAYER.{OPENSSL_FINGERPRINT}"),
        "the fingerprint is the one openssl computes for the public key"
    );
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert!(
        exp > iat && exp - iat <= 3600,
        "Snowflake caps a JWT at one hour"
    );
}

#[tokio::test]
async fn a_refusal_fails_with_snowflakes_message_and_no_server_fails_as_unreachable() {
    let (url, _) = fake(vec![(
        401,
        json!({"code": "390144", "message": "JWT token is invalid."}),
    )])
    .await;
    let probe = SnowflakeProbe::new(Some(&url)).unwrap();
    match probe.probe(&warehouse(None), &secret(PKCS8)).await {
        ProbeOutcome::Failed(m) => {
            assert!(
                m.contains("401") && m.contains("JWT token is invalid."),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let probe = SnowflakeProbe::new(Some(&format!("http://{addr}"))).unwrap();
    match probe.probe(&warehouse(None), &secret(PKCS8)).await {
        ProbeOutcome::Failed(m) => assert!(m.contains("unreachable"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_accepted_statement_is_followed_to_its_answer() {
    let (url, seen) = fake(vec![
        (
            202,
            json!({"statementStatusUrl": "/api/v2/statements/01b2-handle", "message": "Asynchronous execution in progress."}),
        ),
        (200, json!({"data": [["1"]]})),
    ])
    .await;
    let probe = SnowflakeProbe::new(Some(&url)).unwrap();
    assert_eq!(
        probe.probe(&warehouse(None), &secret(PKCS1)).await,
        ProbeOutcome::Verified,
        "a PKCS#1 key works too"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[1].method.as_str(), seen[1].path.as_str()),
        ("GET", "/api/v2/statements/01b2-handle")
    );
    assert_eq!(
        seen[0].body.get("role"),
        None,
        "no role is sent when none is declared"
    );
}

#[tokio::test]
async fn keys_it_cannot_use_are_named_and_nothing_is_sent() {
    let (url, seen) = fake(vec![(200, json!({"data": [["1"]]}))]).await;
    let probe = SnowflakeProbe::new(Some(&url)).unwrap();
    match probe.probe(&warehouse(None), &secret(ENCRYPTED)).await {
        ProbeOutcome::Unavailable(m) => assert!(m.contains("passphrase"), "{m}"),
        other => panic!("{other:?}"),
    }
    match probe.probe(&warehouse(None), &secret("not a key")).await {
        ProbeOutcome::Failed(m) => assert!(m.contains("PEM"), "{m}"),
        other => panic!("{other:?}"),
    }
    match probe.probe(&warehouse(None), &Secret::default()).await {
        ProbeOutcome::Failed(m) => assert!(m.contains("private-key.pem"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(seen.lock().unwrap().is_empty());
}
