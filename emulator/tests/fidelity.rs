//! End-to-end checks of what a client can see on the wire, against an emulator started in
//! process (`turbopuffer_emulator::start`) and spoken to over plain HTTP/1.1: customer-managed
//! encryption, measured `performance` timings, response compression.

use std::io::Read;
use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "tpuf_fidelity";

/// A response: status, lower-cased headers, decoded (gunzipped) body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn start(cmek_key_names: &[&str]) -> SocketAddr {
    turbopuffer_emulator::start(turbopuffer_emulator::Config {
        api_keys: vec![KEY.into()],
        cmek_key_names: cmek_key_names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await
    .expect("emulator starts")
    .addr
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> Resp {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: emu\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v == "gzip")
    {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        body = plain;
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn cmek(key: &str) -> Value {
    json!({"mode": "customer-managed", "key_name": key})
}

#[tokio::test]
async fn customer_managed_encryption_is_refused_without_setup() {
    let addr = start(&[]).await;
    let r = call(
        addr,
        "POST",
        "/v2/namespaces/cmek-none",
        Some(json!({"upsert_rows": [{"id": 1}], "encryption": cmek("projects/p/keys/k")})),
        &[],
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["status"], "error");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("🙅 customer-managed encryption (CMEK) is not enabled"),
        "{body}"
    );
    // Nothing was written.
    let md = call(addr, "GET", "/v2/namespaces/cmek-none/metadata", None, &[]).await;
    assert_eq!(md.status, 404);
    // A copy asking for CMEK on its destination is refused the same way.
    call(
        addr,
        "POST",
        "/v2/namespaces/cmek-src",
        Some(json!({"upsert_rows": [{"id": 1}]})),
        &[],
    )
    .await;
    let r = call(
        addr,
        "POST",
        "/v2/namespaces/cmek-dst",
        Some(json!({"copy_from_namespace": {"source_namespace": "cmek-src", "dest_encryption": cmek("k")}})),
        &[],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.json());
    // Default encryption needs nothing.
    let r = call(
        addr,
        "POST",
        "/v2/namespaces/cmek-default",
        Some(json!({"upsert_rows": [{"id": 1}], "encryption": {"mode": "default"}})),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_fake_kms_key_enables_customer_managed_encryption_for_that_key_only() {
    let addr = start(&["projects/p/keys/good"]).await;
    let ok = cmek("projects/p/keys/good");
    let r = call(
        addr,
        "POST",
        "/v2/namespaces/cmek-ok",
        Some(json!({"upsert_rows": [{"id": 1}], "encryption": ok})),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let md = call(addr, "GET", "/v2/namespaces/cmek-ok/metadata", None, &[]).await;
    assert_eq!(md.json()["encryption"], ok);
    // The legacy v1 metadata route renders the legacy shape.
    let md = call(addr, "GET", "/v1/namespaces/cmek-ok/metadata", None, &[]).await;
    assert_eq!(
        md.json()["encryption"],
        json!({"cmek": {"key_name": "projects/p/keys/good"}})
    );
    let r = call(
        addr,
        "POST",
        "/v2/namespaces/cmek-bad",
        Some(json!({"upsert_rows": [{"id": 1}], "encryption": cmek("projects/p/keys/other")})),
        &[],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("projects/p/keys/other")
    );
    // Reserved encryption_context keys are a 400.
    let r = call(
        addr,
        "POST",
        "/v2/namespaces/cmek-ctx",
        Some(json!({"upsert_rows": [{"id": 1}], "encryption": {
            "mode": "customer-managed", "key_name": "projects/p/keys/good",
            "encryption_context": {"tpuf:ns": "x"}}})),
        &[],
    )
    .await;
    assert_eq!(r.status, 400);
    // Copies carry the destination's encryption.
    let r = call(
        addr,
        "POST",
        "/v2/namespaces/cmek-copy",
        Some(
            json!({"copy_from_namespace": {"source_namespace": "cmek-ok", "dest_encryption": ok}}),
        ),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let md = call(addr, "GET", "/v2/namespaces/cmek-copy/metadata", None, &[]).await;
    assert_eq!(md.json()["encryption"], ok);
}

fn perf_ms(v: &Value, key: &str) -> u64 {
    v["performance"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("performance.{key} missing or not an integer: {v}"))
}

#[tokio::test]
async fn performance_timings_are_measured() {
    let addr = start(&[]).await;
    // A write that the fault injector holds for 25 ms reports at least that.
    let rule =
        json!({"rules": [{"route": "write", "namespace": "timed", "delay_ms": 25, "count": 1}]});
    assert_eq!(
        call(addr, "POST", "/_emu/faults", Some(rule), &[])
            .await
            .status,
        200
    );
    let w = call(
        addr,
        "POST",
        "/v2/namespaces/timed",
        Some(json!({"upsert_rows": [{"id": 1}, {"id": 2}]})),
        &[],
    )
    .await
    .json();
    assert!(perf_ms(&w, "server_total_ms") >= 25, "{w}");
    // Any request takes some time: rounded up, never 0.
    let w = call(
        addr,
        "POST",
        "/v2/namespaces/timed",
        Some(json!({"upsert_rows": [{"id": 3}]})),
        &[],
    )
    .await
    .json();
    assert!(perf_ms(&w, "server_total_ms") >= 1, "{w}");
    // A query executing for 30 ms (query_delay_ms) reports it in both timings.
    let knob = json!({"query_delay_ms": 30});
    assert_eq!(
        call(addr, "POST", "/_emu/config", Some(knob), &[])
            .await
            .status,
        200
    );
    let q = json!({"rank_by": ["id", "asc"], "top_k": 10});
    for path in [
        "/v2/namespaces/timed/query",
        "/v2/namespaces/timed/query?stainless_overload=multiQuery",
    ] {
        let body = if path.contains("multi") {
            json!({"queries": [q.clone()]})
        } else {
            q.clone()
        };
        let r = call(addr, "POST", path, Some(body), &[]).await.json();
        let (exec, total) = (
            perf_ms(&r, "query_execution_ms"),
            perf_ms(&r, "server_total_ms"),
        );
        assert!(exec >= 30 && total >= exec, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_writes_to_a_new_namespace_all_land() {
    // Many writers race to create the same namespace: every acknowledged row must be there
    // (a lost race once dropped a whole acknowledged write).
    let addr = start(&[]).await;
    for round in 0..20 {
        let ns = format!("race-{round}");
        let writes = (0..8u64).map(|w| {
            let path = format!("/v2/namespaces/{ns}");
            async move {
                let rows: Vec<Value> = (0..5).map(|i| json!({"id": w * 100 + i})).collect();
                call(addr, "POST", &path, Some(json!({"upsert_rows": rows})), &[]).await
            }
        });
        for r in futures_join(writes).await {
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        }
        let q = call(
            addr,
            "POST",
            &format!("/v2/namespaces/{ns}/query"),
            Some(json!({"rank_by": ["id", "asc"], "top_k": 100,
                "consistency": {"level": "strong"}})),
            &[],
        )
        .await;
        assert_eq!(
            q.json()["rows"].as_array().map(Vec::len),
            Some(40),
            "round {round}"
        );
    }
}

/// Runs futures concurrently (each on its own task).
async fn futures_join<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}
