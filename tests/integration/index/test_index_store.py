"""The index store on FAISS segments (index/store.py): one writer context per document
publishes one segment, other processes' stores reload only what is new, merges run off
the writers' path and never change what a reader sees. And Qdrant versions open only on
the engine they were built on."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.catalog.models import IndexVersion, KnowledgeBase
from core.db import Database
from core.errors import InvalidInput, Unavailable
from index.faiss_index import FaissIndex
from index.qdrant_index import close_client, collection_exists, collection_name, make_client
from index.store import IndexStore

pytestmark = pytest.mark.integration

DIM = 16


def unit_rows(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'catalog.db'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def version(db: Database) -> IndexVersion:
    with db.session() as s:
        kb = KnowledgeBase(name="kb")
        s.add(kb)
        s.flush()
        row = IndexVersion(
            kb_id=kb.id,
            number=1,
            embedding_model="test",
            dimension=DIM,
            config_hash="c" * 64,
            index_params={"index_type": "flat"},
        )
        s.add(row)
        s.flush()
        return row


def current(db: Database, version: IndexVersion) -> IndexVersion:
    """The version row as a reader's request would load it (with its generation now)."""
    with db.session() as s:
        row = s.get(IndexVersion, version.id)
        assert row is not None
        return row


def ingest(store: IndexStore, version: IndexVersion, n: int) -> None:
    """Document n, as the ingestion worker writes it: one writer context, its chunks in,
    the previous revision's out."""
    ids = [f"d{n}-c{j}" for j in range(20)]
    with store.writer(version) as index:
        index.upsert(ids, unit_rows(20, n), [{"document_id": f"d{n}", "j": j} for j in range(20)])
        if n >= 2:
            index.delete([f"d{n - 2}-c{j}" for j in range(5)])


def expected(documents: int) -> set[str]:
    ids = {f"d{n}-c{j}" for n in range(documents) for j in range(20)}
    return ids - {f"d{n - 2}-c{j}" for n in range(2, documents) for j in range(5)}


def answers(index: Any) -> list[list[tuple[str, float]]]:
    queries = unit_rows(8, 99)
    return [[(h.chunk_id, round(h.score, 5)) for h in index.search(q, 10)] for q in queries]


def everything(index: Any) -> set[str]:
    return {h.chunk_id for h in index.search(unit_rows(1, 7)[0], max(1, index.count()))}


def test_each_write_publishes_one_segment_and_other_stores_reload_only_it(
    tmp_path: Path, db: Database, version: IndexVersion, monkeypatch
) -> None:
    writer = IndexStore(tmp_path / "indexes", db, compaction="off")
    other = IndexStore(tmp_path / "indexes", db)  # another process's store
    for n in range(3):
        ingest(writer, version, n)
    seen = other.reader(current(db, version))
    assert everything(seen) == expected(3)
    path = writer.path_for(version)
    before = {p.name for p in path.iterdir()}
    ingest(writer, version, 3)
    new = {p.name for p in path.iterdir()} - before
    assert len(new) == 1 and next(iter(new)).startswith("seg-")  # + meta.json replaced
    assert current(db, version).generation == 4 and current(db, version).vector_count == 70
    reads: list[str] = []
    real = FaissIndex._from_manifest.__func__  # type: ignore[attr-defined]

    def counting(cls, path, dimension, index_type, params, manifest, previous):
        reads.append("full" if previous is None else "incremental")
        return real(cls, path, dimension, index_type, params, manifest, previous)

    monkeypatch.setattr(FaissIndex, "_from_manifest", classmethod(counting))
    assert other.reader(version) is seen  # an old generation: the cached snapshot
    fresh = other.reader(current(db, version))
    assert reads == ["incremental"] and everything(fresh) == expected(4)
    assert everything(seen) == expected(3)  # the old snapshot is untouched


def test_background_merges_keep_few_segments_and_change_no_answer(
    tmp_path: Path, db: Database, version: IndexVersion
) -> None:
    store = IndexStore(tmp_path / "indexes", db)  # compaction="background", the default
    reference = IndexStore(tmp_path / "indexes", db, compaction="off")
    for n in range(40):
        ingest(store, version, n)
    store.wait_for_compaction(timeout=60)
    index = store.reader(current(db, version))
    assert isinstance(index, FaissIndex)
    assert len(index.layout()["segments"]) <= 8
    assert everything(index) == expected(40)
    reopened = reference.reader(current(db, version))  # loaded from disk by another store
    assert answers(reopened) == answers(index)
    listed = {s["file"] for s in index.layout()["segments"]}
    on_disk = {p.name for p in store.path_for(version).iterdir() if p.name.startswith("seg-")}
    assert len(on_disk - listed) <= 8  # the previous manifest's, deleted by the next switch


def test_a_reader_snapshot_survives_writes_and_merges(
    tmp_path: Path, db: Database, version: IndexVersion
) -> None:
    store = IndexStore(tmp_path / "indexes", db, compaction="inline")
    for n in range(6):
        ingest(store, version, n)
    snapshot = store.reader(current(db, version))
    before, count = answers(snapshot), snapshot.count()
    loaded = {p.name for p in store.path_for(version).iterdir() if p.name.startswith("seg-")}
    for n in range(6, 30):
        ingest(store, version, n)
    assert store.compact(current(db, version)) == 0  # inline merges already ran
    assert not loaded & set(os.listdir(store.path_for(version)))
    assert answers(snapshot) == before and snapshot.count() == count
    assert everything(store.reader(current(db, version))) == expected(30)


def test_writers_in_two_processes_never_lose_each_others_writes(
    tmp_path: Path, db: Database, version: IndexVersion
) -> None:
    """Two stores (two processes) alternate writes; one of them merges inline, which
    moves the manifest without a generation bump: the other's writer still builds on
    the merged manifest, not on its stale snapshot."""
    first = IndexStore(tmp_path / "indexes", db, compaction="inline")
    second = IndexStore(tmp_path / "indexes", db, compaction="off")
    for n in range(24):
        ingest(first if n % 2 else second, version, n)
    for store in (first, second):
        assert everything(store.reader(current(db, version))) == expected(24)
    assert everything(IndexStore(tmp_path / "indexes", db).reader(current(db, version))) == (
        expected(24)
    )


def test_a_dropped_version_is_not_brought_back_by_a_merge(
    tmp_path: Path, db: Database, version: IndexVersion
) -> None:
    store = IndexStore(tmp_path / "indexes", db, compaction="off")
    for n in range(8):
        ingest(store, version, n)
    row = current(db, version)
    merge = store.reader(row)
    assert isinstance(merge, FaissIndex) and merge.compaction_due()
    store.drop(row)
    assert store.compact(row) == 0
    assert not store.path_for(row).exists()
    with pytest.raises(InvalidInput, match="compaction 'later'"):
        IndexStore(tmp_path, db, compaction="later")  # type: ignore[arg-type]


def qdrant_version(db: Database, engine: str | None) -> IndexVersion:
    with db.session() as s:
        kb = KnowledgeBase(name=f"kb-{engine}")
        s.add(kb)
        s.flush()
        row = IndexVersion(
            kb_id=kb.id,
            number=1,
            backend="qdrant",
            embedding_model="test",
            dimension=DIM,
            config_hash="c" * 64,
            index_params={"engine": engine} if engine else {},
        )
        s.add(row)
        s.flush()
        return row


def test_a_qdrant_version_opens_only_on_the_engine_it_was_built_on(
    tmp_path: Path, db: Database
) -> None:
    """Edge shards live in the data dir, a server's collections on the server: a version
    opened with the other engine configured would look empty, so it is refused."""
    client = make_client(path=tmp_path / "qdrant")
    store = IndexStore(tmp_path / "indexes", db, qdrant=lambda: client)
    try:
        for engine in ("qdrant-edge", None):  # recorded, or from before engines were
            version = qdrant_version(db, engine)
            with store.writer(version) as index:
                index.upsert(["a", "b"], unit_rows(2, 1), [{"document_id": "d"}] * 2)
            assert store.reader(current(db, version)).count() == 2
        on_server = qdrant_version(db, "qdrant-server")
        with pytest.raises(Unavailable, match="built on qdrant-server.*RAGOPS_QDRANT_URL"):
            store.reader(on_server)
        with pytest.raises(Unavailable, match="built on qdrant-server"):
            store.erase(on_server, ["a"])
        store.drop(version)
        assert not collection_exists(
            client, collection_name(version.kb_id, version.number, version.id)
        )
    finally:
        close_client(client)
