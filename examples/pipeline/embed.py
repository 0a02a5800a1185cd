"""The GPU stage (the docs' ``embed.py``): claim pending documents, read their chunks back, embed
them with all-MiniLM-L6-v2 and write the vectors (which marks each document ``indexed``). Claims
are leased (900 s by default), so a worker that crashes loses nothing: its documents are claimed
again once the lease runs out. Runs until a claim comes back empty when ``--drain`` is given,
forever otherwise. Environment as for ``extract_chunk.py``; ``HEVLAYER_WORKER_ID`` names the
worker (default ``embed-0``).
"""

from __future__ import annotations

import asyncio
import os
import sys

from hevlayer import AsyncHevlayer

from embedding import MiniLM


async def embed_worker(
    layer: AsyncHevlayer, pipeline: str, model: MiniLM, worker_id: str, drain: bool = True
) -> list[str]:
    """Claims 16 at a time until nothing is claimable (``drain``) and returns the documents it
    indexed."""
    done: list[str] = []
    while True:
        claimed = await layer.claim_documents(
            pipeline, {"stage": "pending", "claim_stage": "embedding", "limit": 16, "worker_id": worker_id}
        )
        if not claimed.documents:
            if drain:
                return done
            await asyncio.sleep(1.0)
            continue
        for doc_id in claimed.documents:
            doc_chunks = await layer.get_pipeline_document_chunks(pipeline, doc_id)
            # The model runs on a thread so the other worker's HTTP calls go on meanwhile.
            vectors = await asyncio.to_thread(model.encode, [c.text or "" for c in doc_chunks])
            await layer.put_pipeline_document_vectors(
                pipeline,
                doc_id,
                {
                    "vectors": [
                        {"id": c.id, "vector": v.tolist(), "attributes": {"text": c.text, "doc": doc_id}}
                        for c, v in zip(doc_chunks, vectors)
                    ]
                },
            )
            done.append(doc_id)


async def main() -> None:
    async with AsyncHevlayer(
        base_url=os.environ["HEVLAYER_BASE_URL"], api_key=os.environ.get("LAYER_GATEWAY_API_KEY")
    ) as layer:
        done = await embed_worker(
            layer,
            os.environ["HEVLAYER_PIPELINE_ID"],
            MiniLM(),
            os.environ.get("HEVLAYER_WORKER_ID", "embed-0"),
            drain="--drain" in sys.argv,
        )
    print(f"indexed {len(done)} documents")


if __name__ == "__main__":
    asyncio.run(main())
