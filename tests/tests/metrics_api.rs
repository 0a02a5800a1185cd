//! The metrics API end to end: the catalog routes (shape, `version`, `family` filter, one entry,
//! 404 and 422), the catalog and `/metrics` agreeing after every route family has been called
//! (every family `/metrics` has is in the catalog with its kind and labels, every catalog entry
//! not marked conditional is in `/metrics`, label values bounded), a 503 `cache_cold` counted
//! under the catalog's name and the deprecated one, and PromQL through the gateway against a
//! real VictoriaMetrics scraping the gateway (`scripts/vm-server`): numbers equal to the traffic
//! sent, short and `api/v1` forms, GET and POST, range queries, bodies one-for-one with
//! VictoriaMetrics' own, its answer to a syntax error passed through, and the gateway's own
//! 503/502 when it is not configured or down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::vm::{POLL, TestVm};
use layer_e2e::{Stack, UPSTREAM_KEY, pause};
use serde_json::{Value, json};

fn get(stack: &Stack, path: &str) -> (u16, Value) {
    let r = stack.gw(Method::GET, path, Bytes::new());
    (
        r.status.as_u16(),
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn catalog(stack: &Stack) -> BTreeMap<String, Value> {
    let (s, v) = get(stack, "/v2/metrics/catalog");
    assert_eq!(s, 200, "{v}");
    v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["name"].as_str().expect("name").to_string(), e.clone()))
        .collect()
}

#[test]
fn catalog_routes_serve_the_spec_shape() {
    let stack = Stack::start();
    let (s, all) = get(&stack, "/v2/metrics/catalog");
    assert_eq!(s, 200, "{all}");
    assert_eq!(all["version"], "2026-05");
    let entries = all["entries"].as_array().expect("entries");
    let families = [
        "query",
        "upsert",
        "fetch",
        "cache",
        "pipeline",
        "storage",
        "saturation",
    ];
    for e in entries {
        for k in ["name", "description", "example_promql"] {
            assert!(e[k].as_str().is_some_and(|s| !s.is_empty()), "{k}: {e}");
        }
        assert!(
            ["counter", "gauge", "histogram"].contains(&e["kind"].as_str().unwrap_or("")),
            "{e}"
        );
        assert!(
            families.contains(&e["family"].as_str().unwrap_or("")),
            "{e}"
        );
        assert!(e["labels"].is_array(), "{e}");
        if let Some(a) = e.get("alert") {
            for k in ["summary", "expr", "for"] {
                assert!(a[k].as_str().is_some_and(|s| !s.is_empty()), "{k}: {e}");
            }
        }
        if e["emitted"] == false {
            assert!(
                e["condition"].as_str().is_some_and(|c| !c.is_empty()),
                "{e}"
            );
        }
    }
    // The documented product's 64 families are all listed, by their names.
    let products = entries
        .iter()
        .filter(|e| e["origin"] == "hevlayer_catalog")
        .count();
    assert_eq!(products, 64);
    let (s, q) = get(&stack, "/v2/metrics/catalog/layer_query_duration_seconds");
    assert_eq!(s, 200, "{q}");
    assert_eq!(q["kind"], "histogram");
    assert_eq!(q["labels"], json!(["pipeline_id", "namespace", "status"]));
    assert_eq!(q["alert"]["name"], "QueryP99High");
    let (_, stop) = get(
        &stack,
        "/v2/metrics/catalog/layer_aerospike_op_duration_seconds",
    );
    assert!(
        stop["alert"]["expr"]
            .as_str()
            .is_some_and(|x| x.contains("aerospike_stop_writes")),
        "{stop}"
    );
    let (_, old) = get(
        &stack,
        "/v2/metrics/catalog/layer_cache_cold_responses_total",
    );
    assert_eq!(
        old["deprecated"]["replaced_by"],
        "hevlayer_cache_cold_responses_total"
    );
    // The family filter: only that family, and every entry of it.
    let (s, p) = get(&stack, "/v2/metrics/catalog?family=pipeline");
    assert_eq!(s, 200);
    let pl = p["entries"].as_array().expect("entries");
    assert!(pl.iter().all(|e| e["family"] == "pipeline"), "{p}");
    assert_eq!(
        pl.len(),
        entries.iter().filter(|e| e["family"] == "pipeline").count()
    );
    assert!(pl.iter().any(|e| e["name"] == "layer_udf_queue_depth"));
    let (s, e) = get(&stack, "/v2/metrics/catalog?family=bogus");
    assert_eq!(
        (s, e["error"].as_str()),
        (422, Some("validation_error")),
        "{e}"
    );
    let (s, e) = get(&stack, "/v2/metrics/catalog/no_such_metric_total");
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")), "{e}");
    // Read scope: no bearer, no catalog.
    let r = stack.http.send(
        Method::GET,
        &format!("{}/v2/metrics/catalog", stack.gateway_url),
        &[],
        Bytes::new(),
    );
    assert_eq!(r.status, 401);
}

/// One `/metrics` scrape: family → kind (from `# TYPE`), and every sample as (family, labels).
struct Scrape {
    kinds: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>)>,
}

fn scrape(stack: &Stack) -> Scrape {
    let text = stack.gw(Method::GET, "/metrics", Bytes::new()).text();
    assert!(!text.contains(UPSTREAM_KEY), "a token in /metrics");
    let mut kinds = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            assert!(
                kinds.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} has two TYPE lines"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, _value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        // Values here never hold `",` (no label value is free text), so a plain split works.
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").expect("label pair");
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| kinds.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        samples.push((family.to_string(), map));
    }
    Scrape { kinds, samples }
}

/// Calls one route of every family the gateway has (statuses are not the point here: what
/// `/metrics` records for them is).
fn exercise_every_route_family(stack: &Stack) {
    let rows: Vec<Value> = (0..20)
        .map(|i| json!({"id": i, "color": if i % 2 == 0 { "red" } else { "blue" }}))
        .collect();
    stack.write("mx", json!({ "upsert_rows": rows }));
    let calls: &[(Method, &str, Value)] = &[
        (
            Method::POST,
            "/v2/namespaces/mx/query",
            json!({"rank_by": ["id", "asc"], "top_k": 5}),
        ),
        (
            Method::POST,
            "/v1/namespaces/mx/query",
            json!({"rank_by": ["id", "asc"], "top_k": 5}),
        ),
        (
            Method::POST,
            "/v2/namespaces/mx",
            json!({"patch_rows": [{"id": 1, "color": "green"}]}),
        ),
        (Method::GET, "/v1/namespaces", Value::Null),
        (Method::GET, "/v2/namespaces", Value::Null),
        (Method::GET, "/v2/namespaces/mx/metadata", Value::Null),
        (Method::GET, "/v1/namespaces/mx/schema", Value::Null),
        (Method::GET, "/v2/namespaces/mx/documents/1", Value::Null),
        (
            Method::POST,
            "/v2/namespaces/mx/documents",
            json!({"ids": [1, 2]}),
        ),
        (Method::GET, "/v2/namespaces/mx/search-history", Value::Null),
        (Method::GET, "/v2/namespaces/mx/clickstream", Value::Null),
        (Method::POST, "/v2/namespaces/mx/snapshots", json!({})),
        (Method::GET, "/v2/namespaces/mx/history", Value::Null),
        (Method::GET, "/v2/activity/snapshots", Value::Null),
        (
            Method::POST,
            "/v2/namespaces/mx/scans",
            json!({"mode": "count", "filters": ["color", "Eq", "red"]}),
        ),
        (Method::GET, "/v2/namespaces/mx/scans", Value::Null),
        (Method::POST, "/v2/namespaces/mx/warm", Value::Null),
        (Method::GET, "/v2/namespaces/mx/warm-jobs", Value::Null),
        (
            Method::GET,
            "/v1/namespaces/mx/hint_cache_warm",
            Value::Null,
        ),
        (Method::GET, "/v2/pipelines", Value::Null),
        (Method::GET, "/v2/udfs", Value::Null),
        (Method::GET, "/v2/keys", Value::Null),
        (Method::GET, "/v2/vectorstores", Value::Null),
        (Method::GET, "/v2/warehouses", Value::Null),
        (Method::GET, "/v2/namespaces/mx/checkpoints", Value::Null),
        (Method::GET, "/v2/license", Value::Null),
        (Method::GET, "/v2/metrics/catalog", Value::Null),
        (Method::GET, "/v2/metrics/query?query=up", Value::Null),
        // A Layer-shaped page of a cursor query, a federated query and the agent of the stack.
        (
            Method::POST,
            "/v2/namespaces/mx/query",
            json!({"rank_by": ["id", "asc"], "top_k": 5, "cursor": null}),
        ),
        (
            Method::POST,
            "/v2/query",
            json!({"namespaces": ["mx"], "rank_by": ["id", "asc"], "top_k": 5}),
        ),
        (
            Method::POST,
            "/v2/agents/helper/query",
            json!({"query": "red", "top_k": 3}),
        ),
        (Method::GET, "/v2/namespaces/mx/capabilities", Value::Null),
        (
            Method::POST,
            "/v2/namespaces/mx-init/init",
            json!({"schema_version": 1}),
        ),
        (
            Method::POST,
            "/v2/namespaces/mx-init/import",
            json!({"not": "arrow"}),
        ),
        (Method::GET, "/v2/cost", Value::Null),
        (Method::GET, "/v2/cost/rate-card", Value::Null),
        (Method::GET, "/health", Value::Null),
        (Method::GET, "/no/such/route", Value::Null),
    ];
    for (m, path, body) in calls {
        let body = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        let r = stack.gw(m.clone(), path, body);
        assert!(r.status.as_u16() < 600, "{path}");
    }
    let r = stack.gw(
        Method::PUT,
        "/v1/namespaces/mx/blobs",
        Bytes::from_static(b"blob bytes"),
    );
    assert!(r.status.is_success(), "{}", r.text());
    // A caller without a valid token must not mint a label value.
    let r = stack.gw_with(
        Method::POST,
        "/v2/namespaces/denied-ns-label/query",
        &[("authorization", "Bearer not-the-key")],
        json!({"top_k": 1}).to_string(),
    );
    assert_eq!(r.status, 401);
}

#[test]
fn metrics_and_the_catalog_agree() {
    // One agent (the built-in provider) so the agents route family has something to answer.
    let stack = Stack::start_with(|c| {
        c.agents = vec![layer_gateway::config::AgentConfig {
            name: "helper".into(),
            indices: vec!["mx".into()],
            ..Default::default()
        }]
    });
    exercise_every_route_family(&stack);
    let cat = catalog(&stack);
    let s = scrape(&stack);
    // Every family /metrics has is in the catalog, with its kind.
    for (name, kind) in &s.kinds {
        let e = cat
            .get(name)
            .unwrap_or_else(|| panic!("{name} is in /metrics but not in the catalog"));
        assert_eq!(e["kind"].as_str(), Some(kind.as_str()), "{name}");
    }
    // Every catalog entry is in /metrics, unless marked conditional with its reason.
    let mut conditional = Vec::new();
    for (name, e) in &cat {
        if e["emitted"] == true {
            assert!(
                s.kinds.contains_key(name),
                "{name} is in the catalog as emitted but not in /metrics"
            );
        } else {
            assert!(
                e["condition"].as_str().is_some_and(|c| !c.is_empty()),
                "{e}"
            );
            conditional.push(name.clone());
        }
    }
    assert!(!conditional.is_empty());
    // Every sample belongs to a typed family and uses only the catalog's labels.
    let mut values: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (family, labels) in &s.samples {
        assert!(
            s.kinds.contains_key(family),
            "{family} sampled without a TYPE"
        );
        let allowed: Vec<&str> = cat[family]["labels"]
            .as_array()
            .expect("labels")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for (k, v) in labels {
            assert!(
                k == "le" || allowed.contains(&k.as_str()),
                "{family} has label {k} the catalog does not list ({allowed:?})"
            );
            values
                .entry((family.clone(), k.clone()))
                .or_default()
                .insert(v.clone());
        }
    }
    // Bounded label values: route names, never raw paths; no namespace from a refused caller.
    for ((family, k), vs) in &values {
        if k == "route" {
            assert!(vs.iter().all(|v| !v.contains('/')), "{family}: {vs:?}");
        }
        assert!(!vs.contains("denied-ns-label"), "{family}.{k}: {vs:?}");
        assert!(vs.len() <= 300, "{family}.{k} has {} values", vs.len());
    }
    // What the traffic above must have produced.
    let has = |family: &str, k: &str, v: &str| {
        values
            .get(&(family.to_string(), k.to_string()))
            .is_some_and(|vs| vs.contains(v))
    };
    assert!(has("layer_query_duration_seconds", "namespace", "mx"));
    assert!(has("layer_upsert_duration_seconds", "namespace", "mx"));
    assert!(has("layer_head_duration_seconds", "namespace", "mx"));
    assert!(has("layer_list_duration_seconds", "status", "200"));
    assert!(has("hevlayer_cache_state", "namespace", "mx"));
    assert!(has("hevlayer_scan_total", "mode", "count"));
    assert!(has("hevlayer_scan_duration_seconds", "selector", "filters"));
    assert!(has("layer_requests_total", "route", "list_metrics_catalog"));
    assert!(has("layer_requests_total", "route", "unknown"));
    assert!(has(
        "layer_metrics_proxy_requests_total",
        "outcome",
        "not_configured"
    ));
}

#[test]
fn a_cache_cold_answer_is_counted_under_the_new_and_the_old_name() {
    let stack = Stack::start_with(|c| {
        c.gateway.cache.tier = layer_gateway::config::CacheTierKind::Disabled;
    });
    let r = stack.gw(Method::POST, "/v2/namespaces/coldns/warm", Bytes::new());
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "cache_cold");
    assert_eq!(
        stack.metric(
            "hevlayer_cache_cold_responses_total{namespace=\"coldns\",store_kind=\"turbopuffer\"}"
        ),
        1.0
    );
    assert_eq!(
        stack.metric("layer_cache_cold_responses_total{route=\"warm\"}"),
        1.0
    );
}

#[test]
fn promql_without_victoria_metrics_is_the_documented_error() {
    // Not configured: 503 metrics_not_configured on every PromQL route.
    let stack = Stack::start();
    for path in [
        "/v2/metrics/query?query=up",
        "/v2/metrics/api/v1/query?query=up",
        "/v2/metrics/query_range?query=up&start=0&end=60&step=15",
        "/v2/metrics/api/v1/query_range?query=up&start=0&end=60&step=15",
    ] {
        let (s, e) = get(&stack, path);
        assert_eq!(
            (s, e["error"].as_str()),
            (503, Some("metrics_not_configured")),
            "{path}: {e}"
        );
    }
    drop(stack);
    // Configured but down (a port nothing listens on): 502 metrics_unavailable, without the
    // store's address in the answer.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let stack = Stack::start_with(move |c| c.gateway.metrics.victoria_metrics_url = Some(url));
    for path in [
        "/v2/metrics/query?query=up",
        "/v2/metrics/api/v1/query_range?query=up&start=0&end=60&step=15",
    ] {
        let r = stack.gw(Method::GET, path, Bytes::new());
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert_eq!(r.json()["error"], "metrics_unavailable");
        assert!(!r.text().contains(&port.to_string()), "{}", r.text());
    }
    assert_eq!(
        stack.metric(
            "layer_metrics_proxy_requests_total{endpoint=\"query\",outcome=\"unreachable\"}"
        ),
        1.0
    );
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The single value of an instant-vector answer (`None` when the vector is empty).
fn scalar_of(v: &Value) -> Option<f64> {
    assert_eq!(v["status"], "success", "{v}");
    let r = v["data"]["result"].as_array()?;
    let first = r.first()?;
    first["value"][1].as_str()?.parse().ok()
}

#[test]
fn promql_through_the_gateway_against_victoria_metrics() {
    let Some(vm) = TestVm::from_env("promql_through_the_gateway_against_victoria_metrics") else {
        return;
    };
    let vm_url = vm.url.clone();
    let stack = Stack::start_with(move |c| c.gateway.metrics.victoria_metrics_url = Some(vm_url));
    let run = format!(
        "r{}x{}",
        std::process::id(),
        layer_e2e::now_ms() % 1_000_000_000
    );
    let addr = stack.gateway_url.trim_start_matches("http://").to_string();
    let _target = vm.scrape(&run, &addr, &[("run", &run)]);
    // The traffic: 7 queries to one namespace, 3 to another.
    stack.write("pq-a", json!({"upsert_rows": [{"id": 1, "x": 1}]}));
    stack.write("pq-b", json!({"upsert_rows": [{"id": 1, "x": 1}]}));
    for (ns, n) in [("pq-a", 7), ("pq-b", 3)] {
        for _ in 0..n {
            let r = stack.gw(
                Method::POST,
                &format!("/v2/namespaces/{ns}/query"),
                json!({"rank_by": ["id", "asc"], "top_k": 1}).to_string(),
            );
            assert_eq!(r.status, 200, "{}", r.text());
        }
    }
    let q = |ns: &str| {
        format!(
            "sum(layer_query_duration_seconds_count{{run=\"{run}\",namespace=\"{ns}\",status=\"200\"}})"
        )
    };
    // VictoriaMetrics scrapes every second: wait until a scrape after the traffic is searchable.
    let deadline = Instant::now() + Duration::from_secs(60);
    let path_a = format!("/v2/metrics/query?query={}", enc(&q("pq-a")));
    loop {
        let (s, v) = get(&stack, &path_a);
        assert_eq!(s, 200, "{v}");
        if scalar_of(&v) == Some(7.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "VictoriaMetrics never saw the 7 queries: {v}"
        );
        pause(POLL);
    }
    // The other forms answer the same numbers.
    let (s, v) = get(
        &stack,
        &format!("/v2/metrics/api/v1/query?query={}", enc(&q("pq-b"))),
    );
    assert_eq!((s, scalar_of(&v)), (200, Some(3.0)), "{v}");
    let r = stack.gw_with(
        Method::POST,
        "/v2/metrics/api/v1/query",
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("query={}", enc(&q("pq-a"))),
    );
    assert_eq!(
        (r.status.as_u16(), scalar_of(&r.json())),
        (200, Some(7.0)),
        "{}",
        r.text()
    );
    let now = layer_e2e::now_ms() / 1000;
    for path in ["/v2/metrics/query_range", "/v2/metrics/api/v1/query_range"] {
        let (s, v) = get(
            &stack,
            &format!(
                "{path}?query={}&start={}&end={now}&step=1",
                enc(&q("pq-a")),
                now - 120
            ),
        );
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["data"]["resultType"], "matrix", "{v}");
        let points = v["data"]["result"][0]["values"].as_array().expect("values");
        let last = points.last().expect("a point")[1].as_str().expect("value");
        assert_eq!(last, "7", "{v}");
    }
    // One-for-one: the gateway's body is VictoriaMetrics' own for the same question.
    let fixed = format!("query={}&time={now}", enc(&q("pq-a")));
    let (ds, direct) = vm.get(&stack.http, &format!("/api/v1/query?{fixed}"));
    let through = stack.gw(
        Method::GET,
        &format!("/v2/metrics/query?{fixed}"),
        Bytes::new(),
    );
    assert_eq!((through.status.as_u16(), &through.body), (ds, &direct));
    // A PromQL syntax error: VictoriaMetrics' own answer, passed through unchanged (Prometheus
    // says 400; VictoriaMetrics 1.79 says 422 `bad_data`, and that is what callers get).
    // (A past `time`: VictoriaMetrics echoes it, and clamps one at "now" to its own clock.)
    let bad = format!(
        "query={}&time={}",
        enc("sum(rate(layer_requests_total[5m]"),
        now - 10
    );
    let (ds, direct) = vm.get(&stack.http, &format!("/api/v1/query?{bad}"));
    assert!(matches!(ds, 400 | 422), "{ds}");
    assert!(String::from_utf8_lossy(&direct).contains("error"));
    let through = stack.gw(
        Method::GET,
        &format!("/v2/metrics/api/v1/query?{bad}"),
        Bytes::new(),
    );
    assert_eq!((through.status.as_u16(), &through.body), (ds, &direct));
    // The read scope guards the passthrough like any read route.
    let r = stack.http.send(
        Method::GET,
        &format!("{}{path_a}", stack.gateway_url),
        &[],
        Bytes::new(),
    );
    assert_eq!(r.status, 401);
}

#[test]
fn a_skipped_snapshot_field_is_counted_by_namespace_and_field() {
    // A facet cap of 2 instead of 10,000 (the only knob changed), so five colours overflow it.
    let stack = Stack::start_with(|c| c.gateway.snapshots.field_cap = 2);
    let rows: Vec<Value> = (0..10)
        .map(|i| json!({"id": i, "color": format!("c{}", i % 5)}))
        .collect();
    stack.write("snapskip", json!({ "upsert_rows": rows }));
    let r = stack.gw(
        Method::POST,
        "/v2/namespaces/snapskip/snapshots",
        json!({"field": "color", "source": "origin", "consistency": "strong"}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("job id").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, j) = get(
            &stack,
            &format!("/v2/namespaces/snapskip/snapshot-jobs/{id}"),
        );
        if j["status"] != "running" {
            assert_eq!(j["status"], "completed", "{j}");
            break;
        }
        assert!(Instant::now() < deadline, "{j}");
        pause(Duration::from_millis(30));
    }
    assert_eq!(
        stack.metric(
            "hevlayer_snapshot_field_skipped_total{namespace=\"snapskip\",store_kind=\"turbopuffer\",field=\"color\",reason=\"exceeded_cap\"}"
        ),
        1.0
    );
}

#[test]
fn the_queue_pool_is_reported_with_the_catalog_name() {
    let Some(stack) = layer_e2e::pipelines::stack_with_db("metrics_pg_pool") else {
        return;
    };
    // The gauge is refreshed after the queue's first call (the stage counts) and every 10 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let busy = stack.metric("layer_pg_pool_connections{state=\"busy\"}");
        let idle = stack.metric("layer_pg_pool_connections{state=\"idle\"}");
        if busy + idle >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no pool connection reported");
        pause(Duration::from_millis(100));
    }
    // Callers waiting for a connection: a sample whatever its value (at start several loops
    // wait while the pool opens its first connections).
    let text = stack.gw(Method::GET, "/metrics", Bytes::new()).text();
    assert!(
        text.contains("layer_pg_pool_connections{state=\"waiting\"} "),
        "{text}"
    );
}
