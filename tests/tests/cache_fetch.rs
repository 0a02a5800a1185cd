//! The document cache end to end: fetch and batch fetch (hit, miss, miss-on-error, 404, order),
//! no stale reads after writes through the gateway, health, and nearest_to_id through the cache.

use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use layer_cache::{FaultyTier, NvmeConfig, NvmeTier, Set, Tier};
use layer_e2e::tier::{Hold, RemoteTier};
use layer_e2e::{Stack, temp_dir};
use serde_json::{Value, json};

fn stack_with_faulty_tier() -> (Stack, Arc<FaultyTier>) {
    stack_with_faulty_tier_and(|_| {})
}

fn stack_with_faulty_tier_and(
    tweak: impl FnOnce(&mut layer_gateway::Config),
) -> (Stack, Arc<FaultyTier>) {
    let dir = temp_dir("nvme");
    let nvme: Arc<dyn Tier> =
        Arc::new(NvmeTier::open(NvmeConfig::new(dir, 16 << 20)).expect("nvme tier"));
    let faulty = Arc::new(FaultyTier::new(nvme));
    let tier: Arc<dyn Tier> = faulty.clone();
    // One shard, so consecutive requests share the shard's hot cache.
    (
        Stack::start_with_tier(
            |c| {
                c.gateway.shards = 1;
                tweak(c);
            },
            Some(tier),
        ),
        faulty,
    )
}

fn fetch(stack: &Stack, ns: &str, id: &str, query: &str) -> (u16, Option<String>, Value) {
    let r = stack.gw(
        Method::GET,
        &format!("/v2/namespaces/{ns}/documents/{id}{query}"),
        Bytes::new(),
    );
    let cache = r
        .headers
        .get("x-layer-cache")
        .map(|v| v.to_str().unwrap().to_string());
    (r.status.as_u16(), cache, r.json())
}

#[test]
fn fetch_hits_misses_and_falls_through_on_cache_errors() {
    // The write-path mirror is off in the harness, so the first fetch is a miss.
    let (stack, faulty) = stack_with_faulty_tier();
    stack.write("docs",
        json!({"upsert_rows": [{"id": "a", "title": "alpha", "n": 1}, {"id": "b", "title": "bravo", "n": 2}]}),
    );
    let (status, cache, doc) = fetch(&stack, "docs", "a", "");
    assert_eq!((status, cache.as_deref()), (200, Some("miss")));
    assert_eq!(
        doc,
        json!({"id": "a", "attributes": {"n": 1, "title": "alpha"}}),
        "reserved attributes stay hidden"
    );
    let (status, cache, doc) = fetch(&stack, "docs", "a", "?include_attributes=title");
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    assert_eq!(doc["attributes"], json!({"title": "alpha"}));

    // A cache outage never turns into a missing document.
    faulty.set_down(true);
    let (status, cache, doc) = fetch(&stack, "docs", "b", "");
    assert_eq!((status, cache.as_deref()), (200, Some("miss-on-error")));
    assert_eq!(doc["attributes"]["title"], "bravo");
    faulty.set_down(false);

    // Absent everywhere: 404. Numeric ids are fetched by their decimal string.
    let (status, _, body) = fetch(&stack, "docs", "zzz", "");
    assert_eq!((status, body["error"].clone()), (404, json!("not_found")));
    stack.write(
        "numeric",
        json!({"upsert_rows": [{"id": 7, "title": "seven"}]}),
    );
    let (status, _, doc) = fetch(&stack, "numeric", "7", "");
    assert_eq!(
        (
            status,
            doc["id"].clone(),
            doc["attributes"]["title"].clone()
        ),
        (200, json!("7"), json!("seven"))
    );

    // Upstream's own verdict on a bad request is relayed verbatim (here: an invalid namespace).
    let r = stack.gw(
        Method::GET,
        "/v2/namespaces/bad!ns/documents/a",
        Bytes::new(),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .starts_with("Invalid URL: Namespace contains invalid characters"),
        "{}",
        r.text()
    );

    // Batch fetch keeps request order and lists absent ids inline.
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/docs/documents",
        json!({"ids": ["b", "nope", "a"], "include_attributes": ["n"]}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"documents": [{"id": "b", "attributes": {"n": 2}}, {"id": "a", "attributes": {"n": 1}}], "missing": ["nope"]})
    );
    assert!(r.headers.contains_key("x-layer-cache"));
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/docs/documents",
        json!({"ids": "a"}).to_string(),
    );
    assert_eq!(r.status, 422);
}

#[test]
fn a_single_fetch_from_the_tier_is_the_same_document_as_from_origin() {
    // A hot cache of 0 bytes admits nothing, so every cached fetch is a tier hit: the knob is
    // changed only to reach that path on every request (the default-sized hot cache is tested
    // above and in `writes_through_the_gateway_populate_the_cache`).
    let (stack, faulty) = stack_with_faulty_tier_and(|c| c.gateway.cache.hot_bytes_per_shard = 0);
    stack.write(
        "tiered",
        json!({"upsert_rows": [
            {"id": "plain", "title": "alpha", "n": 1, "tags": ["x", "y"]},
            {"id": "escaped", "title": "line\none \"quoted\"", "n": 2},
        ]}),
    );
    for (id, query, want) in [
        (
            "plain",
            "",
            json!({"id": "plain", "attributes": {"n": 1, "tags": ["x", "y"], "title": "alpha"}}),
        ),
        (
            "plain",
            "?include_attributes=title,n",
            json!({"id": "plain", "attributes": {"n": 1, "title": "alpha"}}),
        ),
        // Text with escapes is written through the value tree instead of spliced.
        (
            "escaped",
            "",
            json!({"id": "escaped", "attributes": {"n": 2, "title": "line\none \"quoted\""}}),
        ),
    ] {
        let (status, cache, from_origin) = fetch(&stack, "tiered", id, query);
        assert_eq!(status, 200);
        assert_eq!(from_origin, want, "{id}{query} from {cache:?}");
        // The origin read's backfill reaches the tier in the background.
        eventually("a fetch served from the cache", || {
            fetch(&stack, "tiered", id, query).1.as_deref() == Some("hit")
        });
        let (status, cache, from_tier) = fetch(&stack, "tiered", id, query);
        assert_eq!((status, cache.as_deref()), (200, Some("hit")));
        assert_eq!(from_tier, want, "{id}{query} from the tier");
        // The hit was the tier's: the same fetch with the tier down is served from origin. (Down
        // rather than one injected failure: a backfill put still in flight from a miss above
        // could take that one.)
        faulty.set_down(true);
        let (status, cache, from_origin) = fetch(&stack, "tiered", id, query);
        faulty.set_down(false);
        assert_eq!((status, cache.as_deref()), (200, Some("miss-on-error")));
        assert_eq!(from_origin, want);
    }
}

/// A tier value is validated whole once, at its hit: one that passes is copied into the shard's
/// hot cache (later hits read it without checking it again); one that fails (a repeated key) is
/// served through the value tree, as always, and never copied into the hot cache. Default sizes.
#[test]
fn a_tier_value_that_fails_validation_is_served_as_before_and_never_kept_hot() {
    let (stack, faulty) = stack_with_faulty_tier();
    stack.write("judged", json!({"upsert_rows": [{"id": "seed", "n": 0}]}));
    let put = |id: &str, text: &'static str| {
        stack
            .http
            .block_on(faulty.put(
                Set::Documents,
                "judged",
                id,
                Bytes::from_static(text.as_bytes()),
            ))
            .expect("tier put");
    };
    put("valid", r#"{"id":"valid","title":"a","n":[1,{"m":"]"}]}"#);
    put("repeated", r#"{"id":"repeated","title":"a","title":"b"}"#);
    // The counter is the process's (other tests in this binary count into it too): it can only
    // show that the repeated key's read was counted. Which row was kept hot is shown below.
    let unchecked = || stack.metric(r#"layer_document_cache_events_total{event="tier_unchecked"}"#);
    let unchecked_before = unchecked();
    let valid = json!({"id": "valid", "attributes": {"title": "a", "n": [1, {"m": "]"}]}});
    for (id, want) in [
        ("valid", valid.clone()),
        // serde_json keeps a repeated key's last value: what this fetch has always answered.
        (
            "repeated",
            json!({"id": "repeated", "attributes": {"title": "b"}}),
        ),
    ] {
        let (status, cache, doc) = fetch(&stack, "judged", id, "");
        assert_eq!((status, cache.as_deref()), (200, Some("hit")), "{id}");
        assert_eq!(doc, want, "{id}");
    }
    // The repeated key's read was counted.
    assert!(unchecked() - unchecked_before >= 1.0);
    // With the tier down, only the row that passed is still a hit (from the hot cache); the
    // other is read from origin, which never held it.
    faulty.set_down(true);
    let (status, cache, doc) = fetch(&stack, "judged", "valid", "");
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    assert_eq!(doc, valid);
    let (status, _, body) = fetch(&stack, "judged", "repeated", "");
    faulty.set_down(false);
    assert_eq!(status, 404, "{body}");
}

/// A fetch's origin rows go to the tier vouched for ([`layer_cache::Tier::put_vouched`]); a tier
/// hit on a vouched value keeps it as it is (not validated again) and copies it into the hot
/// cache. The mark is believed because only the gateway's own
/// serialized rows carry it, under the NVMe record's checksum: the test plants a value that
/// would fail validation (a repeated key) to show that the check is skipped, not passed.
#[test]
fn rows_the_gateway_wrote_are_vouched_for_and_kept_without_a_second_check() {
    let (stack, faulty) = stack_with_faulty_tier();
    stack.write(
        "vouched",
        json!({"upsert_rows": [{"id": "a", "title": "alpha"}]}),
    );
    let (status, cache, _) = fetch(&stack, "vouched", "a", "");
    assert_eq!((status, cache.as_deref()), (200, Some("miss")));
    let stored = |id: &str| {
        stack
            .http
            .block_on(faulty.get_stored(Set::Documents, "vouched", id))
            .expect("tier read")
    };
    eventually("the backfill of a", || stored("a").is_some());
    let a = stored("a").unwrap();
    assert!(a.vouched);
    assert_eq!(
        serde_json::from_slice::<Value>(&a.value).unwrap()["title"],
        "alpha"
    );

    // Planted in a namespace of its own: the backfill above may still hold its namespace's
    // copy registration for a moment after its put landed, and a tier read then is not served.
    stack
        .http
        .block_on(faulty.put_vouched(
            Set::Documents,
            "planted",
            "planted",
            Bytes::from_static(br#"{"id":"planted","title":"a","title":"b"}"#),
        ))
        .expect("tier put");
    // (`tier_unchecked` is not compared: other tests in this binary count into the process's
    // counter. A checked value would have failed and never been kept hot.)
    let (status, cache, _) = fetch(&stack, "planted", "planted", "");
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    // Kept hot, so not checked: with the tier down it is still a hit.
    faulty.set_down(true);
    let (status, cache, _) = fetch(&stack, "planted", "planted", "");
    faulty.set_down(false);
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
}

#[test]
fn a_batch_fetch_from_the_cache_is_the_same_as_from_origin() {
    // A 0-byte hot cache, as above: every cached row is a tier hit.
    let (stack, faulty) = stack_with_faulty_tier_and(|c| c.gateway.cache.hot_bytes_per_shard = 0);
    // The same page, as text (the documents are joined from stored text, so the bytes matter).
    let batch = |ns: &str, ids: &Value, include: &Value| {
        let r = stack.gw(
            Method::POST,
            &format!("/v2/namespaces/{ns}/documents"),
            json!({"ids": ids, "include_attributes": include}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let cache = r
            .headers
            .get("x-layer-cache")
            .map(|v| v.to_str().unwrap().to_string());
        (cache, r.text())
    };
    let all = json!(["escaped", "plain", "7", "plain"]);
    // One namespace per projection, so that each one's first batch is read from origin.
    for (ns, include) in [
        ("batch-all", json!(null)),
        ("batch-title", json!(["title"])),
    ] {
        stack.write(
            ns,
            json!({"upsert_rows": [
                {"id": "plain", "title": "alpha", "n": 1},
                {"id": "escaped", "title": "tab\there", "n": 2},
                {"id": "7", "title": "seven", "n": 3},
            ]}),
        );
        let (cache, from_origin) = batch(ns, &all, &include);
        assert_eq!(
            cache.as_deref(),
            Some("miss"),
            "the first batch reads origin"
        );
        let attrs = |title: &str, n: i64| {
            if include.is_null() {
                json!({"n": n, "title": title})
            } else {
                json!({"title": title})
            }
        };
        let page: Value = serde_json::from_str(&from_origin).unwrap();
        assert_eq!(
            page,
            json!({"documents": [
                {"id": "escaped", "attributes": attrs("tab\there", 2)},
                {"id": "plain", "attributes": attrs("alpha", 1)},
                {"id": "7", "attributes": attrs("seven", 3)},
                {"id": "plain", "attributes": attrs("alpha", 1)},
            ], "missing": []})
        );
        eventually("a batch served from the cache", || {
            batch(ns, &all, &include).0.as_deref() == Some("hit")
        });
        assert_eq!(
            batch(ns, &all, &include),
            (Some("hit".into()), from_origin.clone())
        );
        // Absent ids are listed in request order, with the tier up or down.
        let with_missing = json!(["nope", "plain", "gone", "7"]);
        let (cache, mixed) = batch(ns, &with_missing, &include);
        assert_eq!(cache.as_deref(), Some("miss"));
        let mixed_page: Value = serde_json::from_str(&mixed).unwrap();
        assert_eq!(mixed_page["missing"], json!(["nope", "gone"]));
        assert_eq!(
            mixed_page["documents"],
            json!([page["documents"][1], page["documents"][2]])
        );
        faulty.set_down(true);
        let down = batch(ns, &with_missing, &include);
        faulty.set_down(false);
        assert_eq!(down, (Some("miss-on-error".into()), mixed));
    }
}

#[test]
fn writes_through_the_gateway_populate_the_cache() {
    let (stack, faulty) = stack_with_faulty_tier_and(|c| c.gateway.cache.populate_max_ids = 1000);
    stack.clear_requests();
    stack.write("mirror",
        json!({"upsert_rows": [{"id": "m1", "v": "one", "vector": [1.0, 0.0]}, {"id": "m2", "v": "two", "vector": [0.0, 1.0]}], "deletes": ["gone"], "distance_metric": "euclidean_squared"}),
    );
    // The read-back is a strong origin read of exactly the upserted ids, after the write.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let read_back = stack.upstream_requests().into_iter().any(|r| {
            r["path"] == "/v2/namespaces/mirror/query"
                && r["body"].as_str().is_some_and(|b| {
                    b.contains(r#"["id","In",["m1","m2"]]"#) && b.contains("strong")
                })
        });
        if read_back {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no read-back query");
        layer_e2e::pause(std::time::Duration::from_millis(10));
    }
    // The read-back's rows reach the tier in the background, one put after another: wait until
    // both are there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for id in ["m1", "m2"] {
        while stack
            .http
            .block_on(faulty.get(layer_cache::Set::Documents, "mirror", id))
            .ok()
            .flatten()
            .is_none()
        {
            assert!(std::time::Instant::now() < deadline, "{id} never mirrored");
            layer_e2e::pause(std::time::Duration::from_millis(10));
        }
    }
    let (status, cache, doc) = fetch(&stack, "mirror", "m1", "?include_attributes=v");
    assert_eq!((status, cache.as_deref()), (200, Some("hit")));
    assert_eq!(doc["attributes"]["v"], "one");
    // The shared tier holds the origin rows too (stamped, as origin stores them).
    let row = stack
        .http
        .block_on(faulty.get(layer_cache::Set::Documents, "mirror", "m2"))
        .expect("tier get")
        .expect("m2 populated in the tier");
    let row: Value = serde_json::from_slice(&row).unwrap();
    assert_eq!(row["v"], "two");
    assert!(row["_hevlayer_upserted_at"].is_u64());
    // Serialized by the gateway, so stored vouched for: a tier hit keeps it without checking.
    let stored = stack
        .http
        .block_on(faulty.get_stored(Set::Documents, "mirror", "m2"))
        .expect("tier get")
        .expect("m2 populated in the tier");
    assert!(stored.vouched);
    assert!(
        stack
            .http
            .block_on(faulty.get(layer_cache::Set::Documents, "mirror", "gone"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn reads_after_writes_through_the_gateway_are_never_stale() {
    // With the mirror on: its read-backs race the fetches below and must never serve old rows.
    let (stack, _faulty) = stack_with_faulty_tier_and(|c| c.gateway.cache.populate_max_ids = 1000);
    stack.write("fresh",
        json!({"upsert_rows": [{"id": 1, "v": "one"}, {"id": 2, "v": "two"}, {"id": 3, "v": "three"}]}),
    );
    for id in ["1", "2", "3"] {
        fetch(&stack, "fresh", id, "");
        assert_eq!(fetch(&stack, "fresh", id, "").1.as_deref(), Some("hit"));
    }
    stack.write("fresh", json!({"upsert_rows": [{"id": 1, "v": "uno"}]}));
    assert_eq!(fetch(&stack, "fresh", "1", "").2["attributes"]["v"], "uno");
    stack.write("fresh", json!({"patch_rows": [{"id": 2, "v": "dos"}]}));
    assert_eq!(fetch(&stack, "fresh", "2", "").2["attributes"]["v"], "dos");
    stack.write("fresh", json!({"deletes": [3]}));
    assert_eq!(fetch(&stack, "fresh", "3", "").0, 404);
    stack.write(
        "fresh",
        json!({"patch_by_filter": {"filters": ["v", "Eq", "uno"], "patch": {"v": "filtered"}}}),
    );
    assert_eq!(
        fetch(&stack, "fresh", "1", "").2["attributes"]["v"],
        "filtered"
    );
    stack.write("fresh", json!({"delete_by_filter": ["id", "Eq", 2]}));
    assert_eq!(fetch(&stack, "fresh", "2", "").0, 404);
}

#[test]
fn health_reports_the_cache_and_nearest_to_id_uses_it() {
    let (stack, _faulty) = stack_with_faulty_tier();
    let h = stack.http.send(
        Method::GET,
        &format!("{}/health", stack.gateway_url),
        &[],
        Bytes::new(),
    );
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["cache"]["backend"], "nvme");
    assert_eq!(h.json()["cache"]["state"], "warm");
    stack.write("vecs",
        json!({"upsert_rows": [{"id": "x", "vector": [1.0, 0.0]}, {"id": "y", "vector": [0.0, 1.0]}, {"id": "z", "vector": [0.7, 0.7]}], "distance_metric": "euclidean_squared"}),
    );
    // Warm the cache, then resolve nearest_to_id from it: no origin read for the seeds.
    fetch(&stack, "vecs", "x", "");
    fetch(&stack, "vecs", "y", "");
    stack.clear_requests();
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/vecs/query",
        json!({"nearest_to_id": ["x", "y"], "top_k": 1}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["rows"][0]["id"],
        "z",
        "the centroid (0.5, 0.5) is nearest to z"
    );
    let origin_reads = stack
        .upstream_requests()
        .into_iter()
        .filter(|q| q["path"] == "/v2/namespaces/vecs/query")
        .count();
    assert_eq!(
        origin_reads, 1,
        "only the ranking query went upstream; the seeds came from the cache"
    );
}

#[test]
fn a_plus_in_a_document_id_is_a_literal_plus() {
    // In a URL path `+` is a literal plus (only query strings use form encoding): the document
    // `a+b` is fetched by `a+b` and by `a%2Bb`, and never answers for the id `a b`.
    let (stack, _) = stack_with_faulty_tier();
    stack.write(
        "plus",
        json!({"upsert_rows": [{"id": "a+b", "t": "plus"}, {"id": "a b", "t": "space"}]}),
    );
    for raw in ["a+b", "a%2Bb"] {
        let (status, _, doc) = fetch(&stack, "plus", raw, "");
        assert_eq!(status, 200, "{raw}: {doc}");
        assert_eq!(doc["id"], "a+b", "{raw}");
        assert_eq!(doc["attributes"]["t"], "plus", "{raw}");
    }
    let (status, _, doc) = fetch(&stack, "plus", "a%20b", "");
    assert_eq!((status, &doc["attributes"]["t"]), (200, &json!("space")));
}

#[test]
fn a_write_during_a_tier_outage_never_lets_the_old_row_be_served_after_recovery() {
    // The tier holds v1; while it is down a write replaces the row (its tier delete fails);
    // once the tier is back, v1 must not come back as a `hit`: the namespace's tier entries are
    // distrusted until a namespace clear that started after the failure succeeds.
    use layer_cache::Set;
    let (stack, faulty) = stack_with_faulty_tier();
    stack.write("outage", json!({"upsert_rows": [{"id": "x", "v": 1}]}));
    let (status, _, doc) = fetch(&stack, "outage", "x", "");
    assert_eq!((status, &doc["attributes"]["v"]), (200, &json!(1)));
    // The backfill reaches the tier asynchronously: wait until it holds v1.
    let mut cached = false;
    for _ in 0..200 {
        if stack
            .http
            .block_on(faulty.get(Set::Documents, "outage", "x"))
            .ok()
            .flatten()
            .is_some()
        {
            cached = true;
            break;
        }
        layer_e2e::pause(std::time::Duration::from_millis(10));
    }
    assert!(cached, "the first fetch backfilled the tier");
    faulty.set_down(true);
    stack.write("outage", json!({"upsert_rows": [{"id": "x", "v": 2}]}));
    let (status, cache, doc) = fetch(&stack, "outage", "x", "");
    assert_eq!(
        (status, cache.as_deref(), &doc["attributes"]["v"]),
        (200, Some("miss-on-error"), &json!(2))
    );
    faulty.set_down(false);
    // Every fetch from here on answers v2, before and after the repair.
    let mut hits = 0;
    for _ in 0..300 {
        let (status, cache, doc) = fetch(&stack, "outage", "x", "");
        assert_eq!(
            (status, &doc["attributes"]["v"]),
            (200, &json!(2)),
            "{cache:?}"
        );
        if cache.as_deref() == Some("hit") {
            hits += 1;
            if hits > 3 {
                break;
            }
        }
        layer_e2e::pause(std::time::Duration::from_millis(20));
    }
    assert!(
        hits > 3,
        "the repaired namespace is served from the cache again"
    );
}

#[test]
fn a_write_at_the_defaults_is_one_upstream_request() {
    // The write-path mirror is opt-in: at the defaults a write sends nothing upstream but itself,
    // and the first fetch of a written id is a miss that reads it from origin.
    let stack = Stack::start();
    stack.clear_requests();
    let rows: Vec<Value> = (0..16).map(|i| json!({"id": i, "v": i})).collect();
    stack.write("one-request", json!({"upsert_rows": rows}));
    // Once the namespace is stable, the write is long acknowledged and any background read-back
    // of it would have been sent.
    stack.wait_watermark("one-request", layer_e2e::now_ms());
    let sent: Vec<String> = stack
        .upstream_requests()
        .into_iter()
        .filter(|r| r["path"] != "/v1/namespaces/one-request/metadata")
        .filter(|r| r["path"] != "/v2/namespaces/one-request/metadata")
        .map(|r| format!("{} {}", r["method"], r["path"]))
        .collect();
    assert_eq!(
        sent,
        vec![r#""POST" "/v2/namespaces/one-request""#.to_string()],
        "upstream requests besides the watcher's metadata polls"
    );
    let (status, cache, doc) = fetch(&stack, "one-request", "3", "?include_attributes=v");
    assert_eq!((status, cache.as_deref()), (200, Some("miss")), "{doc}");
    assert_eq!(doc["attributes"]["v"], 3);
}

/// A write's tier invalidation (before and after it is forwarded) costs the NVMe tier nothing in
/// a namespace it never stored (the common write: no message to its thread), and in one it
/// holds, a tombstone only for the ids it holds; a fetch after the write is fresh either way.
#[test]
fn a_writes_invalidation_reaches_the_nvme_tier_only_where_it_holds_rows() {
    let nvme = NvmeTier::open(NvmeConfig::new(temp_dir("batch-nvme"), 16 << 20)).expect("nvme");
    let tier: Arc<dyn Tier> = Arc::new(nvme.clone());
    // One shard, so the fetches share the shard's hot cache.
    let stack = Stack::start_with_tier(|c| c.gateway.shards = 1, Some(tier));
    let stats = || stack.http.block_on(nvme.stats()).expect("stats");

    let rows: Vec<Value> = (0..16).map(|i| json!({"id": i, "v": i})).collect();
    stack.write("never-read", json!({"upsert_rows": rows}));
    stack.write("never-read", json!({"deletes": [1, 2]}));
    assert_eq!(
        stats().deletes,
        0,
        "no tier operation for a namespace it never stored"
    );

    stack.write(
        "read",
        json!({"upsert_rows": [{"id": "a", "t": "old"}, {"id": "b", "t": "b"}]}),
    );
    let (_, cache, doc) = fetch(&stack, "read", "a", "");
    assert_eq!(
        (cache.as_deref(), &doc["attributes"]["t"]),
        (Some("miss"), &json!("old"))
    );
    eventually("a backfilled into the tier", || {
        stack
            .http
            .block_on(nvme.get(Set::Documents, "read", "a"))
            .ok()
            .flatten()
            .is_some()
    });
    let before = stats();
    let withdrawn =
        || stack.metric(r#"layer_document_cache_events_total{event="backfill_withdrawn"}"#);
    let withdrawn_before = withdrawn();
    stack.write(
        "read",
        json!({"upsert_rows": [{"id": "a", "t": "new"}, {"id": "c", "t": "c"}]}),
    );
    // Two batches of two ids (before and after the write); only `a` was held, once. The
    // backfill checks for a racing write after its put returns: when the shard runs that check
    // only after this write began (a loaded machine), it withdraws `a` too: one more delete,
    // counted by `backfill_withdrawn` (process-wide, so only its rise is read), and `a` is
    // still tombstoned once, by whichever delete came first.
    eventually(
        "the write's tier deletes (and a raced backfill's withdrawal)",
        || {
            let after = stats();
            let deletes = after.deletes - before.deletes;
            let raced = deletes == 5 && withdrawn() > withdrawn_before;
            (deletes == 4 || raced) && after.tombstones - before.tombstones == 1
        },
    );
    let (status, _, doc) = fetch(&stack, "read", "a", "");
    assert_eq!((status, &doc["attributes"]["t"]), (200, &json!("new")));
}

/// One shard over an NVMe tier behind a link whose puts and deletes the test can hold.
fn stack_with_link() -> (Stack, RemoteTier) {
    let nvme: Arc<dyn Tier> = Arc::new(
        NvmeTier::open(NvmeConfig::new(temp_dir("held-nvme"), 16 << 20)).expect("nvme tier"),
    );
    let link = RemoteTier::new(nvme);
    let tier: Arc<dyn Tier> = Arc::new(link.clone());
    let stack = Stack::start_with_tier(|c| c.gateway.shards = 1, Some(tier));
    (stack, link)
}

/// The tier's value for a document, read directly (not through the gateway).
fn tier_title(link: &RemoteTier, ns: &str, id: &str) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let got = rt
        .block_on(link.get(Set::Documents, ns, id))
        .expect("tier get");
    got.map(|b| {
        let row: Value = serde_json::from_slice(&b).expect("cached row");
        row["title"].as_str().unwrap_or_default().to_string()
    })
}

fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        layer_e2e::pause(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_fetch_after_a_write_is_fresh_while_the_writes_tier_deletes_are_still_in_flight() {
    let (stack, link) = stack_with_link();
    let ns = "held-deletes";
    stack.write(ns, json!({"upsert_rows": [{"id": 7, "title": "old"}]}));
    assert_eq!(fetch(&stack, ns, "7", "").2["attributes"]["title"], "old");
    eventually("the fetch's backfill reaches the tier", || {
        tier_title(&link, ns, "7").as_deref() == Some("old")
    });

    // The write's tier deletes wait: its answer comes first, as under load.
    link.hold(Hold::Deletes);
    stack.write(ns, json!({"upsert_rows": [{"id": 7, "title": "new"}]}));
    assert_eq!(
        tier_title(&link, ns, "7").as_deref(),
        Some("old"),
        "the window is open: the tier still holds the replaced row"
    );
    let (status, cache, body) = fetch(&stack, ns, "7", "");
    assert_eq!(status, 200);
    assert_eq!(body["attributes"]["title"], "new", "{body}");
    assert_eq!(cache.as_deref(), Some("miss"), "read from origin");

    link.release(Hold::Deletes);
    eventually("the deletes land", || {
        tier_title(&link, ns, "7").as_deref() != Some("old")
    });
    assert_eq!(fetch(&stack, ns, "7", "").2["attributes"]["title"], "new");
}

#[test]
fn a_backfill_that_a_write_overtook_is_withdrawn_from_the_tier() {
    let (stack, link) = stack_with_link();
    let ns = "held-puts";
    stack.write(ns, json!({"upsert_rows": [{"id": 7, "title": "old"}]}));
    // The fetch reads the old row from origin; its copy into the tier waits.
    link.hold(Hold::Puts);
    assert_eq!(fetch(&stack, ns, "7", "").2["attributes"]["title"], "old");
    eventually("the backfill's put is held", || link.waiting() > 0);
    // A write replaces the row; its tier deletes run now, before the old copy lands.
    stack.write(ns, json!({"upsert_rows": [{"id": 7, "title": "new"}]}));
    let (_, cache, body) = fetch(&stack, ns, "7", "");
    assert_eq!(body["attributes"]["title"], "new", "{body}");
    assert_eq!(cache.as_deref(), Some("miss"));
    // The old copy lands after the write's deletes: it must not stay.
    link.release(Hold::Puts);
    eventually("the overtaken copy is withdrawn", || {
        link.waiting() == 0 && tier_title(&link, ns, "7").as_deref() != Some("old")
    });
    assert_eq!(fetch(&stack, ns, "7", "").2["attributes"]["title"], "new");
}
