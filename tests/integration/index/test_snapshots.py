"""Index versions moved between Qdrant engines as shard snapshots (index/snapshots.py,
index/snapshot_archive.py): Edge shard A → archive → a fresh shard B in another folder
holds the same points, payloads and vectors and answers the same searches (dense, BM25,
filtered), and back; damaged archives are refused with nothing left behind; through the
catalog, a snapshot is recorded and restores as a new ready version whose erased chunks
stay erased. No Qdrant server runs here: the server path is not exercised."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from core.blobs import LocalBlobStore
from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexSnapshot,
    IndexVersion,
    KnowledgeBase,
    VersionStatus,
)
from core.config import Settings
from core.db import Database
from core.errors import Conflict, InvalidInput, Unavailable
from index.edge_index import EdgeIndex, EdgeShards
from index.qdrant_common import point_id
from index.qdrant_index import close_client, collection_name, make_client
from index.snapshot_archive import write_shard_archive
from index.snapshots import create_snapshot, restore_snapshot
from index.store import IndexStore
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

DIM = 16
N = 60
WORDS = ["river", "mountain", "invoice", "contract", "harbour", "glacier", "ledger", "orchard"]


def unit_rows(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def texts(n: int) -> list[str]:
    return [f"{WORDS[i % 8]} {WORDS[(i * 3) % 8]} note {i}" for i in range(n)]


def payloads(n: int) -> list[dict[str, Any]]:
    return [
        {"document_id": f"d{i % 4}", "page_number": i % 7, "section": f"s{i % 3}", "n": i}
        for i in range(n)
    ]


def fill(index: EdgeIndex, n: int = N, seed: int = 1) -> np.ndarray:
    vectors = unit_rows(n, seed)
    index.upsert([f"c{i}" for i in range(n)], vectors, payloads(n), texts=texts(n))
    index.save()
    return vectors


def archive_of(index: EdgeIndex, tmp: Path, name: str) -> Path:
    copy = tmp / f"{name}-copy"
    index.copy_files(copy)
    out = tmp / f"{name}.snapshot"
    with open(out, "wb") as f:
        write_shard_archive(copy, f)
    return out


def points(index: EdgeIndex) -> dict[str, tuple[dict[str, Any], list[float], dict[int, float]]]:
    """chunk id → (payload, dense vector, sparse vector) as the shard stores them."""
    shard = index._shard
    assert shard is not None
    records = shard.retrieve(
        [point_id(c) for c in index.chunk_ids()], with_payload=True, with_vector=True
    )
    out = {}
    for r in records:
        vector = r.vector
        dense = vector[""] if isinstance(vector, dict) else vector
        sparse = vector.get("bm25") if isinstance(vector, dict) else None
        sparse_map = dict(zip(sparse.indices, sparse.values, strict=True)) if sparse else {}
        out[r.payload["chunk_id"]] = (dict(r.payload), list(dense), sparse_map)
    return out


def answers(index: EdgeIndex, vectors: np.ndarray) -> list[list[tuple[str, float]]]:
    queries = [
        index.search(vectors[3], 10),
        index.search(vectors[7], 5, {"document_id": ["d1", "d2"], "page_number": {"gte": 2}}),
        index.search_lexical("glacier harbour", 10),
        index.search_lexical("ledger", 5, {"section": "s1"}),
    ]
    return [[(h.chunk_id, round(h.score, 5)) for h in hits] for hits in queries]


def test_edge_shard_to_a_fresh_shard_and_back(tmp_path: Path) -> None:
    one, two = EdgeShards(tmp_path / "one"), EdgeShards(tmp_path / "two")
    try:
        a = one.open("kb_v1", DIM, lexical=True)
        vectors = fill(a)
        a.delete(["c5", "c6"])  # deleted points must not come back
        a.save()
        archive = archive_of(a, tmp_path, "a")
        # Edge preallocates 32 MB files; the archive keeps their data regions only.
        assert archive.stat().st_size < 2_000_000
        with tarfile.open(archive) as tar:  # a plain (GNU sparse) tar any tool reads
            names = tar.getnames()
        assert "replica_state.json" in names and "wal" in names
        assert any(n.startswith("segments/") and "/files/" in n for n in names)

        # Edge's in-memory BM25 statistics still count deleted points until the shard is
        # loaded again; a restored shard is freshly loaded, so compare with A reloaded.
        one.close()
        one = EdgeShards(tmp_path / "one")
        a = one.open("kb_v1", DIM)
        b = two.restore("kb_v1_restored", archive, DIM)
        assert b.lexical and b.count() == a.count() == N - 2
        assert points(b) == points(a)
        assert answers(b, vectors) == answers(a, vectors)
        assert not b.present(["c5", "c6"])

        # and back, after a write on B: A's folder gets a shard equal to B
        b.upsert(["new"], unit_rows(1, 9), [{"document_id": "d9"}], texts=["orchard river"])
        b.save()
        back = one.restore("kb_v1_back", archive_of(b, tmp_path, "b"), DIM)
        assert points(back) == points(b)
        assert answers(back, vectors) == answers(b, vectors)
        assert back.search_lexical("orchard river", 1)[0].chunk_id == "new"
    finally:
        one.close()
        two.close()


@pytest.mark.parametrize("damage", ["truncated", "cut short", "not a tar", "empty tar"])
def test_damaged_archives_are_refused_and_leave_nothing(tmp_path: Path, damage: str) -> None:
    shards = EdgeShards(tmp_path / "q")
    try:
        archive = archive_of(fill_new(shards, "src"), tmp_path, "src")
        data = archive.read_bytes()
        bad = {
            "truncated": data[: len(data) // 2],
            "cut short": data[:700],
            "not a tar": b"PK\x03\x04 not a snapshot" * 40,
            "empty tar": b"\0" * 1024,
        }[damage]
        broken = tmp_path / "broken.snapshot"
        broken.write_bytes(bad)
        with pytest.raises(InvalidInput, match="not a readable Qdrant shard snapshot"):
            shards.restore("target", broken, DIM)
        assert not shards.exists("target")
        assert sorted(p.name for p in (tmp_path / "q").iterdir()) == [".src.lock", "src"]
    finally:
        shards.close()


def fill_new(shards: EdgeShards, name: str) -> EdgeIndex:
    index = shards.open(name, DIM, lexical=True)
    fill(index, 20)
    return index


def test_restore_refuses_another_dimension_and_an_existing_shard(tmp_path: Path) -> None:
    shards = EdgeShards(tmp_path / "q")
    try:
        archive = archive_of(fill_new(shards, "src"), tmp_path, "src")
        with pytest.raises(InvalidInput, match="dimension 16, the target needs 32"):
            shards.restore("other", archive, 32)
        with pytest.raises(Conflict, match="exists already"):
            shards.restore("src", archive, DIM)
        assert shards.open("src", DIM).count() == 20
    finally:
        shards.close()


# -- through the catalog -------------------------------------------------------------


@dataclass
class Services:
    """What `index.snapshots` uses of the runtime (`index.services.IndexServices`)."""

    settings: Settings
    db: Database
    blobs: LocalBlobStore
    indexes: IndexStore
    jobs: Any = None
    workers: Any = None


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Services]:
    settings = make_settings(tmp_path / "data")
    db = Database(f"sqlite:///{tmp_path / 'catalog.db'}")
    db.migrate()
    client = make_client(path=tmp_path / "data" / "qdrant")
    store = IndexStore(tmp_path / "data" / "indexes", db, qdrant=lambda: client)
    yield Services(settings, db, LocalBlobStore(tmp_path / "data" / "blobs"), store)
    close_client(client)
    db.dispose()


def make_kb(rt: Services, name: str, model: str = "test-model") -> KnowledgeBase:
    with rt.db.session() as s:
        kb = KnowledgeBase(name=name, config={"embedding_model": model})
        s.add(kb)
        s.flush()
        s.expunge(kb)
        return kb


def ready_version(rt: Services, kb: KnowledgeBase, *, backend: str = "qdrant") -> IndexVersion:
    """Version 1 of `kb`, ready, with N chunks: catalog rows and points."""
    with rt.db.session() as s:
        doc = Document(kb_id=kb.id, filename="a.txt")
        s.add(doc)
        s.flush()
        rev = DocumentRevision(
            document_id=doc.id, number=1, content_sha256="0" * 64, size_bytes=1, media_type="t"
        )
        s.add(rev)
        s.flush()
        for i, text in enumerate(texts(N)):
            s.add(
                Chunk(
                    id=f"{kb.name}-c{i}",
                    kb_id=kb.id,
                    document_id=doc.id,
                    revision_id=rev.id,
                    position=i,
                    text=text,
                    text_hash=hashlib.sha256(text.encode()).hexdigest(),
                    token_count=4,
                    config_hash="h" * 64,
                )
            )
        params = {"engine": "qdrant-edge"} if backend == "qdrant" else {"index_type": "flat"}
        version = IndexVersion(
            kb_id=kb.id,
            number=1,
            status=VersionStatus.READY,
            backend=backend,
            embedding_model="test-model",
            dimension=DIM,
            config={"embedding_model": "test-model", "chunking": {"chunk_size": 64}},
            config_hash="h" * 64,
            index_params=params,
        )
        s.add(version)
        s.flush()
        s.expunge(version)
    with rt.indexes.writer(version) as index:
        index.upsert(
            [f"{kb.name}-c{i}" for i in range(N)],
            unit_rows(N, 4),
            [{**p, "document_id": doc.id} for p in payloads(N)],
            texts=texts(N),
        )
    with rt.db.session() as s:
        row = s.get(IndexVersion, version.id)
        assert row is not None
        s.expunge(row)
        return row


def test_snapshot_is_recorded_and_restores_as_a_new_ready_version(rt: Services) -> None:
    kb = make_kb(rt, "src")
    source = ready_version(rt, kb)
    snap = create_snapshot(rt, kb=kb, number=1, created_by="k1")
    data = rt.blobs.get(snap.blob_key)
    assert hashlib.sha256(data).hexdigest() == snap.sha256 and len(data) == snap.size_bytes
    assert (snap.point_count, snap.dimension, snap.lexical) == (N, DIM, True)
    assert (snap.engine, snap.version_number, snap.embedding_model) == (
        "qdrant-edge",
        1,
        "test-model",
    )

    # Another KB is refused: the points cite src's chunk rows.
    other = make_kb(rt, "dst")
    with pytest.raises(InvalidInput, match="restores only into it"):
        restore_snapshot(rt, kb=other, snapshot_id=snap.id)

    # A chunk erased after the export stays erased in the restored version.
    with rt.db.session() as s:
        s.delete(s.get(Chunk, "src-c0"))
    restored = restore_snapshot(rt, kb=kb, snapshot_id=snap.id)
    assert (restored.number, restored.status, restored.kb_id) == (2, VersionStatus.READY, kb.id)
    assert restored.vector_count == N - 1
    assert restored.config_hash == source.config_hash and restored.config == source.config
    origin = restored.index_params["restored_from"]
    assert origin["snapshot_id"] == snap.id and origin["kb"] == "src" and origin["version"] == 1
    assert restored.index_params["engine"] == "qdrant-edge"
    reader = rt.indexes.reader(restored)
    original = rt.indexes.reader(source)
    query = unit_rows(N, 4)[9]
    expect = [h.chunk_id for h in original.search(query, 8) if h.chunk_id != "src-c0"]
    assert [h.chunk_id for h in reader.search(query, 8)][: len(expect)] == expect
    assert not reader.present(["src-c0"])
    with rt.db.session() as s:
        row = s.get(IndexSnapshot, snap.id)
        assert row is not None
        assert [r["version_id"] for r in row.restored_into] == [restored.id]
        assert s.execute(select(IndexVersion).where(IndexVersion.kb_id == other.id)).all() == []


def test_refusals_leave_no_version_and_no_shard(rt: Services, tmp_path: Path) -> None:
    kb = make_kb(rt, "src")
    ready_version(rt, kb)
    snap = create_snapshot(rt, kb=kb, number=1)

    other_model = make_kb(rt, "e5", model="multilingual-e5-small")
    with pytest.raises(InvalidInput, match="embeds with 'multilingual-e5-small'"):
        restore_snapshot(rt, kb=other_model, snapshot_id=snap.id)

    # A damaged archive in the blob store: refused before anything is created.
    path = rt.blobs._path(snap.blob_key)
    path.write_bytes(path.read_bytes()[:-4096] + b"\0" * 4096)
    with pytest.raises(Unavailable, match="does not match its sha256"):
        restore_snapshot(rt, kb=kb, snapshot_id=snap.id)
    with rt.db.session() as s:
        numbers = s.execute(select(IndexVersion.number).where(IndexVersion.kb_id == kb.id))
        assert numbers.scalars().all() == [1]
    shards = rt.indexes.qdrant_client()
    assert not shards.exists(collection_name(kb.id, 2, "x"))
    assert [p.name for p in shards.root.iterdir() if f"{kb.id}_v2" in p.name] == []

    faiss_kb = make_kb(rt, "faiss")
    ready_version(rt, faiss_kb, backend="faiss")
    with pytest.raises(Conflict, match="FAISS version"):
        create_snapshot(rt, kb=faiss_kb, number=1)
    with rt.db.session() as s:
        row = s.execute(select(IndexVersion).where(IndexVersion.kb_id == kb.id)).scalar_one()
        row.status = VersionStatus.BUILDING
    with pytest.raises(Conflict, match="building"):
        create_snapshot(rt, kb=kb, number=1)
