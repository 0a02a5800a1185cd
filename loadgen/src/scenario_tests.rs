//! Unit tests for scenario parsing and compilation.

use super::*;

const YAML: &str = r#"
name: query-passthrough
description: small ANN query
method: post
path: /v2/namespaces/${ns}/query
headers:
  content-type: application/json
  authorization: Bearer ${api_key}
body: |
  {"rank_by":["vector","ANN",[0.1,0.2]],"top_k":10}
vars:
  ns: bench
  api_key: secret
  dims: 2
warmup: 2s
duration: 10
concurrency: 64
"#;

fn compile(text: &str, json: bool, ov: &Overrides) -> Result<Plan, String> {
    Plan::compile(ScenarioFile::parse(text, json)?, ov)
}

#[test]
fn parses_yaml_closed_loop() {
    let p = compile(YAML, false, &Overrides::default()).unwrap();
    assert_eq!(p.name, "query-passthrough");
    assert_eq!(p.method, Method::POST);
    assert_eq!(p.path.as_static(), Some(&b"/v2/namespaces/bench/query"[..]));
    let auth = p
        .headers
        .iter()
        .find(|(k, _)| k == http::header::AUTHORIZATION)
        .unwrap();
    assert_eq!(auth.1.as_static(), Some(&b"Bearer secret"[..]));
    assert_eq!(p.mode, Mode::Closed { concurrency: 64 });
    assert_eq!(p.window.warmup, Duration::from_secs(2));
    assert_eq!(p.window.duration, Duration::from_secs(10));
    assert_eq!(p.timeout, Duration::from_secs(10));
    assert!(p.is_static());
    assert!(p.is_expected(200) && p.is_expected(204) && !p.is_expected(404));
}

#[test]
fn parses_json_open_loop_with_zipf() {
    let text = r#"{
        "path": "/v2/namespaces/${ns}/query",
        "method": "POST",
        "body": "{\"filters\":[\"id\",\"Eq\",${zipf}],\"top_k\":1}",
        "vars": {"ns": "n"},
        "zipf": {"n": 100, "exponent": 1.2, "offset": 10},
        "duration": "1500ms",
        "rate": 2500.5,
        "connections": 8,
        "timeout": "2s",
        "expect_status": [200, 202]
    }"#;
    let p = compile(text, true, &Overrides::default()).unwrap();
    assert_eq!(p.name, "scenario");
    match p.mode {
        Mode::Open {
            schedule,
            connections,
            pacing,
        } => {
            assert_eq!(schedule.rate(), 2500.5);
            assert_eq!(connections, 8);
            assert_eq!(pacing, Pacing::Timer);
        }
        m => panic!("{m:?}"),
    }
    assert!(!p.is_static());
    assert!(p.uses(Dynamic::Zipf));
    assert!(!p.uses(Dynamic::Seq));
    assert_eq!(p.zipf.as_ref().unwrap().n(), 100);
    assert_eq!(p.window.warmup, Duration::ZERO);
    assert_eq!(p.window.duration, Duration::from_millis(1500));
    assert!(p.is_expected(202) && !p.is_expected(201));
}

#[test]
fn overrides_win_and_switch_modes() {
    let ov = Overrides {
        vars: vec![("ns".into(), "other".into())],
        rate: Some(100.0),
        duration: Some(Duration::from_secs(3)),
        warmup: Some(Duration::ZERO),
        ..Overrides::default()
    };
    let p = compile(YAML, false, &ov).unwrap();
    assert_eq!(p.path.as_static(), Some(&b"/v2/namespaces/other/query"[..]));
    // Open loop inherits the file's concurrency as its connection count.
    assert!(matches!(
        p.mode,
        Mode::Open {
            connections: 64,
            ..
        }
    ));
    assert_eq!(p.window.end(), Duration::from_secs(3));
    let ov = Overrides {
        concurrency: Some(4),
        ..Overrides::default()
    };
    let p = compile(YAML, false, &ov).unwrap();
    assert_eq!(p.mode, Mode::Closed { concurrency: 4 });
    let both = Overrides {
        concurrency: Some(4),
        rate: Some(1.0),
        ..Overrides::default()
    };
    assert!(compile(YAML, false, &both).is_err());
}

#[test]
fn rejects_bad_scenarios() {
    let base = "path: /x\nduration: 1s\nconcurrency: 1\n";
    assert!(compile(base, false, &Overrides::default()).is_ok());
    let cases: &[(&str, &str)] = &[
        (
            "path: /x\nduration: 1s\nconcurrency: 1\nbogus: 1\n",
            "unknown field",
        ),
        ("path: /x\nduration: 1s\n", "needs `rate`"),
        (
            "path: /x\nduration: 1s\nrate: 5\nconcurrency: 1\n",
            "either",
        ),
        ("path: x\nduration: 1s\nconcurrency: 1\n", "start with"),
        ("path: /x\nduration: 0s\nconcurrency: 1\n", "duration"),
        ("path: /x\nduration: 2h\nconcurrency: 1\n", "out of range"),
        ("path: /x\nduration: 10 parsecs\nconcurrency: 1\n", "unit"),
        ("path: /x\nduration: 1s\nconcurrency: 0\n", "between 1"),
        (
            "path: /x\nduration: 1s\nconcurrency: 1\nconnections: 2\n",
            "open loop",
        ),
        ("path: /x\nduration: 1s\nrate: 0\n", "positive"),
        ("path: /x\nduration: 1s\nrate: 1e9\n", "at most"),
        (
            "path: /${missing}\nduration: 1s\nconcurrency: 1\n",
            "not defined",
        ),
        (
            "path: /x\nbody: '${zipf}'\nduration: 1s\nconcurrency: 1\n",
            "zipf",
        ),
        (
            "path: /x\nduration: 1s\nconcurrency: 1\nzipf: {n: 0}\n",
            "zipf.n",
        ),
        (
            "path: /x\nduration: 1s\nconcurrency: 1\nheaders: {host: a}\n",
            "set by layer-loadgen",
        ),
        (
            "path: /x\nduration: 1s\nconcurrency: 1\nheaders: {'bad name': a}\n",
            "header name",
        ),
        (
            "path: /x\nduration: 1s\nconcurrency: 1\nheaders: {x-a: \"${v}\"}\nvars: {v: \"a\\nb\"}\n",
            "invalid value",
        ),
        ("path: /a b\nduration: 1s\nconcurrency: 1\n", "invalid URI"),
        (
            "path: /x\nmethod: 'G T'\nduration: 1s\nconcurrency: 1\n",
            "method",
        ),
        (
            "path: /x\nduration: 1s\nconcurrency: 1\nvars: {seq: 1}\n",
            "built in",
        ),
        (
            "path: /x\nduration: 1s\nconcurrency: 1\nexpect_status: [42]\n",
            "HTTP status",
        ),
        (
            "path: /x\nduration: 1s\nconcurrency: 1\ntimeout: 0\n",
            "timeout",
        ),
    ];
    for (text, want) in cases {
        let err = compile(text, false, &Overrides::default()).unwrap_err();
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
    assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
    assert_eq!(parse_duration(" 3 s ").unwrap(), Duration::from_secs(3));
    assert!(parse_duration("").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("-1s").is_err());
    assert!(parse_duration("1d").is_err());
    assert!(parse_duration("61m").is_err());
}

#[test]
fn bench_scenarios_in_the_repository_compile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext, "yaml" | "yml" | "json") {
            continue;
        }
        let file = ScenarioFile::load(&path).unwrap();
        let ov = Overrides {
            vars: vec![("api_key".into(), "k".into()), ("ns".into(), "n".into())],
            ..Overrides::default()
        };
        Plan::compile(file, &ov).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(
        seen >= 2,
        "expected the bench scenarios in {}",
        dir.display()
    );
}

#[test]
fn pacing_is_open_loop_only_and_the_command_line_wins() {
    // The open loop's pacing, or the error that refused the scenario.
    let pacing = |text: &str, pacing: Option<Pacing>, concurrency: Option<usize>| {
        let ov = Overrides {
            pacing,
            concurrency,
            ..Overrides::default()
        };
        compile(text, false, &ov).map(|p| match p.mode {
            Mode::Open { pacing, .. } => pacing,
            m => panic!("{m:?}"),
        })
    };
    let open = "path: /q\nduration: 1s\nrate: 100\npacing: spin\n";
    assert_eq!(pacing(open, None, None), Ok(Pacing::Spin));
    assert_eq!(pacing(open, Some(Pacing::Timer), None), Ok(Pacing::Timer));
    let closed = "path: /q\nduration: 1s\nconcurrency: 2\npacing: spin\n";
    let err = pacing(closed, None, None).unwrap_err();
    assert!(err.contains("`pacing` applies to open loop"), "{err}");
    let err = pacing(open, Some(Pacing::Spin), Some(2)).unwrap_err();
    assert!(err.contains("--pacing applies to open loop"), "{err}");
    let err = pacing(
        "path: /q\nduration: 1s\nrate: 100\npacing: busy\n",
        None,
        None,
    )
    .unwrap_err();
    assert!(err.contains("busy"), "{err}");
}
