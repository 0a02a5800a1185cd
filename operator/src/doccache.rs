//! The document cache policy of `InfraRules/default` (`spec.documentCache`), checked against the
//! Aerospike StatefulSet the Helm chart runs.
//!
//! Who owns what (the docs decide): the chart renders the document cache — StatefulSet, headless
//! Service, `aerospike.conf` ConfigMap and its KEDA `ScaledObject` — with
//! `documentCache.autoRestartOnStopWrites` and `documentCache.storage.resetOnStart` (both true by
//! default) and scale-to-zero (`documentCache.replicas: 0`); `kubernetes_scaling-crd.md` says
//! "Helm still renders the document-cache KEDA object directly; `InfraRules` is the declared
//! policy shape the operator reports and validates against". So the operator applies nothing
//! here: it reads the StatefulSet and its ConfigMap (both named by `LAYER_DOCUMENT_CACHE_NAME`,
//! in the operator's namespace) and writes a `DocumentCache` condition on `InfraRules/default`
//! saying whether what runs fits the declared policy, with the observed replicas in its message.
//!
//! The checks ([`check`], pure): the policy itself (`nodes.min <= nodes.max`,
//! `replicationFactor <= nodes.max`); the StatefulSet's replicas within the node bounds (`fixed`:
//! `min..=max`; `autoscale`: `0..=max`, since KEDA idles the cache at zero); the ConfigMap's
//! per-node `filesize` not above `capGiB`; its `replication-factor` equal to `replicationFactor`.

use crds::k8s::common::Condition;
use crds::k8s::infra::{DocumentCache, DocumentCacheMode};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::conditions::condition;

/// The condition type written on `InfraRules/default`.
pub const CONDITION: &str = "DocumentCache";

/// What the operator sees of the running document cache.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The StatefulSet's `namespace/name`.
    pub name: String,
    /// `spec.replicas` (what the chart or KEDA set).
    pub replicas: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// The namespace's `filesize` in GiB, from `aerospike.conf` (absent when unreadable).
    pub file_gib: Option<f64>,
    /// The namespace's `replication-factor`, from `aerospike.conf`.
    pub replication: Option<u32>,
}

/// Parses an Aerospike size (`64G`, `512M`, `1T`, `4096`, `2K`) into GiB.
pub fn parse_size_gib(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&s[..i], s[i..].to_ascii_uppercase()),
        None => (s, String::new()),
    };
    let n: f64 = num.trim().parse().ok()?;
    let bytes = match unit.as_str() {
        "" => n,
        "K" => n * 1024.0,
        "M" => n * 1024f64.powi(2),
        "G" => n * 1024f64.powi(3),
        "T" => n * 1024f64.powi(4),
        "P" => n * 1024f64.powi(5),
        _ => return None,
    };
    Some(bytes / 1024f64.powi(3))
}

/// The first `filesize` (in GiB) and `replication-factor` of an `aerospike.conf` (the chart
/// declares one namespace; `#` comments are ignored).
pub fn parse_conf(conf: &str) -> (Option<f64>, Option<u32>) {
    let mut file = None;
    let mut rf = None;
    for line in conf.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("filesize"), Some(v)) if file.is_none() => file = parse_size_gib(v),
            (Some("replication-factor"), Some(v)) if rf.is_none() => rf = v.parse().ok(),
            _ => {}
        }
    }
    (file, rf)
}

/// What a StatefulSet and its ConfigMap (key `aerospike.conf`) say.
pub fn observe(sts: &StatefulSet, cm: Option<&ConfigMap>) -> Observed {
    let conf = cm
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get("aerospike.conf"))
        .map(|c| parse_conf(c))
        .unwrap_or((None, None));
    Observed {
        name: format!(
            "{}/{}",
            sts.metadata.namespace.as_deref().unwrap_or(""),
            sts.metadata.name.as_deref().unwrap_or("")
        ),
        replicas: sts.spec.replicas.unwrap_or(1),
        ready: sts
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        file_gib: conf.0,
        replication: conf.1,
    }
}

fn gib(v: f64) -> String {
    format!("{}", (v * 100.0).round() / 100.0)
}

/// The `DocumentCache` condition for `policy` against what runs (`None`: no StatefulSet of that
/// name). No policy declared → no condition.
pub fn check(
    policy: Option<&DocumentCache>,
    seen: Option<&Observed>,
    expect: &str,
) -> Option<Condition> {
    let policy = policy?;
    let scaling = policy.scaling.clone().unwrap_or_default();
    let nodes = scaling.nodes.clone().unwrap_or_default();
    let bad = |reason: &str, msg: String| Some(condition(CONDITION, false, reason, msg));
    if let Some(max) = nodes.max
        && nodes.min > max
    {
        return bad(
            "InvalidPolicy",
            format!("documentCache.scaling.nodes.min {} > max {max}", nodes.min),
        );
    }
    if let (Some(rf), Some(max)) = (policy.replication_factor, nodes.max)
        && max > 0
        && i64::from(rf) > i64::from(max)
    {
        return bad(
            "InvalidPolicy",
            format!("documentCache.replicationFactor {rf} > scaling.nodes.max {max}"),
        );
    }
    let Some(seen) = seen else {
        return bad(
            "NotInstalled",
            format!(
                "no document cache StatefulSet {expect} (the chart renders it when documentCache.enabled)"
            ),
        );
    };
    let floor = match scaling.mode {
        DocumentCacheMode::Fixed => nodes.min,
        DocumentCacheMode::Autoscale => 0,
    };
    if seen.replicas < floor || nodes.max.is_some_and(|m| seen.replicas > m) {
        let max = nodes.max.map_or("unbounded".to_string(), |m| m.to_string());
        return bad(
            "ReplicasOutOfBounds",
            format!(
                "{} runs {} replicas; the {:?} policy allows {floor}..={max}",
                seen.name, seen.replicas, scaling.mode
            ),
        );
    }
    if let (Some(cap), Some(file)) = (policy.cap_gib, seen.file_gib)
        && file > cap as f64
    {
        return bad(
            "CapacityExceeded",
            format!(
                "{}: aerospike.conf filesize is {} GiB per node, above capGiB {cap}",
                seen.name,
                gib(file)
            ),
        );
    }
    if let (Some(want), Some(have)) = (policy.replication_factor, seen.replication)
        && want != have
    {
        return bad(
            "ReplicationMismatch",
            format!(
                "{}: aerospike.conf replication-factor is {have}, the policy says {want}",
                seen.name
            ),
        );
    }
    let state = if seen.replicas == 0 {
        "scaled to zero".to_string()
    } else {
        format!("{}/{} replicas ready", seen.ready, seen.replicas)
    };
    Some(condition(
        CONDITION,
        true,
        "MatchesPolicy",
        format!("{} {state}", seen.name),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::k8s::infra::{DocumentCacheScaling, NodeBounds};

    fn policy(mode: DocumentCacheMode, min: i32, max: Option<i32>) -> DocumentCache {
        DocumentCache {
            cap_gib: Some(64),
            replication_factor: Some(1),
            scaling: Some(DocumentCacheScaling {
                mode,
                nodes: Some(NodeBounds { min, max }),
            }),
        }
    }

    fn seen(replicas: i32) -> Observed {
        Observed {
            name: "layer/layer-document-cache".into(),
            replicas,
            ready: replicas,
            file_gib: Some(64.0),
            replication: Some(1),
        }
    }

    fn reason(c: Option<Condition>) -> String {
        c.map(|c| c.reason).unwrap_or_default()
    }

    #[test]
    fn sizes_and_conf_parse() {
        assert_eq!(parse_size_gib("64G"), Some(64.0));
        assert_eq!(parse_size_gib("512M"), Some(0.5));
        assert_eq!(parse_size_gib("1T"), Some(1024.0));
        assert_eq!(parse_size_gib("1073741824"), Some(1.0));
        assert_eq!(parse_size_gib("12Q"), None);
        let conf = "namespace hevlayer {\n  replication-factor 2 # two\n  storage-engine device {\n    file /d/x.dat\n    filesize 128G\n  }\n}\n";
        assert_eq!(parse_conf(conf), (Some(128.0), Some(2)));
        assert_eq!(parse_conf(""), (None, None));
    }

    #[test]
    fn a_scaled_to_zero_cache_within_the_policy_is_true() {
        let p = policy(DocumentCacheMode::Autoscale, 0, Some(1));
        let c = check(Some(&p), Some(&seen(0)), "x").unwrap();
        assert_eq!(
            (c.reason.as_str(), c.message.as_str()),
            ("MatchesPolicy", "layer/layer-document-cache scaled to zero")
        );
        let c = check(Some(&p), Some(&seen(1)), "x").unwrap();
        assert!(c.message.ends_with("1/1 replicas ready"), "{}", c.message);
        assert!(
            check(None, Some(&seen(3)), "x").is_none(),
            "no policy, no condition"
        );
    }

    #[test]
    fn each_mismatch_has_its_reason() {
        let auto = policy(DocumentCacheMode::Autoscale, 1, Some(2));
        assert_eq!(
            reason(check(Some(&auto), Some(&seen(0)), "x")),
            "MatchesPolicy"
        );
        assert_eq!(
            reason(check(Some(&auto), Some(&seen(3)), "x")),
            "ReplicasOutOfBounds"
        );
        let fixed = policy(DocumentCacheMode::Fixed, 1, Some(2));
        assert_eq!(
            reason(check(Some(&fixed), Some(&seen(0)), "x")),
            "ReplicasOutOfBounds"
        );
        assert_eq!(reason(check(Some(&fixed), None, "layer/c")), "NotInstalled");
        let mut small = auto.clone();
        small.cap_gib = Some(32);
        assert_eq!(
            reason(check(Some(&small), Some(&seen(1)), "x")),
            "CapacityExceeded"
        );
        let mut rf2 = auto.clone();
        rf2.replication_factor = Some(2);
        assert_eq!(
            reason(check(Some(&rf2), Some(&seen(1)), "x")),
            "ReplicationMismatch"
        );
        rf2.replication_factor = Some(3);
        assert_eq!(
            reason(check(Some(&rf2), Some(&seen(1)), "x")),
            "InvalidPolicy"
        );
        let inverted = policy(DocumentCacheMode::Fixed, 3, Some(1));
        assert_eq!(reason(check(Some(&inverted), None, "x")), "InvalidPolicy");
        // An unknown size in the conf is not a mismatch: nothing to compare.
        let mut unknown = seen(1);
        unknown.file_gib = None;
        assert_eq!(
            reason(check(Some(&small), Some(&unknown), "x")),
            "MatchesPolicy"
        );
    }
}
