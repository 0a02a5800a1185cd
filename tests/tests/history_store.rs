//! Search history and its object store end to end, against every object-store backend
//! available: the local directory always, S3 too when `scripts/s3-server` started one
//! (`LAYER_TEST_S3_ENDPOINT`).
//!
//! Covered: batching into objects, restart survival (graceful flush), an object store that fails
//! and comes back (queries unaffected, the held entries counted, listing answers 502, then every
//! entry written once the store is back; `object_store_outage.rs` does the same over S3), and a selective filter over a
//! history deeper than one call's read budget (short pages with a cursor that add up to the full
//! answer). Entries, filters and clickstream are in `history.rs`; the shared helpers are
//! `layer_e2e::history`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::history::{
    Backend, backends, entries, ids_of, list, nanos, query, seed, stack, trace_of,
};
use layer_e2e::{Stack, pause, temp_dir};
use layer_gateway::Config;
use layer_gateway::config::IndexConsistency;
use layer_gateway::core::store::ObjectStore;
use layer_gateway::features::history::entry::{Feed, now_nanos, object_key, rfc3339};
use layer_gateway::features::history::list::MAX_OBJECTS_READ;
use serde_json::{Value, json};

/// Objects under `{feed}/{ns}/`, with their record counts.
fn objects(http: &layer_e2e::Http, store: &ObjectStore, prefix: &str) -> Vec<(String, usize)> {
    http.block_on(async {
        let mut out = Vec::new();
        for o in store.list(prefix).await.unwrap() {
            let body = store.get(&o.key).await.unwrap().unwrap();
            let lines = body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
            out.push((o.key, lines));
        }
        out
    })
}

#[test]
fn batches_fill_objects_and_survive_a_restart() {
    for backend in backends("restart") {
        let tweak = {
            let backend = backend.clone();
            move |c: &mut Config| {
                backend.apply(c);
                c.gateway.consistency.default_mode = IndexConsistency::Strong;
                // Only size (and shutdown) flushes in this test.
                c.gateway.history.flush_interval_ms = 600_000;
                c.gateway.history.max_batch_entries = 5;
            }
        };
        let mut stack = Stack::start_with(tweak.clone());
        let ns = "restart";
        seed(&stack, ns);
        let mut traces = Vec::new();
        let filters = json!(["title", "In", ["alpha", "beta", "gamma"]]);
        let body = json!({"vector": [1.0, 0.0], "top_k": 1, "filters": filters});
        for i in 0..12 {
            // Every other body spread over lines, as a hand-written one may be: its `filters`
            // go into the entry as written, and a stored entry must still be one line.
            let text = if i % 2 == 1 {
                serde_json::to_string_pretty(&body).unwrap()
            } else {
                body.to_string()
            };
            let r = stack.gw_with(
                Method::POST,
                &format!("/v2/namespaces/{ns}/query"),
                &[("x-hevlayer-tags", &format!("i:{i}"))],
                text,
            );
            assert_eq!(r.status, 200, "{}", r.text());
            traces.push(trace_of(&r));
        }
        let store = backend.open();
        let prefix = format!("search-history/{ns}/");
        let deadline = Instant::now() + Duration::from_secs(20);
        while objects(&stack.http, &store, &prefix).len() < 2 {
            assert!(Instant::now() < deadline, "two full batches never written");
            pause(Duration::from_millis(20));
        }
        assert_eq!(
            objects(&stack.http, &store, &prefix)
                .iter()
                .map(|(_, n)| *n)
                .collect::<Vec<_>>(),
            [5, 5],
            "the last two entries wait in the open batch"
        );

        // A graceful restart writes the open batch; the new gateway reads it all back.
        stack.restart_gateway(tweak, None);
        let stored = objects(&stack.http, &store, &prefix);
        assert_eq!(
            stored.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
            [5, 5, 2],
            "{stored:?}"
        );
        let all = entries(&stack, ns, "?limit=500");
        assert_eq!(all.len(), 12);
        let listed: Vec<&str> = all
            .iter()
            .map(|e| e["trace_id"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = traces.iter().rev().map(String::as_str).collect();
        assert_eq!(
            listed, expected,
            "every entry, newest first, after the restart"
        );
        assert!(all.iter().all(|e| e["query"]["filters"] == filters));
        for (key, _) in &stored {
            // search-history/{ns}/{YYYY-MM-DD}/{timestamp_nanos}.jsonl, named by its newest entry.
            let parts: Vec<&str> = key.split('/').collect();
            assert_eq!(parts.len(), 4, "{key}");
            assert_eq!(parts[2].len(), 10, "{key}");
            let named: u64 = parts[3].strip_suffix(".jsonl").unwrap().parse().unwrap();
            assert!(
                all.iter().any(|e| nanos(e) == named),
                "{key} names an entry"
            );
        }
        let mut seen = HashSet::new();
        let mut before = String::new();
        loop {
            let page = list(
                &stack,
                &format!("/v2/namespaces/{ns}/search-history?limit=4{before}"),
            );
            for e in page["entries"].as_array().unwrap() {
                assert!(seen.insert(nanos(e)), "no entry twice");
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(c) => before = format!("&before={c}"),
                None => break,
            }
        }
        assert_eq!(seen.len(), 12);
        assert_eq!(entries(&stack, ns, "?tag=i:3")[0]["trace_id"], traces[3]);
    }
}

#[test]
fn a_failing_store_costs_history_not_queries() {
    let dir = temp_dir("objects-down");
    let backend = Backend::Local(dir.clone());
    let stack = stack(&backend, |c| c.gateway.history.flush_interval_ms = 20);
    let ns = "down";
    seed(&stack, ns);
    let mut traces = vec![trace_of(&query(
        &stack,
        ns,
        &json!({"vector": [1.0, 0.0], "top_k": 1}),
        &[],
    ))];
    let retried = r#"layer_search_history_events_total{outcome="retried"}"#;
    let failed = r#"layer_search_history_events_total{outcome="failed"}"#;
    let (retried_before, failed_before) = (stack.metric(retried), stack.metric(failed));
    let store = backend.open();
    let prefix = format!("search-history/{ns}/");
    let deadline = Instant::now() + Duration::from_secs(20);
    while objects(&stack.http, &store, &prefix).is_empty() {
        assert!(Instant::now() < deadline, "the first entry never written");
        pause(Duration::from_millis(20));
    }
    // The store's root becomes a file: every write and listing fails from now on.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    for _ in 0..3 {
        let r = query(&stack, ns, &json!({"vector": [1.0, 0.0], "top_k": 1}), &[]);
        assert_eq!(ids_of(&r), ["a"]);
        traces.push(trace_of(&r));
    }
    // Their batches failed: held for a retry and counted, not given up.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.metric(retried) < retried_before + 3.0 {
        assert!(Instant::now() < deadline, "failed writes never counted");
        pause(Duration::from_millis(20));
    }
    let r = stack.gw(
        Method::GET,
        &format!("/v2/namespaces/{ns}/search-history"),
        Bytes::new(),
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"], "object_store_error");

    // The store comes back: the held entries and new ones are written.
    std::fs::remove_file(&dir).unwrap();
    traces.push(trace_of(&query(
        &stack,
        ns,
        &json!({"vector": [1.0, 0.0], "top_k": 1}),
        &[],
    )));
    // The first entry's object went with the directory the outage removed; every later entry
    // must be in the store.
    let deadline = Instant::now() + Duration::from_secs(30);
    while objects(&stack.http, &store, &prefix)
        .iter()
        .map(|(_, n)| n)
        .sum::<usize>()
        < traces.len() - 1
    {
        assert!(
            Instant::now() < deadline,
            "history never all written after the store came back: {:?} {} {}",
            objects(&stack.http, &store, &prefix),
            stack.metric(retried),
            stack.metric("layer_search_history_pending_entries")
        );
        pause(Duration::from_millis(20));
    }
    assert_eq!(stack.metric(failed), failed_before, "no entry given up");
    assert_eq!(
        objects(&stack.http, &store, &prefix)
            .iter()
            .map(|(_, n)| n)
            .sum::<usize>(),
        traces.len() - 1,
        "each entry once"
    );
    // The recent window still holds the first one.
    let listed: Vec<String> = entries(&stack, ns, "?limit=500")
        .iter()
        .map(|e| e["trace_id"].as_str().unwrap().to_string())
        .collect();
    traces.reverse();
    assert_eq!(listed, traces, "every entry, newest first");
}

/// Follows `path`'s cursor to the end (`path` has a query string): every event in order, the
/// number of pages, and how many held fewer than `limit` events but had a cursor.
fn follow_clicks(stack: &Stack, path: &str, limit: usize) -> (Vec<Value>, usize, usize) {
    let (mut all, mut pages, mut short) = (Vec::new(), 0, 0);
    let mut before = String::new();
    loop {
        pages += 1;
        assert!(pages < 100, "{path}: the cursor does not end");
        let page = list(stack, &format!("{path}&limit={limit}{before}"));
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= limit);
        all.extend(events.iter().cloned());
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => {
                if events.len() < limit {
                    short += 1;
                }
                before = format!("&before={c}");
            }
            None => break,
        }
    }
    (all, pages, short)
}

#[test]
fn a_rare_trace_id_deep_in_history_pages_out_instead_of_failing() {
    for backend in backends("deep") {
        let stack = stack(&backend, |_| {});
        let ns = "deep";
        seed(&stack, ns);
        let rare = "5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e";
        // Older history, as other gateways left it: more objects than one call may read, two
        // events each, over the three days before now; the rare trace is in the oldest object
        // and in one in the middle.
        let store = backend.open();
        let objects = 2 * MAX_OBJECTS_READ + 10;
        let start = now_nanos() - 3 * 86_400_000_000_000;
        let step = 2 * 86_400_000_000_000 / objects as u64;
        let mut deep = Vec::new();
        stack.http.block_on(async {
            for i in 0..objects {
                let newest = start + i as u64 * step;
                let mut body = Vec::new();
                for (j, nanos) in [newest - 1_000, newest].into_iter().enumerate() {
                    let is_rare = (i == 0 && j == 0) || (i == objects / 2 && j == 1);
                    let trace = if is_rare {
                        rare.to_string()
                    } else {
                        format!("{:032x}", i + 1)
                    };
                    let event = json!({
                        "timestamp": rfc3339(nanos),
                        "timestamp_nanos": nanos,
                        "trace_id": trace,
                        "namespace": ns,
                        "doc_id": format!("old-{i}-{j}"),
                        "tags": [],
                        "source": "fetch",
                        "served_from": "origin",
                    });
                    if is_rare {
                        deep.push(nanos);
                    }
                    body.extend_from_slice(event.to_string().as_bytes());
                    body.push(b'\n');
                }
                let key = object_key(Feed::Clickstream, ns, newest);
                store.put(&key, Bytes::from(body)).await.unwrap();
            }
        });
        deep.reverse();
        // Today's traffic: a fetch under the rare trace and one under another.
        for (trace, doc) in [(rare, "a"), ("0af7651916cd43dd8448eb211c80319c", "b")] {
            let r = stack.gw_with(
                Method::GET,
                &format!("/v2/namespaces/{ns}/documents/{doc}"),
                &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))],
                Bytes::new(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
        }

        // The rare trace without `from`: pages answer 200 (never 502), some short with a
        // cursor, and together they are exactly the trace's events, newest first.
        let path = format!("/v2/namespaces/{ns}/clickstream?trace_id={rare}");
        let (found, pages, short) = follow_clicks(&stack, &path, 10);
        let docs: Vec<&str> = found
            .iter()
            .map(|e| e["doc_id"].as_str().unwrap())
            .collect();
        let half = objects / 2;
        assert_eq!(
            docs,
            ["a", &format!("old-{half}-1"), "old-0-0"],
            "{backend:?}: {found:#?}"
        );
        assert_eq!(
            found[1..].iter().map(nanos).collect::<Vec<_>>(),
            deep,
            "{backend:?}"
        );
        assert!(pages >= 3 && short >= 2, "{pages} pages, {short} short");

        // The whole feed, paged the same way, filtered here: the same answer.
        let all_path = format!("/v2/namespaces/{ns}/clickstream?tag=");
        let (every, _, _) = follow_clicks(&stack, &all_path, 500);
        assert_eq!(every.len(), 2 * objects + 2, "{backend:?}");
        let order: Vec<u64> = every.iter().map(nanos).collect();
        assert!(
            order.windows(2).all(|w| w[0] > w[1]),
            "newest first, once each"
        );
        let filtered: Vec<&Value> = every.iter().filter(|e| e["trace_id"] == rare).collect();
        assert_eq!(filtered, found.iter().collect::<Vec<_>>(), "{backend:?}");
    }
}
