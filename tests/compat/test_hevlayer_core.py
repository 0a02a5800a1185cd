"""The published ``hevlayer`` 0.7.3 client against the gateway (gateway-core operations).

Covers the upstream-compatible operations the gateway core serves: ``write_namespace``,
``query_turbopuffer_namespace`` (the v1 query path), ``batch_query_namespace``,
``list_turbopuffer_namespaces``, schema get/update, ``explain_turbopuffer_query``,
``evaluate_turbopuffer_recall``, ``branch_namespace``, ``copy_namespace``, ``delete_namespace``,
plus the Layer error shapes the client parses (422 ``validation_error``, relayed upstream errors).

These tests only make sense through the gateway; with ``LAYER_COMPAT_TARGET=emulator`` they skip.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from hevlayer import AsyncHevlayer, HevlayerError

from compat_helpers import API_KEY, fresh, run


async def _client(target) -> AsyncHevlayer:
    return AsyncHevlayer(api_key=API_KEY, base_url=target.api_url)


def upstream_bodies(target, path_suffix: str) -> list[dict[str, Any]]:
    """Bodies the emulator received on paths ending with ``path_suffix``, oldest first."""
    r = httpx.get(f"{target.emu_url}/_emu/requests?limit=1000", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200, r.text
    log = r.json()["requests"]
    assert isinstance(log, list), r.text
    return [json.loads(r["body"]) for r in log if r["path"].endswith(path_suffix) and r["body"]]


def test_write_query_and_list_round_trip(layer):
    ns = fresh("rw")

    async def go():
        async with await _client(layer) as c:
            w = await c.write_namespace(
                ns,
                {
                    "upsert_rows": [
                        {"id": "a", "vector": [1.0, 0.0], "title": "alpha"},
                        {"id": "b", "vector": [0.0, 1.0], "title": "beta"},
                    ],
                    "distance_metric": "euclidean_squared",
                },
            )
            assert (w.status, w.rows_affected, w.rows_upserted) == ("OK", 2, 2)
            assert isinstance(w.billing, dict)

            # The default (stable) read sees the write once the gateway reports the namespace stable.
            layer.wait_stable(ns)
            q = await c.query_turbopuffer_namespace(
                ns, {"rank_by": ["vector", "ANN", [1.0, 0.0]], "top_k": 2, "include_attributes": ["title"]}
            )
            assert [r["id"] for r in q.rows] == ["a", "b"]
            assert q.rows[0]["title"] == "alpha"
            assert q.rows[0]["$dist"] == pytest.approx(0.0)
            assert q.rows[1]["$dist"] == pytest.approx(2.0)

            b = await c.batch_query_namespace(
                ns,
                {
                    "queries": [
                        {"rank_by": ["vector", "ANN", [0.0, 1.0]], "top_k": 1},
                        {"rank_by": ["id", "asc"], "top_k": 2},
                    ]
                },
            )
            assert [[r["id"] for r in res.rows] for res in b.results] == [["b"], ["a", "b"]]

            listing = await c.list_turbopuffer_namespaces(prefix=ns)
            assert [n.id for n in listing.namespaces] == [ns]

    run(go())
    # The write reached the upstream stamped; the caller's attributes are untouched.
    sent = upstream_bodies(layer, f"/v2/namespaces/{ns}")[-1]
    for row in sent["upsert_rows"]:
        assert isinstance(row["_hevlayer_upserted_at"], int)
    assert [r["title"] for r in sent["upsert_rows"]] == ["alpha", "beta"]


def test_schema_explain_recall_and_delete(layer):
    ns = fresh("schema")

    async def go():
        async with await _client(layer) as c:
            await c.write_namespace(
                ns,
                {"upsert_rows": [{"id": 1, "vector": [0.5, 0.5], "body": "hello world"}], "distance_metric": "cosine_distance"},
            )
            updated = await c.update_turbopuffer_namespace_schema(
                ns, {"body": {"type": "string", "full_text_search": True}}
            )
            schema = updated.model_dump()
            assert schema["body"]["full_text_search"]["tokenizer"] == "word_v4"
            got = (await c.get_turbopuffer_namespace_schema(ns)).model_dump()
            assert got["vector"]["type"] == "[2]f32"

            # Let the emulator's indexer build the index before explaining.
            layer.emu.flush(ns)
            plan = await c.explain_turbopuffer_query(ns, {"rank_by": ["body", "BM25", "hello"], "top_k": 1})
            assert plan.plan_text and "Bm25" in plan.plan_text

            recall = await c.evaluate_turbopuffer_recall(ns, {"num": 1, "top_k": 1})
            assert recall.avg_recall == pytest.approx(1.0)
            assert recall.avg_ann_count == pytest.approx(1.0)

            deleted = await c.delete_namespace(ns)
            assert deleted.status == "OK"
            with pytest.raises(HevlayerError) as e:
                await c.get_turbopuffer_namespace_schema(ns)
            assert e.value.status_code == 404
            assert "was not found" in str(e.value.error)

    run(go())


def test_branch_and_copy(layer):
    src, branch, copy = fresh("src"), fresh("branch"), fresh("copy")

    async def go():
        async with await _client(layer) as c:
            await c.write_namespace(src, {"upsert_rows": [{"id": 1, "k": "v"}, {"id": 2, "k": "w"}]})
            br = await c.branch_namespace(branch, {"branch_from_namespace": {"source_namespace": src}})
            assert br.status == "OK" and br.rows_affected == 2
            cp = await c.copy_namespace(copy, {"copy_from_namespace": src})
            assert cp.status == "OK" and cp.rows_affected == 2
            layer.wait_stable(copy)
            q = await c.query_turbopuffer_namespace(copy, {"rank_by": ["id", "asc"], "top_k": 10, "include_attributes": ["k"]})
            assert [(r["id"], r["k"]) for r in q.rows] == [(1, "v"), (2, "w")]

    run(go())


def test_layer_errors_parse_in_the_client(layer):
    ns = fresh("errors")

    async def go():
        async with await _client(layer) as c:
            with pytest.raises(HevlayerError) as e:
                await c.write_namespace(ns, {"upsert_rows": [{"id": 1, "_hevlayer_upserted_at": 1}]})
            assert e.value.status_code == 422
            assert e.value.error == "validation_error"
            assert "_hevlayer_" in e.value.message

            with pytest.raises(HevlayerError) as e:
                await c.write_namespace(ns, {"nothing_to_do": True})
            assert (e.value.status_code, e.value.error) == (422, "validation_error")

            # Upstream errors are relayed verbatim (the envelope's text lands in `error`).
            with pytest.raises(HevlayerError) as e:
                await c.query_turbopuffer_namespace(ns, {"rank_by": ["id", "asc"], "top_k": 1})
            assert e.value.status_code == 404
            assert e.value.error == f"🤷 namespace '{ns}' was not found"

        async with AsyncHevlayer(api_key="not-the-key", base_url=layer.api_url) as bad:
            with pytest.raises(HevlayerError) as e:
                await bad.list_turbopuffer_namespaces()
            assert (e.value.status_code, e.value.error) == (401, "unauthorized")

    run(go())


def test_metadata_listing_and_stable_as_of_parse(layer):
    ns = fresh("meta")

    async def go():
        async with await _client(layer) as c:
            await c.write_namespace(ns, {"upsert_rows": [{"id": "x", "vector": [0.1, 0.9]}], "distance_metric": "cosine_distance"})
            # The gateway's watcher observes the namespace stable within a few poll intervals
            # (about a second; 20 s is a deadline for a hang).
            meta = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                meta = await c.get_namespace_metadata(ns)
                if meta.layer and meta.layer.is_stable:
                    break
                await asyncio.sleep(0.05)
            assert meta is not None and meta.id == ns
            assert meta.layer.is_stable is True
            assert isinstance(meta.layer.stable_as_of, int)
            assert meta.layer.indexed is None and meta.layer.index_lag_rows is None
            assert meta.approx_row_count == 1

            v1 = await c.get_turbopuffer_v1_namespace_metadata(ns)
            assert v1.id == ns

            listing = await c.list_namespaces(prefix=ns, page_size=10)
            assert [n.name for n in listing.namespaces] == [ns]
            row = listing.namespaces[0]
            assert row.row_count == 1 and row.is_stable is True
            assert row.cache_state.state == "cold"

            b = await c.batch_query_namespace(
                ns, {"queries": [{"rank_by": ["id", "asc"], "top_k": 1}, {"rank_by": ["vector", "ANN", [0.1, 0.9]], "top_k": 1}]}
            )
            assert b.stable_as_of >= meta.layer.stable_as_of, "the watermark never moves backwards"
            assert [r.rows[0]["id"] for r in b.results] == ["x", "x"]

    run(go())


def test_query_namespace_hybrid_auto_and_vector_shapes(layer):
    ns = fresh("hybrid")

    async def go():
        async with await _client(layer) as c:
            await c.write_namespace(
                ns,
                {
                    "upsert_rows": [
                        {"id": "t1", "vector": [1.0, 0.0], "content": "Connection timeout on Kubernetes ingress"},
                        {"id": "t2", "vector": [0.0, 1.0], "content": "Billing page shows wrong currency"},
                    ],
                    "distance_metric": "cosine_distance",
                    "schema": {"content": {"type": "string", "full_text_search": True, "fuzzy": True}},
                },
            )
            layer.wait_stable(ns)
            r = await c.query_namespace(
                ns,
                {"rank_by": ["content", "HybridText", "conection timout kubernets"], "top_k": 3, "include_attributes": ["content"]},
                raw_query="conection timout kubernets",
                tags=["suite:compat", "feature:hybrid"],
            )
            assert r.rows[0]["id"] == "t1"
            assert r.hybrid.tokens == ["conection", "timout", "kubernets"]
            assert r.hybrid.legs == 4 and r.hybrid.rank_constant == 60

            auto = await c.query_namespace(ns, {"rank_by": ["content", "Auto", "billing currency"], "top_k": 3})
            assert auto.routing.route == "hybrid_text" and auto.routing.executed is True
            assert auto.rows[0]["id"] == "t2"
            deferred = await c.query_namespace(ns, {"rank_by": ["content", "Auto", "why does billing show the wrong currency"], "top_k": 3})
            assert deferred.routing.executed is False and deferred.rows == []
            fused = await c.query_namespace(
                ns, {"rank_by": ["content", "Auto", "why does billing show the wrong currency", {"vector": [0.0, 1.0]}], "top_k": 2}
            )
            assert fused.routing.route == "fused" and fused.routing.executed is True
            assert fused.rows[0]["id"] == "t2"

            by_vector = await c.query_namespace(ns, {"vector": [1.0, 0.0], "top_k": 1})
            assert [row["id"] for row in by_vector.rows] == ["t1"]
            by_id = await c.query_namespace(ns, {"nearest_to_id": ["t2"], "top_k": 1})
            assert [row["id"] for row in by_id.rows] == ["t2"]
            with pytest.raises(HevlayerError) as e:
                await c.query_namespace(ns, {"nearest_to_id": ["nope"], "top_k": 1})
            assert e.value.status_code == 404

    run(go())


def test_fetch_document_and_documents(layer):
    ns = fresh("fetch")

    async def go():
        async with await _client(layer) as c:
            await c.write_namespace(ns, {"upsert_rows": [{"id": "a", "title": "alpha"}, {"id": "b", "title": "bravo"}]})
            # "c" is written around the gateway (straight to upstream): nothing caches it, so
            # its first fetch is a miss.
            r = layer.emu.raw("POST", f"/v2/namespaces/{ns}", json={"upsert_rows": [{"id": "c", "title": "charlie"}]})
            assert r.status_code == 200, r.text
            first = await c.fetch_document(ns, "c", with_perf=True)
            assert first.data.id == "c" and first.data.attributes == {"title": "charlie"}
            assert first.perf.cache_status == "miss"

            async def until_hit(doc_id: str, title: str) -> list:
                statuses = []
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    again = await c.fetch_document(ns, doc_id, include_attributes=["title"], with_perf=True)
                    assert again.data.id == doc_id and again.data.attributes == {"title": title}
                    statuses.append(again.perf.cache_status)
                    if statuses[-1] == "hit":
                        break
                    await asyncio.sleep(0.05)
                return statuses

            # The first fetch backfilled the shared tier (in the background): a later fetch, on
            # whichever shard, must hit it.
            statuses = await until_hit("c", "charlie")
            assert statuses[-1] == "hit", f"the backfill never served a hit: {statuses}"
            # "a" was written through the gateway: with the write-path mirror off (its default)
            # the first fetch reads it from origin and backfills the cache; a later one hits.
            statuses = await until_hit("a", "alpha")
            assert statuses[-1] == "hit", f"the backfill never served a hit: {statuses}"
            batch = await c.fetch_documents(ns, {"ids": ["b", "missing-id", "a"]})
            assert [d.id for d in batch.documents] == ["b", "a"]
            assert batch.missing == ["missing-id"]
            with pytest.raises(HevlayerError) as e:
                await c.fetch_document(ns, "missing-id")
            assert e.value.status_code == 404
            # A write through the gateway is visible to the next fetch.
            await c.write_namespace(ns, {"patch_rows": [{"id": "a", "title": "alpha-2"}]})
            assert (await c.fetch_document(ns, "a")).attributes == {"title": "alpha-2"}

    run(go())
