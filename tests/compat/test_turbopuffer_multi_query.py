"""ns.multi_query with and without RRF fusion."""

from __future__ import annotations

import pytest
from turbopuffer import BadRequestError, NotFoundError

from compat_helpers import (
    VECTORS,
    api_error,
    decode_b64_f32,
    f32v,
    group_dicts,
    ids,
    load_query_docs,
    not_found_text,
    query_docs,
    row_dicts,
)
from conftest import new_ns_name

Q = [0.9, 0.2, 0.1]
ANN = {"rank_by": ["vector", "ANN", Q], "top_k": 6}
BM25 = {"rank_by": ["title", "BM25", "fox"], "top_k": 6}


@pytest.fixture(scope="module")
def mns(tpuf, emu, target):
    """Shared (read-only) by this module; stable through the gateway, so its queries take the
    default (stable) path and see every document."""
    handle = tpuf.namespace(new_ns_name("mq"))
    load_query_docs(handle, emu)
    target.wait_stable(handle)
    return handle


def _rrf(result_lists, k=60, weights=None):
    weights = weights or [1.0] * len(result_lists)
    scores = {}
    for w, lst in zip(weights, result_lists):
        for rank, doc_id in enumerate(lst, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + w / (k + rank)
    return scores


def _assert_fused(rows, expected_scores, limit=None):
    ranked = sorted(expected_scores.items(), key=lambda kv: -kv[1])
    if limit is not None:
        ranked = ranked[:limit]
    assert len(rows) == len(ranked), f"got {[r['id'] for r in rows]}, expected {ranked}"
    for r in rows:
        assert "$score" in r, f"fused rows must carry $score: {r}"
        assert "$dist" not in r, f"fused rows carry $score, not $dist: {r}"
        assert r["$score"] == pytest.approx(expected_scores[r["id"]], rel=1e-6)
    got_scores = [r["$score"] for r in rows]
    assert got_scores == sorted(got_scores, reverse=True)
    # The returned rows must be exactly the best-scoring ones (ties at the cut may go either way).
    if ranked:
        cut = ranked[-1][1]
        assert all(expected_scores[r["id"]] >= cut - 1e-12 for r in rows)


def test_multi_query_without_rerank_matches_single_queries(mns):
    single_ann = row_dicts(mns.query(**ANN).rows)
    single_bm25 = row_dicts(mns.query(**BM25).rows)
    res = mns.multi_query(queries=[ANN, BM25])
    assert len(res.results) == 2
    multi_ann = row_dicts(res.results[0].rows)
    multi_bm25 = row_dicts(res.results[1].rows)
    assert [r["id"] for r in multi_ann] == [r["id"] for r in single_ann]
    assert [r["id"] for r in multi_bm25] == [r["id"] for r in single_bm25]
    for a, b in zip(multi_ann + multi_bm25, single_ann + single_bm25):
        assert a["$dist"] == pytest.approx(b["$dist"], rel=1e-6)
    assert res.billing is not None and res.performance is not None


def test_multi_query_subquery_filters_projection_and_aggregation(mns):
    res = mns.multi_query(
        queries=[
            {"rank_by": ["price", "desc"], "top_k": 2, "filters": ["category", "Eq", "animal"],
             "include_attributes": ["price"]},
            {"aggregate_by": {"n": ["Count"]}, "filters": ["active", "Eq", True]},
            {"aggregate_by": {"n": ["Count"]}, "group_by": ["category"]},
        ]
    )
    assert len(res.results) == 3
    assert row_dicts(res.results[0].rows) == [{"id": 2, "price": 20}, {"id": 1, "price": 10}]
    assert res.results[1].aggregations == {"n": 3}
    assert res.results[1].rows is None
    groups = group_dicts(res.results[2].aggregation_groups)
    assert groups == [
        {"category": "animal", "n": 2},
        {"category": "mineral", "n": 2},
        {"category": "plant", "n": 2},
    ]


def test_multi_query_root_vector_encoding(mns):
    res = mns.multi_query(
        queries=[{"rank_by": ["id", "asc"], "top_k": 1, "include_attributes": ["vector"]}],
        vector_encoding="base64",
        consistency={"level": "strong"},
    )
    row = row_dicts(res.results[0].rows)[0]
    assert row["id"] == 1
    assert decode_b64_f32(row["vector"]) == pytest.approx(f32v(VECTORS[1]))


def test_rrf_default_params(mns):
    ann_ids = ids(mns.query(**ANN).rows)
    bm25_ids = ids(mns.query(**BM25).rows)
    res = mns.multi_query(queries=[ANN, BM25], rerank_by=["RRF"])
    assert len(res.results) == 1, "rerank_by fuses the subqueries into a single result"
    _assert_fused(row_dicts(res.results[0].rows), _rrf([ann_ids, bm25_ids]))


def test_rrf_rank_constant_and_weights(mns):
    ann_ids = ids(mns.query(**ANN).rows)
    bm25_ids = ids(mns.query(**BM25).rows)
    res = mns.multi_query(
        queries=[ANN, BM25],
        rerank_by=["RRF", {"rank_constant": 5, "weights": [0.25, 2.0]}],
    )
    expected = _rrf([ann_ids, bm25_ids], k=5, weights=[0.25, 2.0])
    rows = row_dicts(res.results[0].rows)
    _assert_fused(rows, expected)
    # With BM25 weighted 8x, the BM25 hits lead.
    assert set(r["id"] for r in rows[:3]) == set(bm25_ids)


def test_rrf_limit_and_offset(mns):
    ann_ids = ids(mns.query(**ANN).rows)
    bm25_ids = ids(mns.query(**BM25).rows)
    expected = _rrf([ann_ids, bm25_ids], k=60)
    full = row_dicts(mns.multi_query(queries=[ANN, BM25], rerank_by=["RRF"]).results[0].rows)

    limited = row_dicts(mns.multi_query(queries=[ANN, BM25], rerank_by=["RRF"], limit=3).results[0].rows)
    _assert_fused(limited, expected, limit=3)
    assert [r["id"] for r in limited] == [r["id"] for r in full[:3]]

    paged = row_dicts(
        mns.multi_query(queries=[ANN, BM25], rerank_by=["RRF"], limit={"total": 2}, offset=2).results[0].rows
    )
    assert [r["id"] for r in paged] == [r["id"] for r in full[2:4]]


def test_rrf_single_subquery(mns):
    bm25_ids = ids(mns.query(**BM25).rows)
    res = mns.multi_query(queries=[BM25], rerank_by=["RRF", {"rank_constant": 1}])
    rows = row_dicts(res.results[0].rows)
    assert [r["id"] for r in rows] == bm25_ids
    _assert_fused(rows, _rrf([bm25_ids], k=1))


def test_multi_query_sixteen_subqueries_ok(mns):
    res = mns.multi_query(queries=[{"rank_by": ["id", "asc"], "top_k": i} for i in range(1, 17)])
    assert [len(r.rows) for r in res.results] == [min(i, 6) for i in range(1, 17)]


def test_multi_query_seventeen_subqueries_rejected(mns):
    with api_error(
        BadRequestError,
        400,
        "💔 multi-query exceeds per-namespace concurrency budget: requires 17 permits, max is 16 "
        "(see https://turbopuffer.com/docs/limits)",
    ):
        mns.multi_query(queries=[{"rank_by": ["id", "asc"], "top_k": 1}] * 17)


def test_multi_query_empty_rejected(mns):
    with api_error(BadRequestError, 400, "💔 must send at least one sub-query"):
        mns.multi_query(queries=[])


def test_multi_query_subquery_validation(mns):
    with api_error(BadRequestError, 400, "💔 top_k must be between 1 and 10000"):
        mns.multi_query(queries=[{"rank_by": ["id", "asc"], "top_k": 0}])


def test_multi_query_missing_namespace(tpuf):
    name = new_ns_name("missing")
    with api_error(NotFoundError, 404, not_found_text(name)):
        tpuf.namespace(name).multi_query(queries=[{"rank_by": ["id", "asc"], "top_k": 1}])


def test_multi_query_wire_overload_param(mns, emu, target):
    emu.clear_requests()
    mns.multi_query(queries=[{"rank_by": ["id", "asc"], "top_k": 1}])
    if target.is_gateway:
        pytest.skip("wire shape of the upstream request is the gateway's business")
    reqs = [r for r in emu.requests_for(mns.id) if r["path"].endswith("/query")]
    assert reqs, "multi-query request not logged"
    assert reqs[-1]["method"] == "POST"
    assert reqs[-1]["path"] == f"/v2/namespaces/{mns.id}/query"
    assert "stainless_overload=multiQuery" in (reqs[-1].get("query") or "")


@pytest.mark.parametrize(
    "rerank_by",
    [["RRF", {"rank_constant": 0}], ["RRF", {"weights": [1.0]}], ["RRF", {"weights": [1.0, -1.0]}]],
    ids=["rank_constant=0", "weights-count-mismatch", "negative-weight"],
)
def test_rrf_invalid_params_rejected(mns, rerank_by):
    from turbopuffer import APIStatusError

    with pytest.raises(APIStatusError) as ei:
        mns.multi_query(queries=[ANN, BM25], rerank_by=rerank_by)
    assert 400 <= ei.value.status_code < 500


def test_offset_without_rerank_rejected(mns):
    from turbopuffer import APIStatusError

    with pytest.raises(APIStatusError) as ei:
        mns.multi_query(queries=[ANN, BM25], offset=1, limit=2)
    assert 400 <= ei.value.status_code < 500


def test_rrf_mixes_attribute_order_and_carries_attributes(mns):
    by_price = {"rank_by": ["price", "desc"], "top_k": 4, "include_attributes": ["title"]}
    ann = {**ANN, "include_attributes": ["title"]}
    ann_ids = ids(mns.query(**ann).rows)
    price_ids = ids(mns.query(**by_price).rows)
    assert price_ids == [6, 5, 3, 2]
    res = mns.multi_query(queries=[ann, by_price], rerank_by=["RRF", {"rank_constant": 2}])
    rows = row_dicts(res.results[0].rows)
    _assert_fused([{k: v for k, v in r.items() if k != "title"} for r in rows], _rrf([ann_ids, price_ids], k=2))
    titles = {d["id"]: d["title"] for d in query_docs()}
    for r in rows:
        assert r.get("title") == titles[r["id"]], f"fused rows keep requested attributes: {r}"


def test_multi_query_malformed_queries(mns):
    from turbopuffer import UnprocessableEntityError

    from compat_helpers import DESERIALIZE_PREFIX

    with api_error(
        UnprocessableEntityError,
        422,
        startswith=DESERIALIZE_PREFIX,
        contains=['invalid type: string "bad", expected a sequence'],
    ):
        mns.multi_query(queries="bad")  # type: ignore[arg-type]
    with api_error(
        UnprocessableEntityError, 422, startswith=DESERIALIZE_PREFIX, contains=["expected struct QueryRankBy"]
    ):
        mns.multi_query(queries=["bad"])  # type: ignore[list-item]
