//! Whole-body validation: the safety gate every rewrite goes through first.
//!
//! A rewrite that only looked at the keys it edits would be unsafe: `{"filters":A,"filters":B}`
//! lets a caller hide a second filter from the gateway if upstream keeps the last copy, and a
//! malformed tail could be read differently upstream. So before any splice the body must:
//!
//! 1. be at most [`Limits::max_body_bytes`] long ([`RewriteError::Oversize`], 413);
//! 2. nest arrays and objects at most [`Limits::effective_max_depth`] deep
//!    ([`RewriteError::TooDeep`]). This is checked by a byte scan *before* sonic-rs runs, because
//!    sonic-rs's validating skip recurses once per level and has no depth limit of its own. The
//!    same scan checks every string escape (`\uXXXX` needs four hex digits, which sonic-rs's skip
//!    does not check);
//! 3. start with `{` ([`RewriteError::NotAnObject`]);
//! 4. be valid JSON to the last byte: sonic-rs's serde deserializer reads the top-level object
//!    with its strict skip of every value (UTF-8, strings, escapes, numbers); we then check that
//!    only whitespace follows the closing `}`, which reading one value does not;
//! 5. repeat no key in any object at any depth, comparing keys after unescaping, so
//!    `"filt\u0065rs"` collides with `"filters"` ([`RewriteError::DuplicateKey`]).
//!
//! `parse_top` returns the validated top-level entries so the rewriters don't parse twice. Keys
//! are borrowed from the body unless they hold an escape ([`members`]; sonic-rs's lazy object
//! iterator would copy every key into a `String`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use smallvec::SmallVec;
use sonic_rs::{LazyValue, to_object_iter};

use crate::splice::span_of;
use crate::{Limits, RewriteError};

/// One validated top-level member: unescaped key and its lazily parsed value.
pub type Entry<'a> = (Cow<'a, str>, LazyValue<'a>);

/// An object's members in document order. Request bodies have a handful of top-level members:
/// up to eight are held inline, so reading a body's top level does not allocate (each pass over
/// a query did, once per pass).
pub type Entries<'a> = SmallVec<[Entry<'a>; 8]>;

/// Validates `body` as a whole (see the module docs for every rule).
///
/// # Errors
/// [`RewriteError::Oversize`], [`RewriteError::TooDeep`], [`RewriteError::NotAnObject`],
/// [`RewriteError::InvalidJson`] or [`RewriteError::DuplicateKey`].
pub fn validate(body: &[u8], limits: &Limits) -> Result<(), RewriteError> {
    parse_top(body, limits).map(|_| ())
}

/// An object's members in document order, keys lent from the text where possible. sonic-rs's
/// lazy object iterator copies every key into a `String`; its serde deserializer reads the same
/// grammar with the same strict value skip and lends unescaped keys. That path is taken when the
/// text is valid UTF-8 and holds no backslash at all: its lazy values are then always borrowed
/// (an escaped value would come back as an owned copy, which span-based splicing cannot use),
/// and its `as_str` of a value never sees invalid UTF-8. Any other text goes through the lazy
/// iterator. Stops after the object's closing `}` (the caller checks what follows).
pub fn members(text: &[u8]) -> Result<Entries<'_>, sonic_rs::Error> {
    let mut out = Entries::new();
    members_into(text, &mut out)?;
    Ok(out)
}

/// [`members`] into `out`, filled in place: the members held inline are not copied through
/// the deserializer's return values.
fn members_into<'a>(text: &'a [u8], out: &mut Entries<'a>) -> Result<(), sonic_rs::Error> {
    match std::str::from_utf8(text) {
        Ok(s) if !text.contains(&b'\\') => {
            let mut de = sonic_rs::Deserializer::from_str(s);
            serde::Deserializer::deserialize_map(&mut de, Fill(out))
        }
        _ => {
            for member in to_object_iter(text) {
                out.push(member?);
            }
            Ok(())
        }
    }
}

/// Pushes an object's members onto the entries it holds.
struct Fill<'x, 'a>(&'x mut Entries<'a>);

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for Fill<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(k)) = map.next_key()? {
            let v: LazyValue<'de> = map.next_value()?;
            self.0.push((k, v));
        }
        Ok(())
    }
}

/// Validates `body` (every rule in the module docs) and returns its top-level members in
/// document order.
///
/// # Errors
/// As [`validate`].
pub fn parse_top<'a>(body: &'a [u8], limits: &Limits) -> Result<Entries<'a>, RewriteError> {
    if body.len() > limits.max_body_bytes {
        return Err(RewriteError::Oversize {
            len: body.len(),
            max: limits.max_body_bytes,
        });
    }
    let open = object_start(body)?;
    check_depth(body, limits.effective_max_depth())?;

    let mut entries = Entries::new();
    members_into(body, &mut entries).map_err(|e| json_error(&e, false))?;
    let mut repeats = Repeats::new(entries.len());
    for (i, (key, value)) in entries.iter().enumerate() {
        if repeats.at(&entries, i) {
            return Err(RewriteError::DuplicateKey {
                key: key.to_string(),
                path: "the top-level object".into(),
            });
        }
        check_value(value.clone()).map_err(|w| w.into_error(Seg::Key(key.as_ref())))?;
    }

    // Reading the object stops at its closing `}` without looking further: check the tail.
    let end = match entries.last() {
        Some((_, last)) => span_of(body, last)?.end,
        None => open + 1,
    };
    let close = skip_ws(body, end);
    if body.get(close) != Some(&b'}') {
        return Err(RewriteError::Internal {
            message: "object iterator ended before the closing brace",
        });
    }
    let tail = skip_ws(body, close + 1);
    if tail < body.len() {
        return Err(RewriteError::InvalidJson {
            message: format!("trailing characters after the top-level object at byte {tail}"),
        });
    }
    Ok(entries)
}

/// The top-level members of a body validated whole before ([`crate::Validated`]): only the top
/// level is walked.
pub(crate) fn top_members(body: &[u8]) -> Result<Entries<'_>, RewriteError> {
    object_start(body)?;
    let mut entries = Entries::new();
    members_into(body, &mut entries).map_err(|e| json_error(&e, false))?;
    Ok(entries)
}

/// Where the top-level object opens: 422 for an empty body or one that is not an object.
fn object_start(body: &[u8]) -> Result<usize, RewriteError> {
    let open = skip_ws(body, 0);
    match body.get(open) {
        Some(b'{') => Ok(open),
        None => Err(RewriteError::InvalidJson {
            message: "empty request body".into(),
        }),
        Some(_) => Err(RewriteError::NotAnObject),
    }
}

/// Index of the first non-whitespace byte at or after `from` (JSON whitespace only).
pub(crate) fn skip_ws(body: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = body.get(i) {
        i += 1;
    }
    i
}

/// Rejects bodies whose arrays/objects nest deeper than `max`, and strings with an invalid
/// escape, without parsing them.
///
/// Brackets inside strings are skipped. On any valid prefix of a JSON text this count equals the
/// parser's nesting, and sonic-rs stops at the first invalid byte, so the parser never recurses
/// deeper than the maximum measured here.
///
/// Escapes are checked here because sonic-rs's validating skip does not check the four hex
/// digits of `\u` (found by the `plan_query` fuzz target: `"x\u0"0e"` passed as one string, and
/// a `HybridText` expansion copied it into every leg, which upstream then refused as invalid).
fn check_depth(body: &[u8], max: usize) -> Result<(), RewriteError> {
    let mut depth = 0usize;
    let mut i = 0usize;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => {
                i += 1;
                loop {
                    match body.get(i) {
                        Some(b'"') | None => break,
                        Some(b'\\') => i += escape_len(body, i)?,
                        Some(_) => i += 1,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(RewriteError::TooDeep { max });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Rejects a JSON text with an invalid string escape (sonic-rs does not check the four hex
/// digits of `\u`); a body without any backslash is accepted without a scan. For upstream
/// answers the gather copies into its own (found by the `merge` fuzz target: a `\u00li` in an
/// aggregation group key came out as invalid JSON).
pub(crate) fn check_escapes(body: &[u8]) -> Result<(), RewriteError> {
    if !body.contains(&b'\\') {
        return Ok(());
    }
    check_depth(body, usize::MAX)
}

/// The length of the escape at `body[i]` (a backslash inside a string): 2, or 6 for `\uXXXX`.
fn escape_len(body: &[u8], i: usize) -> Result<usize, RewriteError> {
    match body.get(i + 1) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(2),
        Some(b'u')
            if body
                .get(i + 2..i + 6)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)) =>
        {
            Ok(6)
        }
        _ => Err(RewriteError::InvalidJson {
            message: format!("invalid escape in a string at byte {i}"),
        }),
    }
}

/// A step of the path to a duplicate key, collected while unwinding.
enum Seg<'k> {
    Key(&'k str),
    Index(usize),
}

/// Failure inside a nested value: a duplicate (with its path, innermost segment first) or a
/// parse error from decoding a nested key.
enum Walk {
    Dup { key: String, rev_path: Vec<String> },
    Json(RewriteError),
}

impl Walk {
    fn push(mut self, seg: Seg<'_>) -> Self {
        if let Self::Dup { rev_path, .. } = &mut self {
            rev_path.push(match seg {
                Seg::Key(k) => format!(".{k}"),
                Seg::Index(i) => format!("[{i}]"),
            });
        }
        self
    }

    fn into_error(self, top: Seg<'_>) -> RewriteError {
        match self.push(top) {
            Self::Json(e) => e,
            Self::Dup { key, rev_path } => {
                let mut path: String = rev_path.into_iter().rev().collect();
                if path.starts_with('.') {
                    path.remove(0);
                }
                RewriteError::DuplicateKey { key, path }
            }
        }
    }
}

/// Checks one nested value for duplicate keys, recursing into objects and arrays.
///
/// The value was already validated by the strict top-level skip, so the nested iterators only
/// re-scan structure; recursion depth is bounded by [`check_depth`].
fn check_value(value: LazyValue<'_>) -> Result<(), Walk> {
    let raw = value.as_raw_str().as_bytes();
    match raw.first() {
        Some(b'{') => {
            let entries = members(raw).map_err(|e| Walk::Json(json_error(&e, true)))?;
            let mut repeats = Repeats::new(entries.len());
            for (i, (key, child)) in entries.iter().enumerate() {
                if repeats.at(&entries, i) {
                    return Err(Walk::Dup {
                        key: key.to_string(),
                        rev_path: Vec::new(),
                    });
                }
                check_value(child.clone()).map_err(|w| w.push(Seg::Key(key)))?;
            }
            Ok(())
        }
        // An array with no `{` anywhere inside holds no object, hence no key: skip it (this
        // keeps long vectors of floats cheap).
        Some(b'[') if raw.contains(&b'{') => {
            let Some(iter) = value.into_array_iter() else {
                return Ok(());
            };
            for (i, item) in iter.enumerate() {
                let child = item.map_err(|e| Walk::Json(json_error(&e, true)))?;
                check_value(child).map_err(|w| w.push(Seg::Index(i)))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The duplicate check of one object's collected members, in document order: each key is
/// compared with the keys before it while the object is small (no allocation), and looked up in
/// a hash set filled as the walk goes once it is large.
struct Repeats<'e> {
    large: Option<HashSet<&'e str>>,
}

impl<'e> Repeats<'e> {
    const SMALL: usize = 16;

    fn new(len: usize) -> Self {
        Repeats {
            large: (len > Self::SMALL).then(|| HashSet::with_capacity(len)),
        }
    }

    /// Whether the key of `entries[i]` repeats one of `entries[..i]` (call for every `i` in
    /// order).
    fn at(&mut self, entries: &'e [Entry<'_>], i: usize) -> bool {
        let key = entries[i].0.as_ref();
        match &mut self.large {
            Some(seen) => !seen.insert(key),
            None => entries[..i].iter().any(|(other, _)| other == key),
        }
    }
}

/// The members of `value`, an object inside `body`, read in place ([`members`]: keys lent, up to
/// eight members inline); `None` when `value` is not an object. sonic-rs's lazy object iterator
/// allocates a key buffer and copies every key into a `String`: one allocation plus one per key,
/// for every row of a write.
pub(crate) fn object_members<'a>(
    body: &'a [u8],
    value: &LazyValue<'_>,
) -> Result<Option<Entries<'a>>, RewriteError> {
    let text = body
        .get(span_of(body, value)?)
        .ok_or(RewriteError::Internal {
            message: "member outside the body",
        })?;
    if text.first() != Some(&b'{') {
        return Ok(None);
    }
    members(text).map(Some).map_err(|e| json_error(&e, true))
}

/// Turns a sonic-rs error into [`RewriteError::InvalidJson`], keeping only the first line (the
/// rest is a multi-line excerpt of the input).
pub(crate) fn json_error(e: &sonic_rs::Error, nested: bool) -> RewriteError {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("malformed JSON").trim();
    let message = if nested {
        format!("{first} (position relative to a nested value)")
    } else {
        first.to_owned()
    };
    RewriteError::InvalidJson { message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Result<(), RewriteError> {
        validate(body.as_bytes(), &Limits::default())
    }

    #[test]
    fn accepts_ordinary_bodies() {
        for body in [
            "{}",
            " \n{ } \r\n\t",
            r#"{"a":1,"b":[1,2,{"c":"d"}],"e":{"f":{"g":null}}}"#,
            r#"{"id":18446744073709551615,"v":"zczMPc3MTD6amZk+","s":"\"}{]["}"#,
            r#"{"a":{"x":1},"b":{"x":2}}"#,
            r#"{"a":[{"x":1},{"x":1}]}"#,
        ] {
            assert_eq!(check(body), Ok(()), "{body}");
        }
    }

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        let cases = [
            (
                r#"{"filters":1,"filters":2}"#,
                "filters",
                "the top-level object",
            ),
            (
                r#"{"filters":1,"filt\u0065rs":2}"#,
                "filters",
                "the top-level object",
            ),
            (r#"{"a":{"b":{"c":1,"c":2}}}"#, "c", "a.b"),
            (
                r#"{"upsert_rows":[{"id":1},{"id":2,"x":1,"x":2}]}"#,
                "x",
                "upsert_rows[1]",
            ),
            (r#"{"q":[[{"k":1,"k":1}]]}"#, "k", "q[0][0]"),
        ];
        for (body, key, path) in cases {
            assert_eq!(
                check(body),
                Err(RewriteError::DuplicateKey {
                    key: key.into(),
                    path: path.into()
                }),
                "{body}"
            );
        }
    }

    #[test]
    fn duplicate_detection_survives_large_objects() {
        let mut body = String::from("{");
        for i in 0..40 {
            body.push_str(&format!("\"k{i}\":{i},"));
        }
        body.push_str("\"k3\":0}");
        assert!(matches!(
            check(&body),
            Err(RewriteError::DuplicateKey { .. })
        ));
        // The same object nested: the walk below the top level uses the same check.
        let nested = format!("{{\"a\":1,\"outer\":{body}}}");
        match check(&nested) {
            Err(RewriteError::DuplicateKey { key, path }) => {
                assert_eq!(key, "k3");
                assert!(path.contains("outer"), "{path}");
            }
            other => panic!("{other:?}"),
        }
        let distinct = body.replace("\"k3\":0}", "\"k40\":0}");
        assert_eq!(check(&format!("{{\"outer\":{distinct}}}")), Ok(()));
    }

    #[test]
    fn rejects_non_objects_and_garbage() {
        assert_eq!(check("[1,2]"), Err(RewriteError::NotAnObject));
        assert_eq!(check("\"x\""), Err(RewriteError::NotAnObject));
        assert_eq!(check("\u{feff}{}"), Err(RewriteError::NotAnObject));
        assert!(matches!(check(""), Err(RewriteError::InvalidJson { .. })));
        assert!(matches!(check("  "), Err(RewriteError::InvalidJson { .. })));
        for body in [
            "{} x",
            "{}}",
            r#"{"a":1}{"a":2}"#,
            r#"{"a":1"#,
            r#"{"a":01}"#,
            r#"{"a":[1,]}"#,
            "{\"a\":\"\x01\"}",
            r#"{"a":"\q"}"#,
            r#"{"a":{"\ud800":1}}"#,
            // Found by the `plan_query` fuzz target: sonic-rs alone takes `\u0"0e` as an escape.
            r#"{"a":"x\u0"0e"}"#,
            r#"{"a":["\u00zz"]}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a\x":1}"#,
            "{\"a\":1} \u{0}",
        ] {
            assert!(
                matches!(check(body), Err(RewriteError::InvalidJson { .. })),
                "{body}"
            );
        }
        let bad_utf8 = b"{\"a\":\"\xff\"}";
        assert!(matches!(
            validate(bad_utf8, &Limits::default()),
            Err(RewriteError::InvalidJson { .. })
        ));
    }

    #[test]
    fn error_message_is_one_line() {
        let Err(RewriteError::InvalidJson { message }) = check(r#"{"a":tru}"#) else {
            panic!("expected invalid json");
        };
        assert!(!message.contains('\n'), "{message}");
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn depth_limit() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        assert_eq!(validate(br#"{"a":[[1]]}"#, &limits), Ok(()));
        assert_eq!(
            validate(br#"{"a":[[[1]]]}"#, &limits),
            Err(RewriteError::TooDeep { max: 3 })
        );
        // Brackets inside strings do not count.
        assert_eq!(validate(br#"{"a":"[[[[[[\"[[["}"#, &limits), Ok(()));
    }

    #[test]
    fn depth_bomb_is_rejected_without_recursing() {
        let mut bomb = b"{\"a\":".to_vec();
        bomb.extend(std::iter::repeat_n(b'[', 1_000_000));
        assert_eq!(
            validate(&bomb, &Limits::default()),
            Err(RewriteError::TooDeep { max: 64 })
        );
        let limits = Limits {
            max_depth: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(
            validate(&bomb, &limits),
            Err(RewriteError::TooDeep {
                max: crate::MAX_DEPTH_CEILING
            })
        );
    }

    #[test]
    fn oversize() {
        let limits = Limits {
            max_body_bytes: 7,
            ..Limits::default()
        };
        assert_eq!(validate(b"{\"a\":1}", &limits), Ok(()));
        assert_eq!(
            validate(b"{\"ab\":1}", &limits),
            Err(RewriteError::Oversize { len: 8, max: 7 })
        );
    }

    #[test]
    fn parse_top_keeps_document_order() {
        let entries = parse_top(br#"{"b":1, "a" : [2], "c":"x"}"#, &Limits::default()).unwrap();
        let got: Vec<(&str, &str)> = entries
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_raw_str()))
            .collect();
        assert_eq!(got, [("b", "1"), ("a", "[2]"), ("c", "\"x\"")]);
    }

    /// `members` (the serde path for backslash-free UTF-8) agrees with sonic-rs's lazy object
    /// iterator on what it accepts and on every member's key and raw value, and lends keys.
    fn same_as_lazy_iterator(text: &[u8]) {
        let ours = members(text).map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_string(), v.as_raw_str().to_string()))
                .collect::<Vec<_>>()
        });
        let theirs: Result<Vec<(String, String)>, sonic_rs::Error> = to_object_iter(text)
            .map(|r| r.map(|(k, v)| (k.into_owned(), v.as_raw_str().to_string())))
            .collect();
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "{:?}: {ours:?} vs {theirs:?}",
            String::from_utf8_lossy(text)
        );
        if let (Ok(a), Ok(b)) = (ours, theirs) {
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(text));
        }
    }

    /// The items of the first top-level member (an array) of `body`.
    fn first_items(body: &[u8]) -> Vec<LazyValue<'_>> {
        let top = members(body).unwrap();
        let items = top[0].1.clone().into_array_iter().unwrap();
        items.flatten().collect()
    }

    #[test]
    fn an_inner_objects_members_are_read_in_place() {
        let body = br#"{"upsert_rows":[{"id":1,"a\u0062":[1,{"x":2}]} ,7,[],{}],"n":null}"#;
        let rows = first_items(body);
        let first = object_members(body, &rows[0]).unwrap().unwrap();
        let keys: Vec<&str> = first.iter().map(|(k, _)| &**k).collect();
        assert_eq!(keys, ["id", "ab"]);
        assert_eq!(first[1].1.as_raw_str(), r#"[1,{"x":2}]"#);
        assert!(object_members(body, &rows[1]).unwrap().is_none());
        assert!(object_members(body, &rows[2]).unwrap().is_none());
        assert!(object_members(body, &rows[3]).unwrap().unwrap().is_empty());
        let top = members(body).unwrap();
        assert!(object_members(body, &top[1].1).unwrap().is_none());
        // The values lie in the body itself: the writers splice at their offsets.
        let text = br#"{"upsert_rows":[{"id":7,"v":[1,2]}]}"#;
        let row = object_members(text, &first_items(text)[0])
            .unwrap()
            .unwrap();
        assert_eq!(span_of(text, &row[0].1).unwrap(), 22..23);
        assert_eq!(span_of(text, &row[1].1).unwrap(), 28..33);
    }

    #[test]
    fn members_match_the_lazy_iterator_and_borrow_keys() {
        for text in [
            &br#"{"filters":["id","Eq",42],"rank_by":["id","asc"],"top_k":1}"#[..],
            br#" { "a" : { "b" : [1, {"c": null}] } , "d":"x" } trailing"#,
            br#"{}"#,
            br#"{"a":1,}"#,
            br#"{"a" 1}"#,
            br#"{"a":01}"#,
            br#"{"a":1e}"#,
            br#"{"a":tru}"#,
            br#"{"a":"\u0041"}"#,
            br#"{"a\"b":1}"#,
            b"{\"a\":\"\xff\"}",
            b"{\"\xc3\xa9\":\"\xc3\xa9\"}",
            br#"{"a":[1,2"#,
            br#"{"a":1"#,
            br#"{"a":"unterminated}"#,
            br#"{"a":1}{"b":2}"#,
        ] {
            same_as_lazy_iterator(text);
        }
        let body = br#"{"filters":["id","Eq",42],"top_k":1}"#;
        let m = members(body).unwrap();
        assert!(m.iter().all(|(k, _)| matches!(k, Cow::Borrowed(_))));
        assert_eq!(
            span_of(body, &m[1].1).map(|r| &body[r]),
            Ok(&b"1"[..]),
            "values are borrowed from the body"
        );
    }

    proptest::proptest! {
        #[test]
        fn members_agree_with_the_lazy_iterator_on_any_text(
            text in "[{}\\[\\]\":,a-c0-9. tfnrue\\\\-]{0,40}"
        ) {
            same_as_lazy_iterator(text.as_bytes());
            same_as_lazy_iterator(format!("{{{text}").as_bytes());
        }
    }
}
