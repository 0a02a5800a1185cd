"""The published ``hevlayer`` 0.7.3 client against the gateway: pipelines, unchanged.

The docs' extract → embed flow with the client's own calls and helpers: ``ensure_pipeline``
(create, then the 409 path), ``put_pipeline_document_chunks`` for 200 documents, two embed
workers claiming concurrently (``claim_documents``), ``get_pipeline_document_chunks`` (a bare
array parsed as ``list[Chunk]``), ``put_pipeline_document_vectors`` and ``write_single_vector``,
``heartbeat_documents``, ``release_documents`` / ``fail_documents`` / ``complete_documents``,
``get_pipeline_status`` until ``pending_count`` is 0, ``list_pipelines``, ``delete_pipeline``,
and the error shapes (404 for an unknown pipeline, 409 for a failed guard, 422 for bad input).
The embedding here is a toy (the example workers under ``examples/pipeline`` use
all-MiniLM-L6-v2); a nearest-neighbour query through the gateway finds each document by its own
vector.

The gateway gets the queue from ``LAYER_TEST_DATABASE_URL`` (``conftest._gateway_env``); without
it these tests skip, except under CI where they fail.
"""

from __future__ import annotations

import asyncio

import pytest
from hevlayer import AsyncHevlayer, HevlayerError
from hevlayer.models import (
    Chunk,
    ClaimDocumentsRequest,
    ClaimDocumentsResponse,
    CreatePipelineRequest,
    DocumentsStageResponse,
    HeartbeatDocumentsRequest,
    Pipeline,
    PipelineStatus,
    PutChunksRequest,
    PutVectorsRequest,
    StageDocumentResponse,
    StatusResponse,
    VectorEntry,
)

from compat_helpers import API_KEY, fresh, run

N_DOCS = 200


def embed(text: str) -> list[float]:
    """A toy embedding: a one-hot-ish vector from the document number in the text."""
    n = int(text.split()[-1])
    v = [0.0] * 16
    v[n % 16] = 1.0
    v[(n // 16) % 16] += 0.5
    return v


async def embed_worker(c: AsyncHevlayer, pid: str, name: str) -> list[str]:
    done: list[str] = []
    while True:
        claimed = await c.claim_documents(
            pid, ClaimDocumentsRequest(worker_id=name, stage="pending", claim_stage="embedding", limit=16)
        )
        assert isinstance(claimed, ClaimDocumentsResponse)
        assert (claimed.stage, claimed.claim_stage, claimed.worker_id) == ("pending", "embedding", name)
        if not claimed.documents:
            return done
        hb = await c.heartbeat_documents(pid, HeartbeatDocumentsRequest(document_ids=claimed.documents, worker_id=name))
        assert isinstance(hb, DocumentsStageResponse) and hb.updated == len(claimed.documents)
        for doc_id in claimed.documents:
            chunks = await c.get_pipeline_document_chunks(pid, doc_id)
            assert all(isinstance(ch, Chunk) for ch in chunks)
            r = await c.put_pipeline_document_vectors(
                pid,
                doc_id,
                PutVectorsRequest(
                    vectors=[
                        VectorEntry(id=ch.id, vector=embed(ch.text), attributes={"text": ch.text, "doc": doc_id})
                        for ch in chunks
                    ]
                ),
            )
            assert isinstance(r, StatusResponse) and r.status == "indexed"
            done.append(doc_id)


def test_extract_then_embed_with_the_published_client(pipelines):
    pid = fresh("pipe")
    ns = fresh("pipens")

    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=pipelines.api_url) as c:
            created = await c.ensure_pipeline(CreatePipelineRequest(id=pid, target_namespace=ns))
            assert isinstance(created, Pipeline) and created.distance_metric == "cosine_distance"
            # The 409 path: the listed pipeline comes back.
            again = await c.ensure_pipeline({"id": pid, "target_namespace": "elsewhere"})
            assert (again.id, again.target_namespace) == (pid, ns)

            # Extract: stage 200 documents (10 at a time, like the docs' SQS batches).
            async def stage(i: int) -> None:
                r = await c.put_pipeline_document_chunks(
                    pid, f"doc-{i}", PutChunksRequest(chunks=[Chunk(id=f"doc-{i}-0", text=f"document number {i}")])
                )
                assert isinstance(r, StageDocumentResponse)
                assert (r.stage, r.chunk_count, r.chunk_ids) == ("pending", 1, [f"doc-{i}-0"])

            for start in range(0, N_DOCS, 10):
                await asyncio.gather(*(stage(i) for i in range(start, start + 10)))
            status = await c.get_pipeline_status(pid)
            assert isinstance(status, PipelineStatus)
            assert (status.pending_count, status.counts) == (N_DOCS, {"pending": N_DOCS})

            # Embed: two workers claiming concurrently; every document once.
            a, b = await asyncio.gather(embed_worker(c, pid, "embed-0"), embed_worker(c, pid, "embed-1"))
            assert not set(a) & set(b)
            assert sorted(a + b) == sorted(f"doc-{i}" for i in range(N_DOCS))
            status = await c.get_pipeline_status(pid)
            assert (status.pending_count, status.processing_count, status.counts) == (0, 0, {"indexed": N_DOCS})
            assert status.status == "idle" and status.indexed_rate_per_min > 0

            # The vectors are in the target namespace: each document is its own nearest neighbour.
            for i in (3, 77, 150):
                res = await c.query_namespace(
                    ns,
                    {
                        "rank_by": ["vector", "ANN", embed(f"document number {i}")],
                        "top_k": 1,
                        "include_attributes": ["doc"],
                        "consistency": {"level": "strong"},
                    },
                )
                assert res.rows[0]["doc"] == f"doc-{i}"

            assert any(p.id == pid for p in (await c.list_pipelines()).pipelines)
            deleted = await c.delete_pipeline(pid)
            assert isinstance(deleted, StatusResponse)
            with pytest.raises(HevlayerError) as e:
                await c.get_pipeline_status(pid)
            assert e.value.status_code == 404

    run(go())


def test_the_stage_helpers_and_their_guards(pipelines):
    pid = fresh("helpers")

    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=pipelines.api_url) as c:
            await c.create_pipeline({"id": pid, "target_namespace": fresh("helpersns")})
            for d in ("a", "b", "c"):
                await c.put_pipeline_document_chunks(pid, d, {"chunks": [{"id": f"{d}-0", "text": d}]})
            claimed = await c.claim_documents(pid, {"worker_id": "w1", "limit": 3})
            assert sorted(claimed.documents) == ["a", "b", "c"]

            # release: back to pending, guarded by the holder.
            with pytest.raises(HevlayerError) as e:
                await c.release_documents(pid, ["a"], worker_id="someone-else")
            assert (e.value.status_code, e.value.error) == (409, "conflict")
            r = await c.release_documents(pid, ["a"], from_stage="embedding", worker_id="w1")
            assert (r.stage, r.updated) == ("pending", 1)
            r = await c.fail_documents(pid, ["b"], worker_id="w1")
            assert r.stage == "failed"
            r = await c.complete_documents(pid, ["c"], worker_id="w1")
            assert r.stage == "indexed"
            status = await c.get_pipeline_status(pid)
            assert status.counts == {"pending": 1, "failed": 1, "indexed": 1}
            assert (status.failed_count, status.failed_reasons) == (1, {"unknown": 1})

            # write_single_vector: one entry, validated as a VectorEntry by the client first.
            r = await c.write_single_vector(pid, "a", {"id": "a-0", "vector": [0.1, 0.2, 0.3]})
            assert r.status == "indexed"
            # write_single_multivector: refused with a stable feature id.
            with pytest.raises(HevlayerError) as e:
                await c.write_single_multivector(pid, "a", "a-0", [[0.1], [0.2]])
            assert (e.value.status_code, e.value.error, e.value.feature) == (422, "unsupported_by_store", "multi_vector")

            # Errors: unknown pipeline, empty chunk list, bad body types.
            with pytest.raises(HevlayerError) as e:
                await c.put_pipeline_document_chunks(fresh("nope"), "d", {"chunks": [{"id": "x"}]})
            assert (e.value.status_code, e.value.error) == (404, "not_found")
            with pytest.raises(HevlayerError) as e:
                await c.put_pipeline_document_chunks(pid, "d", {"chunks": []})
            assert (e.value.status_code, e.value.error) == (422, "validation_error")
            with pytest.raises(HevlayerError) as e:
                await c.claim_documents(pid, {"worker_id": "w", "limit": 0})
            assert e.value.status_code == 422
            # Chunks of a document created without staging: an empty list.
            await c.set_documents_stage(pid, {"document_ids": ["ghost"], "stage": "pending", "create_missing": True})
            assert await c.get_pipeline_document_chunks(pid, "ghost") == []

    run(go())
