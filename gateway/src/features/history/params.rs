//! The list routes' query parameters (`tag`, `trace_id`, `from`, `to`, `before`, `limit`) and
//! the tag rules for clickstream events.
//!
//! `tag` filters follow exactly the rules the query route applied when it stored the tags
//! ([`crate::core::record::search_context`]: split on commas, trimmed, empties dropped, at most 32
//! tags of at most 128 bytes of `[A-Za-z0-9:_\-./=+]`, sorted and deduplicated); a filter that
//! breaks them is a 422. `from` is inclusive and `to` exclusive (RFC 3339); `before` is a
//! `timestamp_nanos` cursor, strictly older. An empty value means "not given".

use http::{HeaderMap, HeaderValue};

use super::entry::{Record, parse_rfc3339};
use crate::core::error::GatewayError;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size; larger requests are capped.
pub const MAX_LIMIT: usize = 500;
/// Tags kept per clickstream event.
const MAX_TAGS: usize = 32;

/// A parsed list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Every one must be on a record (AND).
    pub tags: Vec<String>,
    /// Lowercase hex, matched exactly.
    pub trace_id: Option<String>,
    /// Inclusive lower bound (epoch nanoseconds).
    pub from: Option<u64>,
    /// Exclusive upper bound: the smaller of `to` and `before`.
    pub until: Option<u64>,
    pub limit: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            tags: Vec::new(),
            trace_id: None,
            from: None,
            until: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl ListQuery {
    /// Parses a raw (still percent-encoded) query string.
    pub fn parse(query: &str) -> Result<ListQuery, GatewayError> {
        let bad = |m: String| GatewayError::Validation(m);
        let mut q = ListQuery::default();
        let mut tag_values: Vec<String> = Vec::new();
        for kv in query.split('&').filter(|kv| !kv.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = crate::core::params::decode_query_component(v);
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            match crate::core::params::decode_query_component(k).as_str() {
                "tag" => tag_values.push(v.to_string()),
                "trace_id" => q.trace_id = Some(v.to_ascii_lowercase()),
                "from" => {
                    q.from =
                        Some(parse_rfc3339(v).ok_or_else(|| {
                            bad(format!("from must be an RFC 3339 time, got {v:?}"))
                        })?);
                }
                "to" => {
                    let to = parse_rfc3339(v)
                        .ok_or_else(|| bad(format!("to must be an RFC 3339 time, got {v:?}")))?;
                    q.until = Some(q.until.map_or(to, |u| u.min(to)));
                }
                "before" => {
                    let before: u64 = v.parse().map_err(|_| {
                        bad(format!(
                            "before must be a timestamp_nanos cursor (a decimal integer), got {v:?}"
                        ))
                    })?;
                    q.until = Some(q.until.map_or(before, |u| u.min(before)));
                }
                "limit" => {
                    let n: usize = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        bad(format!("limit must be a positive integer, got {v:?}"))
                    })?;
                    q.limit = n.min(MAX_LIMIT);
                }
                // Other parameters are ignored, like every Layer list route does.
                _ => {}
            }
        }
        if !tag_values.is_empty() {
            q.tags = filter_tags(&tag_values.join(","))?;
        }
        Ok(q)
    }

    /// Whether a record passes the filters and bounds.
    pub fn accepts<R: Record>(&self, r: &R) -> bool {
        let n = r.nanos();
        self.from.is_none_or(|f| n >= f)
            && self.until.is_none_or(|u| n < u)
            && self
                .trace_id
                .as_deref()
                .is_none_or(|t| r.trace_id() == Some(t))
            && self.tags.iter().all(|t| r.tags().contains(t))
    }
}

/// A `tag` filter, under exactly the query route's rules (422 when it breaks them).
fn filter_tags(joined: &str) -> Result<Vec<String>, GatewayError> {
    let value = HeaderValue::from_str(joined).map_err(|_| {
        GatewayError::Validation(
            "tag has a character outside ASCII letters, digits and : _ - . / = +".into(),
        )
    })?;
    let mut headers = HeaderMap::new();
    headers.insert(crate::core::record::TAGS, value);
    Ok(crate::core::record::search_context(&headers)?.tags)
}

fn valid_tag(t: &str) -> bool {
    t.len() <= 128
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_-./=+".contains(&b))
}

/// A fetch's `x-hevlayer-tags`, normalised like the query route's, except that the fetch was
/// already served: invalid tags are dropped instead of failing anything.
pub fn lenient_tags<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for v in values {
        // Valid tags are ASCII: a header that is not UTF-8 has none worth keeping in its odd bytes.
        let text = String::from_utf8_lossy(v.as_bytes());
        tags.extend(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty() && valid_tag(t))
                .map(str::to_string),
        );
    }
    tags.sort();
    tags.dedup();
    tags.truncate(MAX_TAGS);
    tags
}

#[cfg(test)]
mod tests {
    use super::super::entry::{ClickEvent, rfc3339};
    use super::*;

    fn click(n: u64, trace: &str, tags: &[&str]) -> ClickEvent {
        ClickEvent {
            timestamp: rfc3339(n),
            timestamp_nanos: n,
            trace_id: trace.into(),
            namespace: "ns".into(),
            doc_id: "d".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            source: "fetch".into(),
            served_from: "cache".into(),
        }
    }

    #[test]
    fn parses_every_parameter() {
        let q = ListQuery::parse(
            "tag=route%3Asearch%2Capp%3Ahev&tag=page:first&from=2025-05-22T08:00:00Z\
             &to=2025-05-22T09:00:00Z&before=1747902000000000000&limit=20&trace_id=ABC&x=1",
        )
        .unwrap();
        assert_eq!(q.tags, ["app:hev", "page:first", "route:search"]);
        assert_eq!(q.trace_id.as_deref(), Some("abc"));
        assert_eq!(q.from, Some(1_747_900_800_000_000_000));
        assert_eq!(q.until, Some(1_747_902_000_000_000_000), "before < to wins");
        assert_eq!(q.limit, 20);
    }

    #[test]
    fn defaults_caps_and_empty_values() {
        assert_eq!(ListQuery::parse("").unwrap(), ListQuery::default());
        let q = ListQuery::parse("tag=&limit=&from=&before=").unwrap();
        assert_eq!(q, ListQuery::default(), "an empty value means not given");
        assert_eq!(ListQuery::parse("limit=100000").unwrap().limit, MAX_LIMIT);
        assert_eq!(
            ListQuery::parse("to=2025-05-22T09:00:00Z&before=1747990000000000000")
                .unwrap()
                .until,
            Some(1_747_904_400_000_000_000),
            "to < before wins"
        );
    }

    #[test]
    fn bad_values_are_422() {
        for q in [
            "limit=0",
            "limit=-1",
            "limit=ten",
            "before=abc",
            "from=yesterday",
            "to=2025-13-01T00:00:00Z",
            "tag=bad%20tag",
            "tag=a%01b",
            &format!("tag={}", "x".repeat(129)),
            &format!(
                "tag={}",
                (0..33)
                    .map(|i| format!("t{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ] {
            let e = ListQuery::parse(q).unwrap_err();
            assert_eq!(e.code(), "validation_error", "{q}");
        }
    }

    #[test]
    fn filters_are_and_and_bounds_are_half_open() {
        let q =
            ListQuery::parse("tag=a,b&trace_id=t1&from=1970-01-01T00:00:00.000000010Z&before=20")
                .unwrap();
        assert!(q.accepts(&click(10, "t1", &["a", "b", "c"])));
        assert!(q.accepts(&click(19, "t1", &["a", "b"])));
        assert!(
            !q.accepts(&click(20, "t1", &["a", "b"])),
            "before is strict"
        );
        assert!(
            !q.accepts(&click(9, "t1", &["a", "b"])),
            "from is inclusive"
        );
        assert!(!q.accepts(&click(15, "t1", &["a"])), "every tag must match");
        assert!(!q.accepts(&click(15, "t2", &["a", "b"])));
    }

    #[test]
    fn fetch_tags_are_normalised_leniently() {
        let values = [
            HeaderValue::from_static(" session:abc , b,,bad tag,b"),
            HeaderValue::from_static("a"),
        ];
        assert_eq!(lenient_tags(&values), ["a", "b", "session:abc"]);
        assert!(lenient_tags(&[]).is_empty());
    }
}
