"""Would int8 make CPU embedding faster at the same quality? OpenVINO bf16 (what ragops
runs) vs NNCF's int8 post-training quantisation and int8 weight compression (with the
CPU plugin's dynamic activation quantisation), on the chunks of 60 generated en/es/ru
documents: chunks/s, cosine to torch fp32, and whether each chunk's nearest neighbours
among the others stay the same.

NNCF is not a dependency of ragops; install it beside the project for this experiment:

    .venv/bin/pip install -q --no-deps --target /tmp/nncflib nncf==3.4.0 pydot
    PYTHONPATH=/tmp/nncflib .venv/bin/python tests/bench/bench_embed_int8.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from core.config import apply_offline_defaults  # noqa: E402

apply_offline_defaults()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_embed_backends import chunk_texts  # noqa: E402

from api.bench.corpus import make_documents  # noqa: E402
from core.types import Piece, StageReport  # noqa: E402
from ingest.chunk import SentenceChunker  # noqa: E402
from ingest.embed import Embedder, _convert  # noqa: E402

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _calibration(embedder: Embedder) -> list[str]:
    """Chunks of other documents than the measured ones (another seed)."""
    chunker = SentenceChunker(
        embedder.tokenize, chunk_size=200, chunk_overlap=32, max_tokens=embedder.max_tokens
    )
    texts: list[str] = []
    for d in make_documents(40, words=600, seed=7):
        meta = {"page_number": None, "section": None, "language": d.language}
        texts += [
            c.text for c in chunker([Piece(p, dict(meta)) for p in d.paragraphs], StageReport())
        ]
    return texts


def _encode(model: Any, compiled: Any, texts: list[str], batch: int = 16) -> np.ndarray:
    order = np.argsort([-len(t) for t in texts], kind="stable")
    parts = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            features = model.preprocess([texts[i] for i in order[start : start + batch]])
            result = compiled({k: features[k].numpy() for k in INPUTS if k in features})
            features["token_embeddings"] = torch.from_numpy(np.asarray(result[compiled.outputs[0]]))
            for module in list(model.children())[1:]:
                features = module(features)
            vectors = features["sentence_embedding"].float()
            parts.append(torch.nn.functional.normalize(vectors, p=2, dim=1).numpy())
    out = np.empty((len(texts), parts[0].shape[1]), np.float32)
    out[order] = np.concatenate(parts)
    return out


def _neighbours(reference: np.ndarray, vectors: np.ndarray) -> tuple[float, float]:
    """Share of chunks whose nearest other chunk is unchanged, and mean top-10 overlap."""
    ranks = []
    for v in (reference, vectors):
        sims = v @ v.T
        np.fill_diagonal(sims, -9.0)
        ranks.append(np.argsort(-sims, axis=1)[:, :10])
    top1 = float(np.mean(ranks[0][:, 0] == ranks[1][:, 0]))
    top10 = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(*ranks, strict=True)]))
    return top1, top10


def main() -> None:
    try:
        import nncf
    except ImportError:
        sys.exit("nncf is not importable: see the install line at the top of this file")
    import openvino as ov

    embedder = Embedder("all-MiniLM-L6-v2", device="cpu", backend="torch")
    model = embedder.model
    texts = chunk_texts(embedder)
    with torch.no_grad():
        reference = np.asarray(model.encode(texts, batch_size=16, normalize_embeddings=True))
        example = model.preprocess(texts[:2])
        converted = _convert(model[0].auto_model, {k: example[k] for k in INPUTS if k in example})
    calibration = []
    calib_texts = _calibration(embedder)
    for start in range(0, len(calib_texts), 8):
        features = model.preprocess(calib_texts[start : start + 8])
        calibration.append({k: features[k].numpy() for k in INPUTS if k in features})
    variants = {
        "OpenVINO bf16 (ragops)": (converted, {}),
        "int8 post-training quantisation": (
            nncf.quantize(
                converted.clone(),
                nncf.Dataset(calibration),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(calibration),
            ),
            {},
        ),
        "int8 weights + dynamic activations": (
            nncf.compress_weights(converted.clone(), mode=nncf.CompressWeightsMode.INT8_ASYM),
            {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 32},
        ),
    }
    core = ov.Core()
    print(f"{len(texts)} chunks")
    print("| variant | chunks/s | min cosine | mean cosine | top-1 same | top-10 overlap |")
    print("|---|---|---|---|---|---|")
    for name, (graph, extra) in variants.items():
        config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY", **extra}
        compiled = core.compile_model(graph, "CPU", config)
        _encode(model, compiled, texts[:32])
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            vectors = _encode(model, compiled, texts)
            best = min(best, time.perf_counter() - t0)
        cosine = np.sum(vectors * reference, axis=1)
        top1, top10 = _neighbours(reference, vectors)
        print(
            f"| {name} | {len(texts) / best:.0f} | {cosine.min():.5f} | {cosine.mean():.5f} "
            f"| {top1:.3f} | {top10:.3f} |"
        )


if __name__ == "__main__":
    main()
