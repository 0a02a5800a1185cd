"""The published ``hevlayer`` 0.7.3 client against the gateway: UDFs (Functions), unchanged.

The docs' tagging flow with the client's own worker loop: 500 products written through the
client, ``create_udf`` with the client's models (``CreateUdfRequest``, ``UdfSpec``,
``UdfWorkerSpec``: every default written out in the answer), the first discovery sweep, and
``hevlayer.udf.run_udf_worker`` with the docs' ``@udf(output="tags")`` classifier running
forever (``once=False``) until ``get_udf_status`` reports the queue drained; every row then has
its ``tags`` and the version marker ``_hevlayer_udf_<id>_v``. Then the reruns: ``discover_udf``
at the same version finds nothing, a version bump through ``upsert_udf`` finds every row again,
rows written later are found alone. The retry rules through the worker: a ``TransientError``
backs off, is claimed again and lands in ``failed`` after ``max_attempts``, a
``PermanentError`` fails at once, ``reset_failed_udf`` requeues, ``pause_udf`` /
``resume_udf`` hold claims back. A worker killed mid-batch: after its lease the bundled worker
completes the batch exactly once and the dead worker's late report writes nothing. The worker
protocol with the client's models (``claim_udf_items``, ``heartbeat_udf_items``,
``fail_udf_items``, ``complete_udf_items`` with a marker-only completion), ``list_udfs``,
``get_udf``, ``delete_udf`` and the error shapes (404, 409, 422). A discovery right after
completions finds the rows they re-stamped (``test_discover_right_after_completions``: sweeps
read strongly, not at the stable cut, which would hide them).

Everything runs at the documented defaults (a 120 s lease, retries from 5 s doubling to 300 s,
8 attempts, a sweep every 60 s) unless a test says why not. UDFs share the pipelines' queue:
the gateway gets it from ``LAYER_TEST_DATABASE_URL`` (``conftest._gateway_env``); without it
these tests skip, except under CI where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Callable, Optional

import pytest
from hevlayer import AsyncHevlayer, HevlayerError
from hevlayer.models import (
    CreateUdfRequest,
    GetUdfResponse,
    StatusResponse,
    Udf,
    UdfClaimRequest,
    UdfClaimResponse,
    UdfCompleteItem,
    UdfCompleteRequest,
    UdfDiscoverRequest,
    UdfDiscoverResponse,
    UdfFailItem,
    UdfFailRequest,
    UdfHeartbeatRequest,
    UdfItemRef,
    UdfItemsResponse,
    UdfList,
    UdfRetrySpec,
    UdfSpec,
    UdfStatus,
    UdfWorkerSpec,
    UpdateUdfRequest,
)
from hevlayer.udf import PermanentError, TransientError, run_udf_worker, udf

from compat_helpers import API_KEY, STRONG, fresh, run

N_ROWS = 500
# How long a test waits for the gateway (a sweep, a drained queue, a backoff) before failing.
DEADLINE_S = 60.0


@pytest.fixture
def udfs(pipelines):
    """The gateway with the queue UDFs run on (``conftest.pipelines``: skips without PostgreSQL)."""
    return pipelines


# --------------------------------------------------------------------------------------------
# Data and the worker function
# --------------------------------------------------------------------------------------------


def title_of(i: int) -> str:
    """Every third product is wireless, every fifth waterproof, some both, most neither."""
    words = ["product", str(i)]
    if i % 3 == 0:
        words.append("Wireless")
    if i % 5 == 0:
        words.append("WATERPROOF")
    return " ".join(words)


def expected_tags(title: str) -> list[str]:
    text = title.lower()
    tags = [t for t in ("wireless", "waterproof") if t in text]
    return tags or ["uncategorized"]


def classifier(calls: list[str]) -> Callable[..., list[str]]:
    """The docs' tag classifier (Function CRD page) on the declared inputs ``id`` and ``title``,
    recording each call so a test can tell how often a row was processed."""

    @udf(output="tags")
    def tag_product(*, id: str, title: str | None) -> list[str]:
        calls.append(id)
        if not title:
            raise PermanentError(f"{id}: missing title")
        try:
            text = title.lower()
        except TypeError as exc:
            raise TransientError(str(exc)) from exc
        tags: list[str] = []
        if "wireless" in text:
            tags.append("wireless")
        if "waterproof" in text:
            tags.append("waterproof")
        return tags or ["uncategorized"]

    return tag_product


def marker(udf_id: str) -> str:
    """The version marker a completion stamps: ``_hevlayer_udf_<id, - as _>_v``."""
    return f"_hevlayer_udf_{udf_id.replace('-', '_')}_v"


def extra(model: Any, key: str) -> Any:
    """A key the gateway adds beyond the client's model (kept: every model allows extras)."""
    return (model.model_extra or {}).get(key)


# --------------------------------------------------------------------------------------------
# Client steps
# --------------------------------------------------------------------------------------------


def client(target) -> AsyncHevlayer:
    return AsyncHevlayer(api_key=API_KEY, base_url=target.api_url)


async def write_products(c: AsyncHevlayer, ns: str, start: int, n: int) -> list[str]:
    rows = [{"id": f"p{i:04d}", "title": title_of(i), "price": i} for i in range(start, start + n)]
    w = await c.write_namespace(ns, {"upsert_rows": rows})
    assert w.rows_upserted == n
    return [r["id"] for r in rows]


async def rows_of(c: AsyncHevlayer, ns: str) -> dict[str, dict[str, Any]]:
    """Every row with every attribute (a strong read of the test's own writes). Naming the
    marker in ``include_attributes`` before any row has it would be a 400 upstream."""
    res = await c.query_namespace(
        ns, {"rank_by": ["id", "asc"], "top_k": 1000, "include_attributes": True, "consistency": STRONG}
    )
    return {r["id"]: r for r in res.rows}


async def wait_status(
    c: AsyncHevlayer,
    uid: str,
    pred: Callable[[UdfStatus], bool],
    what: str,
    worker: Optional[asyncio.Task] = None,
) -> UdfStatus:
    """Polls ``get_udf_status`` until ``pred`` holds (bounded); a worker task that ended early
    (an HTTP error ends the bundled worker) fails the wait with its own exception."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        st = await c.get_udf_status(uid)
        assert isinstance(st, UdfStatus)
        if pred(st):
            return st
        if worker is not None and worker.done():
            worker.result()
            raise AssertionError(f"the worker returned while waiting for {what}: {st!r}")
        assert time.monotonic() < deadline, f"timed out after {DEADLINE_S}s waiting for {what}: {st!r}"
        await asyncio.sleep(0.1)


async def swept(c: AsyncHevlayer, uid: str, sweeps: int = 1) -> UdfStatus:
    """Waits until ``sweeps`` discovery sweeps completed and none runs."""
    return await wait_status(
        c,
        uid,
        lambda s: s.discovery.sweeps_completed >= sweeps and extra(s.discovery, "running") is False,
        f"{sweeps} discovery sweep(s)",
    )


def drained(s: UdfStatus) -> bool:
    return s.pending_count == 0 and s.processing_count == 0


async def work_once(target, fn: Callable[..., Any], uid: str, worker_id: str = "w-once") -> None:
    """One round of the bundled worker: claim one batch, process it, report, return."""
    await run_udf_worker(fn, udf_id=uid, api_key=API_KEY, base_url=target.api_url, worker_id=worker_id, once=True)


async def drain_once_at_a_time(c: AsyncHevlayer, target, fn: Callable[..., Any], uid: str) -> UdfStatus:
    """``run_udf_worker(once=True)`` in a loop until status shows the queue drained (bounded)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        await work_once(target, fn, uid)
        st = await c.get_udf_status(uid)
        if drained(st):
            return st
        assert time.monotonic() < deadline, f"queue never drained: {st!r}"


async def discover(c: AsyncHevlayer, target, uid: str, ns: str, settle: bool = True) -> int:
    """``discover_udf`` with the client's defaulted model; the sweep finishes within the call.

    A sweep reads at the gateway's stable cut (``_hevlayer_upserted_at <= watermark``), and every
    completion is a stamped write: until the namespace is stable again (about 1-1.5 s) the rows
    the worker just completed are not under the cut and a sweep cannot see them. ``settle``
    waits for that first (``target.wait_stable``); ``test_discover_right_after_completions``
    shows what happens without it.
    """
    if settle:
        target.wait_stable(ns)
    d = await c.discover_udf(uid, UdfDiscoverRequest())
    assert isinstance(d, UdfDiscoverResponse)
    assert (d.udf_id, d.namespaces) == (uid, [ns])
    assert extra(d, "complete") is True, f"the sweep did not finish within the call: {d!r}"
    return d.enqueued


async def create_tagger(c: AsyncHevlayer, uid: str, ns: str, **spec: Any) -> Udf:
    created = await c.create_udf(
        CreateUdfRequest(
            id=uid, spec=UdfSpec(target_namespaces=[ns], inputs=["id", "title"], worker=UdfWorkerSpec(), **spec)
        )
    )
    assert isinstance(created, Udf) and (created.id, created.paused) == (uid, False)
    return created


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_run_udf_worker_tags_every_row(udfs):
    ns, uid = fresh("udfns"), fresh("tags")

    async def go():
        async with client(udfs) as c:
            ids = await write_products(c, ns, 0, N_ROWS)
            # Discovery reads at the gateway's stable cut: wait until it covers the write (rows
            # written since the watermark are not under it; see `discover`).
            udfs.wait_stable(ns)
            created = await create_tagger(c, uid, ns)
            # Every default is written out, as the client's models have them.
            spec = created.spec
            assert (spec.version, spec.inputs, spec.target_namespaces) == ("v1", ["id", "title"], [ns])
            assert (spec.worker.batch_size, spec.worker.timeout_seconds) == (32, 30)
            assert (spec.schedule.lease_seconds, spec.schedule.discovery_interval_seconds) == (120, 60)
            assert (spec.schedule.max_in_flight_batches, spec.schedule.max_concurrent_scans) == (8, 4)
            retry = spec.retry
            assert (retry.max_attempts, retry.initial_backoff_seconds, retry.max_backoff_seconds) == (8, 5, 300)
            assert spec.triggers == ["discovery"]

            # The bundled worker, unchanged and forever (once=False), cancelled once the first
            # sweep is done and nothing is pending or leased: what `layer run` polls for.
            calls: list[str] = []
            worker = asyncio.create_task(
                run_udf_worker(classifier(calls), udf_id=uid, api_key=API_KEY, base_url=udfs.api_url)
            )
            try:
                st = await wait_status(
                    c,
                    uid,
                    lambda s: s.discovery.sweeps_completed >= 1 and drained(s),
                    "the worker to drain the queue",
                    worker,
                )
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            assert (st.counts, st.failed_count) == ({"indexed": N_ROWS}, 0)
            assert st.indexed_rate_per_min > 0 and st.active_namespaces == [ns]
            assert st.discovery.last_completed_at is not None
            assert sorted(calls) == ids, "each row processed exactly once"

            rows = await rows_of(c, ns)
            assert sorted(rows) == ids
            for rid, row in rows.items():
                assert row.get("tags") == expected_tags(row["title"]), f"{rid}: {row}"
                assert row.get(marker(uid)) == "v1", f"{rid}: {row}"
            assert rows["p0015"]["tags"] == ["wireless", "waterproof"]
            assert rows["p0001"]["tags"] == ["uncategorized"]

    run(go())


def test_reruns_version_bumps_and_new_rows(udfs):
    ns, uid = fresh("rerunns"), fresh("rerun")
    n = 200

    async def go():
        async with client(udfs) as c:
            ids = await write_products(c, ns, 0, n)
            udfs.wait_stable(ns)
            await create_tagger(c, uid, ns)
            await swept(c, uid)
            calls: list[str] = []
            fn = classifier(calls)
            st = await drain_once_at_a_time(c, udfs, fn, uid)
            assert st.counts == {"indexed": n} and sorted(calls) == ids

            # The same version again: every row carries its marker, nothing to do.
            assert await discover(c, udfs, uid, ns) == 0
            assert drained(await c.get_udf_status(uid))

            # A version bump (the user's spec, written again with the new version): every row.
            bumped = await c.upsert_udf(
                uid,
                UpdateUdfRequest(
                    spec=UdfSpec(target_namespaces=[ns], inputs=["id", "title"], version="v2", worker=UdfWorkerSpec())
                ),
            )
            assert isinstance(bumped, Udf) and (bumped.id, bumped.spec.version) == (uid, "v2")
            assert await discover(c, udfs, uid, ns) == n
            calls.clear()
            st = await drain_once_at_a_time(c, udfs, fn, uid)
            assert sorted(calls) == ids and st.counts == {"indexed": n}
            rows = await rows_of(c, ns)
            assert all(r.get(marker(uid)) == "v2" for r in rows.values()), rows

            # Rows written since: only those.
            new_ids = await write_products(c, ns, n, 20)
            assert await discover(c, udfs, uid, ns) == 20
            calls.clear()
            st = await drain_once_at_a_time(c, udfs, fn, uid)
            assert sorted(calls) == new_ids and st.counts == {"indexed": n + 20}
            rows = await rows_of(c, ns)
            assert len(rows) == n + 20
            for rid, row in rows.items():
                assert (row.get("tags"), row.get(marker(uid))) == (expected_tags(row["title"]), "v2"), rid
            assert await discover(c, udfs, uid, ns) == 0

    run(go())


def test_discover_right_after_completions(udfs):
    """What ``layer run`` does after a version bump: ``upsert_udf``, ``discover_udf``, then poll
    status until the queue is drained. Without waiting for the namespace to be stable again."""
    ns, uid = fresh("bumpns"), fresh("bump")
    n = 50

    async def go():
        async with client(udfs) as c:
            await write_products(c, ns, 0, n)
            udfs.wait_stable(ns)
            await create_tagger(c, uid, ns)
            await swept(c, uid)
            await drain_once_at_a_time(c, udfs, classifier([]), uid)
            await c.upsert_udf(
                uid,
                UpdateUdfRequest(
                    spec=UdfSpec(target_namespaces=[ns], inputs=["id", "title"], version="v2", worker=UdfWorkerSpec())
                ),
            )
            assert await discover(c, udfs, uid, ns, settle=False) == n

    run(go())


def test_transient_permanent_reset_pause_and_resume(udfs):
    ns, uid = fresh("retryns"), fresh("retry")

    async def go():
        async with client(udfs) as c:
            w = await c.write_namespace(
                ns,
                {
                    "upsert_rows": [
                        {"id": "p0000", "title": "wireless mouse"},
                        {"id": "p0001", "title": "flaky waterproof speaker"},
                        {"id": "p0002", "price": 3},  # no title: the classifier's PermanentError
                    ]
                },
            )
            assert w.rows_upserted == 3
            udfs.wait_stable(ns)
            # Two attempts with a 2 s backoff so a transient failure runs out of attempts within
            # the test; at the defaults (5 s doubling to 300 s, 8 attempts) that takes ten minutes.
            # (2 s, jittered to 1-2 s: the "not claimable at once" check below must land inside it
            # on a busy machine.)
            await create_tagger(
                c, uid, ns, retry=UdfRetrySpec(max_attempts=2, initial_backoff_seconds=2, max_backoff_seconds=2)
            )
            await swept(c, uid)

            calls: list[str] = []
            state = {"healed": False}
            docs_classifier = classifier(calls)

            @udf(output="tags")
            def flaky(*, id: str, title: str | None) -> list[str]:
                if title and "flaky" in title and not state["healed"]:
                    calls.append(id)
                    raise TransientError("the tagging model is busy")
                return docs_classifier(id=id, title=title)

            # One batch: p0000 completes, p0001 fails transiently, p0002 permanently.
            await work_once(udfs, flaky, uid)
            assert sorted(calls) == ["p0000", "p0001", "p0002"]
            st = await c.get_udf_status(uid)
            assert (st.counts.get("indexed"), st.pending_count, st.failed_count) == (1, 1, 1), st
            assert extra(st, "failed_reasons") == {"permanent": 1}, st

            # Backing off (1-2 s): not claimable at once.
            calls.clear()
            await work_once(udfs, flaky, uid)
            assert calls == []
            # After the backoff: claimed again, fails again, out of attempts: failed.
            deadline = time.monotonic() + DEADLINE_S
            while not calls:
                assert time.monotonic() < deadline, "the transient failure never came back"
                await asyncio.sleep(0.2)
                await work_once(udfs, flaky, uid)
            assert calls == ["p0001"]
            st = await c.get_udf_status(uid)
            assert (st.pending_count, st.processing_count, st.failed_count) == (0, 0, 2), st
            assert extra(st, "failed_reasons") == {"permanent": 1, "max_attempts": 1}, st
            # No more retries (past a whole backoff).
            calls.clear()
            await asyncio.sleep(2.2)
            await work_once(udfs, flaky, uid)
            assert calls == []

            # reset-failed (a bodyless POST) requeues both.
            reset = await c.reset_failed_udf(uid)
            assert isinstance(reset, UdfItemsResponse) and (reset.udf_id, reset.updated) == (uid, 2)
            st = await c.get_udf_status(uid)
            assert (st.pending_count, st.failed_count) == (2, 0), st

            # Paused: claims answer nothing and nothing is lost.
            paused = await c.pause_udf(uid)
            assert isinstance(paused, Udf) and paused.paused is True
            claimed = await c.claim_udf_items(uid, UdfClaimRequest(worker_id="w-paused"))
            assert isinstance(claimed, UdfClaimResponse) and claimed.items == []
            await work_once(udfs, flaky, uid)
            assert calls == []
            st = await c.get_udf_status(uid)
            assert (st.paused, st.pending_count) == (True, 2), st

            # Resumed: both come back; the healed one completes, the untitled one fails at once.
            resumed = await c.resume_udf(uid)
            assert isinstance(resumed, Udf) and resumed.paused is False
            state["healed"] = True
            await work_once(udfs, flaky, uid)
            assert sorted(calls) == ["p0001", "p0002"]
            st = await c.get_udf_status(uid)
            assert (st.paused, st.counts) == (False, {"indexed": 2, "failed": 1}), st
            assert extra(st, "failed_reasons") == {"permanent": 1}, st

            rows = await rows_of(c, ns)
            assert (rows["p0000"]["tags"], rows["p0000"][marker(uid)]) == (["wireless"], "v1")
            assert (rows["p0001"]["tags"], rows["p0001"][marker(uid)]) == (["waterproof"], "v1")
            assert rows["p0002"].get("tags") is None and rows["p0002"].get(marker(uid)) is None

    run(go())


def test_a_worker_killed_mid_batch_is_completed_once_after_its_lease(udfs):
    ns, uid = fresh("killns"), fresh("kill")
    n = 20

    async def go():
        async with client(udfs) as c:
            ids = await write_products(c, ns, 0, n)
            udfs.wait_stable(ns)
            await create_tagger(c, uid, ns)
            await swept(c, uid)

            # The worker that dies: a 5 s lease (the claim's own `lease_seconds`) so it runs out
            # within the test, yet holds through the checks below on a busy machine; the bundled
            # worker's claims get the spec's default (120 s).
            held = await c.claim_udf_items(uid, UdfClaimRequest(worker_id="w-killed", lease_seconds=5))
            assert isinstance(held, UdfClaimResponse) and held.worker_id == "w-killed"
            assert sorted(i.id for i in held.items) == ids
            assert all(list(i.input) == ["id", "title"] and i.namespace == ns for i in held.items)
            assert (await c.get_udf_status(uid)).processing_count == n

            calls: list[str] = []
            fn = classifier(calls)
            # Leased: nothing to claim yet.
            await work_once(udfs, fn, uid, worker_id="w-rescue")
            assert calls == []
            # Once the lease ran out, the bundled worker gets the whole batch.
            deadline = time.monotonic() + DEADLINE_S
            while not calls:
                assert time.monotonic() < deadline, "the dead worker's items never came back"
                await work_once(udfs, fn, uid, worker_id="w-rescue")
                await asyncio.sleep(0.2)
            st = await c.get_udf_status(uid)
            assert sorted(calls) == ids, "each item processed once"
            assert (st.counts, st.pending_count, st.processing_count) == ({"indexed": n}, 0, 0), st

            # The dead worker comes back and reports: nothing is written and nothing counted
            # (another worker completed the items; only a worker's own retried report counts).
            late = await c.complete_udf_items(
                uid,
                UdfCompleteRequest(
                    worker_id="w-killed",
                    items=[UdfCompleteItem(namespace=ns, id=i.id, attributes={"tags": ["late"]}) for i in held.items],
                ),
            )
            assert isinstance(late, UdfItemsResponse) and late.updated == 0
            hb = await c.heartbeat_udf_items(
                uid, UdfHeartbeatRequest(worker_id="w-killed", items=[UdfItemRef(namespace=ns, id=ids[0])])
            )
            assert hb.updated == 0
            # Nothing more to do: completed exactly once.
            await work_once(udfs, fn, uid, worker_id="w-rescue")
            assert sorted(calls) == ids
            st = await c.get_udf_status(uid)
            assert (st.counts, st.pending_count, st.processing_count) == ({"indexed": n}, 0, 0), st
            rows = await rows_of(c, ns)
            for rid, row in rows.items():
                assert (row.get("tags"), row.get(marker(uid))) == (expected_tags(row["title"]), "v1"), rid

    run(go())


def test_worker_protocol_with_models_crud_and_errors(udfs):
    ns, uid = fresh("crudns"), fresh("crud")

    async def go():
        async with client(udfs) as c:
            ids = await write_products(c, ns, 0, 4)
            udfs.wait_stable(ns)
            created = await create_tagger(c, uid, ns)

            # A duplicate id is 409; an unknown namespace or an empty input list is 422.
            with pytest.raises(HevlayerError) as e:
                await create_tagger(c, uid, ns)
            assert (e.value.status_code, e.value.error) == (409, "already_exists")
            with pytest.raises(HevlayerError) as e:
                await create_tagger(c, fresh("other"), fresh("nope"))
            assert (e.value.status_code, e.value.error) == (422, "validation_error")
            with pytest.raises(HevlayerError) as e:
                await c.create_udf(
                    CreateUdfRequest(id=fresh("other"), spec=UdfSpec(target_namespaces=[ns], worker=UdfWorkerSpec()))
                )
            assert (e.value.status_code, e.value.error) == (422, "validation_error")
            # Unknown UDFs are 404.
            ghost = fresh("ghost")
            for call in (
                lambda: c.get_udf(ghost),
                lambda: c.get_udf_status(ghost),
                lambda: c.pause_udf(ghost),
                lambda: c.discover_udf(ghost, UdfDiscoverRequest()),
                lambda: c.claim_udf_items(ghost, UdfClaimRequest(worker_id="w")),
                lambda: c.delete_udf(ghost),
            ):
                with pytest.raises(HevlayerError) as e:
                    await call()
                assert (e.value.status_code, e.value.error) == (404, "not_found")

            listing = await c.list_udfs()
            assert isinstance(listing, UdfList)
            assert [u.id for u in listing.udfs if u.id == uid] == [uid]
            got = await c.get_udf(uid)
            assert isinstance(got, GetUdfResponse)
            assert (got.udf.id, got.udf.created_at, got.status.udf_id) == (uid, created.created_at, uid)
            await swept(c, uid)

            # The protocol with the models: claim (input is exactly the declared inputs),
            # heartbeat, fail one, complete the rest (one marker-only).
            claimed = await c.claim_udf_items(uid, UdfClaimRequest(worker_id="w-models"))
            assert (claimed.udf_id, claimed.worker_id) == (uid, "w-models")
            items = sorted(claimed.items, key=lambda i: i.id)
            assert [i.id for i in items] == ids
            assert [i.input for i in items] == [{"id": i, "title": title_of(k)} for k, i in enumerate(ids)]
            refs = [UdfItemRef(namespace=i.namespace, id=i.id) for i in items]
            hb = await c.heartbeat_udf_items(uid, UdfHeartbeatRequest(worker_id="w-models", items=refs))
            assert isinstance(hb, UdfItemsResponse) and hb.updated == 4
            failed = await c.fail_udf_items(
                uid,
                UdfFailRequest(
                    worker_id="w-models", items=[UdfFailItem(namespace=ns, id=ids[3], kind="permanent", message="no")]
                ),
            )
            assert isinstance(failed, UdfItemsResponse) and failed.updated == 1
            done = await c.complete_udf_items(
                uid,
                UdfCompleteRequest(
                    worker_id="w-models",
                    items=[UdfCompleteItem(namespace=ns, id=i.id, attributes={"tags": ["t"]}) for i in items[:2]]
                    + [UdfCompleteItem(namespace=ns, id=ids[2])],
                ),
            )
            assert isinstance(done, UdfItemsResponse) and done.updated == 3
            st = await c.get_udf_status(uid)
            assert (st.counts, st.failed_count) == ({"indexed": 3, "failed": 1}, 1), st
            rows = await rows_of(c, ns)
            assert [rows[i].get("tags") for i in ids] == [["t"], ["t"], None, None]
            assert [rows[i].get(marker(uid)) for i in ids] == ["v1", "v1", "v1", None]
            # A reserved attribute in a completion is refused.
            with pytest.raises(HevlayerError) as e:
                await c.complete_udf_items(
                    uid,
                    UdfCompleteRequest(
                        worker_id="w-models",
                        items=[UdfCompleteItem(namespace=ns, id=ids[0], attributes={marker(uid): "v9"})],
                    ),
                )
            assert (e.value.status_code, e.value.error) == (422, "validation_error")

            # delete: the UDF goes, what it wrote stays.
            deleted = await c.delete_udf(uid)
            assert isinstance(deleted, StatusResponse) and deleted.status == "deleted"
            with pytest.raises(HevlayerError) as e:
                await c.get_udf(uid)
            assert e.value.status_code == 404
            assert all(u.id != uid for u in (await c.list_udfs()).udfs)
            assert (await rows_of(c, ns))[ids[0]]["tags"] == ["t"]

    run(go())
