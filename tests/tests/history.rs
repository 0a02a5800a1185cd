//! Search history and clickstream end to end, against every object-store backend available:
//! the local directory always, S3 too when `scripts/s3-server` started one
//! (`LAYER_TEST_S3_ENDPOINT`). Each scenario runs the same assertions on each backend.
//!
//! Covered here: entries for served queries (fields, trace ids, tags, raw query, summary, ids in
//! rank order), the legacy v1 route, the stable-read watermark in entries, tag / time / cursor
//! filtering and paging (header = body cursor), HybridText / Auto / multi-query entries, and
//! clickstream from fetches carrying a traceparent. The store side (batching, restarts, a failing
//! store, deep paging) is in `history_store.rs`; the shared helpers are `layer_e2e::history`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::history::{
    Backend, backends, entries, ids_of, list, nanos, query, seed, stack, trace_of,
};
use layer_e2e::{Stack, now_ms, pause, temp_dir};
use layer_gateway::config::{IndexConfig, IndexConsistency};
use serde_json::{Value, json};

fn strong(name: &str) -> IndexConfig {
    IndexConfig {
        name: name.into(),
        consistency: IndexConsistency::Strong,
        ..Default::default()
    }
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
            move |c| backend.apply(c)
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
            // Distinct milliseconds, so RFC 3339 (millisecond) bounds can separate entries: this
            // entry was stamped before the answer, the next one is stamped after the clock moved
            // past the millisecond of the answer (a wait on the clock, which is the point here).
            let answered = now_ms();
            while now_ms() == answered {
                pause(Duration::from_millis(1));
            }
        }
        // Every entry in the store (batches flush every 20 ms) before listing, so each run lists
        // the same thing: the recent window and the objects it covers.
        let store = backend.open();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let stored: usize = stack.http.block_on(async {
                let mut n = 0;
                for o in store.list(&format!("search-history/{ns}/")).await.unwrap() {
                    let body = store.get(&o.key).await.unwrap().unwrap_or_default();
                    n += body
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .count();
                }
                n
            });
            if stored == 7 {
                break;
            }
            assert!(Instant::now() < deadline, "{stored} of 7 entries stored");
            pause(Duration::from_millis(20));
        }
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
