//! Search history and clickstream end to end, against every object-store backend available:
//! the local directory always, S3 too when `scripts/s3-server` started one
//! (`LAYER_TEST_S3_ENDPOINT`). Each scenario runs the same assertions on each backend.
//!
//! Covered: entries for served queries (fields, trace ids, tags, raw query, summary, ids in rank
//! order), tag / time / cursor filtering and paging (header = body cursor), HybridText / Auto /
//! multi-query entries, clickstream from fetches carrying a traceparent, batching into objects,
//! restart survival (graceful flush), an object store that fails (queries unaffected, the
//! failure counted, listing answers 502), and a selective filter over a history deeper than one
//! call's read budget (short pages with a cursor that add up to the full answer).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::{Reply, Stack, TestS3, pause, temp_dir};
use layer_gateway::Config;
use layer_gateway::config::{IndexConfig, IndexConsistency};
use layer_gateway::history::entry::{Feed, now_nanos, object_key, rfc3339};
use layer_gateway::history::list::MAX_OBJECTS_READ;
use layer_gateway::store::ObjectStore;
use serde_json::{Value, json};

/// Where a scenario's history goes.
#[derive(Clone, Debug)]
enum Backend {
    Local(PathBuf),
    S3(TestS3, String),
}

impl Backend {
    fn apply(&self, cfg: &mut Config) {
        match self {
            Backend::Local(dir) => cfg.gateway.object_store.dir = Some(dir.clone()),
            Backend::S3(s3, prefix) => s3.configure(cfg, prefix),
        }
    }

    /// The same store the gateway writes, opened by the test to look at the objects.
    fn open(&self) -> ObjectStore {
        let mut cfg = Config::default();
        self.apply(&mut cfg);
        ObjectStore::open(&cfg, &|_| None).expect("open the test's view of the store")
    }
}

/// The local backend, plus S3 when a test server is running.
fn backends(scenario: &str) -> Vec<Backend> {
    let mut out = vec![Backend::Local(temp_dir(&format!("objects-{scenario}")))];
    match TestS3::from_env() {
        Some(s3) => {
            out.push(Backend::S3(s3, TestS3::unique_prefix(scenario)));
        }
        None => eprintln!(
            "skipped: no S3 (LAYER_TEST_S3_ENDPOINT unset): history scenario {scenario:?} ran \
             against the local directory only"
        ),
    }
    out
}

fn strong(name: &str) -> IndexConfig {
    IndexConfig {
        name: name.into(),
        consistency: IndexConsistency::Strong,
        ..Default::default()
    }
}

fn stack(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> Stack {
    let backend = backend.clone();
    Stack::start_with(move |c| {
        backend.apply(c);
        // Reads see writes at once: these tests are about history, not the watermark.
        c.gateway.consistency.default_mode = IndexConsistency::Strong;
        tweak(c);
    })
}

fn seed(stack: &Stack, ns: &str) {
    stack.write(
        ns,
        json!({"upsert_rows": [
            {"id": "a", "vector": [1.0, 0.0], "title": "alpha"},
            {"id": "b", "vector": [0.0, 1.0], "title": "beta"},
            {"id": "c", "vector": [0.7, 0.7], "title": "gamma"}
        ], "distance_metric": "euclidean_squared"}),
    );
}

fn query(stack: &Stack, ns: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let r = stack.gw_with(
        Method::POST,
        &format!("/v2/namespaces/{ns}/query"),
        headers,
        body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

/// `GET {path}` with the query string; asserts 200 and that the cursor header equals the body's.
fn list(stack: &Stack, path: &str) -> Value {
    let r = stack.gw(Method::GET, path, Bytes::new());
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let body = r.json();
    let header = r
        .headers
        .get("x-layer-next-cursor")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        header.as_deref(),
        body.get("next_cursor").and_then(Value::as_str),
        "{path}: x-layer-next-cursor and next_cursor agree"
    );
    body
}

fn entries(stack: &Stack, ns: &str, params: &str) -> Vec<Value> {
    list(
        stack,
        &format!("/v2/namespaces/{ns}/search-history{params}"),
    )["entries"]
        .as_array()
        .cloned()
        .unwrap()
}

fn trace_of(r: &Reply) -> String {
    let tp = r.headers["traceparent"].to_str().unwrap();
    tp.split('-').nth(1).unwrap().to_string()
}

fn ids_of(r: &Reply) -> Vec<String> {
    r.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| match &row["id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn nanos(e: &Value) -> u64 {
    e["timestamp_nanos"]
        .as_u64()
        .expect("timestamp_nanos is a u64")
}

/// Every required SearchHistoryEntry field is present with its type (hevlayer would crash
/// otherwise), and `timestamp` is `timestamp_nanos` in RFC 3339 milliseconds.
fn check_entry_shape(e: &Value, ns: &str) {
    assert!(e["timestamp"].is_string(), "{e}");
    assert!(
        nanos(e) > 1 << 53,
        "timestamp_nanos is a 64-bit integer beyond 2^53: {e}"
    );
    assert_eq!(e["namespace"], ns);
    assert!(e["query"].is_object(), "{e}");
    assert!(
        e["top_result_ids"]
            .as_array()
            .unwrap()
            .iter()
            .all(Value::is_string)
    );
    assert!(e["tags"].as_array().unwrap().iter().all(Value::is_string));
    let ms = nanos(e) / 1_000_000;
    let millis = format!(".{:03}Z", ms % 1000);
    assert!(e["timestamp"].as_str().unwrap().ends_with(&millis), "{e}");
}

#[test]
fn every_served_query_is_one_entry_with_its_context() {
    for backend in backends("entries") {
        let stack = stack(&backend, |_| {});
        let ns = "hist";
        seed(&stack, ns);
        let tagged = query(
            &stack,
            ns,
            &json!({"vector": [1.0, 0.0], "top_k": 2, "include_attributes": ["title"]}),
            &[
                ("x-hevlayer-search-query", "wireless headphones"),
                (
                    "x-hevlayer-tags",
                    "route:search, app:hev-shop,page:first,app:hev-shop",
                ),
            ],
        );
        let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let traced = query(
            &stack,
            ns,
            &json!({"rank_by": ["vector", "ANN", [0.0, 1.0]], "top_k": 3, "filters": ["title", "NotEq", "zzz"]}),
            &[
                (
                    "traceparent",
                    &format!("00-{caller_trace}-00f067aa0ba902b7-01"),
                ),
                ("x-hevlayer-tags", "app:hev-shop"),
            ],
        );
        // Failed queries are not history.
        let bad = stack.gw(
            Method::POST,
            &format!("/v2/namespaces/{ns}/query"),
            json!({"vector": [1.0, 0.0], "nearest_to_id": ["a"]}).to_string(),
        );
        assert_eq!(bad.status, 422, "{}", bad.text());

        let all = entries(&stack, ns, "");
        assert_eq!(all.len(), 2, "{backend:?}: {all:#?}");
        let (second, first) = (&all[0], &all[1]);
        for e in &all {
            check_entry_shape(e, ns);
        }
        assert!(nanos(second) > nanos(first), "newest first");

        assert_eq!(first["raw_query"], "wireless headphones");
        assert_eq!(
            first["tags"],
            json!(["app:hev-shop", "page:first", "route:search"])
        );
        assert_eq!(first["trace_id"], trace_of(&tagged), "generated trace id");
        assert_eq!(first["top_result_ids"], json!(ids_of(&tagged)));
        assert_eq!(ids_of(&tagged), ["a", "c"]);
        assert_eq!(
            first["query"],
            json!({"vector": {"dims": 2}, "top_k": 2, "include_attributes": ["title"]}),
            "vectors are recorded as their shape"
        );
        assert!(
            first.get("stable_as_of").is_none(),
            "strong reads have no watermark"
        );

        assert_eq!(trace_of(&traced), caller_trace);
        assert_eq!(second["trace_id"], caller_trace, "propagated trace id");
        assert!(second.get("raw_query").is_none());
        assert_eq!(second["top_result_ids"], json!(["b", "c", "a"]));
        assert_eq!(
            second["query"]["rank_by"],
            json!(["vector", "ANN", {"dims": 2}])
        );
        assert_eq!(second["query"]["filters"], json!(["title", "NotEq", "zzz"]));

        // Tag filters are AND, normalised like the query's tags; the v1 alias is identical.
        let both = entries(&stack, ns, "?tag=route%3Asearch%2C%20app%3Ahev-shop");
        assert_eq!(both.len(), 1);
        assert_eq!(both[0]["trace_id"], first["trace_id"]);
        assert_eq!(entries(&stack, ns, "?tag=app:hev-shop").len(), 2);
        assert!(entries(&stack, ns, "?tag=app:hev-shop,nope").is_empty());
        assert_eq!(
            list(
                &stack,
                &format!("/v1/namespaces/{ns}/search-history?tag=app:hev-shop")
            ),
            list(
                &stack,
                &format!("/v2/namespaces/{ns}/search-history?tag=app:hev-shop")
            )
        );
        assert!(entries(&stack, "other-ns", "").is_empty());

        for bad in [
            "?tag=bad%20tag",
            "?limit=0",
            "?before=soon",
            "?from=yesterday",
        ] {
            let r = stack.gw(
                Method::GET,
                &format!("/v2/namespaces/{ns}/search-history{bad}"),
                Bytes::new(),
            );
            assert_eq!(r.status, 422, "{bad}: {}", r.text());
            assert_eq!(r.json()["error"], "validation_error");
        }
    }
}

#[test]
fn legacy_v1_queries_are_recorded_and_relayed_compressed() {
    let backend = Backend::Local(temp_dir("objects-v1"));
    let stack = stack(&backend, |_| {});
    seed(&stack, "hist-v1");
    let body = json!({"rank_by": ["vector", "ANN", [1.0, 0.0]], "top_k": 2});
    let r = stack.gw_with(
        Method::POST,
        "/v1/namespaces/hist-v1/query",
        &[
            ("x-hevlayer-tags", "api:v1"),
            ("x-hevlayer-search-query", "legacy"),
        ],
        body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let e = entries(&stack, "hist-v1", "?tag=api:v1");
    assert_eq!(e.len(), 1, "{e:?}");
    check_entry_shape(&e[0], "hist-v1");
    assert_eq!(e[0]["raw_query"], "legacy");
    assert_eq!(e[0]["top_result_ids"], json!(["a", "c"]));
    assert_eq!(e[0]["trace_id"], trace_of(&r).as_str());
    // A caller that accepts gzip is served too (answers under 1 KiB stay uncompressed).
    let r = stack.gw_with(
        Method::POST,
        "/v1/namespaces/hist-v1/query",
        &[("accept-encoding", "gzip")],
        json!({"rank_by": ["id", "asc"], "top_k": 3, "include_attributes": ["title"], "filters": ["title", "Glob", "*a*"]})
            .to_string(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(entries(&stack, "hist-v1", "").len(), 2);
}

#[test]
fn stable_reads_record_their_watermark() {
    for backend in backends("stable") {
        let stack = Stack::start_with({
            let backend = backend.clone();
            move |c| {
                backend.apply(c);
                c.gateway.consistency.poll_interval_ms = 50;
            }
        });
        let ns = "stable-hist";
        seed(&stack, ns);
        let deadline = Instant::now() + Duration::from_secs(20);
        let watermark = loop {
            let r = query(&stack, ns, &json!({"vector": [1.0, 0.0], "top_k": 1}), &[]);
            if let Some(v) = r.headers.get("x-layer-stable-as-of") {
                break v.to_str().unwrap().parse::<u64>().unwrap();
            }
            assert!(Instant::now() < deadline, "no watermark within 20 s");
            pause(Duration::from_millis(50));
        };
        let newest = &entries(&stack, ns, "?limit=1")[0];
        assert_eq!(newest["stable_as_of"], watermark);
    }
}

#[test]
fn pages_follow_the_cursor_and_time_bounds() {
    for backend in backends("paging") {
        let stack = stack(&backend, |c| c.gateway.history.flush_interval_ms = 20);
        let ns = "paging";
        seed(&stack, ns);
        for i in 0..7 {
            query(
                &stack,
                ns,
                &json!({"vector": [1.0, 0.0], "top_k": 1}),
                &[("x-hevlayer-tags", &format!("n:{i},all"))],
            );
            // Distinct milliseconds, so RFC 3339 (millisecond) bounds can separate entries.
            pause(Duration::from_millis(3));
        }
        // Half the time the first pages come from flushed objects, half from the window.
        pause(Duration::from_millis(100));
        let all = entries(&stack, ns, "?limit=500");
        assert_eq!(all.len(), 7);
        let tags: Vec<String> = all.iter().map(|e| e["tags"][1].to_string()).collect();
        assert_eq!(
            tags,
            (0..7)
                .rev()
                .map(|i| format!("\"n:{i}\""))
                .collect::<Vec<_>>()
        );

        let mut seen = Vec::new();
        let mut path = format!("/v2/namespaces/{ns}/search-history?limit=3&tag=all");
        let mut pages = 0;
        loop {
            let page = list(&stack, &path);
            pages += 1;
            let got = page["entries"].as_array().unwrap();
            assert!(got.len() <= 3);
            seen.extend(got.iter().map(nanos));
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(c) => {
                    assert_eq!(c, nanos(got.last().unwrap()).to_string());
                    path = format!("/v2/namespaces/{ns}/search-history?limit=3&tag=all&before={c}");
                }
                None => break,
            }
        }
        assert_eq!(pages, 3, "3 + 3 + 1, and no empty last page");
        assert_eq!(seen, all.iter().map(nanos).collect::<Vec<_>>());

        // from is inclusive, to exclusive; both RFC 3339.
        let from = all[4]["timestamp"].as_str().unwrap();
        let to = all[1]["timestamp"].as_str().unwrap();
        let window = entries(&stack, ns, &format!("?from={from}&to={to}"));
        assert_eq!(
            window.iter().map(nanos).collect::<Vec<_>>(),
            all[2..=4].iter().map(nanos).collect::<Vec<_>>()
        );
        let older = entries(&stack, ns, &format!("?before={}", nanos(&all[5])));
        assert_eq!(older.len(), 1, "before is strictly older");
    }
}

#[test]
fn hybrid_auto_and_multi_query_are_one_entry_each() {
    for backend in backends("expansions") {
        let stack = stack(&backend, |c| c.indexes = vec![strong("tickets")]);
        let ns = "tickets";
        stack.write(ns,
            json!({"upsert_rows": [
                {"id": "t-1", "vector": [1.0, 0.0], "content": "connection timeout on kubernetes ingress"},
                {"id": "t-2", "vector": [0.0, 1.0], "content": "disk full on node"}
            ], "distance_metric": "cosine_distance",
                "schema": {"content": {"type": "string", "full_text_search": true, "fuzzy": true}}}),
        );
        let hybrid = query(
            &stack,
            ns,
            &json!({"rank_by": ["content", "HybridText", "conection timout kubernets"], "top_k": 3}),
            &[("x-hevlayer-search-query", "conection timout kubernets")],
        );
        let long = "why do pods lose their connection during rolling deploys at night";
        let deferred = query(
            &stack,
            ns,
            &json!({"rank_by": ["content", "Auto", long], "top_k": 3}),
            &[],
        );
        assert_eq!(deferred.json()["routing"]["executed"], false);
        let multi = stack.gw(
            Method::POST,
            &format!("/v2/namespaces/{ns}/query?stainless_overload=multiQuery"),
            json!({"queries": [
                {"rank_by": ["vector", "ANN", [1.0, 0.0]], "top_k": 1},
                {"rank_by": ["content", "BM25", "disk"], "top_k": 2}
            ]})
            .to_string(),
        );
        assert_eq!(multi.status, 200, "{}", multi.text());

        let all = entries(&stack, ns, "");
        assert_eq!(all.len(), 3, "one entry per request, not per leg: {all:#?}");
        let (m, d, h) = (&all[0], &all[1], &all[2]);

        assert_eq!(
            h["query"]["rank_by"],
            json!(["content", "HybridText", "conection timout kubernets"]),
            "the expression, not the expanded legs"
        );
        assert_eq!(h["query"]["hybrid"], hybrid.json()["hybrid"]);
        assert_eq!(h["top_result_ids"], json!(ids_of(&hybrid)));
        assert_eq!(ids_of(&hybrid).first().map(String::as_str), Some("t-1"));

        assert_eq!(d["query"]["rank_by"], json!(["content", "Auto", long]));
        assert_eq!(d["query"]["routing"], deferred.json()["routing"]);
        assert_eq!(d["top_result_ids"], json!([]));

        assert_eq!(
            m["query"]["queries"],
            json!([
                {"rank_by": ["vector", "ANN", {"dims": 2}], "top_k": 1},
                {"rank_by": ["content", "BM25", "disk"], "top_k": 2}
            ])
        );
        assert_eq!(m["query"]["result_counts"], json!([1, 1]));
        assert_eq!(m["top_result_ids"], json!(["t-1", "t-2"]));
    }
}

#[test]
fn fetches_with_a_search_traceparent_are_clickstream() {
    for backend in backends("clicks") {
        let stack = stack(&backend, |_| {});
        let ns = "clicks";
        seed(&stack, ns);
        let search = query(
            &stack,
            ns,
            &json!({"vector": [1.0, 0.0], "top_k": 2}),
            &[("x-hevlayer-tags", "app:shop")],
        );
        let trace = trace_of(&search);
        let tp = search.headers["traceparent"].to_str().unwrap().to_string();
        let with_trace = [
            ("traceparent", tp.as_str()),
            ("x-hevlayer-tags", "session:abc, bad tag"),
        ];
        let mut served = Vec::new();
        for _ in 0..2 {
            let r = stack.gw_with(
                Method::GET,
                &format!("/v2/namespaces/{ns}/documents/a"),
                &with_trace,
                Bytes::new(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            served.push(r.headers["x-layer-cache"].to_str().unwrap().to_string());
        }
        let batch = stack.gw_with(
            Method::POST,
            &format!("/v2/namespaces/{ns}/documents"),
            &with_trace,
            json!({"ids": ["b", "nope", "a"]}).to_string(),
        );
        assert_eq!(batch.status, 200, "{}", batch.text());
        let batch_served = batch.headers["x-layer-cache"].to_str().unwrap().to_string();
        // No trace context: not clickstream.
        let r = stack.gw(
            Method::GET,
            &format!("/v2/namespaces/{ns}/documents/b"),
            Bytes::new(),
        );
        assert_eq!(r.status, 200);

        let page = list(
            &stack,
            &format!(
                "/v2/namespaces/{ns}/clickstream?trace_id={}",
                trace.to_uppercase()
            ),
        );
        let events = page["events"].as_array().unwrap();
        let docs: Vec<&str> = events
            .iter()
            .map(|e| e["doc_id"].as_str().unwrap())
            .collect();
        assert_eq!(docs, ["a", "b", "a", "a"], "newest first: {events:#?}");
        let expect_from = |cache: &str| if cache == "hit" { "cache" } else { "origin" };
        let froms: Vec<&str> = events
            .iter()
            .map(|e| e["served_from"].as_str().unwrap())
            .collect();
        assert_eq!(
            froms,
            [
                expect_from(&batch_served),
                expect_from(&batch_served),
                expect_from(&served[1]),
                expect_from(&served[0]),
            ]
        );
        for e in events {
            assert_eq!(e["trace_id"], trace);
            assert_eq!(e["namespace"], ns);
            assert_eq!(e["source"], "fetch");
            assert_eq!(
                e["tags"],
                json!(["session:abc"]),
                "invalid tags are dropped"
            );
            assert!(e["timestamp"].is_string());
            assert!(e["timestamp_nanos"].as_u64().unwrap() > 1 << 53);
        }
        // The search-history entry joins on the same trace id.
        assert_eq!(entries(&stack, ns, "")[0]["trace_id"], trace);
        // Same filters as search history; the v1 alias is identical.
        let all = list(&stack, &format!("/v2/namespaces/{ns}/clickstream"));
        assert_eq!(all["events"].as_array().unwrap().len(), 4);
        assert_eq!(
            list(&stack, &format!("/v1/namespaces/{ns}/clickstream?limit=2"))["events"],
            json!(events[..2])
        );
        assert!(
            list(
                &stack,
                &format!(
                    "/v2/namespaces/{ns}/clickstream?trace_id=0af7651916cd43dd8448eb211c80319c"
                )
            )["events"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(
            list(
                &stack,
                &format!("/v2/namespaces/{ns}/clickstream?tag=session:abc,x")
            )["events"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
}

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
        for i in 0..12 {
            let r = query(
                &stack,
                ns,
                &json!({"vector": [1.0, 0.0], "top_k": 1}),
                &[("x-hevlayer-tags", &format!("i:{i}"))],
            );
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
    query(&stack, ns, &json!({"vector": [1.0, 0.0], "top_k": 1}), &[]);
    let failed = r#"layer_search_history_events_total{outcome="failed"}"#;
    let before = stack.metric(failed);
    // The store's root becomes a file: every write and listing fails from now on.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"not a directory").unwrap();
    for _ in 0..3 {
        let r = query(&stack, ns, &json!({"vector": [1.0, 0.0], "top_k": 1}), &[]);
        assert_eq!(ids_of(&r), ["a"]);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.metric(failed) < before + 3.0 {
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

    // The store comes back: history is written again.
    std::fs::remove_file(&dir).unwrap();
    let r = query(&stack, ns, &json!({"vector": [1.0, 0.0], "top_k": 1}), &[]);
    let store = backend.open();
    let deadline = Instant::now() + Duration::from_secs(20);
    while objects(&stack.http, &store, &format!("search-history/{ns}/")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "history never written after the store came back"
        );
        pause(Duration::from_millis(20));
    }
    assert_eq!(entries(&stack, ns, "")[0]["trace_id"], trace_of(&r));
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
