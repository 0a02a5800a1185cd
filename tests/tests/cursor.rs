//! Cursor pagination end to end, at the default (stable) consistency: paging through 10,000
//! rows with heavy ties and nulls returns every row exactly once in the page order, on flat and
//! sharded namespaces, ascending, descending and by id; later pages read at the first page's
//! cut; a cursor on a ranking that cannot page, or for another query, is a 422 saying why.

use std::collections::HashSet;

use http::Method;
use layer_e2e::{Stack, now_ms};
use layer_gateway::config::IndexConfig;
use serde_json::{Value, json};

const ROWS: u64 = 10_000;

fn stack() -> Stack {
    // Default consistency (stable): only the shard count differs between the two namespaces.
    Stack::start_with(|c| {
        c.indexes = vec![IndexConfig {
            name: "sharded".into(),
            shards: 4,
            ..Default::default()
        }]
    })
}

/// 10,000 rows: `n` takes 37 values (so ties straddle every page size used here) and is missing
/// on every 50th row (nulls sort first ascending, last descending).
fn seed(stack: &Stack, ns: &str) {
    for chunk in 0..(ROWS / 2_000) {
        let rows: Vec<Value> = (chunk * 2_000..(chunk + 1) * 2_000)
            .map(|i| {
                if i % 50 == 0 {
                    json!({"id": i, "k": i % 3})
                } else {
                    json!({"id": i, "n": (i * 7919) % 37, "k": i % 3})
                }
            })
            .collect();
        stack.write(ns, json!({"upsert_rows": rows}));
    }
    // Reads at the watermark see every row once it passes the last write.
    stack.wait_watermark(ns, now_ms());
}

/// Layer's shape: the `hevlayer` client's `QueryRequest` (it always sends
/// `include_leg_breakdown`), or a plain body with `"cursor": null`. Both page alike; a native
/// Turbopuffer body does not page.
fn shape(mut body: Value, client_model: bool) -> Value {
    if client_model {
        body["include_leg_breakdown"] = json!(false);
    } else if body.get("cursor").is_none() {
        body["cursor"] = Value::Null;
    }
    body
}

fn page(stack: &Stack, ns: &str, body: &Value) -> (Value, Option<String>) {
    let layer = body.get("include_leg_breakdown").is_some();
    let body = &shape(body.clone(), layer);
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        body.to_string(),
    );
    assert_eq!(r.status, 200, "{body} -> {}", r.text());
    let header = r
        .headers
        .get("x-layer-next-cursor")
        .map(|v| v.to_str().unwrap().to_string());
    let v = r.json();
    assert_eq!(
        v.get("next_cursor").and_then(Value::as_str),
        header.as_deref(),
        "body and header agree"
    );
    (v, header)
}

/// Pages through `body` and returns every row in the order served.
fn all_pages(stack: &Stack, ns: &str, body: &Value) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..=ROWS {
        let mut b = body.clone();
        if let Some(c) = &cursor {
            b["cursor"] = json!(c);
        }
        let (v, next) = page(stack, ns, &b);
        let got = v["rows"].as_array().unwrap().clone();
        assert!(
            got.len() <= body["top_k"].as_u64().unwrap() as usize,
            "a page holds at most top_k rows"
        );
        rows.extend(got);
        match next {
            Some(n) => cursor = Some(n),
            None => return rows,
        }
    }
    panic!("paging never ended");
}

fn key(row: &Value) -> (i64, u64) {
    // Nulls sort below every value: first ascending, last descending.
    let n = row.get("n").and_then(Value::as_i64).unwrap_or(-1);
    (n, row["id"].as_u64().unwrap())
}

fn assert_every_row_once_in_order(rows: &[Value], desc: bool, by_id: bool) {
    let ids: HashSet<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), rows.len(), "no row twice");
    assert_eq!(rows.len() as u64, ROWS, "every row once");
    for w in rows.windows(2) {
        let (a, b) = (key(&w[0]), key(&w[1]));
        let ordered = if by_id {
            if desc { a.1 > b.1 } else { a.1 < b.1 }
        } else if a.0 == b.0 {
            a.1 < b.1 // ties by id ascending in both directions
        } else if desc {
            a.0 > b.0
        } else {
            a.0 < b.0
        };
        assert!(ordered, "page order broken between {} and {}", w[0], w[1]);
    }
}

#[test]
fn paging_through_ten_thousand_rows_returns_every_row_once() {
    let stack = stack();
    for ns in ["flat", "sharded"] {
        seed(&stack, ns);
        for (dir, top_k) in [("asc", 1000), ("desc", 333), ("asc", 4096)] {
            let body = shape(
                json!({"rank_by": ["n", dir], "top_k": top_k, "include_attributes": ["n"]}),
                dir == "desc",
            );
            let rows = all_pages(&stack, ns, &body);
            assert_every_row_once_in_order(&rows, dir == "desc", false);
        }
        let rows = all_pages(
            &stack,
            ns,
            &json!({"rank_by": ["id", "desc"], "top_k": 2500}),
        );
        assert_every_row_once_in_order(&rows, true, true);
    }
}

#[test]
fn filters_and_projection_survive_paging() {
    let stack = stack();
    seed(&stack, "flat");
    // Ranking by `n` without asking for it: pages still continue after it, and rows do not
    // carry it.
    let body = json!({"rank_by": ["n", "asc"], "top_k": 500, "filters": ["k", "Eq", 1]});
    let rows = all_pages(&stack, "flat", &body);
    let expected = (0..ROWS).filter(|i| i % 3 == 1).count();
    assert_eq!(rows.len(), expected);
    assert!(rows.iter().all(|r| r.get("n").is_none()), "n not projected");
    let ids: HashSet<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), expected);
    // A last page that is not full ends the paging: no cursor.
    let (v, next) = page(
        &stack,
        "flat",
        &json!({"rank_by": ["id", "asc"], "top_k": 10, "filters": ["id", "Lt", 5]}),
    );
    assert_eq!(v["rows"].as_array().unwrap().len(), 5);
    assert_eq!(next, None);
}

#[test]
fn later_pages_read_at_the_first_pages_cut() {
    let stack = stack();
    seed(&stack, "flat");
    let body = json!({"rank_by": ["id", "asc"], "top_k": 4000});
    let (first, next) = page(&stack, "flat", &body);
    let cursor = next.expect("more pages");
    // Rows written after the first page, at both ends of the order, once visible to new reads.
    stack.write(
        "flat",
        json!({"upsert_rows": [{"id": 20_000, "n": 1}, {"id": 20_001, "n": 2}]}),
    );
    stack.wait_watermark("flat", now_ms());
    let fresh = page(
        &stack,
        "flat",
        &json!({"rank_by": ["id", "desc"], "top_k": 1}),
    )
    .0;
    assert_eq!(fresh["rows"][0]["id"], 20_001, "a new query sees them");
    let mut rows: Vec<Value> = first["rows"].as_array().unwrap().clone();
    let mut next = Some(cursor);
    while let Some(c) = next {
        let mut b = body.clone();
        b["cursor"] = json!(c);
        let (v, n) = page(&stack, "flat", &b);
        rows.extend(v["rows"].as_array().unwrap().iter().cloned());
        next = n;
    }
    assert_eq!(
        rows.len() as u64,
        ROWS,
        "later pages do not see rows written after the first"
    );
    assert!(rows.iter().all(|r| r["id"].as_u64().unwrap() < ROWS));
}

#[test]
fn cursors_that_cannot_page_are_refused_with_the_reason() {
    let stack = stack();
    seed(&stack, "flat");
    let (_, next) = page(
        &stack,
        "flat",
        &json!({"rank_by": ["n", "asc"], "top_k": 10}),
    );
    let cursor = next.unwrap();
    let cases = [
        (
            json!({"rank_by": ["vector", "ANN", [0.1, 0.2]], "top_k": 10, "cursor": cursor}),
            "scores",
        ),
        (
            json!({"rank_by": ["n", "asc"], "top_k": 10, "filters": ["k", "Eq", 1], "cursor": cursor}),
            "another query",
        ),
        (
            json!({"rank_by": ["n", "desc"], "top_k": 10, "cursor": cursor}),
            "another query",
        ),
        (
            json!({"rank_by": ["n", "asc"], "top_k": 10, "cursor": "bm90LWEtdG9rZW4"}),
            "not a token",
        ),
        (
            json!({"rank_by": ["n", "asc"], "aggregate_by": {"c": ["Count"]}, "cursor": cursor}),
            "aggregations",
        ),
    ];
    for (body, says) in cases {
        let r = stack.gw(Method::POST, "/v2/namespaces/flat/query", body.to_string());
        assert_eq!(r.status, 422, "{body} -> {}", r.text());
        assert!(r.text().contains(says), "{body} -> {}", r.text());
    }
    // Queries that cannot page answer as before, with no cursor.
    let (v, next) = page(&stack, "flat", &json!({"aggregate_by": {"c": ["Count"]}}));
    assert_eq!(next, None);
    assert!(v.get("aggregations").is_some());
    // A native Turbopuffer body keeps upstream's semantics and bytes: no cursor.
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/flat/query",
        json!({"rank_by": ["id", "asc"], "top_k": 3}).to_string(),
    );
    assert_eq!(r.status, 200);
    assert!(r.headers.get("x-layer-next-cursor").is_none());
    assert!(r.json().get("next_cursor").is_none());
    // Without a `top_k` upstream's own 400 comes back, as for any ranking without a count.
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/flat/query",
        json!({"rank_by": ["id", "asc"]}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
}
