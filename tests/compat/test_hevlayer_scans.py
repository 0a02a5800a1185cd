"""The published ``hevlayer`` 0.7.3 client against the gateway: scans and cache warming.

Covers ``create_scan`` (count bodies parse as ``ScanCountResponse``, id/values jobs as
``ScanJob``), the ``scan(...)`` helper end to end, ``get_scan``/``wait_for_scan``,
``get_scan_results`` with and without ``limit``/``offset`` (``ScanIdsResponse`` and
``ScanValuesResponse``), ``list_scans``, ``delete_scan``, the 422/412 error shapes, and
``warm_cache``/``warm_namespace``, ``get_warm_job``, ``list_warm_jobs``, ``hint_cache_warm``
(bare passthrough and the per-step orchestration with its nested ``WarmJob``), then
cache-sourced scans after a warm. Expected counts and values are computed here from the rows
written.

These tests only make sense through the gateway; with ``LAYER_COMPAT_TARGET=emulator`` they skip.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hevlayer import AsyncHevlayer, HevlayerError
from hevlayer.models import (
    AnnScan,
    CreateScanRequest,
    FtsScan,
    HintCacheWarmResponse,
    ScanCountResponse,
    ScanIdsResponse,
    ScanJob,
    ScanValuesResponse,
    StatusResponse,
    WarmJob,
)

from compat_helpers import API_KEY, fresh, run

CATEGORIES = ["books", "toys", "food"]


def rows(n: int) -> list[dict]:
    out = []
    for i in range(n):
        out.append(
            {
                "id": f"r{i:04d}",
                "category": CATEGORIES[i % 3],
                "n": i % 7,
                "tags": [f"t{i % 2}", f"t{i % 5}"],
                "title": ("alpha " if i % 4 == 0 else "beta ") + f"item {i}",
                "vector": [1.0, 0.0] if i % 2 == 0 else [0.0, 1.0],
            }
        )
    return out


async def write_and_settle(c: AsyncHevlayer, layer, ns: str, data: list[dict]) -> None:
    """Writes through the gateway and waits until its watermark covers the write: the gateway
    reports the namespace stable (`layer.is_stable`) once the watermark is at or after the
    write's stamp. (A wall-clock bound taken after the answer, `stable_as_of > now`, can be missed:
    the namespace may turn stable with a watermark between the stamp and the answer, and a stable
    namespace is polled only every `stablePollIntervalMs`.)"""
    await c.write_namespace(
        ns,
        {
            "upsert_rows": data,
            "distance_metric": "cosine_distance",
            "schema": {"title": {"type": "string", "full_text_search": True}},
        },
    )
    layer.wait_stable(ns)


def values_of(data, field, keep=lambda r: True):
    counts: Counter = Counter()
    for r in data:
        if not keep(r):
            continue
        v = r[field]
        for x in set(v) if isinstance(v, list) else {v}:
            counts[str(x)] += 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def test_scan_helper_counts_ids_and_values_end_to_end(layer):
    ns = fresh("scan")
    data = rows(600)

    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=layer.api_url) as c:
            await write_and_settle(c, layer, ns, data)

            # Count: synchronous, parsed as ScanCountResponse; the model's defaults are sent.
            count = await c.create_scan(
                ns, CreateScanRequest(mode="count", source="origin", filters=["category", "Eq", "toys"], threads=8)
            )
            assert isinstance(count, ScanCountResponse)
            assert count.count == sum(1 for r in data if r["category"] == "toys")
            assert (count.served_by, count.threads, count.bounded) == ("origin", 1, False)
            assert count.elapsed_ms >= 0
            fts = await c.create_scan(ns, CreateScanRequest(mode="count", fts=FtsScan(field="title", query="alpha")))
            assert fts.count == sum(1 for r in data if r["title"].startswith("alpha"))
            ann = await c.create_scan(
                ns, CreateScanRequest(mode="count", ann=AnnScan(vector=[1.0, 0.0], radius=0.1))
            )
            assert (ann.count, ann.approximate) == (300, True)

            # Ids through the scan(...) helper; results without a limit return every id.
            job = await c.scan(ns, CreateScanRequest(filters=["n", "In", [1, 2]], page_size=50))
            assert isinstance(job, ScanJob)
            assert (job.status, job.mode, job.source, job.effective_source) == ("completed", "ids", "auto", "origin")
            want = sorted(r["id"] for r in data if r["n"] in (1, 2))
            everything = await c.get_scan_results(ns, job.id)
            assert isinstance(everything, ScanIdsResponse)
            assert sorted(everything.ids) == want and everything.total == len(want)
            page = await c.get_scan_results(ns, job.id, limit=10, offset=5)
            assert page.ids == everything.ids[5:15] and page.total == len(want)
            assert job.documents_scanned == len(want) and job.progress == 1.0

            # Values (a dict body, as dict callers send it).
            vjob = await c.scan(ns, {"mode": "values", "field": "tags", "filters": ["category", "NotEq", "food"]})
            assert (vjob.status, vjob.field, vjob.truncated, vjob.unique_values) == ("completed", "tags", False, 5)
            listing = await c.get_scan_results(ns, vjob.id)
            assert isinstance(listing, ScanValuesResponse)
            assert [(v.v, v.n) for v in listing.values] == values_of(data, "tags", lambda r: r["category"] != "food")
            assert listing.truncated is False and listing.total == 5
            ints = await c.scan(ns, {"mode": "values", "field": "n"})
            got = await c.get_scan_results(ns, ints.id, limit=3)
            assert [(v.v, v.n) for v in got.values] == values_of(data, "n")[:3]

            listed = await c.list_scans(ns)
            assert {s.id for s in listed.scans} >= {job.id, vjob.id, ints.id}
            deleted = await c.delete_scan(ns, job.id)
            assert isinstance(deleted, StatusResponse) and deleted.status == "deleted"
            with pytest.raises(HevlayerError) as e:
                await c.get_scan(ns, job.id)
            assert e.value.status_code == 404

    run(go())


def test_scan_errors_parse_in_the_client(layer):
    ns = fresh("scanerr")

    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=layer.api_url) as c:
            await write_and_settle(c, layer, ns, rows(30))
            for body in [
                {"mode": "count", "field": "category"},
                {"mode": "values"},
                {"mode": "values", "field": "vector"},
                {"source": "snapshot"},
                {"mode": "count", "fts": {"field": "title", "query": "a"}, "ann": {"vector": [1, 0], "radius": 1}},
                {"mode": "count", "source": "cache", "fts": {"field": "title", "query": "a"}},
                {"mode": "count", "ann": {"vector": [1, 0]}},
                {"mode": "count", "ann": {"vector": [1, 0], "radius": -1}},
            ]:
                with pytest.raises(HevlayerError) as e:
                    await c.create_scan(ns, body)
                assert (e.value.status_code, e.value.error) == (422, "validation_error"), body
            with pytest.raises(HevlayerError) as e:
                await c.create_scan(ns, {"mode": "count", "source": "snapshot", "filters": ["category", "Eq", "toys"]})
            assert (e.value.status_code, e.value.error) == (412, "precondition_failed")

    run(go())


def test_warm_then_cache_scans_and_hint_steps(layer):
    ns = fresh("warm")
    data = rows(450)

    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=layer.api_url) as c:
            await write_and_settle(c, layer, ns, data)
            bare = await c.hint_cache_warm(ns)
            assert isinstance(bare, HintCacheWarmResponse)

            job = await c.warm_cache(ns, page_size=100)
            assert isinstance(job, WarmJob)
            for _ in range(400):
                job = await c.get_warm_job(ns, job.id)
                if job.status != "running":
                    break
                await asyncio.sleep(0.05)
            assert (job.status, job.documents_scanned, job.progress) == ("completed", 450, 1.0)
            assert job.id in {j.id for j in (await c.list_warm_jobs(ns)).warm_jobs}
            assert isinstance(job.stable_as_of, int)

            for filters in (["category", "Eq", "books"], ["Or", [["n", "Gt", 4], ["tags", "In", ["t3"]]]], None):
                body = {"mode": "count"}
                if filters is not None:
                    body["filters"] = filters
                cached = await c.create_scan(ns, {**body, "source": "cache"})
                origin = await c.create_scan(ns, {**body, "source": "origin"})
                assert cached.served_by == "cache" and cached.count == origin.count, filters
            auto = await c.create_scan(ns, {"mode": "count", "filters": ["category", "Eq", "books"]})
            assert auto.served_by == "cache"
            ids = await c.scan(ns, {"source": "cache", "filters": ["n", "Eq", 3]})
            assert ids.effective_source == "cache" and ids.threads is None
            got = await c.get_scan_results(ns, ids.id)
            assert sorted(got.ids) == sorted(r["id"] for r in data if r["n"] == 3)

            steps = await c.hint_cache_warm(ns, turbopuffer=False, documents=True, snapshots=False, page_size=200)
            assert steps.namespace == ns
            assert (steps.turbopuffer.enabled, steps.turbopuffer.status) == (False, "skipped")
            assert steps.documents.status == "started" and isinstance(steps.documents.job, WarmJob)
            assert (steps.snapshots.enabled, steps.snapshots.status) == (False, "skipped")
            again = await c.warm_namespace(ns)
            assert isinstance(again, WarmJob)
            none = await c.hint_cache_warm(ns, turbopuffer=False, documents=False, snapshots=True)
            # The namespace has no snapshot policy and no snapshot was ever taken.
            assert (none.snapshots.enabled, none.snapshots.status) == (True, "no_snapshot")

    run(go())
