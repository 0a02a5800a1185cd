//! `gateway.kubernetes`: in a cluster the gateway reads `VectorStore`, `Index` and `ApiKey`
//! resources through a watch (read-only: get, list, watch) into the same in-memory
//! configuration this file feeds. Off by default; the Helm chart turns it on.

use std::path::PathBuf;

use serde::Deserialize;

/// Where the service account's files are mounted in a pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The watch of the cluster's desired state.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct KubernetesConfig {
    /// Watch the cluster (the API server from `KUBERNETES_SERVICE_HOST`/`_PORT` unless
    /// `apiServer` is set).
    pub enabled: bool,
    /// The namespace of the `VectorStore` and `ApiKey` resources; unset = the service
    /// account's namespace (its `namespace` file), else `default`.
    pub namespace: Option<String>,
    /// The namespace of the `Index` resources; unset = `namespace`.
    pub index_namespace: Option<String>,
    /// Read `Index` resources (routing and policy); the chart's `gateway.indexConfig.enabled`.
    pub indexes: bool,
    /// The API server's base URL; unset = `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    /// `http://` is accepted (tests, `kubectl proxy`).
    pub api_server: Option<String>,
    /// The bearer token file, re-read when it changes (projected tokens rotate); unset = the
    /// service account's, and no bearer when that file does not exist.
    pub token_file: Option<PathBuf>,
    /// The API server's CA bundle (PEM); unset = the service account's `ca.crt`.
    pub ca_file: Option<PathBuf>,
    /// First wait before reconnecting a broken watch; doubles up to `maxBackoffMs`.
    pub backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// How long one watch request may stay open (`timeoutSeconds`); the server ends it then and
    /// the watch resumes from the last version.
    pub watch_timeout_seconds: u64,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            enabled: false,
            namespace: None,
            index_namespace: None,
            indexes: true,
            api_server: None,
            token_file: None,
            ca_file: None,
            backoff_ms: 500,
            max_backoff_ms: 30_000,
            watch_timeout_seconds: 290,
        }
    }
}
