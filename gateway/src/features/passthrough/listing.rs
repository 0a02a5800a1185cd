//! `GET /v1/namespaces` as a proxy hook: forwarded; a namespace-limited key sees only the
//! namespaces its grant covers. The page is asked for uncompressed; whatever encoding upstream
//! answers with anyway, the filter runs on the decoded page (gzip is inflated, within a bound),
//! and an encoding the gateway cannot read fails closed (502) instead of passing unfiltered.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::{Value, json};

use crate::core::ShardCtx;
use crate::core::auth::Principal;
use crate::core::proxy::{ProxyHooks, Session};
use crate::core::upstream::UpstreamResponse;

/// Largest decoded listing page the filter reads (a page holds at most 10,000 short ids).
const MAX_PAGE_BYTES: u64 = 64 << 20;

/// The upstream namespace listing.
pub struct Listing;

impl ProxyHooks for Listing {
    type Ctx = ();

    fn upstream_request_filter(&self, s: &mut Session, _: &mut ()) {
        if s.req.principal.is_namespace_limited() {
            s.headers.remove(header::ACCEPT_ENCODING);
        }
    }

    async fn response_filter(
        &self,
        _: &Arc<ShardCtx>,
        s: &Session,
        _: &mut (),
        up: &mut UpstreamResponse,
    ) {
        filter_listing(up, &s.req.principal);
    }
}

/// Keeps only the granted namespaces of a successful listing page, for a namespace-limited
/// principal; the page comes back uncompressed.
fn filter_listing(up: &mut UpstreamResponse, principal: &Principal) {
    if !principal.is_namespace_limited() || !up.status.is_success() {
        return;
    }
    let decoded = match up
        .headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
    {
        None => Some(up.body.clone()),
        Some(e) if e == "identity" => Some(up.body.clone()),
        Some(e) if e == "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(up.body.as_ref())
                .take(MAX_PAGE_BYTES + 1)
                .read_to_end(&mut out)
                .ok()
                .filter(|n| (*n as u64) <= MAX_PAGE_BYTES)
                .map(|_| Bytes::from(out))
        }
        Some(_) => None,
    };
    let page = decoded.and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let Some(mut v) = page else {
        fail_closed(up);
        return;
    };
    principal.retain_granted(&mut v, "id");
    up.headers.remove(header::CONTENT_ENCODING);
    up.body = Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
}

/// A page the gateway cannot read is not relayed to a key that may only see part of it.
fn fail_closed(up: &mut UpstreamResponse) {
    up.status = StatusCode::BAD_GATEWAY;
    up.headers.remove(header::CONTENT_ENCODING);
    up.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    up.body = Bytes::from(
        json!({
            "error": "upstream_error",
            "message": "the namespace listing could not be read to apply the key's namespace grant",
        })
        .to_string(),
    );
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http::HeaderMap;

    use super::*;
    use crate::core::auth::Auth;
    use crate::core::config::{AuthMode, Config, KeyConfig, Scope};

    fn principal(namespaces: &[&str]) -> Arc<Principal> {
        let mut c = Config::default();
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = vec![KeyConfig {
            name: "k".into(),
            scopes: vec![Scope::Read],
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            token: Some("t".into()),
            token_env: None,
        }];
        let auth = Auth::from_config(&c, &|_| None).unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        auth.admit(
            &h,
            Some(Scope::Read),
            crate::core::auth::Surface::Data,
            None,
        )
        .unwrap()
    }

    const PAGE: &str = r#"{"namespaces":[{"id":"shop-1"},{"id":"orders"}],"next_cursor":null}"#;

    fn up(body: Bytes, encoding: Option<&'static str>) -> UpstreamResponse {
        let mut headers = HeaderMap::new();
        if let Some(e) = encoding {
            headers.insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static(e),
            );
        }
        UpstreamResponse {
            status: StatusCode::OK,
            headers,
            body,
        }
    }

    fn ids(up: &UpstreamResponse) -> Vec<String> {
        let v: Value = serde_json::from_slice(&up.body).unwrap();
        v["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn plain_and_gzip_pages_are_both_filtered() {
        let p = principal(&["shop-*"]);
        let mut plain = up(Bytes::from_static(PAGE.as_bytes()), None);
        filter_listing(&mut plain, &p);
        assert_eq!(ids(&plain), ["shop-1"]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(PAGE.as_bytes()).unwrap();
        let mut gz = up(Bytes::from(enc.finish().unwrap()), Some("gzip"));
        filter_listing(&mut gz, &p);
        assert_eq!(ids(&gz), ["shop-1"]);
        assert!(!gz.headers.contains_key(header::CONTENT_ENCODING));
    }

    #[test]
    fn unreadable_pages_fail_closed_and_unlimited_keys_pass_through() {
        let p = principal(&["shop-*"]);
        let mut br = up(Bytes::from_static(b"\x0b\x02\x80opaque"), Some("br"));
        filter_listing(&mut br, &p);
        assert_eq!(br.status, StatusCode::BAD_GATEWAY);
        assert!(!String::from_utf8_lossy(&br.body).contains("orders"));
        let mut garbage = up(Bytes::from_static(b"not json"), None);
        filter_listing(&mut garbage, &p);
        assert_eq!(garbage.status, StatusCode::BAD_GATEWAY);
        let all = principal(&[]);
        let mut page = up(Bytes::from_static(PAGE.as_bytes()), None);
        filter_listing(&mut page, &all);
        assert_eq!(ids(&page), ["shop-1", "orders"]);
    }
}
