"""FAISS backend: one directory per index version holding `index.faiss` (vectors) and
`payloads.json` (chunk id and filterable metadata per vector)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from index.base import Hit, matches

log = logging.getLogger(__name__)


def faiss_id(chunk_id: str) -> int:
    """Stable positive int64 for any chunk id (60 bits of its sha256: collisions are
    negligible at any realistic index size)."""
    return int(hashlib.sha256(chunk_id.encode()).hexdigest()[:15], 16)


def _gpu_resources() -> Any | None:
    """faiss-gpu's resources when it is installed and a GPU is visible, else None."""
    import faiss

    if not hasattr(faiss, "StandardGpuResources"):
        return None
    try:
        if faiss.get_num_gpus() < 1:
            return None
        return faiss.StandardGpuResources()
    except Exception:  # noqa: BLE001 - a broken CUDA install must not stop the CPU path
        log.warning("faiss-gpu is installed but unusable; searching on the CPU")
        return None


class FaissIndex:
    """Exact inner-product search (IndexFlatIP behind an IndexIDMap2).

    Filtering runs on payloads through an id selector, so filtered searches still
    return the best `top_k` matching vectors, not a post-filtered remainder.
    """

    backend = "faiss"

    def __init__(
        self,
        path: Path,
        dimension: int,
        *,
        index: Any = None,
        payloads: dict[int, dict[str, Any]] | None = None,
    ) -> None:
        import faiss

        self.path = path
        self.dimension = dimension
        self._index = (
            index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        )
        self._payloads: dict[int, dict[str, Any]] = payloads or {}
        self._gpu_index: Any = None  # built on first unfiltered search when faiss-gpu works

    # -- persistence ------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, dimension: int) -> FaissIndex:
        """Load the version directory, or start empty when it has never been saved."""
        import faiss

        index_file = path / "index.faiss"
        if not index_file.exists():
            return cls(path, dimension)
        index = faiss.read_index(str(index_file))
        if index.d != dimension:
            raise ValueError(f"{index_file} has dimension {index.d}, expected {dimension}")
        raw = json.loads((path / "payloads.json").read_text())
        payloads = {int(k): v for k, v in raw.items()}
        return cls(path, dimension, index=index, payloads=payloads)

    def save(self) -> None:
        import faiss

        self.path.mkdir(parents=True, exist_ok=True)
        # Write both files under temporary names, then rename: a crash mid-write leaves
        # the previous snapshot readable. payloads.json is renamed last and read first,
        # and open() tolerates payload entries for ids the index lacks.
        fd, tmp_index = tempfile.mkstemp(dir=self.path, prefix=".index-")
        os.close(fd)
        faiss.write_index(self._index, tmp_index)
        fd, tmp_payloads = tempfile.mkstemp(dir=self.path, prefix=".payloads-")
        with os.fdopen(fd, "w") as fh:
            json.dump({str(k): v for k, v in self._payloads.items()}, fh)
        os.replace(tmp_index, self.path / "index.faiss")
        os.replace(tmp_payloads, self.path / "payloads.json")

    def copy(self) -> FaissIndex:
        import faiss

        return FaissIndex(
            self.path,
            self.dimension,
            index=faiss.clone_index(self._index),
            payloads={k: dict(v) for k, v in self._payloads.items()},
        )

    # -- writes -----------------------------------------------------------------------
    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        if not ids:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"expected vectors of dimension {self.dimension}, got shape {vectors.shape}"
            )
        if not (len(ids) == len(vectors) == len(payloads)):
            raise ValueError("ids, vectors and payloads must have the same length")
        int_ids = np.array([faiss_id(i) for i in ids], dtype=np.int64)
        self._gpu_index = None
        self._remove(int_ids)
        self._index.add_with_ids(vectors, int_ids)
        for int_id, chunk_id, payload in zip(int_ids.tolist(), ids, payloads, strict=True):
            self._payloads[int_id] = {**payload, "chunk_id": chunk_id}

    def delete(self, ids: list[str]) -> None:
        if ids:
            self._gpu_index = None
            self._remove(np.array([faiss_id(i) for i in ids], dtype=np.int64))

    def _search_index(self) -> Any:
        if self._gpu_index is None:
            res = _gpu_resources()
            if res is None:
                self._gpu_index = False
            else:
                import faiss

                self._gpu_index = faiss.index_cpu_to_gpu(res, 0, self._index)
        return self._gpu_index or self._index

    def _remove(self, int_ids: np.ndarray) -> None:
        import faiss

        present = [i for i in int_ids.tolist() if i in self._payloads]
        if not present:
            return
        self._index.remove_ids(faiss.IDSelectorBatch(np.array(present, dtype=np.int64)))
        for i in present:
            del self._payloads[i]

    # -- reads ------------------------------------------------------------------------
    def count(self) -> int:
        return int(self._index.ntotal)

    def search(
        self, vector: np.ndarray, top_k: int, filters: dict[str, Any] | None = None
    ) -> list[Hit]:
        import faiss

        n = self.count()
        if n == 0 or top_k <= 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dimension:
            raise ValueError(f"query has dimension {query.shape[1]}, index has {self.dimension}")
        params = None
        if filters:
            allowed = [i for i, p in self._payloads.items() if matches(p, filters)]
            if not allowed:
                return []
            params = faiss.SearchParameters(
                sel=faiss.IDSelectorBatch(np.array(allowed, dtype=np.int64))
            )
            top_k = min(top_k, len(allowed))
        # Selector-filtered searches stay on the CPU: GPU indexes don't take id selectors.
        index = self._index if params is not None else self._search_index()
        scores, ids = index.search(query, min(top_k, n), params=params)
        hits = []
        for score, int_id in zip(scores[0].tolist(), ids[0].tolist(), strict=True):
            if int_id < 0:
                continue
            payload = self._payloads[int_id]
            hits.append(Hit(chunk_id=payload["chunk_id"], score=float(score), payload=payload))
        return hits
