//! The Warehouse probe seam: a driver opens a session with the warehouse's credential and runs
//! `SELECT 1` on its compute warehouse. The operator uses the Snowflake driver
//! ([`crate::snowflake::SnowflakeProbe`]); tests plug in fakes; [`NoDriver`] is the probe of a
//! kind without a driver (a Warehouse that passes the static checks stays `Pending`).

use std::future::Future;
use std::pin::Pin;

use crds::k8s::warehouse::Warehouse;
use k8s_openapi::api::core::v1::Secret;

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The session opened and `SELECT 1` answered.
    Verified,
    /// The warehouse refused (the reason goes to `status.failureReason`).
    Failed(String),
    /// No probe could be run (no driver): the phase is left as it was.
    Unavailable(String),
}

/// A warehouse driver's probe.
pub trait WarehouseProbe: Send + Sync {
    fn probe<'a>(
        &'a self,
        warehouse: &'a Warehouse,
        secret: &'a Secret,
    ) -> Pin<Box<dyn Future<Output = ProbeOutcome> + Send + 'a>>;
}

/// The probe of a build without warehouse drivers.
pub struct NoDriver;

impl WarehouseProbe for NoDriver {
    fn probe<'a>(
        &'a self,
        _: &'a Warehouse,
        _: &'a Secret,
    ) -> Pin<Box<dyn Future<Output = ProbeOutcome> + Send + 'a>> {
        Box::pin(async {
            ProbeOutcome::Unavailable(
                "this build has no Snowflake driver: the key pair is present but no session was opened"
                    .into(),
            )
        })
    }
}

/// The value of `key` in a Secret (`data`, else `stringData`): store credentials, key tokens,
/// warehouse keys.
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone()).ok();
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
}

/// A duration as the CRDs write it (`30s`, `5m`, `1h`, `7d`), in seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: u64 = s[..s.len() - unit.len_utf8()].parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h"), Some(3600));
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("5 weeks"), None);
    }
}
