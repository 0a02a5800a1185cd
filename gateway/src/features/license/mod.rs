//! The license (contract §2.12): `GET /v2/license` reports `licensed`, `grace` or `floor` from an
//! offline-verifiable signed license file. Nothing stops working because of the license: it is
//! reported, not enforced.
//!
//! The file (`gateway.license.file`, `LAYER_LICENSE_FILE`) is `<claims>.<signature>`, both
//! base64url (unpadded): the claims are a JSON object (`sub`, `tier`, `features`, `limits`,
//! `exp` as RFC 3339) and the signature is Ed25519 over the claims' bytes as decoded, checked with
//! the issuer's public key (`gateway.license.publicKey`, `LAYER_LICENSE_PUBLIC_KEY`; 32 bytes, hex
//! or base64). States:
//!
//! | state | when |
//! |---|---|
//! | `licensed` | the signature verifies and `exp` has not passed |
//! | `grace` | the signature verifies and `exp` passed less than `graceDays` (14) ago |
//! | `floor` | no file, no key, a file that does not parse, a signature that does not verify, or `exp` plus the grace passed; `reason` says which |
//!
//! The file is read on each call (the route is rare), so a renewed license shows at once.

use std::sync::Arc;

use base64::Engine;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::core::config::{LicenseConfig, Scope};
use crate::core::error::GatewayError;
use crate::core::http::{Resp, json_response, now_ms};
use crate::core::router::{Req, Route, handler};
use crate::core::{Core, ShardCtx};

/// The license feature.
pub struct License {
    core: Arc<Core>,
}

impl License {
    pub fn new(core: Arc<Core>) -> Arc<License> {
        Arc::new(License { core })
    }

    pub fn routes(self: &Arc<Self>) -> Vec<Route> {
        vec![Route::new(
            Method::GET,
            "/v2/license",
            "get_license",
            Scope::Read,
            handler(self.clone(), Self::get),
        )]
    }

    async fn get(self: Arc<Self>, _: Arc<ShardCtx>, _: Req) -> Result<Resp, GatewayError> {
        let cfg = &self.core.config.gateway.license;
        let text = match &cfg.file {
            None => None,
            Some(p) => Some(
                tokio::fs::read_to_string(p)
                    .await
                    .map_err(|e| e.to_string()),
            ),
        };
        let state = evaluate(cfg, text, now_ms() / 1000);
        Ok(json_response(StatusCode::OK, &state))
    }
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(s))
        .map_err(|e| format!("not base64: {e}"))
}

fn public_key(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
            .collect::<Result<Vec<u8>, String>>()?
    } else {
        b64(s)?
    };
    if bytes.len() != 32 {
        return Err(format!(
            "the public key is {} bytes; Ed25519 keys are 32",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn floor(reason: &str) -> Value {
    json!({
        "valid": false,
        "state": "floor",
        "reason": reason,
        "gateway": {"state": "floor", "seconds_to_deadline": 0, "grace_seconds_remaining": 0},
    })
}

/// The `LicenseState` of a license file's text (`None`: no file configured) at `now_s`.
pub fn evaluate(cfg: &LicenseConfig, text: Option<Result<String, String>>, now_s: u64) -> Value {
    let text = match text {
        None => return floor("no license file is configured (gateway.license.file)"),
        Some(Err(e)) => return floor(&format!("the license file cannot be read: {e}")),
        Some(Ok(t)) => t,
    };
    let Some(key) = &cfg.public_key else {
        return floor(
            "no public key is configured to verify the license (gateway.license.publicKey)",
        );
    };
    let key = match public_key(key) {
        Ok(k) => k,
        Err(e) => return floor(&format!("the configured public key is unusable: {e}")),
    };
    let Some((claims_b64, sig_b64)) = text.trim().split_once('.') else {
        return floor("the license file is not <claims>.<signature>");
    };
    let (claims, sig) = match (b64(claims_b64), b64(sig_b64)) {
        (Ok(c), Ok(s)) => (c, s),
        _ => return floor("the license file is not base64url"),
    };
    let verifier = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key);
    if verifier.verify(&claims, &sig).is_err() {
        return floor("the license signature does not verify");
    }
    let Ok(Value::Object(c)) = serde_json::from_slice::<Value>(&claims) else {
        return floor("the license claims are not a JSON object");
    };
    let exp = c
        .get("exp")
        .and_then(Value::as_str)
        .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
        .map(|t| t.timestamp().max(0) as u64);
    let Some(exp_s) = exp else {
        return floor("the license has no exp (RFC 3339)");
    };
    let grace = cfg.grace_days * 86_400;
    let (state, to_deadline, grace_left) = if now_s < exp_s {
        ("licensed", exp_s - now_s, grace)
    } else if now_s < exp_s + grace {
        ("grace", exp_s + grace - now_s, exp_s + grace - now_s)
    } else {
        let mut v = floor("the license expired and its grace period ended");
        copy_claims(&mut v, &c);
        return v;
    };
    let mut v = json!({
        "valid": true,
        "gateway": {
            "state": state, "seconds_to_deadline": to_deadline, "grace_seconds_remaining": grace_left,
        },
    });
    copy_claims(&mut v, &c);
    v
}

fn copy_claims(v: &mut Value, c: &serde_json::Map<String, Value>) {
    for k in ["sub", "tier", "features", "limits", "exp"] {
        if let Some(x) = c.get(k) {
            v[k] = x.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    fn signed(claims: &Value) -> (String, String) {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let bytes = serde_json::to_vec(claims).unwrap();
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let file = format!(
            "{}.{}",
            e.encode(&bytes),
            e.encode(pair.sign(&bytes).as_ref())
        );
        let key: String = pair
            .public_key()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        (file, key)
    }

    fn cfg(key: &str) -> LicenseConfig {
        LicenseConfig {
            file: None,
            public_key: Some(key.into()),
            grace_days: 14,
        }
    }

    const NOW: u64 = 1_800_000_000; // 2027-01-15

    #[test]
    fn licensed_grace_and_floor() {
        let claims = json!({"sub": "acme", "tier": "pro", "features": ["udfs"], "limits": {"nodes": 3},
                            "exp": "2027-02-01T00:00:00Z"});
        let (file, key) = signed(&claims);
        let v = evaluate(&cfg(&key), Some(Ok(file.clone())), NOW);
        assert_eq!(
            (v["valid"].clone(), v["gateway"]["state"].clone()),
            (json!(true), json!("licensed")),
            "{v}"
        );
        assert_eq!(v["sub"], "acme");
        assert_eq!(v["limits"]["nodes"], 3);
        // Expired ten days ago: grace, with four days left.
        let later = NOW + 27 * 86_400;
        let v = evaluate(&cfg(&key), Some(Ok(file.clone())), later);
        assert_eq!(v["gateway"]["state"], "grace", "{v}");
        assert!(v["gateway"]["grace_seconds_remaining"].as_u64().unwrap() > 3 * 86_400);
        // Past the grace: floor.
        let v = evaluate(&cfg(&key), Some(Ok(file.clone())), NOW + 60 * 86_400);
        assert_eq!(
            (v["state"].clone(), v["gateway"]["state"].clone()),
            (json!("floor"), json!("floor"))
        );
        // Tampered claims: floor, naming the signature.
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (_, sig) = file.split_once('.').unwrap();
        let forged = json!({"sub": "acme", "tier": "enterprise", "exp": "2099-01-01T00:00:00Z"});
        let tampered = format!("{}.{sig}", e.encode(serde_json::to_vec(&forged).unwrap()));
        let v = evaluate(&cfg(&key), Some(Ok(tampered)), NOW);
        assert_eq!(v["state"], "floor");
        assert!(v["reason"].as_str().unwrap().contains("signature"), "{v}");
        // Another issuer's key: floor. No file: floor.
        let (_, other) = signed(&claims);
        assert_eq!(
            evaluate(&cfg(&other), Some(Ok(file)), NOW)["state"],
            "floor"
        );
        let v = evaluate(&cfg(&key), None, NOW);
        assert!(v["reason"].as_str().unwrap().contains("no license file"));
        assert_eq!(v["valid"], false);
    }
}
