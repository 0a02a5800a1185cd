//! Unit tests for [`super`] (whole-body validation): what is accepted and refused, the depth
//! limit, members read in place, and the strict walk checked against sonic-rs on any text.

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

/// Everything a caller can read from a value: its text, its type, and what each accessor and
/// iterator gives.
fn facts(v: &LazyValue<'_>) -> String {
    use sonic_rs::JsonValueTrait;
    let items: Option<Vec<String>> = v.clone().into_array_iter().map(|it| {
        it.map(|i| i.map_or_else(|e| e.to_string(), |i| facts(&i)))
            .collect()
    });
    let fields: Option<Vec<(String, String)>> = v.clone().into_object_iter().map(|it| {
        it.map(|m| {
            m.map_or_else(
                |e| (e.to_string(), String::new()),
                |(k, i)| (k.to_string(), facts(&i)),
            )
        })
        .collect()
    });
    format!(
        "{:?}",
        (
            v.as_raw_str(),
            v.get_type(),
            v.as_str(),
            v.as_f64(),
            v.as_i64(),
            v.as_u64(),
            v.as_bool(),
            v.is_null(),
            items,
            fields,
        )
    )
}

#[test]
fn lazy_values_are_sonic_rs_values() {
    for text in [
        "0",
        "-12",
        "1.5e-3",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        "true",
        "false",
        "null",
        r#""""#,
        r#""plain text é ✓""#,
        "[]",
        r#"[1, "a", [true, null], {"k": -0.0}]"#,
        r#"{"a": {"b": [1, 2]}, "c": "d"}"#,
        "{ }",
    ] {
        let ours = lazy(text).expect("a value");
        let theirs: LazyValue<'_> = sonic_rs::from_str(text).expect("valid JSON");
        assert_eq!(facts(&ours), facts(&theirs), "{text}");
    }
}

/// `parse_top` as it read every body before the strict walk: the depth scan, then sonic-rs.
fn parse_top_by_sonic<'a>(body: &'a [u8], limits: &Limits) -> Result<Entries<'a>, RewriteError> {
    let open = object_start(body)?;
    let mut entries = Entries::new();
    sonic_read_top(body, limits.effective_max_depth(), &mut entries)?;
    check_top(body, open, &entries, false)?;
    Ok(entries)
}

/// Whether any object in the JSON text `text` repeats a key, read by sonic-rs's iterators alone
/// (keys unescaped by sonic-rs).
fn sonic_finds_a_repeat(text: &[u8]) -> bool {
    fn value(v: &LazyValue<'_>) -> bool {
        if let Some(members) = v.clone().into_object_iter() {
            let mut seen = HashSet::new();
            for m in members.flatten() {
                if !seen.insert(m.0.to_string()) || value(&m.1) {
                    return true;
                }
            }
            false
        } else if let Some(items) = v.clone().into_array_iter() {
            items.flatten().any(|i| value(&i))
        } else {
            false
        }
    }
    sonic_rs::from_slice::<LazyValue<'_>>(text).is_ok_and(|v| value(&v))
}

/// `parse_top` gives what it gave by sonic-rs alone: the same error, or members with the same
/// keys and values that read the same ([`facts`]).
fn same_as_sonic(body: &[u8], max_depth: usize) {
    let limits = Limits {
        max_depth,
        ..Limits::default()
    };
    let read = |e: Entries<'_>| -> Vec<(String, String)> {
        e.iter().map(|(k, v)| (k.to_string(), facts(v))).collect()
    };
    let ours = parse_top(body, &limits).map(read);
    let theirs = parse_top_by_sonic(body, &limits).map(read);
    // The reference's search for repeated keys reads nested objects with `members`, which tries
    // the walk too: what the walk accepts must also hold no repeat by sonic-rs's reading alone.
    if ours.is_ok() {
        assert!(
            !sonic_finds_a_repeat(body),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(
        ours,
        theirs,
        "{:?} at depth {max_depth}",
        String::from_utf8_lossy(body)
    );
    // Nested objects are read by `members` the same way.
    let mut walked = Entries::new();
    if walk_members(body, raw::MAX_DEPTH, false, &mut walked).is_some() {
        let mut sonic = Entries::new();
        sonic_members_into(body, &mut sonic).expect("sonic-rs reads what the walk read");
        assert_eq!(
            read(walked),
            read(sonic),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn the_walk_accepts_what_sonic_rs_accepts() {
    for (body, depth) in [
        (
            r#"{"filters":["id","Eq",4242],"rank_by":["id","asc"],"top_k":1}"#,
            64,
        ),
        (" {\"a\" :\n[ 1 , {\"b\":null} ] }\r\n", 64),
        (r#"{"a":[[1]]}"#, 3),
        (r#"{"a":[[[1]]]}"#, 3),
        ("{}", 1),
        ("{}", 0),
        (r#"{"a":[]}"#, 1),
        (r#"{"a":1,"a":2}"#, 64),
        (r#"{"a":{"b":1,"b":2}}"#, 64),
        (r#"{"a":1} "#, 64),
        (r#"{"a":1} x"#, 64),
        (r#"{"a":1}{"#, 64),
        (r#"{"a":01}"#, 64),
        (r#"{"a":"\u0041"}"#, 64),
        ("{\"a\":\"\x01\"}", 64),
    ] {
        same_as_sonic(body.as_bytes(), depth);
    }
    same_as_sonic(b"{\"a\":\"\xff\"}", 64);
    // Objects past the walk's sixteen keys compared one by one, inside a member, with a repeat
    // before and after the switch to a set, and without one.
    let keys: Vec<String> = (0..20).map(|i| format!("\"k{i}\":{i}")).collect();
    let large = keys.join(",");
    for inner in [
        format!("{{{large}}}"),
        format!("{{{large},\"k3\":0}}"),
        format!("{{{large},\"k19\":0}}"),
        format!("{{\"k0\":1,{large}}}"),
        format!("{{{large},\"x\":{{{large}}},\"k7\":0}}"),
    ] {
        same_as_sonic(
            format!("{{\"a\":[1,{inner}],\"b\":{inner}}}").as_bytes(),
            64,
        );
    }
}

/// [`same_as_sonic`] on `text` as it is, after an opening brace, and as a member's value.
fn same_as_sonic_framed(text: &str, depth: usize) {
    same_as_sonic(text.as_bytes(), depth);
    same_as_sonic(format!("{{{text}").as_bytes(), depth);
    same_as_sonic(format!("{{\"a\":{text}}}").as_bytes(), depth);
}

/// JSON-like text: values and damaged values, nested, with whitespace, repeated keys (some
/// spelled with an escape), escapes good and bad, and bytes a string may not hold.
fn json_like() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let ws = || prop::sample::select(vec!["", "", " ", "\n", "\r\n\t"]);
    let leaf = prop_oneof![
        prop::sample::select(vec![
            "0",
            "-1",
            "1.5",
            "2e10",
            "-0.0E+3",
            "01",
            "1.",
            "-",
            "1e",
            ".5",
            "true",
            "false",
            "null",
            "tru",
            "nul",
            "18446744073709551616",
            "1E5",
            "1e+5",
            "-0",
            "1e400",
            "1234567890123456789012345678901234567890",
            "\"a\tb\"",
            "\"a\nb\"",
            "[",
            "]",
            "}",
            "{",
            ",",
            ":",
        ])
        .prop_map(str::to_owned),
        "[a-z é✓\u{1}\u{7f}\\[\\]{}:,]{0,6}".prop_map(|s| format!("\"{s}\"")),
        prop::sample::select(vec![
            r#""\u0041""#,
            r#""a\nb""#,
            r#""\"""#,
            r#""\q""#,
            r#""\u00zz""#,
            r#""\ud800""#,
        ])
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(4, 32, 4, move |inner| {
        prop_oneof![
            prop::collection::vec((ws(), inner.clone()), 0..4).prop_map(|v| {
                let items: Vec<String> = v.into_iter().map(|(w, i)| format!("{w}{i}")).collect();
                format!("[{}]", items.join(","))
            }),
            prop::collection::vec(
                (
                    ws(),
                    prop::sample::select(vec!["a", "b", "filters", "é", r"filt\u0065rs"]),
                    ws(),
                    inner
                ),
                0..4
            )
            .prop_map(|m| {
                let members: Vec<String> = m
                    .into_iter()
                    .map(|(w1, k, w2, v)| format!("{w1}\"{k}\"{w2}:{w1}{v}{w2}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

proptest::proptest! {
    #[test]
    fn members_agree_with_sonic_rs_on_json_like_text(
        value in json_like(),
        before in proptest::sample::select(vec!["", " ", "\n"]),
        tail in proptest::sample::select(vec!["", " ", "\r\n", "x", "}", "{}", " [[[["]),
        cut in proptest::option::of(0usize..200),
        depth in 0usize..8,
    ) {
        let mut text = format!("{before}{{\"top\":{value},\"n\":1}}{tail}").into_bytes();
        same_as_sonic(&text, depth);
        let object = format!("{before}{value}{tail}");
        same_as_sonic(object.as_bytes(), depth);
        if let Some(cut) = cut {
            text.truncate(cut.min(text.len()));
            same_as_sonic(&text, depth);
        }
    }

    #[test]
    fn the_walk_agrees_with_sonic_rs_on_any_text(
        text in "[{}\\[\\]\":,a-c0-9. tfnrue\\\\-]{0,40}",
        depth in 0usize..6,
    ) {
        same_as_sonic_framed(&text, depth);
    }

    #[test]
    fn the_walk_agrees_with_sonic_rs_on_any_text_without_a_backslash(
        text in "[{}\\[\\]\":,a-c0-9. tfnrueE+\t\n\u{1}é✓-]{0,60}",
        depth in 0usize..6,
    ) {
        same_as_sonic_framed(&text, depth);
    }
}

#[test]
fn ordinary_bodies_are_read_in_one_walk() {
    let one_walk = |body: &str| read_top(body.as_bytes(), 64, &mut Entries::new());
    for body in [
        r#"{"filters":["id","Eq",4242],"rank_by":["id","asc"],"top_k":1}"#,
        r#"{"upsert_rows":[{"id":1,"vector":[0.1,-2e3]},{"id":2,"vector":[1,2]}],"distance_metric":"cosine_distance"}"#,
        // An inner object's keys are its own: the same key after it, or in a sibling, is not a
        // repeat.
        r#"{"q":{"a":{"b":1},"b":2},"r":[{"x":1},{"x":2}]}"#,
    ] {
        assert_eq!(one_walk(body), Ok(true), "{body}");
    }
    // A repeat inside, an escape, or trailing text: read again by sonic-rs (which reads the
    // members; the repeat and the tail are refused after).
    for body in [
        r#"{"q":{"a":1,"a":2}}"#,
        r#"{"q":"\u0041"}"#,
        r#"{"q":1} x"#,
    ] {
        assert_eq!(one_walk(body), Ok(false), "{body}");
    }
}
