//! Whole-body validation: the safety gate every rewrite goes through first.
//!
//! A rewrite that only looked at the keys it edits would be unsafe: `{"filters":A,"filters":B}`
//! lets a caller hide a second filter from the gateway if upstream keeps the last copy, and a
//! malformed tail could be read differently upstream. So before any splice the body must:
//!
//! 1. be at most [`Limits::max_body_bytes`] long ([`RewriteError::Oversize`], 413);
//! 2. nest arrays and objects at most [`Limits::effective_max_depth`] deep
//!    ([`RewriteError::TooDeep`]). On the sonic-rs path below this is checked by a byte scan
//!    *before* sonic-rs runs, because sonic-rs's validating skip recurses once per level and has
//!    no depth limit of its own. The same scan checks every string escape (`\uXXXX` needs four
//!    hex digits, which sonic-rs's skip does not check);
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
//!
//! Most bodies take one walk instead: a body that is valid UTF-8, holds no backslash and is one
//! object followed only by whitespace is read by [`crate::raw`]'s strict walk, which checks
//! rules 2 and 4 and, inside each member, rule 5 as it goes; its members are handed out as
//! sonic-rs values over the same text, with no parser set-up, and only the top level's keys are
//! compared afterwards. Any body the walk does not read whole takes the path above (the depth
//! scan, then sonic-rs), so the walk decides nothing on its own: it accepts only what that path
//! accepts, with the same members (the property tests in `validate_tests.rs` run both on
//! JSON-like and arbitrary text), and every error comes from that path.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{Deserializer, MapAccess, Visitor};
use smallvec::SmallVec;
use sonic_rs::{LazyValue, to_object_iter};

pub(crate) use crate::raw::skip_ws;
use crate::splice::span_of;
use crate::{Limits, RewriteError, raw};

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

/// An object's members in document order, keys lent from the text where possible. Stops after
/// the object's closing `}` (the caller checks what follows).
///
/// Text that is valid UTF-8 and holds no backslash is read by [`crate::raw`]'s walk, which checks
/// every value as strictly as sonic-rs's validating skip and costs no parser set-up
/// (`bench/results/2026-12-06-walk-validation.md`). Its members come back as sonic-rs values
/// over the same text (see [`lazy`]). Anything the walk does not read whole (an error,
/// nesting past [`crate::raw::MAX_DEPTH`]) is read again by sonic-rs, so what is accepted and the
/// errors are sonic-rs's: its serde deserializer for backslash-free UTF-8 (it lends keys, where
/// its lazy object iterator copies each into a `String`), the lazy iterator for any other text
/// (an escaped value must come back borrowed for span-based splicing, and `as_str` of a value
/// must never see invalid UTF-8).
pub fn members(text: &[u8]) -> Result<Entries<'_>, sonic_rs::Error> {
    let mut out = Entries::new();
    members_into(text, &mut out)?;
    Ok(out)
}

/// [`members`] into `out`, filled in place: the members held inline are not copied through
/// the deserializer's return values.
fn members_into<'a>(text: &'a [u8], out: &mut Entries<'a>) -> Result<(), sonic_rs::Error> {
    if walk_members(text, raw::MAX_DEPTH, false, out).is_some() {
        return Ok(());
    }
    out.clear();
    sonic_members_into(text, out)
}

/// [`members_into`] by sonic-rs alone (also what the walk is tested against).
fn sonic_members_into<'a>(text: &'a [u8], out: &mut Entries<'a>) -> Result<(), sonic_rs::Error> {
    match std::str::from_utf8(text) {
        Ok(s) if memchr::memchr(b'\\', text).is_none() => {
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

/// The members of the object `text` by [`crate::raw`]'s walk, pushed onto `out`, when `text` is
/// valid UTF-8, holds no backslash and reads whole with every value nesting at most
/// `max_depth` containers deep (and, when `unique`, with no object inside a value repeating a
/// key): then where the object ends (just past its `}`). `None` otherwise, with `out` holding
/// what was read before the walk ended (the caller clears it).
fn walk_members<'a>(
    text: &'a [u8],
    max_depth: usize,
    unique: bool,
    out: &mut Entries<'a>,
) -> Option<usize> {
    if memchr::memchr(b'\\', text).is_some() {
        return None;
    }
    let text = simdutf8::basic::from_utf8(text).ok()?;
    let mut walk = if unique {
        raw::members_unique_within(text, max_depth)
    } else {
        raw::members_within(text, max_depth)
    };
    for (key, value) in walk.by_ref() {
        out.push((key, lazy(value)?));
    }
    walk.end()
}

/// A sonic-rs value over `text`, one JSON value without a backslash that a strict walk read
/// whole, made without parsing it again. sonic-rs's own deserializer makes its values this way:
/// it hands a value's text, as written, to the value's visitor as a borrowed `str`, which the
/// visitor takes as text holding no escape (text with an escape is handed over as an owned
/// `str`). `lazy_values_are_sonic_rs_values` checks that the two agree.
fn lazy(text: &str) -> Option<LazyValue<'_>> {
    LazyValue::deserialize(BorrowedStrDeserializer::<serde::de::value::Error>::new(
        text,
    ))
    .ok()
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
    // One list for every step: the members are read into it and checked where they lie (each
    // move of it copies ~600 bytes, `bench/results/2026-12-07-entries-in-place.md`).
    let mut entries = Entries::new();
    let inside_unique = read_top(body, limits.effective_max_depth(), &mut entries)?;
    check_top(body, open, &entries, inside_unique)?;
    Ok(entries)
}

/// Reads the top-level members of `body` into `entries` (empty before): an object
/// nesting at most `max` deep (rules 2 and 4); returns whether no object inside a member
/// repeats a key (rule 5 below the top level). One walk checks all of that, what the depth scan
/// and sonic-rs check, for a body that is one object (itself one level of nesting) with only
/// whitespace after it; any other body, and any body with a repeated key inside, is read by
/// [`sonic_read_top`], for the same members or the same error.
fn read_top<'a>(
    body: &'a [u8],
    max: usize,
    entries: &mut Entries<'a>,
) -> Result<bool, RewriteError> {
    let walked = max
        .checked_sub(1)
        .and_then(|inner| walk_members(body, inner, true, entries))
        .is_some_and(|end| skip_ws(body, end) == body.len());
    if walked {
        Ok(true)
    } else {
        // The walk may have read some members before it stopped.
        entries.clear();
        sonic_read_top(body, max, entries)?;
        Ok(false)
    }
}

/// [`read_top`] by the depth scan and sonic-rs alone, into `entries` (empty).
fn sonic_read_top<'a>(
    body: &'a [u8],
    max: usize,
    entries: &mut Entries<'a>,
) -> Result<(), RewriteError> {
    check_depth(body, max)?;
    sonic_members_into(body, entries).map_err(|e| json_error(&e, false))
}

/// The rest of [`parse_top`] (rules 4 and 5) over the members read from `body`, whose object
/// opens at `open`; the members' values are searched for repeated keys unless `inside_unique`
/// says the read already found none.
fn check_top(
    body: &[u8],
    open: usize,
    entries: &Entries<'_>,
    inside_unique: bool,
) -> Result<(), RewriteError> {
    let mut repeats = Repeats::new(entries.len());
    for (i, (key, value)) in entries.iter().enumerate() {
        if repeats.at(entries, i) {
            return Err(RewriteError::DuplicateKey {
                key: key.to_string(),
                path: "the top-level object".into(),
            });
        }
        if !inside_unique {
            check_value(value.clone()).map_err(|w| w.into_error(Seg::Key(key.as_ref())))?;
        }
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
    Ok(())
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
    if memchr::memchr(b'\\', body).is_none() {
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
        Some(b'[') if memchr::memchr(b'{', raw).is_some() => {
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
#[path = "validate_tests.rs"]
mod tests;
