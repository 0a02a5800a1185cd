//! Engine tests against a tiny in-process hyper server on 127.0.0.1:0.

use std::convert::Infallible;
use std::sync::Mutex;

use http::Response;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::TcpListener;

use super::*;
use crate::guard::parse_target;
use crate::report::Report;
use crate::scenario::{Overrides, ScenarioFile};

#[derive(Default)]
struct Seen {
    requests: u64,
    connections: u64,
    bodies: Vec<String>,
    hosts: Vec<String>,
}

/// Serves `200 ok` (optionally closing every connection) and records what it saw.
async fn server(close: bool) -> (Target, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            s2.lock().unwrap().connections += 1;
            let s3 = s2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let s4 = s3.clone();
                    async move {
                        let host = req
                            .headers()
                            .get(http::header::HOST)
                            .map(|h| h.to_str().unwrap_or("").to_string())
                            .unwrap_or_default();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        // A body that is a bare number N is answered after N x 20 ms.
                        if let Some(n) = std::str::from_utf8(&body)
                            .ok()
                            .and_then(|b| b.parse::<u64>().ok())
                        {
                            tokio::time::sleep(Duration::from_millis(20 * n)).await;
                        }
                        {
                            let mut s = s4.lock().unwrap();
                            s.requests += 1;
                            if s.bodies.len() < 1000 {
                                s.bodies.push(String::from_utf8_lossy(&body).into_owned());
                                s.hosts.push(host);
                            }
                        }
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                        if close {
                            resp.headers_mut().insert(
                                http::header::CONNECTION,
                                HeaderValue::from_static("close"),
                            );
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (parse_target(&format!("http://{addr}")).unwrap(), seen)
}

fn plan(yaml: &str) -> Arc<Plan> {
    Arc::new(
        Plan::compile(
            ScenarioFile::parse(yaml, false).unwrap(),
            &Overrides::default(),
        )
        .unwrap(),
    )
}

/// Runs `yaml` against `target` and reports.
async fn report(target: &Target, yaml: &str) -> Report {
    let p = plan(yaml);
    let (st, wall) = run(p.clone(), target, 1).await.unwrap();
    Report::new(&p, &target.to_string(), &st, wall)
}

#[tokio::test(flavor = "current_thread")]
async fn closed_loop_measures_only_the_window() {
    let (target, seen) = server(false).await;
    let r = report(&target, "path: /q\nmethod: POST\nbody: '{\"a\":1}'\nwarmup: 100ms\nduration: 300ms\nconcurrency: 4\n").await;
    assert!(r.requests > 10, "{r:?}");
    assert_eq!(r.ok, r.requests);
    assert_eq!(r.errors.total(), 0);
    assert_eq!(r.reconnects, 0);
    assert_eq!(r.mode, "closed");
    // Warm-up responses are counted in all_responses but not in requests.
    assert!(r.all_responses > r.requests, "{r:?}");
    let s = seen.lock().unwrap();
    assert_eq!(s.requests, r.all_responses);
    assert_eq!(s.connections, 4);
    assert_eq!(s.bodies[0], "{\"a\":1}");
    assert_eq!(s.hosts[0], target.authority);
    assert_eq!(r.bytes_out, 7 * r.requests);
    assert_eq!(r.bytes_in, 2 * r.requests);
    assert!(r.latency_us.p50 > 0 && r.latency_us.max >= r.latency_us.p99);
    assert!(r.wall_s >= 0.4, "{r:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn open_loop_sends_exactly_the_schedule_with_either_pacing() {
    for pacing in ["timer", "spin"] {
        let (target, seen) = server(false).await;
        let r = report(
            &target,
            &format!(
                "path: /q\nwarmup: 100ms\nduration: 400ms\nrate: 200\nconnections: 3\n\
                 pacing: {pacing}\n"
            ),
        )
        .await;
        assert_eq!(r.pacing, Some(pacing));
        // 200 req/s: 20 warm-up tickets and 80 measured ones.
        assert_eq!(r.scheduled, Some(80));
        assert_eq!(r.requests, 80, "{r:?}");
        assert_eq!(r.all_responses, 100);
        assert_eq!(seen.lock().unwrap().requests, 100);
        assert!(r.send_lag_us.is_some());
        // Only the spin pacer books its own lateness, once per measured ticket.
        let released = r.release_lag_us.map(|l| l.count);
        assert_eq!(released, (pacing == "spin").then_some(80), "{r:?}");
        assert!(
            r.throughput_rps > 190.0 && r.throughput_rps < 210.0,
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn no_pacing_returns_before_its_instant() {
    // Both the timer's and the spin's path (a wait past SPIN_AHEAD sleeps first, a short one
    // only spins), and an instant already passed.
    for pacing in [Pacing::Timer, Pacing::Spin] {
        for ahead in [Duration::ZERO, Duration::from_micros(300), SPIN_AHEAD * 2] {
            let due = Instant::now() + ahead;
            wait_until(due, pacing).await;
            assert!(Instant::now() >= due, "{pacing:?} {ahead:?}");
        }
        let past = Instant::now();
        wait_until(past, pacing).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn reconnects_when_the_server_closes() {
    let (target, seen) = server(true).await;
    let r = report(&target, "path: /q\nduration: 200ms\nconcurrency: 2\n").await;
    assert!(r.requests > 2, "{r:?}");
    assert_eq!(r.errors.total(), 0, "{r:?}");
    assert!(r.reconnects + 2 >= r.requests, "{r:?}");
    assert!(seen.lock().unwrap().connections >= r.requests);
}

#[tokio::test(flavor = "current_thread")]
async fn dynamic_bodies_render_per_request() {
    let (target, seen) = server(false).await;
    let p = plan(
        "path: /q/${seq}\nmethod: POST\nbody: '[${zipf},${seq}]'\nzipf: {n: 10, offset: 100}\n\
         duration: 100ms\nconcurrency: 1\n",
    );
    let (st, _) = run(p, &target, 7).await.unwrap();
    assert!(st.all_responses > 3);
    let s = seen.lock().unwrap();
    for (i, b) in s.bodies.iter().enumerate() {
        let v: Vec<u64> = serde_json::from_str(b).unwrap();
        assert!((100..110).contains(&v[0]), "{b}");
        assert_eq!(v[1], i as u64, "{b}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn fanout_books_each_group_as_one_request_timed_by_its_slowest_leg() {
    let (target, seen) = server(false).await;
    // Leg k is answered after k x 20 ms: a group takes at least 40 ms.
    let r = report(
        &target,
        "path: /q\nmethod: POST\nbody: '${leg}'\nduration: 300ms\nconcurrency: 2\nfanout: 3\n",
    )
    .await;
    assert!(r.requests >= 2, "{r:?}");
    assert_eq!(r.ok, r.requests);
    assert_eq!(r.errors.total(), 0);
    assert!(r.latency_us.p50 >= 40_000, "{r:?}");
    assert_eq!(r.bytes_in, 3 * 2 * r.requests);
    let s = seen.lock().unwrap();
    assert_eq!(s.connections, 6);
    assert_eq!(s.requests, 3 * r.all_responses);
    let mut legs: Vec<&str> = s.bodies.iter().map(String::as_str).collect();
    legs.sort_unstable();
    legs.dedup();
    assert_eq!(legs, ["0", "1", "2"]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_member_fails_its_fanout_group() {
    let (target, _seen) = server(false).await;
    // Leg 2 is answered after 40 ms, past the 30 ms timeout: every group fails with it.
    let r = report(&target, "path: /q\nmethod: POST\nbody: '${leg}'\nduration: 200ms\nconcurrency: 1\nfanout: 3\ntimeout: 30ms\n").await;
    assert_eq!(r.requests, 0, "{r:?}");
    assert!(r.errors.timeout > 0, "{r:?}");
}

#[test]
fn fanout_needs_the_closed_loop_and_a_sane_size() {
    let compile = |y: &str| {
        Plan::compile(
            ScenarioFile::parse(y, false).unwrap(),
            &Overrides::default(),
        )
    };
    let err = compile("path: /q\nduration: 1s\nrate: 10\nfanout: 2\n").unwrap_err();
    assert!(err.contains("closed loop"), "{err}");
    let err = compile("path: /q\nduration: 1s\nconcurrency: 1\nfanout: 0\n").unwrap_err();
    assert!(err.contains("fanout must be"), "{err}");
    let err = compile("path: /q\nduration: 1s\nconcurrency: 1\nvars: {leg: 1}\n").unwrap_err();
    assert!(err.contains("built in"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn unreachable_target_is_a_clear_error() {
    // Bind and drop to find a port with nobody listening.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let target = parse_target(&format!("http://{addr}")).unwrap();
    let p = plan("path: /q\nduration: 100ms\nconcurrency: 2\n");
    let err = run(p, &target, 1).await.unwrap_err();
    assert!(err.contains("could not open connection 1 of 2"), "{err}");
}

#[test]
fn dry_run_shows_the_first_request() {
    let target = parse_target("http://127.0.0.1:9").unwrap();
    let p = plan(
        "path: /v2/namespaces/${ns}/query\nmethod: post\nheaders: {authorization: 'Bearer ${k}'}\n\
         vars: {ns: a, k: s}\nbody: '{\"top_k\":1}'\nduration: 1s\nconcurrency: 1\n",
    );
    let text = describe_first_request(p, &target, 0);
    assert!(
        text.starts_with("POST /v2/namespaces/a/query HTTP/1.1\n"),
        "{text}"
    );
    assert!(text.contains("host: 127.0.0.1:9\n"), "{text}");
    assert!(text.contains("authorization: Bearer s\n"), "{text}");
    assert!(text.contains("content-length: 11\n"), "{text}");
    assert!(text.ends_with("\n{\"top_k\":1}\n"), "{text}");
}
