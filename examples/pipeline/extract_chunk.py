"""The CPU stage (the docs' ``extract_chunk.py``): read source documents, split their text into
chunks and stage them. The docs read an SQS queue named by ``HEVLAYER_SOURCE_REF``; this example
reads a JSON Lines file named there (``{"file": "docs.jsonl"}``, one ``{"id", "text"}`` per line)
so it runs anywhere. Environment: ``HEVLAYER_PIPELINE_ID``, ``HEVLAYER_BASE_URL``,
``LAYER_GATEWAY_API_KEY``, ``HEVLAYER_SOURCE_REF`` (what the operator injects).
"""

from __future__ import annotations

import asyncio
import json
import os

from hevlayer import AsyncHevlayer


def chunks(text: str, size: int = 800) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


async def stage_documents(layer: AsyncHevlayer, pipeline: str, documents: list[dict]) -> int:
    """Stages every document's chunks (ten at a time, like the docs' SQS batches)."""
    staged = 0
    for start in range(0, len(documents), 10):
        batch = documents[start : start + 10]
        await asyncio.gather(
            *(
                layer.put_pipeline_document_chunks(
                    pipeline,
                    doc["id"],
                    {"chunks": [{"id": f"{doc['id']}-{i}", "text": t} for i, t in enumerate(chunks(doc["text"]))]},
                )
                for doc in batch
            )
        )
        staged += len(batch)
    return staged


async def main() -> None:
    source = json.loads(os.environ["HEVLAYER_SOURCE_REF"])
    with open(source["file"], encoding="utf-8") as f:
        documents = [json.loads(line) for line in f if line.strip()]
    async with AsyncHevlayer(
        base_url=os.environ["HEVLAYER_BASE_URL"], api_key=os.environ.get("LAYER_GATEWAY_API_KEY")
    ) as layer:
        n = await stage_documents(layer, os.environ["HEVLAYER_PIPELINE_ID"], documents)
    print(f"staged {n} documents")


if __name__ == "__main__":
    asyncio.run(main())
