"""A second, genuinely different sentence-transformers model on a local path, derived
offline from the packaged all-MiniLM-L6-v2 (CLS pooling + a fixed 384→256 projection):
enough to test re-embedding into another dimension without any download."""

from __future__ import annotations

from pathlib import Path


def make_derived_model(path: Path, out_features: int = 256) -> Path:
    if (path / "modules.json").exists():
        return path
    import torch
    from sentence_transformers import SentenceTransformer, models

    from ingest.embed import resolve_model_path

    transformer = models.Transformer(
        str(resolve_model_path("all-MiniLM-L6-v2")), max_seq_length=128
    )
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    torch.manual_seed(0)
    dense = models.Dense(
        in_features=transformer.get_embedding_dimension(),
        out_features=out_features,
        activation_function=torch.nn.Identity(),
    )
    model = SentenceTransformer(
        modules=[transformer, pooling, dense, models.Normalize()], device="cpu"
    )
    model.save(str(path))
    return path
