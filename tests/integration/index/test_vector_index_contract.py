"""The VectorIndex contract (index/base.py), run against every backend.

`VectorIndexContract` holds the tests; each backend subclasses it and overrides the one
`backend` fixture, which knows how to open an index and how to reopen it from storage.
That includes the filter semantics (typed equality, any-of lists, list payloads, missing
keys, literal keys) and the errors: InvalidInput for bad input on every backend;
Unavailable for storage that fails (a Qdrant server nobody runs, a FAISS directory that
cannot be written, an Edge shard held by another process) in the backend sections below.
Qdrant runs twice: on Qdrant Edge (the embedded engine) and on qdrant-client's in-memory
local mode, which takes a server's calls (no server runs here).
"""

from __future__ import annotations

import re
import socket
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

from core.errors import InvalidInput, NotFound, Unavailable
from index.base import VectorIndex
from index.edge_index import EdgeIndex, EdgeShards
from index.faiss_index import FaissIndex
from index.qdrant_index import (
    QdrantIndex,
    close_client,
    collection_exists,
    collection_name,
    drop_collection,
    make_client,
    open_collection,
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

    def test_present_names_the_ids_holding_a_vector(self, index: VectorIndex) -> None:
        assert index.present([cid(1), cid(2), cid(99)]) == {cid(1), cid(2)}
        index.delete([cid(1)])
        index.upsert([cid(50)], np.vstack([axis(3)]), [{}])
        assert index.present([cid(1), cid(50)]) == {cid(50)}
        assert index.present([]) == set()

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
        with pytest.raises(InvalidInput, match="dimension"):
            backend.reopen(index, DIM + 1)

    def test_wrong_dimension_is_rejected(self, index: VectorIndex) -> None:
        with pytest.raises(InvalidInput, match=f"dimension {DIM}"):
            index.upsert([cid(9)], np.ones((1, DIM + 1), dtype=np.float32), [{}])
        with pytest.raises(InvalidInput, match="dimension"):
            index.search(np.ones(DIM - 1, dtype=np.float32), 1)
        with pytest.raises(InvalidInput, match="same length"):
            index.upsert([cid(9), cid(10)], np.vstack([axis(0)]), [{}])
        assert index.count() == 4

    @pytest.mark.parametrize(
        ("call", "words"),
        [
            (lambda ix: ix.upsert([cid(9)], np.full((1, DIM), np.nan, np.float32), [{}]), "NaN"),
            (lambda ix: ix.upsert([9], np.vstack([axis(0)]), [{}]), "ids must be strings"),
            (lambda ix: ix.upsert([cid(9)], np.vstack([axis(0)]), [None]), "must be dicts"),
            (lambda ix: ix.delete([9]), "ids must be strings"),
            (lambda ix: ix.search(np.full(DIM, np.inf, np.float32), 1), "NaN or inf"),
            (lambda ix: ix.search(axis(0), "3"), "top_k must be an integer"),
            (lambda ix: ix.search(axis(0), 3, {"section": None}), "'section'"),
            (lambda ix: ix.search(axis(0), 3, {"section": [["body"]]}), "'section'"),
            (lambda ix: ix.search(axis(0), 3, {"page_number": {"from": 1}}), "unknown"),
            (lambda ix: ix.search(axis(0), 3, {"page_number": {"gte": "x"}}), "ISO 8601"),
            (lambda ix: ix.search(axis(0), 3, {"score": float("nan")}), "finite"),
            (lambda ix: ix.search(axis(0), 3, {"page_number": 2**53}), "beyond"),
            (lambda ix: ix.search(axis(0), 3, {'say "hi"': 1}), "double quote"),
        ],
        ids=[
            "nan-vector",
            "int-id",
            "payload-not-dict",
            "delete-int-id",
            "inf-query",
            "top_k-str",
            "null-filter",
            "nested-list-filter",
            "unknown-range-op",
            "bad-range-bound",
            "nan-filter",
            "huge-int-filter",
            "quoted-key",
        ],
    )
    def test_bad_input_is_invalid_input_and_changes_nothing(
        self, index: VectorIndex, call: Callable[[VectorIndex], Any], words: str
    ) -> None:
        with pytest.raises(InvalidInput, match=words):
            call(index)
        assert index.count() == 4

    # -- filter semantics: the same on every backend (index/base.py module docstring) ---

    @pytest.fixture
    def typed(self, backend: Backend) -> VectorIndex:
        ix = backend.open(DIM)
        payloads: list[dict[str, Any]] = [
            {"v": "1"},
            {"v": 1},
            {"v": 1.0},
            {"v": True},
            {"v": 0.5},
            {"v": ["a", 1, False]},
            {},
            {"v": None},
            {"v": 2.25, "a.b": "x", "a": {"b": "y"}, "file name": "f"},
        ]
        ix.upsert(
            [cid(i) for i in range(len(payloads))],
            np.vstack([axis(i) for i in range(len(payloads))]),
            payloads,
        )
        return ix

    @pytest.mark.parametrize(
        ("filters", "expected"),
        [
            ({"v": "1"}, {0}),
            ({"v": 1}, {1, 2, 5}),  # numbers compare numerically; a list payload by element
            ({"v": 1.0}, {1, 2, 5}),
            ({"v": 0.5}, {4}),
            ({"v": 2.25}, {8}),
            ({"v": True}, {3}),  # booleans are never 1 or 0
            ({"v": False}, {5}),
            ({"v": 0}, set()),
            ({"v": "a"}, {5}),
            ({"v": ["1", 0.5]}, {0, 4}),
            ({"v": [True, "a"]}, {3, 5}),
            ({"v": [1, True]}, {1, 2, 3, 5}),
            ({"v": [7, "zz", 0.75]}, set()),
            ({"v": []}, set()),
            ({"v": {"gte": 0.5, "lte": 1}}, {1, 2, 4, 5}),  # ranges skip booleans
            ({"v": {"gt": 1}}, {8}),
            ({"missing": "x"}, set()),
            ({"missing": [1, "x"]}, set()),
            ({"missing": {"gte": 0}}, set()),
            ({"a.b": "x"}, {8}),  # keys are literal, not paths
            ({"a.b": "y"}, set()),
            ({"file name": "f", "v": 2.25}, {8}),
            ({"file name": "f", "v": 1}, set()),
        ],
        ids=str,
    )
    def test_filters_mean_the_same_on_every_backend(
        self, typed: VectorIndex, filters: dict[str, Any], expected: set[int]
    ) -> None:
        hits = typed.search(axis(0), 20, filters)
        assert {h.chunk_id for h in hits} == {cid(i) for i in expected}

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


# -- Qdrant: on Edge, and on local mode (a server takes the same calls) -----------------


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


class TestQdrantEdge(VectorIndexContract):
    """Reopen closes the Edge folder (flushing its shards and releasing their locks) and
    opens a new one on the same path, so the data really comes back from disk."""

    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        path = tmp_path / "qdrant"
        clients: list[Any] = []

        def open_(dim: int) -> VectorIndex:
            if not clients:
                clients.append(make_client(path=path))
            return open_collection(clients[0], "kb1_v1", dim)

        def reopen(_ix: VectorIndex, dim: int) -> VectorIndex:
            close_client(clients.pop())
            return open_(dim)

        yield Backend(open=open_, reopen=reopen)
        for client in clients:
            close_client(client)


# -- Qdrant-only: collections, aliases, engines' limits ----------------------------------


def test_collection_name_is_stable_safe_and_distinct() -> None:
    name = collection_name("kb/ü one", 3, "0123456789abcdef")
    assert name == collection_name("kb/ü one", 3, "0123456789abcdef")
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name) and len(name) < 100
    assert name != collection_name("kb_ü one", 3, "0123456789abcdef")  # same slug
    assert name != collection_name("kb/ü one", 4, "0123456789abcdef")


@pytest.mark.parametrize("where", ["memory", "edge"])
def test_alias_moves_atomically_between_versions(tmp_path: Path, where: str) -> None:
    client = QdrantClient(location=":memory:") if where == "memory" else make_client(path=tmp_path)
    try:
        v1 = open_collection(client, collection_name("kb", 1, "a" * 32), 4)
        v2 = open_collection(client, collection_name("kb", 2, "b" * 32), 4)
        v1.upsert(["old"], np.eye(4, dtype=np.float32)[:1], [{}])
        v2.upsert(["new"], np.eye(4, dtype=np.float32)[:1], [{}])
        assert resolve_alias(client, "kb-live") is None
        set_alias(client, "kb-live", v1.collection)  # type: ignore[attr-defined]
        assert resolve_alias(client, "kb-live") == v1.collection  # type: ignore[attr-defined]
        set_alias(client, "kb-live", v2.collection)  # type: ignore[attr-defined]
        assert resolve_alias(client, "kb-live") == v2.collection  # type: ignore[attr-defined]
        # reads go through the alias
        live = QdrantIndex(client, "kb-live", 4) if where == "memory" else v2
        if where == "edge":
            assert open_collection(client, "kb-live", 4) is v2
        assert live.search(np.eye(4, dtype=np.float32)[0], 1)[0].chunk_id == "new"
        with pytest.raises(NotFound, match="missing"):
            set_alias(client, "kb-live", "missing")
        assert resolve_alias(client, "kb-live") == v2.collection  # type: ignore[attr-defined]
        drop_collection(client, v2.collection)  # type: ignore[attr-defined]
        assert resolve_alias(client, "kb-live") is None
        with pytest.raises(NotFound):
            v2.count()
        drop_collection(client, v2.collection)  # type: ignore[attr-defined]  # gone: a no-op
    finally:
        close_client(client)


@pytest.mark.parametrize("where", ["memory", "edge"])
def test_open_rejects_a_collection_of_another_dimension(tmp_path: Path, where: str) -> None:
    client = QdrantClient(location=":memory:") if where == "memory" else make_client(path=tmp_path)
    try:
        open_collection(client, "c", 8)
        with pytest.raises(InvalidInput, match="dimension 8, expected 4"):
            open_collection(client, "c", 4)
    finally:
        close_client(client)
    if where == "edge":  # from disk too
        again = make_client(path=tmp_path)
        with pytest.raises(InvalidInput, match="dimension 8, expected 4"):
            open_collection(again, "c", 4)
        close_client(again)


def test_an_edge_shard_is_locked_against_other_clients_and_processes(tmp_path: Path) -> None:
    path = tmp_path / "q"
    client = make_client(path=path)
    try:
        open_collection(client, "kb1_v1", DIM).upsert([cid(1)], np.vstack([axis(0)]), [{}])
        other = make_client(path=tmp_path / "." / "q")  # the same folder, another client
        with pytest.raises(Unavailable, match="RAGOPS_QDRANT_URL"):
            open_collection(other, "kb1_v1", DIM)
        open_collection(other, "kb1_v2", DIM)  # another shard of the folder is free
        close_client(other)
        probe = (
            "import sys; from pathlib import Path\n"
            "from index.qdrant_index import make_client, open_collection\n"
            "try:\n    open_collection(make_client(path=Path(sys.argv[1])), 'kb1_v1', 16)\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe, str(path)],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[3],
            timeout=60,
            check=True,
        ).stdout
        assert out.startswith("Unavailable") and "RAGOPS_QDRANT_URL" in out
        assert "one process at a time" in out
    finally:
        close_client(client)
    reopened = make_client(path=path)  # closed: the shard is free again
    assert open_collection(reopened, "kb1_v1", DIM).count() == 1
    close_client(reopened)


def test_a_lexical_edge_shard_gets_its_hnsw_graph_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edge counts each point's BM25 sparse vector as indexed from the start; the dense
    vectors of a hybrid shard must still get their graph once past the threshold."""
    from index import edge_index

    monkeypatch.setattr(edge_index, "INDEXING_THRESHOLD_KB", 64)  # 1,024 vectors of 16 floats
    dim, n = 16, 1500
    vectors = unit_rows(np.random.default_rng(5), n, dim)
    ids = [cid(i) for i in range(n)]
    shards = EdgeShards(tmp_path)
    try:
        ix = shards.open("hybrid", dim, lexical=True)
        assert isinstance(ix, EdgeIndex) and ix.lexical
        texts = [f"note {i} about topic {i % 7}" for i in range(n)]
        ix.upsert(ids, vectors, [{"n": i} for i in range(n)], texts=texts)
        info = ix._shard.info()  # type: ignore[union-attr]
        assert info.indexed_vectors_count == n  # the sparse vectors only: no graph yet
        ix.save()
        info = ix._shard.info()  # type: ignore[union-attr]
        assert info.indexed_vectors_count >= n + 1024, info  # dense vectors in HNSW now
        assert ix.count() == n
        assert ix.search(vectors[42], 1)[0].chunk_id == ids[42]
    finally:
        shards.close()


def test_edge_builds_hnsw_in_a_child_process_once_it_pays_off(tmp_path: Path) -> None:
    """Below the indexing threshold a shard stays plain; past it, `save` has the HNSW
    graph built in a child process on a copy, while this process's threads keep running
    (Edge's optimize() holds the GIL) and searches keep answering."""
    import threading
    import time

    from index import edge_index

    dim = 1024  # the threshold (10 MB of vectors) is 2,500 vectors at this dimension
    threshold = edge_index.INDEXING_THRESHOLD_KB * 1024 // (4 * dim)
    rng = np.random.default_rng(3)
    vectors = unit_rows(rng, threshold + 300, dim)
    ids = [cid(i) for i in range(len(vectors))]
    shards = EdgeShards(tmp_path)
    try:
        ix = shards.open("big", dim)
        assert isinstance(ix, EdgeIndex)
        ix.upsert(ids[:1000], vectors[:1000], [{"n": i} for i in range(1000)])
        ix.save()
        assert ix._shard.info().indexed_vectors_count == 0  # type: ignore[union-attr]
        ix.upsert(ids[1000:], vectors[1000:], [{"n": i} for i in range(1000, len(ids))])
        assert ix.search(vectors[-1], 1)[0].chunk_id == ids[-1]  # plain: found at once
        ticks: list[float] = []
        done = threading.Event()

        def tick() -> None:
            while not done.is_set():
                ticks.append(time.perf_counter())
                time.sleep(0.01)

        ticker = threading.Thread(target=tick)
        ticker.start()
        start = time.perf_counter()
        try:
            ix.save()
        finally:
            done.set()
            ticker.join()
        took = time.perf_counter() - start
        gaps = np.diff([start, *ticks]) if ticks else np.array([took])
        assert gaps.max() < max(0.5, took / 4), (took, gaps.max())  # never frozen long
        assert ix._shard.info().indexed_vectors_count >= threshold  # type: ignore[union-attr]
        assert ix.count() == len(ids)
        probes = range(0, len(ids), 97)
        assert sum(ix.search(vectors[i], 5)[0].chunk_id == ids[i] for i in probes) >= 0.95 * len(
            probes
        )
        assert ix.search(vectors[7], 3, {"n": 7})[0].chunk_id == ids[7]
        assert not [p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(".")]
    finally:
        shards.close()


def test_edge_finishes_a_swap_a_crash_cut_short(tmp_path: Path) -> None:
    """A rebuild moves the shard away, then its optimized copy in: a crash in between
    leaves the copy ready, and the next open makes it the shard (or moves the old one
    back) and deletes what is left over."""
    import shutil

    shards = EdgeShards(tmp_path)
    ix = shards.open("kb1_v1", DIM)
    ix.upsert([cid(1), cid(2)], np.vstack([axis(0), axis(1)]), [{}, {}])
    ix.save()
    shards.close()
    shard = tmp_path / "kb1_v1"
    shutil.copytree(shard, tmp_path / ".kb1_v1.ready-1")
    shard.rename(tmp_path / ".kb1_v1.old-1")
    (tmp_path / ".kb1_v1.work-2").mkdir()
    again = EdgeShards(tmp_path)
    assert again.exists("kb1_v1")
    assert again.open("kb1_v1", DIM).count() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".kb1_v1.lock", "kb1_v1"]
    again.close()
    shutil.copytree(shard, tmp_path / ".kb1_v1.old-3")
    shutil.rmtree(shard)
    third = EdgeShards(tmp_path)
    assert third.open("kb1_v1", DIM).count() == 2
    third.close()


def test_edge_imports_a_former_local_mode_collection_and_deletes_it(tmp_path: Path) -> None:
    """Before Qdrant Edge the embedded engine was qdrant-client's local mode in the same
    folder: a version's points come over into its new shard the first time it opens."""
    local = QdrantClient(path=str(tmp_path))
    for name in ("kb1_v1", "kb1_v2"):
        old = QdrantIndex.open(local, name, DIM)
        old.upsert(
            [cid(1), cid(2), cid(3)],
            np.vstack([axis(0), axis(1), axis(2)]),
            [{"document_id": "a", "page_number": 1}, {"document_id": "b"}, {"flag": True}],
        )
    local.close()
    assert (tmp_path / "collection" / "kb1_v1").is_dir()
    shards = make_client(path=tmp_path)
    try:
        assert collection_exists(shards, "kb1_v2")  # what erase and GC look up first
        drop_collection(shards, "kb1_v2")  # dropped before it was ever opened
        assert not (tmp_path / "collection" / "kb1_v2").exists()
        assert not collection_exists(shards, "kb1_v2")
        ix = open_collection(shards, "kb1_v1", DIM)
        assert ix.count() == 3
        hit = ix.search(axis(0), 1, {"document_id": "a"})[0]
        assert hit.chunk_id == cid(1) and hit.payload == {
            "document_id": "a",
            "page_number": 1,
            "chunk_id": cid(1),
        }
        assert [h.chunk_id for h in ix.search(axis(0), 3, {"flag": True})] == [cid(3)]
        assert not (tmp_path / "collection" / "kb1_v1").exists()
    finally:
        close_client(shards)


def test_float_equality_becomes_a_one_point_range() -> None:
    """Qdrant's MatchValue refuses floats and matches integers against integers only; a
    number filter is a one-point range, so `{"score": 0.5}` works and 2 finds 2.0."""
    from index.qdrant_index import to_filter

    def condition(filters: dict[str, Any]) -> Any:
        built = to_filter(filters)
        assert built is not None and isinstance(built.must, list)
        return built.must[0]

    cond = condition({"score": 0.5})
    assert cond.match is None and (cond.range.gte, cond.range.lte) == (0.5, 0.5)
    cond = condition({"flag": True})
    assert cond.match.value is True and cond.range is None
    assert condition({"a.b": "x"}).key == '"a.b"'  # quoted: a literal key, not a path
    assert condition({"page_number": 3}).key == "page_number"


def free_port() -> int:
    """A local port nothing listens on (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_unavailable() -> None:
    client = QdrantClient(
        url=f"http://127.0.0.1:{free_port()}", timeout=1, check_compatibility=False
    )
    ix = QdrantIndex(client, "c", DIM)
    calls: list[Callable[[], Any]] = [
        lambda: ix.search(axis(0), 3),
        lambda: ix.search(axis(0), 3, {"document_id": "a", "score": 0.5}),
        lambda: ix.upsert([cid(1)], np.vstack([axis(0)]), [{}]),
        lambda: ix.delete([cid(1)]),
        lambda: ix.count(),
        lambda: QdrantIndex.open(client, "c", DIM),
        lambda: resolve_alias(client, "kb-live"),
    ]
    try:
        for call in calls:
            with pytest.raises(Unavailable, match="Qdrant could not .*RAGOPS_QDRANT_URL") as err:
                call()
            assert err.value.__cause__ is not None
        # bad input is still the caller's fault, even with the server down
        with pytest.raises(InvalidInput, match="dimension"):
            ix.search(axis(0)[:4], 3)
    finally:
        client.close()


def test_a_closed_local_store_is_unavailable(tmp_path: Path) -> None:
    client = QdrantClient(location=":memory:")
    ix = QdrantIndex.open(client, "c", DIM)
    client.close()
    with pytest.raises(Unavailable, match="closed"):
        ix.count()
    edge = make_client(path=tmp_path)
    shard = open_collection(edge, "c", DIM)
    close_client(edge)
    with pytest.raises(Unavailable, match="closed"):
        shard.count()
    with pytest.raises(Unavailable, match="closed"):
        open_collection(edge, "c", DIM)


# -- FAISS-only: storage failures ------------------------------------------------------


def test_faiss_storage_that_cannot_be_written_or_read_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the version directory should be")
    ix = FaissIndex.open(blocker / "v1", DIM)  # nothing saved there yet: opens empty
    ix.upsert([cid(1)], np.vstack([axis(0)]), [{}])
    with pytest.raises(Unavailable, match="FAISS could not save the index at .*not-a-dir") as err:
        ix.save()
    assert isinstance(err.value.__cause__, OSError)
    path = tmp_path / "v1"
    saved = FaissIndex.open(path, DIM)
    saved.upsert([cid(1)], np.vstack([axis(0)]), [{}])
    saved.save()
    (path / "meta.json").unlink()
    (path / "meta.json").mkdir()  # unreadable as a file
    with pytest.raises(Unavailable, match="FAISS could not open the index"):
        FaissIndex.open(path, DIM)
