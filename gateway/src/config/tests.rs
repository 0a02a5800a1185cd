//! Tests of the configuration loader: defaults, file + env precedence, validation.
use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

#[test]
fn aerospike_tier_needs_the_feature_and_hosts() {
    let env = |k: &str| (k == "TURBOPUFFER_API_KEY").then(|| "k".to_string());
    let mut c = Config::load(None, &|k| match k {
        "LAYER_CACHE_TIER" => Some("aerospike".into()),
        _ => None,
    })
    .unwrap();
    c.vector_store.credential.value = Some("k".into());
    assert_eq!(c.gateway.cache.tier, CacheTierKind::Aerospike);
    let err = c.validate(&env).unwrap_err().to_string();
    if cfg!(feature = "aerospike") {
        assert!(err.contains("hosts"), "{err}");
        c.gateway.cache.aerospike.hosts = Some("127.0.0.1:3000".into());
        assert!(c.validate(&env).is_ok());
    } else {
        assert!(err.contains("--features aerospike"), "{err}");
    }
}

#[test]
fn defaults_are_documented_values() {
    let c = Config::default();
    assert_eq!(c.gateway.max_body_bytes, 64 << 20);
    assert_eq!(c.vector_store.inbound_auth.mode, AuthMode::DeriveFromStore);
    assert_eq!(c.vector_store.request_timeout_ms, 30_000);
}

#[test]
fn unknown_keys_are_rejected() {
    let dir = std::env::temp_dir().join(format!("layer-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.yaml");
    std::fs::write(&p, "gateway:\n  listen: 127.0.0.1:1\n  shardz: 2\n").unwrap();
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

#[test]
fn validation_catches_missing_credentials() {
    let c = Config::default();
    assert!(c.validate(&env(&[])).is_err());
    let mut c = Config::default();
    c.vector_store.credential.value = Some("k".into());
    assert!(c.validate(&env(&[])).is_ok());
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
