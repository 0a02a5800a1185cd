"""The published ``hevlayer`` 0.7.3 client against the gateway's snapshot routes.

``put_snapshot_policy`` / ``get_snapshot_policy`` round trip; the automatic writer then
materializes facet histograms once the namespace's watermark advances past a write;
``list_namespace_history``, ``get_namespace_snapshot`` (7-char prefix), ``list_snapshot_activity``,
``create_snapshot`` → ``get_snapshot_job`` → ``get_namespace_snapshot`` and
``list_snapshot_jobs``. Facet counts are checked against counts computed here. Every response
must parse into the client's strict models. Gateway only.
"""

from __future__ import annotations

import asyncio
import collections
import time

import pytest
from hevlayer import AsyncHevlayer, HevlayerError

from compat_helpers import API_KEY, fresh

COLORS = ["red", "green", "blue"]


def rows(n: int) -> list[dict]:
    return [
        {"id": f"doc-{i}", "vector": [float(i), 1.0], "color": COLORS[i % 3], "tier": i % 2}
        for i in range(n)
    ]


def counts(data: list[dict], field: str, keep=lambda r: True) -> dict[str, int]:
    c = collections.Counter(str(r[field]) for r in data if keep(r))
    return dict(c)


async def wait_history(c: AsyncHevlayer, ns: str, n: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        h = await c.list_namespace_history(ns)
        if len(h) >= n:
            return h
        assert time.monotonic() < deadline, f"history stayed at {h!r}"
        await asyncio.sleep(0.1)


async def wait_job(c: AsyncHevlayer, ns: str, job_id: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        j = await c.get_snapshot_job(ns, job_id)
        if j.status != "running":
            return j
        assert time.monotonic() < deadline, f"job never finished: {j!r}"
        await asyncio.sleep(0.05)


def test_policy_writer_history_body_activity_and_jobs(layer):
    ns = fresh("snap")
    data = rows(90)

    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=layer.api_url) as c:
            default = await c.get_snapshot_policy(ns)
            assert (default.facetFields, default.interval, default.retention) == ([], "5m", "never")
            p = await c.put_snapshot_policy(ns, {"facetFields": ["color"], "interval": "1s", "retention": "never"})
            assert p.facetFields == ["color"]
            assert (await c.get_snapshot_policy(ns)).interval == "1s"

            since = int(time.time() * 1000) - 1
            await c.write_namespace(ns, {"upsert_rows": data, "distance_metric": "euclidean_squared"})
            history = await wait_history(c, ns, 1)
            entry = history[0]
            assert len(entry.sha) == 64 and entry.watermark_ms > 0

            body = await c.get_namespace_snapshot(ns, entry.sha[:7])
            assert body.sha == entry.sha and body.namespace == ns
            assert body.row_count == len(data)
            (color,) = [f for f in body.fields if f.name == "color"]
            assert {v.v: v.n for v in color.values} == counts(data, "color")
            assert body.fields_skipped == []

            activity = await c.list_snapshot_activity(since=since, namespace=ns)
            assert [(e.namespace, e.sha) for e in activity.events] == [(ns, entry.sha)]

            # A filtered origin job over a field the policy does not list.
            job = await c.create_snapshot(
                ns, {"field": "tier", "source": "origin", "filters": ["color", "Eq", "red"], "page_size": 10}
            )
            assert job.field == "tier" and job.source == "origin" and job.created_at
            done = await wait_job(c, ns, job.id)
            assert done.status == "completed", done
            assert done.documents_scanned == 30
            filtered = await c.get_namespace_snapshot(ns, done.sha)
            (tier,) = filtered.fields
            assert {v.v: v.n for v in tier.values} == counts(data, "tier", lambda r: r["color"] == "red")

            # auto on the configured field is served from the stored snapshot.
            stored = await c.create_snapshot(ns, {"field": "color"})
            assert stored.status == "completed" and stored.sha == entry.sha
            assert stored.effective_source == "stored"

            jobs = await c.list_snapshot_jobs(ns)
            assert {j.id for j in jobs.snapshot_jobs} == {job.id, stored.id}

            with pytest.raises(HevlayerError) as e:
                await c.create_snapshot(ns, {"field": "tier", "source": "stored"})
            assert e.value.status_code == 412 and e.value.error == "precondition_failed"
            with pytest.raises(HevlayerError) as e:
                await c.list_snapshot_activity(limit=5)
            assert e.value.status_code == 422

    asyncio.run(go())
