"""client.namespaces(), metadata, update_metadata, schema, update_schema, exists, delete_all,
hint_cache_warm, recall, explain_query, and the emulator's indexer model."""

from __future__ import annotations

import datetime as dt

import pytest
from turbopuffer import APIStatusError, BadRequestError, NotFoundError

from compat_helpers import (
    STRONG,
    api_error,
    create_and_pause,
    fetch_all,
    ids,
    load_query_docs,
    not_found_text,
    wait_until,
)
from conftest import new_ns_name


def _write(ns, n=3, **kw):
    return ns.write(upsert_rows=[{"id": i, "x": i} for i in range(1, n + 1)], **kw)


# ------------------------------------------------------------------------------------------
# Listing
# ------------------------------------------------------------------------------------------


def test_list_namespaces_prefix_and_pagination(tpuf):
    prefix = new_ns_name("list") + "-"
    names = [f"{prefix}{c}" for c in "edcba"]
    for name in names:
        _write(tpuf.namespace(name), n=1)
    # A namespace sharing only part of the prefix must not be listed.
    _write(tpuf.namespace(prefix[:-1] + "x-zzz"), n=1)

    page = tpuf.namespaces(prefix=prefix, page_size=2)
    assert [n.id for n in page.namespaces] == sorted(names)[:2]
    assert page.next_cursor, "first page of 5 with page_size=2 must carry next_cursor"
    assert page.has_next_page()

    page2 = page.get_next_page()
    assert [n.id for n in page2.namespaces] == sorted(names)[2:4]
    page3 = page2.get_next_page()
    assert [n.id for n in page3.namespaces] == sorted(names)[4:]
    assert not page3.next_cursor
    assert not page3.has_next_page()

    # Auto-pagination yields every namespace exactly once, in order.
    assert [n.id for n in tpuf.namespaces(prefix=prefix, page_size=2)] == sorted(names)
    assert [n.id for n in tpuf.namespaces(prefix=prefix)] == sorted(names)


def test_list_namespaces_unknown_prefix_is_empty(tpuf):
    page = tpuf.namespaces(prefix=new_ns_name("nothing-here"))
    assert page.namespaces == []
    assert not page.next_cursor


def test_list_includes_new_and_excludes_deleted(tpuf):
    prefix = new_ns_name("lifecycle") + "-"
    a, b = tpuf.namespace(prefix + "a"), tpuf.namespace(prefix + "b")
    _write(a, 1)
    _write(b, 1)
    assert [n.id for n in tpuf.namespaces(prefix=prefix)] == [a.id, b.id]
    a.delete_all()
    assert [n.id for n in tpuf.namespaces(prefix=prefix)] == [b.id]


# ------------------------------------------------------------------------------------------
# Metadata
# ------------------------------------------------------------------------------------------


def test_metadata_after_indexing(ns, emu):
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    ns.write(
        upsert_rows=[{"id": i, "vector": [float(i), 1.0], "title": f"t{i}"} for i in range(1, 5)],
        distance_metric="cosine_distance",
        schema={"title": {"type": "string", "full_text_search": True}},
    )
    emu.flush(ns.id)
    md = ns.metadata()
    assert md.approx_row_count == 4
    assert md.approx_logical_bytes > 0
    assert md.index.status == "up-to-date"
    assert md.encryption.to_dict() == {"mode": "default"}
    assert md.created_at.tzinfo is not None and md.created_at >= before
    assert md.updated_at >= md.created_at
    assert md.read_only is None and md.pinning is None and md.sharding is None
    schema = md.schema_
    assert schema["id"].type == "uint"
    assert schema["vector"].type == "[2]f32"
    # Compact form renders ann as {distance_metric}.
    ann = schema["vector"].ann
    assert not isinstance(ann, bool) and ann.distance_metric == "cosine_distance"
    assert schema["title"].type == "string"
    assert schema["title"].full_text_search not in (None, False)
    raw = ns.with_raw_response.metadata().json()
    assert raw["index"] == {"status": "up-to-date"}


def test_metadata_missing_namespace(tpuf):
    name = new_ns_name("missing")
    with api_error(NotFoundError, 404, not_found_text(name)):
        tpuf.namespace(name).metadata()


def test_default_indexer_catches_up(ns):
    _write(ns, 3)
    md = wait_until(
        lambda: (m := ns.metadata()).index.status == "up-to-date" and m.approx_row_count == 3 and m,
        timeout=5.0,
        what="index up-to-date with 3 rows",
    )
    assert md.approx_row_count == 3


def test_paused_indexer_reports_updating_then_flush(ns, emu):
    create_and_pause(ns, emu)
    _write(ns, 3)
    md = ns.metadata()
    assert md.index.status == "updating"
    assert md.index.unindexed_rows == 3
    assert md.index.unindexed_bytes > 0
    assert md.approx_row_count == 0, "approx_row_count only counts indexed rows"
    raw = ns.with_raw_response.metadata().json()
    assert set(raw["index"]) == {"status", "unindexed_bytes", "unindexed_rows"}

    # Strong queries still see the unindexed writes, via exhaustive search.
    res = ns.query(rank_by=["id", "asc"], top_k=10, consistency=STRONG)
    assert ids(res.rows) == [1, 2, 3]
    assert res.performance.exhaustive_search_count == 3

    emu.flush(ns.id)
    md = ns.metadata()
    assert md.index.status == "up-to-date"
    assert md.approx_row_count == 3
    res = ns.query(rank_by=["id", "asc"], top_k=10, consistency=STRONG)
    assert res.performance.exhaustive_search_count == 0

    # Still paused: new writes are unindexed again, old ones stay counted.
    ns.write(upsert_rows=[{"id": 10, "x": 10}, {"id": 11, "x": 11}])
    md = ns.metadata()
    assert md.index.status == "updating"
    assert md.index.unindexed_rows == 2
    assert md.approx_row_count == 3
    assert ids(ns.query(rank_by=["id", "asc"], top_k=10, consistency=STRONG).rows) == [1, 2, 3, 10, 11]
    assert ns.query(rank_by=["id", "asc"], top_k=10, consistency=STRONG).performance.exhaustive_search_count == 2

    emu.resume(ns.id)
    wait_until(lambda: ns.metadata().index.status == "up-to-date", timeout=5.0, what="resume drains the WAL")
    assert ns.metadata().approx_row_count == 5


def test_update_metadata_read_only(ns):
    _write(ns, 2)
    md = ns.update_metadata(read_only=True)
    assert md.read_only is True
    assert ns.metadata().read_only is True
    with pytest.raises(APIStatusError) as ei:
        _write(ns, 3)
    assert 400 <= ei.value.status_code < 500, ei.value
    with pytest.raises(APIStatusError):
        ns.update_schema(schema={"y": "string"})
    assert sorted(fetch_all(ns)) == [1, 2]
    # Reads still work while read-only.
    assert ids(ns.query(rank_by=["id", "asc"], top_k=5, consistency=STRONG).rows) == [1, 2]

    md = ns.update_metadata(read_only=False)
    assert not md.read_only  # omitted when false
    assert "read_only" not in ns.with_raw_response.metadata().json()
    _write(ns, 3)
    assert sorted(fetch_all(ns)) == [1, 2, 3]


def test_update_metadata_pinning(ns):
    _write(ns, 1)
    md = ns.update_metadata(pinning={"replicas": 2})
    assert md.pinning is not None and md.pinning.replicas == 2
    assert ns.metadata().pinning.replicas == 2

    md = ns.update_metadata(read_only=False)  # pinning omitted: unchanged
    assert md.pinning is not None and md.pinning.replicas == 2

    md = ns.update_metadata(pinning=None)
    assert md.pinning is None
    md = ns.update_metadata(pinning=True)  # type: ignore[arg-type]
    assert md.pinning is not None and md.pinning.replicas in (None, 1)
    md = ns.update_metadata(pinning=False)  # type: ignore[arg-type]
    assert md.pinning is None


def test_update_metadata_missing_namespace(tpuf):
    name = new_ns_name("missing")
    with api_error(NotFoundError, 404, not_found_text(name)):
        tpuf.namespace(name).update_metadata(read_only=True)


# ------------------------------------------------------------------------------------------
# Schema and existence
# ------------------------------------------------------------------------------------------


def test_schema_inference_verbose(ns):
    ns.write(
        upsert_rows=[
            {"id": 1, "vector": [0.5, 0.5, 0.5], "s": "a", "i": -3, "b": True, "ss": ["x"], "ii": [1, 2]}
        ],
        distance_metric="euclidean_squared",
    )
    schema = ns.schema()
    assert schema["id"].type == "uint"
    assert schema["vector"].type == "[3]f32"
    assert schema["vector"].ann is True, "GET schema renders ann as true (verbose form)"
    assert schema["s"].type == "string"
    assert schema["i"].type == "int"
    assert schema["b"].type == "bool"
    assert schema["ss"].type == "[]string"
    assert schema["ii"].type == "[]int"
    raw = ns.with_raw_response.schema().json()
    assert raw["s"]["filterable"] is True
    assert "full_text_search" in raw["s"]


def test_update_schema_adds_and_changes_index_options(ns):
    ns.write(upsert_rows=[{"id": 1, "title": "hello world"}, {"id": 2, "title": "other words"}])
    res = ns.update_schema(schema={"title": {"type": "string", "full_text_search": True}, "extra": "datetime"})
    # Response is the full schema after the update.
    assert set(res) >= {"id", "title", "extra"}
    assert res["title"].full_text_search not in (None, False)
    assert res["extra"].type == "datetime"
    assert ns.schema()["extra"].type == "datetime"
    assert ids(ns.query(rank_by=["title", "BM25", "hello"], top_k=5, consistency=STRONG).rows) == [1]


def test_update_schema_type_change_rejected(ns):
    ns.write(upsert_rows=[{"id": 1, "price": 3}])
    with api_error(
        BadRequestError,
        400,
        "🙅 invalid schema update for attribute 'price': cannot change attribute type from int to string",
    ) as h:
        ns.update_schema(schema={"price": "string"})
    assert h["exc"].body.get("attribute") == "price"
    assert ns.schema()["price"].type == "int"


def test_type_change_via_write_rejected(ns):
    ns.write(upsert_rows=[{"id": 1, "price": 3}])
    with api_error(
        BadRequestError,
        400,
        "🙅 invalid schema update for attribute 'price': cannot change attribute type from int to string",
    ):
        ns.write(upsert_rows=[{"id": 2, "price": 4}], schema={"price": "string"})


def test_schema_missing_namespace(tpuf):
    name = new_ns_name("missing")
    with api_error(NotFoundError, 404, not_found_text(name)):
        tpuf.namespace(name).schema()


def test_exists(ns):
    assert ns.exists() is False
    _write(ns, 1)
    assert ns.exists() is True
    ns.delete_all()
    assert ns.exists() is False


# ------------------------------------------------------------------------------------------
# delete_all, hint_cache_warm, recall, explain_query
# ------------------------------------------------------------------------------------------


def test_delete_all(ns):
    _write(ns, 3)
    res = ns.delete_all()
    assert res.status == "OK"
    with api_error(NotFoundError, 404, not_found_text(ns.id)):
        ns.query(rank_by=["id", "asc"], top_k=1)
    with api_error(NotFoundError, 404, not_found_text(ns.id)):
        ns.metadata()
    with api_error(NotFoundError, 404, not_found_text(ns.id)):
        ns.delete_all()
    # The name can be reused; it starts empty.
    ns.write(upsert_rows=[{"id": 9, "y": "fresh"}])
    assert fetch_all(ns) == {9: {"id": 9, "y": "fresh"}}
    assert "x" not in ns.schema(), "schema of a deleted namespace must not survive"


def test_hint_cache_warm(ns):
    _write(ns, 1)
    resp = ns.with_raw_response.hint_cache_warm()
    assert resp.status_code == 202
    res = resp.parse()
    assert res.status == "ACCEPTED"
    assert res.message is None or isinstance(res.message, str)


def test_recall(ns, emu):
    load_query_docs(ns, emu)
    res = ns.recall(num=4, top_k=3)
    assert res.avg_recall == pytest.approx(1.0)
    assert res.avg_exhaustive_count == pytest.approx(3)
    assert res.avg_ann_count == pytest.approx(3)

    res = ns.recall(num=2, top_k=2, include_ground_truth=True, filters=["category", "Eq", "animal"])
    assert res.avg_recall == pytest.approx(1.0)
    # Asked for: the emulator returns it (live turbopuffer may omit it; these tests pin the
    # emulator's and the gateway's behaviour).
    assert res.ground_truth is not None, res
    assert len(res.ground_truth) == 2
    for gt in res.ground_truth:
        assert len(gt.query_vector) == 3
        assert len(gt.nearest_neighbors) <= 2
        assert {r.id for r in gt.nearest_neighbors} <= {1, 2}


def test_recall_defaults(ns, emu):
    load_query_docs(ns, emu)
    res = ns.recall()
    assert res.avg_recall == pytest.approx(1.0)
    assert res.avg_exhaustive_count == pytest.approx(6)  # default top_k=10, capped by 6 docs


def test_explain_query(ns, emu):
    create_and_pause(ns, emu)
    _write(ns, 3)
    with api_error(BadRequestError, 400, contains=["index does not exist, cannot explain"]):
        ns.explain_query(rank_by=["id", "asc"], top_k=3)
    emu.flush(ns.id)
    res = ns.explain_query(rank_by=["id", "asc"], top_k=3, filters=["x", "Gt", 1])
    assert isinstance(res.plan_text, str) and res.plan_text


def test_explain_query_missing_namespace(tpuf):
    name = new_ns_name("missing")
    with api_error(NotFoundError, 404, not_found_text(name)):
        tpuf.namespace(name).explain_query(rank_by=["id", "asc"], top_k=1)


@pytest.mark.parametrize("page_size", [0, 1001])
def test_list_namespaces_page_size_out_of_range(tpuf, page_size):
    with pytest.raises(APIStatusError) as ei:
        tpuf.namespaces(page_size=page_size)
    assert 400 <= ei.value.status_code < 500


def test_list_namespaces_page_size_bounds_accepted(tpuf):
    prefix = new_ns_name("bounds") + "-"
    for c in "ab":
        _write(tpuf.namespace(prefix + c), 1)
    page = tpuf.namespaces(prefix=prefix, page_size=1)
    assert [n.id for n in page.namespaces] == [prefix + "a"]
    page = tpuf.namespaces(prefix=prefix, page_size=1000)
    assert [n.id for n in page.namespaces] == [prefix + "a", prefix + "b"]
    assert not page.next_cursor


def test_metadata_wire_shape(ns, emu):
    ns.write(
        upsert_rows=[{"id": 1, "vector": [1.0, 0.0], "title": "hello", "n": 1}],
        distance_metric="cosine_distance",
        schema={"title": {"type": "string", "full_text_search": True}},
    )
    emu.flush(ns.id)
    raw = ns.with_raw_response.metadata().json()
    for key in ("created_at", "updated_at", "last_write_at"):
        assert isinstance(raw.get(key), str) and raw[key].endswith("Z"), f"{key}: {raw.get(key)!r}"
    assert raw["encryption"] == {"mode": "default"}
    for name, attr in raw["schema"].items():
        assert all(v is not None for v in attr.values()), f"compact schema omits null keys: {name}={attr}"
    assert raw["schema"]["vector"]["ann"] == {"distance_metric": "cosine_distance"}
    for absent in ("read_only", "pinning", "sharding"):
        assert absent not in raw


def test_schema_verbose_wire_shape(ns):
    ns.write(
        upsert_rows=[{"id": 1, "vector": [1.0, 0.0], "title": "hello", "n": 1}],
        distance_metric="cosine_distance",
        schema={"title": {"type": "string", "full_text_search": True}},
    )
    raw = ns.with_raw_response.schema().json()
    assert raw["id"]["type"] == "uint"
    assert raw["vector"]["type"] == "[2]f32" and raw["vector"]["ann"] is True
    fts = raw["title"]["full_text_search"]
    assert isinstance(fts, dict), f"GET schema expands full_text_search: {fts!r}"
    for key in ("k1", "b", "k3", "tokenizer", "language", "stemming", "remove_stopwords",
                "case_sensitive", "max_token_length", "ascii_folding"):
        assert key in fts, f"full_text_search.{key} missing: {fts}"
    assert fts["k1"] == pytest.approx(1.2) and fts["b"] == pytest.approx(0.75) and fts["k3"] == pytest.approx(8.0)
    assert fts["max_token_length"] == 39
    # Documented defaults (SDK FullTextSearchConfig docstrings).
    assert fts["stemming"] is False and fts["remove_stopwords"] is True and fts["case_sensitive"] is False
    assert fts["ascii_folding"] is False and fts["language"] == "english" and fts["tokenizer"] == "word_v4"
    assert raw["title"]["filterable"] is False, "FTS attributes are not filterable by default"
    assert raw["n"]["type"] == "int"


def test_update_schema_validation(ns):
    from turbopuffer import UnprocessableEntityError

    from compat_helpers import DESERIALIZE_PREFIX

    ns.write(upsert_rows=[{"id": 1, "x": "a"}])
    with api_error(UnprocessableEntityError, 422, startswith=DESERIALIZE_PREFIX):
        ns.update_schema(schema={"y": {"filterable": True}})  # type: ignore[typeddict-item]
    with pytest.raises(APIStatusError) as ei:
        ns.update_schema(schema={"schema": {"x": "string"}})  # type: ignore[dict-item]
    assert 400 <= ei.value.status_code < 500
    assert "y" not in ns.schema()


def test_list_namespaces_malformed_cursor(tpuf):
    with pytest.raises(APIStatusError) as ei:
        tpuf.namespaces(cursor="%%%not-a-cursor%%%")
    assert 400 <= ei.value.status_code < 500


# ------------------------------------------------------------------------------------------
# Emulator indexer knobs (control plane)
# ------------------------------------------------------------------------------------------


def test_indexer_rows_per_sec_drains_gradually(ns, emu):
    import time

    ns.write(create_namespace=True, schema={"id": "uint"})
    # 5 rows/s: the 30 rows take 6 s to index, so the checks below see it still updating even
    # when the 30 writes are slow (a busy machine).
    emu.indexer(namespace=ns.id, paused=False, rows_per_sec=5)
    try:
        # One row per write, so the throttle is exercised whatever the WAL-entry granularity.
        for i in range(1, 31):
            ns.write(upsert_rows=[{"id": i, "x": i}])
        md = ns.metadata()
        assert md.index.status == "updating"
        first = md.index.unindexed_rows
        assert 0 < first <= 30
        time.sleep(1.0)
        md = ns.metadata()
        assert md.index.status == "updating", "30 rows at 5 rows/s cannot be indexed this fast"
        assert md.index.unindexed_rows < first, "indexer must make progress"
        assert md.approx_row_count == 30 - md.index.unindexed_rows
        # Strong reads see everything regardless.
        assert len(ns.query(rank_by=["id", "asc"], top_k=100, consistency=STRONG).rows) == 30
    finally:
        emu.indexer(namespace=ns.id, paused=False)
    wait_until(lambda: ns.metadata().index.status == "up-to-date", timeout=15.0, what="drained")
    assert ns.metadata().approx_row_count == 30


def test_indexer_rows_per_sec_bounds_a_single_large_write(ns, emu):
    import time

    ns.write(create_namespace=True, schema={"id": "uint"})
    emu.indexer(namespace=ns.id, paused=False, rows_per_sec=20)
    try:
        ns.write(upsert_rows=[{"id": i, "x": i} for i in range(1, 31)])
        time.sleep(0.3)
        md = ns.metadata()
        assert md.index.status == "updating", "30 rows at 20 rows/s cannot be indexed in 0.3 s"
    finally:
        emu.indexer(namespace=ns.id, paused=False)


def test_global_pause_and_flush(ns_factory, emu):
    a, b = ns_factory("ga"), ns_factory("gb")
    emu.pause()
    try:
        _write(a, 2)
        _write(b, 3)
        assert a.metadata().index.unindexed_rows == 2
        assert b.metadata().index.unindexed_rows == 3
        emu.flush()
        assert a.metadata().index.status == "up-to-date"
        assert b.metadata().approx_row_count == 3
    finally:
        emu.resume()
        emu.flush()


def test_eventual_query_sees_small_unindexed_tail(ns, emu, target):
    create_and_pause(ns, emu)
    # Through the gateway an eventual read is a stable read: once the (empty) namespace is
    # stable, the write below marks it updating and the read is cut at the watermark, which the
    # paused indexer keeps below the new rows (docs/src/stable-reads.md).
    target.wait_stable(ns)
    _write(ns, 4)
    res = ns.query(rank_by=["id", "asc"], top_k=10, consistency={"level": "eventual"})
    if target.is_gateway:
        assert ids(res.rows) == []
        # A strong read is forwarded unchanged: it sees the unindexed tail.
        res = ns.query(rank_by=["id", "asc"], top_k=10, consistency=STRONG)
        assert ids(res.rows) == [1, 2, 3, 4]
        assert res.performance.exhaustive_search_count == 4
        return
    # Eventual reads scan up to 128 MiB of unindexed WAL, so a tiny tail is visible.
    assert ids(res.rows) == [1, 2, 3, 4]
    assert res.performance.exhaustive_search_count == 4
