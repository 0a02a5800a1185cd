//! Cross-field rules of the stores (`vectorStore`, `vectorStores`) and of the indexes' and
//! warehouses' references to them.

use std::collections::BTreeSet;

use super::redact::{has_userinfo, redact_userinfo};
use super::{AuthMode, Config, ConfigError, StoreKind, parse_duration_ms, store_key};

impl Config {
    /// Store names are unique and non-empty, every store is a kind this build serves, extra
    /// stores have an endpoint and a credential and take the default store's inbound-auth mode,
    /// every `storeRef` names a store, and warehouse names are unique with a kind and interval
    /// this build accepts.
    pub(super) fn validate_stores(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let mut names = BTreeSet::new();
        for (i, s) in self.stores().enumerate() {
            let what = if i == 0 {
                "vectorStore".to_string()
            } else {
                format!("vectorStores[{}]", i - 1)
            };
            if s.name.is_empty()
                || !s
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(ConfigError::Invalid(format!(
                    "{what}.name must be a non-empty name of letters, digits, '-', '_' and '.'"
                )));
            }
            if !names.insert(s.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "two stores are named {:?}",
                    s.name
                )));
            }
            if s.kind != StoreKind::Turbopuffer {
                return Err(ConfigError::Invalid(format!(
                    "{what} ({}): kind {} is not supported yet; turbopuffer is the only store kind",
                    s.name,
                    s.kind.as_str()
                )));
            }
            if i > 0 {
                let url = &s.endpoint.url;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid(format!(
                        "{what}.endpoint.url must be http(s): {:?}",
                        redact_userinfo(url)
                    )));
                }
                if has_userinfo(url) {
                    return Err(ConfigError::Invalid(format!(
                        "{what}.endpoint.url must not carry credentials (user:password@)"
                    )));
                }
                if store_key(s, env).is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "{what} ({}) needs its credential (credential.value or credential.env)",
                        s.name
                    )));
                }
                if s.inbound_auth.mode != self.vector_store.inbound_auth.mode {
                    return Err(ConfigError::Invalid(format!(
                        "{what}.inboundAuth.mode must be the default store's ({:?}): one gateway \
                         has one inbound-auth mode; a store's keys are scoped to its namespaces",
                        self.vector_store.inbound_auth.mode
                    )));
                }
                if s.inbound_auth.mode != AuthMode::Keys && !s.inbound_auth.keys.is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "{what}.inboundAuth.keys are only read in keys mode"
                    )));
                }
            }
        }
        for idx in &self.indexes {
            if let Some(r) = &idx.backend.store_ref
                && !names.contains(r.as_str())
            {
                return Err(ConfigError::Invalid(format!(
                    "index {:?}: backend.storeRef {r:?} names no store (stores: {})",
                    idx.name,
                    names.iter().copied().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let mut warehouses = BTreeSet::new();
        for w in &self.warehouses {
            if w.name.is_empty() || !warehouses.insert(w.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "warehouse names must be non-empty and unique: {:?}",
                    w.name
                )));
            }
            w.check()?;
            parse_duration_ms(&w.verify_interval).map_err(|e| {
                ConfigError::Invalid(format!("warehouse {:?}: verifyInterval: {e}", w.name))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn parse(yaml: &str) -> Result<(), String> {
        let c: Config = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        c.validate(&|_| None).map_err(|e| e.to_string())
    }

    const BASE: &str = "vectorStore:\n  name: a\n  credential: {value: ka}\n";

    #[test]
    fn several_stores_route_indexes_and_refuse_what_is_not_served() {
        let two = format!(
            "{BASE}vectorStores:\n- name: b\n  endpoint: {{url: 'http://127.0.0.1:1'}}\n  credential: {{value: kb}}\nindexes:\n- name: orders\n  backend: {{storeRef: b}}\n"
        );
        parse(&two).unwrap();
        let c: Config = serde_yaml_ng::from_str(&two).unwrap();
        assert_eq!(c.store_of("orders"), "b");
        assert_eq!(c.store_of("other"), "a");
        let unknown = format!("{BASE}indexes:\n- name: x\n  backend: {{storeRef: nope}}\n");
        assert!(parse(&unknown).unwrap_err().contains("names no store"));
        let pinecone = format!(
            "{BASE}vectorStores:\n- name: p\n  kind: pinecone\n  endpoint: {{url: 'http://x'}}\n  credential: {{value: k}}\n"
        );
        assert!(
            parse(&pinecone)
                .unwrap_err()
                .contains("kind pinecone is not supported")
        );
        let dup = format!(
            "{BASE}vectorStores:\n- name: a\n  endpoint: {{url: 'http://x'}}\n  credential: {{value: k}}\n"
        );
        assert!(parse(&dup).unwrap_err().contains("two stores are named"));
        let no_key = format!("{BASE}vectorStores:\n- name: b\n  endpoint: {{url: 'http://x'}}\n");
        assert!(parse(&no_key).unwrap_err().contains("needs its credential"));
    }

    #[test]
    fn warehouses_need_their_section_and_a_served_kind() {
        let ok = format!(
            "{BASE}warehouses:\n- name: w\n  kind: rest\n  rest: {{baseUrl: 'https://x', verify: {{path: /health}}}}\n"
        );
        parse(&ok).unwrap();
        let missing = format!("{BASE}warehouses:\n- name: w\n  kind: snowflake\n");
        assert!(
            parse(&missing)
                .unwrap_err()
                .contains("needs the snowflake section")
        );
        let iceberg = format!("{BASE}warehouses:\n- name: w\n  kind: iceberg\n");
        assert!(parse(&iceberg).unwrap_err().contains("not supported yet"));
    }
}
