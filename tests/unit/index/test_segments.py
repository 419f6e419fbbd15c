"""FAISS versions as append-only segments (index/segments.py, index/faiss_index.py): a
publish writes what changed, tombstones hold, merges change nothing a reader can see,
old snapshots keep answering, the single-file layouts still open."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index import segments
from index.faiss_index import FaissIndex, faiss_id

pytestmark = pytest.mark.unit

DIM = 16


def unit_rows(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def doc(n: int, chunks: int = 20) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """Document n: its chunk ids, vectors and payloads (deterministic)."""
    ids = [f"d{n}-c{j}" for j in range(chunks)]
    payloads = [{"document_id": f"d{n}", "page_number": j % 7, "n": n} for j in range(chunks)]
    return ids, unit_rows(chunks, seed=n), payloads


def contents(ix: FaissIndex) -> dict[str, dict[str, Any]]:
    """Every live chunk id → payload (an exact search for all of them)."""
    hits = ix.search(unit_rows(1, seed=-1 % 2**32)[0], max(ix.count(), 1))
    assert len(hits) == ix.count()
    return {h.chunk_id: h.payload for h in hits}


QUERIES = unit_rows(12, seed=4242)
FILTERS: list[dict[str, Any] | None] = [
    None,
    {"document_id": "d3"},
    {"page_number": [1, 2]},
    {"n": {"gte": 10, "lt": 30}},
    {"document_id": "nope"},
]


def answers(ix: FaissIndex) -> list[list[tuple[str, float, dict[str, Any]]]]:
    return [
        [(h.chunk_id, round(h.score, 5), h.payload) for h in ix.search(q, 10, f)]
        for q in QUERIES
        for f in FILTERS
    ]


def files_state(path: Path) -> dict[str, tuple[int, int, int]]:
    return {
        e.name: (e.stat().st_ino, e.stat().st_size, e.stat().st_mtime_ns)
        for e in os.scandir(path)
        if e.is_file()
    }


def written_since(before: dict[str, tuple[int, int, int]], path: Path) -> tuple[int, int]:
    """(files, bytes) created or changed in `path` since `before`."""
    changed = [
        (name, state) for name, state in files_state(path).items() if before.get(name) != state
    ]
    return len(changed), sum(size for _, (_, size, _) in changed)


# -- the merge policy -------------------------------------------------------------------


def test_merges_grow_segments_geometrically() -> None:
    """5,000 writes of 20 rows: few segments at any time, each row rewritten about
    log4(rows / 20) times."""
    sizes: list[int] = []
    written = rewritten = peak = 0
    for _ in range(5000):
        sizes.append(20)
        written += 20
        while (plan := segments.plan_merge([(s, 0, s) for s in sizes])) is not None:
            start, stop = plan
            merged = sum(sizes[start:stop])
            rewritten += merged
            sizes[start:stop] = [merged]
        peak = max(peak, len(sizes))
    assert sum(sizes) == written
    assert peak <= (segments.MERGE_FACTOR - 1) * math.log(written / 20, segments.MERGE_FACTOR) + 2
    assert rewritten / written <= math.log(written / 20, segments.MERGE_FACTOR) + 1


def test_policy_purges_tombstones_and_caps_the_segment_count() -> None:
    assert segments.plan_merge([(1000, 0, 1000), (20, 10, 20)]) is None
    assert segments.plan_merge([(790, 0, 1000), (20, 210, 20)]) == (0, 2)  # 21% dead
    assert segments.plan_merge([(1000, 0, 1000), (0, 0, 20)]) == (1, 2)  # all dead
    many = [(5 ** (40 - i), 0, 5 ** (40 - i)) for i in range(40)]
    assert segments.plan_merge(many[:30]) is None
    start, stop = segments.plan_merge(many) or (0, 0)
    assert stop == 40 and 40 - (stop - start) + 1 == segments.MAX_SEGMENTS


# -- writes cost what changed -----------------------------------------------------------


def test_publish_cost_is_independent_of_index_size(tmp_path: Path) -> None:
    """Bytes and files a one-document publish writes at 1k and at 20k vectors: the
    same, and nothing already written is touched."""
    path = tmp_path / "v"
    ix = FaissIndex.open(path, DIM)
    costs = []
    for size in (1000, 20_000):
        grow = size - ix.count()
        ids = [f"bulk-{ix.count() + i}" for i in range(grow)]
        ix.upsert(ids, unit_rows(grow, seed=size), [{"document_id": "bulk"}] * grow)
        ix.save()
        for n in range(3):  # a few documents, so the manifest already lists several
            ix.upsert(*doc(size + n))
            ix.save()
        assert len(ix.layout()["segments"]) == 4
        before = files_state(path)
        counter = ix.bytes_written
        ix.upsert(*doc(size + 99))
        ix.delete([f"bulk-{i}" for i in range(5)])
        ix.save(compact=False)
        files, size_bytes = written_since(before, path)
        assert files == 2  # one segment + the manifest
        assert ix.bytes_written - counter == size_bytes
        unchanged = {n for n, s in files_state(path).items() if before.get(n) == s}
        assert unchanged >= set(before) - {"meta.json"}
        costs.append(size_bytes)
    assert costs[1] <= 1.1 * costs[0], costs
    index_bytes = sum(s for _, s, _ in files_state(path).values())
    assert costs[1] < index_bytes / 50


def test_steady_publishing_rewrites_little_and_never_the_big_segment(tmp_path: Path) -> None:
    ix = FaissIndex.open(tmp_path / "v", DIM)
    ix.upsert([f"bulk-{i}" for i in range(20_000)], unit_rows(20_000, 1), [{}] * 20_000)
    ix.save()
    (big,) = ix.layout()["segments"]
    start = ix.bytes_written
    for n in range(200):
        ix.upsert(*doc(n))
        ix.save()  # merges inline when due
    per_publish = (ix.bytes_written - start) / 200
    one_segment = (tmp_path / "v" / ix.layout()["segments"][-1]["file"]).stat().st_size
    assert ix.layout()["segments"][0] == big  # the 20k rows were never rewritten
    assert per_publish < 8 * one_segment
    assert len(ix.layout()["segments"]) <= 10
    assert ix.count() == 20_000 + 200 * 20


# -- what readers see -------------------------------------------------------------------


def test_deleted_and_replaced_rows_never_come_back(tmp_path: Path) -> None:
    path = tmp_path / "v"
    ix = FaissIndex.open(path, DIM)
    for n in range(6):
        ix.upsert(*doc(n))
        ix.save(compact=False)
    ids, vectors, _ = doc(1)
    ix.delete(ids[:10])
    ix.upsert(ids[10:], unit_rows(10, seed=99), [{"document_id": "moved"}] * 10)
    ix.delete(["d2-c0"])
    ix.upsert(["d2-c0"], vectors[:1], [{"document_id": "back"}])  # deleted, then re-added
    ix.save(compact=False)
    gone = set(ids[:10])

    def check(index: FaissIndex) -> None:
        found = contents(index)
        assert len(found) == 6 * 20 - 10 and not gone & set(found)
        assert all(found[i]["document_id"] == "moved" for i in ids[10:])
        assert found["d2-c0"]["document_id"] == "back"
        for i, v in zip(ids[10:], vectors[10:], strict=True):  # the old vectors are gone too
            assert index.search(v, 1)[0].chunk_id != i or index.search(v, 1)[0].score < 0.99
        assert index.search(vectors[0], 5, {"document_id": "d1"}) == []

    check(ix)
    check(FaissIndex.open(path, DIM))
    assert ix.compact()
    assert len(ix.layout()["segments"]) == 1
    check(ix)
    check(FaissIndex.open(path, DIM))


def test_compaction_keeps_results_identical(tmp_path: Path) -> None:
    path = tmp_path / "v"
    ix = FaissIndex.open(path, DIM)
    for n in range(40):
        ix.upsert(*doc(n))
        if n % 4 == 3:
            ix.delete([f"d{n - 3}-c{j}" for j in range(0, 20, 3)])
        if n % 5 == 4:  # re-ingest an older document with new vectors and payloads
            ids, _, payloads = doc(n - 2)
            ix.upsert(ids, unit_rows(20, seed=1000 + n), [{**p, "rev": 2} for p in payloads])
        ix.save(compact=False)
    assert len(ix.layout()["segments"]) == 40
    before = answers(ix)
    assert ix.compact()
    assert len(ix.layout()["segments"]) < 40
    assert answers(ix) == before
    assert answers(FaissIndex.open(path, DIM)) == before
    names = {e.name for e in os.scandir(path)}
    meta = json.loads((path / "meta.json").read_text())
    listed = {e["file"] for e in meta["segments"]}
    ix.upsert(*doc(100))
    ix.save(compact=False)  # the next switch deletes files two manifests old
    assert {n for n in os.listdir(path) if n.startswith("seg-")} <= listed | {
        e["file"] for e in json.loads((path / "meta.json").read_text())["segments"]
    }
    assert names - set(os.listdir(path))  # the merged-away segments are gone


def test_a_snapshot_taken_before_writes_and_compaction_answers_the_same(tmp_path: Path) -> None:
    path = tmp_path / "v"
    ix = FaissIndex.open(path, DIM)
    for n in range(8):
        ix.upsert(*doc(n))
        ix.save(compact=False)
    reader = FaissIndex.open(path, DIM)
    expected = answers(reader)
    old_files = {e["file"] for e in json.loads((path / "meta.json").read_text())["segments"]}
    writer = reader.copy()
    for n in range(8, 30):
        writer.upsert(*doc(n))
        writer.delete([f"d{n - 8}-c{j}" for j in range(10)])
        writer.save()  # merges inline
    writer.compact()
    writer.upsert(*doc(99))
    writer.save()
    assert not old_files & set(os.listdir(path))  # every file the reader loaded is gone
    assert answers(reader) == expected
    assert reader.count() == 8 * 20
    assert FaissIndex.open(path, DIM).count() == writer.count() != reader.count()


def test_refresh_reads_only_the_new_segment(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "v"
    ix = FaissIndex.open(path, DIM)
    for n in range(5):
        ix.upsert(*doc(n))
        ix.save(compact=False)
    reader = FaissIndex.open(path, DIM)
    assert reader.refreshed() is reader  # nothing moved
    ix.upsert(*doc(5))
    ix.delete(["d0-c0", "d4-c3"])
    ix.save(compact=False)
    reads: list[str] = []
    real = segments.read_segment

    def counting(directory, entry, dimension, params):
        reads.append(entry["file"])
        return real(directory, entry, dimension, params)

    monkeypatch.setattr("index.faiss_index.read_segment", counting)
    fresh = reader.refreshed()
    assert reads == [ix.layout()["segments"][-1]["file"]]
    assert contents(fresh) == contents(ix) and reader.count() == 100
    ix.compact()  # not an extension of what the reader holds: replays, reads the merge
    reads.clear()
    again = fresh.refreshed()
    assert reads == [s["file"] for s in ix.layout()["segments"]]
    assert contents(again) == contents(ix)


def test_a_second_writer_stacks_its_segment_instead_of_overwriting(tmp_path: Path) -> None:
    path = tmp_path / "v"
    first = FaissIndex.open(path, DIM)
    first.upsert(*doc(0))
    first.save()
    a, b = FaissIndex.open(path, DIM), FaissIndex.open(path, DIM)
    a.upsert(*doc(1))
    a.delete(["d0-c0"])
    a.save()
    b.upsert(*doc(2))
    b.delete(["d0-c1", "d1-c0"])  # d1 is not in b's snapshot: nothing of it to delete
    b.save()  # b's snapshot is one switch behind: it reloads and writes on top
    found = contents(FaissIndex.open(path, DIM))
    assert set(found) == ({f"d{n}-c{j}" for n in range(3) for j in range(20)} - {"d0-c0", "d0-c1"})
    assert contents(b) == found


# -- crash leftovers and merges across writers --------------------------------------------


def test_stale_merge_files_go_after_the_grace_period(tmp_path: Path) -> None:
    path = tmp_path / "v"
    ix = FaissIndex.open(path, DIM)
    ix.upsert(*doc(0))
    ix.save()
    young, old = path / ".compact-young.seg", path / ".compact-old.seg"
    young.write_bytes(b"being built by another process")
    old.write_bytes(b"left by a crashed merge")
    past = time.time() - segments.ORPHAN_GRACE_S - 60
    os.utime(old, (past, past))
    ix.upsert(*doc(1))
    ix.save()
    assert young.exists() and not old.exists()
    assert contents(FaissIndex.open(path, DIM)) == contents(ix)


def test_a_merge_applies_on_top_of_writes_published_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "v"
    ix = FaissIndex.open(path, DIM)
    for n in range(4):
        ix.upsert(*doc(n))
        ix.save(compact=False)
    merge = ix.prepare_compaction()
    assert merge is not None and len(merge.run) == 4
    assert (path / str(merge.building)).exists()
    other = FaissIndex.open(path, DIM)
    other.delete(["d0-c0", "d3-c19"])
    other.upsert(["d1-c1"], unit_rows(1, 7), [{"document_id": "updated"}])
    other.save(compact=False)
    current = FaissIndex.open(path, DIM)
    expected = contents(current)
    assert current.apply_compaction(merge)
    assert [s["file"] for s in current.layout()["segments"]][0] == merge.segment.name
    assert contents(current) == expected
    assert contents(FaissIndex.open(path, DIM)) == expected
    assert "d0-c0" not in expected and expected["d1-c1"]["document_id"] == "updated"
    # a second merge planned on the old snapshot names segments that are gone now
    stale = ix.prepare_compaction()
    assert stale is not None
    assert not current.apply_compaction(stale)
    assert not (path / str(stale.building)).exists()
    assert contents(FaissIndex.open(path, DIM)) == expected


def test_ivfpq_segments_share_one_codebook_and_merge_by_codes(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("index.segments.APPROX_MIN_ROWS", 100)
    params = {"nlist": 8, "m": 8, "nbits": 6, "nprobe": 8}
    path = tmp_path / "v"
    ix = FaissIndex.open(path, DIM, index_type="ivfpq", index_params=params)
    vectors = unit_rows(2000, 3)
    ids = [f"c{i}" for i in range(2000)]
    ix.upsert(ids[:400], vectors[:400], [{"i": i} for i in range(400)])
    ix.save()
    assert ix.trained and [s["kind"] for s in ix.layout()["segments"]] == ["ivfpq"]
    for start in range(400, 2000, 200):  # big writes: IVF-PQ segments on the same codebook
        stop = start + 200
        ix.upsert(ids[start:stop], vectors[start:stop], [{"i": i} for i in range(start, stop)])
        ix.delete(ids[start - 400 : start - 350])
        ix.save(compact=False)
    kinds = [s["kind"] for s in ix.layout()["segments"]]
    assert kinds.count("ivfpq") == len(kinds) > 2
    assert ix.compact()
    assert [s["kind"] for s in ix.layout()["segments"]] == ["ivfpq"]
    again = FaissIndex.open(path, DIM, index_type="ivfpq")
    deleted = {i for start in range(400, 2000, 200) for i in ids[start - 400 : start - 350]}
    assert again.count() == 2000 - len(deleted)
    live = [i for i in range(2000) if ids[i] not in deleted]
    found = sum(again.search(vectors[i], 1)[0].chunk_id == ids[i] for i in live[::20])
    assert found >= 0.9 * len(live[::20])
    assert not {h.chunk_id for h in again.search(vectors[0], 200)} & deleted


# -- the layouts before segments --------------------------------------------------------


def _legacy(path: Path, index_type: str, n: int = 600) -> tuple[list[str], np.ndarray]:
    """A version directory as the single-file layout wrote it (meta.json format 1)."""
    import faiss

    path.mkdir(parents=True)
    vectors = unit_rows(n, 11)
    ids = [f"old-{i}" for i in range(n)]
    int_ids = np.array([faiss_id(i) for i in ids], dtype=np.int64)
    files = {"index": "index-aa.faiss", "payloads": "payloads-aa.json"}
    params: dict[str, int] = {}
    live = list(range(n))
    if index_type == "hnsw":
        params = {"M": 8, "ef_construction": 40, "ef_search": 64}
        raw = faiss.IndexHNSWFlat(DIM, 8, faiss.METRIC_INNER_PRODUCT)
        raw.add(vectors)
        labels = int_ids.copy()
        labels[:5] = -1  # deleted before the migration: tombstoned graph nodes
        live = live[5:]
        np.save(path / "labels-aa.npy", labels)
        files["labels"] = "labels-aa.npy"
    elif index_type == "ivfpq":
        params = {"nlist": 4, "m": 8, "nbits": 6, "nprobe": 4}
        raw = faiss.IndexIVFPQ(faiss.IndexFlatIP(DIM), DIM, 4, 8, 6, faiss.METRIC_INNER_PRODUCT)
        raw.train(vectors)
        raw.add_with_ids(vectors, int_ids)
    else:
        raw = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
        raw.add_with_ids(vectors, int_ids)
    faiss.write_index(raw, str(path / files["index"]))
    payloads = {str(int_ids[i]): {"chunk_id": ids[i], "i": i} for i in live}
    (path / files["payloads"]).write_text(json.dumps(payloads))
    meta = {
        "format": 1,
        "index_type": index_type,
        "index_params": params,
        "dimension": DIM,
        "trained": True,
        "count": len(live),
        "files": files,
    }
    (path / "meta.json").write_text(json.dumps(meta))
    return [ids[i] for i in live], vectors[live]


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivfpq"])
def test_single_file_versions_open_take_writes_and_merge(tmp_path, index_type) -> None:
    path = tmp_path / "v"
    ids, vectors = _legacy(path, index_type)
    ix = FaissIndex.open(path, DIM, index_type=index_type)
    assert ix.count() == len(ids) and ix.trained
    assert sum(ix.search(v, 1)[0].chunk_id == i for i, v in zip(ids, vectors, strict=True)) >= (
        0.9 * len(ids)
    )
    ix.upsert(*doc(0))
    ix.delete(ids[:10])
    ix.save(compact=False)  # stacks a segment on the legacy files, rewrites none
    assert (path / "index-aa.faiss").exists()
    again = FaissIndex.open(path, DIM, index_type=index_type)
    assert again.count() == len(ids) - 10 + 20
    assert not {h.chunk_id for h in again.search(vectors[0], 50)} & set(ids[:10])
    assert again.search(doc(0)[1][3], 1)[0].chunk_id == "d0-c3"
    assert again.compact(full=True)  # the merge rewrites the legacy rows as a segment
    again.upsert(*doc(1))
    again.save(compact=False)
    assert not (path / "index-aa.faiss").exists()
    final = FaissIndex.open(path, DIM, index_type=index_type)
    assert final.count() == len(ids) - 10 + 40 and final.trained
    assert final.search(vectors[50], 1)[0].chunk_id == ids[50]


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivfpq"])
@pytest.mark.parametrize("dead", [5, 150])  # skipped by over-fetching / by an id selector
def test_searches_skip_dead_rows_of_every_segment_type(tmp_path, monkeypatch, index_type, dead):
    monkeypatch.setattr("index.segments.APPROX_MIN_ROWS", 100)
    params = {"nlist": 4, "m": 8, "nbits": 6, "nprobe": 4} if index_type == "ivfpq" else None
    ix = FaissIndex.open(tmp_path / "v", DIM, index_type=index_type, index_params=params)
    vectors = unit_rows(1000, 5)
    ids = [f"c{i}" for i in range(1000)]
    ix.upsert(ids, vectors, [{"odd": i % 2} for i in range(1000)])
    ix.save()
    assert ix.layout()["segments"][0]["kind"] == index_type
    gone = set(ids[:dead])
    ix.delete(ids[:dead])
    ix.save(compact=False)
    assert ix.layout()["segments"][0]["dead"] == dead
    for index in (ix, FaissIndex.open(tmp_path / "v", DIM, index_type=index_type)):
        assert index.count() == 1000 - dead
        for i in range(0, dead, max(1, dead // 10)):  # a query sitting on a dead vector
            hits = index.search(vectors[i], 10)
            assert len(hits) == 10 and not gone & {h.chunk_id for h in hits}
            filtered = index.search(vectors[i], 10, {"odd": i % 2})
            assert len(filtered) == 10 and not gone & {h.chunk_id for h in filtered}
        assert index.search(vectors[500], 1)[0].chunk_id == "c500"
