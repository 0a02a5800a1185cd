//! What the dashboard needs to run: where to listen, the gateway and its bearer, the basic-auth
//! credentials (required), and whether the write actions (UDF pause and resume) are on.

use std::net::SocketAddr;

/// The dashboard's configuration (flags and `LAYER_DASHBOARD_*` environment, see `main.rs`).
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address; the documented port is 8081.
    pub listen: SocketAddr,
    /// The gateway's base URL (`http://host:port`).
    pub gateway_url: String,
    /// The gateway bearer (`LAYER_GATEWAY_API_KEY`).
    pub bearer: String,
    /// Basic-auth user and password; both required.
    pub user: String,
    pub password: String,
    /// `dashboard.writeAccess.enabled`: pause and resume UDFs (behind a confirm step).
    pub write_access: bool,
    /// Whether the cluster view has Kubernetes access (this build has no Kubernetes client: the
    /// view shows its "not configured" banner either way).
    pub kube_access: bool,
    /// Seconds between a page's automatic refreshes (a `<meta http-equiv=refresh>`); 0 is off.
    pub refresh_seconds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            gateway_url: "http://127.0.0.1:8080".into(),
            bearer: String::new(),
            user: String::new(),
            password: String::new(),
            write_access: false,
            kube_access: false,
            refresh_seconds: 15,
        }
    }
}

/// Why the dashboard refuses to start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(
        "basic auth is required: set LAYER_DASHBOARD_USER and LAYER_DASHBOARD_PASSWORD (--user/--password)"
    )]
    MissingBasicAuth,
    #[error("a gateway bearer is required: set LAYER_GATEWAY_API_KEY (--gateway-api-key)")]
    MissingBearer,
    #[error("gateway URL {0:?} is not an http:// URL with a host")]
    BadGatewayUrl(String),
}

impl Config {
    /// Refuses a configuration the dashboard cannot serve safely.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.user.trim().is_empty() || self.password.is_empty() {
            return Err(ConfigError::MissingBasicAuth);
        }
        if self.bearer.trim().is_empty() {
            return Err(ConfigError::MissingBearer);
        }
        let rest = self
            .gateway_url
            .strip_prefix("http://")
            .ok_or_else(|| ConfigError::BadGatewayUrl(self.gateway_url.clone()))?;
        if rest.trim_end_matches('/').is_empty() || rest.trim_end_matches('/').contains('/') {
            return Err(ConfigError::BadGatewayUrl(self.gateway_url.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Config {
        Config {
            bearer: "k".into(),
            user: "ops".into(),
            password: "pw".into(),
            ..Config::default()
        }
    }

    #[test]
    fn refuses_without_basic_auth_bearer_or_a_usable_url() {
        assert_eq!(ok().validate(), Ok(()));
        let mut c = ok();
        c.password.clear();
        assert_eq!(c.validate(), Err(ConfigError::MissingBasicAuth));
        let mut c = ok();
        c.user = " ".into();
        assert_eq!(c.validate(), Err(ConfigError::MissingBasicAuth));
        let mut c = ok();
        c.bearer.clear();
        assert_eq!(c.validate(), Err(ConfigError::MissingBearer));
        for url in ["https://x", "http://", "127.0.0.1:8080", "http://h/p"] {
            let mut c = ok();
            c.gateway_url = url.into();
            assert!(c.validate().is_err(), "{url}");
        }
    }
}
