//! Tests of applying writes: upserts, patches, deletes, conditions, filter writes, vectors,
//! the live service's deserialization texts and attribute limits.

use super::*;
use crate::error::parse_body;

const LIMITS: WriteLimits = WriteLimits {
    patch_by_filter_rows: 2,
    delete_by_filter_rows: 5,
    backpressure_bytes: u64::MAX,
};

fn write(st: &mut NsState, body: Value) -> ApiResult<Value> {
    let bytes = body.to_string().into_bytes();
    let req: WriteRequest = parse_body(&bytes)?;
    apply(st, req, bytes.len() as u64, LIMITS, 1, true)
}

#[test]
fn upsert_patch_delete_round() {
    let mut st = NsState::new(0);
    let r = write(&mut st, json!({"upsert_rows": [{"id": 1, "a": "x"}, {"id": 2, "a": "y"}], "return_affected_ids": true})).unwrap();
    assert_eq!(r["rows_upserted"], 2);
    assert_eq!(r["upserted_ids"], json!([1, 2]));
    let r = write(
        &mut st,
        json!({"patch_rows": [{"id": 1, "b": 3}, {"id": 9, "b": 4}], "deletes": [2]}),
    )
    .unwrap();
    assert_eq!(
        (r["rows_patched"].clone(), r["rows_deleted"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(st.docs.len(), 1);
    assert_eq!(st.docs[&Id::Uint(1)].attrs["b"], 3);
    assert_eq!(st.unindexed_rows, 4);
}

#[test]
fn duplicate_ids_and_failed_writes_change_nothing() {
    let mut st = NsState::new(0);
    let err = write(&mut st, json!({"upsert_rows": [{"id": 1}, {"id": 1}]})).unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(st.docs.is_empty() && st.wal.is_empty());
}

#[test]
fn conditions_with_ref_new() {
    let mut st = NsState::new(0);
    write(&mut st, json!({"upsert_rows": [{"id": 1, "v": 5}]})).unwrap();
    let r = write(&mut st, json!({"upsert_rows": [{"id": 1, "v": 3}, {"id": 2, "v": 1}], "upsert_condition": ["v", "Lt", {"$ref_new": "v"}]})).unwrap();
    assert_eq!(
        r["rows_upserted"], 1,
        "id 1 is skipped (3 is not newer), id 2 is inserted"
    );
    assert_eq!(st.docs[&Id::Uint(1)].attrs["v"], 5);
}

#[test]
fn filter_writes_respect_limits() {
    let mut st = NsState::new(0);
    write(
        &mut st,
        json!({"upsert_columns": {"id": [1, 2, 3], "c": ["a", "a", "a"]}}),
    )
    .unwrap();
    let err = write(
        &mut st,
        json!({"patch_by_filter": {"filters": ["c", "Eq", "a"], "patch": {"c": "b"}}}),
    )
    .unwrap_err();
    assert_eq!(err.status(), 400);
    let r = write(&mut st, json!({"patch_by_filter": {"filters": ["c", "Eq", "a"], "patch": {"c": "b"}}, "patch_by_filter_allow_partial": true})).unwrap();
    assert_eq!(
        (r["rows_patched"].clone(), r["rows_remaining"].clone()),
        (json!(2), json!(true))
    );
}

#[test]
fn vector_rules() {
    let mut st = NsState::new(0);
    let err = write(
        &mut st,
        json!({"upsert_rows": [{"id": 1, "vector": [0.1, 0.2]}]}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "💔 distance_metric must be specified for write to namespace with a vector"
    );
    write(&mut st, json!({"upsert_rows": [{"id": 1, "vector": "zczMPc3MTD6amZk+"}], "distance_metric": "cosine_distance"})).unwrap();
    assert_eq!(st.docs[&Id::Uint(1)].vectors["vector"].len(), 3);
    let err = write(&mut st, json!({"upsert_rows": [{"id": 2, "vector": [1, 2, 3]}], "distance_metric": "euclidean_squared"})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "💔 distance metric mismatch, expected cosine_distance, got euclidean_squared"
    );
}

#[test]
fn deserialization_texts_match_the_live_service() {
    let err = parse_body::<WriteRequest>(br#"{"upsert_rows": {"id": 1}}"#).unwrap_err();
    assert!(
        err.to_string()
            .contains("upsert_rows: invalid type: map, expected a sequence"),
        "{err}"
    );
    let err = parse_body::<WriteRequest>(br#"{"deletes": {"a": 1}}"#).unwrap_err();
    assert!(
        err.to_string()
            .contains("deletes: data did not match any variant of untagged enum IdVec"),
        "{err}"
    );
    let err = parse_body::<WriteRequest>(br#"{"distance_metric": "bad"}"#).unwrap_err();
    assert!(err.to_string().contains("expected one of `Unknown`, `euclidean_squared`, `cosine_distance`, `euclidean`, `Query`"), "{err}");
}

#[test]
fn attribute_limits_apply_to_inferred_attributes_too() {
    let mut st = NsState::new(0);
    // Names: at most 128 bytes, declared or inferred.
    let long = "a".repeat(129);
    let err = write(
        &mut st,
        json!({"upsert_rows": [{"id": 1, long.as_str(): 1}]}),
    )
    .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(
        err.to_string().contains("is longer than 128 bytes"),
        "{err}"
    );
    let ok = "a".repeat(128);
    write(&mut st, json!({"upsert_rows": [{"id": 1, ok.as_str(): 1}]})).unwrap();
    // At most 1024 attribute names.
    let mut st = NsState::new(0);
    let row: Map<String, Value> = (0..1024)
        .map(|i| (format!("a{i}"), json!(i)))
        .chain([("id".to_string(), json!(1))])
        .collect();
    write(&mut st, json!({"upsert_rows": [row]})).unwrap();
    let err = write(&mut st, json!({"upsert_rows": [{"id": 2, "one_more": 1}]})).unwrap_err();
    assert!(err.to_string().contains("at most 1024 attributes"), "{err}");
    assert_eq!(st.docs.len(), 1, "the refused write changed nothing");
}

#[test]
fn filterable_values_are_at_most_4_kib() {
    let mut st = NsState::new(0);
    let big = "x".repeat(4097);
    let err = write(&mut st, json!({"upsert_rows": [{"id": 1, "s": big}]})).unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(
        err.to_string()
            .contains("over the 4096 byte limit for filterable values"),
        "{err}"
    );
    let err = write(
        &mut st,
        json!({"upsert_rows": [{"id": 1, "tags": ["a", big]}]}),
    )
    .unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(st.docs.is_empty());
    // 4096 bytes fit; non-filterable and full-text attributes may hold more.
    write(
        &mut st,
        json!({"upsert_rows": [{"id": 1, "s": "x".repeat(4096)}]}),
    )
    .unwrap();
    write(
        &mut st,
        json!({"upsert_rows": [{"id": 2, "raw": big, "body": big}],
               "schema": {"raw": {"type": "string", "filterable": false},
                          "body": {"type": "string", "full_text_search": true}}}),
    )
    .unwrap();
    // Patches are checked too.
    let err = write(&mut st, json!({"patch_rows": [{"id": 1, "s": big}]})).unwrap_err();
    assert_eq!(err.status(), 400);
}
