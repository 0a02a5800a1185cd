//! Unit and property tests of the cursor's pure parts: the continuation filter (checked with the
//! upstream-semantics filter evaluator), the page split, the tie order and the token.

use proptest::prelude::*;
use scatter::filter_eval::RowFilter;

use super::*;

fn paging(attr: &str, desc: bool, top_k: u32) -> Paging {
    Paging {
        attr: attr.into(),
        desc,
        top_k,
        projected: true,
    }
}

/// The page order: the attribute's (nulls first ascending, last descending), ties by id.
fn page_cmp(p: &Paging, a: &Value, b: &Value) -> Ordering {
    value_cmp(p, a, b).then_with(|| cmp_id(&a["id"], &b["id"]))
}

/// The attribute's order alone (upstream's: ties unordered).
fn value_cmp(p: &Paging, a: &Value, b: &Value) -> Ordering {
    let (x, y) = (value_of(a, &p.attr), value_of(b, &p.attr));
    let by_value = match (x.is_null(), y.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
    };
    if p.desc { by_value.reverse() } else { by_value }
}

fn row(id: u64, v: Option<i64>) -> Value {
    match v {
        Some(v) => json!({"id": id, "n": v}),
        None => json!({"id": id}),
    }
}

proptest! {
    /// The continuation filter, evaluated with upstream's semantics, matches exactly the rows
    /// after the cursor row in the page order, for both directions, with nulls and ties.
    #[test]
    fn after_filter_matches_exactly_the_rows_that_follow(
        values in proptest::collection::vec(proptest::option::of(0i64..4), 1..40),
        at in 0usize..40,
        desc: bool,
        by_id: bool,
    ) {
        let rows: Vec<Value> = values.iter().enumerate().map(|(i, v)| row(i as u64, *v)).collect();
        let p = paging(if by_id { "id" } else { "n" }, desc, 10);
        let cursor = &rows[at % rows.len()];
        let filter = after_filter(&p, value_of(cursor, &p.attr), &cursor["id"]);
        let eval = RowFilter::parse_json(&filter.to_string()).unwrap();
        for r in &rows {
            let sonic: sonic_rs::Value = sonic_rs::from_str(&r.to_string()).unwrap();
            prop_assert_eq!(
                eval.matches(&sonic),
                page_cmp(&p, r, cursor) == Ordering::Greater,
                "row {} after {} with {}", r, cursor, filter
            );
        }
    }

    /// Sorting ties by id turns upstream's attribute order into the page order.
    #[test]
    fn sorted_ties_are_the_page_order(
        values in proptest::collection::vec(proptest::option::of(0i64..3), 0..30),
        desc: bool,
    ) {
        let p = paging("n", desc, 10);
        let mut rows: Vec<Value> = values.iter().enumerate().map(|(i, v)| row(i as u64, *v)).collect();
        // Upstream: by value only, ties in an arbitrary (here reversed-id) order.
        rows.sort_by(|a, b| value_cmp(&p, a, b).then_with(|| cmp_id(&b["id"], &a["id"])));
        let mut expected = rows.clone();
        expected.sort_by(|a, b| page_cmp(&p, a, b));
        sort_ties(&mut rows, "n");
        prop_assert_eq!(rows, expected);
    }
}

#[test]
fn split_finds_straddling_ties() {
    let p = paging("n", false, 3);
    let rows = |vs: &[i64]| -> Vec<Value> {
        vs.iter()
            .enumerate()
            .map(|(i, v)| row(i as u64, Some(*v)))
            .collect()
    };
    // Fewer rows than asked: the last page.
    assert_eq!(
        split(&rows(&[1, 2]), &p, 4),
        Split::Done {
            take: 2,
            more: false
        }
    );
    // The extra row has another value: the page is the first three, more follow.
    assert_eq!(
        split(&rows(&[1, 2, 3, 4]), &p, 4),
        Split::Done {
            take: 3,
            more: true
        }
    );
    // The extra row continues the last value: one row before it, the rest by id.
    assert_eq!(
        split(&rows(&[1, 2, 2, 2]), &p, 4),
        Split::Ties {
            before: 1,
            value: json!(2)
        }
    );
    // At top_k = 10,000 there is no extra row to ask for: a full page checks its last value.
    let big = paging("n", false, 2);
    assert_eq!(
        split(&rows(&[1, 5]), &big, 2),
        Split::Ties {
            before: 1,
            value: json!(5)
        }
    );
}

#[test]
fn tokens_round_trip_and_refuse_other_queries() {
    let p = paging("n", true, 5);
    let t = Token {
        v: 1,
        a: "n".into(),
        d: true,
        c: Some(42),
        x: json!(3.5),
        i: json!("doc-1"),
        f: fingerprint(b"{}"),
    };
    let raw = Value::String(encode(&t)).to_string();
    assert_eq!(decode(&raw, &p, &fingerprint(b"{}")).unwrap(), t);
    assert!(decode(&raw, &p, &fingerprint(b"{\"a\":1}")).is_err());
    assert!(decode(&raw, &paging("n", false, 5), &fingerprint(b"{}")).is_err());
    assert!(decode("\"not-base64!\"", &p, &fingerprint(b"{}")).is_err());
    assert!(decode("17", &p, &fingerprint(b"{}")).is_err());
}

#[test]
fn only_bodies_naming_a_direction_are_parsed() {
    assert!(may_page(br#"{"rank_by":["n","asc"]}"#));
    assert!(may_page(br#"{"rank_by":["n", "desc"]}"#));
    assert!(!may_page(br#"{"rank_by":["vector","ANN",[0.1]]}"#));
}
