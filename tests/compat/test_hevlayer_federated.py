"""The published ``hevlayer`` 0.7.3 client against federated query (``query`` → ``POST /v2/query``).

The client's ``FederatedQueryRequest`` model is sent as is (its defaults always on the wire:
``top_k=10``, ``strict=False``, ``include_leg_breakdown=False``, ``fusion.rank_constant=60``);
the fused rows must equal an RRF computed here from ``query_namespace`` answers, every response
must parse into the client's strict models, a failing namespace is an ``errors`` entry and with
``strict`` a ``HevlayerError``. The agent route has its own module (``test_hevlayer_agents``).
Gateway only.
"""

from __future__ import annotations

import asyncio

import pytest
from hevlayer import AsyncHevlayer, HevlayerError
from hevlayer.models import FederatedFusionOptions, FederatedQueryRequest, QueryRequest

from compat_helpers import API_KEY, fresh


def rows(ns_seed: int, n: int) -> list[dict]:
    return [
        {
            "id": f"d{i}",
            "vector": [((i * 37 + ns_seed * 11) % 97) / 97.0, ((i * 13 + ns_seed) % 89) / 89.0],
            "tag": f"t{i % 4}",
        }
        for i in range(n)
    ]


def rrf(per_ns: list[tuple[str, list[dict]]], k: int, top_k: int) -> list[tuple[str, str, float]]:
    scored = []
    for ns, answer in per_ns:
        for rank, row in enumerate(answer, start=1):
            scored.append((ns, row["id"], 1.0 / (k + rank)))
    # Python's sort is stable: ties keep namespace order, then rank.
    scored.sort(key=lambda t: -t[2])
    return scored[:top_k]


def test_federated_query_is_rrf_of_namespace_queries(layer):
    names = [fresh("fed-a"), fresh("fed-b"), fresh("fed-c")]

    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=layer.api_url) as c:
            for i, ns in enumerate(names):
                await c.write_namespace(ns, {"upsert_rows": rows(i, 15 + 5 * i), "distance_metric": "euclidean_squared"})
            for ns in names:
                layer.wait_stable(ns)
            vector = [0.4, 0.7]

            # The model's defaults: top_k 10 per namespace and fused, k = 60.
            got = await c.query(
                FederatedQueryRequest(namespaces=names, vector=vector, fusion=FederatedFusionOptions())
            )
            singles = [(ns, (await c.query_namespace(ns, QueryRequest(vector=vector))).rows) for ns in names]
            want = rrf(singles, 60, 10)
            assert [(r["$namespace"], r["id"]) for r in got.rows] == [(n, i) for n, i, _ in want]
            for row, (_, _, score) in zip(got.rows, want):
                assert row["$rrf_score"] == pytest.approx(score)
            assert got.merge["rank_constant"] == 60 and got.merge["per_namespace_limit"] == 10
            assert [(n.namespace, n.matched) for n in got.namespaces] == [(ns, 10) for ns in names]
            assert all(n.stable_as_of for n in got.namespaces)
            assert got.errors is None and got.hybrid is None and got.routing is None

            # Explicit fusion settings, as a plain dict.
            got = await c.query(
                {
                    "namespaces": names,
                    "vector": vector,
                    "top_k": 6,
                    "fusion": {"rank_constant": 2, "per_namespace_limit": 3},
                }
            )
            singles = [
                (ns, (await c.query_namespace(ns, QueryRequest(vector=vector, top_k=3))).rows) for ns in names
            ]
            want = rrf(singles, 2, 6)
            assert [(r["$namespace"], r["id"]) for r in got.rows] == [(n, i) for n, i, _ in want]
            assert [n.matched for n in got.namespaces] == [3, 3, 3]

            # A namespace that does not exist: an errors entry, or with strict the call's error.
            missing = fresh("fed-missing")
            got = await c.query(FederatedQueryRequest(namespaces=[names[0], missing], vector=vector, top_k=4))
            assert len(got.rows) == 4 and {r["$namespace"] for r in got.rows} == {names[0]}
            assert got.errors is not None and [e.namespace for e in got.errors] == [missing]
            with pytest.raises(HevlayerError) as e:
                await c.query(FederatedQueryRequest(namespaces=[names[0], missing], vector=vector, strict=True))
            assert e.value.status_code >= 400 and e.value.error == "namespace_failed"

            with pytest.raises(HevlayerError) as e:
                await c.query(FederatedQueryRequest(vector=vector))
            assert e.value.status_code == 422

    asyncio.run(go())
