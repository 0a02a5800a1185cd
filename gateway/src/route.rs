//! Route classification: method + path → what the gateway does, which scope it needs and which
//! namespace it touches. A path the gateway does not serve is `None` and gets a Layer 404 — it is
//! never forwarded.

use http::Method;

use crate::config::Scope;

/// What the gateway does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `GET /health`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// Forwarded upstream byte for byte.
    Passthrough,
    /// `GET /v1/namespaces`: forwarded; a namespace-limited key sees only its namespaces.
    UpstreamListing,
    /// `GET /v1/namespaces/{ns}/schema`: forwarded; the gateway's reserved attributes are hidden.
    Schema,
    /// `POST /v1/namespaces/{ns}/query`: forwarded and relayed as upstream answers; recorded in
    /// search history.
    QueryV1,
    /// `DELETE /v2/namespaces/{ns}` and async copies into it: forwarded; the namespace's cached
    /// documents are invalidated wholesale.
    ReplaceNamespace,
    /// `POST /v2/namespaces/{ns}`: validated, stamped, forwarded.
    Write,
    /// `POST /v1/namespaces/{ns}/schema`: reserved attributes rejected, forwarded unchanged.
    SchemaUpdate,
    /// `POST /v2/namespaces/{ns}/query` (single and multi): stable reads.
    Query,
    /// Namespace metadata (GET v1/v2 and the PATCH response): upstream body + `id` + `layer`.
    Metadata,
    /// `GET /v2/namespaces`: the enriched Layer listing.
    ListNamespaces,
    /// `GET /v2/namespaces/{ns}/documents/{id}`: cache-first fetch.
    Fetch,
    /// `POST /v2/namespaces/{ns}/documents`: cache-first batch fetch.
    BatchFetch,
    /// Search history and clickstream listings (crate::history).
    History,
    /// Snapshot jobs, history, bodies, activity and policy (crate::snapshots).
    Snapshots,
    /// Scan jobs, counts and results (crate::scans).
    Scans,
    /// Warm jobs and `hint_cache_warm` (crate::warm).
    Warm,
}

/// A classified request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    pub action: Action,
    /// Metrics label and log name (matches the emulator's fault-route names where they overlap).
    pub name: &'static str,
    /// Scope a key needs; `None` for unauthenticated routes.
    pub scope: Option<Scope>,
    pub namespace: Option<&'a str>,
}

/// Classifies a request path (without the query string).
pub fn classify<'a>(method: &Method, path: &'a str) -> Option<Route<'a>> {
    use Action::*;
    let segs: Vec<&'a str> = path.trim_start_matches('/').split('/').collect();
    let r = |action, name, scope, namespace| {
        Some(Route {
            action,
            name,
            scope: Some(scope),
            namespace,
        })
    };
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["health"]) => Some(Route {
            action: Health,
            name: "health",
            scope: None,
            namespace: None,
        }),
        ("GET", ["metrics"]) => Some(Route {
            action: Metrics,
            name: "metrics",
            scope: None,
            namespace: None,
        }),
        ("GET", ["v1", "namespaces"]) => r(UpstreamListing, "list", Scope::Read, None),
        ("GET", ["v2", "namespaces"]) => r(ListNamespaces, "list_namespaces", Scope::Read, None),
        ("GET", ["v2", "namespaces", ns, "documents", _id]) => {
            r(Fetch, "fetch", Scope::Read, Some(*ns))
        }
        ("POST", ["v2", "namespaces", ns, "documents"]) => {
            r(BatchFetch, "batch_fetch", Scope::Read, Some(*ns))
        }
        ("POST", ["v2", "namespaces", ns]) => r(Write, "write", Scope::Write, Some(*ns)),
        ("DELETE", ["v2", "namespaces", ns]) => {
            r(ReplaceNamespace, "delete", Scope::Write, Some(*ns))
        }
        ("POST", ["v2", "namespaces", ns, "async"]) => {
            r(ReplaceNamespace, "copy_async", Scope::Write, Some(*ns))
        }
        ("POST", ["v2", "namespaces", ns, "query"]) => r(Query, "query", Scope::Read, Some(*ns)),
        ("POST", ["v1", "namespaces", ns, "query"]) => {
            r(QueryV1, "query_v1", Scope::Read, Some(*ns))
        }
        ("POST", ["v2", "namespaces", ns, "explain_query"]) => {
            r(Passthrough, "explain", Scope::Read, Some(*ns))
        }
        ("GET", ["v1" | "v2", "namespaces", ns, "metadata"]) => {
            r(Metadata, "metadata", Scope::Read, Some(*ns))
        }
        ("PATCH", ["v1" | "v2", "namespaces", ns, "metadata"]) => {
            r(Metadata, "update_metadata", Scope::Write, Some(*ns))
        }
        ("GET", ["v1", "namespaces", ns, "schema"]) => r(Schema, "schema", Scope::Read, Some(*ns)),
        ("POST", ["v1", "namespaces", ns, "schema"]) => {
            r(SchemaUpdate, "update_schema", Scope::Write, Some(*ns))
        }
        ("GET", ["v1", "namespaces", ns, "hint_cache_warm"]) => {
            r(Warm, "hint_cache_warm", Scope::Read, Some(*ns))
        }
        ("POST", ["v2", "namespaces", ns, "warm"]) => r(Warm, "warm", Scope::Read, Some(*ns)),
        ("GET", ["v2", "namespaces", ns, "warm-jobs"]) => {
            r(Warm, "list_warm_jobs", Scope::Read, Some(*ns))
        }
        ("GET", ["v2", "namespaces", ns, "warm-jobs", _id]) => {
            r(Warm, "get_warm_job", Scope::Read, Some(*ns))
        }
        ("GET", ["v1" | "v2", "namespaces", ns, "search-history"]) => {
            r(History, "search_history", Scope::Read, Some(*ns))
        }
        ("GET", ["v1" | "v2", "namespaces", ns, "clickstream"]) => {
            r(History, "clickstream", Scope::Read, Some(*ns))
        }
        ("POST", ["v2", "namespaces", ns, "snapshots"]) => {
            r(Snapshots, "create_snapshot", Scope::Read, Some(*ns))
        }
        ("GET", ["v2", "namespaces", ns, "snapshot-jobs"]) => {
            r(Snapshots, "list_snapshot_jobs", Scope::Read, Some(*ns))
        }
        ("GET", ["v2", "namespaces", ns, "snapshot-jobs", _id]) => {
            r(Snapshots, "get_snapshot_job", Scope::Read, Some(*ns))
        }
        ("GET", ["v2", "namespaces", ns, "history"]) => {
            r(Snapshots, "namespace_history", Scope::Read, Some(*ns))
        }
        ("GET", ["v2", "namespaces", ns, "snapshots", _sha]) => {
            r(Snapshots, "get_snapshot", Scope::Read, Some(*ns))
        }
        ("GET", ["v2", "namespaces", ns, "snapshot-policy"]) => {
            r(Snapshots, "get_snapshot_policy", Scope::Read, Some(*ns))
        }
        ("PUT", ["v2", "namespaces", ns, "snapshot-policy"]) => {
            r(Snapshots, "put_snapshot_policy", Scope::Write, Some(*ns))
        }
        ("GET", ["v2", "activity", "snapshots"]) => {
            r(Snapshots, "snapshot_activity", Scope::Read, None)
        }
        ("POST", ["v2", "namespaces", ns, "scans"]) => {
            r(Scans, "create_scan", Scope::Read, Some(*ns))
        }
        ("GET", ["v2", "namespaces", ns, "scans"]) => {
            r(Scans, "list_scans", Scope::Read, Some(*ns))
        }
        ("GET", ["v2", "namespaces", ns, "scans", _id]) => {
            r(Scans, "get_scan", Scope::Read, Some(*ns))
        }
        ("DELETE", ["v2", "namespaces", ns, "scans", _id]) => {
            r(Scans, "delete_scan", Scope::Read, Some(*ns))
        }
        ("GET", ["v2", "namespaces", ns, "scans", _id, "results"]) => {
            r(Scans, "scan_results", Scope::Read, Some(*ns))
        }
        ("POST", ["v1", "namespaces", ns, "_debug", "recall"]) => {
            r(Passthrough, "recall", Scope::Read, Some(*ns))
        }
        ("GET", ["v1", "namespaces", ns, "operations", _token]) => {
            r(Passthrough, "operation", Scope::Read, Some(*ns))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_scopes() {
        let w = classify(&Method::POST, "/v2/namespaces/shop").unwrap();
        assert_eq!(
            (w.action, w.scope, w.namespace),
            (Action::Write, Some(Scope::Write), Some("shop"))
        );
        let q = classify(&Method::POST, "/v2/namespaces/shop/query").unwrap();
        assert_eq!((q.action, q.scope), (Action::Query, Some(Scope::Read)));
        assert_eq!(classify(&Method::GET, "/health").unwrap().scope, None);
        assert_eq!(
            classify(&Method::GET, "/v1/namespaces").unwrap().namespace,
            None
        );
        assert!(classify(&Method::GET, "/v2/namespaces/shop/nope").is_none());
        assert!(classify(&Method::PUT, "/v2/namespaces/shop").is_none());
        assert_eq!(
            classify(&Method::GET, "/v1/namespaces/a/operations/op_1")
                .unwrap()
                .name,
            "operation"
        );
    }
}
