//! `vectorStore`: the `VectorStore` CRD's spec — the upstream store (kind, endpoint, credential,
//! timeouts) and the inbound auth policy (mode, keys with scopes and namespace globs).

use serde::Deserialize;

/// The upstream store (the `VectorStore` CRD's spec).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct VectorStoreConfig {
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
            kind: StoreKind::Turbopuffer,
            endpoint: Endpoint::default(),
            credential: Credential::default(),
            connect_timeout_ms: 2_000,
            request_timeout_ms: 30_000,
            inbound_auth: InboundAuth::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Turbopuffer,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Endpoint {
    pub url: String,
    pub region: Option<String>,
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint {
            url: "https://aws-us-east-1.turbopuffer.com".into(),
            region: None,
        }
    }
}

/// The upstream credential: inline, or read from an environment variable at start.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Credential {
    pub value: Option<String>,
    pub env: Option<String>,
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

/// One configured inbound key.
#[derive(Clone, Debug, Deserialize)]
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

    /// `as_str` is the spelling the file uses.
    #[test]
    fn scope_names_round_trip() {
        for s in [Scope::Read, Scope::Write, Scope::Admin] {
            assert_eq!(serde_yaml_ng::from_str::<Scope>(s.as_str()).unwrap(), s);
        }
    }
}
