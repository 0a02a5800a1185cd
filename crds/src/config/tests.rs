//! Tests of the configuration loader: defaults, file + env precedence, validation, the override
//! table (every entry takes effect and sets the key it names) and the reference file in the
//! module doc (it parses, and shows every variable on its key).
use super::*;
use std::collections::HashMap;
use std::net::SocketAddr;

use serde_yaml_ng::{Mapping, Value};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

/// A temporary file holding `text`, unique per test.
fn yaml_file(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("layer-crds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{test}.yaml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn aerospike_tier_needs_hosts() {
    let env = |k: &str| (k == "TURBOPUFFER_API_KEY").then(|| "k".to_string());
    let mut c = Config::load(None, &|k| match k {
        "LAYER_CACHE_TIER" => Some("aerospike".into()),
        _ => None,
    })
    .unwrap();
    c.vector_store.credential.value = Some("k".into());
    assert_eq!(c.gateway.cache.tier, CacheTierKind::Aerospike);
    let err = c.validate(&env).unwrap_err().to_string();
    assert!(err.contains("cache.aerospike.hosts"), "{err}");
    c.gateway.cache.aerospike.hosts = Some(String::new());
    let err = c.validate(&env).unwrap_err().to_string();
    assert!(err.contains("cache.aerospike.hosts"), "{err}");
    // The gateway's cargo feature is the gateway's check, not this crate's.
    c.gateway.cache.aerospike.hosts = Some("127.0.0.1:3000".into());
    assert!(c.validate(&env).is_ok());
}

/// Every default the module doc writes down (and the ones the fields' docs state).
#[test]
fn defaults_are_documented_values() {
    let c = Config::default();
    let g = &c.gateway;
    assert_eq!(g.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(g.shards, 0);
    assert!(!g.work_stealing);
    assert_eq!(g.data_dir, PathBuf::from(".layer"));
    assert_eq!(g.max_body_bytes, 64 << 20);
    assert_eq!(g.max_json_depth, 64);
    assert_eq!(g.drain_timeout_ms, 10_000);
    assert_eq!(g.server.max_connections_per_shard, 16_384);
    assert_eq!(g.server.max_in_flight_per_shard, 4_096);
    assert_eq!(g.server.header_read_timeout_ms, 15_000);
    assert_eq!(g.server.body_read_timeout_ms, 30_000);
    assert_eq!(g.tls.cert_file, None);
    assert_eq!(g.tls.key_file, None);
    assert_eq!(g.tls.reload_interval_ms, 10_000);
    assert!(!g.tls.enabled());
    assert_eq!(g.namespace_list_cache_ttl_ms, 10_000);

    let k = &g.cache;
    assert_eq!(k.tier, CacheTierKind::Nvme);
    assert_eq!(k.dir, None);
    assert_eq!(k.max_bytes, 1 << 30);
    assert_eq!(k.hot_bytes_per_shard, 64 << 20);
    assert!(k.recover);
    assert_eq!(k.populate_max_ids, 0);
    assert_eq!(k.aerospike.hosts, None);
    assert_eq!(k.aerospike.namespace, "layer");

    let w = &g.consistency;
    assert_eq!(w.default_mode, IndexConsistency::Stable);
    assert_eq!(w.poll_interval_ms, 1_000);
    assert_eq!(w.stable_poll_interval_ms, 60_000);
    assert_eq!(w.safety_margin_ms, 500);
    assert_eq!(w.max_concurrent_polls, 16);

    let o = &g.object_store;
    assert_eq!(o.backend, ObjectStoreBackend::Local);
    assert_eq!(o.dir, None);
    assert_eq!(o.bucket, None);
    assert_eq!(o.endpoint, None);
    assert_eq!(o.region, None);
    assert_eq!(o.prefix, "");
    assert!(!o.allow_http);

    let h = &g.history;
    assert_eq!(h.flush_interval_ms, 1000);
    assert_eq!(h.max_batch_entries, 1000);
    assert_eq!(h.queue_capacity, 65_536);
    assert_eq!(h.recent_window, 1000);

    assert_eq!(g.snapshots.min_interval_ms, 300_000);
    assert_eq!(g.snapshots.field_cap, 10_000);
    assert_eq!(g.scan.default_threads, 8);
    assert_eq!(g.scan.values_cap, 1_000_000);
    assert_eq!(g.queue.url, None);
    assert_eq!(g.queue.schema, "layer_queue");
    assert_eq!(g.queue.pool_size, 16);
    assert_eq!(g.queue.connect_timeout_ms, 5_000);
    assert_eq!(g.queue.max_lease_expiries, 5);

    let s = &c.vector_store;
    assert_eq!(s.kind, StoreKind::Turbopuffer);
    assert_eq!(s.endpoint.url, "https://aws-us-east-1.turbopuffer.com");
    assert_eq!(s.endpoint.region, None);
    assert_eq!(s.credential.value, None);
    assert_eq!(s.credential.env, None);
    assert_eq!(s.connect_timeout_ms, 2_000);
    assert_eq!(s.request_timeout_ms, 30_000);
    assert_eq!(s.inbound_auth.mode, AuthMode::DeriveFromStore);
    assert!(s.inbound_auth.keys.is_empty());

    assert!(c.indexes.is_empty());
    let i = IndexConfig::default();
    assert_eq!(i.consistency, IndexConsistency::Stable);
    // Unset shards is 0 (the gateway reads it as 1, unsharded).
    assert_eq!(i.shards, 0);
    assert_eq!(i.snapshot.interval, "5m");
    assert_eq!(i.snapshot.retention, "never");
    assert!(i.snapshot.facet_fields.is_empty());
    assert_eq!(i.scan.threads, None);
    assert_eq!(i.backend.namespace, None);

    // An empty file is the defaults.
    let p = yaml_file("empty", "");
    let from_file = Config::load(Some(&p), &env(&[])).unwrap();
    assert_eq!(format!("{from_file:?}"), format!("{c:?}"));
}

#[test]
fn unknown_keys_are_rejected() {
    let p = yaml_file("bad", "gateway:\n  listen: 127.0.0.1:1\n  shardz: 2\n");
    let err = Config::load(Some(&p), &env(&[])).unwrap_err().to_string();
    assert!(err.contains("unknown field `shardz`"), "{err}");
    std::fs::write(&p, "vectorStore:\n  inboundAuth:\n    mode: keys\n    keys:\n      - name: a\n        scopes: [read]\n        token: t\n").unwrap();
    let c = Config::load(Some(&p), &env(&[])).unwrap();
    assert_eq!(
        c.vector_store.inbound_auth.keys[0].scopes,
        vec![Scope::Read]
    );
}

#[test]
fn env_overrides_file_and_sdk_variables_fill_in() {
    let c = Config::load(
        None,
        &env(&[
            ("LAYER_SHARDS", "3"),
            ("TURBOPUFFER_API_KEY", "k"),
            ("TURBOPUFFER_API_URL", "http://x"),
        ]),
    )
    .unwrap();
    assert_eq!(c.gateway.shards, 3);
    assert_eq!(c.vector_store.endpoint.url, "http://x");
    assert_eq!(c.upstream_key(&env(&[])).as_deref(), Some("k"));
    let err = Config::load(None, &env(&[("LAYER_SHARDS", "many")])).unwrap_err();
    assert!(err.to_string().contains("LAYER_SHARDS"));
    let err = Config::load(None, &env(&[("LAYER_AUTH_MODE", "none")])).unwrap_err();
    assert!(err.to_string().contains("unknown auth mode"));
}

/// The file is read first, the environment wins over it.
#[test]
fn env_wins_over_the_file() {
    let p = yaml_file(
        "precedence",
        "gateway:\n  shards: 2\n  drainTimeoutMs: 5\nvectorStore:\n  requestTimeoutMs: 7\n",
    );
    let c = Config::load(Some(&p), &env(&[("LAYER_SHARDS", "4")])).unwrap();
    assert_eq!(c.gateway.shards, 4);
    assert_eq!(c.gateway.drain_timeout_ms, 5);
    assert_eq!(c.vector_store.request_timeout_ms, 7);
}

/// The Turbopuffer SDK variables keep their exact precedence: the URL fallback overrides the file
/// unless `LAYER_UPSTREAM_URL` is set; the key fallback fills in only when neither
/// `LAYER_UPSTREAM_API_KEY` nor the file's `credential.value` is set.
#[test]
fn sdk_fallbacks_keep_their_precedence() {
    let p = yaml_file(
        "sdk",
        "vectorStore:\n  endpoint: {url: http://file}\n  credential: {value: file-key}\n",
    );
    let sdk = [
        ("TURBOPUFFER_API_URL", "http://sdk"),
        ("TURBOPUFFER_API_KEY", "sdk-key"),
    ];
    let c = Config::load(Some(&p), &env(&sdk)).unwrap();
    assert_eq!(c.vector_store.endpoint.url, "http://sdk");
    assert_eq!(c.vector_store.credential.value.as_deref(), Some("file-key"));

    let mut both = sdk.to_vec();
    both.push(("LAYER_UPSTREAM_URL", "http://layer"));
    both.push(("LAYER_UPSTREAM_API_KEY", "layer-key"));
    let c = Config::load(Some(&p), &env(&both)).unwrap();
    assert_eq!(c.vector_store.endpoint.url, "http://layer");
    assert_eq!(
        c.vector_store.credential.value.as_deref(),
        Some("layer-key")
    );

    let c = Config::load(None, &env(&sdk)).unwrap();
    assert_eq!(c.vector_store.credential.value.as_deref(), Some("sdk-key"));
    let c = Config::load(None, &env(&both)).unwrap();
    assert_eq!(c.vector_store.endpoint.url, "http://layer");
    assert_eq!(
        c.vector_store.credential.value.as_deref(),
        Some("layer-key")
    );
}

#[test]
fn validation_catches_missing_credentials() {
    let c = Config::default();
    assert!(c.validate(&env(&[])).is_err());
    let mut c = Config::default();
    c.vector_store.credential.value = Some("k".into());
    assert!(c.validate(&env(&[])).is_ok());
}

/// Endpoint URLs with `user:password@` are refused, and the message does not repeat them.
#[test]
fn endpoint_urls_must_not_carry_credentials() {
    let mut c = Config::default();
    c.vector_store.credential.value = Some("k".into());
    c.vector_store.endpoint.url = "https://layer:pw_SECRET@tpuf.example".into();
    let err = c.validate(&env(&[])).unwrap_err().to_string();
    assert!(
        err.contains("vectorStore.endpoint.url must not carry credentials"),
        "{err}"
    );
    assert!(!err.contains("SECRET"), "{err}");
    c.vector_store.endpoint.url = "https://tpuf.example/x@y".into();
    assert!(c.validate(&env(&[])).is_ok());
    c.gateway.object_store.endpoint = Some("http://ak:sk_SECRET@127.0.0.1:9000".into());
    let err = c.validate(&env(&[])).unwrap_err().to_string();
    assert!(err.contains("gateway.objectStore.endpoint"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
    // Not http(s) at all: the message shows the URL, masked.
    c.gateway.object_store.endpoint = None;
    c.vector_store.endpoint.url = "ftp://u:pw_SECRET@host".into();
    let err = c.validate(&env(&[])).unwrap_err().to_string();
    assert!(
        err.contains("must be http(s)") && err.contains("ftp://***@host"),
        "{err}"
    );
}

#[test]
fn feature_knobs_must_be_positive() {
    let env = |k: &str| (k == "LAYER_HISTORY_MAX_BATCH").then(|| "0".to_string());
    let mut c = Config::load(None, &env).unwrap();
    c.vector_store.credential.value = Some("k".into());
    assert!(
        c.validate(&|_| None)
            .unwrap_err()
            .to_string()
            .contains("maxBatchEntries")
    );
    c.gateway.history.max_batch_entries = 10;
    c.gateway.scan.values_cap = 0;
    assert!(
        c.validate(&|_| None)
            .unwrap_err()
            .to_string()
            .contains("valuesCap")
    );
    c.gateway.scan.values_cap = 5;
    assert!(c.validate(&|_| None).is_ok());
}

/// A valid value, different from the default, for every variable of the table. A new entry
/// without a sample fails [`every_env_override_sets_the_key_it_names`].
fn sample(var: &str) -> Option<&'static str> {
    Some(match var {
        "LAYER_LISTEN" => "0.0.0.0:9090",
        "LAYER_SHARDS" => "3",
        "LAYER_WORK_STEALING" => "true",
        "LAYER_DATA_DIR" => "/srv/layer",
        "LAYER_MAX_BODY_BYTES" => "1048576",
        "LAYER_MAX_JSON_DEPTH" => "32",
        "LAYER_DRAIN_TIMEOUT_MS" => "2500",
        "LAYER_MAX_CONNECTIONS_PER_SHARD" => "100",
        "LAYER_MAX_IN_FLIGHT_PER_SHARD" => "10",
        "LAYER_HEADER_READ_TIMEOUT_MS" => "2000",
        "LAYER_BODY_READ_TIMEOUT_MS" => "3000",
        "LAYER_TLS_CERT_FILE" => "/etc/layer/tls.crt",
        "LAYER_LICENSE_FILE" => "/etc/layer/license",
        "LAYER_LICENSE_PUBLIC_KEY" => {
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        }
        "LAYER_COST_RATE_CARD_FILE" => "/etc/layer/rate-card.yaml",
        "LAYER_COST_EXPLORER_ENABLED" => "true",
        "LAYER_COST_EXPLORER_ENDPOINT" => "http://127.0.0.1:5000",
        "LAYER_COST_REGION" => "eu-west-1",
        "LAYER_COST_TAG_KEY" => "Project",
        "LAYER_COST_TAG_VALUE" => "layer",
        "LAYER_COST_SITE" => "main",
        "LAYER_COST_CACHE_TTL_SECONDS" => "3600",
        "LAYER_COST_REFRESH_INTERVAL_MS" => "60000",
        "LAYER_TLS_KEY_FILE" => "/etc/layer/tls.key",
        "LAYER_METRICS_URL" => "http://127.0.0.1:8428",
        "LAYER_KUBERNETES_WATCH" => "true",
        "LAYER_KUBERNETES_NAMESPACE" => "layer",
        "LAYER_KUBERNETES_INDEX_NAMESPACE" => "indexes",
        "LAYER_KUBERNETES_INDEXES" => "false",
        "LAYER_KUBERNETES_API_SERVER" => "http://127.0.0.1:8001",
        "LAYER_METRICS_TIMEOUT_MS" => "5000",
        "LAYER_TLS_RELOAD_INTERVAL_MS" => "5000",
        "LAYER_UPSTREAM_URL" => "http://tpuf.local:8080",
        "LAYER_UPSTREAM_API_KEY" => "tpuf_sample",
        "LAYER_UPSTREAM_CONNECT_TIMEOUT_MS" => "750",
        "LAYER_UPSTREAM_REQUEST_TIMEOUT_MS" => "9000",
        "LAYER_AUTH_MODE" => "open",
        "LAYER_DEFAULT_CONSISTENCY" => "eventualUncut",
        "LAYER_CACHE_TIER" => "disabled",
        "LAYER_CACHE_DIR" => "/mnt/nvme/cache",
        "LAYER_CACHE_MAX_BYTES" => "2147483648",
        "LAYER_CACHE_HOT_BYTES_PER_SHARD" => "1048576",
        "LAYER_CACHE_RECOVER" => "false",
        "AEROSPIKE_HOSTS" => "as1:3000,as2:3000",
        "LAYER_CACHE_POPULATE_MAX_IDS" => "250",
        "CONSISTENCY_POLL_INTERVAL_MS" => "250",
        "CONSISTENCY_STABLE_POLL_INTERVAL_MS" => "5000",
        "CONSISTENCY_SAFETY_MARGIN_MS" => "100",
        "LAYER_CONSISTENCY_MAX_CONCURRENT_POLLS" => "4",
        "NAMESPACE_LIST_CACHE_TTL_MS" => "0",
        "LAYER_OBJECT_STORE" => "s3",
        "LAYER_OBJECT_STORE_DIR" => "/srv/objects",
        "LAYER_S3_BUCKET" => "layer-history",
        "LAYER_S3_ENDPOINT" => "http://minio.local:9000",
        "LAYER_S3_REGION" => "eu-west-1",
        "LAYER_OBJECT_STORE_PREFIX" => "tenant-a",
        "LAYER_S3_ALLOW_HTTP" => "true",
        "LAYER_HISTORY_FLUSH_INTERVAL_MS" => "200",
        "LAYER_HISTORY_MAX_BATCH" => "50",
        "LAYER_HISTORY_QUEUE" => "128",
        "LAYER_HISTORY_RECENT_WINDOW" => "10",
        "LAYER_SNAPSHOT_MIN_INTERVAL_MS" => "60000",
        "LAYER_SCAN_THREADS" => "2",
        "LAYER_SCAN_VALUES_CAP" => "500",
        "LAYER_DATABASE_URL" => "postgresql://layer@db.local:5432/layer",
        "LAYER_DATABASE_SCHEMA" => "queue_a",
        "LAYER_DATABASE_POOL_SIZE" => "4",
        "LAYER_DATABASE_CONNECT_TIMEOUT_MS" => "1500",
        "LAYER_QUEUE_MAX_LEASE_EXPIRIES" => "3",
        _ => return None,
    })
}

/// The file `doc.path: value` (the value read as YAML, as a user would write it).
fn yaml_at(path: &str, value: &str) -> Value {
    let mut v: Value = serde_yaml_ng::from_str(value).unwrap();
    for key in path.rsplit('.') {
        let mut m = Mapping::new();
        m.insert(Value::String(key.into()), v);
        v = Value::Mapping(m);
    }
    v
}

/// The table test: setting only one variable to its sample changes the configuration, and
/// changes it exactly as writing the sample at the entry's `doc` path in the file does.
#[test]
fn every_env_override_sets_the_key_it_names() {
    let default = format!("{:?}", Config::default());
    for o in ENV_OVERRIDES {
        let Some(value) = sample(o.var) else {
            panic!("{}: no sample value in tests.rs", o.var);
        };
        let from_env = Config::load(None, &env(&[(o.var, value)]))
            .unwrap_or_else(|e| panic!("{}={value}: {e}", o.var));
        let from_env = format!("{from_env:?}");
        assert_ne!(from_env, default, "{}={value} changed nothing", o.var);
        let from_file: Config = serde_yaml_ng::from_value(yaml_at(o.doc, value))
            .unwrap_or_else(|e| panic!("{}: {}: {value}: {e}", o.var, o.doc));
        assert_eq!(
            from_env,
            format!("{from_file:?}"),
            "{} does not set {}",
            o.var,
            o.doc
        );
    }
}

/// The reference file of the module doc (the ```yaml block of `mod.rs`).
fn reference_yaml() -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in include_str!("mod.rs").lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        match (inside, doc.trim()) {
            (false, "```yaml") => inside = true,
            (true, "```") => break,
            (true, _) => {
                out.push_str(doc);
                out.push('\n');
            }
            _ => {}
        }
    }
    assert!(!out.is_empty(), "no ```yaml block in mod.rs's module doc");
    out
}

/// The reference file is a valid `layer.yaml`: no misspelt or stale key.
#[test]
fn reference_file_parses() {
    let c: Config = serde_yaml_ng::from_str(&reference_yaml()).unwrap();
    assert_eq!(c.indexes.len(), 1);
    assert_eq!(c.vector_store.inbound_auth.keys.len(), 1);
}

/// `word` occurs in `line` not as part of a longer variable name.
fn has_word(line: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(word)
        .any(|(i, _)| !line[..i].ends_with(is_name) && !line[i + word.len()..].starts_with(is_name))
}

/// Every variable of the table is in the reference file, on the line of the key it sets, and
/// that key exists at the entry's `doc` path.
#[test]
fn every_env_var_is_documented_on_its_key() {
    let text = reference_yaml();
    let file: Value = serde_yaml_ng::from_str(&text).unwrap();
    for o in ENV_OVERRIDES {
        let key = o.doc.rsplit('.').next().unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| has_word(l, o.var)).collect();
        assert!(
            !lines.is_empty(),
            "{} is missing from the module doc",
            o.var
        );
        assert!(
            lines.iter().any(|l| l.contains(&format!("{key}:"))),
            "{} is documented on {lines:?}, not on `{key}:`",
            o.var
        );
        let mut at = &file;
        for k in o.doc.split('.') {
            at = at
                .get(k)
                .unwrap_or_else(|| panic!("{}: the reference file has no {}", o.var, o.doc));
        }
    }
}

/// A misplaced secret is not repeated by the parse error, which still says where it is (values
/// are hidden; keys, like the `shardz` of `unknown_keys_are_rejected`, are not).
#[test]
fn parse_errors_do_not_repeat_values() {
    for (text, at) in [
        (
            "vectorStore:\n  credential: tpuf_SECRET\n",
            "vectorStore.credential",
        ),
        (
            "vectorStore:\n  endpoint: https://u:SECRET@x\n",
            "vectorStore.endpoint",
        ),
        (
            "vectorStore:\n  inboundAuth:\n    keys:\n      - hvl_SECRET\n",
            "vectorStore.inboundAuth.keys[0]",
        ),
        (
            "vectorStore:\n  inboundAuth:\n    keys:\n      - name: a\n        scopes: [hvl_SECRET]\n",
            "vectorStore.inboundAuth.keys[0].scopes[0]",
        ),
    ] {
        let p = yaml_file("secret_in_parse_error", text);
        let err = Config::load(Some(&p), &|_| None).unwrap_err().to_string();
        assert!(!err.contains("SECRET"), "{err}");
        assert!(err.contains(at) && err.contains("line "), "{err}");
    }
}
