import errno
import json
import os

import numpy as np
import pytest

from core.errors import InvalidInput, Unavailable
from index.faiss_index import FaissIndex, faiss_id

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
    with pytest.raises(InvalidInput, match="dimension"):
        FaissIndex.open(tmp_path / "v1", 4)


def test_copy_is_isolated_from_the_original(index):
    clone = index.copy()
    clone.delete([cid(1)])
    assert index.count() == 3 and clone.count() == 2


def test_wrong_dimension_is_rejected(index):
    with pytest.raises(InvalidInput, match="dimension 3"):
        index.upsert([cid(9)], np.ones((1, 4), dtype=np.float32), [{}])
    with pytest.raises(InvalidInput, match="dimension"):
        index.search(np.ones(4, dtype=np.float32), 1)


# -- index types, params, persistence -------------------------------------------------


def random_unit(n: int, dim: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("index_type", "params", "message"),
    [
        ("annoy", None, "index_type 'annoy' is not one of flat, hnsw, ivfpq"),
        ("flat", {"M": 8}, r"unknown flat index_params \['M'\]; allowed: none"),
        ("hnsw", {"nlist": 8}, r"allowed: M, ef_construction, ef_search"),
        ("hnsw", {"M": 0}, "M=0 must be a positive integer"),
        ("hnsw", {"M": "32"}, "must be a positive integer"),
        ("ivfpq", {"m": 5}, "m=5 must divide the dimension 16"),
        ("ivfpq", {"nbits": 20}, "nbits=20 must be at most 16"),
    ],
)
def test_bad_index_type_or_params_are_rejected(tmp_path, index_type, params, message):
    with pytest.raises(InvalidInput, match=message):
        FaissIndex.open(tmp_path / "v", 16, index_type=index_type, index_params=params)


def test_type_and_params_are_persisted_and_enforced(tmp_path):
    ix = FaissIndex.open(tmp_path / "v", 8, index_type="hnsw", index_params={"M": 8})
    ix.upsert([cid(1)], random_unit(1, 8), [{}])
    ix.save()
    meta = json.loads((tmp_path / "v" / "meta.json").read_text())
    assert meta["index_type"] == "hnsw" and meta["index_params"]["M"] == 8
    with pytest.raises(InvalidInput, match="holds a 'hnsw' index, not 'flat'"):
        FaissIndex.open(tmp_path / "v", 8)
    with pytest.raises(InvalidInput, match="M can only change by building a new version"):
        FaissIndex.open(tmp_path / "v", 8, index_type="hnsw", index_params={"M": 16})
    saved = FaissIndex.open(tmp_path / "v", 8, index_type="hnsw")
    assert saved.index_params["M"] == 8
    tuned = FaissIndex.open(tmp_path / "v", 8, index_type="hnsw", index_params={"ef_search": 200})
    assert tuned.index_params == {**saved.index_params, "ef_search": 200}


def test_directories_saved_before_meta_json_open_as_flat(tmp_path):
    import faiss

    legacy = tmp_path / "v"
    legacy.mkdir()
    raw = faiss.IndexIDMap2(faiss.IndexFlatIP(3))
    raw.add_with_ids(unit(1, 0, 0).reshape(1, -1), np.array([faiss_id(cid(1))], dtype=np.int64))
    faiss.write_index(raw, str(legacy / "index.faiss"))
    (legacy / "payloads.json").write_text(
        json.dumps({str(faiss_id(cid(1))): {"chunk_id": cid(1), "document_id": "a"}})
    )
    ix = FaissIndex.open(legacy, 3)
    assert ix.search(unit(1, 0, 0), 1)[0].payload["document_id"] == "a"
    with pytest.raises(InvalidInput, match="holds a 'flat' index"):
        FaissIndex.open(legacy, 3, index_type="hnsw")
    ix.upsert([cid(2)], unit(0, 1, 0).reshape(1, -1), [{}])
    ix.save()
    assert FaissIndex.open(legacy, 3).count() == 2


def _saved_flat(path):
    ix = FaissIndex.open(path, 3)
    ix.upsert([cid(1), cid(2)], np.vstack([unit(1, 0, 0), unit(0, 1, 0)]), [{"v": 1}, {"v": 1}])
    ix.save()
    return ix


def _assert_old_snapshot(path):
    again = FaissIndex.open(path, 3)
    assert again.count() == 2
    assert {h.chunk_id for h in again.search(unit(1, 1, 0), 5)} == {cid(1), cid(2)}
    assert all(h.payload["v"] == 1 for h in again.search(unit(1, 1, 0), 5))


def _segment_files(path):
    return sorted(p.name for p in path.iterdir() if p.name.startswith("seg-"))


def test_crash_while_writing_the_index_keeps_the_previous_snapshot(tmp_path, monkeypatch):
    path = tmp_path / "v"
    ix = _saved_flat(path)
    ix.delete([cid(1)])
    ix.upsert([cid(3)], unit(0, 0, 1).reshape(1, -1), [{"v": 2}])
    real_fsync = os.fsync

    def disk_full(fd):  # the segment is written but cannot be made durable
        raise OSError(errno.ENOSPC, "disk full")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(Unavailable, match="FAISS could not save the index at .*disk full") as err:
        ix.save()
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert isinstance(err.value.__cause__, OSError)
    _assert_old_snapshot(path)
    ix.save()  # the failed save published nothing; this one publishes the same writes
    again = FaissIndex.open(path, 3)
    assert {h.chunk_id for h in again.search(unit(1, 1, 1), 5)} == {cid(2), cid(3)}


def test_crash_before_the_commit_point_keeps_the_previous_snapshot(tmp_path, monkeypatch):
    path = tmp_path / "v"
    ix = _saved_flat(path)
    before = _segment_files(path)
    ix.delete([cid(1), cid(2)])
    ix.upsert([cid(3)], unit(0, 0, 1).reshape(1, -1), [{"v": 2}])

    def crash(src, dst):  # the new segment is on disk; the manifest switch never happens
        raise KeyboardInterrupt

    monkeypatch.setattr("index.segments.os.replace", crash)
    with pytest.raises(KeyboardInterrupt):
        ix.save()
    monkeypatch.undo()
    _assert_old_snapshot(path)
    orphan = set(_segment_files(path)) - set(before)
    assert len(orphan) == 1  # written, named by no manifest: ignored by readers
    # a killed process also leaves its temporary manifest behind
    (path / ".meta-crashed.tmp").write_text('{"seq": ')
    ix.save()
    names = {p.name for p in path.iterdir()}
    assert not [n for n in names if n.startswith(".meta-")]
    assert not orphan & names  # the next switch deletes the leftovers
    meta = json.loads((path / "meta.json").read_text())
    assert {e["file"] for e in meta["segments"]} <= names
    again = FaissIndex.open(path, 3)
    assert again.count() == 1 and again.search(unit(0, 0, 1), 1)[0].payload["v"] == 2


def test_deletes_are_tombstones_until_a_merge_drops_them(tmp_path, monkeypatch):
    monkeypatch.setattr("index.segments.APPROX_MIN_ROWS", 50)
    ix = FaissIndex.open(tmp_path / "v", 8, index_type="hnsw", index_params={"M": 8})
    vectors = random_unit(100, 8)
    ids = [cid(i) for i in range(100)]
    ix.upsert(ids, vectors, [{"n": i} for i in range(100)])
    ix.save()
    ix.delete(ids[:10])
    ix.upsert(ids[10:15], vectors[10:15], [{"n": -1}] * 5)  # updates: tombstone + add
    assert ix.count() == 90
    assert ids[3] not in {h.chunk_id for h in ix.search(vectors[3], 20)}
    assert ix.search(vectors[12], 1)[0].payload["n"] == -1
    ix.save()
    graph, update = ix.layout()["segments"]
    assert graph["kind"] == "hnsw" and graph["rows"] == 100 and graph["dead"] == 15
    assert update == {**update, "kind": "flat", "rows": 5, "deletes": 10, "dead": 0}
    ix.delete(ids[15:30])
    ix.save()  # 30 of 100 graph nodes dead, over the 20% purge ratio: merged away
    (merged,) = ix.layout()["segments"]
    assert merged["kind"] == "hnsw" and merged["rows"] == 75 and merged["dead"] == 0
    assert merged["deletes"] == 0  # nothing older left to delete from
    again = FaissIndex.open(tmp_path / "v", 8, index_type="hnsw")
    assert again.count() == 75
    assert again.search(vectors[50], 1)[0].chunk_id == ids[50]
    assert again.search(vectors[12], 1)[0].payload["n"] == -1
    assert not {h.chunk_id for h in again.search(vectors[0], 100)} & set(ids[:10] + ids[15:30])


def test_hnsw_graph_filter_path_falls_back_to_exact_when_it_runs_dry(tmp_path, monkeypatch):
    monkeypatch.setattr("index.segments.EXACT_FILTER_MAX", 0)
    monkeypatch.setattr("index.segments.APPROX_MIN_ROWS", 1)
    ix = FaissIndex.open(tmp_path / "v", 8, index_type="hnsw", index_params={"M": 4})
    vectors = random_unit(500, 8)
    ix.upsert([cid(i) for i in range(500)], vectors, [{"odd": i % 2, "n": i} for i in range(500)])
    ix.save()
    assert [s["kind"] for s in ix.layout()["segments"]] == ["hnsw"]
    hits = ix.search(vectors[7], 5, {"odd": 1})
    assert hits[0].chunk_id == cid(7) and all(h.payload["odd"] == 1 for h in hits)
    assert [h.chunk_id for h in ix.search(vectors[0], 5, {"n": [3, 400]})] != []
    assert {h.chunk_id for h in ix.search(vectors[0], 5, {"n": [3, 400]})} == {cid(3), cid(400)}


def test_ivfpq_serves_exactly_until_trained_then_trains_at_save(tmp_path):
    params = {"nlist": 4, "m": 4, "nbits": 4, "nprobe": 1}
    ix = FaissIndex.open(tmp_path / "v", 8, index_type="ivfpq", index_params=params)
    assert ix.training_threshold == 256 and not ix.trained
    vectors = random_unit(300, 8)
    ids = [cid(i) for i in range(300)]
    ix.upsert(ids[:200], vectors[:200], [{"n": i} for i in range(200)])
    ix.save()
    assert not ix.trained  # 200 < 256: still exact, and says so
    assert json.loads((tmp_path / "v" / "meta.json").read_text())["trained"] is False
    ix.upsert(ids[200:], vectors[200:], [{"n": i} for i in range(200, 300)])
    ix.save()
    assert ix.trained
    clone = ix.copy()
    clone.delete(ids[:100])
    assert ix.count() == 300 and clone.count() == 200 and clone.trained
    # nprobe=1 alone would miss most of these; a selective filter widens to every list
    wanted = [cid(i) for i in range(0, 300, 37)]
    hits = ix.search(vectors[0], 20, {"n": list(range(0, 300, 37))})
    assert sorted(h.chunk_id for h in hits) == sorted(wanted)
    reopened = FaissIndex.open(tmp_path / "v", 8, index_type="ivfpq", index_params=params)
    assert reopened.trained and reopened.count() == 300


def test_filter_postings_agree_with_matches_and_follow_writes(index):
    index.upsert([cid(4)], unit(0, 0, 1).reshape(1, -1), [{"tags": ["x", "y"], "page_number": 2}])
    # a list payload matches by element, on the postings path as in `matches`
    assert [h.chunk_id for h in index.search(unit(0, 0, 1), 5, {"tags": "x"})] == [cid(4)]
    assert [h.chunk_id for h in index.search(unit(0, 0, 1), 5, {"tags": ["z", "y"]})] == [cid(4)]
    with pytest.raises(InvalidInput, match="'tags'"):
        index.search(unit(0, 0, 1), 5, {"tags": [["x"]]})
    with pytest.raises(InvalidInput, match="'document_id'"):
        index.search(unit(0, 0, 1), 5, {"document_id": None})
    before = {h.chunk_id for h in index.search(unit(0, 1, 0), 5, {"page_number": 2})}
    assert before == {cid(2), cid(4)}
    assert before == {h.chunk_id for h in index.search(unit(0, 1, 0), 5, {"page_number": 2.0})}
    index.delete([cid(2)])
    index.upsert([cid(1)], unit(1, 0, 0).reshape(1, -1), [{"page_number": 2}])
    after = {h.chunk_id for h in index.search(unit(0, 1, 0), 5, {"page_number": [2, 99]})}
    assert after == {cid(1), cid(4)}


def test_postings_keep_booleans_and_numbers_apart(index):
    index.upsert(
        [cid(5), cid(6), cid(7)],
        np.vstack([unit(0, 0, 1), unit(0, 1, 1), unit(1, 0, 1)]),
        [{"flag": True}, {"flag": 1}, {"flag": 1.0}],
    )
    q = unit(0, 0, 1)
    assert {h.chunk_id for h in index.search(q, 9, {"flag": True})} == {cid(5)}
    assert {h.chunk_id for h in index.search(q, 9, {"flag": 1})} == {cid(6), cid(7)}
    assert {h.chunk_id for h in index.search(q, 9, {"flag": [False, 1.0]})} == {cid(6), cid(7)}


# -- errors: storage failures are Unavailable, bad input InvalidInput -----------------


def test_unreadable_or_corrupt_files_are_unavailable(tmp_path, index):
    index.save()
    path = tmp_path / "v1"

    def segment_file():
        meta = json.loads((path / "meta.json").read_text())
        return path / meta["segments"][-1]["file"]

    data = segment_file().read_bytes()
    segment_file().unlink()
    with pytest.raises(Unavailable, match="FAISS could not open the index") as err:
        FaissIndex.open(path, 3)
    assert isinstance(err.value.__cause__, OSError)
    segment_file().write_bytes(data)
    assert FaissIndex.open(path, 3).count() == 3
    segment_file().write_bytes(data[: len(data) - 10])  # a torn file
    with pytest.raises(Unavailable, match="corrupt .*truncated"):
        FaissIndex.open(path, 3)
    header_end = data.index(b'"index_bytes"')
    body_start = data.index(b"}", header_end) + 1
    garbage = data[:body_start] + b"\xff" * (len(data) - body_start)
    segment_file().write_bytes(garbage)  # FAISS reports bad index bytes as a RuntimeError
    with pytest.raises(Unavailable, match="FAISS could not open the index") as err:
        FaissIndex.open(path, 3)
    assert isinstance(err.value.__cause__, RuntimeError)
    segment_file().write_bytes(data.replace(b'"payloads"', b'"payloadz"'))
    with pytest.raises(Unavailable, match="corrupt"):
        FaissIndex.open(path, 3)
    segment_file().write_bytes(b"not a segment")
    with pytest.raises(Unavailable, match="corrupt"):
        FaissIndex.open(path, 3)
    (path / "meta.json").write_text('{"segments": ')
    with pytest.raises(Unavailable, match=r"meta\.json is corrupt"):
        FaissIndex.open(path, 3)


def test_bad_input_is_invalid_input_and_changes_nothing(index):
    q = unit(1, 0, 0)
    cases = [
        (lambda: index.upsert([cid(9)], np.full((1, 3), np.nan, np.float32), [{}]), "NaN"),
        (lambda: index.upsert([9], q.reshape(1, -1), [{}]), "ids must be strings"),
        (lambda: index.upsert([cid(9)], q.reshape(1, -1), ["x"]), "payloads must be dicts"),
        (lambda: index.upsert([cid(9)], [[1, "a", 0]], [{}]), "2-D array of numbers"),
        (lambda: index.delete([9]), "ids must be strings"),
        (lambda: index.search(np.array([np.inf, 0, 0]), 1), "NaN or inf"),
        (lambda: index.search(q, 1.5), "top_k must be an integer"),
        (lambda: index.search(np.ones((2, 3)), 1), "one vector of dimension 3"),
        (lambda: index.search(q, 1, {"page_number": float("nan")}), "not a finite number"),
        (lambda: index.search(q, 1, {"n": 2**53}), "beyond"),
        (lambda: index.search(q, 1, {'a"b': 1}), "double quote"),
    ]
    for call, words in cases:
        with pytest.raises(InvalidInput, match=words):
            call()
    assert index.count() == 3
