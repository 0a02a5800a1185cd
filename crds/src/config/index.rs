//! `indexes`: the `Index` CRD's spec, one entry per namespace exposed through the gateway
//! (upstream namespace, read consistency, shards, snapshot and cache policy, scan fan-out).

use serde::Deserialize;

/// One `Index` (the CRD's spec): a namespace exposed through the gateway.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexConfig {
    pub name: String,
    pub backend: IndexBackend,
    pub metadata: IndexMetadata,
    pub snapshot: IndexSnapshot,
    pub scan: IndexScan,
    pub cache: IndexCache,
    pub consistency: IndexConsistency,
    /// Hash buckets the namespace is split into (`_hevlayer_shard = xxh64(id) % shards`); 1 =
    /// unsharded. A Layer extension of the Index spec; fixed for the namespace's lifetime.
    /// Unset is 0, which the gateway reads as 1.
    pub shards: u32,
}

impl IndexConfig {
    /// The upstream namespace this index serves.
    pub fn namespace(&self) -> &str {
        self.backend.namespace.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexBackend {
    pub store_ref: Option<String>,
    pub namespace: Option<String>,
    pub distance_metric: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexMetadata {
    pub labels: std::collections::BTreeMap<String, String>,
    pub tags: Vec<String>,
}

/// Snapshot policy (used by the history issue; parsed and validated now).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexSnapshot {
    pub facet_fields: Vec<String>,
    pub interval: String,
    pub retention: String,
}

impl Default for IndexSnapshot {
    fn default() -> Self {
        IndexSnapshot {
            facet_fields: Vec::new(),
            interval: "5m".into(),
            retention: "never".into(),
        }
    }
}

/// Cache posture (used by the cache issue; parsed and validated now).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct IndexCache {
    pub ttl: Option<String>,
    #[serde(rename = "capGiB")]
    pub cap_gib: Option<u64>,
    pub mode: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexScan {
    pub threads: Option<u32>,
}

/// Per-namespace read consistency, spelled as the `Index` CRD spells it: `eventual` (the
/// default) is Layer's stable reads, `strong` forwards queries unchanged. `stable` (this file's
/// earlier spelling of stable reads) is still accepted; `eventualUncut` is Layer's extra mode.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum IndexConsistency {
    /// Stable reads (`eventual`, alias `stable`): eventual upstream reads, cut at the watermark
    /// while the index is updating.
    #[default]
    #[serde(rename = "eventual", alias = "stable")]
    Stable,
    /// Stable reads off: queries are forwarded unchanged (upstream's default is strong).
    #[serde(rename = "strong")]
    Strong,
    /// Stable reads off, but queries are sent with eventual consistency and no predicate
    /// (`eventualUncut`; spelled `eventual` before the file took the CRD's words).
    #[serde(rename = "eventualUncut")]
    EventualUncut,
}

impl IndexConsistency {
    /// The spelling the file and the CRD use.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexConsistency::Stable => "eventual",
            IndexConsistency::Strong => "strong",
            IndexConsistency::EventualUncut => "eventualUncut",
        }
    }
}

impl std::str::FromStr for IndexConsistency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "eventual" | "stable" => Ok(IndexConsistency::Stable),
            "strong" => Ok(IndexConsistency::Strong),
            "eventualUncut" => Ok(IndexConsistency::EventualUncut),
            other => Err(format!(
                "unknown consistency mode {other:?} (eventual, strong, eventualUncut; stable = eventual)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_defaults_to_the_name() {
        let mut i = IndexConfig {
            name: "products".into(),
            ..IndexConfig::default()
        };
        assert_eq!(i.namespace(), "products");
        i.backend.namespace = Some("products-v2".into());
        assert_eq!(i.namespace(), "products-v2");
    }

    /// The env parser and the file parser agree on every mode's spelling; the CRD's words
    /// with the CRD's meanings (`eventual` = stable reads), `stable` as an alias.
    #[test]
    fn consistency_spellings_match_the_file_format() {
        for (s, want) in [
            ("eventual", IndexConsistency::Stable),
            ("stable", IndexConsistency::Stable),
            ("strong", IndexConsistency::Strong),
            ("eventualUncut", IndexConsistency::EventualUncut),
        ] {
            assert_eq!(s.parse::<IndexConsistency>(), Ok(want));
            assert_eq!(
                serde_yaml_ng::from_str::<IndexConsistency>(s).unwrap(),
                want
            );
        }
        for m in [
            IndexConsistency::Stable,
            IndexConsistency::Strong,
            IndexConsistency::EventualUncut,
        ] {
            assert_eq!(m.as_str().parse::<IndexConsistency>(), Ok(m));
        }
        assert_eq!(IndexConsistency::default().as_str(), "eventual");
        for bad in ["Stable", "Eventual", "eventual_uncut", ""] {
            assert!(bad.parse::<IndexConsistency>().is_err(), "{bad}");
            assert!(
                serde_yaml_ng::from_str::<IndexConsistency>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
