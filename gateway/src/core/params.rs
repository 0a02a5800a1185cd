//! Percent-decoding with the right rules for each part of a URL: a path segment keeps `+` as a
//! literal plus (RFC 3986), a query-string value turns `+` into a space (form encoding); and
//! the query-string parser every list route uses.

use std::borrow::Cow;
use std::collections::HashMap;

/// Decodes a path segment: `%XX` escapes only; `+` stays `+`. Invalid escapes are kept as is;
/// bytes that do not form UTF-8 are replaced (U+FFFD), so such an id matches nothing.
pub fn decode_path_segment(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(decode(s, false))
}

/// Decodes a query-string key or value: `%XX` escapes, and `+` as a space.
pub fn decode_query_component(s: &str) -> String {
    decode(s, true)
}

fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Query-string parameters, decoded; parameters with an empty value are left out (Layer's list
/// routes treat an empty value as "not given").
pub fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = decode_query_component(v);
            (!v.is_empty()).then(|| (decode_query_component(k), v))
        })
        .collect()
}

/// Percent-encodes a query-string value (unreserved characters kept).
pub fn encode_query_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_keep_plus_and_query_values_do_not() {
        assert_eq!(decode_path_segment("a+b"), "a+b");
        assert_eq!(decode_path_segment("a%2Bb"), "a+b");
        assert_eq!(decode_path_segment("a%20b"), "a b");
        assert_eq!(decode_path_segment("scan%2D2"), "scan-2");
        assert_eq!(decode_query_component("a+b"), "a b");
        assert_eq!(decode_query_component("a%2Bb"), "a+b");
        // Invalid or truncated escapes stay literal.
        assert_eq!(decode_path_segment("100%"), "100%");
        assert_eq!(decode_path_segment("%zz"), "%zz");
        assert_eq!(decode_path_segment("%4"), "%4");
        assert_eq!(decode_path_segment("%41"), "A");
    }

    #[test]
    fn query_strings() {
        let q = parse_query("prefix=a%2Fb&cursor=&page_size=5&tag=a+b");
        assert_eq!(q.get("prefix").map(String::as_str), Some("a/b"));
        assert!(!q.contains_key("cursor"));
        assert_eq!(q.get("tag").map(String::as_str), Some("a b"));
        assert_eq!(encode_query_component("a b/c"), "a%20b%2Fc");
    }
}
