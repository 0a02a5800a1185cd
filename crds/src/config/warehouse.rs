//! `warehouses`: the `Warehouse` CRD's spec — a source system pipelines extract from, with the
//! reference to its credential (never the credential). The gateway shows them read-only
//! (`/v2/warehouses`) and minted keys name them in `warehouse.<name>` entitlements.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;

/// Warehouse kinds. `databricks` and `iceberg` are reserved by the schema and refused until
/// implemented.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WarehouseKind {
    #[default]
    Snowflake,
    Rest,
    Databricks,
    Iceberg,
}

impl WarehouseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WarehouseKind::Snowflake => "snowflake",
            WarehouseKind::Rest => "rest",
            WarehouseKind::Databricks => "databricks",
            WarehouseKind::Iceberg => "iceberg",
        }
    }
}

/// One warehouse.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct WarehouseConfig {
    pub name: String,
    /// The Kubernetes namespace of the resource (`layer` unless set).
    pub namespace: Option<String>,
    pub kind: WarehouseKind,
    pub snowflake: Option<SnowflakeWarehouse>,
    pub rest: Option<RestWarehouse>,
    /// Probe cadence (`1h`).
    pub verify_interval: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SnowflakeWarehouse {
    pub account: String,
    pub user: String,
    pub role: Option<String>,
    pub warehouse: String,
    pub key_pair_secret_ref: SecretName,
    pub pool: Option<WarehousePool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretName {
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarehousePool {
    pub size: u32,
    pub timeout: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RestWarehouse {
    pub base_url: String,
    pub verify: RestVerify,
    pub auth: Option<RestAuth>,
    pub rate_limit: Option<RestRateLimit>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestVerify {
    pub path: String,
    pub query: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RestAuth {
    #[serde(rename = "in")]
    pub location: String,
    pub name: String,
    pub secret_ref: SecretName,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RestRateLimit {
    pub requests_per_second: f64,
}

impl Default for WarehouseConfig {
    fn default() -> Self {
        WarehouseConfig {
            name: String::new(),
            namespace: None,
            kind: WarehouseKind::Snowflake,
            snowflake: None,
            rest: None,
            verify_interval: "1h".into(),
        }
    }
}

impl WarehouseConfig {
    /// The kind is one this build accepts and its section is present.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| {
            Err(ConfigError::Invalid(format!(
                "warehouse {:?}: {m}",
                self.name
            )))
        };
        match self.kind {
            WarehouseKind::Snowflake if self.snowflake.is_none() => {
                bad("kind snowflake needs the snowflake section".into())
            }
            WarehouseKind::Rest if self.rest.is_none() => {
                bad("kind rest needs the rest section".into())
            }
            WarehouseKind::Databricks | WarehouseKind::Iceberg => bad(format!(
                "kind {} is not supported yet (snowflake, rest)",
                self.kind.as_str()
            )),
            _ => Ok(()),
        }
    }
}
