"""The published ``hevlayer`` 0.7.3 client against search history and clickstream.

Covers ``query_namespace(raw_query=, tags=)`` → ``list_search_history`` (tag filter, paging with
``before`` / ``next_cursor``, time bounds), fetches carrying a search's ``traceparent`` →
``list_clickstream`` (by ``trace_id``), and restart survival (graceful stop, and a kill after
the flush interval).

Every test runs once per object-store backend: the local directory always, and S3 when
``scripts/s3-server`` started one (``LAYER_TEST_S3_ENDPOINT`` / ``LAYER_TEST_S3_BUCKET``; the S3
runs skip otherwise). Each test starts its own gateway (in front of the session's emulator) with
a config file naming the backend, so a restart can reopen the same store.

These tests only make sense through the gateway; with ``LAYER_COMPAT_TARGET=emulator`` they skip.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from typing import Dict, List, Optional

import httpx
import pytest
from hevlayer import AsyncHevlayer

from compat_helpers import API_KEY, run, wait_stable
from compat_helpers import fresh as helpers_fresh
from conftest import _Server

FLUSH_INTERVAL_MS = 200


def fresh(tag: str) -> str:
    return helpers_fresh(tag, prefix="hist")


class HistoryGateway:
    """A gateway with its own config file (object store + history settings), restartable."""

    def __init__(self, emu_url: str, backend: str) -> None:
        self.emu_url = emu_url
        self.backend = backend
        self.workdir = tempfile.mkdtemp(prefix=f"compat-history-{backend}-")
        self.config_path = os.path.join(self.workdir, "layer.yaml")
        store = self._store_yaml()
        with open(self.config_path, "w") as f:
            f.write(
                "gateway:\n"
                f"{store}"
                "  history:\n"
                f"    flushIntervalMs: {FLUSH_INTERVAL_MS}\n"
            )
        self.server: Optional[_Server] = None
        self.url = ""

    def _store_yaml(self) -> str:
        if self.backend == "local":
            return f"  objectStore:\n    backend: local\n    dir: {self.workdir}/objects\n"
        endpoint = os.environ["LAYER_TEST_S3_ENDPOINT"]
        bucket = os.environ.get("LAYER_TEST_S3_BUCKET", "layer-test")
        prefix = f"compat/{uuid.uuid4().hex}"
        return (
            "  objectStore:\n"
            "    backend: s3\n"
            f"    bucket: {bucket}\n"
            f"    endpoint: {endpoint}\n"
            "    region: us-east-1\n"
            "    allowHttp: true\n"
            f"    prefix: {prefix}\n"
        )

    def start(self) -> None:
        gw_bin = os.environ.get("LAYER_GATEWAY_BIN")
        if not gw_bin:
            pytest.fail("LAYER_COMPAT_TARGET=gateway requires LAYER_GATEWAY_BIN", pytrace=False)
        self.server = _Server(
            "layer-gateway",
            [
                gw_bin,
                "--config",
                self.config_path,
                "--listen",
                "127.0.0.1:0",
                "--upstream-url",
                self.emu_url,
                "--upstream-api-key",
                API_KEY,
                "--data-dir",
                os.path.join(self.workdir, "data"),
            ],
        )
        self.server.start()
        self.url = self.server.url

    def stop(self) -> None:
        """SIGTERM: the gateway drains and writes its open history batches (given up to 30 s
        before the kill that `_Server.stop` falls back to after 5)."""
        if self.server is not None:
            proc = self.server.proc
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
            self.server.stop()
            self.server = None

    def kill(self) -> None:
        """SIGKILL: no shutdown work at all."""
        if self.server is not None and self.server.proc is not None:
            self.server.proc.send_signal(signal.SIGKILL)
            self.server.proc.wait(timeout=5)
            self.server.stop()
            self.server = None

    def client(self, **headers: str) -> AsyncHevlayer:
        return AsyncHevlayer(
            api_key=API_KEY,
            base_url=self.url,
            http_client=httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30.0),
        )


@pytest.fixture(params=["local", "s3"])
def gateway(request, target):
    if not target.is_gateway:
        pytest.skip("hevlayer tests run against the gateway (LAYER_COMPAT_TARGET=gateway)")
    if request.param == "s3":
        if not os.environ.get("LAYER_TEST_S3_ENDPOINT"):
            pytest.skip("no S3 (LAYER_TEST_S3_ENDPOINT unset; scripts/s3-server starts one)")
        # The test server accepts any credentials, but the gateway signs every request.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "moto")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "moto")
    gw = HistoryGateway(target.emu_url, request.param)
    gw.start()
    yield gw
    gw.stop()


async def seed(gateway: HistoryGateway, c: AsyncHevlayer, ns: str) -> None:
    """Writes three documents and waits until the gateway reports the namespace stable, so the
    searches after it (at the default, stable, mode) see them."""
    await c.write_namespace(
        ns,
        {
            "upsert_rows": [
                {"id": "a", "vector": [1.0, 0.0], "title": "alpha"},
                {"id": "b", "vector": [0.0, 1.0], "title": "beta"},
                {"id": "c", "vector": [0.7, 0.7], "title": "gamma"},
            ],
            "distance_metric": "euclidean_squared",
        },
    )
    wait_stable(gateway.url, ns)


def test_list_search_history_with_tags_and_paging(gateway):
    ns = fresh("tags")

    async def go():
        async with gateway.client() as c:
            await seed(gateway, c, ns)
            first = await c.query_namespace(
                ns,
                {"vector": [1.0, 0.0], "top_k": 2, "include_attributes": ["title"]},
                raw_query="wireless headphones",
                tags=["app:hev-shop", "surface:storefront", "route:search", "page:first"],
            )
            await c.query_namespace(
                ns,
                {"vector": [0.0, 1.0], "top_k": 3},
                raw_query="wireless headphones",
                tags=["app:hev-shop", "route:search", "page:second"],
            )
            await c.query_namespace(ns, {"vector": [0.7, 0.7], "top_k": 1}, tags=["app:other"])

            page = await c.list_search_history(
                ns, tags=["app:hev-shop", "route:search", "page:first"], limit=20
            )
            assert len(page.entries) == 1
            e = page.entries[0]
            assert e.namespace == ns
            assert e.raw_query == "wireless headphones"
            assert e.tags == ["app:hev-shop", "page:first", "route:search", "surface:storefront"]
            assert e.top_result_ids == [r["id"] for r in first.rows] == ["a", "c"]
            assert e.query == {"vector": {"dims": 2}, "top_k": 2, "include_attributes": ["title"]}
            assert e.timestamp_nanos > 2**53
            assert e.timestamp.endswith("Z")
            assert e.trace_id and len(e.trace_id) == 32
            assert page.next_cursor is None

            both = await c.list_search_history(ns, tags=["app:hev-shop", "route:search"])
            assert [x.tags for x in both.entries] == [
                ["app:hev-shop", "page:second", "route:search"],
                ["app:hev-shop", "page:first", "route:search", "surface:storefront"],
            ]
            assert [x.top_result_ids for x in both.entries] == [["b", "c", "a"], ["a", "c"]]

            # Paging: newest first, one at a time, the cursor is the last entry's timestamp_nanos.
            everything = await c.list_search_history(ns)
            assert len(everything.entries) == 3
            seen: List[int] = []
            before: Optional[str] = None
            while True:
                p = await c.list_search_history(ns, limit=1, before=before)
                seen += [x.timestamp_nanos for x in p.entries]
                if p.next_cursor is None:
                    break
                assert p.next_cursor == str(p.entries[-1].timestamp_nanos)
                before = p.next_cursor
            assert seen == [x.timestamp_nanos for x in everything.entries]
            assert seen == sorted(seen, reverse=True)

            # Time bounds (RFC 3339): everything is after the epoch, nothing before it.
            assert len((await c.list_search_history(ns, from_="2000-01-01T00:00:00Z")).entries) == 3
            assert (await c.list_search_history(ns, to="2000-01-01T00:00:00Z")).entries == []

    run(go())


def test_list_clickstream_by_trace_id(gateway):
    ns = fresh("clicks")
    captured: Dict[str, str] = {}

    async def remember(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/query"):
            captured["traceparent"] = response.headers["traceparent"]

    async def go():
        async with gateway.client() as c:
            await seed(gateway, c, ns)
        # The search: its response's traceparent is the trace context downstream fetches carry.
        http = httpx.AsyncClient(base_url=gateway.url, event_hooks={"response": [remember]})
        async with AsyncHevlayer(api_key=API_KEY, base_url=gateway.url, http_client=http) as c:
            q = await c.query_namespace(ns, {"vector": [1.0, 0.0], "top_k": 2}, tags=["app:shop"])
            assert [r["id"] for r in q.rows] == ["a", "c"]
        traceparent = captured["traceparent"]
        trace_id = traceparent.split("-")[1]

        clicked = gateway.client(traceparent=traceparent, **{"x-hevlayer-tags": "session:abc"})
        async with clicked as c:
            first = await c.fetch_document(ns, "a", with_perf=True)
            second = await c.fetch_document(ns, "a", with_perf=True)
            batch = await c.fetch_documents(ns, {"ids": ["c", "missing"]}, with_perf=True)
        async with gateway.client() as c:
            # Untraced fetches are not clickstream.
            await c.fetch_document(ns, "b")

            events = (await c.list_clickstream(ns, trace_id=trace_id)).events
            assert [e.doc_id for e in events] == ["c", "a", "a"]
            expected = [
                batch.perf.cache_status,
                second.perf.cache_status,
                first.perf.cache_status,
            ]
            assert [e.served_from for e in events] == [
                "cache" if s == "hit" else "origin" for s in expected
            ]
            for e in events:
                assert e.trace_id == trace_id
                assert e.namespace == ns
                assert e.source == "fetch"
                assert e.tags == ["session:abc"]
                assert e.timestamp_nanos > 2**53

            assert len((await c.list_clickstream(ns)).events) == 3
            assert (await c.list_clickstream(ns, trace_id="0" * 31 + "1")).events == []
            assert len((await c.list_clickstream(ns, tags=["session:abc"], limit=2)).events) == 2
            # The search-history entry joins on the same trace id.
            history = await c.list_search_history(ns)
            assert [e.trace_id for e in history.entries] == [trace_id]

    run(go())


def _query_n(gateway: HistoryGateway, ns: str, n: int, tag: str) -> List[str]:
    async def go() -> List[str]:
        async with gateway.client() as c:
            await seed(gateway, c, ns)
            for i in range(n):
                await c.query_namespace(ns, {"vector": [1.0, 0.0], "top_k": 1}, tags=[tag, f"i:{i}"])
            page = await c.list_search_history(ns, tags=[tag])
            return [e.trace_id for e in page.entries]

    return run(go())


def _listed(gateway: HistoryGateway, ns: str, tag: str) -> List[str]:
    async def go() -> List[str]:
        async with gateway.client() as c:
            page = await c.list_search_history(ns, tags=[tag], limit=500)
            return [e.trace_id for e in page.entries]

    return run(go())


def _wait_written(gateway, n: int) -> None:
    """Waits until this gateway process has written `n` search-history entries to the store."""
    series = 'layer_search_history_events_total{outcome="written"}'
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(f"{gateway.url}/metrics", timeout=10.0).text
        written = sum(
            float(line.split()[-1]) for line in text.splitlines() if line.startswith(series + " ")
        )
        if written >= n:
            return
        assert time.monotonic() < deadline, f"{written} of {n} entries written"
        time.sleep(FLUSH_INTERVAL_MS / 1000)


def test_history_survives_restarts(gateway):
    ns = fresh("restart")
    # Graceful stop: open batches are written on the way out.
    before = _query_n(gateway, ns, 4, "run:graceful")
    assert len(before) == 4
    gateway.stop()
    gateway.start()
    assert _listed(gateway, ns, "run:graceful") == before

    # A kill skips shutdown work: what the flush interval already wrote survives. Killed once
    # this process (started after the graceful run) has written all three entries: the batch is
    # due after the flush interval, and its write to the store can take longer on a busy machine.
    killed = _query_n(gateway, ns, 3, "run:killed")
    _wait_written(gateway, 3)
    gateway.kill()
    gateway.start()
    assert _listed(gateway, ns, "run:killed") == killed
    assert len(_listed(gateway, ns, "run:graceful")) == 4
