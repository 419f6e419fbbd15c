import numpy as np
import pytest

from index.faiss_index import FaissIndex

pytestmark = pytest.mark.unit


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def cid(n: int) -> str:
    return f"{n:032x}"


@pytest.fixture
def index(tmp_path):
    ix = FaissIndex.open(tmp_path / "v1", 3)
    ix.upsert(
        [cid(1), cid(2), cid(3)],
        np.vstack([unit(1, 0, 0), unit(0, 1, 0), unit(1, 1, 0)]),
        [
            {"document_id": "a", "page_number": 1},
            {"document_id": "b", "page_number": 2},
            {"document_id": "b", "page_number": 3},
        ],
    )
    return ix


def test_search_orders_by_cosine(index):
    hits = index.search(unit(1, 0.1, 0), 3)
    assert [h.chunk_id for h in hits] == [cid(1), cid(3), cid(2)]
    assert hits[0].score == pytest.approx(float(unit(1, 0.1, 0) @ unit(1, 0, 0)), rel=1e-5)


def test_filters_return_best_matching_not_post_filtered_leftovers(index):
    hits = index.search(unit(1, 0, 0), 1, {"document_id": "b"})
    assert [h.chunk_id for h in hits] == [cid(3)]
    assert index.search(unit(1, 0, 0), 5, {"page_number": [1, 2]})[0].chunk_id == cid(1)
    assert index.search(unit(1, 0, 0), 5, {"document_id": "zzz"}) == []


def test_upsert_is_idempotent_and_replaces(index):
    index.upsert([cid(1)], np.vstack([unit(0, 0, 1)]), [{"document_id": "a2"}])
    assert index.count() == 3
    hits = index.search(unit(0, 0, 1), 1)
    assert hits[0].chunk_id == cid(1) and hits[0].payload["document_id"] == "a2"


def test_delete_ignores_unknown_ids(index):
    index.delete([cid(2), cid(99)])
    assert index.count() == 2
    assert cid(2) not in {h.chunk_id for h in index.search(unit(0, 1, 0), 5)}


def test_save_and_reload_round_trip(index, tmp_path):
    index.save()
    again = FaissIndex.open(tmp_path / "v1", 3)
    assert again.count() == 3
    assert again.search(unit(0, 1, 0), 1)[0].payload["document_id"] == "b"
    with pytest.raises(ValueError, match="dimension"):
        FaissIndex.open(tmp_path / "v1", 4)


def test_copy_is_isolated_from_the_original(index):
    clone = index.copy()
    clone.delete([cid(1)])
    assert index.count() == 3 and clone.count() == 2


def test_wrong_dimension_is_rejected(index):
    with pytest.raises(ValueError, match="dimension 3"):
        index.upsert([cid(9)], np.ones((1, 4), dtype=np.float32), [{}])
    with pytest.raises(ValueError, match="dimension"):
        index.search(np.ones(4, dtype=np.float32), 1)
