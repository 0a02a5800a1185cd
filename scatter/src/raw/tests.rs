//! Unit tests of the walks: members, items, numbers, strings, depth.

use super::*;

fn all(text: &str) -> Vec<(String, &str)> {
    members(text).map(|(k, v)| (k.into_owned(), v)).collect()
}

#[test]
fn members_and_items_read_as_written() {
    assert_eq!(
        all(r#" { "a" : [1, {"b":null}] ,"c\u0064":"x\"y", "e":-0.5e+3,"f":{} } "#),
        vec![
            ("a".to_string(), r#"[1, {"b":null}]"#),
            ("cd".to_string(), r#""x\"y""#),
            ("e".to_string(), "-0.5e+3"),
            ("f".to_string(), "{}"),
        ]
    );
    assert_eq!(
        items(r#"[ 1 ,"two",[3], {"four":4}, true ]"#).collect::<Vec<_>>(),
        vec!["1", r#""two""#, "[3]", r#"{"four":4}"#, "true"]
    );
    assert!(all("{}").is_empty());
    assert_eq!(items(" [ ] ").count(), 0);
    assert!(all("[1]").is_empty(), "an array has no members");
    assert_eq!(items(r#"{"a":1}"#).count(), 0, "an object has no items");
}

#[test]
fn the_walk_ends_at_the_first_member_that_does_not_read() {
    for (text, read) in [
        (r#"{"a":1,"b":tru,"c":3}"#, 1),
        (r#"{"a":1,"b":01}"#, 1),
        (r#"{"a":1,"b":-01,"c":3}"#, 1),
        // A value is read as far as it goes; what follows it ends the walk (as a parser's
        // iterator yields a member before failing on what follows it).
        (r#"{"a":1,"b":truex,"c":3}"#, 2),
        (r#"{"a":1,"b":1x,"c":3}"#, 2),
        (r#"{"a":1,"b":1.5.3,"c":3}"#, 2),
        (r#"{"a":1,"b":1e5e,"c":3}"#, 2),
        (r#"{"a":1,"b":-,"c":3}"#, 1),
        (r#"{"a":1,"b":"x"y,"c":3}"#, 2),
        (r#"{"a":1,"b":[1]],"c":3}"#, 2),
        (r#"{"a":1,"b":1.}"#, 1),
        (r#"{"a":1,"b":"\x"}"#, 1),
        ("{\"a\":1,\"b\":\"\u{1}\"}", 1),
        (r#"{"a":1,"b":[1,]}"#, 1),
        (r#"{"a":1,"b":{"c"}}"#, 1),
        (r#"{"a":1,"b":2"#, 2),
        (r#"{"a":1 "b":2}"#, 1),
        (r#"{"a":1,}"#, 1),
        (r#"{,"a":1}"#, 0),
        (r#"{"a":1,"b":[1,2}"#, 1),
        (r#"{"a":"\u12"}"#, 0),
    ] {
        assert_eq!(all(text).len(), read, "{text}");
        let sonic = sonic_rs::to_object_iter(text).map_while(Result::ok).count();
        assert_eq!(sonic, read, "sonic-rs reads {text} the same");
    }
}

/// Every member read with [`Members::next_descending`], descending where `descend(key)`,
/// with the items each handed over.
pub(super) fn descended(
    text: &str,
    descend: impl Fn(&str) -> bool,
) -> Vec<(String, &str, Vec<&str>)> {
    let mut walk = members(text);
    let mut out = Vec::new();
    loop {
        let mut seen = Vec::new();
        let Some((k, v)) = walk.next_descending(&descend, |item| seen.push(item)) else {
            return out;
        };
        out.push((k.into_owned(), v, seen));
    }
}

#[test]
fn a_descending_walk_hands_over_an_arrays_items_and_reads_on() {
    let text = r#"{"rows": [ {"id":1}, "x" ,[] ] , "skip":[1], "n":2, "e":[ ]}"#;
    assert_eq!(
        descended(text, |k| k != "skip"),
        vec![
            (
                "rows".into(),
                r#"[ {"id":1}, "x" ,[] ]"#,
                vec![r#"{"id":1}"#, r#""x""#, "[]"]
            ),
            ("skip".into(), "[1]", vec![]),
            ("n".into(), "2", vec![]),
            ("e".into(), "[ ]", vec![]),
        ]
    );
    let mut walk = members(text);
    assert!(walk.next_descending(|_| true, |_| {}).is_some());
    assert!(!walk.ended_whole());
    while walk.next_descending(|_| true, |_| {}).is_some() {}
    assert!(walk.ended_whole(), "the walk goes on to the object's end");
    // An array that does not read whole ends the walk after handing over what read.
    let mut seen = Vec::new();
    let mut walk = members(r#"{"rows":[1,2,}"#);
    assert!(walk.next_descending(|_| true, |i| seen.push(i)).is_none());
    assert_eq!(seen, ["1", "2"]);
    assert!(walk.next().is_none());
}

#[test]
fn nesting_deeper_than_the_cap_ends_the_walk() {
    let deep = |n: usize| format!(r#"{{"a":1,"b":{}{}}}"#, "[".repeat(n), "]".repeat(n));
    assert_eq!(all(&deep(MAX_DEPTH)).len(), 2);
    assert_eq!(all(&deep(MAX_DEPTH + 1)).len(), 1);
    // Descending into the array checks its items as skipping it checks it.
    assert_eq!(descended(&deep(MAX_DEPTH), |_| true).len(), 2);
    assert_eq!(descended(&deep(MAX_DEPTH + 1), |_| true).len(), 1);
    // Far deeper than any stack would take recursing without the cap.
    assert_eq!(all(&deep(1 << 20)).len(), 1);
}

/// Every byte value at every place of a word: the lowest byte `structure` flags is the first
/// quote or bracket a bytewise reading finds.
#[test]
fn structure_flags_the_first_quote_or_bracket() {
    let is_structure = |c: u8| matches!(c, b'"' | b'[' | b']' | b'{' | b'}');
    for byte in 0..=255u8 {
        for at in 0..8 {
            for after in [b'x', b'{', 0xfb] {
                let mut w = [b'5'; 8];
                w[at] = byte;
                if at < 7 {
                    w[at + 1] = after;
                }
                let first = w.iter().position(|&c| is_structure(c)).unwrap_or(8);
                let stops = structure(u64::from_le_bytes(w));
                let found = if stops == 0 {
                    8
                } else {
                    (stops.trailing_zeros() / 8) as usize
                };
                assert_eq!(found, first, "{w:?}");
            }
        }
    }
}

/// Vectors (numbers right after commas, read in one run) are checked as any other array: a
/// damaged number anywhere in the run ends the value, and whitespace or another kind of value
/// in the middle reads the long way to the same end.
#[test]
fn vectors_read_in_one_run_are_checked_number_by_number() {
    for good in [
        "[1,2,3]",
        "[-0.1,0.25,1e-7,-2E+3,0]",
        "[1, 2 ,3]",
        "[1,\"a\",2,[3,4],{\"k\":5},6]",
        "[[0.5,0.25],[1,2]]",
        "{\"v\":[1,2],\"n\":3}",
    ] {
        assert!(is_value(good), "{good}");
    }
    for bad in [
        "[1,2,-]",
        "[1,2,01]",
        "[1,2,1.]",
        "[1,2,1e]",
        "[1,2,3,]",
        "[1,2,-x]",
        "[1,2,3",
        "[1,2,3}",
        "{\"v\":[1,2,3],\"n\":0x}",
        // A number then `,2` inside an object (not an array): a member without a key.
        "{\"a\":1,2}",
        "[{\"a\":1,2}]",
        "{\"a\":[{\"b\":1,2}]}",
        // At the top, a number ends at the `,` (the walk's caller reads what follows).
        "1,2",
    ] {
        assert!(!is_value(bad), "{bad}");
    }
    assert_eq!(items("[1,2,3]").collect::<Vec<_>>(), ["1", "2", "3"]);
    assert_eq!(
        all(r#"{"v":[0.1,-2,3e4],"id":7}"#),
        [("v".into(), "[0.1,-2,3e4]"), ("id".into(), "7")]
    );
}

#[test]
fn checked_arrays_are_counted_by_commas_only_when_flat() {
    for (text, n) in [
        ("[]", 0),
        ("[ \n ]", 0),
        (" [1]", 1),
        ("[1,2,3]", 3),
        ("[ -1.5e3 , 2 ,\n3 ]", 3),
        // Strings and containers are walked: their commas are not items.
        (r#"["a,b","c"]"#, 2),
        ("[[1,2],[3,4],5]", 3),
        (r#"[{"a":1,"b":2}]"#, 1),
        ("[[]]", 1),
        // Not an array.
        (r#"{"a":1}"#, 0),
        ("7", 0),
        ("", 0),
    ] {
        assert_eq!(count_items_of_checked(text), n, "{text}");
        assert_eq!(items_of_checked(text).count(), n, "{text}");
    }
    // Long enough for the search to span many SIMD blocks; a string or an array anywhere (its
    // commas not items) sends the count to the walk.
    let numbers = (0..100)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(count_items_of_checked(&format!("[{numbers}]")), 100);
    assert_eq!(
        count_items_of_checked(&format!("[{numbers}, \"a,b\"]")),
        101
    );
    assert_eq!(
        count_items_of_checked(&format!("[\"a,b\", {numbers}]")),
        101
    );
    assert_eq!(count_items_of_checked(&format!("[{numbers}, [1,2]]")), 101);
}

/// A plain run of any length with one byte of any value at any place (blocks and words both
/// cross it): the skip stops exactly at the first quote or bracket, or where fewer than eight
/// bytes are left with none before.
#[test]
fn long_plain_runs_stop_at_the_first_quote_or_bracket() {
    let is_structure = |c: u8| matches!(c, b'"' | b'[' | b']' | b'{' | b'}');
    for len in [0, 7, 8, 9, 39, 40, 41, 72, 100] {
        for at in 0..len {
            for byte in 0..=255u8 {
                let mut text = vec![b'5'; len];
                text[at] = byte;
                for from in [0, 1, 3].into_iter().filter(|&f| f <= len) {
                    let stop = structure_from(&text, from);
                    let end = (from..len).find(|&i| is_structure(text[i])).unwrap_or(len);
                    assert!(
                        stop <= end,
                        "past a stop: {len} {at} {byte} {from} -> {stop}"
                    );
                    assert!(
                        stop == end || len - stop < 8,
                        "{len} {at} {byte} {from} -> {stop}"
                    );
                }
            }
        }
    }
}
