//! The cache filter evaluator (`scatter::filter_eval::RowFilter`) against a naive evaluator
//! over serde_json values, written from the semantics in that module's docs (which follow the
//! live service).
//!
//! The first byte picks the mode. Structured (even): the input drives a generator of a filter
//! (array and legacy object forms, `And`/`Or`/`Not`, every operator, unsupported and unknown
//! ones, bad shapes) and of four rows; the evaluator and the reference must agree on whether the
//! filter compiles (and on `Unsupported` vs `Invalid`, and the operator named), and on every row.
//! Raw (odd): the rest is the filter's JSON text: compiling and evaluating it never panics.

use std::cmp::Ordering;

use scatter::filter_eval::{FilterEvalError, RowFilter};
use serde_json::{Value, json};

use crate::input::Gen;

const ATTRS: [&str; 4] = ["a", "b", "id", "c"];
const OPS: [&str; 13] = [
    "Eq", "NotEq", "Gt", "Gte", "Lt", "Lte", "In", "NotIn", "Contains", "Glob", "AnyLt", "Bogus",
    "And",
];
const UNSUPPORTED: [&str; 3] = ["Contains", "Glob", "AnyLt"];

fn value(g: &mut Gen<'_>, depth: usize) -> Value {
    match g.below(if depth > 1 { 16 } else { 18 }) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(false),
        3 => json!(g.pick(&[0i64, 1, -1, 2, 7, i64::MIN, i64::MAX])),
        4 => json!(g.pick(&[
            u64::MAX,
            9_223_372_036_854_775_808,
            18_446_744_073_709_551_614
        ])),
        5 => json!(g.pick(&[
            0.0f64,
            1.0,
            1.5,
            -2.5,
            2.0,
            1e300,
            -1e-300,
            9.223_372_036_854_776e18
        ])),
        6..=9 => json!(g.pick(&["a", "b", "", "A", "é", "ab", "1"])),
        10 | 11 => json!(g.below(4)),
        12 => json!({"a": g.below(3)}),
        13 => json!({"$ref_new": "a"}),
        14 | 15 => json!(g.pick(&["x", "a"])),
        _ => {
            let n = g.below(4);
            Value::Array((0..n).map(|_| value(g, depth + 1)).collect())
        }
    }
}

fn filter(g: &mut Gen<'_>, depth: usize) -> Value {
    let kinds = if depth >= 4 { 6 } else { 12 };
    match g.below(kinds) {
        0..=4 => {
            let mut items = vec![json!(g.pick(&ATTRS)), json!(g.pick(&OPS))];
            match g.below(6) {
                0 => {}
                1 => items.extend([value(g, 1), value(g, 1)]),
                2 => items.extend([value(g, 1), value(g, 1), value(g, 1)]),
                _ => items.push(value(g, 1)),
            }
            Value::Array(items)
        }
        5 => value(g, 0),
        6 | 7 => {
            let n = g.below(4);
            let subs: Vec<Value> = (0..n).map(|_| filter(g, depth + 1)).collect();
            json!([g.pick(&["And", "Or"]), subs])
        }
        8 => json!(["Not", filter(g, depth + 1)]),
        9 => {
            let mut obj = serde_json::Map::new();
            for attr in ATTRS.iter().take(g.below(3)) {
                let cond = if g.below(5) == 0 {
                    value(g, 1)
                } else {
                    json!([g.pick(&OPS), value(g, 1)])
                };
                obj.insert((*attr).to_string(), cond);
            }
            Value::Object(obj)
        }
        10 => json!([g.pick(&["And", "Or", "Not"]), value(g, 1)]),
        _ => json!([g.pick(&["And", "Or", "Not", "a"]), g.pick(&OPS)]),
    }
}

fn row(g: &mut Gen<'_>) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("id".into(), json!(g.below(3)));
    for attr in ["a", "b", "c"] {
        if g.below(3) != 0 {
            obj.insert(attr.into(), value(g, 0));
        }
    }
    Value::Object(obj)
}

/// The reference's verdict on a filter: `Ok`, or the error kind with the operator named.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Compiles.
    Ok,
    /// A valid operator the evaluator does not implement.
    Unsupported(String),
    /// Upstream would reject it.
    Invalid,
}

fn as_cond(attr: &str, cond: &Value) -> Option<Value> {
    let arr = cond.as_array()?;
    let mut full = vec![json!(attr)];
    full.extend(arr.iter().cloned());
    Some(Value::Array(full))
}

fn first_problem(mut parts: impl Iterator<Item = Verdict>) -> Verdict {
    parts.find(|v| *v != Verdict::Ok).unwrap_or(Verdict::Ok)
}

/// The reference compiler: the first problem in document order.
#[must_use]
pub fn reference_parse(f: &Value) -> Verdict {
    match f {
        Value::Object(o) => first_problem(o.iter().map(|(a, c)| match as_cond(a, c) {
            Some(full) => reference_parse(&full),
            None => Verdict::Invalid,
        })),
        Value::Array(items) => match items.as_slice() {
            [Value::String(c), Value::Array(subs)] if c == "And" || c == "Or" => {
                first_problem(subs.iter().map(reference_parse))
            }
            [Value::String(n), inner] if n == "Not" => reference_parse(inner),
            [Value::String(_), Value::String(op), rest @ ..] if rest.len() <= 2 => {
                let operand = rest.first().unwrap_or(&Value::Null);
                let known = ["Eq", "NotEq", "Gt", "Gte", "Lt", "Lte", "In", "NotIn"];
                if UNSUPPORTED.contains(&op.as_str()) {
                    return Verdict::Unsupported(op.clone());
                }
                let list = op == "In" || op == "NotIn";
                let ordering = ["Gt", "Gte", "Lt", "Lte"].contains(&op.as_str());
                let fine = known.contains(&op.as_str())
                    && operand.get("$ref_new").is_none()
                    && (!list || operand.is_array())
                    && !(ordering && operand.is_array());
                if fine { Verdict::Ok } else { Verdict::Invalid }
            }
            _ => Verdict::Invalid,
        },
        _ => Verdict::Invalid,
    }
}

fn int(v: &Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
}

fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => match (int(a), int(b)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => order(a, b) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        _ => a == b,
    }
}

/// The reference evaluator (on a filter [`reference_parse`] accepts).
#[must_use]
pub fn reference_matches(f: &Value, row: &Value) -> bool {
    match f {
        Value::Object(o) => o
            .iter()
            .all(|(a, c)| as_cond(a, c).is_some_and(|full| reference_matches(&full, row))),
        Value::Array(items) => match items.as_slice() {
            [Value::String(c), Value::Array(subs)] if c == "And" => {
                subs.iter().all(|s| reference_matches(s, row))
            }
            [Value::String(c), Value::Array(subs)] if c == "Or" => {
                subs.iter().any(|s| reference_matches(s, row))
            }
            [Value::String(n), inner] if n == "Not" => !reference_matches(inner, row),
            [Value::String(attr), Value::String(op), rest @ ..] => {
                let operand = rest.first().unwrap_or(&Value::Null);
                let value = row.get(attr).filter(|v| !v.is_null());
                let eq = match value {
                    None => operand.is_null(),
                    Some(v) => !operand.is_null() && equal(v, operand),
                };
                let list = operand.as_array().map(Vec::as_slice).unwrap_or_default();
                let member = |v: &Value| list.iter().any(|l| equal(v, l));
                let within = match value {
                    None => list.iter().any(Value::is_null),
                    Some(Value::Array(items)) => items.iter().any(member),
                    Some(v) => member(v),
                };
                let ord = || value.and_then(|v| order(v, operand));
                match op.as_str() {
                    "Eq" => eq,
                    "NotEq" => !eq,
                    "In" => within,
                    "NotIn" => !within,
                    _ if operand.is_null() => false,
                    "Lt" | "Lte" if value.is_none() => true,
                    "Lt" => ord() == Some(Ordering::Less),
                    "Lte" => matches!(ord(), Some(Ordering::Less | Ordering::Equal)),
                    "Gt" => ord() == Some(Ordering::Greater),
                    "Gte" => matches!(ord(), Some(Ordering::Greater | Ordering::Equal)),
                    other => panic!("reference_matches on an uncompiled operator {other}"),
                }
            }
            _ => panic!("reference_matches on an uncompiled filter {f}"),
        },
        _ => panic!("reference_matches on an uncompiled filter {f}"),
    }
}

fn verdict(r: &Result<RowFilter, FilterEvalError>) -> Verdict {
    match r {
        Ok(_) => Verdict::Ok,
        Err(FilterEvalError::Unsupported(op)) => Verdict::Unsupported(op.clone()),
        Err(FilterEvalError::Invalid(_)) => Verdict::Invalid,
    }
}

/// The target (module docs).
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        let text = String::from_utf8_lossy(rest);
        if let Ok(f) = RowFilter::parse_json(&text) {
            let _ = f.single_leaf();
            for row in [
                r#"{"id":1,"a":1,"b":"x"}"#,
                r#"{"id":"x","a":[1,null],"c":null}"#,
            ] {
                let row: sonic_rs::Value = sonic_rs::from_str(row).expect("a fixed row");
                let _ = f.matches(&row);
            }
        }
        return;
    }
    let mut g = Gen::new(rest);
    let f = filter(&mut g, 0);
    let rows: Vec<Value> = (0..4).map(|_| row(&mut g)).collect();
    let text = f.to_string();
    let compiled = RowFilter::parse_json(&text);
    let want = reference_parse(&f);
    assert_eq!(verdict(&compiled), want, "compiling {text}: {compiled:?}");
    let Ok(compiled) = compiled else {
        return;
    };
    for r in &rows {
        let row_text = r.to_string();
        let sonic_row: sonic_rs::Value = sonic_rs::from_str(&row_text).expect("serde_json output");
        assert_eq!(
            compiled.matches(&sonic_row),
            reference_matches(&f, r),
            "filter {text} on row {row_text}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_follows_the_documented_semantics() {
        let row = json!({"id": 1, "a": 2, "b": [1, "x"], "c": null});
        let yes = |f: Value| reference_matches(&f, &row);
        assert!(yes(json!(["c", "Lt", 5])), "Lt matches null");
        assert!(!yes(json!(["c", "Gt", 5])));
        assert!(!yes(json!(["a", "Lt", null])));
        assert!(yes(json!(["a", "Eq", 2.0])));
        assert!(yes(json!(["b", "In", ["x"]])));
        assert!(yes(json!(["missing", "In", [null]])));
        assert!(yes(json!({"a": ["Gte", 2], "id": ["Eq", 1]})));
        assert!(!yes(json!(["Or", []])));
        assert!(yes(json!(["Not", ["a", "Eq", 3]])));
        assert_eq!(reference_parse(&json!(["a", "In", 1])), Verdict::Invalid);
        assert_eq!(reference_parse(&json!(["a", "Lt", [1]])), Verdict::Invalid);
        assert_eq!(
            reference_parse(&json!(["And", [["a", "Glob", "x"], ["a", "Bogus"]]])),
            Verdict::Unsupported("Glob".into())
        );
        assert_eq!(reference_parse(&json!(["Not", "Eq"])), Verdict::Invalid);
        assert_eq!(reference_parse(&json!(["And", "Eq"])), Verdict::Ok);
    }
}
