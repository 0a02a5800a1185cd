//! Scans end to end against the emulator: count, ids and values over filter, fts and ann
//! selectors from origin (checked against counts computed here from the written rows), ranked
//! saturation and exhaustive recursion, high-cardinality and truncated values listings, snapshot-
//! served counts and values (and the fall-through when the schema cannot be read), the job routes
//! (also in a namespace named `scans`), the cap on running jobs and the 422/412 rules.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::{Stack, now_ms, pause};
use layer_gateway::config::IndexConfig;
use serde_json::{Value, json};

/// Row `i` gets `CATS[i² mod 5]`: squares mod 5 are 0, 1 or 4, so three categories occur.
const CATS: [&str; 5] = ["books", "toys", "games", "tools", "food"];
/// Four well separated directions: cosine distance from [1,0,0] is 0, 1, 0.293 and 1.
const DIRS: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.0, 1.0, 0.0],
    [1.0, 1.0, 0.0],
    [0.0, 0.0, 1.0],
];

fn sharded(ns: &str, shards: u32) -> IndexConfig {
    IndexConfig {
        name: ns.into(),
        shards,
        ..IndexConfig::default()
    }
}

/// Row `i` of the test data set.
fn row(i: u64) -> Value {
    let tags: Vec<String> = vec![format!("t{}", i % 3), format!("t{}", i % 4)];
    json!({
        "id": format!("d{i:05}"),
        "category": CATS[((i * i) % 5) as usize],
        "tags": tags,
        "n": i % 10,
        "price": i as f64 * 0.5,
        "title": if i.is_multiple_of(3) { format!("red alpha item {i}") } else { format!("blue beta item {i}") },
        "vector": DIRS[(i % 4) as usize],
        "sku": format!("sku-{i:05}"),
    })
}

fn write(stack: &Stack, ns: &str, rows: &[Value]) {
    for chunk in rows.chunks(2500) {
        let body = json!({
            "upsert_rows": chunk,
            "distance_metric": "cosine_distance",
            "schema": {"title": {"type": "string", "full_text_search": true}},
        });
        stack.write(ns, body);
    }
}

fn scan(stack: &Stack, ns: &str, body: Value) -> (u16, Value) {
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/scans"),
        body.to_string(),
    );
    (r.status.as_u16(), r.json())
}

fn count(stack: &Stack, ns: &str, body: Value) -> Value {
    let mut body = body;
    body["mode"] = json!("count");
    let (status, v) = scan(stack, ns, body);
    assert_eq!(status, 200, "{v}");
    for k in ["count", "served_by", "elapsed_ms"] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    v
}

/// Polls a scan job until it leaves `running`.
fn wait_job(stack: &Stack, ns: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = stack.gw(
            Method::GET,
            &format!("/v2/namespaces/{ns}/scans/{id}"),
            Bytes::new(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        for k in [
            "id",
            "namespace",
            "status",
            "progress",
            "documents_scanned",
            "created_at",
            "mode",
            "source",
        ] {
            assert!(j.get(k).is_some(), "{k} missing from {j}");
        }
        if j["status"] != "running" {
            return j;
        }
        assert!(Instant::now() < deadline, "scan never finished: {j}");
        pause(Duration::from_millis(20));
    }
}

/// Runs an ids/values job to completion and returns (job, results without limit).
fn job(stack: &Stack, ns: &str, body: Value) -> (Value, Value) {
    let (status, created) = scan(stack, ns, body);
    assert_eq!(status, 202, "{created}");
    let j = wait_job(stack, ns, created["id"].as_str().expect("id"));
    assert_eq!(j["status"], "completed", "{j}");
    let r = stack.gw(
        Method::GET,
        &format!(
            "/v2/namespaces/{ns}/scans/{}/results",
            j["id"].as_str().expect("id")
        ),
        Bytes::new(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    (j, r.json())
}

fn ids_of(results: &Value) -> BTreeSet<String> {
    results["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("string id").to_string())
        .collect()
}

/// Expected values listing: (v, n) ordered n desc then v asc.
fn expected_values(
    rows: &[Value],
    keep: impl Fn(&Value) -> bool,
    field: &str,
) -> Vec<(String, u64)> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows.iter().filter(|r| keep(r)) {
        let vals: BTreeSet<String> = match &r[field] {
            Value::Array(a) => a
                .iter()
                .map(|v| v.as_str().expect("str").to_string())
                .collect(),
            Value::String(s) => [s.clone()].into(),
            Value::Number(n) => [n.to_string()].into(),
            _ => BTreeSet::new(),
        };
        for v in vals {
            *m.entry(v).or_default() += 1;
        }
    }
    let mut out: Vec<(String, u64)> = m.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

fn listing(results: &Value) -> Vec<(String, u64)> {
    results["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| {
            (
                v["v"].as_str().expect("v is a string").to_string(),
                v["n"].as_u64().expect("n"),
            )
        })
        .collect()
}

#[test]
fn origin_counts_ids_and_values_match_the_data() {
    let ns = "scan-origin";
    let stack = Stack::start_with(|c| {
        c.indexes.push(sharded(ns, 3));
    });
    let rows: Vec<Value> = (0..3000).map(row).collect();
    write(&stack, ns, &rows);
    let wm = stack.wait_watermark(ns, now_ms());

    type Keep = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(Value, Keep)> = vec![
        (json!(null), Box::new(|_| true)),
        (
            json!(["category", "Eq", "books"]),
            Box::new(|r| r["category"] == "books"),
        ),
        (
            json!(["n", "In", [1, 2, 3]]),
            Box::new(|r| (1..=3).contains(&r["n"].as_u64().unwrap())),
        ),
        (
            json!(["And", [["n", "Gte", 5], ["category", "NotEq", "toys"]]]),
            Box::new(|r| r["n"].as_u64().unwrap() >= 5 && r["category"] != "toys"),
        ),
        (
            json!([
                "Or",
                [["tags", "In", ["t2"]], ["Not", ["price", "Lt", 1000]]]
            ]),
            Box::new(|r| {
                r["tags"].as_array().unwrap().contains(&json!("t2"))
                    || r["price"].as_f64().unwrap() >= 1000.0
            }),
        ),
    ];
    for (filters, keep) in &cases {
        let want = rows.iter().filter(|r| keep(r)).count() as u64;
        let mut body = json!({"source": "origin", "threads": 8});
        if !filters.is_null() {
            body["filters"] = filters.clone();
        }
        let c = count(&stack, ns, body);
        assert_eq!(c["count"], want, "{filters}: {c}");
        assert_eq!(
            (c["served_by"].as_str(), c["threads"].as_u64()),
            (Some("origin"), Some(3)),
            "{c}"
        );
        assert_eq!(
            (c["shards_total"].as_u64(), c["bounded"].as_bool()),
            (Some(3), Some(false))
        );
        wm_at_least(&c, wm);
    }

    // ids: every id without a limit, pages with limit/offset.
    let keep = |r: &Value| r["category"] == "toys";
    let (j, all) = job(
        &stack,
        ns,
        json!({"source": "origin", "filters": ["category", "Eq", "toys"], "page_size": 100}),
    );
    let want: BTreeSet<String> = rows
        .iter()
        .filter(|r| keep(r))
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids_of(&all), want);
    assert_eq!(all["total"], want.len());
    assert_eq!(
        (
            j["mode"].as_str(),
            j["effective_source"].as_str(),
            j["threads"].as_u64()
        ),
        (Some("ids"), Some("origin"), Some(3))
    );
    assert_eq!(j["documents_scanned"], want.len() as u64);
    assert_eq!(j["progress"], 1.0);
    let id = j["id"].as_str().unwrap();
    let page = stack
        .gw(
            Method::GET,
            &format!("/v2/namespaces/{ns}/scans/{id}/results?limit=7&offset=3"),
            Bytes::new(),
        )
        .json();
    assert_eq!(
        page["ids"].as_array().unwrap()[..],
        all["ids"].as_array().unwrap()[3..10]
    );
    assert_eq!(page["total"], want.len());

    // values: a scalar string, an int stringified, a string array counted once per document.
    for (field, filters) in [
        ("category", json!(null)),
        ("n", json!(["category", "Eq", "books"])),
        ("tags", json!(null)),
    ] {
        let mut body = json!({"mode": "values", "field": field, "source": "origin"});
        let keep: Box<dyn Fn(&Value) -> bool> = if filters.is_null() {
            Box::new(|_| true)
        } else {
            body["filters"] = filters.clone();
            Box::new(|r: &Value| r["category"] == "books")
        };
        let (j, res) = job(&stack, ns, body);
        assert_eq!(
            listing(&res),
            expected_values(&rows, keep, field),
            "{field}"
        );
        assert_eq!(
            (res["truncated"].as_bool(), j["truncated"].as_bool()),
            (Some(false), Some(false))
        );
        assert_eq!(j["field"], field);
    }

    // fts (exact) and ann (approximate) counts.
    let fts = count(
        &stack,
        ns,
        json!({"fts": {"field": "title", "query": "alpha"}, "filters": ["n", "Lt", 5]}),
    );
    let want = rows
        .iter()
        .filter(|r| r["title"].as_str().unwrap().contains("alpha") && r["n"].as_u64().unwrap() < 5)
        .count();
    assert_eq!(
        (fts["count"].as_u64(), fts["served_by"].as_str()),
        (Some(want as u64), Some("origin")),
        "{fts}"
    );
    assert!(fts.get("approximate").is_none());
    let ann = count(
        &stack,
        ns,
        json!({"ann": {"vector": [1.0, 0.0, 0.0], "radius": 0.5}, "threads": 2}),
    );
    let want = rows
        .iter()
        .filter(|r| {
            matches!(
                r["id"].as_str().unwrap()[1..].parse::<u64>().unwrap() % 4,
                0 | 2
            )
        })
        .count();
    assert_eq!(
        (ann["count"].as_u64(), ann["approximate"].as_bool()),
        (Some(want as u64), Some(true)),
        "{ann}"
    );
    assert_eq!(
        (ann["threads"].as_u64(), ann["bounded"].as_bool()),
        (Some(2), Some(false))
    );
    let (_, vals) = job(
        &stack,
        ns,
        json!({"mode": "values", "field": "category", "ann": {"vector": [1.0, 0.0, 0.0], "radius": 0.5}}),
    );
    let keep = |r: &Value| {
        matches!(
            r["id"].as_str().unwrap()[1..].parse::<u64>().unwrap() % 4,
            0 | 2
        )
    };
    assert_eq!(listing(&vals), expected_values(&rows, keep, "category"));

    // 422s: vector values, a values field on count, fts+ann, ranked with cache/snapshot, ranked ids.
    for bad in [
        json!({"mode": "values", "field": "vector"}),
        json!({"mode": "values", "field": "price"}),
        json!({"mode": "count", "field": "category"}),
        json!({"mode": "count", "fts": {"field": "title", "query": "a"}, "ann": {"vector": [1, 0, 0], "radius": 1}}),
        json!({"mode": "count", "source": "cache", "fts": {"field": "title", "query": "a"}}),
        json!({"mode": "count", "source": "snapshot", "ann": {"vector": [1, 0, 0], "radius": 1}}),
        json!({"mode": "count", "ann": {"vector": [1, 0, 0]}}),
        json!({"fts": {"field": "title", "query": "a"}}),
        json!({"source": "snapshot"}),
    ] {
        let (status, v) = scan(&stack, ns, bad.clone());
        assert_eq!(
            (status, v["error"].as_str()),
            (422, Some("validation_error")),
            "{bad}: {v}"
        );
    }

    // Listing, delete (a JSON body, never 204), then 404.
    let listed = stack
        .gw(
            Method::GET,
            &format!("/v2/namespaces/{ns}/scans"),
            Bytes::new(),
        )
        .json();
    assert!(
        listed["scans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == id)
    );
    let d = stack.gw(
        Method::DELETE,
        &format!("/v2/namespaces/{ns}/scans/{id}"),
        Bytes::new(),
    );
    assert_eq!(
        (d.status.as_u16(), d.json()["status"].as_str()),
        (200, Some("deleted"))
    );
    let gone = stack.gw(
        Method::GET,
        &format!("/v2/namespaces/{ns}/scans/{id}"),
        Bytes::new(),
    );
    assert_eq!(gone.status, 404);
}

/// Origin counts carry their cut, which only moves forward.
fn wm_at_least(c: &Value, wm: u64) {
    let got = c["watermark_ms"]
        .as_u64()
        .expect("origin counts carry their cut");
    assert!(got >= wm, "{got} < {wm}");
}

#[test]
fn ranked_counts_saturate_recurse_and_values_go_past_the_snapshot_cap() {
    let ns = "scan-ranked";
    let stack = Stack::start();
    let rows: Vec<Value> = (0..10_500)
        .map(|i| {
            let mut r = row(i);
            r["title"] = json!(format!("alpha {i}"));
            r["vector"] = json!(DIRS[0]);
            r
        })
        .collect();
    write(&stack, ns, &rows);
    stack.wait_watermark(ns, now_ms());
    let fts = json!({"field": "title", "query": "alpha"});
    let c = count(&stack, ns, json!({"fts": fts}));
    assert_eq!(
        (
            c["count"].as_u64(),
            c["bounded"].as_bool(),
            c["shards_saturated"].as_u64()
        ),
        (Some(10_000), Some(true), Some(1)),
        "{c}"
    );
    let c = count(&stack, ns, json!({"fts": fts, "exhaustive": true}));
    assert_eq!(
        (
            c["count"].as_u64(),
            c["bounded"].as_bool(),
            c["timed_out"].as_bool()
        ),
        (Some(10_500), Some(false), Some(false)),
        "{c}"
    );
    let ann = json!({"vector": [1.0, 0.0, 0.0], "radius": 0.1});
    let c = count(&stack, ns, json!({"ann": ann}));
    assert_eq!(
        (
            c["count"].as_u64(),
            c["bounded"].as_bool(),
            c["approximate"].as_bool()
        ),
        (Some(10_000), Some(true), Some(true))
    );
    let c = count(&stack, ns, json!({"ann": ann, "exhaustive": true}));
    assert_eq!(
        (
            c["count"].as_u64(),
            c["bounded"].as_bool(),
            c["approximate"].as_bool()
        ),
        (Some(10_500), Some(false), Some(true))
    );

    // 10,500 distinct skus: past the 10,000 snapshot facet cap, every value listed, exact.
    let started = Instant::now();
    let (j, res) = job(
        &stack,
        ns,
        json!({"mode": "values", "field": "sku", "page_size": 5000}),
    );
    println!(
        "values scan of 10,500 rows from origin: {:?}",
        started.elapsed()
    );
    assert_eq!(res["total"], 10_500);
    assert_eq!(j["unique_values"], 10_500);
    assert_eq!(listing(&res), expected_values(&rows, |_| true, "sku"));
    assert_eq!(res["truncated"], false);
}

#[test]
fn values_listing_truncates_at_the_cap_with_exact_counts() {
    let ns = "scan-cap";
    let stack = Stack::start_with(|c| {
        c.gateway.scan.values_cap = 100;
    });
    let rows: Vec<Value> = (0..3000)
        .map(|i| json!({"id": i, "bucket": format!("b{:03}", (i * 7) % 137)}))
        .collect();
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}"),
        json!({"upsert_rows": rows}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    stack.wait_watermark(ns, now_ms());
    let (j, res) = job(&stack, ns, json!({"mode": "values", "field": "bucket"}));
    let want = expected_values(&rows, |_| true, "bucket");
    assert_eq!(want.len(), 137);
    assert_eq!(listing(&res), want[..100].to_vec());
    assert_eq!(
        (res["truncated"].as_bool(), res["total"].as_u64()),
        (Some(true), Some(100))
    );
    assert_eq!(
        (j["truncated"].as_bool(), j["unique_values"].as_u64()),
        (Some(true), Some(137))
    );
    // Numeric ids come back as strings.
    let (_, ids) = job(&stack, ns, json!({"filters": ["bucket", "Eq", "b000"]}));
    let want: BTreeSet<String> = (0..3000u64)
        .filter(|i| (i * 7) % 137 == 0)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(ids_of(&ids), want);
}

#[test]
fn snapshot_served_counts_and_values() {
    let ns = "scan-snap";
    let stack = Stack::start();
    let rows: Vec<Value> = (0..400).map(row).collect();
    write(&stack, ns, &rows);
    stack.wait_watermark(ns, now_ms());
    // No snapshot yet: explicit snapshot is a 412, auto falls through.
    let (status, v) = scan(
        &stack,
        ns,
        json!({"mode": "count", "source": "snapshot", "filters": ["category", "Eq", "books"]}),
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (412, Some("precondition_failed")),
        "{v}"
    );
    // A snapshot policy on `category`: the automatic writer records the namespace's first
    // snapshot (manual bodies join the history only next to a policy's).
    let sha = policy_snapshot(&stack, ns, "category");
    let books = rows.iter().filter(|r| r["category"] == "books").count() as u64;
    let toys = rows.iter().filter(|r| r["category"] == "toys").count() as u64;
    for source in ["snapshot", "auto"] {
        let r = stack.gw(Method::POST, &format!("/v2/namespaces/{ns}/scans"),
            json!({"mode": "count", "source": source, "filters": ["category", "In", ["books", "toys", "books"]]}).to_string());
        assert_eq!(r.status, 200, "{}", r.text());
        let c = r.json();
        assert_eq!(
            (
                c["count"].as_u64(),
                c["served_by"].as_str(),
                c["snapshot_sha"].as_str()
            ),
            (Some(books + toys), Some("snapshot"), Some(sha.as_str())),
            "{c}"
        );
        let hdr = r
            .headers
            .get("x-layer-stable-as-of")
            .expect("header")
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
        assert_eq!(Some(hdr), c["watermark_ms"].as_u64());
    }
    // Ineligible shapes: 412 under snapshot, origin under auto with the same answer.
    for f in [
        json!(["And", [["category", "Eq", "books"]]]),
        json!(["category", "NotEq", "books"]),
        json!(["n", "Eq", 3]),
    ] {
        let (status, v) = scan(
            &stack,
            ns,
            json!({"mode": "count", "source": "snapshot", "filters": f}),
        );
        assert_eq!(status, 412, "{f}: {v}");
        let c = count(&stack, ns, json!({"filters": f}));
        assert_ne!(c["served_by"], "snapshot", "{f}");
    }
    // A schema read that fails: auto falls through (to the cache the counts above warmed, or
    // origin) with the right count; an explicit snapshot source reports the failure.
    faults(
        &stack,
        json!([{"route": "schema", "namespace": ns, "status": 500}]),
    );
    let books_filter = json!(["category", "Eq", "books"]);
    let c = count(
        &stack,
        ns,
        json!({"source": "auto", "filters": books_filter}),
    );
    assert_eq!(c["count"], books, "{c}");
    assert!(
        matches!(c["served_by"].as_str(), Some("cache" | "origin")),
        "{c}"
    );
    let (status, v) = scan(
        &stack,
        ns,
        json!({"mode": "count", "source": "snapshot", "filters": books_filter}),
    );
    assert_eq!(
        (status, v["error"].as_str()),
        (502, Some("upstream_error")),
        "{v}"
    );
    clear_faults(&stack);
    let c = count(
        &stack,
        ns,
        json!({"source": "auto", "filters": books_filter}),
    );
    assert_eq!(c["served_by"], "snapshot", "{c}");
    // Values: the unfiltered listing completes during the create call.
    let (status, j) = scan(&stack, ns, json!({"mode": "values", "field": "category"}));
    assert_eq!(
        (status, j["status"].as_str(), j["effective_source"].as_str()),
        (202, Some("completed"), Some("snapshot")),
        "{j}"
    );
    assert_eq!(j["snapshot_sha"], sha);
    let res = stack
        .gw(
            Method::GET,
            &format!(
                "/v2/namespaces/{ns}/scans/{}/results?limit=2",
                j["id"].as_str().unwrap()
            ),
            Bytes::new(),
        )
        .json();
    assert_eq!(
        listing(&res),
        expected_values(&rows, |_| true, "category")[..2].to_vec()
    );
    assert_eq!(
        res["total"],
        expected_values(&rows, |_| true, "category").len()
    );
    let (status, _) = scan(
        &stack,
        ns,
        json!({"mode": "values", "field": "tags", "source": "snapshot"}),
    );
    assert_eq!(status, 412);
    let (status, _) = scan(
        &stack,
        ns,
        json!({"mode": "values", "field": "category", "source": "snapshot", "filters": ["n", "Eq", 1]}),
    );
    assert_eq!(status, 412);
}

/// Sets a snapshot policy on `field` and waits for the automatic writer's first snapshot of
/// `ns`; returns its sha.
fn policy_snapshot(stack: &Stack, ns: &str, field: &str) -> String {
    let r = stack.gw(
        Method::PUT,
        &format!("/v2/namespaces/{ns}/snapshot-policy"),
        json!({"facetFields": [field], "interval": "1h", "retention": "never"}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = stack.gw(
            Method::GET,
            &format!("/v2/namespaces/{ns}/history"),
            Bytes::new(),
        );
        assert_eq!(h.status, 200, "{}", h.text());
        if let Some(sha) = h.json()[0]["sha"].as_str() {
            return sha.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot of {ns}: {}",
            h.text()
        );
        pause(Duration::from_millis(50));
    }
}

fn faults(stack: &Stack, rules: Value) {
    let r = stack.direct(
        Method::POST,
        "/_emu/faults",
        json!({ "rules": rules }).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn clear_faults(stack: &Stack) {
    let r = stack.direct(Method::DELETE, "/_emu/faults", Bytes::new());
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_namespace_named_scans_and_the_running_job_cap() {
    // The job id is read by position, not by looking for a `scans` segment.
    let ns = "scans";
    let stack = Stack::start();
    let rows: Vec<Value> = (0..60).map(row).collect();
    write(&stack, ns, &rows);
    stack.wait_watermark(ns, now_ms());
    let (j, all) = job(&stack, ns, json!({"source": "origin"}));
    assert_eq!(j["namespace"], ns);
    assert_eq!(ids_of(&all).len(), 60);
    let id = j["id"].as_str().unwrap().to_string();
    let page = stack
        .gw(
            Method::GET,
            &format!("/v2/namespaces/{ns}/scans/{id}/results?limit=5"),
            Bytes::new(),
        )
        .json();
    assert_eq!(
        (page["ids"].as_array().map(Vec::len), page["total"].as_u64()),
        (Some(5), Some(60))
    );
    let d = stack.gw(
        Method::DELETE,
        &format!("/v2/namespaces/{ns}/scans/{id}"),
        Bytes::new(),
    );
    assert_eq!(
        (d.status.as_u16(), d.json()["id"].as_str()),
        (200, Some(id.as_str()))
    );

    // Upstream pages held for a while: eight jobs run, a ninth is refused naming the cap.
    faults(
        &stack,
        json!([{"route": "query", "namespace": ns, "delay_ms": 3000}]),
    );
    let mut running = Vec::new();
    for _ in 0..8 {
        let (status, created) = scan(&stack, ns, json!({"source": "origin"}));
        assert_eq!(
            (status, created["status"].as_str()),
            (202, Some("running")),
            "{created}"
        );
        running.push(created["id"].as_str().unwrap().to_string());
    }
    let (status, refused) = scan(&stack, ns, json!({"source": "origin"}));
    assert_eq!(
        (status, refused["error"].as_str()),
        (412, Some("precondition_failed")),
        "{refused}"
    );
    assert!(
        refused["message"].as_str().unwrap().contains("at most 8"),
        "{refused}"
    );
    // Deleting a running job frees its slot.
    let d = stack.gw(
        Method::DELETE,
        &format!("/v2/namespaces/{ns}/scans/{}", running.remove(0)),
        Bytes::new(),
    );
    assert_eq!(d.status, 200);
    let (status, created) = scan(&stack, ns, json!({"source": "origin"}));
    assert_eq!(status, 202, "{created}");
    running.push(created["id"].as_str().unwrap().to_string());
    clear_faults(&stack);
    for id in &running {
        let j = wait_job(&stack, ns, id);
        assert_eq!(j["status"], "completed", "{j}");
        assert_eq!(j["total"], 60, "{j}");
    }
    let (status, _) = scan(&stack, ns, json!({"source": "origin"}));
    assert_eq!(status, 202, "finished jobs free their slots");
}
