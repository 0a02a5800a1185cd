//! Reading an object's leading members in place: the keys and scalar values at the front of a
//! row, without a parser, a padded copy or an allocation. Start at [`leading_scalars`].
//!
//! Upstream rows lead with `id` and then `$dist` / `$score`, and what reads a row (the merge's
//! sort keys, search history's served ids) usually needs nothing behind them. This reads members
//! while their keys need no unescaping and their values are scalars (a string, a number, `true`,
//! `false`, `null`), and says when it met anything else, so the caller can fall back to a real
//! parser from the start. The text is expected to be JSON a parser already accepted (the whole
//! answer was validated or skipped by sonic-rs): this does not validate it again, it only
//! refuses what it does not read the same way a parser would.

/// How a scan ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// The visitor asked to stop.
    Stopped,
    /// The object ended: every member was read.
    Ended,
    /// A member could not be read in place (a nested value, a key with escapes, text that is
    /// not an object): the caller reads the row with a parser instead.
    Fallback,
}

/// Calls `visit(key, value)` for the members of the JSON object `text` in order (`value` is the
/// scalar's raw text, quotes included for a string) until `visit` returns `false`, the object
/// ends, or a member cannot be read in place.
pub fn leading_scalars<'a>(text: &'a str, mut visit: impl FnMut(&'a str, &'a str) -> bool) -> Scan {
    let b = text.as_bytes();
    let Some(mut i) = skip_ws(b, 0).filter(|&i| b[i] == b'{') else {
        return Scan::Fallback;
    };
    i += 1;
    let mut first = true;
    loop {
        let Some(at) = skip_ws(b, i) else {
            return Scan::Fallback;
        };
        i = at;
        if first && b[i] == b'}' {
            return Scan::Ended;
        }
        first = false;
        // The key: a string with no escape.
        if b[i] != b'"' {
            return Scan::Fallback;
        }
        let Some(len) = b[i + 1..].iter().position(|&c| c == b'"' || c == b'\\') else {
            return Scan::Fallback;
        };
        if b[i + 1 + len] == b'\\' {
            return Scan::Fallback;
        }
        let key = &text[i + 1..i + 1 + len];
        i += len + 2;
        match skip_ws(b, i) {
            Some(at) if b[at] == b':' => i = at + 1,
            _ => return Scan::Fallback,
        }
        let Some(start) = skip_ws(b, i) else {
            return Scan::Fallback;
        };
        let Some(end) = scalar_end(b, start) else {
            return Scan::Fallback;
        };
        let value = &text[start..end];
        // What follows a value: `,` and another member, or the end of the object.
        let next = match skip_ws(b, end) {
            Some(at) if matches!(b[at], b',' | b'}') => at,
            _ => return Scan::Fallback,
        };
        if !visit(key, value) {
            return Scan::Stopped;
        }
        if b[next] == b'}' {
            return Scan::Ended;
        }
        i = next + 1;
    }
}

/// The index of the first non-whitespace byte at or after `i`, if the text goes on.
fn skip_ws(b: &[u8], i: usize) -> Option<usize> {
    let at = crate::validate::skip_ws(b, i);
    (at < b.len()).then_some(at)
}

/// The end of the scalar starting at `b[i]`; `None` for a container or anything unexpected.
fn scalar_end(b: &[u8], i: usize) -> Option<usize> {
    match b[i] {
        b'"' => {
            let mut j = i + 1;
            loop {
                match b.get(j)? {
                    b'\\' => j += 2,
                    b'"' => return Some(j + 1),
                    _ => j += 1,
                }
            }
        }
        b'-' | b'0'..=b'9' => {
            let n = b[i..]
                .iter()
                .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                .unwrap_or(b.len() - i);
            Some(i + n)
        }
        _ => ["true", "false", "null"]
            .iter()
            .find(|lit| b[i..].starts_with(lit.as_bytes()))
            .map(|lit| i + lit.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every member read in place, and how the scan ended.
    fn all(text: &str) -> (Vec<(&str, &str)>, Scan) {
        let mut seen = Vec::new();
        let end = leading_scalars(text, |k, v| {
            seen.push((k, v));
            true
        });
        (seen, end)
    }

    #[test]
    fn scalars_are_read_until_the_end_or_a_nested_value() {
        assert_eq!(
            all(r#" { "id" : "a\"b" ,"$dist":-1.5e3,"ok":true,"n":null,"f":false } "#),
            (
                vec![
                    ("id", r#""a\"b""#),
                    ("$dist", "-1.5e3"),
                    ("ok", "true"),
                    ("n", "null"),
                    ("f", "false")
                ],
                Scan::Ended
            )
        );
        assert_eq!(all("{}"), (vec![], Scan::Ended));
        assert_eq!(
            all(r#"{"id":7,"v":[1,2],"$dist":0.5}"#),
            (vec![("id", "7")], Scan::Fallback)
        );
    }

    #[test]
    fn what_a_parser_would_read_differently_falls_back() {
        for text in [
            r#"{"i\u0064":1}"#,
            r#"{"id":1"#,
            r#"{"id":"open"#,
            r#"{"id":12x}"#,
            r#"{"id":nul}"#,
            r#"{"id":{"k":1}}"#,
            r#"{"id" 1}"#,
            r#"{,}"#,
            "[1]",
            "",
        ] {
            assert_eq!(all(text).1, Scan::Fallback, "{text}");
        }
    }

    #[test]
    fn the_visitor_stops_the_scan() {
        let mut n = 0;
        let end = leading_scalars(r#"{"a":1,"b":2,"c":3}"#, |_, _| {
            n += 1;
            n < 2
        });
        assert_eq!((end, n), (Scan::Stopped, 2));
    }
}

#[cfg(test)]
mod agree {
    use super::*;
    use proptest::prelude::*;

    /// A scalar's JSON text.
    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            Just("true".to_string()),
            Just("null".to_string()),
        ]
    }

    proptest! {
        /// On any object of scalars (keys with and without escapes, any spacing), the members
        /// read in place are exactly sonic-rs's, up to where the scan fell back.
        #[test]
        fn in_place_members_match_the_parser(
            members in proptest::collection::vec(("[a-z$]{1,4}|i\\\\u0064", scalar()), 0..6),
            ws in "[ \n]{0,2}",
        ) {
            let body: Vec<String> = members
                .iter()
                .enumerate()
                .map(|(i, (k, v))| format!("{ws}\"{k}{i}\"{ws}:{ws}{v}{ws}"))
                .collect();
            let text = format!("{{{}}}", body.join(","));
            let parsed: Vec<(String, String)> = sonic_rs::to_object_iter(text.as_str())
                .map(|m| {
                    let (k, v) = m.unwrap();
                    (k.to_string(), v.as_raw_str().trim().to_string())
                })
                .collect();
            let (read, end) = {
                let mut read = Vec::new();
                let end = leading_scalars(&text, |k, v| {
                    read.push((k.to_string(), v.to_string()));
                    true
                });
                (read, end)
            };
            prop_assert_eq!(&parsed[..read.len()], &read[..]);
            if end == Scan::Ended {
                prop_assert_eq!(read.len(), parsed.len());
            }
        }
    }
}
