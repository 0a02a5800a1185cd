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

use std::cell::RefCell;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// The watermark predicate for a cut, `["_hevlayer_upserted_at","Lte",<watermark>]`, written on
/// the stack (it is made for every stable read of an updating namespace).
pub fn predicate(watermark: u64) -> Predicate {
    let mut p = Predicate {
        buf: [0; PREDICATE_MAX],
        len: 0,
    };
    let mut digits = [0u8; 20];
    for part in [
        b"[\"".as_slice(),
        scatter::UPSERTED_AT.as_bytes(),
        b"\",\"Lte\",",
        scatter::write::decimal(watermark, &mut digits),
        b"]",
    ] {
        p.buf[p.len..p.len + part.len()].copy_from_slice(part);
        p.len += part.len();
    }
    p
}

/// The longest predicate: the attribute, the quoting and operator (11 bytes) and 20 digits.
const PREDICATE_MAX: usize = scatter::UPSERTED_AT.len() + 11 + 20;

/// A watermark predicate's JSON text ([`predicate`]); reads as bytes.
pub struct Predicate {
    buf: [u8; PREDICATE_MAX],
    len: usize,
}

impl std::ops::Deref for Predicate {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The response header carrying the watermark (a constant: a string name is copied per insert).
const STABLE_AS_OF: HeaderName = HeaderName::from_static("x-layer-stable-as-of");

/// Header values of recent watermarks, per thread, by a hash of the watermark: a watermark
/// changes only when a write is indexed, so most answers reuse its value (an atomic reference
/// count on a buffer only this thread's answers hold; the first reuse allocates once to share
/// it) instead of allocating one.
const AS_OF_SLOTS: usize = 8;

thread_local! {
    static AS_OF: RefCell<[Option<(u64, HeaderValue)>; AS_OF_SLOTS]> =
        const { RefCell::new([const { None }; AS_OF_SLOTS]) };
}

/// Adds `x-layer-stable-as-of` to a response.
pub fn stamp_header(headers: &mut HeaderMap, watermark: Option<u64>) {
    if let Some(wm) = watermark
        && let Some(v) = as_of_value(wm)
    {
        headers.insert(STABLE_AS_OF, v);
    }
}

/// The header value of `wm` in decimal, from this thread's slots when it was written lately.
fn as_of_value(wm: u64) -> Option<HeaderValue> {
    let slot = (wm.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 61) as usize % AS_OF_SLOTS;
    AS_OF.with(|slots| {
        let mut slots = slots.borrow_mut();
        if let Some((cached, v)) = &slots[slot]
            && *cached == wm
        {
            return Some(v.clone());
        }
        // Written on the stack and copied once (`HeaderValue::from(u64)` allocates twice).
        let v = HeaderValue::from_bytes(scatter::write::decimal(wm, &mut [0; 20])).ok()?;
        slots[slot] = Some((wm, v.clone()));
        Some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_carries_the_watermark_in_decimal() {
        for wm in [0, 7, 1_764_892_800_123, u64::MAX] {
            let mut h = HeaderMap::new();
            stamp_header(&mut h, Some(wm));
            assert_eq!(h[STABLE_AS_OF], wm.to_string().as_str());
        }
        let mut h = HeaderMap::new();
        stamp_header(&mut h, None);
        assert!(h.is_empty());
        // The thread's slots: repeated and colliding watermarks (more than there are slots)
        // still read back their own value.
        for round in 0..3 {
            for wm in (0..40u64).map(|i| 1_764_892_800_000 + i * 977) {
                let mut h = HeaderMap::new();
                stamp_header(&mut h, Some(wm));
                assert_eq!(h[STABLE_AS_OF], wm.to_string().as_str(), "round {round}");
            }
        }
    }

    #[test]
    fn predicate_bytes() {
        assert_eq!(&*predicate(42), br#"["_hevlayer_upserted_at","Lte",42]"#);
        assert_eq!(&*predicate(0), br#"["_hevlayer_upserted_at","Lte",0]"#);
        let max = format!(r#"["_hevlayer_upserted_at","Lte",{}]"#, u64::MAX);
        assert_eq!(&*predicate(u64::MAX), max.as_bytes());
    }
}
