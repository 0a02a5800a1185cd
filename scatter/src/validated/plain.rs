//! [`PlainMembers`]: the top-level members of a [`super::Validated`] object without a backslash,
//! found by a structural scan that checks nothing.
//!
//! The proof says the text is one valid object with no key repeated, so finding where each member
//! starts and ends needs only the structural bytes: a string runs to the next `"` (there is no
//! escape to skip), an array or object to the bracket that balances its own kind (the other kind
//! nests properly inside it), and a number or literal to the first byte that ends a token. Those
//! bytes are found with `memchr`'s vectorised search, so a long vector of numbers costs a few
//! instructions per 32 bytes where the checking walk ([`crate::raw`]) reads every digit. Start at
//! [`super::Validated::plain_members`].
//!
//! Text that is not valid (impossible through the type, unless a constructor's promise was
//! broken) yields wrong spans or stops early; it never panics or reads out of bounds.

use crate::raw::skip_ws;

/// Iterator over `(key, value)` text spans of a validated, backslash-free object, in document
/// order: the key without its quotes, the value exactly as written.
#[derive(Clone, Debug)]
pub struct PlainMembers<'a> {
    text: &'a [u8],
    /// Where the next member (or the closing brace) starts; `None` once finished.
    at: Option<usize>,
}

impl<'a> PlainMembers<'a> {
    /// The members of `text`, an object validated whole that holds no backslash.
    pub(super) fn new(text: &'a [u8]) -> Self {
        let open = skip_ws(text, 0);
        let at = (text.get(open) == Some(&b'{')).then_some(open + 1);
        PlainMembers { text, at }
    }

    /// The member starting at `at`: its key, its value and where the next one starts (`None`
    /// after the last).
    fn member(&self, at: usize) -> Option<(&'a [u8], &'a [u8], Option<usize>)> {
        let t = self.text;
        let key_open = skip_ws(t, at);
        if t.get(key_open) != Some(&b'"') {
            return None;
        }
        let key_start = key_open + 1;
        let key_after = after_string(t, key_start)?;
        let key_end = key_after - 1;
        let colon = skip_ws(t, key_after);
        let start = skip_ws(t, colon + 1);
        let end = value_end(t, start)?;
        let after = skip_ws(t, end);
        let next = (t.get(after) == Some(&b',')).then_some(after + 1);
        Some((t.get(key_start..key_end)?, t.get(start..end)?, next))
    }
}

impl<'a> Iterator for PlainMembers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.at.take()?;
        let (key, value, next) = self.member(at)?;
        self.at = next;
        Some((key, value))
    }
}

/// The end (exclusive) of the value starting at `t[start]` in valid, backslash-free JSON.
fn value_end(t: &[u8], start: usize) -> Option<usize> {
    match *t.get(start)? {
        b'"' => after_string(t, start + 1),
        open @ (b'[' | b'{') => {
            let close = if open == b'[' { b']' } else { b'}' };
            let mut depth = 1usize;
            let mut i = start + 1;
            loop {
                let at = i + memchr::memchr3(open, close, b'"', t.get(i..)?)?;
                i = at + 1;
                match t[at] {
                    b'"' => i = after_string(t, i)?,
                    b if b == open => depth += 1,
                    _ => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i);
                        }
                    }
                }
            }
        }
        _ => {
            let rest = t.get(start..)?;
            let len = rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(rest.len());
            (len > 0).then_some(start + len)
        }
    }
}

/// Just past the `"` that closes the string whose text starts at `t[from]` (no escapes).
fn after_string(t: &[u8], from: usize) -> Option<usize> {
    Some(from + memchr::memchr(b'"', t.get(from..)?)? + 1)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use crate::raw::agree::json_with;
    use crate::{Limits, Validated};

    /// `(key, value)` spans as text.
    fn plain(text: &str) -> Option<Vec<(String, String)>> {
        let v = Validated::check(text.as_bytes(), &Limits::default()).expect("valid");
        let members = v.plain_members()?;
        Some(
            members
                .map(|(k, v)| {
                    let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
                    (s(k), s(v))
                })
                .collect(),
        )
    }

    /// The members the checking walk reads (`parse_top`), as `(key, raw value)`.
    fn walked(text: &str) -> Vec<(String, String)> {
        crate::validate::parse_top(text.as_bytes(), &Limits::default())
            .expect("valid")
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_raw_str().to_string()))
            .collect()
    }

    /// Keys and strings dense in the bytes that end or nest values elsewhere.
    const STRINGS: &str = "[a-z\\[\\]{}:, é]{0,6}";

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn spans_are_found_over_nesting_strings_and_whitespace() {
        assert_eq!(plain("{}"), Some(vec![]));
        assert_eq!(plain(" { } "), Some(vec![]));
        let text = concat!(
            " {\n \"a\" : 1 ,\"b\":[1,[2,{\"x\":\"]\"}],\"[\"] ,",
            "\"c\":{\"d\":\"}\",\"e\":{}},\"s\":\"{[,\",\"t\":true,\"n\":null,\"f\":-1.5e3\t} ",
        );
        let expected = pairs(&[
            ("a", "1"),
            ("b", r#"[1,[2,{"x":"]"}],"["]"#),
            ("c", r#"{"d":"}","e":{}}"#),
            ("s", r#""{[,""#),
            ("t", "true"),
            ("n", "null"),
            ("f", "-1.5e3"),
        ]);
        assert_eq!(plain(text), Some(expected.clone()));
        assert_eq!(walked(text), expected);
    }

    #[test]
    fn a_backslash_anywhere_gives_none() {
        assert_eq!(plain(r#"{"a":"x\"y"}"#), None);
        assert_eq!(plain(r#"{"k\u0041":1}"#), None);
        assert_eq!(plain(r#"{"a":["\\"]}"#), None);
    }

    proptest! {
        /// Any object whose text has no backslash, compact or pretty, with strings dense in
        /// brackets, braces, commas and colons: the spans are the checking walk's members.
        #[test]
        fn spans_are_the_walks_members(
            m in prop::collection::vec((STRINGS, json_with(STRINGS.prop_map(String::from))), 0..8),
            pretty in any::<bool>(),
        ) {
            let v = Value::Object(m.into_iter().collect());
            let text = if pretty {
                serde_json::to_string_pretty(&v)
            } else {
                serde_json::to_string(&v)
            }
            .unwrap();
            match plain(&text) {
                Some(spans) => prop_assert_eq!(spans, walked(&text)),
                None => prop_assert!(text.contains('\\'), "{}", text),
            }
        }

        /// Any text after an opening brace (a broken promise, scanned since it has no
        /// backslash): no panic, and the listing ends, each member taking at least one byte.
        #[test]
        fn any_text_never_panics_and_ends(
            parts in prop::collection::vec(prop_oneof![
                // Whole members and separators, so listings run long...
                prop::sample::select(vec![
                    r#""k":1"#, r#""k":[1,"]"]"#, r#""k":{"a":"}"}"#, r#""k":"s""#, ",", " ",
                ]).prop_map(String::from),
                // ...and stray structural bytes and words, so they also break anywhere.
                prop::sample::select(vec!["{", "}", "[", "]", "\"", ":", "1", "a"])
                    .prop_map(String::from),
                "[a-z0-9]{0,3}",
            ], 0..24),
        ) {
            let text = format!("{{{}", parts.concat());
            let kept = Validated::kept(text.as_bytes());
            let members = kept.plain_members();
            // At most one member per byte (a listing that stopped advancing would go on).
            let listed = members.map(|m| m.take(text.len() + 1).count());
            prop_assert!(listed.is_some_and(|n| n <= text.len()), "{}", text);
        }
    }
}
