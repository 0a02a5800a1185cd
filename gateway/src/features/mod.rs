//! Every feature of the gateway, each in its own module: it declares its routes and owns its
//! state, and stands on `crate::core` and `crate::sources` only — a feature never imports
//! another feature. `crate::app` builds them and wires the few handles one feature offers
//! another (the [`crate::core::record::Recorder`] history implements, the background-warm hook
//! of [`crate::sources::warmth`]).
//!
//! | feature | routes |
//! |---|---|
//! | [`passthrough`] | forwarded Turbopuffer routes: writes, deletes, copies, metadata, schema, listing, explain, recall, operations |
//! | [`query`] | `POST /v2/namespaces/{ns}/query`, legacy `POST /v1/namespaces/{ns}/query` |
//! | [`agents`] | `POST /v2/agents/{name}/query`: plan, federated query, grade, maybe a second turn |
//! | [`federated`] | `POST /v2/query`: one Layer query over several namespaces, fused with RRF |
//! | [`fetch`] | documents by id, single and batch |
//! | [`namespaces`] | the enriched `GET /v2/namespaces` listing |
//! | [`history`] | search history and clickstream listings (and the recorder behind them) |
//! | [`snapshots`] | snapshot jobs, history, bodies, activity, policies; the automatic writer |
//! | [`scans`] | count, ids and values scans |
//! | [`warm`] | warm jobs and `hint_cache_warm` |
//! | [`pipelines`] | `/v2/pipelines…`: the staging queue on PostgreSQL, chunks, vectors |
//! | [`keys`] | `/v2/keys…`: minted API keys (mint, list, get, revoke, delete, authenticate) and the loop feeding the request path's key map |
//! | [`stores`] | `/v2/vectorstores…`, `/v2/warehouses…`, `/v2/namespaces/{ns}/capabilities`: the stores and warehouses, read-only, with capability reports |
//! | [`udfs`] | `/v2/udfs…`: UDF registry, discovery, the item queue (on the pipelines' queue), completions, push dispatch |
//! | [`blobs`] | `/v1/namespaces/{ns}/blobs…`: content-addressed bytes in the object store, the cache tier in front |
//! | [`import`] | `POST /v2/namespaces/{ns}/init` and `/import`: a namespace's Layer state (schema version, shard count; durable) and Arrow IPC bulk import through the write path |
//! | [`checkpoints`] | `/v2/namespaces/{ns}/checkpoints…`: labels pinned to a namespace's snapshot, durable in the object store |
//! | [`license`] | `GET /v2/license`: the signed license file's state (reported, not enforced) |
//! | [`cost`] | `GET /v2/cost`, `/v2/cost/timeseries`, `/v2/cost/rate-card`: a rate card times measured usage, and Cost Explorer |
//! | [`metrics`] | `/v2/metrics/catalog…` (the metric catalog), `/v2/metrics/query…` (PromQL forwarded to VictoriaMetrics) |
//! | [`ops`] | `/health`, `/metrics` |

pub mod agents;
pub mod blobs;
pub mod checkpoints;
pub mod cost;
pub mod federated;
pub mod fetch;
pub mod history;
pub mod import;
pub mod keys;
pub mod license;
pub mod metrics;
pub mod namespaces;
pub mod ops;
pub mod passthrough;
pub mod pipelines;
pub mod query;
pub mod scans;
pub mod snapshots;
pub mod stores;
pub mod udfs;
pub mod warm;
