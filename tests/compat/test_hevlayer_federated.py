"""The published ``hevlayer`` 0.7.3 client against federated query (``query`` → ``POST /v2/query``).

The client's ``FederatedQueryRequest`` model is sent as is (its defaults always on the wire:
``top_k=10``, ``strict=False``, ``include_leg_breakdown=False``, ``fusion.rank_constant=60``);
the fused rows must equal an RRF computed here from ``query_namespace`` answers, every response
must parse into the client's strict models, a failing namespace is an ``errors`` entry and with
``strict`` a ``HevlayerError``.

``query_agent`` (``POST /v2/agents/{name}/query``) runs against a gateway of this module's own,
started with a ``layer.yaml`` declaring two agents: one on the built-in provider (its rows are
the federated query's, in order) and one on an OpenAI-compatible model, served here by a scripted
chat-completions server on 127.0.0.1 (it grades everything 0.1, below the 0.5 threshold, so the
agent takes its second turn). ``AgentQueryRequest``'s defaults (``top_k=10``) are sent as is.
Gateway only.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hevlayer import AsyncHevlayer, HevlayerError
from hevlayer.models import AgentQueryRequest, FederatedFusionOptions, FederatedQueryRequest, QueryRequest

from compat_helpers import API_KEY, fresh, wait_stable
from conftest import _Server


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


class _Model(BaseHTTPRequestHandler):
    """A scripted chat-completions server: the planner searches ``text`` for "alpha" on every
    index, the grader gives every candidate 0.1. Every request body is kept in ``seen``."""

    seen: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).seen.append((self.path, body))
        user = json.loads(body["messages"][1]["content"])
        if "query planner" in body["messages"][0]["content"]:
            content = {"queries": [{"text": "alpha", "rank_by": "hybridText"}]}
        else:
            content = {"relevance": [0.1 for _ in user["candidates"]]}
        answer = json.dumps(
            {
                "choices": [{"index": 0, "message": {"role": "assistant", "content": json.dumps(content)}}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3},
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def agent_gateway(layer):
    model = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    threading.Thread(target=model.serve_forever, daemon=True).start()
    names = [fresh("agent-a"), fresh("agent-b")]
    workdir = tempfile.mkdtemp(prefix="compat-agents-")
    config = os.path.join(workdir, "layer.yaml")
    with open(config, "w") as f:
        f.write(
            "agents:\n"
            f"  - name: helper\n    indices: [{names[0]}, {names[1]}]\n"
            f"  - name: graded\n    indices: [{names[0]}, {names[1]}]\n"
            "    model:\n      provider: openai\n      model: scripted\n"
            f"      baseUrl: http://127.0.0.1:{model.server_address[1]}/v1\n"
            "      credential: {value: sk-compat}\n"
        )
    server = _Server(
        "layer-gateway",
        [
            os.environ["LAYER_GATEWAY_BIN"],
            "--config",
            config,
            "--listen",
            "127.0.0.1:0",
            "--upstream-url",
            layer.emu_url,
            "--upstream-api-key",
            API_KEY,
            "--data-dir",
            os.path.join(workdir, "data"),
        ],
    )
    server.start()
    yield server.url, names
    server.stop()
    model.shutdown()


def test_query_agent_builtin_and_model(agent_gateway):
    url, names = agent_gateway
    words = ["alpha", "bravo", "charlie", "delta"]

    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=url) as c:
            for k, ns in enumerate(names):
                data = [{"id": f"{ns}-{i}", "text": f"{words[i % 4]} {words[(i + k) % 4]}"} for i in range(12)]
                await c.write_namespace(
                    ns, {"upsert_rows": data, "schema": {"text": {"type": "string", "full_text_search": True}}}
                )
            for ns in names:
                await asyncio.to_thread(wait_stable, url, ns)

            got = await c.query_agent("helper", AgentQueryRequest(query="alpha"))
            assert got.agent is not None and got.agent.turns == 1 and got.agent.deadlineHit is False
            assert got.agent.recallDepth == 50 and got.agent.relevanceWeight == 0.6
            assert got.agent.queries == [{"namespaces": names, "rank_by": ["text", "Auto", "alpha"], "turn": 1}]
            fed = await c.query(
                {
                    "namespaces": names,
                    "rank_by": ["text", "Auto", "alpha"],
                    "top_k": 50,
                    "fusion": {"per_namespace_limit": 50},
                }
            )
            want = [(r["$namespace"], r["id"]) for r in fed.rows][:10]
            assert want and [(r["$namespace"], r["id"]) for r in got.rows] == want
            assert got.routing is not None and got.merge["strategy"] == "rrf"

            _Model.seen.clear()
            got = await c.query_agent("graded", {"query": "which rows say alpha", "top_k": 3})
            assert got.agent is not None and got.agent.turns == 2, got.agent
            assert [q["turn"] for q in got.agent.queries] == [1, 2]
            assert len(got.rows) == 3 and all(r["$relevance"] == 0.1 for r in got.rows)
            assert [p for p, _ in _Model.seen] == ["/v1/chat/completions"] * 4
            assert _Model.seen[0][1]["model"] == "scripted"

            with pytest.raises(HevlayerError) as e:
                await c.query_agent("nobody", AgentQueryRequest(query="x"))
            assert e.value.status_code == 404

    asyncio.run(go())

