//! The in-place JSON walks (`scatter::raw`) on arbitrary bytes, against sonic-rs's lazy
//! iterators: never a panic; an object's members and an array's items, up to the first one that
//! does not read, are exactly sonic-rs's (keys unescaped, values as written); `is_value` agrees
//! with serde_json reading one raw value to the end; a walk that descends into every array
//! (`Members::next_descending`) reads the same members and hands over each array's items.
//! Inputs with 100 or more brackets are skipped (serde_json stops at 128 levels, the walks at
//! 320, sonic-rs nowhere). sonic-rs's skip does not check the digits of a `\u` escape: on text
//! with a `\u` not followed by four hex digits the walks may stop before sonic-rs does, so only
//! the members both read are compared there.
//!
//! Also the listing of a validated object that checks nothing (`Validated::plain_members`):
//! on any bytes it never panics, and on an object that validates whole and holds no backslash it
//! finds exactly the checking walk's members.

use scatter::raw;

/// The target (module docs).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let opens = data.iter().filter(|&&b| b == b'[' || b == b'{').count();
    if opens >= 100 {
        return;
    }
    let lenient = loose_unicode_escape(data);
    let ours: Vec<(String, &str)> = raw::members(text)
        .map(|(k, v)| (k.into_owned(), v))
        .collect();
    let sonic: Vec<(String, String)> = sonic_rs::to_object_iter(text)
        .map_while(Result::ok)
        .map(|(k, v)| (k.into_owned(), v.as_raw_str().to_owned()))
        .collect();
    assert!(
        (ours.len() == sonic.len() || (lenient && ours.len() < sonic.len()))
            && ours
                .iter()
                .zip(&sonic)
                .all(|(a, b)| a.0 == b.0 && a.1 == b.1),
        "members differ on {text:?}: {ours:?} against sonic-rs's {sonic:?}"
    );
    // Descending into every array reads the same members, handing over each array's items.
    let mut walk = raw::members(text);
    let mut descended = 0;
    loop {
        let mut seen = Vec::new();
        let Some((k, v)) = walk.next_descending(|_| true, |item| seen.push(item)) else {
            break;
        };
        let expected: Vec<&str> = if v.starts_with('[') {
            raw::items(v).collect()
        } else {
            Vec::new()
        };
        assert!(
            ours.get(descended) == Some(&(k.into_owned(), v)) && seen == expected,
            "a descending walk differs at member {descended} of {text:?}"
        );
        descended += 1;
    }
    assert_eq!(
        descended,
        ours.len(),
        "a descending walk read {descended} members of {text:?}"
    );
    let ours: Vec<&str> = raw::items(text).collect();
    let sonic: Vec<String> = sonic_rs::to_array_iter(text)
        .map_while(Result::ok)
        .map(|v| v.as_raw_str().to_owned())
        .collect();
    assert!(
        (ours.len() == sonic.len() || (lenient && ours.len() < sonic.len()))
            && ours.iter().zip(&sonic).all(|(a, b)| a == b),
        "items differ on {text:?}: {ours:?} against sonic-rs's {sonic:?}"
    );
    let serde = serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok();
    assert_eq!(
        raw::is_value(text),
        serde,
        "is_value disagrees with serde_json on {text:?}"
    );
    plain_listing(data);
}

/// `Validated::plain_members` against the checking walk (module docs).
fn plain_listing(data: &[u8]) {
    // Bytes that broke the promise: whatever the spans, no panic.
    if let Some(members) = scatter::Validated::kept(data).plain_members() {
        members.take(1024).for_each(drop);
    }
    let limits = scatter::Limits::default();
    let Ok(checked) = scatter::Validated::check(data, &limits) else {
        return;
    };
    let Some(plain) = checked.plain_members() else {
        return;
    };
    let plain: Vec<(&[u8], &[u8])> = plain.collect();
    let walked = scatter::validate::parse_top(data, &limits).expect("validated");
    assert!(
        plain.len() == walked.len()
            && plain
                .iter()
                .zip(walked.iter())
                .all(|(p, w)| p.0 == w.0.as_bytes() && p.1 == w.1.as_raw_str().as_bytes()),
        "the plain listing differs from the checking walk on {:?}",
        String::from_utf8_lossy(data)
    );
}

/// A `\u` that four hex digits do not follow (sonic-rs reads past it; JSON does not).
fn loose_unicode_escape(data: &[u8]) -> bool {
    data.windows(2).enumerate().any(|(i, w)| {
        w == b"\\u"
            && !data
                .get(i + 2..i + 6)
                .is_some_and(|d| d.iter().all(u8::is_ascii_hexdigit))
    })
}
