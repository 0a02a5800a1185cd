//! Namespace init and Arrow import end to end (contract §1.11, §2.18): init answers the
//! metadata `layer` block, records a shard count that the write path and scatter/gather honour
//! and that survives a restart, refuses a different count (409) and a sharded init of a
//! namespace with rows (409); a 100k-row Arrow IPC stream imported through the gateway equals the
//! same rows written as JSON, compared with queries; import writes are stamped, sharded and
//! invalidate the document cache; a bad stream answers 422 naming the batch, with the rows
//! already written; both routes need the `write` scope.

use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, ListBuilder, StringBuilder};
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{Field, Schema};
use bytes::Bytes;
use http::Method;
use layer_e2e::{Reply, Stack, configured_key, now_ms, temp_dir};
use layer_gateway::config::{AuthMode, Scope};
use serde_json::{Value, json};

const ARROW: &str = "application/vnd.apache.arrow.stream";
const ATTRS: [&str; 6] = ["vector", "title", "n", "score", "ok", "tags"];

fn vector(i: u64) -> [f32; 4] {
    [
        (i % 97) as f32 * 0.5,
        (i % 13) as f32 / 8.0,
        -((i % 7) as f32) * 0.25,
        1.0 / (1 + i % 5) as f32,
    ]
}

fn title(i: u64) -> Option<String> {
    (!i.is_multiple_of(10)).then(|| format!("doc {i}"))
}

/// Rows `ids` as one record batch (`title_of` names each row's title).
fn batch(ids: std::ops::Range<u64>, title_of: &dyn Fn(u64) -> Option<String>) -> RecordBatch {
    let mut vec = FixedSizeListBuilder::new(Float32Builder::new(), 4);
    let mut tags = ListBuilder::new(StringBuilder::new());
    for i in ids.clone() {
        vec.values().append_slice(&vector(i));
        vec.append(true);
        tags.append_value([Some(format!("t{}", i % 3)), Some(format!("u{}", i % 5))]);
    }
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(UInt64Array::from_iter_values(ids.clone()))),
        ("vector", Arc::new(vec.finish())),
        (
            "title",
            Arc::new(StringArray::from_iter(ids.clone().map(title_of))),
        ),
        (
            "n",
            Arc::new(Int64Array::from_iter_values(
                ids.clone().map(|i| i as i64 - 50_000),
            )),
        ),
        (
            "score",
            Arc::new(Float64Array::from_iter_values(
                ids.clone().map(|i| i as f64 / 3.0),
            )),
        ),
        (
            "ok",
            Arc::new(BooleanArray::from_iter(
                ids.clone().map(|i| Some(i.is_multiple_of(2))),
            )),
        ),
        ("tags", Arc::new(tags.finish())),
    ];
    RecordBatch::try_from_iter(cols).unwrap()
}

/// The same row as JSON.
fn json_row(i: u64) -> Value {
    json!({
        "id": i, "vector": vector(i), "title": title(i), "n": i as i64 - 50_000,
        "score": i as f64 / 3.0, "ok": i.is_multiple_of(2),
        "tags": [format!("t{}", i % 3), format!("u{}", i % 5)],
    })
}

/// An Arrow IPC stream of `batches`.
fn stream(batches: &[RecordBatch]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &batches[0].schema()).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    drop(w);
    out
}

fn import(stack: &Stack, ns: &str, body: Vec<u8>) -> Reply {
    stack.gw_with(
        Method::POST,
        &format!("/v2/namespaces/{ns}/import"),
        &[("content-type", ARROW)],
        body,
    )
}

fn init(stack: &Stack, ns: &str, body: Value) -> (u16, Value) {
    let r = stack.gw(
        Method::POST,
        &format!("/v2/namespaces/{ns}/init"),
        body.to_string(),
    );
    (
        r.status.as_u16(),
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

fn metadata_layer(stack: &Stack, ns: &str) -> Value {
    let r = stack.gw(
        Method::GET,
        &format!("/v2/namespaces/{ns}/metadata"),
        Bytes::new(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["layer"].clone()
}

/// Every row of `ns` in id order, with `ATTRS`, paged 1000 at a time through the gateway.
fn all_rows(stack: &Stack, ns: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let mut q = json!({"rank_by": ["id", "asc"], "top_k": 1000, "include_attributes": ATTRS});
        if let Some(last) = out.last() {
            q["filters"] = json!(["id", "Gt", last["id"]]);
        }
        let r = stack.gw(
            Method::POST,
            &format!("/v2/namespaces/{ns}/query"),
            q.to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let rows = r.json()["rows"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            return out;
        }
        out.extend(rows);
    }
}

/// The writes the emulator received for `ns` (their JSON bodies).
fn upstream_writes(stack: &Stack, ns: &str) -> Vec<Value> {
    let path = format!("/v2/namespaces/{ns}");
    stack
        .upstream_requests()
        .into_iter()
        .filter(|r| r["method"] == "POST" && r["path"] == path.as_str())
        .filter_map(|r| match &r["body"] {
            Value::String(s) => serde_json::from_str(s).ok(),
            v => Some(v.clone()),
        })
        .collect()
}

#[test]
fn a_100k_row_import_equals_the_same_rows_written_as_json() {
    let stack = Stack::start();
    let n = 100_000u64;
    // Ten record batches of 10k rows: each is written as ten upstream writes of 1,000 rows.
    let batches: Vec<RecordBatch> = (0..10)
        .map(|b| batch(b * 10_000..(b + 1) * 10_000, &title))
        .collect();
    let body = stream(&batches);
    let (bytes, started) = (body.len(), std::time::Instant::now());
    let r = import(&stack, "imp-arrow", body);
    // Reported, never asserted (no timing assertions).
    eprintln!(
        "import: {n} rows, {bytes} bytes of Arrow in {:?}",
        started.elapsed()
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"namespace": "imp-arrow", "rows_written": n, "batches": 10, "writes": 100})
    );
    let started = std::time::Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(5_000) {
        let rows: Vec<Value> = chunk.iter().map(|&i| json_row(i)).collect();
        stack.write(
            "imp-json",
            json!({"upsert_rows": rows, "distance_metric": "cosine_distance"}),
        );
    }
    eprintln!("JSON: {n} rows in {:?}", started.elapsed());
    let after = now_ms();
    stack.wait_watermark("imp-arrow", after);
    stack.wait_watermark("imp-json", after);
    let imported = all_rows(&stack, "imp-arrow");
    let written = all_rows(&stack, "imp-json");
    assert_eq!(imported.len(), n as usize);
    // Not vacuous: the rows carry every attribute (a null title is absent on both sides).
    assert_eq!(imported[1]["title"], "doc 1");
    assert_eq!(imported[1]["tags"], json!(["t1", "u1"]));
    assert_eq!(imported[1]["vector"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        imported, written,
        "the imported rows differ from the JSON-written ones"
    );
}

#[test]
fn init_answers_the_layer_block_shards_writes_and_survives_a_restart() {
    let dir = temp_dir("import-init");
    let keep = dir.clone();
    let mut stack = Stack::start_with(move |c| c.gateway.data_dir = keep);
    let (s, v) = init(
        &stack,
        "imp-sh",
        json!({"schema_version": 1, "shard_count": 4}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["namespace"], "imp-sh");
    let layer = &v["layer"];
    for (k, want) in [
        ("schema_version", json!(1)),
        ("init_state", json!("ready")),
        ("init_lag_rows", json!(0)),
        ("shard_count", json!(4)),
        ("shard_state", json!("ready")),
        ("shard_lag_rows", json!(0)),
        ("scatter_gather_active", json!(true)),
        ("is_stable", json!(false)),
    ] {
        assert_eq!(layer[k], want, "{k}: {layer}");
    }
    // Idempotent; a different count is refused.
    assert_eq!(init(&stack, "imp-sh", json!({"schema_version": 1})).0, 200);
    let (s, v) = init(&stack, "imp-sh", json!({"shard_count": 2}));
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("shard_count_conflict")),
        "{v}"
    );
    assert_eq!(init(&stack, "imp-sh", json!({"schema_version": 2})).0, 422);
    assert_eq!(init(&stack, "imp-sh", json!({"shard_count": 0})).0, 422);

    // Imported rows are stamped and carry their shard; queries gather every shard.
    let r = import(&stack, "imp-sh", stream(&[batch(0..300, &title)]));
    assert_eq!(r.status, 200, "{}", r.text());
    let writes = upstream_writes(&stack, "imp-sh");
    assert_eq!(writes.len(), 1, "one slice of 300 rows");
    let cols = &writes[0]["upsert_columns"];
    assert_eq!(cols["id"].as_array().map(Vec::len), Some(300));
    assert!(cols["_hevlayer_upserted_at"].is_array(), "{}", writes[0]);
    let shards: std::collections::BTreeSet<u64> = cols["_hevlayer_shard"]
        .as_array()
        .expect("a shard column")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(shards, (0..4).collect(), "300 ids cover the 4 shards");
    stack.wait_watermark("imp-sh", now_ms());
    stack.clear_requests();
    assert_eq!(all_rows(&stack, "imp-sh").len(), 300);
    // The queries were scattered: one leg per shard, each filtered on its shard.
    let legs = stack
        .upstream_requests()
        .into_iter()
        .filter(|r| r["path"] == "/v2/namespaces/imp-sh/query")
        .filter(|r| {
            r["body"]
                .as_str()
                .is_some_and(|b| b.contains("_hevlayer_shard"))
        })
        .count();
    assert!(legs >= 4, "{legs} shard legs");
    assert_eq!(metadata_layer(&stack, "imp-sh")["shard_count"], 4);

    // A namespace with rows cannot be sharded after the fact; unsharded init is fine.
    stack.write("imp-full", json!({"upsert_rows": [{"id": 1, "a": 1}]}));
    let (s, v) = init(&stack, "imp-full", json!({"shard_count": 2}));
    assert_eq!(
        (s, v["error"].as_str()),
        (409, Some("namespace_not_empty")),
        "{v}"
    );
    let (s, v) = init(&stack, "imp-full", json!({}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["layer"]["shard_count"].clone(),
            v["layer"]["shard_state"].clone()
        ),
        (json!(1), json!("unsharded"))
    );

    // A restart over the same data directory keeps the layout: writes are still sharded.
    stack.restart_gateway(move |c| c.gateway.data_dir = dir, None);
    let layer = metadata_layer(&stack, "imp-sh");
    assert_eq!(
        (
            layer["shard_count"].clone(),
            layer["scatter_gather_active"].clone()
        ),
        (json!(4), json!(true)),
        "{layer}"
    );
    stack.clear_requests();
    stack.write(
        "imp-sh",
        json!({"upsert_rows": [{"id": 1000, "title": "late"}]}),
    );
    let writes = upstream_writes(&stack, "imp-sh");
    assert!(
        writes[0]["upsert_rows"][0]["_hevlayer_shard"].is_u64(),
        "{}",
        writes[0]
    );
    stack.wait_watermark("imp-sh", now_ms());
    assert_eq!(all_rows(&stack, "imp-sh").len(), 301);
}

#[test]
fn a_bad_stream_answers_422_naming_the_batch_with_the_rows_written() {
    let stack = Stack::start();
    // Ids declared nullable; batch 1 has a null id at its row 1200: its first slice of 1,000
    // rows is written before the null one is found.
    let nullable_ids = |b: RecordBatch, null_at: Option<u64>| {
        let schema = b.schema();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let mut cols = b.columns().to_vec();
        let ids = cols[0].as_any().downcast_ref::<UInt64Array>().unwrap();
        cols[0] = Arc::new(UInt64Array::from_iter(
            ids.values()
                .iter()
                .map(|&i| (Some(i) != null_at).then_some(i)),
        ));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    };
    let body = stream(&[
        nullable_ids(batch(0..1_500, &title), None),
        nullable_ids(batch(1_500..3_000, &title), Some(2_700)),
    ]);
    let r = import(&stack, "imp-bad", body);
    assert_eq!(r.status, 422, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"], "validation_error");
    assert_eq!(
        (v["batch"].clone(), v["rows_written"].clone()),
        (json!(1), json!(2_500)),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("id is null"), "{v}");
    stack.wait_watermark("imp-bad", now_ms());
    assert_eq!(all_rows(&stack, "imp-bad").len(), 2_500);

    // A stream cut inside batch 2: batches 0 and 1 are written, the answer names batch 2.
    let full = stream(&[
        batch(0..100, &title),
        batch(100..200, &title),
        batch(200..300, &title),
    ]);
    let cut = full[..full.len() - 200].to_vec();
    let r = import(&stack, "imp-cut", cut);
    assert_eq!(r.status, 422, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["batch"].clone(), v["rows_written"].clone()),
        (json!(2), json!(200)),
        "{v}"
    );

    // Not Arrow at all; a stream without an id column: nothing written, batch 0.
    let r = import(&stack, "imp-cut", b"{\"upsert_rows\": []}".to_vec());
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["rows_written"], 0);
    let no_id =
        RecordBatch::try_from_iter([("name", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)])
            .unwrap();
    let r = import(&stack, "imp-noid", stream(&[no_id]));
    assert_eq!(r.status, 422, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["batch"].clone(), v["rows_written"].clone()),
        (json!(0), json!(0)),
        "{v}"
    );
    assert!(
        v["message"].as_str().unwrap().contains("no `id` column"),
        "{v}"
    );

    // A large stream refused at its first message: the rest of the upload is read (within
    // `maxBodyBytes`) so that the client gets the 422, not a reset connection.
    let names: Vec<String> = (0..100_000).map(|i| format!("name-{i:010}")).collect();
    let big =
        RecordBatch::try_from_iter([("name", Arc::new(StringArray::from(names)) as ArrayRef)])
            .unwrap();
    let body = stream(&vec![big; 12]);
    assert!(body.len() > 16 << 20, "{} bytes", body.len());
    let r = import(&stack, "imp-noid", body);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["batch"], 0);
}

#[test]
fn an_import_invalidates_cached_documents() {
    let stack = Stack::start();
    stack.write(
        "imp-cache",
        json!({"upsert_rows": [{"id": 7, "title": "old", "vector": vector(7)}],
               "distance_metric": "cosine_distance"}),
    );
    let fetch = || {
        stack.gw(
            Method::GET,
            "/v2/namespaces/imp-cache/documents/7",
            Bytes::new(),
        )
    };
    assert_eq!(fetch().json()["attributes"]["title"], "old");
    // The first fetch backfills its own shard's hot cache at once and the shared tier in the
    // background; the stack runs 2 shards, so the next request can reach the other shard before
    // that tier write lands (a miss, by design). Fetch until the document is served cached.
    let mut cached = false;
    for _ in 0..100 {
        let r = fetch();
        assert_eq!(r.json()["attributes"]["title"], "old");
        if r.headers["x-layer-cache"] == "hit" {
            cached = true;
            break;
        }
        layer_e2e::pause(std::time::Duration::from_millis(20));
    }
    assert!(cached, "document 7 was never served from the cache");
    let new_title = |i: u64| Some(format!("new {i}"));
    let r = import(&stack, "imp-cache", stream(&[batch(5..10, &new_title)]));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = fetch();
    assert_eq!(r.json()["attributes"]["title"], "new 7", "{}", r.text());
}

#[test]
fn init_and_import_need_the_write_scope() {
    let stack = Stack::start_with(|c| {
        c.vector_store.inbound_auth.mode = AuthMode::Keys;
        c.vector_store.inbound_auth.keys = vec![
            configured_key("reader", vec![Scope::Read], &[]),
            configured_key("writer", vec![Scope::Write], &["imp-*"]),
        ];
    });
    let body = stream(&[batch(0..10, &title)]);
    let call = |key: &str, path: &str, ct: &str, body: Bytes| {
        let bearer = format!("Bearer {key}");
        stack
            .gw_with(
                Method::POST,
                path,
                &[("authorization", &bearer), ("content-type", ct)],
                body,
            )
            .status
            .as_u16()
    };
    let init_body = || Bytes::from(json!({"schema_version": 1}).to_string());
    let arrow = || Bytes::from(body.clone());
    let json_ct = "application/json";
    assert_eq!(
        call("reader", "/v2/namespaces/imp-a/init", json_ct, init_body()),
        403
    );
    assert_eq!(
        call("reader", "/v2/namespaces/imp-a/import", ARROW, arrow()),
        403
    );
    assert_eq!(
        call("writer", "/v2/namespaces/other/import", ARROW, arrow()),
        403
    );
    assert_eq!(
        call("writer", "/v2/namespaces/imp-a/init", json_ct, init_body()),
        200
    );
    assert_eq!(
        call("writer", "/v2/namespaces/imp-a/import", ARROW, arrow()),
        200
    );
}
