"""The published ``hevlayer`` 0.7.3 client against the gateway: the metrics API, unchanged.

The six metrics methods with the client's own models: ``list_metrics_catalog`` (``MetricCatalog``,
``version`` ``2026-05``; every entry validates as ``MetricCatalogEntry``, so its ``family`` is one
of the client's seven and an ``alert`` has ``summary``/``expr``/``for``), with and without the
``family`` filter; ``get_metric_catalog_entry`` (``QueryP99High`` on
``layer_query_duration_seconds``; 404 for a name the catalog lacks); and the four PromQL methods
``query_metrics``, ``query_metrics_api_v1``, ``query_metrics_range`` and
``query_metrics_range_api_v1`` (``PrometheusResponse``) against the VictoriaMetrics the test
command started (``scripts/vm-server``, ``LAYER_TEST_VM_URL``), which scrapes this gateway once a
second: the numbers they answer are the queries the test sent. A PromQL syntax error comes back
as VictoriaMetrics' own 4xx. Without ``LAYER_TEST_VM_URL`` the PromQL test skips, except under CI
where it fails; the gateway then answers 503 ``metrics_not_configured``, which is checked instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from urllib.parse import urlparse

import httpx
import pytest
from hevlayer import AsyncHevlayer, HevlayerError
from hevlayer.models import MetricCatalog, MetricCatalogEntry, PrometheusResponse

from compat_helpers import API_KEY

FAMILIES = {"query", "upsert", "fetch", "cache", "pipeline", "storage", "saturation"}


def client(url: str) -> AsyncHevlayer:
    return AsyncHevlayer(api_key=API_KEY, base_url=url)


def test_catalog_methods(layer):
    async def go():
        async with client(layer.api_url) as c:
            cat = await c.list_metrics_catalog()
            assert isinstance(cat, MetricCatalog)
            assert cat.version == "2026-05"
            names = {e.name for e in cat.entries}
            for name in (
                "layer_query_duration_seconds",
                "layer_aerospike_op_duration_seconds",
                "hevlayer_cache_cold_responses_total",
                "hevlayer_document_cache_cold_starts_total",
                "hevlayer_document_cache_cold_start_seconds",
                "layer_udf_queue_depth",
                "layer_requests_total",
            ):
                assert name in names, name
            assert {e.family for e in cat.entries} <= FAMILIES
            for family in ("pipeline", "cache"):
                part = await c.list_metrics_catalog(family=family)
                assert part.entries and all(e.family == family for e in part.entries)
                assert len(part.entries) == sum(1 for e in cat.entries if e.family == family)
            q = await c.get_metric_catalog_entry("layer_query_duration_seconds")
            assert isinstance(q, MetricCatalogEntry)
            assert q.kind == "histogram" and q.labels == ["pipeline_id", "namespace", "status"]
            assert q.alert is not None and q.alert.for_ and "layer_query_duration_seconds" in q.alert.expr
            old = await c.get_metric_catalog_entry("layer_cache_cold_responses_total")
            assert old.model_extra["deprecated"]["replaced_by"] == "hevlayer_cache_cold_responses_total"
            with pytest.raises(HevlayerError) as e:
                await c.get_metric_catalog_entry("no_such_metric_total")
            assert e.value.status_code == 404

    asyncio.run(go())


def _value(resp: PrometheusResponse) -> float | None:
    body = resp.model_dump()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    if not result:
        return None
    if body["data"]["resultType"] == "matrix":
        return float(result[0]["values"][-1][1])
    return float(result[0]["value"][1])


def test_promql_methods_against_victoria_metrics(layer):
    vm = os.environ.get("LAYER_TEST_VM_URL", "")
    targets = os.environ.get("LAYER_TEST_VM_TARGETS", "")
    if not vm or not targets:
        if os.environ.get("CI") == "true":
            pytest.fail("LAYER_TEST_VM_URL is unset under CI: scripts/test starts VictoriaMetrics")

        async def unconfigured():
            async with client(layer.api_url) as c:
                with pytest.raises(HevlayerError) as e:
                    await c.query_metrics(query="up")
                assert e.value.status_code == 503

        asyncio.run(unconfigured())
        pytest.skip("no VictoriaMetrics (LAYER_TEST_VM_URL unset; scripts/vm-server starts one)")

    run = f"compat{uuid.uuid4().hex[:10]}"
    ns = f"compat-metrics-{uuid.uuid4().hex[:10]}"
    target = os.path.join(targets, f"{run}.json")
    with open(target + ".tmp", "w") as f:
        json.dump([{"targets": [urlparse(layer.api_url).netloc], "labels": {"run": run}}], f)
    os.rename(target + ".tmp", target)
    try:
        headers = {"authorization": f"Bearer {API_KEY}"}
        with httpx.Client(base_url=layer.api_url, headers=headers, timeout=30.0) as h:
            r = h.post(f"/v2/namespaces/{ns}", json={"upsert_rows": [{"id": 1, "x": 1}]})
            assert r.status_code == 200, r.text
            for _ in range(5):
                r = h.post(f"/v2/namespaces/{ns}/query", json={"rank_by": ["id", "asc"], "top_k": 1})
                assert r.status_code == 200, r.text
        promql = (
            f'sum(layer_query_duration_seconds_count{{run="{run}",namespace="{ns}",status="200"}})'
        )

        async def go():
            async with client(layer.api_url) as c:
                deadline = time.monotonic() + 60
                while True:
                    resp = await c.query_metrics(query=promql)
                    assert isinstance(resp, PrometheusResponse)
                    if _value(resp) == 5.0:
                        break
                    assert time.monotonic() < deadline, resp.model_dump()
                    await asyncio.sleep(0.25)
                assert _value(await c.query_metrics_api_v1(query=promql, timeout="10s")) == 5.0
                # A range query can come back empty while its series' only samples are a second
                # old, even though the instant query already read them: VictoriaMetrics rewrites
                # the newest points of short-step ranges (scripts/vm-server turns that off; the
                # retry covers a server started otherwise). Each attempt ends at the current time.
                for method in (c.query_metrics_range, c.query_metrics_range_api_v1):
                    while True:
                        now = int(time.time()) + 1
                        resp = await method(
                            query=promql, start=str(now - 120), end=str(now), step="1"
                        )
                        assert resp.model_dump()["data"]["resultType"] == "matrix"
                        if _value(resp) == 5.0:
                            break
                        assert time.monotonic() < deadline, resp.model_dump()
                        await asyncio.sleep(0.25)
                with pytest.raises(HevlayerError) as e:
                    await c.query_metrics(query="sum(rate(layer_requests_total[5m]", time=str(now - 10))
                assert e.value.status_code in (400, 422)

        asyncio.run(go())
    finally:
        os.remove(target)
