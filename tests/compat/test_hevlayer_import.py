"""The published ``hevlayer`` 0.7.3 client's ``init_namespace`` and ``import_namespace`` against the
gateway (contract §1.11, §2.18).

``init_namespace`` answers ``InitNamespaceResponse`` with the metadata ``layer`` block (schema
version, init and shard state); the shard count it sets shows in ``get_namespace_metadata`` and
is honoured by writes and queries. ``import_namespace`` sends an Arrow IPC stream (built here with
pyarrow) as ``application/vnd.apache.arrow.stream``; the client ignores the answer, so the test
compares what a query returns with the same rows written as JSON through ``write_namespace``. A
cut stream raises ``HevlayerError`` 422 ``validation_error`` whose body names the batch and the
rows already written.

These tests only make sense through the gateway; with ``LAYER_COMPAT_TARGET=emulator`` they skip.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hevlayer import AsyncHevlayer, HevlayerError
from hevlayer.models import InitNamespaceRequest

from compat_helpers import API_KEY, fresh, run

N = 2_500
ATTRS = ["vector", "title", "n", "score", "ok", "tags", "color"]


async def _client(target) -> AsyncHevlayer:
    return AsyncHevlayer(api_key=API_KEY, base_url=target.api_url)


def _row(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "vector": [float(i % 7), (i % 5) / 4.0, -0.5],
        "title": None if i % 10 == 0 else f"doc {i}",
        "n": i - 1_000,
        "score": i / 3.0,
        "ok": i % 2 == 0,
        "tags": [f"t{i % 3}", f"u{i % 5}"],
        "color": ["red", "green", "blue"][i % 3],
    }


def _arrow(rows: list[dict[str, Any]], batch_rows: int) -> bytes:
    schema = pa.schema(
        [
            ("id", pa.uint64()),
            ("vector", pa.list_(pa.float32(), 3)),
            ("title", pa.string()),
            ("n", pa.int64()),
            ("score", pa.float64()),
            ("ok", pa.bool_()),
            ("tags", pa.list_(pa.string())),
            # A dictionary-encoded column, as pandas categoricals arrive.
            ("color", pa.dictionary(pa.int8(), pa.string())),
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as w:
        for batch in table.to_batches(max_chunksize=batch_rows):
            w.write_batch(batch)
    return sink.getvalue().to_pybytes()


async def _all_rows(c: AsyncHevlayer, ns: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        q: dict[str, Any] = {"rank_by": ["id", "asc"], "top_k": 1000, "include_attributes": ATTRS}
        if out:
            q["filters"] = ["id", "Gt", out[-1]["id"]]
        rows = (await c.query_turbopuffer_namespace(ns, q)).rows or []
        if not rows:
            return out
        out.extend(rows)


def test_init_answers_the_layer_block_and_sets_the_shard_count(layer):
    ns = fresh("init")

    async def go():
        async with await _client(layer) as c:
            r = await c.init_namespace(ns, InitNamespaceRequest(shard_count=3))
            assert r.namespace == ns
            assert (r.layer.schema_version, r.layer.init_state, r.layer.init_lag_rows) == (1, "ready", 0)
            assert (r.layer.shard_count, r.layer.shard_state, r.layer.scatter_gather_active) == (3, "ready", True)
            # Idempotent with the client's defaults; a different count is refused.
            again = await c.init_namespace(ns, InitNamespaceRequest())
            assert again.layer.shard_count == 3
            with pytest.raises(HevlayerError) as e:
                await c.init_namespace(ns, {"shard_count": 2})
            assert (e.value.status_code, e.value.error) == (409, "shard_count_conflict")

            await c.import_namespace(ns, _arrow([_row(i) for i in range(300)], 100))
            layer.wait_stable(ns)
            m = await c.get_namespace_metadata(ns)
            assert m.layer is not None and m.layer.shard_count == 3
            assert len(await _all_rows(c, ns)) == 300

    run(go())


def test_import_equals_the_same_rows_written_as_json(layer):
    arrow_ns, json_ns = fresh("imp-arrow"), fresh("imp-json")
    rows = [_row(i) for i in range(N)]

    async def go():
        async with await _client(layer) as c:
            # The client returns None whatever the gateway answers.
            assert await c.import_namespace(arrow_ns, _arrow(rows, 700)) is None
            await c.write_namespace(json_ns, {"upsert_rows": rows, "distance_metric": "cosine_distance"})
            layer.wait_stable(arrow_ns)
            layer.wait_stable(json_ns)
            imported = await _all_rows(c, arrow_ns)
            written = await _all_rows(c, json_ns)
            assert len(imported) == N
            assert imported[1]["title"] == "doc 1" and imported[1]["tags"] == ["t1", "u1"]
            assert imported[1]["color"] == "green"
            assert imported == written

    run(go())


def test_a_cut_stream_is_a_422_naming_the_batch(layer):
    ns = fresh("imp-cut")
    body = _arrow([_row(i) for i in range(300)], 100)

    async def go():
        async with await _client(layer) as c:
            with pytest.raises(HevlayerError) as e:
                await c.import_namespace(ns, body[:-150])
            assert (e.value.status_code, e.value.error) == (422, "validation_error")
            detail = e.value.response.json()
            assert (detail["batch"], detail["rows_written"]) == (2, 200), detail

    run(go())
