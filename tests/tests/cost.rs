//! Cost end to end: `GET /v2/cost`, `/v2/cost/timeseries` and `/v2/cost/rate-card`.
//!
//! Without a rate card or without AWS access each route answers 503 `cost_unavailable` naming
//! what is missing (and a bad rate card names its fault); with a rate-card file and moto's Cost
//! Explorer (the server `scripts/s3-server` starts, `LAYER_TEST_S3_ENDPOINT`, reached through a
//! proxy the test cuts), the snapshot's Turbopuffer lines are the card's prices times the usage
//! the emulator saw (its request log: queries, write bytes; bytes queried = queries × the
//! namespace's logical size from its metadata), its AWS lines are the amounts seeded into moto,
//! the timeseries adds up to the same, and a Cost Explorer that goes away leaves the last data
//! served with `aws_cost_stale: true`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use layer_e2e::proxy::Proxy;
use layer_e2e::{Stack, TestS3, now_ms, pause, temp_dir};
use serde_json::{Value, json};

const CARD: &str = r#"
version: "e2e-2026-01"
source: invoice
verifiedBy: e2e
verifiedAt: "2026-01-05"
lines:
  - {service: queries, unit: 1k queries, usd: 4.0}
  - {service: queried, unit: GB, usd: 0.5}
  - {service: returned, unit: MB, usd: 0.01}
  - {service: writes, unit: KB, usd: 0.002}
  - {service: storage, unit: GiB-month, usd: 0.33}
"#;

fn get(stack: &Stack, path: &str) -> (u16, Value) {
    let r = stack.gw(Method::GET, path, Bytes::new());
    (
        r.status.as_u16(),
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn card_file(text: &str) -> std::path::PathBuf {
    let p = temp_dir("cost").join("rate-card.yaml");
    std::fs::write(&p, text).expect("write the rate card");
    p
}

/// `YYYY-MM-DD` of the UTC day `days` after the epoch (Hinnant's civil-from-days).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn missing(v: &Value) -> Vec<&str> {
    v["missing"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        pause(Duration::from_millis(100));
    }
}

#[test]
fn without_a_rate_card_or_aws_access_the_routes_answer_503_naming_it() {
    // Nothing configured (the defaults).
    let stack = Stack::start();
    for path in ["/v2/cost", "/v2/cost/timeseries?window=1h&step=5m"] {
        let (s, v) = get(&stack, path);
        assert_eq!(
            (s, v["error"].as_str()),
            (503, Some("cost_unavailable")),
            "{v}"
        );
        assert_eq!(
            missing(&v),
            ["turbopuffer_rate_card", "aws_cost_explorer"],
            "{v}"
        );
        let m = v["message"].as_str().unwrap_or_default();
        assert!(
            m.contains("gateway.cost.rateCardFile") && m.contains("costExplorerEnabled"),
            "{m}"
        );
    }
    let (s, v) = get(&stack, "/v2/cost/rate-card");
    assert_eq!(
        (s, missing(&v)),
        (503, vec!["turbopuffer_rate_card"]),
        "{v}"
    );
    drop(stack);

    // A rate card but no AWS access: the rate card is served, the costs are not.
    let card = card_file(CARD);
    let stack = Stack::start_with(move |c| c.gateway.cost.rate_card_file = Some(card));
    let (s, v) = get(&stack, "/v2/cost/rate-card");
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["turbopuffer"]["version"], "e2e-2026-01");
    let (s, v) = get(&stack, "/v2/cost?window=1h");
    assert_eq!((s, missing(&v)), (503, vec!["aws_cost_explorer"]), "{v}");
    // Bad parameters are a 422 before anything else.
    let (s, v) = get(&stack, "/v2/cost?window=2h");
    assert_eq!(
        (s, v["error"].as_str()),
        (422, Some("validation_error")),
        "{v}"
    );
    let (s, _) = get(&stack, "/v2/cost/timeseries?window=1h&step=1d");
    assert_eq!(s, 422);
    drop(stack);

    // A rate card the gateway cannot apply names its fault; a Cost Explorer that cannot be
    // reached (a closed port) is named too, never replaced by numbers.
    let card = card_file(&CARD.replace("unit: KB,", "unit: KB-hour,"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let stack = Stack::start_with(move |c| {
        c.gateway.cost.rate_card_file = Some(card);
        c.gateway.cost.cost_explorer_enabled = true;
        c.gateway.cost.endpoint = Some(dead);
    });
    let (s, v) = get(&stack, "/v2/cost/rate-card");
    assert_eq!(s, 503, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("\"KB-hour\""),
        "{v}"
    );
    let v = until("the failed Cost Explorer read", || {
        let (s, v) = get(&stack, "/v2/cost");
        assert_eq!(s, 503, "{v}");
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("AWS Cost Explorer could not be read"))
            .then_some(v)
    });
    assert_eq!(
        missing(&v),
        ["turbopuffer_rate_card", "aws_cost_explorer"],
        "{v}"
    );
}

/// Empties moto's queue of seeded Cost Explorer results (a run that stopped before its gateway
/// read Cost Explorer leaves its seed queued, and moto hands queued results out in order): asks
/// with a new body each time until the answer is empty. moto routes by the credential scope of
/// the `authorization` header and checks no signature.
fn drain_moto_ce(http: &layer_e2e::Http, endpoint: &str) {
    for i in 0..100 {
        let body = json!({
            "TimePeriod": {"Start": "2020-01-01", "End": "2020-01-02"},
            "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
            "Filter": {"Tags": {"Key": "layer-e2e-drain", "Values": [format!("{}-{}-{i}", std::process::id(), now_ms())]}},
        });
        let r = http.send(
            Method::POST,
            &format!("{endpoint}/"),
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "AWSInsightsIndexService.GetCostAndUsage"),
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=moto/20200101/us-east-1/ce/aws4_request, \
                     SignedHeaders=host, Signature=0",
                ),
            ],
            body.to_string(),
        );
        assert_eq!(
            r.status,
            200,
            "draining moto's Cost Explorer queue: {}",
            r.text()
        );
        if r.json()["ResultsByTime"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            return;
        }
    }
    panic!("moto's Cost Explorer queue did not drain");
}

fn line<'a>(v: &'a Value, provider: &str, service: &str) -> &'a Value {
    v["lines"]
        .as_array()
        .and_then(|ls| {
            ls.iter()
                .find(|l| l["provider"] == provider && l["service"] == service)
        })
        .unwrap_or_else(|| panic!("no {provider} {service} line in {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-9)
}

#[test]
fn cost_against_moto_cost_explorer_and_a_rate_card() {
    let Some(s3) = TestS3::from_env() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "LAYER_TEST_S3_ENDPOINT is unset under CI: scripts/test starts moto"
        );
        eprintln!(
            "skipped: no moto (LAYER_TEST_S3_ENDPOINT unset; `eval \"$(scripts/s3-server)\"` \
             starts one): the Cost Explorer scenario needs it"
        );
        return;
    };
    let target: SocketAddr = s3
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("the test S3 endpoint is http://IP:PORT");
    let proxy = Proxy::start(target);
    // moto answers the first GetCostAndUsage with a request body it has not seen from the
    // seeded queue: a tag value unique to this run makes the gateway's body new.
    let run = format!("run-{}-{}", std::process::id(), now_ms());
    let today = (now_ms() / 86_400_000) as i64;
    let day = |d: i64, groups: Value| {
        json!({"TimePeriod": {"Start": date(d), "End": date(d + 1)}, "Total": {},
               "Groups": groups, "Estimated": false})
    };
    let group = |service: &str, usd: &str| json!({"Keys": [service], "Metrics": {"UnblendedCost": {"Amount": usd, "Unit": "USD"}}});
    let ec2 = "Amazon Elastic Compute Cloud - Compute";
    let seeded = json!({"results": [{"ResultsByTime": [
        day(today - 3, json!([group(ec2, "12.5"), group("Amazon Simple Storage Service", "0.75")])),
        day(today - 2, json!([group(ec2, "10.25")])),
    ], "DimensionValueAttributes": []}]});
    let http = layer_e2e::Http::default();
    drain_moto_ce(&http, &s3.endpoint);
    let r = http.send(
        Method::POST,
        &format!("{}/moto-api/static/ce/cost-and-usage-results", s3.endpoint),
        &[("content-type", "application/json")],
        seeded.to_string(),
    );
    assert_eq!(r.status, 201, "seeding moto: {}", r.text());

    let card = card_file(CARD);
    let ce = format!("http://{}", proxy.addr);
    let stack = Stack::start_with(move |c| {
        let cost = &mut c.gateway.cost;
        cost.rate_card_file = Some(card);
        cost.cost_explorer_enabled = true;
        cost.endpoint = Some(ce);
        cost.tag_key = Some("layer-e2e".into());
        cost.tag_value = Some(run);
        cost.site = Some("e2e".into());
        // Cost Explorer read every second (default: daily) so the outage below shows within
        // the test; namespace sizes every 200 ms (default: 5 min) so storage is read before the
        // queries are charged with it.
        cost.cache_ttl_seconds = 1;
        cost.refresh_interval_ms = 200;
        cost.instance_prices = vec![layer_gateway::config::InstancePrice {
            instance_type: "i4i.large".into(),
            family: "i4i".into(),
            vcpu: 2,
            memory_gib: 16.0,
            nvme_gib: 468.0,
            hourly_usd: 0.172,
        }];
    });
    let ns = "cost-e2e";
    let rows: Vec<Value> = (0..40)
        .map(|i| json!({"id": i, "vector": [i as f32, 1.0], "title": format!("doc {i}")}))
        .collect();
    stack.write(
        ns,
        json!({"upsert_rows": rows, "distance_metric": "euclidean_squared"}),
    );
    // The emulator counts rows and bytes once it has indexed them.
    let size = until("the emulator to index the rows", || {
        let meta = stack
            .direct(
                Method::GET,
                &format!("/v1/namespaces/{ns}/metadata"),
                Bytes::new(),
            )
            .json();
        (meta["approx_row_count"] == 40).then(|| meta["approx_logical_bytes"].as_u64())?
    });
    assert!(size > 0);
    // Wait until the gateway has read the size (storage) before querying.
    until("the namespace size to be read", || {
        let (s, v) = get(&stack, "/v2/cost?window=1h");
        (s == 200 && line(&v, "turbopuffer", "storage")["qty_bytes"] == size).then_some(())
    });
    for i in 0..3 {
        let r = stack.gw(
            Method::POST,
            &format!("/v2/namespaces/{ns}/query"),
            json!({"rank_by": ["vector", "ANN", [i as f32, 1.0]], "top_k": 5}).to_string(),
        );
        assert_eq!(r.status, 200, "query: {}", r.text());
    }

    let (s, v) = get(&stack, "/v2/cost?window=30d");
    assert_eq!(s, 200, "{v}");
    // What the upstream saw, from its own log.
    let log = stack.upstream_requests();
    let path = format!("/v2/namespaces/{ns}");
    let queries = log
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == format!("{path}/query"))
        .count() as u64;
    let written: u64 = log
        .iter()
        .filter(|r| r["method"] == "POST" && r["path"] == path.as_str())
        .map(|r| r["body"].as_str().unwrap_or_default().len() as u64)
        .sum();
    assert_eq!(queries, 3, "the emulator saw the three queries");
    let month_s = 730.0 * 3600.0;
    let gib = (1u64 << 30) as f64;
    let expect = [
        ("queries", queries as f64 / 1e3 * 4.0, None),
        (
            "queried",
            (queries * size) as f64 / 1e9 * 0.5,
            Some(queries * size),
        ),
        ("writes", written as f64 / 1e3 * 0.002, Some(written)),
        (
            "storage",
            size as f64 * 2_592_000.0 / (gib * month_s) * 0.33,
            Some(size),
        ),
    ];
    for (service, usd, bytes) in expect {
        let l = line(&v, "turbopuffer", service);
        let got = l["amount_usd"].as_f64().unwrap_or(f64::NAN);
        assert!(close(got, usd), "{service}: {got} != {usd}: {l}");
        assert_eq!(l["basis"], "estimate");
        assert_eq!(l["rate_card_version"], "e2e-2026-01");
        assert_eq!(l["site"], "e2e");
        if let Some(b) = bytes {
            assert_eq!(l["qty_bytes"], b, "{l}");
        }
    }
    let returned = line(&v, "turbopuffer", "returned");
    assert!(
        returned["qty_bytes"].as_u64().unwrap_or(0) > 0,
        "{returned}"
    );
    // The AWS lines are what moto was seeded with.
    let aws_ec2 = line(&v, "aws", ec2);
    assert!(
        close(aws_ec2["amount_usd"].as_f64().unwrap_or(0.0), 22.75),
        "{aws_ec2}"
    );
    assert_eq!(aws_ec2["basis"], "metered");
    assert_eq!(aws_ec2["breakdown"].as_array().map(Vec::len), Some(2));
    let aws_s3 = line(&v, "aws", "Amazon Simple Storage Service");
    assert!(
        close(aws_s3["amount_usd"].as_f64().unwrap_or(0.0), 0.75),
        "{aws_s3}"
    );
    let t = &v["totals"];
    let sum = |p: &str| -> f64 {
        v["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["provider"] == p)
            .filter_map(|l| l["amount_usd"].as_f64())
            .sum()
    };
    assert!(close(t["aws_usd"].as_f64().unwrap_or(0.0), 23.5), "{t}");
    assert!(
        close(
            t["turbopuffer_usd"].as_f64().unwrap_or(0.0),
            sum("turbopuffer")
        ),
        "{t}"
    );
    let total = t["total_usd"].as_f64().unwrap_or(0.0);
    assert!(close(total, 23.5 + sum("turbopuffer")), "{t}");
    assert!(
        close(t["cost_per_query_usd"].as_f64().unwrap_or(0.0), total / 3.0),
        "{t}"
    );
    assert!(
        close(
            t["cost_per_document_usd"].as_f64().unwrap_or(0.0),
            total / 40.0
        ),
        "{t}"
    );
    let status = &v["rate_card_status"];
    assert_eq!(status["turbopuffer_rate_card_version"], "e2e-2026-01");
    assert_eq!(status["aws_cost_source"], "cost_explorer");
    assert_eq!(status["aws_cost_stale"], false, "{status}");
    assert_eq!(status["aws_pricing_stale"], true);
    assert!(status["aws_cost_refreshed_at_ms"].as_u64().unwrap_or(0) > 0);
    assert_eq!(v["window_seconds"], 2_592_000);
    // The 30-day window starts before this gateway did: said so.
    let caveats = v["caveats"].to_string();
    assert!(caveats.contains("since this gateway started"), "{caveats}");

    // The timeseries over 7 days by day adds up to the same usage and AWS amounts.
    let (s, ts) = get(&stack, "/v2/cost/timeseries?window=7d&step=1d");
    assert_eq!(s, 200, "{ts}");
    assert_eq!(
        (ts["window_seconds"].clone(), ts["step_seconds"].clone()),
        (json!(604_800), json!(86_400))
    );
    let series_sum = |provider: &str, service: &str| -> f64 {
        let s = ts["series"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|s| s["provider"] == provider && s["service"] == service)
            })
            .unwrap_or_else(|| panic!("no {provider} {service} series in {ts}"));
        let samples = s["samples"].as_array().expect("samples");
        assert_eq!(samples.len(), 7, "{s}");
        samples
            .iter()
            .map(|p| p[1].as_f64().unwrap_or(f64::NAN))
            .sum()
    };
    let queries_usd = line(&v, "turbopuffer", "queries")["amount_usd"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(close(series_sum("turbopuffer", "queries"), queries_usd));
    assert!(close(series_sum("aws", ec2), 22.75));

    // The rate card: the file's lines, the configured instance prices (reported stale).
    let (s, rc) = get(&stack, "/v2/cost/rate-card");
    assert_eq!(s, 200, "{rc}");
    assert_eq!(rc["turbopuffer"]["source"], "invoice");
    assert_eq!(rc["turbopuffer"]["verified_by"], "e2e");
    assert_eq!(rc["turbopuffer"]["lines"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        rc["turbopuffer"]["lines"][0],
        json!({"service": "queries", "unit": "1k queries", "usd": 4.0})
    );
    assert_eq!(rc["aws"]["role"], "estimator");
    assert_eq!(rc["aws"]["stale"], true);
    assert_eq!(rc["aws"]["items"][0]["instance_type"], "i4i.large");
    assert_eq!(rc["aws"]["items"][0]["hourly_usd"], 0.172);

    // Cost Explorer goes away: the last good data stays, marked stale.
    proxy.cut();
    let v = until("aws_cost_stale", || {
        let (s, v) = get(&stack, "/v2/cost?window=30d");
        assert_eq!(s, 200, "{v}");
        (v["rate_card_status"]["aws_cost_stale"] == true).then_some(v)
    });
    assert!(close(
        line(&v, "aws", ec2)["amount_usd"].as_f64().unwrap_or(0.0),
        22.75
    ));
    assert!(
        v["caveats"]
            .to_string()
            .contains("Cost Explorer could not be refreshed"),
        "{v}"
    );
    // And back: fresh again.
    proxy.restore();
    until("aws_cost_stale to clear", || {
        let (_, v) = get(&stack, "/v2/cost?window=30d");
        (v["rate_card_status"]["aws_cost_stale"] == false).then_some(())
    });
}
