//! Property tests: the walks against sonic-rs and against byte-by-byte reading.

use super::*;
use proptest::prelude::*;
use serde_json::Value;

fn json() -> impl Strategy<Value = Value> {
    json_with(any::<String>())
}

/// Any JSON value up to four levels deep, its strings (keys too) drawn from `strings`.
pub(crate) fn json_with(
    strings: impl Strategy<Value = String> + Clone + 'static,
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        strings.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((strings.clone(), inner), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// sonic-rs's members of `text` up to its first error, as `(key, raw value)`.
fn sonic(text: &str) -> Vec<(String, String)> {
    sonic_rs::to_object_iter(text)
        .map_while(Result::ok)
        .map(|(k, v)| (k.into_owned(), v.as_raw_str().to_owned()))
        .collect()
}

/// `v`'s text, compact or pretty.
fn text_of(v: &Value, pretty: bool) -> String {
    if pretty {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    }
    .unwrap()
}

/// An object of `members` and its text, compact or pretty.
fn object_text(members: Vec<(String, Value)>, pretty: bool) -> (Value, String) {
    let v = Value::Object(members.into_iter().collect());
    let text = text_of(&v, pretty);
    (v, text)
}

fn ours(text: &str) -> Vec<(String, String)> {
    members(text)
        .map(|(k, v)| (k.into_owned(), v.to_owned()))
        .collect()
}

/// The members as [`Members::next_descending`] reads them, descending into every array;
/// checks that an array's items are [`items`]'s of it.
fn descending(text: &str) -> Vec<(String, String)> {
    super::tests::descended(text, |_| true)
        .into_iter()
        .map(|(k, v, seen)| {
            let expected: Vec<&str> = if v.starts_with('[') {
                items(v).collect()
            } else {
                Vec::new()
            };
            assert_eq!(seen, expected, "items of {v:?}");
            (k, v.to_owned())
        })
        .collect()
}

/// [`string_end`] one byte at a time.
fn string_end_bytewise(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match *b.get(j)? {
            b'"' => return Some(j + 1),
            b'\\' => match *b.get(j + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => j += 2,
                b'u' if b.get(j + 2..j + 6)?.iter().all(u8::is_ascii_hexdigit) => j += 6,
                _ => return None,
            },
            0x00..=0x1f => return None,
            _ => j += 1,
        }
    }
}

/// Every byte value at every place of a word among digits: the word-at-a-time count is
/// the bytewise one, with any bytes after it and a tail shorter than a word.
#[test]
fn digits_are_counted_as_bytewise() {
    let bytewise =
        |b: &[u8], from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    // '9' around the odd byte: a carry out of a byte from 0x8a up would turn it into 0x80.
    for fill in [b'0', b'5', b'9'] {
        for byte in 0..=255u8 {
            for at in 0..19 {
                for after in [b'7', b'"', 0xff] {
                    let mut b = vec![fill; 19];
                    b[at] = byte;
                    b.push(after);
                    for from in 0..3 {
                        assert_eq!(digits(&b, from), bytewise(&b, from), "{b:?} from {from}");
                    }
                }
            }
        }
    }
    assert_eq!(digits(b"", 0), 0);
    assert_eq!(digits(b"12345678901234567890", 0), 20);
}

/// The end of the number starting at `b[i]`, one byte at a time through the grammar's states.
fn number_end_bytewise(b: &[u8], i: usize) -> Option<usize> {
    let digit = |j: usize| b.get(j).is_some_and(u8::is_ascii_digit);
    let run = |mut j: usize| {
        while digit(j) {
            j += 1;
        }
        j
    };
    let mut j = i;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    j = match b.get(j)? {
        b'0' if digit(j + 1) => return None,
        b'0' => j + 1,
        b'1'..=b'9' => run(j),
        _ => return None,
    };
    if b.get(j) == Some(&b'.') {
        if !digit(j + 1) {
            return None;
        }
        j = run(j + 1);
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if !digit(j) {
            return None;
        }
        j = run(j);
    }
    Some(j)
}

/// Whether `text` holds a `\u` escape without four hex digits inside a string (found by
/// 20,000 runs of `damaged_text_reads_a_prefix`: a replaced or removed byte makes one).
/// sonic-rs's skip does not check the digits and reads on; the walk stops, as a strict
/// parser does.
fn bad_u_escape(text: &str) -> bool {
    let b = text.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < b.len() {
        match b[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                let hex = b.get(i + 2..i + 6);
                if b.get(i + 1) == Some(&b'u')
                    && !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                {
                    return true;
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

proptest! {
    /// Numbers read eight bytes at a time end where the grammar read byte by byte ends them,
    /// from every place of text made of digit runs (up to 40 long, so runs end at and across
    /// word edges and the text's end) and the bytes a number may hold or be followed by (bytes
    /// from 0x80 up among them, which the digit test flags with a carry).
    #[test]
    fn numbers_end_where_the_bytewise_grammar_ends(
        parts in prop::collection::vec(prop_oneof![
            "[0-9]{0,40}".prop_map(String::into_bytes),
            prop::sample::select(vec![&b"-"[..], b".", b"e", b"E", b"+", b",", b"]", b" ", b"0", b"\xff", b"\x8a"])
                .prop_map(<[u8]>::to_vec),
        ], 0..10),
    ) {
        let b = parts.concat();
        for i in 0..b.len() {
            let end = number_end(&b, i);
            prop_assert_eq!(end, number_end_bytewise(&b, i), "{:?} from {}", String::from_utf8_lossy(&b), i);
            // And a parser that knows the grammar on its own reads what was read as one value (as
            // raw text: a huge exponent is grammar, though no `f64` holds it).
            if let Some(end) = end {
                let parsed = serde_json::from_slice::<Box<serde_json::value::RawValue>>(&b[i..end]);
                prop_assert!(parsed.is_ok(), "{:?}", String::from_utf8_lossy(&b[i..end]));
            }
        }
    }

    /// The word-at-a-time skip finds the same end as a byte-by-byte one, on text dense in
    /// quotes, backslashes, control and non-ASCII bytes.
    #[test]
    fn strings_end_where_a_bytewise_walk_ends(
        parts in prop::collection::vec(prop_oneof![
            Just("\"".to_string()), Just("\\".to_string()), Just("\\u00e9".to_string()),
            Just("\u{1f}".to_string()), Just("\u{7f}".to_string()), Just("é".to_string()),
            Just("\u{10ffff}".to_string()), "[a-z ]{0,12}",
        ], 0..12),
    ) {
        let text = format!("\"{}", parts.concat());
        prop_assert_eq!(string_end(text.as_bytes(), 0), string_end_bytewise(text.as_bytes(), 0), "{:?}", text);
    }

    /// Any object, compact or pretty: the members are sonic-rs's, each value exactly as
    /// written.
    #[test]
    fn objects_read_as_sonic_reads_them(
        m in prop::collection::vec((any::<String>(), json()), 0..8),
        pretty in any::<bool>(),
    ) {
        let (v, text) = object_text(m, pretty);
        prop_assert_eq!(ours(&text), sonic(&text));
        prop_assert_eq!(descending(&text), ours(&text));
        if let Value::Object(map) = &v {
            prop_assert_eq!(ours(&text).len(), map.len());
        }
    }

    /// Any object, compact or pretty: read as text checked before, the members are the ones the
    /// checking walk reads.
    #[test]
    fn checked_text_reads_as_the_walk_reads_it(
        m in prop::collection::vec((any::<String>(), json()), 0..8),
        pretty in any::<bool>(),
    ) {
        let (_, text) = object_text(m, pretty);
        let mut walk = members_of_checked(&text);
        let read: Vec<(String, String)> = walk.by_ref().map(|(k, v)| (k.into_owned(), v.to_owned())).collect();
        prop_assert_eq!(read, ours(&text));
        prop_assert_eq!(walk.end(), Some(text.len()));
    }

    /// Any array, compact or pretty (vectors of numbers among them): read as text checked
    /// before, the items are the checking walk's, and the count is theirs.
    #[test]
    fn checked_arrays_read_and_count_as_the_walk_reads_them(
        items in prop_oneof![
            prop::collection::vec(json(), 0..8),
            prop::collection::vec(any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from), 0..40),
        ],
        pretty in any::<bool>(),
    ) {
        let v = Value::Array(items);
        let text = text_of(&v, pretty);
        let strict: Vec<&str> = super::items(&text).collect();
        let read: Vec<&str> = items_of_checked(&text).collect();
        prop_assert_eq!(&read, &strict);
        prop_assert_eq!(count_items_of_checked(&text), strict.len(), "{}", text);
        prop_assert_eq!(strict.len(), v.as_array().map_or(0, Vec::len));
    }

    /// Arrays of the items a vector search body holds and the ones that look like its
    /// delimiters (`{}`, `[]`, strings holding `]`, `[` or `,`, nested vectors), with any
    /// whitespace: read as checked text, each array ends where the checking walk ends it, alone
    /// or inside an object, and is counted as that walk counts it.
    #[test]
    fn checked_vectors_end_and_count_as_the_walk_reads_them(
        items in prop::collection::vec(
            prop_oneof![
                4 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| Value::from(f).to_string()),
                1 => Just("{}".to_string()),
                1 => Just("{ }".to_string()),
                1 => Just("[]".to_string()),
                1 => Just(r#""a],[b""#.to_string()),
                1 => Just("[1,[2]]".to_string()),
                1 => Just(r#"{"k":[3]}"#.to_string()),
                1 => Just("null".to_string()),
            ],
            0..24,
        ),
        space in "[ \t\n]{0,2}",
    ) {
        let text = format!("[{space}{}{space}]", items.join(&format!("{space},{space}")));
        let b = text.as_bytes();
        prop_assert_eq!(skip_checked(b, 0), value_end(b, 0, MAX_DEPTH), "{}", text);
        prop_assert_eq!(skip_checked(b, 0), Some(text.len()));
        prop_assert_eq!(count_items_of_checked(&text), items.len(), "{}", text);
        let object = format!(r#"{{"v":{text},"w":{text}}}"#);
        let read: Vec<(String, String)> =
            members_of_checked(&object).map(|(k, v)| (k.into_owned(), v.to_owned())).collect();
        prop_assert_eq!(read, ours(&object));
    }

    /// Text nobody checked, read as if it had been (brackets, quotes, escapes, whitespace and
    /// multi-byte characters, `\u{6c0}` holding the byte 0xdb): no panic, no hang, and where
    /// the strict walk reads the object whole, the same members.
    #[test]
    fn unchecked_text_read_as_checked_never_panics(
        text in "[\\[\\]{}\",:a-z0-9 \t\n\\\\.\u{e9}\u{6c0}-]{0,60}",
    ) {
        let text = format!("{{{text}");
        let mut strict = members(&text);
        let expected: Vec<(String, String)> =
            strict.by_ref().map(|(k, v)| (k.into_owned(), v.to_owned())).collect();
        let read: Vec<(String, String)> =
            members_of_checked(&text).map(|(k, v)| (k.into_owned(), v.to_owned())).collect();
        if strict.ended_whole() {
            prop_assert_eq!(read, expected, "{:?}", text);
        }
    }

    /// Any object with one byte changed, dropped or cut short: the walk never panics, and
    /// every member it reads is the one sonic-rs reads at that place.
    #[test]
    fn damaged_text_reads_a_prefix(
        m in prop::collection::vec((any::<String>(), json()), 1..6),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        how in 0..3u8,
    ) {
        let text = serde_json::to_string(&Value::Object(m.into_iter().collect())).unwrap();
        let mut bytes = text.into_bytes();
        let i = at.index(bytes.len());
        match how {
            0 => bytes[i] = byte,
            1 => { bytes.remove(i); }
            _ => bytes.truncate(i),
        }
        let Ok(text) = String::from_utf8(bytes) else { return Ok(()) };
        let (a, b) = (ours(&text), sonic(&text));
        prop_assert_eq!(descending(&text), a.clone(), "{}", text);
        // sonic-rs reads on past a damaged `\u` escape; the walk stops there.
        if !bad_u_escape(&text) {
            prop_assert_eq!(a, b, "{}", text);
        }
    }
}
