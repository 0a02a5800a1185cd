//! HTTP Basic auth in front of every route: the `Authorization: Basic` credentials compared in
//! constant time with the configured user and password.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;

/// Whether `headers` carry the configured credentials.
pub fn allowed(headers: &HeaderMap, user: &str, password: &str) -> bool {
    let Some(given) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
    else {
        return false;
    };
    let expected = format!("{user}:{password}");
    constant_time_eq(&given, expected.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn only_the_configured_pair_passes() {
        let good = format!("Basic {}", STANDARD.encode("ops:pw"));
        assert!(allowed(&with(&good), "ops", "pw"));
        assert!(!allowed(
            &with(&format!("Basic {}", STANDARD.encode("ops:pX"))),
            "ops",
            "pw"
        ));
        assert!(!allowed(
            &with(&format!("Basic {}", STANDARD.encode("ops:pw2"))),
            "ops",
            "pw"
        ));
        assert!(!allowed(&with("Bearer ops:pw"), "ops", "pw"));
        assert!(!allowed(&HeaderMap::new(), "ops", "pw"));
    }
}
