//! `VectorStore` (`hevlayer.com/v1alpha1`): the gateway's upstream connection — store kind,
//! endpoint, credential Secret — and the inbound auth policy the gateway applies to clients.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, SecretKeyRef, no, open_object};

/// The spec of a `VectorStore`.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "hevlayer.com",
    version = "v1alpha1",
    kind = "VectorStore",
    doc = "The gateway's upstream connection (store kind, endpoint, credential Secret) and its inbound auth policy.",
    namespaced,
    status = "VectorStoreStatus",
    shortname = "vs",
    category = "hevlayer",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Default", type_ = "boolean", json_path = ".spec.default"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".spec.endpoint.url"),
    printcolumn(name = "Reachable", type_ = "boolean", json_path = ".status.reachable"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VectorStoreSpec {
    /// `turbopuffer`; `pinecone` and `search` are reserved by the schema and rejected by the
    /// operator until implemented.
    pub kind: StoreKind,
    /// The store used when an `Index` omits `spec.backend.storeRef` (a single store is the
    /// default either way).
    #[serde(default = "no")]
    pub default: bool,
    /// Upstream API base URL and region label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// The upstream API key's Secret (never the key itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<StoreCredential>,
    /// What bearer the gateway accepts; unset means `deriveFromStore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_auth: Option<InboundAuth>,
    /// Turbopuffer-specific settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turbopuffer: Option<TurbopufferSettings>,
    /// Settings of the reserved `search` kind, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub search: Option<serde_json::Value>,
}

/// The store kind: `turbopuffer` (`pinecone` and `search` are reserved).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum StoreKind {
    Turbopuffer,
    Pinecone,
    Search,
}

/// The upstream API base URL and an operator-visible region label.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub url: String,
    /// Operator-visible region label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// The upstream credential: a Secret key in the store's namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreCredential {
    /// A key of a Secret in the `VectorStore`'s namespace.
    pub secret_ref: SecretKeyRef,
}

/// Turbopuffer-specific settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TurbopufferSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

/// What bearer the gateway accepts from clients: `mode`, `keys`, the workers' key.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboundAuth {
    #[serde(default)]
    pub mode: AuthMode,
    /// The independent keys accepted in `keys` mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<InboundKey>,
    /// The key operator-managed workers (and KEDA) present in `keys` mode; in
    /// `deriveFromStore` mode they use the store credential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_secret_ref: Option<SecretKeyRef>,
}

/// `deriveFromStore` (default), `keys` or `open`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AuthMode {
    /// The default store's credential is the inbound bearer (single-tenant BYOC).
    #[default]
    DeriveFromStore,
    /// The listed key Secrets, with their scopes.
    Keys,
    /// No inbound auth.
    Open,
}

/// One entry of `spec.inboundAuth.keys`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboundKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    /// Upstream namespace globs the key may reach; empty = every namespace (a Layer extension,
    /// as in layer.yaml).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    pub secret_ref: SecretKeyRef,
}

/// A scope: `read`, `write` or `admin` (which satisfies the other two).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

/// The status the operator writes after probing the store.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VectorStoreStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Whether the last `GET /v1/namespaces` probe of the endpoint succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reachable: Option<bool>,
    /// `Ready`, `CredentialInvalid`, `Unreachable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
