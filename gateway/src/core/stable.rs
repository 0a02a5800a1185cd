//! Stable reads on the query route (`POST /v2/namespaces/{ns}/query`, single and multi-query):
//! the rules below are applied by the query feature; this module holds the predicate and the
//! response header, which every route reporting a cut uses.
//!
//! Per request, one read of the namespace's watcher state decides everything:
//!
//! The mode is the namespace's index `consistency`, else `gateway.consistency.defaultMode`.
//!
//! | mode | watcher status | what goes upstream |
//! |---|---|---|
//! | `stable` (default) | updating, with a watermark | eventual read + `["_hevlayer_upserted_at","Lte",wm]` ANDed into every leg |
//! | `stable` | stable or unknown | eventual read, no predicate |
//! | `eventual` | any | eventual read, no predicate |
//! | `strong` | any | the body unchanged (but for the projection rule below) |
//!
//! A caller that sends `consistency: {"level": "strong"}` gets its body forwarded unchanged
//! (read-your-writes). A 429 to a query sent without a predicate is retried once with the
//! predicate forced, when a watermark exists. `x-layer-stable-as-of` carries the watermark
//! whenever one exists; every leg of a request shares it. In every mode, wildcard projections
//! (`include_attributes: true`, `exclude_attributes`) are rewritten so the gateway's own
//! `_hevlayer_*` attributes stay hidden (`scatter::hide_reserved`).

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// The watermark predicate for a cut.
pub fn predicate(watermark: u64) -> Vec<u8> {
    format!("[\"{}\",\"Lte\",{watermark}]", scatter::UPSERTED_AT).into_bytes()
}

/// The response header carrying the watermark (a constant: a string name is copied per insert).
const STABLE_AS_OF: HeaderName = HeaderName::from_static("x-layer-stable-as-of");

/// Adds `x-layer-stable-as-of` to a response.
pub fn stamp_header(headers: &mut HeaderMap, watermark: Option<u64>) {
    if let Some(wm) = watermark {
        headers.insert(STABLE_AS_OF, HeaderValue::from(wm));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicate_bytes() {
        assert_eq!(
            predicate(42),
            br#"["_hevlayer_upserted_at","Lte",42]"#.to_vec()
        );
    }
}
