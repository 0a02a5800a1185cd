//! Reading JSON text in place: an object's members and an array's items as raw text spans,
//! without a parser, a padded copy or an allocation. Start at [`members`] and [`items`].
//!
//! sonic-rs costs a few hundred nanoseconds to set up each parse, whatever the text's size, and
//! a query's stable read and its search-history entry each read small bodies only to find a few
//! members. A walk has no set-up: about 100 instructions per token (2.0k for a 90-byte point
//! query, against ~2.9k through sonic-rs; `bench/results/2026-12-05-raw-walks.md`). Unlike
//! [`crate::leading`], which trusts text a parser already accepted, this also reads text nobody
//! checked (an upstream answer): every value is checked as a strict parser would check it
//! (string escapes and control bytes, the number grammar, the three literals, nesting up to
//! [`MAX_DEPTH`]), and a walk ends at the first error, after the members or items that read
//! whole. Duplicate keys are not looked for, except by the validator's walk
//! ([`members_unique_within`], keys compared in `raw/keys.rs`). Three readers trust their
//! text instead, for a body validated whole just before (a write's rows, a query's body in its
//! search-history summary) or a value a strict walk yielded: [`members_of_checked`],
//! [`items_of_checked`] and [`count_items_of_checked`] skip values by their structure without
//! checking them again.

mod keys;
mod window;

use std::borrow::Cow;

use keys::{Ignore, Keys, Unique};

/// Deepest nesting a value may have (deeper ends the walk). The validator's ceiling plus
/// headroom: a body spliced from a validated one may nest a few levels deeper than validation
/// allowed (an expansion moves `filters` into `queries: [{...}]`, a page wraps it in
/// `["And", [...]]`), and every [`crate::Validated`] body must read whole.
pub const MAX_DEPTH: usize = crate::MAX_DEPTH_CEILING + 64;

/// Words of the walk's bit stack (one bit per open container).
const DEPTH_WORDS: usize = MAX_DEPTH.div_ceil(64);

/// The members of the JSON object `text`, in order, as `(key, value text)`: keys unescaped
/// (lent from the text unless they hold an escape), values exactly as written. Ends at the
/// object's end or at the first member that does not read whole; yields nothing when `text` is
/// not an object.
pub fn members(text: &str) -> Members<'_> {
    members_within(text, MAX_DEPTH)
}

/// [`members`], each value nesting at most `max_depth` containers deep (a deeper one ends the
/// walk); [`MAX_DEPTH`] is the most a walk allows.
pub fn members_within(text: &str, max_depth: usize) -> Members<'_> {
    Members {
        walk: Walk::open(text, b'{', max_depth.min(MAX_DEPTH)),
    }
}

/// [`members_within`], and a value holding an object that repeats a key ends the walk too (the
/// keys of the object walked are not compared: the caller has them). Keys are compared as
/// written, so this tells repeated keys only in text without a backslash.
pub(crate) fn members_unique_within(text: &str, max_depth: usize) -> Members<'_> {
    let mut walk = Walk::open(text, b'{', max_depth.min(MAX_DEPTH));
    walk.unique = true;
    Members { walk }
}

/// [`members`] of text a strict walk or parser has already read whole (a [`crate::Validated`]
/// body, a value a strict walk yielded, or a part of either): each value is skipped by its
/// structure alone (a string to its closing quote, a vector of numbers to its `]` by one SIMD
/// search, any other container to its matching bracket eight or 32 bytes at a time, anything
/// else to the next delimiter), without checking its numbers and
/// literals again. On text nobody checked it never panics, but what it yields is unspecified.
pub fn members_of_checked(text: &str) -> Members<'_> {
    let mut walk = Walk::open(text, b'{', MAX_DEPTH);
    walk.checked = true;
    Members { walk }
}

/// [`items`] of text read whole before, each skipped by its structure alone (see
/// [`members_of_checked`]).
pub fn items_of_checked(text: &str) -> Items<'_> {
    let mut walk = Walk::open(text, b'[', MAX_DEPTH);
    walk.checked = true;
    Items { walk }
}

/// How many items the array `text` (read whole before, as for [`items_of_checked`]) has; 0 when
/// it is not an array. A vector of numbers ([`flat_array`]) is counted by its commas (SIMD
/// searches, no byte-by-byte reading); any other array is walked.
pub fn count_items_of_checked(text: &str) -> usize {
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    if b.get(start) != Some(&b'[') {
        return 0;
    }
    match flat_array(b, start) {
        // It starts with a number; only `{}` can sit between its commas besides numbers and
        // literals, so each comma separates two items.
        Some((_, inside)) => memchr::memchr_iter(b',', inside).count() + 1,
        None => items_of_checked(text).count(),
    }
}

/// The array opening at `b[i]` in text read whole before, when its first item is a number and
/// it holds no string and no array: just past its `]`, and the text between its brackets. Found
/// by one `memchr` search for `[`, `]` or `"` (SIMD, many bytes per instruction): when `]` comes
/// first, it closes this array, as the only object without a string (its keys) is `{}`. `None`
/// for any other array (one that starts with anything else is not searched: a search costs a
/// call even when it stops at once), or where the text ends first; never a panic, whatever the
/// text.
fn flat_array(b: &[u8], i: usize) -> Option<(usize, &[u8])> {
    let inside = b.get(i + 1..)?;
    if !matches!(inside.get(skip_ws(inside, 0))?, b'-' | b'0'..=b'9') {
        return None;
    }
    let close = memchr::memchr3(b'[', b']', b'"', inside)?;
    (inside[close] == b']').then(|| (i + 2 + close, &inside[..close]))
}

/// The items of the JSON array `text`, in order, each exactly as written. Ends at the array's end
/// or at the first item that does not read whole; yields nothing when `text` is not an array.
pub fn items(text: &str) -> Items<'_> {
    Items {
        walk: Walk::open(text, b'[', MAX_DEPTH),
    }
}

/// Whether `text` is exactly one JSON value (whitespace around it allowed), checked as the walks
/// check values.
pub fn is_value(text: &str) -> bool {
    let b = text.as_bytes();
    value_end(b, skip_ws(b, 0), MAX_DEPTH).is_some_and(|end| skip_ws(b, end) == b.len())
}

/// See [`members`].
pub struct Members<'a> {
    walk: Walk<'a>,
}

/// See [`items`].
pub struct Items<'a> {
    walk: Walk<'a>,
}

impl Members<'_> {
    /// The walk met the object's closing `}` after its last member: every member was read. (A
    /// walk stopped early by its caller has not.)
    pub fn ended_whole(&self) -> bool {
        self.walk.whole
    }

    /// Just past the object's closing `}`, once the walk [ended whole](Self::ended_whole).
    pub fn end(&self) -> Option<usize> {
        self.walk.whole.then_some(self.walk.end)
    }
}

impl Items<'_> {
    /// The walk met the array's closing `]` after its last item: every item was read.
    pub fn ended_whole(&self) -> bool {
        self.walk.whole
    }
}

impl<'a> Members<'a> {
    /// The next member, as [`Iterator::next`] yields it; but when `descend(key)` and the value is
    /// an array, its items are read one by one and each is handed to `item` as the walk passes
    /// it, instead of the array being skipped whole first and read again by the caller (one
    /// read of a long `rows` array, not two). The items are handed over before the array is
    /// known to read whole: when it does not, the walk ends and this returns `None` after some
    /// `item` calls, and the caller drops what they gave it.
    pub fn next_descending(
        &mut self,
        descend: impl FnOnce(&str) -> bool,
        mut item: impl FnMut(&'a str),
    ) -> Option<(Cow<'a, str>, &'a str)> {
        let (key, from) = self.key()?;
        let value = if descend(&key) {
            self.walk.array_value(from, b'}', &mut item)?
        } else {
            self.walk.value(from, b'}')?
        };
        Some((key, value))
    }

    /// The next member's key, and where its value starts.
    fn key(&mut self) -> Option<(Cow<'a, str>, usize)> {
        let w = &mut self.walk;
        let at = w.entry(b'}')?;
        let b = w.text.as_bytes();
        let Some((key_end, escaped)) = (b[at] == b'"').then(|| string_scan(b, at)).flatten() else {
            return w.stop();
        };
        let raw_key = &w.text[at..key_end];
        let key = if escaped {
            match sonic_rs::from_str::<String>(raw_key) {
                Ok(k) => Cow::Owned(k),
                Err(_) => return w.stop(),
            }
        } else {
            Cow::Borrowed(&raw_key[1..raw_key.len() - 1])
        };
        let colon = skip_ws(b, key_end);
        if b.get(colon) != Some(&b':') {
            return w.stop();
        }
        Some((key, colon + 1))
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = (Cow<'a, str>, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.next_descending(|_| false, |_| {})
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let at = self.walk.entry(b']')?;
        self.walk.value(at, b']')
    }
}

/// The position of a walk over one container's entries.
struct Walk<'a> {
    text: &'a str,
    /// Where the next entry (or the container's end) is looked for; `None` once the walk ended.
    at: Option<usize>,
    first: bool,
    /// The container's end was met where an entry or the end could be.
    whole: bool,
    /// Just past the container's closing bracket, once `whole`.
    end: usize,
    /// How deep each entry's value may nest: the walk's limit (at most [`MAX_DEPTH`]), less the
    /// containers this one is inside of (so a walk that descends into a value checks it as
    /// skipping it would).
    depth: usize,
    /// Each value is also checked for objects repeating a key ([`members_unique_within`]).
    unique: bool,
    /// The text was read whole before: values are skipped, not checked ([`members_of_checked`]).
    checked: bool,
}

impl<'a> Walk<'a> {
    fn open(text: &'a str, open: u8, depth: usize) -> Self {
        let b = text.as_bytes();
        let start = skip_ws(b, 0);
        Walk {
            text,
            at: (b.get(start) == Some(&open)).then_some(start + 1),
            first: true,
            whole: false,
            end: 0,
            depth,
            unique: false,
            checked: false,
        }
    }

    /// Where the next entry starts; `None` (and the walk over) at the container's `close` or
    /// anything else that is not an entry.
    fn entry(&mut self, close: u8) -> Option<usize> {
        let b = self.text.as_bytes();
        let mut at = skip_ws(b, self.at?);
        if !self.first {
            // The entry before was followed by `,` (checked when it was read).
            at = skip_ws(b, at + 1);
        }
        match b.get(at) {
            Some(&c) if c == close && self.first => {
                self.whole = true;
                self.end = at + 1;
                self.stop()
            }
            Some(_) => {
                self.first = false;
                Some(at)
            }
            None => self.stop(),
        }
    }

    /// The value starting at or after `from`, when it reads whole; the walk goes on only when a
    /// `,` follows it, and ended whole when the container's `close` does.
    fn value(&mut self, from: usize, close: u8) -> Option<&'a str> {
        let b = self.text.as_bytes();
        let start = skip_ws(b, from);
        let end = if self.checked {
            skip_checked(b, start)
        } else if self.unique {
            value_end_with(b, start, self.depth, &mut Unique::default())
        } else {
            value_end(b, start, self.depth)
        };
        let Some(end) = end else {
            return self.stop();
        };
        self.after(start, end, close)
    }

    /// [`Walk::value`] for a value that is an array, its items handed to `item` as they are
    /// read (any other value is read as [`Walk::value`] reads it).
    fn array_value(
        &mut self,
        from: usize,
        close: u8,
        item: &mut impl FnMut(&'a str),
    ) -> Option<&'a str> {
        let b = self.text.as_bytes();
        let start = skip_ws(b, from);
        if b.get(start) != Some(&b'[') || self.depth == 0 {
            return self.value(from, close);
        }
        let mut items = Walk {
            text: self.text,
            at: Some(start + 1),
            first: true,
            whole: false,
            end: 0,
            depth: self.depth - 1,
            unique: self.unique,
            checked: self.checked,
        };
        while let Some(at) = items.entry(b']') {
            if let Some(v) = items.value(at, b']') {
                item(v);
            }
        }
        if !items.whole {
            return self.stop();
        }
        self.after(start, items.end, close)
    }

    /// Ends reading the value at `start..end`: the walk goes on past a `,`; at the container's
    /// end, or anything else, the value is still read whole (as a parser's iterator yields it
    /// before failing on what follows).
    fn after(&mut self, start: usize, end: usize, close: u8) -> Option<&'a str> {
        let b = self.text.as_bytes();
        let next = skip_ws(b, end);
        self.at = (b.get(next) == Some(&b',')).then_some(next);
        self.whole = b.get(next) == Some(&close);
        if self.whole {
            self.end = next + 1;
        }
        Some(&self.text[start..end])
    }

    fn stop<T>(&mut self) -> Option<T> {
        self.at = None;
        None
    }
}

/// The index of the first non-whitespace byte at or after `i` (JSON whitespace only).
#[inline]
pub(crate) fn skip_ws(b: &[u8], i: usize) -> usize {
    let mut i = i;
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The end of the JSON value starting at `b[i]`, checked whole and nesting at most `max_depth`
/// containers deep; `None` when it does not read. Containers are walked in one loop (no
/// recursion), their kinds kept one bit per level.
fn value_end(b: &[u8], i: usize, max_depth: usize) -> Option<usize> {
    value_end_with(b, i, max_depth, &mut Ignore)
}

/// [`value_end`], telling `keys` of every object and key on the way (a key it refuses ends the
/// walk).
fn value_end_with<'t>(
    b: &'t [u8],
    i: usize,
    max_depth: usize,
    keys: &mut impl Keys<'t>,
) -> Option<usize> {
    /// What the walk expects next inside the innermost open container.
    enum Next {
        /// A value (after `[`, after a key's `:`, or an array's `,`).
        Value,
        /// An object's key (after `{` or an object's `,`).
        Key,
        /// `,` or the container's end, after a value.
        After,
    }
    // Bit `d` set: the container open at depth `d` is an object.
    let mut objects = [0u64; DEPTH_WORDS];
    let is_object = |objects: &[u64; DEPTH_WORDS], d: usize| objects[d / 64] >> (d % 64) & 1 == 1;
    let mut depth = 0usize;
    let mut j = i;
    let mut next = Next::Value;
    loop {
        match next {
            Next::Value => match *b.get(j)? {
                b'"' => {
                    j = string_end(b, j)?;
                    next = Next::After;
                }
                b'-' | b'0'..=b'9' => {
                    j = number_end(b, j)?;
                    // A vector: the numbers that follow in the same array, each right after a
                    // `,`, are read here instead of one trip through the states per number.
                    // (Anything else after a number goes the long way, as before.)
                    if depth > 0 && !is_object(&objects, depth - 1) {
                        while b.get(j) == Some(&b',')
                            && matches!(b.get(j + 1), Some(b'-' | b'0'..=b'9'))
                        {
                            j = number_end(b, j + 1)?;
                        }
                    }
                    next = Next::After;
                }
                c @ (b'{' | b'[') => {
                    if depth == max_depth {
                        return None;
                    }
                    let object = c == b'{';
                    let (word, bit) = (depth / 64, 1u64 << (depth % 64));
                    objects[word] = if object {
                        objects[word] | bit
                    } else {
                        objects[word] & !bit
                    };
                    depth += 1;
                    if object {
                        keys.open();
                    }
                    j = skip_ws(b, j + 1);
                    let close = if object { b'}' } else { b']' };
                    if b.get(j) == Some(&close) {
                        depth -= 1;
                        if object {
                            keys.close();
                        }
                        j += 1;
                        next = Next::After;
                    } else {
                        next = if object { Next::Key } else { Next::Value };
                    }
                }
                c => {
                    let lit: &[u8] = match c {
                        b't' => b"true",
                        b'f' => b"false",
                        b'n' => b"null",
                        _ => return None,
                    };
                    if !b[j..].starts_with(lit) {
                        return None;
                    }
                    j += lit.len();
                    next = Next::After;
                }
            },
            Next::Key => {
                if b.get(j) != Some(&b'"') {
                    return None;
                }
                let key_end = string_end(b, j)?;
                if !keys.key(&b[j + 1..key_end - 1]) {
                    return None;
                }
                j = skip_ws(b, key_end);
                if b.get(j) != Some(&b':') {
                    return None;
                }
                j = skip_ws(b, j + 1);
                next = Next::Value;
            }
            Next::After => {
                if depth == 0 {
                    return Some(j);
                }
                j = skip_ws(b, j);
                let object = is_object(&objects, depth - 1);
                match *b.get(j)? {
                    b',' => {
                        j = skip_ws(b, j + 1);
                        next = if object { Next::Key } else { Next::Value };
                    }
                    b'}' if object => {
                        depth -= 1;
                        keys.close();
                        j += 1;
                    }
                    b']' if !object => {
                        depth -= 1;
                        j += 1;
                    }
                    _ => return None,
                }
            }
        }
    }
}

/// The end of the string opening at `b[i]`: escapes must be JSON's, control bytes escaped.
#[inline]
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    string_scan(b, i).map(|(end, _)| end)
}

/// The end of the value starting at `b[i]` in text read whole before ([`members_of_checked`]),
/// found by structure alone; `None` only where the text ends first.
fn skip_checked(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let (mut depth, mut j) = (0usize, i);
            loop {
                j = structure_from(b, j);
                match *b.get(j)? {
                    b'"' => j = string_end(b, j)?,
                    // A vector: to its end in one search instead of a scan by structure.
                    b'[' if let Some((end, _)) = flat_array(b, j) => {
                        j = end;
                        if depth == 0 {
                            return Some(j);
                        }
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        j += 1;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        j += 1;
                        if depth == 0 {
                            return Some(j);
                        }
                    }
                    _ => j += 1,
                }
            }
        }
        _ => {
            let len = b[i..]
                .iter()
                .take_while(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .count();
            Some(i + len)
        }
    }
}

/// The first position from `j` on whose byte is `"`, `[`, `]`, `{` or `}`, or near the text's end
/// where fewer than eight bytes are left (the caller reads on bytewise). One word is tested
/// first, as in text dense with keys and strings the next one is near; past it, a long plain
/// run is skipped [`PLAIN_BLOCK`] bytes at a time, each block tested in one pass the compiler
/// vectorises. (A vector of numbers does not come here: [`skip_checked`] ends it by
/// [`flat_array`].)
#[inline]
fn structure_from(b: &[u8], j: usize) -> usize {
    // The word skip over at most one word (the text cut after it).
    let (mut j, found) = skip_words(b.get(..j + 8).unwrap_or(b), j, structure);
    if found || j + 8 > b.len() {
        return j;
    }
    while let Some(block) = b
        .get(j..j + PLAIN_BLOCK)
        .and_then(|w| <&[u8; PLAIN_BLOCK]>::try_from(w).ok())
    {
        // Branch-free over the block; bit 5 cleared reads `{` and `}` as `[` and `]`.
        let any = block.iter().fold(false, |any, &c| {
            any | (c == b'"') | matches!(c & 0xdf, b'[' | b']')
        });
        if any {
            break;
        }
        j += PLAIN_BLOCK;
    }
    skip_words(b, j, structure).0
}

/// Bytes [`structure_from`] tests at a time in a long plain run.
const PLAIN_BLOCK: usize = 32;

/// The high bit set in every byte of `w` (eight bytes, little-endian) that gives a container
/// its structure: `"`, `[`, `]`, `{` or `}` (plus, possibly, bytes above a real one). Clearing
/// bit 5 makes `{` and `}` read as `[` and `]`.
fn structure(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    let folded = w & (ONES * 0xdf);
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let open = zero(folded ^ (ONES * u64::from(b'[')));
    let close = zero(folded ^ (ONES * u64::from(b']')));
    (quote | open | close) & HIGHS
}

/// [`string_end`], and whether the string holds an escape. Plain text is skipped eight bytes at
/// a time.
fn string_scan(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        j = skip_words(b, j, string_stops).0;
        match *b.get(j)? {
            b'"' => return Some((j + 1, escaped)),
            b'\\' => {
                escaped = true;
                match *b.get(j + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                    b'u' if b.get(j + 2..j + 6)?.iter().all(u8::is_ascii_hexdigit) => j += 6,
                    _ => return None,
                }
            }
            0x00..=0x1f => return None,
            _ => j += 1,
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit set in every byte of `w` (eight bytes, little-endian) that a string cannot hold
/// as it is: `"`, `\` or a control byte below 0x20 (plus, possibly, bytes above a real one).
fn string_stops(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (quote | backslash | control) & HIGHS
}

/// The end of the number starting at `b[i]`: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
/// Every number of text read strictly (a body being validated, an upstream answer) ends here, so
/// a wrong end would let invalid JSON through. Read in one 32-byte window by masks where 32 bytes
/// are left ([`window::number_in_window`]: a vector's numbers, one SIMD compare for the digits),
/// else, or when the window cannot tell, the long way, which decides.
#[inline]
fn number_end(b: &[u8], i: usize) -> Option<usize> {
    if let Some(w) = b.get(i..i + window::WINDOW).and_then(|w| w.try_into().ok())
        && let Some(len) = window::number_in_window(w)
    {
        return Some(i + len);
    }
    number_end_long(b, i)
}

/// [`number_end`] byte by byte, digits eight at a time.
fn number_end_long(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + usize::from(b[i] == b'-');
    match b.get(j)? {
        // A leading zero is the whole integer part (`01` is no number at all, for sonic-rs too).
        b'0' if !b.get(j + 1).is_some_and(u8::is_ascii_digit) => j += 1,
        b'1'..=b'9' => j += digits(b, j),
        _ => return None,
    }
    if b.get(j) == Some(&b'.') {
        let n = digits(b, j + 1);
        if n == 0 {
            return None;
        }
        j += 1 + n;
    }
    if let Some(b'e' | b'E') = b.get(j) {
        j += 1;
        if let Some(b'+' | b'-') = b.get(j) {
            j += 1;
        }
        let n = digits(b, j);
        if n == 0 {
            return None;
        }
        j += n;
    }
    Some(j)
}

/// How many ASCII digits start at `b[from]`, eight bytes at a time, the rest bytewise (for the
/// numbers the window does not read: near the text's end, or longer than it).
fn digits(b: &[u8], from: usize) -> usize {
    match skip_words(b, from, non_digits) {
        (j, true) => j - from,
        (j, false) => j - from + b[j..].iter().take_while(|c| c.is_ascii_digit()).count(),
    }
}

/// The first position from `j` on whose byte `stops` flags, read eight bytes at a time (the
/// lowest flagged byte is exact: each test's false positives only sit above a true one), and
/// `true`; or, with no flag, where fewer than eight bytes are left, and `false` (the caller
/// reads on bytewise).
#[inline]
fn skip_words(b: &[u8], mut j: usize, stops: impl Fn(u64) -> u64) -> (usize, bool) {
    while let Some(word) = b.get(j..j + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        let flagged = stops(u64::from_le_bytes(word));
        if flagged != 0 {
            return (j + (flagged.trailing_zeros() / 8) as usize, true);
        }
        j += 8;
    }
    (j, false)
}

/// The high bit set in every byte of `w` (eight bytes, little-endian) that is not an ASCII
/// digit (plus, possibly, bytes above a real one). After `^ '0'` a digit is 0–9, and adding
/// 0x76 sets the high bit of exactly the bytes from 10 to 0x7f without a carry; the bytes from
/// 0x80 have it already, and only they can carry into the byte above.
fn non_digits(w: u64) -> u64 {
    let x = w ^ (ONES * u64::from(b'0'));
    (x.wrapping_add(ONES * 0x76) | x) & HIGHS
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod agree;
