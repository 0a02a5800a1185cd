//! The documented product's 64 families (names, kinds and labels as its catalog has them; the
//! descriptions, PromQL and alert expressions are Layer's own). Those Layer emits say so; the
//! others are [`Emission::Conditional`] with the reason.

use crate::{Alert, Entry, Kind::*};

const NS_KIND: &[&str] = &["namespace", "store_kind"];
const SCAN: &[&str] = &[
    "namespace",
    "store_kind",
    "mode",
    "selector",
    "served_by",
    "status",
];
const PIPE_NS_STATUS: &[&str] = &["pipeline_id", "namespace", "status"];
const LICENSE: &[&str] = &["license_tier", "license_sub"];
const LICENSE_SURFACE: &[&str] = &["surface", "license_tier", "license_sub"];
const AGENT: &[&str] = &["agent", "status"];
const EMBED: &[&str] = &["namespace", "store_kind", "model", "serving"];

const AEROSPIKE: &str = "not emitted yet: Layer counts document-cache lookups, hits, misses and backfills in layer_document_cache_events_total{event}, not per set";
const AEROSPIKE_TIER: &str = "emitted only by a gateway whose cache tier is Aerospike (`cache.tier: aerospike`, built with `--features aerospike`): the NVMe and disabled tiers have no such operations";
const COLD_START: &str = "the demand-triggered reconnect-and-refill cycle of a restarted document cache; Layer's cache tiers do not run one yet, so nothing emits it";
const AGENTS: &str = "emitted by the agents feature once a configured agent (layer.yaml `agents`) answers a query: a gateway with no agent, or whose agents were never asked, has no series";
const AGENT_TURNS: &str = "not emitted yet: the turns of each agent query are in the answer's `agent.turns` echo, not a histogram";
const NO_COST: &str = "not emitted yet: Layer serves cost at GET /v2/cost and /v2/cost/timeseries (a rate card times measured usage, and Cost Explorer), not as a gauge";
const NO_EMBED: &str =
    "Layer does not embed in the gateway (workers write vectors), so nothing emits it";
const LICENSE_ROUTE: &str =
    "Layer reports the license at GET /v2/license, not as a gauge yet; nothing emits it";
const NO_ENHANCE: &str =
    "Layer has no hybrid-text, multi-query or query-router enhancement, so nothing emits it";
const BILLING: &str = "Layer does not read Turbopuffer's billing fields yet; nothing emits it";
const SPLIT: &str = "not emitted yet: Layer reports the whole route in layer_request_duration_seconds{route} and the upstream part in layer_upstream_duration_seconds{route}";
const NOT_YET: &str =
    "not emitted yet: Layer reports this route in layer_request_duration_seconds{route}";

#[rustfmt::skip]
pub(crate) static ENTRIES: [Entry; 64] = [
    // cache
    Entry::new("hevlayer_cache_cold_responses_total", Counter, "cache", "cache", NS_KIND,
        "Responses a cache-backed route answered cold (503 cache_cold: the cache tier was unavailable), by namespace (bounded: 256, then _other); replaces layer_cache_cold_responses_total{route}.",
        "sum by (namespace) (rate(hevlayer_cache_cold_responses_total[5m]))")
        .alert(Alert { name: "CacheColdResponses", summary: "Cache-backed routes are answering cold: the document cache tier is unavailable or recovering.",
            expr: "sum(rate(hevlayer_cache_cold_responses_total[5m])) > 0", for_: "10m" })
        .product(),
    Entry::new("hevlayer_cache_demand_total", Counter, "cache", "cache", NS_KIND,
        "Reads that asked the document cache for a row, by namespace.",
        "sum by (namespace) (rate(hevlayer_cache_demand_total[5m]))")
        .conditional("not emitted yet: Layer counts document-cache lookups in layer_document_cache_events_total{event}").product(),
    Entry::new("hevlayer_cache_state", Gauge, "cache", "cache", &["namespace", "store_kind", "state"],
        "1 for the cache state each namespace GET /health lists is in (warm, cold), refreshed at each scrape; the first 256 namespaces by name have a series each, the rest are counted under namespace=\"_other\".",
        "sum by (state) (hevlayer_cache_state)")
        .product(),
    Entry::new("hevlayer_document_cache_cold_start_active", Gauge, "cache", "cache", &[],
        "1 while the document cache is reconnecting and refilling after a restart.",
        "max(hevlayer_document_cache_cold_start_active)")
        .alert(Alert { name: "DocumentCacheColdStartStuck", summary: "The document cache has been cold-starting for a long time.",
            expr: "max(hevlayer_document_cache_cold_start_active) == 1", for_: "15m" })
        .conditional(COLD_START).product(),
    Entry::new("hevlayer_document_cache_cold_start_seconds", Histogram, "cache", "cache", &[],
        "Duration of one reconnect-and-refill cycle of the document cache.",
        "histogram_quantile(0.9, sum by (le) (rate(hevlayer_document_cache_cold_start_seconds_bucket[1h])))")
        .alert(Alert { name: "DocumentCacheColdStartSlow", summary: "Document cache cold starts take longer than five minutes.",
            expr: "histogram_quantile(0.9, sum by (le) (rate(hevlayer_document_cache_cold_start_seconds_bucket[1h]))) > 300", for_: "0m" })
        .conditional(COLD_START).product(),
    Entry::new("hevlayer_document_cache_cold_starts_total", Counter, "cache", "cache", &[],
        "Reconnect-and-refill cycles of the document cache (after it restarted, e.g. on stop-writes).",
        "increase(hevlayer_document_cache_cold_starts_total[1h])")
        .conditional(COLD_START).product(),
    Entry::new("hevlayer_scan_documents_scanned", Histogram, "cache", "cache", SCAN,
        "Documents one scan read.", "histogram_quantile(0.5, sum by (le) (rate(hevlayer_scan_documents_scanned_bucket[1h])))")
        .conditional("not emitted yet: a scan job reports documents_scanned in its status (GET /v2/namespaces/{ns}/scans/{id}); Layer's labeled histograms have second buckets only").product(),
    Entry::new("hevlayer_scan_duration_seconds", Histogram, "cache", "cache", SCAN,
        "Duration of one scan (a count answered, an ids or values job finished); selector is filters or all, served_by the source (snapshot, cache, origin), status ok or failed.", "histogram_quantile(0.99, sum by (le, mode) (rate(hevlayer_scan_duration_seconds_bucket[5m])))")
        .product(),
    Entry::new("hevlayer_scan_total", Counter, "cache", "cache", SCAN,
        "Scans finished, by mode, selector, source and outcome.", "sum by (mode, status) (rate(hevlayer_scan_total[5m]))")
        .product(),
    Entry::new("hevlayer_snapshot_field_skipped_total", Counter, "cache", "cache", &["namespace", "store_kind", "field", "reason"],
        "Facet fields a written snapshot left out (more distinct values than gateway.snapshots.fieldCap); `field` bounded to 256 values, then _other.",
        "sum by (namespace, field) (increase(hevlayer_snapshot_field_skipped_total[1h]))")
        .alert(Alert { name: "SnapshotFieldSkipped", summary: "Snapshots are dropping a facet field that exceeds the distinct-value cap.",
            expr: "sum by (namespace, field) (increase(hevlayer_snapshot_field_skipped_total[1h])) > 0", for_: "0m" })
        .product(),
    Entry::new("hevlayer_snapshot_pruned_total", Counter, "cache", "cache", NS_KIND,
        "Snapshots the retention policy pruned after an automatic snapshot.", "sum by (namespace) (increase(hevlayer_snapshot_pruned_total[1d]))")
        .product(),
    Entry::new("layer_cache_backfill_duration_seconds", Histogram, "cache", "cache", &["set", "status"],
        "Duration of a cache backfill after a miss, by set.", "histogram_quantile(0.99, sum by (le, set) (rate(layer_cache_backfill_duration_seconds_bucket[5m])))")
        .conditional(AEROSPIKE).product(),
    Entry::new("layer_cache_backfills_total", Counter, "cache", "cache", &["set", "status"],
        "Cache backfills after a miss, by set and outcome.", "sum by (set, status) (rate(layer_cache_backfills_total[5m]))")
        .conditional(AEROSPIKE).product(),
    Entry::new("layer_cache_lookup_duration_seconds", Histogram, "cache", "cache", &["set", "result"],
        "Duration of a cache lookup, by set and result.", "histogram_quantile(0.99, sum by (le, set) (rate(layer_cache_lookup_duration_seconds_bucket[5m])))")
        .conditional(AEROSPIKE).product(),
    Entry::new("layer_cache_lookups_total", Counter, "cache", "cache", &["set", "namespace", "result"],
        "Cache lookups, by set and result (hit, miss, error).", "sum by (set) (rate(layer_cache_lookups_total{result=\"hit\"}[5m])) / sum by (set) (rate(layer_cache_lookups_total[5m]))")
        .conditional(AEROSPIKE).product(),
    Entry::new("layer_cache_payload_bytes", Histogram, "cache", "cache", &["set", "result"],
        "Size of the payloads cache lookups returned.", "histogram_quantile(0.5, sum by (le, set) (rate(layer_cache_payload_bytes_bucket[5m])))")
        .conditional(AEROSPIKE).product(),
    // cost
    Entry::new("hevlayer_cost_usd_per_hour", Gauge, "storage", "cost",
        &["provider", "service", "basis", "service_detail", "region", "site", "rate_card_version"],
        "Estimated spend rate in USD per hour, by provider and service.", "sum by (provider) (hevlayer_cost_usd_per_hour)")
        .conditional(NO_COST).product(),
    Entry::new("hevlayer_embed_compute_seconds_total", Counter, "storage", "cost", EMBED,
        "Compute seconds spent embedding, by model.", "sum by (model) (rate(hevlayer_embed_compute_seconds_total[1h]))")
        .conditional(NO_EMBED).product(),
    Entry::new("hevlayer_embed_tokens_total", Counter, "storage", "cost", EMBED,
        "Tokens embedded, by model.", "sum by (model) (rate(hevlayer_embed_tokens_total[1h]))")
        .conditional(NO_EMBED).product(),
    // fetch
    Entry::new("layer_fetch_batch_size", Histogram, "fetch", "fetch", &["operation"],
        "Ids per document fetch call.", "histogram_quantile(0.5, sum by (le) (rate(layer_fetch_batch_size_bucket[5m])))")
        .conditional(NOT_YET).product(),
    Entry::new("layer_fetch_duration_seconds", Histogram, "fetch", "fetch", &["operation", "namespace", "cache_result"],
        "Duration of a document fetch, by whether the cache served it.", "histogram_quantile(0.99, sum by (le, cache_result) (rate(layer_fetch_duration_seconds_bucket[5m])))")
        .conditional(NOT_YET).product(),
    // license
    Entry::new("hevlayer_license_degraded", Gauge, "saturation", "license", LICENSE_SURFACE,
        "1 when a surface runs degraded because of the license.", "max by (surface) (hevlayer_license_degraded)")
        .conditional(LICENSE_ROUTE).product(),
    Entry::new("hevlayer_license_expiry_seconds", Gauge, "saturation", "license", LICENSE,
        "Seconds until the license expires.", "min(hevlayer_license_expiry_seconds) / 86400")
        .conditional(LICENSE_ROUTE).product(),
    Entry::new("hevlayer_license_grace_requests_total", Counter, "saturation", "license", &[],
        "Requests served while the license was in grace.", "rate(hevlayer_license_grace_requests_total[1h])")
        .conditional(LICENSE_ROUTE).product(),
    Entry::new("hevlayer_license_grace_seconds_remaining", Gauge, "saturation", "license", LICENSE_SURFACE,
        "Seconds of grace left after the license expired.", "min(hevlayer_license_grace_seconds_remaining) / 86400")
        .conditional(LICENSE_ROUTE).product(),
    Entry::new("hevlayer_license_valid", Gauge, "saturation", "license", LICENSE,
        "1 when the license verifies and has not expired.", "min(hevlayer_license_valid)")
        .conditional(LICENSE_ROUTE).product(),
    // pipeline
    Entry::new("layer_pipeline_failed_total", Counter, "pipeline", "pipeline", &["pipeline_id", "reason"],
        "Pipeline documents moved to failed, by reason.", "sum by (pipeline_id, reason) (increase(layer_pipeline_failed_total[1h]))")
        .alert(Alert { name: "PipelineDocumentsFailing", summary: "A pipeline is failing documents.",
            expr: "sum by (pipeline_id) (increase(layer_pipeline_failed_total[15m])) > 0", for_: "15m" })
        .product(),
    Entry::new("layer_pipeline_indexed_total", Counter, "pipeline", "pipeline", &["pipeline_id"],
        "Pipeline documents that reached indexed.", "sum by (pipeline_id) (rate(layer_pipeline_indexed_total[5m]))")
        .product(),
    Entry::new("layer_pipeline_stage_count", Gauge, "pipeline", "pipeline", &["pipeline_id", "stage"],
        "Pipeline documents by stage (refreshed from PostgreSQL every 10 s; KEDA scales workers on stage=\"pending\").",
        "sum by (stage) (layer_pipeline_stage_count)")
        .product(),
    Entry::new("layer_stage_duration_seconds", Histogram, "pipeline", "pipeline", &["pipeline_id", "from_stage", "to_stage"],
        "Latency of the call that moved pipeline documents between stages.", "histogram_quantile(0.99, sum by (le, to_stage) (rate(layer_stage_duration_seconds_bucket[5m])))")
        .product(),
    Entry::new("layer_stage_transitions_total", Counter, "pipeline", "pipeline", &["pipeline_id", "from_stage", "to_stage", "status"],
        "Stage moves of pipeline documents (claims, stage moves, vectors), by outcome.", "sum by (from_stage, to_stage) (rate(layer_stage_transitions_total{status=\"ok\"}[5m]))")
        .product(),
    // query
    Entry::new("hevlayer_agent_queries_total", Counter, "query", "query", &["agent", "status", "deadline_hit"],
        "Agent queries, by outcome.", "sum by (agent, status) (rate(hevlayer_agent_queries_total[5m]))")
        .conditional(AGENTS).product(),
    Entry::new("hevlayer_agent_query_duration_seconds", Histogram, "query", "query", AGENT,
        "Duration of an agent query.", "histogram_quantile(0.99, sum by (le, agent) (rate(hevlayer_agent_query_duration_seconds_bucket[5m])))")
        .conditional(AGENTS).product(),
    Entry::new("hevlayer_agent_tokens_total", Counter, "query", "query", &["agent", "turn", "token_type"],
        "Model tokens agent queries used.", "sum by (agent, token_type) (rate(hevlayer_agent_tokens_total[1h]))")
        .conditional(AGENTS).product(),
    Entry::new("hevlayer_agent_turns", Histogram, "query", "query", AGENT,
        "Turns per agent query.", "histogram_quantile(0.9, sum by (le, agent) (rate(hevlayer_agent_turns_bucket[1h])))")
        .conditional(AGENT_TURNS).product(),
    Entry::new("hevlayer_hybrid_text_queries_total", Counter, "query", "query", &["namespace", "store_kind", "status"],
        "Queries with a hybrid text leg.", "sum by (namespace) (rate(hevlayer_hybrid_text_queries_total[5m]))")
        .conditional(NO_ENHANCE).product(),
    Entry::new("hevlayer_hybrid_text_tokens", Histogram, "query", "query", NS_KIND,
        "Tokens in a hybrid query's text leg.", "histogram_quantile(0.5, sum by (le) (rate(hevlayer_hybrid_text_tokens_bucket[1h])))")
        .conditional(NO_ENHANCE).product(),
    Entry::new("hevlayer_multi_query_legs", Histogram, "query", "query", NS_KIND,
        "Legs per multi-query.", "histogram_quantile(0.9, sum by (le) (rate(hevlayer_multi_query_legs_bucket[1h])))")
        .conditional(NO_ENHANCE).product(),
    Entry::new("hevlayer_multi_query_total", Counter, "query", "query", &["namespace", "store_kind", "status"],
        "Multi-queries, by outcome.", "sum by (status) (rate(hevlayer_multi_query_total[5m]))")
        .conditional(NO_ENHANCE).product(),
    Entry::new("hevlayer_multi_query_upstream_calls", Histogram, "query", "query", NS_KIND,
        "Upstream calls one multi-query made.", "histogram_quantile(0.9, sum by (le) (rate(hevlayer_multi_query_upstream_calls_bucket[1h])))")
        .conditional(NO_ENHANCE).product(),
    Entry::new("hevlayer_query_router_decisions_total", Counter, "query", "query", &["namespace", "store_kind", "route", "executed"],
        "Query-router decisions, by route taken.", "sum by (route) (rate(hevlayer_query_router_decisions_total[5m]))")
        .conditional(NO_ENHANCE).product(),
    Entry::new("hevlayer_tpuf_billable_bytes_queried_total", Counter, "query", "query", NS_KIND,
        "Bytes Turbopuffer billed as queried.", "sum by (namespace) (rate(hevlayer_tpuf_billable_bytes_queried_total[1h]))")
        .conditional(BILLING).product(),
    Entry::new("hevlayer_tpuf_billable_bytes_returned_total", Counter, "query", "query", NS_KIND,
        "Bytes Turbopuffer billed as returned.", "sum by (namespace) (rate(hevlayer_tpuf_billable_bytes_returned_total[1h]))")
        .conditional(BILLING).product(),
    Entry::new("layer_head_duration_seconds", Histogram, "query", "query", PIPE_NS_STATUS,
        "Wall-clock of a namespace metadata call (GET /v1|v2/namespaces/{ns}/metadata) through layer; `namespace` bounded as for queries, `pipeline_id` empty.",
        "histogram_quantile(0.99, sum by (le) (rate(layer_head_duration_seconds_bucket[5m])))")
        .product(),
    Entry::new("layer_list_duration_seconds", Histogram, "query", "query", PIPE_NS_STATUS,
        "Wall-clock of a namespace listing (GET /v1/namespaces, GET /v2/namespaces) through layer; `namespace` and `pipeline_id` are empty (a listing names no namespace).",
        "histogram_quantile(0.99, sum by (le) (rate(layer_list_duration_seconds_bucket[5m])))")
        .product(),
    Entry::new("layer_query_duration_seconds", Histogram, "query", "query", PIPE_NS_STATUS,
        "Total wall-clock for a query through layer. `namespace` is bounded (256 per shard thread, then `_other`; none for 401/403); `pipeline_id` is empty (queries do not name a pipeline in Layer).",
        "histogram_quantile(0.99, sum by (le) (rate(layer_query_duration_seconds_bucket[5m])))")
        .alert(Alert { name: "QueryP99High", summary: "Query P99 through Layer is above one second.",
            expr: "histogram_quantile(0.99, sum by (le) (rate(layer_query_duration_seconds_bucket[5m]))) > 1", for_: "10m" })
        .product(),
    Entry::new("layer_query_overhead_seconds", Histogram, "query", "query", PIPE_NS_STATUS,
        "Time a query spent in Layer itself (total minus upstream).", "histogram_quantile(0.99, sum by (le) (rate(layer_query_overhead_seconds_bucket[5m])))")
        .conditional(SPLIT).product(),
    Entry::new("layer_query_shape_total", Counter, "query", "query", &["pipeline_id", "namespace", "has_filter", "has_rank_by", "status"],
        "Queries by shape (filters, rank_by).", "sum by (has_filter, has_rank_by) (rate(layer_query_shape_total[5m]))")
        .conditional("not emitted yet: Layer does not classify query bodies on the hot path").product(),
    Entry::new("layer_query_tpuf_seconds", Histogram, "query", "query", PIPE_NS_STATUS,
        "Time a query spent waiting on Turbopuffer.", "histogram_quantile(0.99, sum by (le) (rate(layer_query_tpuf_seconds_bucket[5m])))")
        .conditional(SPLIT).product(),
    // saturation
    Entry::new("layer_aerospike_connection_state", Gauge, "saturation", "saturation", &["state"],
        "1 for the Aerospike client's connection state.", "max by (state) (layer_aerospike_connection_state)")
        .alert(Alert { name: "AerospikeDisconnected", summary: "The gateway lost its Aerospike cache cluster.",
            expr: "max(layer_aerospike_connection_state{state=\"connected\"}) < 1", for_: "5m" })
        .conditional("not emitted yet: the cache tier's connection state is in GET /health (cache.state, reconnect_generation); only an Aerospike tier has one").product(),
    Entry::new("layer_aerospike_inflight", Gauge, "saturation", "saturation", &[],
        "Aerospike operations in flight.", "max(layer_aerospike_inflight)")
        .conditional(AEROSPIKE_TIER).product(),
    Entry::new("layer_pg_pool_connections", Gauge, "saturation", "saturation", &["state"],
        "The pipeline queue's PostgreSQL pool: connections by state (busy, idle) and calls waiting for one (waiting); refreshed every 10 s, samples only with gateway.queue.url set.",
        "sum by (state) (layer_pg_pool_connections)")
        .alert(Alert { name: "PostgresPoolExhausted", summary: "Calls are queueing for a PostgreSQL connection: the gateway's pool is exhausted.",
            expr: "max(layer_pg_pool_connections{state=\"waiting\"}) > 0", for_: "5m" })
        .product(),
    Entry::new("layer_tpuf_inflight", Gauge, "saturation", "saturation", &[],
        "Exchanges with the vector store (Turbopuffer) in flight, over every shard.", "max(layer_tpuf_inflight)")
        .product(),
    // storage
    Entry::new("hevlayer_tpuf_billable_bytes_written_total", Counter, "storage", "storage", NS_KIND,
        "Bytes Turbopuffer billed as written.", "sum by (namespace) (rate(hevlayer_tpuf_billable_bytes_written_total[1h]))")
        .conditional(BILLING).product(),
    Entry::new("hevlayer_tpuf_logical_bytes", Gauge, "storage", "storage", NS_KIND,
        "Logical bytes a namespace holds in Turbopuffer.", "sum by (namespace) (hevlayer_tpuf_logical_bytes)")
        .conditional(BILLING).product(),
    Entry::new("layer_aerospike_op_duration_seconds", Histogram, "storage", "storage", &["operation", "set", "status"],
        "Duration of an Aerospike operation, by outcome; status=\"aerospike_stop_writes\" is the stop-writes condition (failure-modes runbook).",
        "sum(rate(layer_aerospike_op_duration_seconds_count{status=\"aerospike_stop_writes\"}[5m]))")
        .alert(Alert { name: "AerospikeStopWrites", summary: "The document cache rejects writes (stop-writes); pipeline chunk reads fall back to S3 until it restarts.",
            expr: "sum(rate(layer_aerospike_op_duration_seconds_count{status=\"aerospike_stop_writes\"}[5m])) > 0", for_: "5m" })
        .conditional(AEROSPIKE_TIER).product(),
    Entry::new("layer_pg_query_duration_seconds", Histogram, "storage", "storage", &["query_name", "status"],
        "Duration of a PostgreSQL query, by query.", "histogram_quantile(0.99, sum by (le, query_name) (rate(layer_pg_query_duration_seconds_bucket[5m])))")
        .conditional("not emitted yet: pipeline and UDF latency including PostgreSQL is in layer_pipeline_operation_duration_seconds and layer_stage_duration_seconds").product(),
    Entry::new("layer_s3_op_duration_seconds", Histogram, "storage", "storage", &["operation", "status"],
        "Duration of an object-store operation.", "histogram_quantile(0.99, sum by (le, operation) (rate(layer_s3_op_duration_seconds_bucket[5m])))")
        .conditional("not emitted yet: object-store writes are counted by layer_search_history_objects_total and layer_snapshot_events_total").product(),
    // udf
    Entry::new("layer_udf_queue_depth", Gauge, "pipeline", "udf", &["udf"],
        "UDF items waiting to be claimed (refreshed every 10 s; KEDA scales workers on it).", "sum by (udf) (layer_udf_queue_depth)")
        .product(),
    Entry::new("layer_udf_stage_count", Gauge, "pipeline", "udf", &["udf", "stage"],
        "UDF items by stage.", "sum by (stage) (layer_udf_stage_count)")
        .product(),
    // upsert
    Entry::new("layer_upsert_batch_size", Histogram, "upsert", "upsert", &["pipeline_id", "namespace"],
        "Rows per write.", "histogram_quantile(0.5, sum by (le) (rate(layer_upsert_batch_size_bucket[5m])))")
        .conditional("not emitted yet: Layer does not count rows on the write path").product(),
    Entry::new("layer_upsert_duration_seconds", Histogram, "upsert", "upsert", PIPE_NS_STATUS,
        "Total wall-clock for a write (POST /v2/namespaces/{ns}) through layer; `namespace` bounded as for queries, `pipeline_id` empty (pipeline vectors are in layer_stage_duration_seconds).",
        "histogram_quantile(0.99, sum by (le) (rate(layer_upsert_duration_seconds_bucket[5m])))")
        .alert(Alert { name: "UpsertP99High", summary: "Write P99 through Layer is above two seconds.",
            expr: "histogram_quantile(0.99, sum by (le) (rate(layer_upsert_duration_seconds_bucket[5m]))) > 2", for_: "10m" })
        .product(),
    Entry::new("layer_upsert_overhead_seconds", Histogram, "upsert", "upsert", PIPE_NS_STATUS,
        "Time a write spent in Layer itself.", "histogram_quantile(0.99, sum by (le) (rate(layer_upsert_overhead_seconds_bucket[5m])))")
        .conditional(SPLIT).product(),
    Entry::new("layer_upsert_tpuf_seconds", Histogram, "upsert", "upsert", PIPE_NS_STATUS,
        "Time a write spent waiting on Turbopuffer.", "histogram_quantile(0.99, sum by (le) (rate(layer_upsert_tpuf_seconds_bucket[5m])))")
        .conditional(SPLIT).product(),
];
