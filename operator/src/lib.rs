//! `layer-operator`: reconciles the `hevlayer.com` custom resources (types in `layer-crds`,
//! feature `kube`) into the objects and gateway state they declare.
//!
//! Where to start: [`run::run`] starts one `kube::runtime::Controller` per kind once this
//! replica holds the leader [`leader`] Lease. Each kind has its module:
//!
//! | kind | module | what it reconciles |
//! |---|---|---|
//! | `Pipeline`, `Function` | [`workload`] | a worker Deployment (and a KEDA `ScaledObject` for `mode: autoscale`); a Function is also registered with the gateway (`PUT /v2/udfs/{id}`) and discovered |
//! | `VectorStore`, `Index` | [`stores`] | probes the store (`GET /v1/namespaces`); validates an Index against its store |
//! | `ApiKey` | [`apikey`] | mints (or adopts) the token through `/v2/keys` into a Secret |
//! | `Warehouse` | [`warehouse`] | static checks, the driver's probe ([`probe`]; Snowflake: [`snowflake`]), consumers, a deletion finalizer |
//! | (upstream namespaces) | [`discovery`] | an `Index` per undiscovered namespace; index GC of discovered ones gone upstream |
//! | `InfraRules` | [`infra`], [`doccache`] | validates the one object named `default` (status `pools`, `Ready`) and checks its `documentCache` policy against the chart's Aerospike StatefulSet (condition `DocumentCache`) |
//!
//! The objects a reconcile applies are built by pure functions ([`workload::build`],
//! [`workload::scaling`]) so they are unit-tested without a server; the reconcilers apply them
//! with server-side apply under the field manager [`FIELD_MANAGER`], with owner references so
//! that deleting a resource garbage-collects what was made for it. [`metrics`] serves
//! `/metrics` and `/healthz`.

pub mod apikey;
pub mod conditions;
pub mod config;
pub mod context;
pub mod discovery;
pub mod doccache;
pub mod gateway;
pub mod infra;
pub mod leader;
pub mod metrics;
pub mod probe;
pub mod retry;
pub mod run;
pub mod snowflake;
pub mod stores;
pub mod warehouse;
pub mod workload;

/// The field manager of every server-side apply, and the Event reporter's name.
pub const FIELD_MANAGER: &str = "layer-operator";

/// The label every object the operator creates carries (`app.kubernetes.io/managed-by`).
pub const MANAGED_BY: &str = "layer-operator";

/// A reconcile's error: the API server or the gateway failed (retried with backoff); bad input
/// never becomes an error, it becomes a status condition.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("gateway: {0}")]
    Gateway(#[from] gateway::GatewayError),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("{0}")]
    Blocked(String),
    #[error("serialization: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A finalizer's outcome as a reconcile error: the apply or cleanup step's own error as it was,
/// anything the finalizer machinery itself hit as [`Error::Finalizer`].
impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(e: kube::runtime::finalizer::Error<Error>) -> Error {
        use kube::runtime::finalizer::Error as F;
        match e {
            F::ApplyFailed(e) | F::CleanupFailed(e) => e,
            other => Error::Finalizer(other.to_string()),
        }
    }
}
