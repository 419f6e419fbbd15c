"""Same operations on FAISS, Qdrant Edge and Qdrant's server calls (on qdrant-client's
in-memory local mode), then compare hit ids.

Exact backends (FAISS flat; a plain Edge shard, which this size stays; local mode's
brute force) must agree on every top-10; HNSW must reach recall@10 >= 0.95 against flat.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from index.base import VectorIndex
from index.faiss_index import FaissIndex
from index.qdrant_index import QdrantIndex, close_client, make_client, open_collection

pytestmark = pytest.mark.integration

N, DIM, K = 2000, 64, 10
FILTERS: list[dict[str, Any] | None] = [
    None,
    {"document_id": "d3"},
    {"document_id": ["d1", "d7", "d11"]},
    {"section": "s2", "page_number": [1, 2, 3, 4, 5]},
    {"page_number": 7},
    {"page_number": 7.0},  # a float equals the integer 7 on both (Qdrant: a one-point range)
    {"page_number": [7.0, 8], "section": ["s0", "s1"]},
    {"page_number": {"gte": 3, "lt": 5.5}},
    {"document_id": "nope"},
]


def payload(i: int) -> dict[str, Any]:
    return {"document_id": f"d{i % 20}", "page_number": i % 40, "section": f"s{i % 3}"}


def apply_operations(indexes: list[VectorIndex]) -> None:
    """Bulk load, then deletes, vector updates, payload updates and re-adds."""
    rng = np.random.default_rng(2024)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"{i:032x}" for i in range(N)]
    moved = rng.standard_normal((100, DIM)).astype(np.float32)
    moved /= np.linalg.norm(moved, axis=1, keepdims=True)
    for ix in indexes:
        ix.upsert(ids, vectors, [payload(i) for i in range(N)])
        ix.delete(ids[0:300:3] + ["not-there"])
        ix.upsert(ids[1000:1100], moved, [payload(i + 1) for i in range(1000, 1100)])
        ix.upsert(ids[1500:1550], vectors[1500:1550], [{"document_id": "d3"}] * 50)
        ix.delete(ids[1900:1950])
        ix.upsert(ids[0:30:3], vectors[0:30:3], [payload(i) for i in range(0, 30, 3)])
        ix.save()


def queries() -> np.ndarray:
    q = np.random.default_rng(99).standard_normal((25, DIM)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def top_ids(ix: VectorIndex, query: np.ndarray, filters: dict[str, Any] | None) -> list[str]:
    return [h.chunk_id for h in ix.search(query, K, filters)]


EXACT = ("qdrant-server", "qdrant-edge")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, VectorIndex]]:
    root: Path = tmp_path_factory.mktemp("congruence")
    client = QdrantClient(location=":memory:")
    edge = make_client(path=root / "qdrant")
    indexes: dict[str, VectorIndex] = {
        "flat": FaissIndex.open(root / "flat", DIM),
        "hnsw": FaissIndex.open(root / "hnsw", DIM, index_type="hnsw"),
        "qdrant-server": QdrantIndex.open(client, "congruence", DIM),
        "qdrant-edge": open_collection(edge, "congruence", DIM),
    }
    apply_operations(list(indexes.values()))
    yield indexes
    close_client(edge)
    client.close()


def test_counts_agree(built: dict[str, VectorIndex]) -> None:
    expected = N - 100 + 10 - 50
    assert {name: ix.count() for name, ix in built.items()} == dict.fromkeys(built, expected)


@pytest.mark.parametrize("engine", EXACT)
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: str(f))
def test_flat_and_qdrant_return_the_same_hits(
    built: dict[str, VectorIndex], filters: dict[str, Any] | None, engine: str
) -> None:
    for query in queries():
        flat = built["flat"].search(query, K, filters)
        qdrant = built[engine].search(query, K, filters)
        assert [h.chunk_id for h in qdrant] == [h.chunk_id for h in flat]
        assert [h.score for h in qdrant] == pytest.approx([h.score for h in flat], abs=1e-5)
        assert [h.payload for h in qdrant] == [h.payload for h in flat]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: str(f))
def test_hnsw_recall_against_flat(
    built: dict[str, VectorIndex], filters: dict[str, Any] | None
) -> None:
    found = wanted = 0
    for query in queries():
        exact = set(top_ids(built["flat"], query, filters))
        found += len(exact & set(top_ids(built["hnsw"], query, filters)))
        wanted += len(exact)
    assert found >= 0.95 * wanted
