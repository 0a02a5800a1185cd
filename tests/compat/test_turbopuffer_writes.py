"""ns.write in all its forms: rows/columns, patches, deletes, filter writes, conditions, ids, vectors."""

from __future__ import annotations

import json

import pytest
from turbopuffer import (
    APIStatusError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableEntityError,
)

from compat_helpers import (
    DESERIALIZE_PREFIX,
    STRONG,
    api_error,
    b64_f32,
    decode_b64_f32,
    f32v,
    fetch_all,
    group_dicts,
    ids,
    row_dicts,
)

OK_MESSAGE = "documents committed successfully"


def _docs(n: int = 3, **extra):
    return [{"id": i, "name": f"doc{i}", "n": i * 10, **extra} for i in range(1, n + 1)]


def _assert_ok(res, *, affected: int):
    assert res.status == "OK"
    assert res.message == OK_MESSAGE
    assert res.rows_affected == affected
    assert isinstance(res.billing.billable_logical_bytes_written, int)
    assert res.billing.billable_logical_bytes_written >= 0


# ------------------------------------------------------------------------------------------
# Upserts
# ------------------------------------------------------------------------------------------


def test_upsert_rows_basic_response(ns):
    res = ns.write(upsert_rows=_docs(3))
    _assert_ok(res, affected=3)
    assert res.rows_upserted == 3
    # Op-class counters are present only for the op classes used; ids only on request.
    assert res.rows_patched is None and res.rows_deleted is None
    assert res.upserted_ids is None and res.deleted_ids is None and res.patched_ids is None
    assert res.billing.billable_logical_bytes_written > 0

    docs = fetch_all(ns)
    assert sorted(docs) == [1, 2, 3]
    assert docs[2]["name"] == "doc2" and docs[2]["n"] == 20


def test_upsert_rows_replaces_whole_document(ns):
    ns.write(upsert_rows=[{"id": 1, "a": 1, "b": "x"}, {"id": 2, "a": 2, "b": "y"}])
    ns.write(upsert_rows=[{"id": 1, "a": 5}])
    docs = fetch_all(ns)
    assert docs[1]["a"] == 5
    assert docs[1].get("b") is None, "upsert must fully overwrite the document"
    assert docs[2] == {"id": 2, "a": 2, "b": "y"}


def test_upsert_columns(ns):
    res = ns.write(
        upsert_columns={
            "id": [1, 2, 3],
            "vector": [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]],
            "title": ["one", None, "three"],
            "n": [1, 2, 3],
        },
        distance_metric="cosine_distance",
    )
    _assert_ok(res, affected=3)
    assert res.rows_upserted == 3
    docs = fetch_all(ns)
    assert docs[1]["title"] == "one" and docs[3]["title"] == "three"
    assert docs[2].get("title") is None
    assert [docs[i]["n"] for i in (1, 2, 3)] == [1, 2, 3]
    assert docs[3]["vector"] == pytest.approx(f32v([0.6, 0.8]))


def test_upsert_rows_and_columns_vectors_base64_on_wire(ns, emu, target):
    """The SDK base64-encodes float vectors; the server must decode them (LE f32)."""
    emu.clear_requests()
    ns.write(
        upsert_rows=[{"id": 1, "vector": [0.1, 0.2, 0.3]}],
        distance_metric="euclidean_squared",
    )
    ns.write(upsert_columns={"id": [2], "vector": [[0.5, -0.25, 2.0]]})
    # Through the gateway too: it stamps writes but passes the vectors through byte for byte.
    writes = [r for r in emu.requests_for(ns.id) if r["method"] == "POST" and r["path"].endswith(ns.id)]
    assert len(writes) == 2
    body0 = json.loads(writes[0]["body"])
    assert body0["upsert_rows"][0]["vector"] == "zczMPc3MTD6amZk+"  # [0.1, 0.2, 0.3] as LE f32
    body1 = json.loads(writes[1]["body"])
    assert body1["upsert_columns"]["vector"] == [b64_f32([0.5, -0.25, 2.0])]
    docs = fetch_all(ns)
    assert docs[1]["vector"] == pytest.approx(f32v([0.1, 0.2, 0.3]))
    assert docs[2]["vector"] == pytest.approx([0.5, -0.25, 2.0])


def test_vectors_as_json_arrays(ns, emu, target):
    """A first element that is an int keeps the SDK from base64-encoding: plain JSON arrays."""
    emu.clear_requests()
    ns.write(upsert_rows=[{"id": 1, "vector": [1, 0.5, 0.25]}], distance_metric="cosine_distance")
    # Through the gateway too: the JSON array reaches upstream as sent. (The write itself: through
    # the gateway the write-path mirror's read-back query is a POST to the namespace too.)
    path = f"/v2/namespaces/{ns.id}"
    writes = [r for r in emu.requests_for(ns.id) if r["method"] == "POST" and r["path"] == path]
    body = json.loads(writes[-1]["body"])
    assert body["upsert_rows"][0]["vector"] == [1, 0.5, 0.25]
    res = ns.query(
        rank_by=["id", "asc"], top_k=1, include_attributes=["vector"], vector_encoding="base64", consistency=STRONG
    )
    assert decode_b64_f32(row_dicts(res.rows)[0]["vector"]) == pytest.approx([1.0, 0.5, 0.25])


def test_additional_ann_vector_attribute(ns):
    ns.write(
        upsert_rows=[
            {"id": 1, "vector": [1.0, 0.0], "emb": [0.0, 1.0, 0.0]},
            {"id": 2, "vector": [0.0, 1.0], "emb": [1.0, 0.0, 0.0]},
        ],
        schema={"emb": {"type": "[3]f32", "ann": True}},
        distance_metric="cosine_distance",
    )
    res = ns.query(rank_by=["emb", "ANN", [0.9, 0.1, 0.0]], top_k=2, consistency=STRONG)
    assert ids(res.rows) == [2, 1]
    res = ns.query(rank_by=["vector", "ANN", [0.9, 0.1]], top_k=2, consistency=STRONG)
    assert ids(res.rows) == [1, 2]


# ------------------------------------------------------------------------------------------
# Patches
# ------------------------------------------------------------------------------------------


def test_patch_rows_only_touches_listed_keys(ns):
    ns.write(upsert_rows=_docs(2))
    res = ns.write(patch_rows=[{"id": 1, "n": 99}, {"id": 2, "extra": "new"}])
    _assert_ok(res, affected=2)
    assert res.rows_patched == 2
    assert res.rows_upserted is None
    docs = fetch_all(ns)
    assert docs[1] == {"id": 1, "name": "doc1", "n": 99}
    assert docs[2] == {"id": 2, "name": "doc2", "n": 20, "extra": "new"}


def test_patch_never_creates_documents(ns):
    ns.write(upsert_rows=_docs(1))
    ns.write(patch_rows=[{"id": 42, "n": 1}])
    assert sorted(fetch_all(ns)) == [1]


def test_patch_columns(ns):
    ns.write(upsert_rows=_docs(3))
    res = ns.write(patch_columns={"id": [1, 3], "n": [111, 333], "flag": [True, None]})
    assert res.rows_patched == 2
    docs = fetch_all(ns)
    assert [docs[i]["n"] for i in (1, 2, 3)] == [111, 20, 333]
    assert docs[1]["flag"] is True
    assert docs[3].get("flag") is None
    assert docs[2].get("flag") is None


def test_patch_can_set_attribute_to_null(ns):
    ns.write(upsert_rows=_docs(1))
    ns.write(patch_rows=[{"id": 1, "name": None}])
    assert fetch_all(ns)[1].get("name") is None
    assert ids(ns.query(rank_by=["id", "asc"], top_k=5, filters=["name", "Eq", None], consistency=STRONG).rows) == [1]


# ------------------------------------------------------------------------------------------
# Deletes
# ------------------------------------------------------------------------------------------


def test_deletes_by_id(ns):
    ns.write(upsert_rows=_docs(4))
    res = ns.write(deletes=[2, 4])
    _assert_ok(res, affected=2)
    assert res.rows_deleted == 2
    assert res.rows_upserted is None and res.rows_patched is None
    assert sorted(fetch_all(ns)) == [1, 3]


def test_delete_by_filter(ns):
    ns.write(upsert_rows=_docs(5))
    res = ns.write(delete_by_filter=["n", "Gte", 30])
    _assert_ok(res, affected=3)
    assert res.rows_deleted == 3
    assert res.rows_remaining is False
    assert sorted(fetch_all(ns)) == [1, 2]


def test_delete_by_filter_allow_partial_under_limit(ns):
    ns.write(upsert_rows=_docs(3))
    res = ns.write(delete_by_filter=["n", "Lt", 25], delete_by_filter_allow_partial=True)
    assert res.rows_deleted == 2
    assert res.rows_remaining is False
    assert sorted(fetch_all(ns)) == [3]


def test_delete_by_filter_matching_nothing(ns):
    ns.write(upsert_rows=_docs(2))
    res = ns.write(delete_by_filter=["name", "Eq", "nope"])
    assert res.status == "OK"
    assert res.rows_affected == 0
    assert sorted(fetch_all(ns)) == [1, 2]


def test_patch_by_filter(ns):
    ns.write(upsert_rows=_docs(4))
    res = ns.write(patch_by_filter={"filters": ["n", "Gt", 15], "patch": {"tier": "high", "n": 0}})
    _assert_ok(res, affected=3)
    assert res.rows_patched == 3
    assert res.rows_remaining is False
    docs = fetch_all(ns)
    assert docs[1].get("tier") is None and docs[1]["n"] == 10
    for i in (2, 3, 4):
        assert docs[i]["tier"] == "high" and docs[i]["n"] == 0 and docs[i]["name"] == f"doc{i}"


def test_filter_write_ordering(ns):
    """delete_by_filter runs first, then patch_by_filter, then the other ops."""
    ns.write(upsert_rows=[{"id": 1, "cat": "a"}, {"id": 2, "cat": "b"}, {"id": 3, "cat": "b"}])
    res = ns.write(
        delete_by_filter=["cat", "Eq", "a"],
        patch_by_filter={"filters": ["cat", "Eq", "b"], "patch": {"seen": True}},
        upsert_rows=[{"id": 4, "cat": "a"}, {"id": 5, "cat": "b"}],
    )
    assert res.rows_deleted == 1
    assert res.rows_patched == 2
    assert res.rows_upserted == 2
    docs = fetch_all(ns)
    assert sorted(docs) == [2, 3, 4, 5]
    assert docs[2]["seen"] is True and docs[3]["seen"] is True
    # The new rows were written after the filter ops ran.
    assert docs[5].get("seen") is None and docs[4]["cat"] == "a"


def test_patch_by_filter_over_limit_and_allow_partial(ns):
    """patch_by_filter is capped at 50,000 rows per request."""
    n = 50_001
    ns.write(upsert_columns={"id": list(range(1, n + 1)), "flag": [False] * n})

    with pytest.raises(APIStatusError) as ei:
        ns.write(patch_by_filter={"filters": ["flag", "Eq", False], "patch": {"flag": True}})
    assert 400 <= ei.value.status_code < 500, ei.value
    count = ns.query(aggregate_by={"c": ["Count"]}, filters=["flag", "Eq", True], consistency=STRONG).aggregations
    assert count == {"c": 0}, "a rejected filter write must not patch anything"

    res = ns.write(
        patch_by_filter={"filters": ["flag", "Eq", False], "patch": {"flag": True}},
        patch_by_filter_allow_partial=True,
    )
    assert res.rows_patched == 50_000
    assert res.rows_remaining is True
    res = ns.write(
        patch_by_filter={"filters": ["flag", "Eq", False], "patch": {"flag": True}},
        patch_by_filter_allow_partial=True,
    )
    assert res.rows_patched == 1
    assert res.rows_remaining is False
    count = ns.query(aggregate_by={"c": ["Count"]}, filters=["flag", "Eq", True], consistency=STRONG).aggregations
    assert count == {"c": n}


# ------------------------------------------------------------------------------------------
# Conditional writes
# ------------------------------------------------------------------------------------------


def test_upsert_condition_insert_only(ns):
    ns.write(upsert_rows=[{"id": 1, "v": "old"}])
    res = ns.write(
        upsert_rows=[{"id": 1, "v": "new"}, {"id": 2, "v": "new"}],
        upsert_condition=["id", "Eq", None],
        return_affected_ids=True,
    )
    assert res.rows_upserted == 1
    assert res.upserted_ids == [2]
    docs = fetch_all(ns)
    assert docs[1]["v"] == "old" and docs[2]["v"] == "new"


def test_upsert_condition_ref_new(ns):
    ns.write(upsert_rows=[{"id": 1, "version": 1, "v": "a"}, {"id": 2, "version": 5, "v": "b"}])
    res = ns.write(
        upsert_rows=[{"id": 1, "version": 2, "v": "a2"}, {"id": 2, "version": 3, "v": "b2"}],
        upsert_condition=["version", "Lt", {"$ref_new": "version"}],
        return_affected_ids=True,
    )
    assert res.rows_upserted == 1
    assert res.upserted_ids == [1]
    docs = fetch_all(ns)
    assert (docs[1]["version"], docs[1]["v"]) == (2, "a2")
    assert (docs[2]["version"], docs[2]["v"]) == (5, "b")


def test_patch_condition(ns):
    ns.write(upsert_rows=[{"id": 1, "status": "draft"}, {"id": 2, "status": "published"}])
    res = ns.write(
        patch_rows=[{"id": 1, "title": "t1"}, {"id": 2, "title": "t2"}, {"id": 3, "title": "t3"}],
        patch_condition=["status", "Eq", "draft"],
        return_affected_ids=True,
    )
    assert res.rows_patched == 1
    assert res.patched_ids == [1]
    docs = fetch_all(ns)
    assert docs[1]["title"] == "t1"
    assert docs[2].get("title") is None
    assert 3 not in docs


def test_delete_condition(ns):
    ns.write(upsert_rows=[{"id": i, "state": s} for i, s in [(1, "archived"), (2, "live"), (3, "archived")]])
    res = ns.write(
        deletes=[1, 2, 3, 4],
        delete_condition=["state", "Eq", "archived"],
        return_affected_ids=True,
    )
    assert res.rows_deleted == 2
    assert sorted(res.deleted_ids) == [1, 3]
    assert sorted(fetch_all(ns)) == [2]


def test_return_affected_ids_all_kinds(ns):
    ns.write(upsert_rows=_docs(4))
    res = ns.write(
        upsert_rows=[{"id": 5, "n": 50}],
        patch_rows=[{"id": 1, "n": 11}],
        deletes=[3],
        return_affected_ids=True,
    )
    assert res.upserted_ids == [5]
    assert res.patched_ids == [1]
    assert res.deleted_ids == [3]
    assert res.rows_upserted == 1 and res.rows_patched == 1 and res.rows_deleted == 1
    assert res.rows_affected == 3


# ------------------------------------------------------------------------------------------
# Ids
# ------------------------------------------------------------------------------------------


def test_u64_ids_keep_full_precision(ns):
    big = 2**64 - 1
    near = 2**53 + 1  # not representable as f64
    res = ns.write(upsert_rows=[{"id": big, "x": 1}, {"id": near, "x": 2}, {"id": 0, "x": 3}], return_affected_ids=True)
    assert sorted(res.upserted_ids) == [0, near, big]
    assert ids(ns.query(rank_by=["id", "asc"], top_k=10, consistency=STRONG).rows) == [0, near, big]
    assert ids(ns.query(rank_by=["id", "asc"], top_k=10, filters=["id", "Eq", near], consistency=STRONG).rows) == [near]
    assert ns.schema()["id"].type == "uint"


def test_string_ids(ns):
    ns.write(upsert_rows=[{"id": "b-doc", "x": 2}, {"id": "a-doc", "x": 1}])
    assert ids(ns.query(rank_by=["id", "asc"], top_k=10, consistency=STRONG).rows) == ["a-doc", "b-doc"]
    ns.write(deletes=["a-doc"])
    assert ids(ns.query(rank_by=["id", "asc"], top_k=10, consistency=STRONG).rows) == ["b-doc"]
    assert ns.schema()["id"].type == "string"


def test_uuid_ids_are_canonicalised(ns):
    upper = "F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6"
    res = ns.write(
        upsert_rows=[{"id": upper, "x": 1}],
        schema={"id": "uuid"},
        return_affected_ids=True,
    )
    assert res.upserted_ids == [upper.lower()]
    assert ids(ns.query(rank_by=["id", "asc"], top_k=10, consistency=STRONG).rows) == [upper.lower()]
    assert ns.schema()["id"].type == "uuid"
    ns.write(deletes=[upper.lower()])
    assert ids(ns.query(rank_by=["id", "asc"], top_k=10, consistency=STRONG).rows) == []


def test_duplicate_ids_rejected(ns):
    ns.write(upsert_rows=_docs(1))
    with api_error(BadRequestError, 400):
        ns.write(upsert_rows=[{"id": 7, "x": 1}, {"id": 7, "x": 2}])
    with api_error(BadRequestError, 400):
        ns.write(upsert_columns={"id": [9, 9], "x": [1, 2]})
    # Atomic: nothing from the rejected requests was applied.
    assert sorted(fetch_all(ns)) == [1]


def test_mixed_id_types_rejected(ns):
    ns.write(upsert_rows=[{"id": 1, "x": 1}])
    with api_error(BadRequestError, 400):
        ns.write(upsert_rows=[{"id": "one", "x": 1}])
    assert sorted(fetch_all(ns)) == [1]


# ------------------------------------------------------------------------------------------
# Schema, namespace creation and distance metrics
# ------------------------------------------------------------------------------------------


def test_schema_on_write(ns):
    ns.write(
        upsert_rows=[
            {"id": 1, "when": "2024-05-06T07:08:09Z", "score": 1.5, "body": "hello world", "label": 3},
            {"id": 2, "when": "2023-01-01T00:00:00Z", "score": 2.5, "body": "goodbye moon", "label": 4},
        ],
        schema={
            "when": "datetime",
            "score": {"type": "float"},
            "body": {"type": "string", "full_text_search": True},
            "label": {"type": "uint", "filterable": True},
        },
    )
    schema = ns.schema()
    assert schema["when"].type == "datetime"
    assert schema["score"].type == "float"
    assert schema["body"].type == "string" and schema["body"].full_text_search not in (None, False)
    assert schema["label"].type == "uint"
    res = ns.query(rank_by=["id", "asc"], top_k=5, filters=["when", "Gt", "2024-01-01"], consistency=STRONG)
    assert ids(res.rows) == [1]
    assert ids(ns.query(rank_by=["body", "BM25", "moon"], top_k=5, consistency=STRONG).rows) == [2]


def test_schema_only_write_on_existing_namespace(ns):
    ns.write(upsert_rows=_docs(1))
    res = ns.write(schema={"name": {"type": "string", "full_text_search": True}})
    assert res.status == "OK"
    assert ids(ns.query(rank_by=["name", "BM25", "doc1"], top_k=5, consistency=STRONG).rows) == [1]


def test_create_namespace_true_without_documents(ns):
    assert ns.exists() is False
    res = ns.write(create_namespace=True, schema={"id": "uint"})
    assert res.status == "OK"
    assert ns.exists() is True
    assert ns.schema()["id"].type == "uint"
    assert ids(ns.query(rank_by=["id", "asc"], top_k=5, consistency=STRONG).rows) == []


def test_create_namespace_false_on_missing_namespace(ns):
    with api_error(NotFoundError, 404):
        ns.write(upsert_rows=_docs(1), create_namespace=False)
    assert ns.exists() is False


def test_distance_metric_required_on_first_vector_write(ns):
    with api_error(BadRequestError, 400, "💔 distance_metric must be specified for write to namespace with a vector"):
        ns.write(upsert_rows=[{"id": 1, "vector": [1.0, 0.0]}])


def test_distance_metric_mismatch_and_omission(ns):
    ns.write(upsert_rows=[{"id": 1, "vector": [1.0, 0.0]}], distance_metric="cosine_distance")
    # Later writes may omit it ...
    ns.write(upsert_rows=[{"id": 2, "vector": [0.0, 1.0]}])
    # ... or repeat it, but not change it.
    ns.write(upsert_rows=[{"id": 3, "vector": [1.0, 1.0]}], distance_metric="cosine_distance")
    with api_error(
        BadRequestError, 400, "💔 distance metric mismatch, expected cosine_distance, got euclidean_squared"
    ):
        ns.write(upsert_rows=[{"id": 4, "vector": [1.0, 0.0]}], distance_metric="euclidean_squared")
    assert sorted(fetch_all(ns)) == [1, 2, 3]


def test_distance_metric_unknown_variant(ns):
    with api_error(
        UnprocessableEntityError,
        422,
        startswith=DESERIALIZE_PREFIX,
        contains=[
            "distance_metric: unknown variant `bad`, expected one of `Unknown`, `euclidean_squared`, "
            "`cosine_distance`, `euclidean`, `Query`"
        ],
    ):
        ns.write(upsert_rows=[{"id": 1, "vector": [1.0, 0.0]}], distance_metric="bad")  # type: ignore[arg-type]


def test_vector_into_vectorless_namespace(ns):
    ns.write(upsert_rows=[{"id": 1, "x": 1}])
    with api_error(BadRequestError, 400, "💔 Vector provided for namespace without vector attribute"):
        ns.write(upsert_rows=[{"id": 2, "vector": [1.0, 0.0]}], distance_metric="cosine_distance")


def test_vector_schema_without_ann(ns):
    with api_error(
        BadRequestError,
        400,
        '💔 the `vector` attribute must have `ann` set to `true`, eg: `"vector": { "type": "[1024]f32", "ann": true }`',
    ):
        ns.write(
            upsert_rows=[{"id": 1, "vector": [1.0, 0.0]}],
            schema={"vector": {"type": "[2]f32"}},
            distance_metric="cosine_distance",
        )


def test_metric_inside_ann_config_rejected(ns):
    with api_error(
        BadRequestError,
        400,
        "💔 `distance_metric` must be specified as a field at the top level of the write request, "
        "not in the `ann` configuration for an attribute",
    ):
        ns.write(
            upsert_rows=[{"id": 1, "vector": [1.0, 0.0]}],
            schema={"vector": {"type": "[2]f32", "ann": {"distance_metric": "cosine_distance"}}},
        )


# ------------------------------------------------------------------------------------------
# Body deserialisation errors (422)
# ------------------------------------------------------------------------------------------


def test_upsert_rows_object_instead_of_array(ns):
    with api_error(
        UnprocessableEntityError,
        422,
        startswith=DESERIALIZE_PREFIX,
        contains=["upsert_rows: invalid type: map, expected a sequence"],
    ):
        ns.write(upsert_rows={"id": 1})  # type: ignore[arg-type]


def test_row_without_id(ns):
    with api_error(
        UnprocessableEntityError, 422, startswith=DESERIALIZE_PREFIX, contains=["upsert_rows[0]: missing field `id`"]
    ):
        ns.write(upsert_rows=[{"x": 1}])  # type: ignore[typeddict-item]


@pytest.mark.parametrize("bad", [True, 1.5])
def test_bad_id_value(ns, bad):
    with api_error(
        UnprocessableEntityError,
        422,
        startswith=DESERIALIZE_PREFIX,
        contains=["upsert_rows[0].id: data did not match any variant of untagged enum Id"],
    ):
        ns.write(upsert_rows=[{"id": bad, "x": 1}])


def test_bad_deletes(ns):
    with api_error(
        UnprocessableEntityError,
        422,
        startswith=DESERIALIZE_PREFIX,
        contains=["deletes: data did not match any variant of untagged enum IdVec"],
    ):
        ns.write(deletes="nope")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Namespace-level write options
# ------------------------------------------------------------------------------------------


def test_encryption_default_on_write(ns, target):
    res = ns.write(upsert_rows=_docs(1), encryption={"mode": "default"})
    assert res.status == "OK"
    if not target.is_gateway:
        assert res.performance.server_total_ms >= 1, "the write's measured time, rounded up"
    assert ns.metadata().encryption.to_dict() == {"mode": "default"}


def test_customer_managed_encryption_needs_setup(ns):
    # The suite's emulator has no fake KMS key (--cmek-key-name), like an org without CMEK set up:
    # the write is refused (403, feature not enabled) and nothing is created.
    with api_error(PermissionDeniedError, 403, contains=["customer-managed encryption"]):
        ns.write(
            upsert_rows=_docs(1),
            encryption={"mode": "customer-managed", "key_name": "projects/p/locations/l/keyRings/r/cryptoKeys/k"},
        )
    assert not ns.exists()


def test_sharding_only_on_inaugural_write(ns):
    ns.write(upsert_rows=_docs(2), sharding={"num_shards": 2})
    md = ns.metadata()
    assert md.sharding is not None and md.sharding.num_shards == 2
    # Re-sending the identical config is fine; changing it is rejected.
    ns.write(upsert_rows=[{"id": 3, "name": "doc3", "n": 30}], sharding={"num_shards": 2})
    with pytest.raises(APIStatusError) as ei:
        ns.write(upsert_rows=[{"id": 4, "name": "doc4", "n": 40}], sharding={"num_shards": 4})
    assert 400 <= ei.value.status_code < 500
    assert sorted(fetch_all(ns)) == [1, 2, 3]
    assert ns.metadata().sharding.num_shards == 2


def test_unsharded_namespace_has_no_sharding(ns):
    ns.write(upsert_rows=_docs(1))
    assert ns.metadata().sharding is None


def test_disable_backpressure_accepted(ns):
    res = ns.write(upsert_rows=_docs(2), disable_backpressure=True)
    assert res.rows_upserted == 2
    res = ns.write(deletes=[1], disable_backpressure=True)
    assert res.rows_deleted == 1
    assert sorted(fetch_all(ns)) == [2]


# ------------------------------------------------------------------------------------------
# Wire-level response shape and more validation
# ------------------------------------------------------------------------------------------


def test_write_response_optional_fields_on_wire(ns):
    raw = ns.with_raw_response.write(upsert_rows=_docs(2)).json()
    assert raw["status"] == "OK" and raw["rows_affected"] == 2 and raw["rows_upserted"] == 2
    for absent in ("rows_patched", "rows_deleted", "rows_remaining", "upserted_ids", "patched_ids", "deleted_ids"):
        assert absent not in raw, f"{absent} must be omitted for a plain upsert: {raw}"
    assert "query" not in raw["billing"], "billing.query only for conditional/filter writes"

    raw = ns.with_raw_response.write(delete_by_filter=["n", "Eq", 10]).json()
    assert raw["rows_deleted"] == 1 and raw["rows_remaining"] is False
    assert "query" in raw["billing"], f"filter writes carry billing.query: {raw}"

    raw = ns.with_raw_response.write(
        upsert_rows=[{"id": 2, "n": 1}], upsert_condition=["n", "Gt", 100], return_affected_ids=True
    ).json()
    assert raw["rows_upserted"] == 0
    assert "upserted_ids" not in raw, "ids are only listed when at least one row was affected"
    assert "query" in raw["billing"], f"conditional writes carry billing.query: {raw}"


def test_patch_of_row_deleted_by_filter_is_ignored(ns):
    ns.write(upsert_rows=[{"id": 1, "cat": "a"}, {"id": 2, "cat": "b"}])
    ns.write(delete_by_filter=["cat", "Eq", "a"], patch_rows=[{"id": 1, "cat": "z"}, {"id": 2, "cat": "y"}])
    docs = fetch_all(ns)
    assert sorted(docs) == [2]
    assert docs[2]["cat"] == "y"


def test_upsert_columns_length_mismatch_rejected(ns):
    with pytest.raises(APIStatusError) as ei:
        ns.write(upsert_columns={"id": [1, 2, 3], "x": [1, 2]})
    assert 400 <= ei.value.status_code < 500
    assert not ns.exists()


def test_patching_vector_rejected(ns):
    ns.write(upsert_rows=[{"id": 1, "vector": [1.0, 0.0]}], distance_metric="cosine_distance")
    with pytest.raises(APIStatusError) as ei:
        ns.write(patch_rows=[{"id": 1, "vector": [0.0, 1.0]}])
    assert 400 <= ei.value.status_code < 500
    assert fetch_all(ns)[1]["vector"] == pytest.approx([1.0, 0.0])


def test_vector_dimension_mismatch_rejected(ns):
    ns.write(upsert_rows=[{"id": 1, "vector": [1.0, 0.0]}], distance_metric="cosine_distance")
    with pytest.raises(APIStatusError) as ei:
        ns.write(upsert_rows=[{"id": 2, "vector": [1.0, 0.0, 0.5]}])
    assert 400 <= ei.value.status_code < 500
    with pytest.raises(APIStatusError) as ei:
        ns.query(rank_by=["vector", "ANN", [1.0, 0.0, 0.5]], top_k=1)
    assert 400 <= ei.value.status_code < 500


def test_attribute_name_with_dollar_rejected(ns):
    with pytest.raises(APIStatusError) as ei:
        ns.write(upsert_rows=[{"id": 1, "$bad": 1}])
    assert 400 <= ei.value.status_code < 500


def test_inferred_attribute_name_longer_than_128_bytes_rejected(ns):
    with pytest.raises(APIStatusError) as ei:
        ns.write(upsert_rows=[{"id": 1, "a" * 129: 1}])
    assert 400 <= ei.value.status_code < 500
    ns.write(upsert_rows=[{"id": 1, "a" * 128: 1}])


def test_filterable_values_are_at_most_4_kib(ns):
    # Contract §9: a filterable value is at most 4 KiB; long text needs filterable: false (or FTS).
    with pytest.raises(APIStatusError) as ei:
        ns.write(upsert_rows=[{"id": 1, "text": "x" * 4097}])
    assert 400 <= ei.value.status_code < 500
    res = ns.write(
        upsert_rows=[{"id": 1, "text": "x" * 4097}],
        schema={"text": {"type": "string", "filterable": False}},
    )
    assert res.rows_upserted == 1


def test_string_id_longer_than_64_bytes_rejected(ns):
    with pytest.raises(APIStatusError) as ei:
        ns.write(upsert_rows=[{"id": "x" * 65}])
    assert 400 <= ei.value.status_code < 500
    ns.write(upsert_rows=[{"id": "y" * 64}])
    assert ids(ns.query(rank_by=["id", "asc"], top_k=1, consistency=STRONG).rows) == ["y" * 64]


def test_create_namespace_requires_id_type(ns):
    with pytest.raises(APIStatusError) as ei:
        ns.write(create_namespace=True)
    assert 400 <= ei.value.status_code < 500


def test_inferred_type_conflict_rejected(ns):
    ns.write(upsert_rows=[{"id": 1, "price": 3}])
    with pytest.raises(APIStatusError) as ei:
        ns.write(upsert_rows=[{"id": 2, "price": "three"}])
    assert 400 <= ei.value.status_code < 500
    assert sorted(fetch_all(ns)) == [1]


def test_filter_writes_return_affected_ids(ns):
    ns.write(upsert_rows=_docs(5))
    res = ns.write(patch_by_filter={"filters": ["n", "Lte", 20], "patch": {"p": 1}}, return_affected_ids=True)
    assert sorted(res.patched_ids) == [1, 2]
    res = ns.write(delete_by_filter=["n", "Gte", 40], return_affected_ids=True)
    assert sorted(res.deleted_ids) == [4, 5]
    assert sorted(fetch_all(ns)) == [1, 2, 3]


def test_bad_column_ids_and_patch_ids(ns):
    with api_error(
        UnprocessableEntityError,
        422,
        startswith=DESERIALIZE_PREFIX,
        contains=["upsert_columns.id: data did not match any variant of untagged enum IdVec"],
    ):
        ns.write(upsert_columns={"id": "x", "a": [1]})  # type: ignore[dict-item]
    with api_error(
        UnprocessableEntityError,
        422,
        startswith=DESERIALIZE_PREFIX,
        contains=["patch_rows[0].id: data did not match any variant of untagged enum Id"],
    ):
        ns.write(patch_rows=[{"id": False, "a": 1}])


def test_upsert_condition_ref_new_against_null(ns):
    # Lt matches a null current value, so a document without `version` is overwritten.
    ns.write(upsert_rows=[{"id": 1, "v": "old"}, {"id": 2, "version": 9, "v": "old"}])
    res = ns.write(
        upsert_rows=[{"id": 1, "version": 1, "v": "new"}, {"id": 2, "version": 1, "v": "new"}],
        upsert_condition=["version", "Lt", {"$ref_new": "version"}],
        return_affected_ids=True,
    )
    assert res.upserted_ids == [1]
    docs = fetch_all(ns)
    assert docs[1]["v"] == "new" and docs[2]["v"] == "old"


def test_delete_condition_ref_new_is_null(ns):
    # For deletes every $ref_new value is null; `Eq null` matches documents missing the attribute.
    ns.write(upsert_rows=[{"id": 1, "version": 1}, {"id": 2, "other": True}])
    res = ns.write(
        deletes=[1, 2],
        delete_condition=["version", "Eq", {"$ref_new": "version"}],
        return_affected_ids=True,
    )
    assert res.deleted_ids == [2]
    assert sorted(fetch_all(ns)) == [1]


def test_concurrent_writes_are_all_applied(ns):
    from concurrent.futures import ThreadPoolExecutor

    ns.write(upsert_rows=[{"id": 0, "k": 0}])

    def writer(t):
        for j in range(25):
            i = 1 + t * 25 + j
            ns.write(upsert_rows=[{"id": i, "k": t}])
        return t

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(writer, range(8))) == list(range(8))
    assert ns.query(aggregate_by={"n": ["Count"]}, consistency=STRONG).aggregations == {"n": 201}
    res = ns.query(aggregate_by={"n": ["Count"]}, group_by=["k"], consistency=STRONG)
    assert {g["k"]: g["n"] for g in group_dicts(res.aggregation_groups)} == {0: 26, **{t: 25 for t in range(1, 8)}}
