//! Percent-decoding and the query-string parser (`gateway::core::params`) against
//! straightforward references written from the rules: a path segment decodes `%XX` only (`+`
//! stays a plus, a bad or truncated escape stays literal, invalid UTF-8 becomes U+FFFD); a
//! query component also turns `+` into a space; encoding then decoding gives the text back; and
//! the query-string parser keeps the last non-empty value of each key.

use std::borrow::Cow;
use std::collections::HashMap;

use layer_gateway::fuzzing::{
    decode_path_segment, decode_query_component, encode_query_component, parse_query,
};

fn hex(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The reference decoder: one pass over the bytes.
#[must_use]
pub fn reference_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let escape = (b[i] == b'%')
            .then(|| Some((hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?)))
            .flatten();
        if let Some((h, l)) = escape {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(if plus_is_space && b[i] == b'+' {
                b' '
            } else {
                b[i]
            });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reference query-string parser.
#[must_use]
pub fn reference_query(q: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for kv in q.split('&') {
        if kv.is_empty() {
            continue;
        }
        let (k, v) = match kv.find('=') {
            Some(i) => (&kv[..i], &kv[i + 1..]),
            None => (kv, ""),
        };
        let v = reference_decode(v, true);
        if !v.is_empty() {
            out.insert(reference_decode(k, true), v);
        }
    }
    out
}

/// The target (module docs).
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let s = text.as_ref();
    let path = decode_path_segment(s);
    assert_eq!(path, reference_decode(s, false), "path segment {s:?}");
    assert_eq!(
        matches!(path, Cow::Borrowed(_)),
        !s.contains('%'),
        "a segment without % is borrowed as is: {s:?}"
    );
    assert_eq!(
        decode_query_component(s),
        reference_decode(s, true),
        "query component {s:?}"
    );
    let encoded = encode_query_component(s);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)),
        "encoded {s:?} as {encoded:?}"
    );
    assert_eq!(decode_query_component(&encoded), s, "round trip of {s:?}");
    assert_eq!(decode_path_segment(&encoded), s, "path round trip of {s:?}");
    assert_eq!(parse_query(s), reference_query(s), "query string {s:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_decoder_follows_the_rules() {
        assert_eq!(reference_decode("a+b%2Fc%2f%zz%4", false), "a+b/c/%zz%4");
        assert_eq!(reference_decode("a+b%20", true), "a b ");
        assert_eq!(reference_decode("%FF%41", false), "\u{FFFD}A");
        let q = reference_query("a=1&&a=2&b=&c&d=x+y");
        assert_eq!(q.len(), 2);
        assert_eq!(q["a"], "2");
        assert_eq!(q["d"], "x y");
    }
}
