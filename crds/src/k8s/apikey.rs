//! `ApiKey` (`hevlayer.com/v1alpha1`): a minted credential as a resource. Its entitlements name
//! a `VectorStore` (`vectorstore.<name>`), a `Warehouse` (`warehouse.<name>`) or Layer itself
//! (`layer`); the token is delivered in a Secret named by `status.secretRef`.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{Condition, SecretRef};
use super::store::Scope;

/// The spec of an `ApiKey`.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "hevlayer.com",
    version = "v1alpha1",
    kind = "ApiKey",
    doc = "A minted credential: entitlements per VectorStore, Warehouse or layer; the token is delivered in the Secret named by status.secretRef.",
    namespaced,
    status = "ApiKeyStatus",
    category = "hevlayer",
    printcolumn(name = "Owner", type_ = "string", json_path = ".spec.owner"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Key ID", type_ = "string", json_path = ".status.keyId"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeySpec {
    /// Free-form owner label, echoed in list and authenticate responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Keyed by target: `vectorstore.<name>`, `warehouse.<name>` or `layer`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entitlements: BTreeMap<String, Entitlement>,
    /// A duration (`365d`) or `never`; `status.expiresAt` is computed at mint.
    #[serde(default = "a_year")]
    pub expires_after: String,
}

fn a_year() -> String {
    "365d".into()
}

/// One entitlement: scopes and namespace globs for a store or `layer`, opaque claims anywhere.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entitlement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Opaque strings Layer stores and echoes, never interprets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<String>,
}

/// `Pending` (awaiting mint), `Active`, `Revoked` or `Expired`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ApiKeyPhase {
    /// Awaiting mint.
    #[default]
    Pending,
    Active,
    Revoked,
    Expired,
}

/// What the operator (or the minting route) writes: one-way hashes, never the token.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The stable actor id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<ApiKeyPhase>,
    /// `sha256:<hex>` of the token's lookup part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Advances at most once per five minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<String>,
    /// The Secret (key `token`) the minted token is delivered in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// `EntitlementTargetMissing` when a target does not exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
