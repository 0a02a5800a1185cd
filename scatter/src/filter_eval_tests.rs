//! Tests for the cache filter evaluator: a table of cases checked against the emulator's
//! evaluator (same expectations as the `emulator/src/filter.rs` tests and `filter/eval.rs`), and a
//! differential property test against `reference`, a serde_json transcription of the emulator's
//! evaluation functions (`eq`, `in_list`, `ordered`, `cmp_values`, `values_equal`).

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn sonic(v: &serde_json::Value) -> Value {
    sonic_rs::from_str(&v.to_string()).expect("json")
}

fn check(f: serde_json::Value, row: serde_json::Value) -> bool {
    RowFilter::parse(&sonic(&f))
        .expect("filter parses")
        .matches(&sonic(&row))
}

#[test]
fn null_semantics_follow_the_live_service() {
    let row = json!({"id": 1, "a": 5, "n": null});
    assert!(check(json!(["b", "Lt", 3]), row.clone()), "Lt matches null");
    assert!(
        check(json!(["b", "Lte", 3]), row.clone()),
        "Lte matches null"
    );
    assert!(
        check(json!(["n", "Lte", 3]), row.clone()),
        "explicit null too"
    );
    assert!(!check(json!(["b", "Gt", 3]), row.clone()));
    assert!(!check(json!(["b", "Gte", 3]), row.clone()));
    assert!(check(json!(["b", "Eq", null]), row.clone()));
    assert!(check(json!(["n", "Eq", null]), row.clone()));
    assert!(!check(json!(["a", "Eq", null]), row.clone()));
    assert!(check(json!(["a", "NotEq", null]), row.clone()));
    assert!(!check(json!(["a", "Lt", null]), row.clone()));
    assert!(!check(json!(["b", "Lt", null]), row.clone()));
    assert!(check(json!(["b", "In", [1, null]]), row.clone()));
    assert!(!check(json!(["b", "In", [1]]), row.clone()));
    assert!(check(json!(["b", "NotIn", [1]]), row.clone()));
    assert!(
        check(json!(["a", "Eq"]), json!({"id": 1})),
        "missing operand is null"
    );
}

#[test]
fn combinators_sets_numbers_and_ids() {
    let row = json!({"id": "doc-1", "tags": ["x", "y"], "n": 4, "f": 2.5, "s": "b", "ok": true});
    assert!(check(
        json!(["And", [["tags", "In", ["x"]], ["n", "Gte", 4]]]),
        row.clone()
    ));
    assert!(check(
        json!(["Or", [["n", "Eq", 5], ["n", "Eq", 4.0]]]),
        row.clone()
    ));
    assert!(check(json!(["Not", ["n", "In", [1, 2]]]), row.clone()));
    assert!(check(json!(["f", "Gt", 2]), row.clone()));
    assert!(check(json!(["f", "Lt", 3]), row.clone()));
    assert!(check(json!(["s", "Gt", "a"]), row.clone()));
    assert!(
        !check(json!(["s", "Gt", 1]), row.clone()),
        "mixed kinds never order"
    );
    assert!(check(json!(["ok", "Gt", false]), row.clone()));
    assert!(
        !check(json!(["tags", "Gt", "a"]), row.clone()),
        "arrays never order"
    );
    assert!(check(json!(["tags", "Eq", ["x", "y"]]), row.clone()));
    assert!(!check(json!(["tags", "Eq", "x"]), row.clone()));
    assert!(check(json!(["tags", "NotIn", ["z"]]), row.clone()));
    assert!(check(json!(["id", "Eq", "doc-1"]), row.clone()));
    assert!(check(json!(["id", "In", ["doc-0", "doc-1"]]), row.clone()));
    assert!(check(
        json!({"n": ["Eq", 4], "s": ["Eq", "b"]}),
        row.clone()
    ));
    assert!(check(json!(["And", []]), row.clone()));
    assert!(!check(json!(["Or", []]), row.clone()));
    let big = json!({"id": 1, "u": u64::MAX});
    assert!(check(json!(["u", "Gt", i64::MAX]), big.clone()));
    assert!(check(json!(["u", "Eq", u64::MAX]), big));
}

#[test]
fn unsupported_and_invalid_filters_are_told_apart() {
    let parse = |f: serde_json::Value| RowFilter::parse(&sonic(&f));
    for op in ["Contains", "Glob", "Regex", "ContainsAllTokens", "AnyLt"] {
        assert_eq!(
            parse(json!(["a", op, "x"])),
            Err(FilterEvalError::Unsupported(op.into())),
            "{op}"
        );
    }
    assert!(matches!(
        parse(json!(["And", [["a", "Eq", 1], ["t", "Contains", "x"]]])),
        Err(FilterEvalError::Unsupported(_))
    ));
    for bad in [
        json!(["a", "Like", 1]),
        json!(["a", "In", 1]),
        json!(["a", "Eq", [1], {}, 3]),
        json!(["a", "Lt", [1]]),
        json!(["a", "Eq", {"$ref_new": "b"}]),
        json!("a"),
        json!(["a"]),
        json!({"a": "Eq"}),
        json!(["And", [1]]),
    ] {
        assert!(
            matches!(parse(bad.clone()), Err(FilterEvalError::Invalid(_))),
            "{bad}"
        );
    }
    assert!(RowFilter::parse_json("[").is_err());
}

#[test]
fn single_leaf_is_only_eq_or_in() {
    let f = |v: serde_json::Value| RowFilter::parse(&sonic(&v)).expect("parse");
    let eq = f(json!(["category", "Eq", "books"]));
    let (attr, vals) = eq.single_leaf().expect("leaf");
    assert_eq!((attr, vals.len()), ("category", 1));
    let inn = f(json!(["category", "In", ["a", "b"]]));
    assert_eq!(inn.single_leaf().map(|(_, v)| v.len()), Some(2));
    for other in [
        json!(["category", "NotEq", "a"]),
        json!(["n", "Gt", 1]),
        json!(["And", [["category", "Eq", "a"]]]),
        json!(["Not", ["category", "Eq", "a"]]),
    ] {
        assert!(f(other.clone()).single_leaf().is_none(), "{other}");
    }
}

/// The emulator's evaluator on serde_json values, transcribed function by function.
mod reference {
    use std::cmp::Ordering;

    use serde_json::Value;

    pub fn parse_ok(v: &Value) -> bool {
        match v {
            Value::Object(o) => o.iter().all(|(a, c)| {
                c.as_array().is_some_and(|arr| {
                    let mut full = vec![Value::String(a.clone())];
                    full.extend(arr.iter().cloned());
                    parse_ok(&Value::Array(full))
                })
            }),
            Value::Array(items) => match items.as_slice() {
                [Value::String(c), Value::Array(subs)] if c == "And" || c == "Or" => {
                    subs.iter().all(parse_ok)
                }
                [Value::String(n), inner] if n == "Not" => parse_ok(inner),
                [Value::String(_), Value::String(op), rest @ ..] if rest.len() <= 2 => {
                    let operand = rest.first().cloned().unwrap_or(Value::Null);
                    let wants_array = op == "In" || op == "NotIn";
                    let ordering = matches!(op.as_str(), "Lt" | "Lte" | "Gt" | "Gte");
                    matches!(
                        op.as_str(),
                        "Eq" | "NotEq" | "In" | "NotIn" | "Lt" | "Lte" | "Gt" | "Gte"
                    ) && (!wants_array || operand.is_array())
                        && !(ordering && operand.is_array())
                        && operand.get("$ref_new").is_none()
                }
                _ => false,
            },
            _ => false,
        }
    }

    pub fn matches(f: &Value, row: &Value) -> bool {
        match f {
            Value::Object(o) => o.iter().all(|(a, c)| {
                let mut full = vec![Value::String(a.clone())];
                full.extend(c.as_array().into_iter().flatten().cloned());
                matches(&Value::Array(full), row)
            }),
            Value::Array(items) => match items.as_slice() {
                [Value::String(c), Value::Array(subs)] if c == "And" => {
                    subs.iter().all(|s| matches(s, row))
                }
                [Value::String(c), Value::Array(subs)] if c == "Or" => {
                    subs.iter().any(|s| matches(s, row))
                }
                [Value::String(n), inner] if n == "Not" => !matches(inner, row),
                [Value::String(attr), Value::String(op), rest @ ..] => {
                    let operand = rest.first().cloned().unwrap_or(Value::Null);
                    let value = match row.get(attr) {
                        Some(Value::Null) | None => None,
                        Some(v) => Some(v),
                    };
                    match op.as_str() {
                        "Eq" => eq(value, &operand),
                        "NotEq" => !eq(value, &operand),
                        "In" => in_list(value, &operand),
                        "NotIn" => !in_list(value, &operand),
                        _ => match (value, &operand) {
                            (_, Value::Null) => false,
                            (None, _) => matches!(op.as_str(), "Lt" | "Lte"),
                            (Some(v), o) => ordered(op, v, o),
                        },
                    }
                }
                _ => false,
            },
            _ => false,
        }
    }

    fn eq(value: Option<&Value>, operand: &Value) -> bool {
        match (value, operand) {
            (None, Value::Null) => true,
            (None, _) | (Some(_), Value::Null) => false,
            (Some(v), o) => values_equal(v, o),
        }
    }

    fn in_list(value: Option<&Value>, operand: &Value) -> bool {
        let Value::Array(list) = operand else {
            return false;
        };
        match value {
            None => list.iter().any(Value::is_null),
            Some(Value::Array(items)) => items
                .iter()
                .any(|i| list.iter().any(|l| values_equal(i, l))),
            Some(v) => list.iter().any(|l| values_equal(v, l)),
        }
    }

    fn ordered(op: &str, v: &Value, o: &Value) -> bool {
        match cmp_values(v, o) {
            Some(ord) => match op {
                "Lt" => ord == Ordering::Less,
                "Lte" => ord != Ordering::Greater,
                "Gt" => ord == Ordering::Greater,
                _ => ord != Ordering::Less,
            },
            None => false,
        }
    }

    fn cmp_values(a: &Value, b: &Value) -> Option<Ordering> {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                    return Some(x.cmp(&y));
                }
                if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                    return Some(x.cmp(&y));
                }
                x.as_f64()?.partial_cmp(&y.as_f64()?)
            }
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
            _ => None,
        }
    }

    fn values_equal(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(_), Value::Number(_)) => cmp_values(a, b) == Some(Ordering::Equal),
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
            }
            _ => a == b,
        }
    }
}

fn scalar() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(json!(null)),
        (-3i64..4).prop_map(|n| json!(n)),
        prop_oneof![Just(1.0f64), Just(2.5), Just(-0.5), Just(3.0)].prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        prop_oneof![Just(""), Just("a"), Just("b"), Just("B"), Just("ab")].prop_map(|s| json!(s)),
        any::<bool>().prop_map(|b| json!(b)),
    ]
}

fn attr_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        4 => scalar(),
        1 => proptest::collection::vec(scalar(), 0..3).prop_map(serde_json::Value::Array),
        1 => Just(json!({"k": 1})),
    ]
}

fn row() -> impl Strategy<Value = serde_json::Value> {
    (
        prop_oneof![(0u64..5).prop_map(|n| json!(n)), Just(json!("doc-1"))],
        proptest::collection::btree_map(
            prop_oneof![Just("a"), Just("b"), Just("c")],
            attr_value(),
            0..3,
        ),
    )
        .prop_map(|(id, attrs)| {
            let mut m = serde_json::Map::new();
            m.insert("id".into(), id);
            for (k, v) in attrs {
                m.insert(k.into(), v);
            }
            serde_json::Value::Object(m)
        })
}

fn leaf() -> impl Strategy<Value = serde_json::Value> {
    let attr = prop_oneof![Just("a"), Just("b"), Just("c"), Just("id")];
    let op = prop_oneof![
        Just("Eq"),
        Just("NotEq"),
        Just("Gt"),
        Just("Gte"),
        Just("Lt"),
        Just("Lte"),
        Just("In"),
        Just("NotIn"),
    ];
    (
        attr,
        op,
        attr_value(),
        proptest::collection::vec(scalar(), 0..4),
    )
        .prop_map(|(a, op, v, list)| {
            if op == "In" || op == "NotIn" {
                json!([a, op, list])
            } else {
                json!([a, op, v])
            }
        })
}

fn filter() -> impl Strategy<Value = serde_json::Value> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| json!(["And", v])),
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| json!(["Or", v])),
            inner.prop_map(|f| json!(["Not", f])),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The sonic-rs evaluator agrees with the emulator's semantics on every filter and row,
    /// including which filters are accepted at all.
    #[test]
    fn agrees_with_the_reference(f in filter(), rows in proptest::collection::vec(row(), 1..6)) {
        let compiled = RowFilter::parse(&sonic(&f));
        prop_assert_eq!(compiled.is_ok(), reference::parse_ok(&f), "{}", f);
        if let Ok(compiled) = compiled {
            for r in &rows {
                prop_assert_eq!(compiled.matches(&sonic(r)), reference::matches(&f, r), "{} on {}", f, r);
            }
        }
    }
}
