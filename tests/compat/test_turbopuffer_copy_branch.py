"""copy_from, branch_from, start_copy_from + poll_copy_from, and the write-body forms of both."""

from __future__ import annotations

import time

import pytest
from turbopuffer import APIStatusError

from compat_helpers import STRONG, error_text, f32v, fetch_all, header, ids

DOCS = [
    {"id": 1, "vector": [1.0, 0.0], "title": "alpha", "n": 1},
    {"id": 2, "vector": [0.0, 1.0], "title": "beta", "n": 2},
    {"id": 3, "vector": [0.6, 0.8], "title": "gamma", "n": 3},
]


@pytest.fixture
def src(ns_factory, emu):
    handle = ns_factory("src")
    handle.write(
        upsert_rows=DOCS,
        distance_metric="euclidean_squared",
        schema={"title": {"type": "string", "full_text_search": True}},
    )
    emu.flush(handle.id)
    return handle


def _assert_same_docs(ns):
    docs = fetch_all(ns)
    assert sorted(docs) == [1, 2, 3]
    for d in DOCS:
        got = docs[d["id"]]
        assert got["title"] == d["title"] and got["n"] == d["n"]
        assert got["vector"] == pytest.approx(f32v(d["vector"]))


def _poll_until_finished(ns, token, timeout=10.0):
    deadline = time.monotonic() + timeout
    seen_running = False
    while True:
        op = ns.poll_copy_from(token)
        if op.status == "finished":
            return op, seen_running
        assert op.status == "running"
        assert op.start_time is not None
        seen_running = True
        assert time.monotonic() < deadline, "copy operation never finished"
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------
# copy_from (sync overload)
# ------------------------------------------------------------------------------------------


def test_copy_from(ns, src):
    res = ns.copy_from(source_namespace=src.id)
    assert res.status == "OK"
    assert res.rows_affected == 3
    _assert_same_docs(ns)
    # Distance metric and schema travel with the copy: ANN works without re-declaring.
    assert ids(ns.query(rank_by=["vector", "ANN", [0.0, 0.9]], top_k=1, consistency=STRONG).rows) == [2]
    assert ids(ns.query(rank_by=["title", "BM25", "gamma"], top_k=3, consistency=STRONG).rows) == [3]
    assert ns.schema()["title"].full_text_search not in (None, False)
    # The copy is independent of its source.
    ns.write(deletes=[1])
    assert sorted(fetch_all(src)) == [1, 2, 3]


def test_copy_from_wire_shape(ns, src, emu, target):
    emu.clear_requests()
    ns.copy_from(source_namespace=src.id)
    if target.is_gateway:
        pytest.skip("upstream wire shape is the gateway's business")
    import json

    reqs = [r for r in emu.requests_for(ns.id) if r["method"] == "POST"]
    assert reqs[0]["path"] == f"/v2/namespaces/{ns.id}"
    assert "stainless_overload=copyFrom" in (reqs[0].get("query") or "")
    assert json.loads(reqs[0]["body"]) == {"copy_from_namespace": {"source_namespace": src.id}}
    assert header(reqs[0], "prefer") == "respond-async"


def test_copy_from_into_existing_namespace_fails(ns, src):
    ns.write(upsert_rows=[{"id": 100, "z": 1}])
    with pytest.raises(APIStatusError) as ei:
        ns.copy_from(source_namespace=src.id)
    assert ei.value.status_code == 400
    assert "destination namespace already exists" in error_text(ei.value)
    assert sorted(fetch_all(ns)) == [100]


def test_copy_from_via_write_string_form(ns, src):
    res = ns.write(copy_from_namespace=src.id)  # type: ignore[arg-type]
    assert res.status == "OK"
    _assert_same_docs(ns)


def test_copy_from_via_write_object_form(ns, src):
    res = ns.write(copy_from_namespace={"source_namespace": src.id})
    assert res.status == "OK"
    _assert_same_docs(ns)


def test_copy_mixed_with_documents_rejected(ns, src):
    with pytest.raises(APIStatusError) as ei:
        ns.write(copy_from_namespace=src.id, upsert_rows=[{"id": 9, "n": 9}])  # type: ignore[arg-type]
    assert 400 <= ei.value.status_code < 500
    assert not ns.exists()


# ------------------------------------------------------------------------------------------
# start_copy_from / poll_copy_from
# ------------------------------------------------------------------------------------------


def test_start_and_poll_copy_from(ns, src):
    started = ns.start_copy_from(source_namespace=src.id)
    assert isinstance(started.token, str) and started.token
    op, _ = _poll_until_finished(ns, started.token)
    assert op.finish_time >= op.start_time
    assert hasattr(op.result, "success"), f"expected success result, got {op.result!r}"
    assert op.result.success.status == "OK"
    assert op.result.success.rows_affected == 3
    _assert_same_docs(ns)


def test_start_copy_from_response_is_202_with_location(ns, src, target):
    raw = ns.with_raw_response.start_copy_from(source_namespace=src.id)
    assert raw.status_code == 202
    token = raw.parse().token
    location = raw.headers.get("location")
    if location is not None:
        assert location.endswith(f"/v1/namespaces/{ns.id}/operations/{token}")
    _poll_until_finished(ns, token)
    _assert_same_docs(ns)


def test_start_copy_from_into_existing_reports_error_result(ns, src):
    ns.write(upsert_rows=[{"id": 100, "z": 1}])
    started = ns.start_copy_from(source_namespace=src.id)
    op, _ = _poll_until_finished(ns, started.token)
    assert hasattr(op.result, "error"), f"expected error result, got {op.result!r}"
    err = op.result.error
    assert err.status_code == 400
    assert err.detail.status == "error"
    assert "destination namespace already exists" in err.detail.error
    assert sorted(fetch_all(ns)) == [100]


def test_poll_unknown_operation(ns):
    ns.write(upsert_rows=[{"id": 1}])
    with pytest.raises(APIStatusError) as ei:
        ns.poll_copy_from("no-such-token")
    assert 400 <= ei.value.status_code < 500


# ------------------------------------------------------------------------------------------
# branch_from
# ------------------------------------------------------------------------------------------


def test_branch_from_is_independent(ns, src):
    res = ns.branch_from(source_namespace=src.id)
    assert res.status == "OK"
    _assert_same_docs(ns)
    ns.write(upsert_rows=[{"id": 4, "vector": [0.5, 0.5], "title": "delta", "n": 4}], deletes=[1])
    src.write(patch_rows=[{"id": 2, "n": 200}])
    assert sorted(fetch_all(ns)) == [2, 3, 4]
    assert fetch_all(ns)[2]["n"] == 2
    assert sorted(fetch_all(src)) == [1, 2, 3]
    assert fetch_all(src)[2]["n"] == 200
    # The branch keeps the source's distance metric (euclidean_squared).
    rows = ns.query(rank_by=["vector", "ANN", [0.0, 0.0]], top_k=1, consistency=STRONG).rows
    assert rows[0].id == 4
    assert rows[0]["$dist"] == pytest.approx(0.5, abs=1e-6)


def test_branch_from_via_write(ns, src, emu, target):
    emu.clear_requests()
    res = ns.write(branch_from_namespace=src.id)  # type: ignore[arg-type]
    assert res.status == "OK"
    _assert_same_docs(ns)


def test_branch_from_wire_shape(ns, src, emu, target):
    emu.clear_requests()
    ns.branch_from(source_namespace=src.id)
    if target.is_gateway:
        pytest.skip("upstream wire shape is the gateway's business")
    import json

    reqs = [r for r in emu.requests_for(ns.id) if r["method"] == "POST"]
    assert "stainless_overload=branchFrom" in (reqs[0].get("query") or "")
    assert json.loads(reqs[0]["body"]) == {"branch_from_namespace": {"source_namespace": src.id}}


def test_branch_into_existing_namespace_fails(ns, src):
    ns.write(upsert_rows=[{"id": 100, "z": 1}])
    with pytest.raises(APIStatusError) as ei:
        ns.branch_from(source_namespace=src.id)
    assert 400 <= ei.value.status_code < 500
    assert sorted(fetch_all(ns)) == [100]


def test_copy_from_with_optional_params(ns, src):
    from compat_helpers import API_KEY

    res = ns.copy_from(
        source_namespace=src.id,
        source_api_key=API_KEY,
        dest_encryption={"mode": "default"},
    )
    assert res.status == "OK"
    _assert_same_docs(ns)
    assert ns.metadata().encryption.to_dict() == {"mode": "default"}


def test_copy_from_missing_source_fails(ns):
    from conftest import new_ns_name

    with pytest.raises(APIStatusError) as ei:
        ns.copy_from(source_namespace=new_ns_name("nosrc"))
    assert 400 <= ei.value.status_code < 500
    assert not ns.exists()


def test_branch_from_missing_source_fails(ns):
    from conftest import new_ns_name

    with pytest.raises(APIStatusError) as ei:
        ns.branch_from(source_namespace=new_ns_name("nosrc"))
    assert 400 <= ei.value.status_code < 500
    assert not ns.exists()


def test_branch_survives_source_deletion(ns, src):
    ns.branch_from(source_namespace=src.id)
    src.delete_all()
    _assert_same_docs(ns)
    assert not src.exists()
