"""Optional second-stage reranking with a sentence-transformers CrossEncoder loaded from a
local folder (set per knowledge base as `reranker`; nothing is ever downloaded).

Example::

    reranker = Reranker("/models/my-cross-encoder")   # the runtime keeps one per path
    scores = reranker.score("where do boats moor?", ["Boats moor at ...", "Kayaks ..."])
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from ingest.config import check_reranker_path

__all__ = ["RERANK_CANDIDATES", "Reranker", "check_reranker_path"]

# Candidates scored per query: the cross-encoder costs one forward pass per pair.
RERANK_CANDIDATES = 30


class Reranker:
    """A loaded CrossEncoder; `score` is thread-safe (calls are serialised)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self._model: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._model is None:
            from sentence_transformers import CrossEncoder

            check_reranker_path(self.ref)
            self._model = CrossEncoder(
                str(Path(self.ref).expanduser()), device="cpu", local_files_only=True
            )

    def score(self, query: str, texts: list[str]) -> np.ndarray:
        """Relevance per text, higher is better: in [0, 1] for a one-label model (the
        CrossEncoder's default sigmoid)."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        self.warm_up()
        with self._lock:
            scores = self._model.predict(
                [(query, t) for t in texts],
                batch_size=32,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return np.asarray(scores, dtype=np.float32).reshape(-1)
