//! Keeping secrets out of what the configuration prints: `Debug` of a secret field shows only
//! whether it is set ([`RedactedOption`]), URLs lose their `user:password@`
//! ([`redact_userinfo`]), and a file's parse error does not repeat the values it quotes
//! ([`hide_quoted_values`]).

use std::borrow::Cow;
use std::fmt;

/// How a secret prints in `Debug`.
pub(super) const REDACTED: &str = "<redacted>";

/// `Some(<redacted>)` or `None`: whether a secret is set, never its value.
pub(super) struct RedactedOption<'a, T>(pub &'a Option<T>);

impl<T> fmt::Debug for RedactedOption<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => write!(f, "Some({REDACTED})"),
            None => f.write_str("None"),
        }
    }
}

/// The authority part of `url` (after `scheme://` when there is one, up to the path, query or
/// fragment).
fn authority(url: &str) -> (usize, &str) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (start, &rest[..end])
}

/// Whether `url` carries credentials in its authority (`user:password@host`).
pub fn has_userinfo(url: &str) -> bool {
    authority(url).1.contains('@')
}

/// `url` with the userinfo of its authority (`user:password@`) replaced by `***@`, for messages
/// and `Debug`; unchanged (borrowed) when it has none.
pub fn redact_userinfo(url: &str) -> Cow<'_, str> {
    let (start, auth) = authority(url);
    match auth.rfind('@') {
        Some(at) => Cow::Owned(format!("{}***{}", &url[..start], &url[start + at..])),
        None => Cow::Borrowed(url),
    }
}

/// A `serde` error message with the values it quotes from the file hidden: `string "…"` (an
/// unexpected or invalid string) and ``unknown variant `…` ``. The key path, line and column in
/// the message still say where the value is, but a misplaced secret (`credential: tpuf_…`
/// instead of `credential: {value: tpuf_…}`) is not repeated on stderr. Keys stay visible
/// (``unknown field `shardz` `` names a typo, not a value).
pub(super) fn hide_quoted_values(msg: &str) -> String {
    const MARKERS: [(&str, char); 2] = [("string \"", '"'), ("unknown variant `", '`')];
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some((i, marker, close)) = MARKERS
        .iter()
        .filter_map(|&(m, close)| rest.find(m).map(|i| (i, m, close)))
        .min_by_key(|&(i, ..)| i)
    {
        out.push_str(&rest[..i + marker.len()]);
        out.push_str("<hidden>");
        let value = &rest[i + marker.len()..];
        // The closing delimiter; a string is Debug-escaped, so `\"` does not close it.
        let mut escaped = false;
        let end = value.char_indices().find_map(|(j, c)| {
            let closes = !escaped && c == close;
            escaped = !escaped && c == '\\' && close == '"';
            closes.then_some(j)
        });
        match end {
            Some(j) => {
                out.push(close);
                rest = &value[j + close.len_utf8()..];
            }
            // Unterminated: nothing after it can be trusted to be free of the value.
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_found_and_masked() {
        for (url, masked) in [
            (
                "https://u:p@host:443/x?y=z@w",
                "https://***@host:443/x?y=z@w",
            ),
            ("http://p@host", "http://***@host"),
            ("http://a@b:c@host/", "http://***@host/"),
            ("u:p@host/path", "***@host/path"),
        ] {
            assert!(has_userinfo(url), "{url}");
            assert_eq!(redact_userinfo(url), masked);
        }
        for url in [
            "https://host/x@y",
            "http://host?q=a@b",
            "http://host#a@b",
            "host",
        ] {
            assert!(!has_userinfo(url), "{url}");
            assert!(matches!(redact_userinfo(url), Cow::Borrowed(u) if u == url));
        }
    }

    #[test]
    fn quoted_values_are_hidden() {
        for (msg, want) in [
            (
                "vectorStore.credential: invalid type: string \"tpuf_SECRET\", expected struct Credential at line 2 column 15",
                "vectorStore.credential: invalid type: string \"<hidden>\", expected struct Credential at line 2 column 15",
            ),
            (
                r#"a: invalid value: string "x\"SECRET\\", expected z"#,
                r#"a: invalid value: string "<hidden>", expected z"#,
            ),
            (
                "k[0].scopes[0]: unknown variant `hvl_SECRET`, expected one of `read`, `write`",
                "k[0].scopes[0]: unknown variant `<hidden>`, expected one of `read`, `write`",
            ),
            (
                "c: unknown field `valu`, expected `value` or `env`; string \"SECRET\"",
                "c: unknown field `valu`, expected `value` or `env`; string \"<hidden>\"",
            ),
            ("cut: string \"SECRET and more", "cut: string \"<hidden>"),
            (
                "a.b: invalid type: sequence, expected a string at line 3 column 12",
                "a.b: invalid type: sequence, expected a string at line 3 column 12",
            ),
        ] {
            assert_eq!(hide_quoted_values(msg), want);
        }
    }
}
