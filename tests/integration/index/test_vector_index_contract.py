"""The VectorIndex contract (index/base.py), run against every backend.

`VectorIndexContract` holds the tests; each backend subclasses it and overrides the one
`backend` fixture, which knows how to open an index and how to reopen it from storage.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from index.base import VectorIndex
from index.faiss_index import FaissIndex
from index.qdrant_index import (
    QdrantIndex,
    close_client,
    collection_name,
    make_client,
    resolve_alias,
    set_alias,
)

pytestmark = pytest.mark.integration

DIM = 16


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def axis(i: int, dim: int = DIM) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[i] = 1.0
    return v


def blend(*weights: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(weights)] = weights
    return v / np.linalg.norm(v)


def cid(n: int) -> str:
    return f"{n:032x}"


@dataclass
class Backend:
    """How one backend opens an index and reopens it from what it persisted."""

    open: Callable[[int], VectorIndex]
    reopen: Callable[[VectorIndex, int], VectorIndex]


class VectorIndexContract:
    """Subclasses override `backend` only."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        raise NotImplementedError

    @pytest.fixture
    def index(self, backend: Backend) -> VectorIndex:
        ix = backend.open(DIM)
        ix.upsert(
            [cid(1), cid(2), cid(3), cid(4)],
            np.vstack([axis(0), axis(1), blend(1, 1), blend(1, 0, 1)]),
            [
                {"document_id": "a", "page_number": 1, "section": "intro"},
                {"document_id": "b", "page_number": 2, "section": "body"},
                {"document_id": "b", "page_number": 3, "section": "body"},
                {"document_id": "c", "page_number": 4, "section": "end"},
            ],
        )
        return ix

    def test_search_is_best_first_with_cosine_scores(self, index: VectorIndex) -> None:
        query = blend(1, 0.2)
        hits = index.search(query, 4)
        assert [h.chunk_id for h in hits] == [cid(1), cid(3), cid(4), cid(2)]
        assert hits[0].score == pytest.approx(float(query @ axis(0)), abs=1e-5)
        assert hits[0].payload["chunk_id"] == cid(1)
        assert hits[0].payload["document_id"] == "a"
        assert len(index.search(query, 2)) == 2
        assert len(index.search(query, 50)) == 4

    def test_equality_filter_returns_best_matching(self, index: VectorIndex) -> None:
        hits = index.search(axis(0), 1, {"document_id": "b"})
        assert [h.chunk_id for h in hits] == [cid(3)]
        hits = index.search(axis(0), 5, {"document_id": "b", "page_number": 2})
        assert [h.chunk_id for h in hits] == [cid(2)]
        assert index.search(axis(0), 5, {"document_id": "zzz"}) == []

    def test_list_filter_means_any_of(self, index: VectorIndex) -> None:
        hits = index.search(axis(0), 5, {"page_number": [2, 4]})
        assert [h.chunk_id for h in hits] == [cid(4), cid(2)]
        hits = index.search(axis(1), 5, {"section": ["intro", "end"]})
        assert {h.chunk_id for h in hits} == {cid(1), cid(4)}
        assert index.search(axis(0), 5, {"section": []}) == []

    def test_upsert_is_idempotent_and_replaces_vector_and_payload(self, index: VectorIndex) -> None:
        index.upsert([cid(1)], np.vstack([axis(5)]), [{"document_id": "a2"}])
        index.upsert([cid(1)], np.vstack([axis(5)]), [{"document_id": "a2"}])
        assert index.count() == 4
        hits = index.search(axis(5), 1)
        assert hits[0].chunk_id == cid(1)
        assert hits[0].payload["document_id"] == "a2"
        assert "page_number" not in hits[0].payload  # replaced, not merged
        assert index.search(axis(0), 5, {"document_id": "a"}) == []

    def test_repeated_id_in_one_call_keeps_the_last(self, index: VectorIndex) -> None:
        index.upsert(
            [cid(7), cid(7)], np.vstack([axis(6), axis(7)]), [{"v": "first"}, {"v": "last"}]
        )
        assert index.count() == 5
        assert index.search(axis(7), 1)[0].payload["v"] == "last"

    def test_delete_removes_and_ignores_unknown_ids(self, index: VectorIndex) -> None:
        index.delete([cid(2), cid(99)])
        index.delete([])
        assert index.count() == 3
        assert cid(2) not in {h.chunk_id for h in index.search(axis(1), 10)}
        assert index.search(axis(1), 10, {"page_number": 2}) == []

    def test_empty_index_and_zero_top_k(self, backend: Backend) -> None:
        ix = backend.open(DIM)
        assert ix.count() == 0
        assert ix.search(axis(0), 3) == []
        ix.upsert([cid(1)], np.vstack([axis(0)]), [{}])
        assert ix.search(axis(0), 0) == []

    def test_persistence_round_trip(self, backend: Backend, index: VectorIndex) -> None:
        index.delete([cid(4)])
        index.save()
        again = backend.reopen(index, DIM)
        assert again.count() == 3
        hits = again.search(axis(1), 1)
        assert hits[0].chunk_id == cid(2) and hits[0].payload["document_id"] == "b"
        assert [h.chunk_id for h in again.search(axis(0), 3, {"document_id": "b"})] == [
            cid(3),
            cid(2),
        ]

    def test_reopen_with_another_dimension_is_rejected(
        self, backend: Backend, index: VectorIndex
    ) -> None:
        index.save()
        with pytest.raises(ValueError, match="dimension"):
            backend.reopen(index, DIM + 1)

    def test_wrong_dimension_is_rejected(self, index: VectorIndex) -> None:
        with pytest.raises(ValueError, match=f"dimension {DIM}"):
            index.upsert([cid(9)], np.ones((1, DIM + 1), dtype=np.float32), [{}])
        with pytest.raises(ValueError, match="dimension"):
            index.search(np.ones(DIM - 1, dtype=np.float32), 1)
        with pytest.raises(ValueError, match="same length"):
            index.upsert([cid(9), cid(10)], np.vstack([axis(0)]), [{}])
        assert index.count() == 4

    def test_many_vectors_find_themselves_and_honour_filters(self, backend: Backend) -> None:
        """Enough vectors for approximate backends to build their real structures."""
        rng = np.random.default_rng(7)
        n = 1500
        vectors = unit_rows(rng, n)
        ids = [cid(i) for i in range(n)]
        ix = backend.open(DIM)
        ix.upsert(ids, vectors, [{"document_id": f"d{i % 10}", "page_number": i} for i in range(n)])
        ix.delete(ids[:100])
        ix.save()
        ix = backend.reopen(ix, DIM)
        assert ix.count() == n - 100
        probes = range(100, n, 50)
        found = sum(ix.search(vectors[i], 10)[0].chunk_id == ids[i] for i in probes)
        assert found >= 0.9 * len(probes)
        assert ix.search(vectors[5], 10, {"page_number": 5}) == []  # deleted
        hits = ix.search(vectors[123], 10, {"document_id": "d3"})
        assert len(hits) == 10
        assert all(h.payload["document_id"] == "d3" for h in hits)
        assert hits[0].chunk_id == ids[123]
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


# -- FAISS ------------------------------------------------------------------------------


def faiss_backend(path: Path, index_type: str, params: dict[str, Any] | None = None) -> Backend:
    def open_(dim: int) -> VectorIndex:
        return FaissIndex.open(path, dim, index_type=index_type, index_params=params)

    return Backend(open=open_, reopen=lambda _ix, dim: open_(dim))


class TestFaissFlat(VectorIndexContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        yield faiss_backend(tmp_path / "v1", "flat")


class TestFaissHnsw(VectorIndexContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        yield faiss_backend(tmp_path / "v1", "hnsw", {"M": 16})


class TestFaissIvfPq(VectorIndexContract):
    """nlist=8, nbits=6: training starts at max(39*8, 64, 256) = 312 vectors, so the bulk
    test runs on a trained index while the small ones run exact."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        yield faiss_backend(tmp_path / "v1", "ivfpq", {"nlist": 8, "m": 8, "nbits": 6})

    def test_training_kicks_in_at_save(self, backend: Backend) -> None:
        ix = backend.open(DIM)
        assert isinstance(ix, FaissIndex)
        vectors = unit_rows(np.random.default_rng(1), 400)
        ix.upsert([cid(i) for i in range(400)], vectors, [{}] * 400)
        assert not ix.trained
        ix.save()
        assert ix.trained
        reopened = backend.reopen(ix, DIM)
        assert isinstance(reopened, FaissIndex) and reopened.trained


# -- Qdrant (local mode; the server takes the same calls) -------------------------------


class TestQdrantMemory(VectorIndexContract):
    """ ":memory:" has no storage to reopen from: reopening is a second handle on the same
    client, which is what a server deployment does on every request."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        client = QdrantClient(location=":memory:")
        name = f"c{uuid.uuid4().hex[:8]}"

        def open_(dim: int) -> VectorIndex:
            return QdrantIndex.open(client, name, dim)

        yield Backend(open=open_, reopen=lambda _ix, dim: open_(dim))
        client.close()


class TestQdrantPath(VectorIndexContract):
    """Reopen closes the cached local client (releasing its folder lock) and opens a new
    one on the same path, so the data really comes back from disk."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        path = tmp_path / "qdrant"

        def open_(dim: int) -> VectorIndex:
            return QdrantIndex.open(make_client(path=path), "kb1_v1", dim)

        def reopen(_ix: VectorIndex, dim: int) -> VectorIndex:
            close_client(path)
            return open_(dim)

        yield Backend(open=open_, reopen=reopen)
        close_client(path)


# -- Qdrant-only: collections, aliases, local-mode limits -------------------------------


def test_collection_name_is_stable_safe_and_distinct() -> None:
    name = collection_name("kb/ü one", 3, "0123456789abcdef")
    assert name == collection_name("kb/ü one", 3, "0123456789abcdef")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name) and len(name) < 100
    assert name != collection_name("kb_ü one", 3, "0123456789abcdef")  # same slug
    assert name != collection_name("kb/ü one", 4, "0123456789abcdef")


@pytest.mark.parametrize("where", ["memory", "path"])
def test_alias_moves_atomically_between_versions(tmp_path: Path, where: str) -> None:
    client = QdrantClient(location=":memory:") if where == "memory" else make_client(path=tmp_path)
    try:
        v1 = QdrantIndex.open(client, collection_name("kb", 1, "a" * 32), 4)
        v2 = QdrantIndex.open(client, collection_name("kb", 2, "b" * 32), 4)
        v1.upsert(["old"], np.eye(4, dtype=np.float32)[:1], [{}])
        v2.upsert(["new"], np.eye(4, dtype=np.float32)[:1], [{}])
        assert resolve_alias(client, "kb-live") is None
        set_alias(client, "kb-live", v1.collection)
        assert resolve_alias(client, "kb-live") == v1.collection
        set_alias(client, "kb-live", v2.collection)
        assert resolve_alias(client, "kb-live") == v2.collection
        live = QdrantIndex(client, "kb-live", 4)  # reads go through the alias
        assert live.search(np.eye(4, dtype=np.float32)[0], 1)[0].chunk_id == "new"
        with pytest.raises(LookupError, match="missing"):
            set_alias(client, "kb-live", "missing")
        assert resolve_alias(client, "kb-live") == v2.collection  # unchanged by the failure
        v2.drop()
        assert resolve_alias(client, "kb-live") is None
        with pytest.raises(LookupError):
            v2.count()
    finally:
        if where == "path":
            close_client(tmp_path)


def test_open_rejects_a_collection_of_another_dimension() -> None:
    client = QdrantClient(location=":memory:")
    QdrantIndex.open(client, "c", 8)
    with pytest.raises(ValueError, match="dimension 8, expected 4"):
        QdrantIndex.open(client, "c", 4)


def test_local_path_is_cached_per_process_and_locked_against_others(tmp_path: Path) -> None:
    path = tmp_path / "q"
    client = make_client(path=path)
    try:
        assert make_client(path=tmp_path / "." / "q") is client
        probe = (
            "import sys; from pathlib import Path; from index.qdrant_index import make_client\n"
            "try:\n    make_client(path=Path(sys.argv[1]))\n"
            "except RuntimeError as e:\n    print(e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe, str(path)],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[3],
            timeout=60,
            check=True,
        ).stdout
        assert "RAGOPS_QDRANT_URL" in out and "single-process" in out
    finally:
        close_client(path)


def test_filter_values_qdrant_cannot_match_fail_loudly() -> None:
    ix = QdrantIndex.open(QdrantClient(location=":memory:"), "c", 2)
    ix.upsert(["a"], np.array([[1.0, 0.0]], dtype=np.float32), [{"score": 0.5, "flag": True}])
    with pytest.raises(ValueError, match="strings, integers and booleans"):
        ix.search(np.array([1.0, 0.0], dtype=np.float32), 1, {"score": 0.5})
    assert ix.search(np.array([1.0, 0.0], dtype=np.float32), 1, {"flag": [True, "x"]})
