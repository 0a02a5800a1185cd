//! The history list parameters (`ListQuery::parse`, the `search-history` and `clickstream`
//! routes) on arbitrary query strings: never a panic; a refusal is always a validation error
//! (422); an accepted query has a limit in `1..=MAX_LIMIT`, at most 32 sorted, distinct, valid
//! tags and a lowercase trace id; and writing it back as a query string and parsing that gives
//! the same query (a round trip through every field).

use chrono::{DateTime, SecondsFormat};
use layer_gateway::fuzzing::{ListQuery, MAX_LIMIT, encode_query_component};

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_-./=+".contains(&b))
}

/// `q` written back as a query string.
fn render(q: &ListQuery) -> String {
    let mut parts = Vec::new();
    if !q.tags.is_empty() {
        parts.push(format!("tag={}", encode_query_component(&q.tags.join(","))));
    }
    if let Some(t) = &q.trace_id {
        parts.push(format!("trace_id={}", encode_query_component(t)));
    }
    if let Some(from) = q.from {
        let nanos = i64::try_from(from).expect("from is an i64 timestamp");
        let text =
            DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::Nanos, true);
        parts.push(format!("from={}", encode_query_component(&text)));
    }
    if let Some(until) = q.until {
        parts.push(format!("before={until}"));
    }
    parts.push(format!("limit={}", q.limit));
    parts.join("&")
}

/// The target (module docs).
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let q = match ListQuery::parse(&text) {
        Ok(q) => q,
        Err(e) => {
            assert_eq!(e.code(), "validation_error", "{text:?}: {e}");
            return;
        }
    };
    assert!((1..=MAX_LIMIT).contains(&q.limit), "{text:?}: {q:?}");
    assert!(q.tags.len() <= 32, "{text:?}: {q:?}");
    assert!(q.tags.windows(2).all(|w| w[0] < w[1]), "{text:?}: {q:?}");
    assert!(q.tags.iter().all(|t| valid_tag(t)), "{text:?}: {q:?}");
    if let Some(t) = &q.trace_id {
        assert!(
            !t.is_empty() && *t == t.to_ascii_lowercase() && t == t.trim(),
            "{text:?}: {q:?}"
        );
    }
    let again = render(&q);
    match ListQuery::parse(&again) {
        Ok(back) => assert_eq!(back, q, "{text:?} → {again:?}"),
        Err(e) => panic!("{text:?} parsed to {q:?}, but its rendering {again:?} fails: {e}"),
    }
}
