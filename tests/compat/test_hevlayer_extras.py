"""The published ``hevlayer`` 0.7.3 client against the families that live only in the client and
the read-only control routes: checkpoints, blobs, the license, capabilities, vector stores and
warehouses, metadata PATCH, ``patch_columns``, ``wait_for_scan``, cursor pagination of
``query_namespace``, and HEAD on GET routes. Every response must parse into the client's strict
models. Gateway only.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import httpx
import pytest
from hevlayer import AsyncHevlayer, HevlayerError
from hevlayer.models import QueryRequest

import hevlayer_ops
from compat_helpers import API_KEY, fresh


def client(layer) -> AsyncHevlayer:
    return AsyncHevlayer(api_key=API_KEY, base_url=layer.api_url)


async def wait_history(c: AsyncHevlayer, ns: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        h = await c.list_namespace_history(ns)
        if h:
            return h
        assert time.monotonic() < deadline, "no snapshot history"
        await asyncio.sleep(0.1)


async def wait_stable(c: AsyncHevlayer, ns: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        m = await c.get_namespace_metadata(ns)
        if m.layer and m.layer.is_stable:
            return m
        assert time.monotonic() < deadline, f"{ns} never became stable: {m!r}"
        await asyncio.sleep(0.1)


def test_checkpoints_pin_the_snapshot_and_list_newest_first(layer):
    ns = fresh("ckpt")

    async def go():
        async with client(layer) as c:
            with pytest.raises(HevlayerError) as e:
                await c.create_checkpoint(ns, {"label": "before-any-snapshot"})
            assert e.value.status_code == 409
            await c.put_snapshot_policy(ns, {"facetFields": ["color"], "interval": "1s", "retention": "never"})
            rows = [{"id": i, "vector": [float(i), 1.0], "color": ["red", "blue"][i % 2]} for i in range(20)]
            await c.write_namespace(ns, {"upsert_rows": rows, "distance_metric": "euclidean_squared"})
            (entry, *_) = await wait_history(c, ns)
            first = await c.create_checkpoint(ns, {"label": "release:2026-12"})
            assert (first.namespace, first.label, first.sha) == (ns, "release:2026-12", entry.sha)
            assert first.row_count == 20 and first.watermark_ms == entry.watermark_ms
            second = await c.create_checkpoint(ns, {"label": "nightly"})
            got = await c.get_checkpoint(ns, "release:2026-12")
            assert got == first
            listed = await c.list_checkpoints(ns)
            assert [k.label for k in listed.checkpoints] == [second.label, first.label]
            page = await c.list_checkpoints(ns, limit=1)
            assert [k.label for k in page.checkpoints] == ["nightly"] and page.next_cursor
            rest = await c.list_checkpoints(ns, limit=1, before=page.next_cursor)
            assert [k.label for k in rest.checkpoints] == ["release:2026-12"]
            with pytest.raises(HevlayerError) as e:
                await c.create_checkpoint(ns, {"label": "nightly"})
            assert e.value.status_code == 409
            with pytest.raises(HevlayerError) as e:
                await c.create_checkpoint(ns, {"label": "no spaces allowed"})
            assert e.value.status_code == 422
            with pytest.raises(HevlayerError) as e:
                await c.get_checkpoint(ns, "missing")
            assert e.value.status_code == 404

    asyncio.run(go())


def test_blobs_round_trip_byte_identical(layer):
    ns = fresh("blob")
    data = os.urandom(1 << 20) + b"\x00\xff" * 7

    async def go():
        async with client(layer) as c:
            put = await c.put_blob(ns, data, warm=True)
            assert put.sha256 == hashlib.sha256(data).hexdigest() and put.size == len(data)
            assert put.ref
            again = await c.put_blob(ns, data)
            assert again.sha256 == put.sha256, "content-addressed and idempotent"
            assert await c.get_blob(ns, put.sha256) == data
            with pytest.raises(HevlayerError) as e:
                await c.get_blob(ns, "0" * 64)
            assert e.value.status_code == 404
            with pytest.raises(HevlayerError) as e:
                await c.get_blob(ns, "not-a-hash")
            assert e.value.status_code == 422

    asyncio.run(go())


def test_license_floor_stores_warehouses_and_capabilities(layer):
    ns = fresh("caps")

    async def go():
        async with client(layer) as c:
            lic = await c.get_license()
            # No license file configured: the floor state, with its reason; nothing stops.
            assert lic.valid is False and lic.gateway.state == "floor" and lic.reason

            stores = await c.list_vectorstores()
            (default,) = [s for s in stores.vectorstores if s.default]
            store = await c.get_vectorstore(default.name)
            assert store.name == default.name and store.kind == "turbopuffer"
            store_caps = await c.get_vector_store_capabilities(default.name)
            assert store_caps.declared and store_caps.store.name == default.name

            warehouses = await c.list_warehouses()
            assert [w.name for w in warehouses.warehouses] == ["compat-snowflake"]
            wh = await c.get_warehouse("compat-snowflake")
            assert wh.name == "compat-snowflake"
            with pytest.raises(HevlayerError) as e:
                await c.get_warehouse("nope")
            assert e.value.status_code == 404

            # Capabilities follow each namespace's schema: text only, and text with vectors.
            await c.write_namespace(
                ns,
                {
                    "upsert_rows": [{"id": 1, "title": "red shoes"}],
                    "schema": {"title": {"type": "string", "full_text_search": True}},
                },
            )
            caps = {f.id: f.support for f in (await c.get_namespace_capabilities(ns)).features}
            assert (caps["full_text_search"], caps["vector_search"], caps["hybrid_text"]) == (
                "supported",
                "unsupported",
                "unsupported",
            )
            both = ns + "-both"
            await c.write_namespace(
                both,
                {
                    "upsert_rows": [{"id": 2, "title": "blue hat", "vector": [0.1, 0.2]}],
                    "distance_metric": "cosine_distance",
                    "schema": {"title": {"type": "string", "full_text_search": True}},
                },
            )
            report = await c.get_namespace_capabilities(both)
            caps = {f.id: f.support for f in report.features}
            assert caps["hybrid_text"] == "supported" and caps["vector_search"] == "supported"

    asyncio.run(go())


def test_metadata_patch_patch_columns_and_wait_for_scan(layer):
    ns = fresh("misc")

    async def go():
        async with client(layer) as c:
            await c.write_namespace(
                ns, {"upsert_rows": [{"id": f"d{i}", "color": "red"} for i in range(6)]}
            )
            meta = await c.update_turbopuffer_namespace_metadata(ns, {})
            assert meta.id == ns and meta.approx_row_count >= 0
            await c.patch_columns(ns, ["d0", "d1"], {"color": ["blue", "blue"]})
            await wait_stable(c, ns)
            # An ids job (create_scan answers it running or done); wait_for_scan polls it.
            job = await c.create_scan(ns, {"mode": "ids", "filters": ["color", "Eq", "blue"]})
            done = await c.wait_for_scan(ns, job.id, timeout=30)
            assert done.status == "completed", done
            ids = await c.get_scan_results(ns, job.id)
            assert sorted(ids.ids) == ["d0", "d1"]

    asyncio.run(go())


def test_query_namespace_pages_by_cursor(layer):
    ns = fresh("page")
    rows = [{"id": i, "rank": i % 4} for i in range(25)]

    async def go():
        async with client(layer) as c:
            await c.write_namespace(ns, {"upsert_rows": rows})
            await wait_stable(c, ns)
            want = sorted(((r["rank"], r["id"]) for r in rows), key=lambda x: (-x[0], x[1]))
            # The client's QueryRequest model (it always sends include_leg_breakdown) and a dict
            # with "cursor": None (a Layer key) page alike; a native dict does not page.
            for as_model in (False, True):
                seen, cursor, pages = [], None, 0
                while True:
                    body = {"rank_by": ["rank", "desc"], "top_k": 10, "include_attributes": ["rank"], "cursor": cursor}
                    page = await c.query_namespace(ns, QueryRequest(**body) if as_model else body)
                    pages += 1
                    seen += [(r["rank"], r["id"]) for r in page.rows]
                    cursor = page.next_cursor
                    if not cursor:
                        break
                assert (pages, seen) == (3, want), as_model
            native = await c.query_namespace(ns, {"rank_by": ["rank", "desc"], "top_k": 10})
            assert native.next_cursor is None and len(native.rows) == 10
            with pytest.raises(HevlayerError) as e:
                await c.query_namespace(ns, {"vector": [0.1, 0.2], "top_k": 10, "cursor": "x"})
            assert e.value.status_code == 422

    asyncio.run(go())


def test_head_on_get_routes_has_the_get_status_and_headers_and_no_body(layer):
    ns = fresh("head")

    async def go():
        async with client(layer) as c:
            await c.write_namespace(ns, {"upsert_rows": [{"id": 1, "a": 1}]})

    asyncio.run(go())
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=layer.api_url, headers=auth) as h:
        for path in ["/v2/license", f"/v2/namespaces/{ns}/metadata", "/v2/vectorstores", "/v2/namespaces/nope-x/checkpoints/x"]:
            got, head = h.get(path), h.head(path)
            assert head.status_code == got.status_code, path
            assert head.content == b"", path
            assert head.headers.get("content-type") == got.headers.get("content-type"), path


def test_the_operation_recorder_sees_outermost_calls(layer):
    # The client's protocol: 102 methods in hevlayer 0.7.3 (the 92 HTTP operations and the
    # helpers built on them, such as wait_for_scan and patch_columns).
    assert len(hevlayer_ops.operations()) >= 92

    async def go():
        async with client(layer) as c:
            await c.get_license()

    asyncio.run(go())
    assert "get_license" in hevlayer_ops.CALLED
