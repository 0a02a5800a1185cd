"""The app (the docs' ``app.py``): trigger a run and wait for it to complete. Creates the pipeline
on first use (``ensure_pipeline``: 409 means it exists), stages the documents (in the docs an SQS send; here the extract stage is called
directly), then waits in the docs' two steps: the queue drains (``pending_count`` reaches 0, the
signal KEDA scales on), then (with a snapshot policy on the target namespace) a snapshot whose
watermark is past the run's start appears in the namespace's history. Returns that sha.
"""

from __future__ import annotations

import asyncio
import time

from hevlayer import AsyncHevlayer

from extract_chunk import stage_documents


async def drain(layer: AsyncHevlayer, pipeline: str, poll: float = 0.5, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = await layer.get_pipeline_status(pipeline)
        if status.pending_count == 0 and status.processing_count == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pipeline} did not drain: {status.counts}")
        await asyncio.sleep(poll)


async def next_snapshot(layer: AsyncHevlayer, namespace: str, after_ms: int, poll: float = 0.5, timeout: float = 300.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        history = await layer.list_namespace_history(namespace, limit=1)
        if history and history[0].watermark_ms >= after_ms:
            return history[0].sha
        if time.monotonic() > deadline:
            raise TimeoutError(f"no snapshot of {namespace} past {after_ms}")
        await asyncio.sleep(poll)


async def index_run(layer: AsyncHevlayer, pipeline: str, namespace: str, documents: list[dict]) -> dict:
    """Stages `documents` and returns once they are indexed and snapshotted (the embed workers
    run elsewhere: in the cluster, or beside this call in the example's test)."""
    started_ms = int(time.time() * 1000)
    await layer.ensure_pipeline({"id": pipeline, "target_namespace": namespace})
    await stage_documents(layer, pipeline, documents)
    await drain(layer, pipeline)
    # The policy goes on once the vectors are written: the automatic writer's first snapshot of
    # a namespace waits until the watermark covers the newest write, so it covers the whole run
    # (a policy set before the run could snapshot it half-way, and the next snapshot would wait
    # for the policy's interval).
    await layer.put_snapshot_policy(namespace, {"facetFields": ["doc"], "interval": "5m", "retention": "never"})
    sha = await next_snapshot(layer, namespace, started_ms)
    return {"documents": len(documents), "snapshot": sha}
