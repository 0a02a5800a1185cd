//! `vectorStore`: the `VectorStore` CRD's spec — the upstream store (kind, endpoint, credential,
//! timeouts) and the inbound auth policy (mode, keys with scopes and namespace globs).
//!
//! Secrets never show in `Debug`: [`Credential::value`] and [`KeyConfig::token`] print as
//! `<redacted>`, and a URL's `user:password@` as `***@` ([`super::redact_userinfo`]), so a
//! `tracing::debug!(?config)` or a `{config:?}` in an error cannot leak them.

use std::fmt;

use serde::Deserialize;

use super::redact::{RedactedOption, redact_userinfo};

/// The upstream store (the `VectorStore` CRD's spec). `vectorStore` is the default store;
/// `vectorStores` adds more, each with a `name` that `Index.backend.storeRef` and minted keys'
/// `vectorstore.<name>` entitlements refer to.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct VectorStoreConfig {
    /// The store's name (the `VectorStore` resource's `metadata.name`); `default` for the
    /// default store unless set.
    pub name: String,
    pub kind: StoreKind,
    pub endpoint: Endpoint,
    pub credential: Credential,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub inbound_auth: InboundAuth,
}

impl Default for VectorStoreConfig {
    fn default() -> Self {
        VectorStoreConfig {
            name: DEFAULT_STORE.into(),
            kind: StoreKind::Turbopuffer,
            endpoint: Endpoint::default(),
            credential: Credential::default(),
            connect_timeout_ms: 2_000,
            request_timeout_ms: 30_000,
            inbound_auth: InboundAuth::default(),
        }
    }
}

/// The default store's name when `vectorStore.name` is not set.
pub const DEFAULT_STORE: &str = "default";

/// Store kinds. `pinecone` is reserved by the schema and refused by validation until
/// implemented.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Turbopuffer,
    Pinecone,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Turbopuffer => "turbopuffer",
            StoreKind::Pinecone => "pinecone",
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoint {
    pub url: String,
    pub region: Option<String>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &redact_userinfo(&self.url))
            .field("region", &self.region)
            .finish()
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint {
            url: "https://aws-us-east-1.turbopuffer.com".into(),
            region: None,
        }
    }
}

/// The upstream credential: inline, or read from an environment variable at start. `Debug`
/// shows whether `value` is set, never the value.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Credential {
    pub value: Option<String>,
    pub env: Option<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("value", &RedactedOption(&self.value))
            .field("env", &self.env)
            .finish()
    }
}

/// Inbound auth policy (`VectorStore.spec.inboundAuth`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboundAuth {
    pub mode: AuthMode,
    pub keys: Vec<KeyConfig>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum AuthMode {
    /// The upstream credential is the (admin) bearer.
    #[default]
    #[serde(rename = "deriveFromStore")]
    DeriveFromStore,
    /// Configured keys with scopes and namespace globs.
    #[serde(rename = "keys")]
    Keys,
    /// No inbound auth.
    #[serde(rename = "open")]
    Open,
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "deriveFromStore" => Ok(AuthMode::DeriveFromStore),
            "keys" => Ok(AuthMode::Keys),
            "open" => Ok(AuthMode::Open),
            other => Err(format!(
                "unknown auth mode {other:?} (deriveFromStore, keys, open)"
            )),
        }
    }
}

/// Key scopes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// One configured inbound key. `Debug` shows whether `token` is set, never the token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyConfig {
    pub name: String,
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .field("namespaces", &self.namespaces)
            .field("token", &RedactedOption(&self.token))
            .field("token_env", &self.token_env)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The env parser and the file parser agree on every mode's spelling.
    #[test]
    fn auth_mode_spellings_match_the_file_format() {
        for (s, want) in [
            ("deriveFromStore", AuthMode::DeriveFromStore),
            ("keys", AuthMode::Keys),
            ("open", AuthMode::Open),
        ] {
            assert_eq!(s.parse::<AuthMode>(), Ok(want));
            assert_eq!(serde_yaml_ng::from_str::<AuthMode>(s).unwrap(), want);
        }
    }

    /// `Debug` of the config types that hold secrets shows that they are set, never what they
    /// are; a URL's userinfo is masked.
    #[test]
    fn debug_never_shows_secrets() {
        let mut c = crate::Config::default();
        c.vector_store.credential.value = Some("tpuf_upstream_SECRET".into());
        c.vector_store.endpoint.url = "https://user:url_SECRET@tpuf.example/base".into();
        c.gateway.object_store.endpoint = Some("http://ak:s3_SECRET@127.0.0.1:9000".into());
        c.vector_store.inbound_auth.keys = vec![
            KeyConfig {
                name: "shop".into(),
                scopes: vec![Scope::Read],
                namespaces: vec!["shop-*".into()],
                token: Some("hvl_key_SECRET".into()),
                token_env: None,
            },
            KeyConfig {
                name: "ops".into(),
                scopes: vec![Scope::Admin],
                namespaces: vec![],
                token: None,
                token_env: Some("OPS_TOKEN".into()),
            },
        ];
        for shown in [format!("{c:?}"), format!("{c:#?}")] {
            assert!(!shown.contains("SECRET"), "{shown}");
            // What is not secret still shows.
            for visible in [
                "Some(<redacted>)",
                "https://***@tpuf.example/base",
                "http://***@127.0.0.1:9000",
                "\"shop\"",
                "OPS_TOKEN",
                "token: None",
            ] {
                assert!(shown.contains(visible), "{visible} in {shown}");
            }
        }
        let none = format!("{:?}", Credential::default());
        assert_eq!(none, "Credential { value: None, env: None }");
    }

    /// `as_str` is the spelling the file uses.
    #[test]
    fn scope_names_round_trip() {
        for s in [Scope::Read, Scope::Write, Scope::Admin] {
            assert_eq!(serde_yaml_ng::from_str::<Scope>(s.as_str()).unwrap(), s);
        }
    }
}
