"""The asyncio client (AsyncTurbopuffer) hits the same routes; smoke-test its main methods."""

from __future__ import annotations

import asyncio

import turbopuffer

from compat_helpers import API_KEY, STRONG, not_found_text
from conftest import new_ns_name


def test_async_client_round_trip(target):
    async def run():
        async with turbopuffer.AsyncTurbopuffer(
            api_key=API_KEY, base_url=target.api_url, max_retries=1, timeout=15.0
        ) as client:
            name = new_ns_name("async")
            ns = client.namespace(name)
            assert await ns.exists() is False
            res = await ns.write(
                upsert_rows=[{"id": 1, "vector": [1.0, 0.0], "t": "a"}, {"id": 2, "vector": [0.0, 1.0], "t": "b"}],
                distance_metric="cosine_distance",
            )
            assert res.rows_upserted == 2
            # Strong: reads its own write through the gateway too (no stable-read cut).
            q = await ns.query(
                rank_by=["vector", "ANN", [0.1, 0.9]], top_k=2, include_attributes=["t"], consistency=STRONG
            )
            assert [(r.id, r["t"]) for r in q.rows] == [(2, "b"), (1, "a")]
            mq = await ns.multi_query(
                queries=[{"rank_by": ["id", "asc"], "top_k": 1}, {"aggregate_by": {"n": ["Count"]}}],
                consistency=STRONG,
            )
            assert [r.id for r in mq.results[0].rows] == [1] and mq.results[1].aggregations == {"n": 2}
            md = await ns.metadata()
            assert md.schema_["t"].type == "string"
            schema = await ns.schema()
            assert schema["vector"].type == "[2]f32"
            page = await client.namespaces(prefix=name)
            assert [n.id for n in page.namespaces] == [name]
            assert (await ns.delete_all()).status == "OK"
            try:
                await ns.metadata()
            except turbopuffer.NotFoundError as e:
                assert e.body["error"] == not_found_text(name)
            else:
                raise AssertionError("metadata of a deleted namespace must 404")

    asyncio.run(run())
