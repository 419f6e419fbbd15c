"""GDPR erasure in the index layer (`IndexStore.erase`): a plain delete leaves the
deleted rows' bytes on disk (FAISS tombstones and merges keep old files for a while; a
Qdrant Edge segment only flags a deleted point, its vector and payload stay in place);
after `erase` no byte of the erased chunks (vector, payload, chunk id) is left in any
file of the version's storage, while every other row stays searchable and counted."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.catalog.models import IndexVersion, KnowledgeBase, VersionStatus
from core.db import Database
from index import faiss_index
from index.faiss_index import FaissIndex, faiss_id
from index.qdrant_index import close_client, collection_exists, collection_name, make_client
from index.segments import APPROX_MIN_ROWS, BUILDING_PREFIX, read_manifest
from index.store import IndexStore
from tests.integration.index.test_index_store import DIM, current, unit_rows

pytestmark = pytest.mark.integration

CANARY = "canary-7f3a9c"
SECRET = [f"{CANARY}-c{j}" for j in range(4)]  # the chunks of the document to erase
# Edge stores each payload LZ4-compressed, where a string repeating an earlier one within
# the payload becomes a back-reference: the secret strings share no run of 4 bytes, so
# each stays literal and a scan finds it (the tests check they do before erasing).
SECTION = "ledger-4e81d2"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'catalog.db'}")
    database.migrate()
    yield database
    database.dispose()


def new_version(db: Database, backend: str = "faiss", index_type: str = "flat") -> IndexVersion:
    with db.session() as s:
        kb = KnowledgeBase(name=f"kb-{backend}-{index_type}")
        s.add(kb)
        s.flush()
        row = IndexVersion(
            kb_id=kb.id,
            number=1,
            backend=backend,
            embedding_model="test",
            dimension=DIM,
            config_hash="c" * 64,
            index_params={"index_type": index_type} if backend == "faiss" else {},
        )
        s.add(row)
        s.flush()
        return row


def secret_vectors() -> np.ndarray:
    return unit_rows(len(SECRET), 4242)


def secret_payload(j: int) -> dict[str, Any]:
    return {"document_id": "d-secret", "filename": "minutes-b60a5f.txt", "section": section(j)}


def section(j: int) -> str:
    return f"{SECTION}-s{j}"


def traces(chunks: range = range(len(SECRET))) -> list[bytes]:
    """What must not survive the erasure of those secret chunks: their chunk ids, payload
    strings and vectors (as FAISS and Edge segments keep them: float32 rows)."""
    vectors = secret_vectors()
    found: list[bytes] = []
    for j in chunks:
        found += [SECRET[j].encode(), section(j).encode(), vectors[j].tobytes()]
    return found


def wal_traces(chunks: range = range(len(SECRET))) -> list[bytes]:
    """The vectors as a Qdrant write-ahead log would hold them (CBOR: each float a 0xfa
    byte and 4 bytes big endian). Edge shards here keep no WAL; this proves it stays so."""
    vectors = secret_vectors()
    return [b"".join(b"\xfa" + struct.pack(">f", x) for x in vectors[j].tolist()) for j in chunks]


def found_in(root: Path, needles: list[bytes]) -> set[bytes]:
    """The needles that occur in any byte of any file under `root`."""
    data = [p.read_bytes() for p in root.rglob("*") if p.is_file()]
    return {n for n in needles if any(n in d for d in data)}


def write_corpus(store: IndexStore, version: IndexVersion, background: int) -> set[str]:
    """Three writes (three segments): background rows with two secret chunks, two more
    secret chunks with a few rows, then a plain delete of a secret and a background
    chunk. Returns the background ids still live."""
    ids = [f"b{i}" for i in range(background)]
    vectors = secret_vectors()
    with store.writer(version) as index:
        index.upsert(
            ids + SECRET[:2],
            np.vstack([unit_rows(background, 1), vectors[:2]]),
            [{"document_id": f"d{n % 7}", "filename": "public.txt"} for n in range(background)]
            + [secret_payload(0), secret_payload(1)],
        )
    more = [f"e{i}" for i in range(6)]
    with store.writer(version) as index:
        index.upsert(
            SECRET[2:] + more,
            np.vstack([vectors[2:], unit_rows(6, 2)]),
            [secret_payload(2), secret_payload(3)] + [{"document_id": "d-other"}] * 6,
        )
    with store.writer(version) as index:
        index.delete([SECRET[0], "b0"])
    return set(ids[1:] + more)


def everything(index: Any) -> set[str]:
    return {h.chunk_id for h in index.search(unit_rows(1, 7)[0], max(1, index.count()))}


@pytest.mark.parametrize(
    ("index_type", "background"),
    # hnsw: a first write of APPROX_MIN_ROWS rows is a graph segment, and so is the rewrite
    [("flat", 30), ("hnsw", APPROX_MIN_ROWS)],
)
def test_erase_leaves_no_byte_of_the_chunks_in_the_version_directory(
    tmp_path: Path, db: Database, index_type: str, background: int
) -> None:
    version = new_version(db, index_type=index_type)
    store = IndexStore(tmp_path / "indexes", db, compaction="off")
    kept = write_corpus(store, version, background)
    path = store.path_for(version)
    assert len(store.reader(current(db, version)).layout()["segments"]) == 3
    # why erase exists: the plainly deleted chunk is still in its old segment file
    assert found_in(path, traces()) == set(traces())

    before = current(db, version).generation
    assert store.erase(current(db, version), [*SECRET, "never-written"]) == 3

    assert found_in(path, traces()) == set()
    row = current(db, version)
    index = store.reader(row)
    assert row.generation == before + 1 and row.vector_count == len(kept) == index.count()
    assert everything(index) == kept
    layout = index.layout()["segments"]
    assert len(layout) == 1 and layout[0]["kind"] == index_type
    assert {p.name for p in path.iterdir()} == {"meta.json", ".lock", layout[0]["file"]}
    reopened = IndexStore(tmp_path / "indexes", db).reader(row)  # another process
    assert everything(reopened) == kept and reopened.count() == len(kept)

    assert store.erase(current(db, version), SECRET) == 0  # idempotent
    assert found_in(path, traces()) == set()
    assert everything(store.reader(current(db, version))) == kept


def test_a_retired_version_is_erased_and_other_processes_reload_cleanly(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = new_version(db)
    store = IndexStore(tmp_path / "indexes", db, compaction="off")
    kept = write_corpus(store, version, 20)
    with db.session() as s:
        s.get(IndexVersion, version.id).status = VersionStatus.RETIRED  # type: ignore[union-attr]
    other = IndexStore(tmp_path / "indexes", db)  # another process, loaded before
    old = other.reader(current(db, version))
    path = store.path_for(version)
    stale = read_manifest(path)

    assert store.erase(current(db, version), SECRET[1:2]) == 1

    assert found_in(path, traces(range(2))) == set()
    assert SECRET[1] in everything(old)  # a loaded snapshot keeps answering from memory
    assert everything(other.reader(current(db, version))) == kept | set(SECRET[2:])
    # a reader that read the manifest just before the erase finds its files gone and
    # reads the manifest again
    real = faiss_index.read_manifest
    answers = iter([stale])
    monkeypatch.setattr(faiss_index, "read_manifest", lambda p: next(answers, None) or real(p))
    assert everything(FaissIndex.open(path, DIM)) == kept | set(SECRET[2:])
    assert next(answers, None) is None  # it did start from the stale manifest
    assert current(db, version).status == VersionStatus.RETIRED


def test_a_merge_prepared_before_the_erase_never_publishes_the_rows(
    tmp_path: Path, db: Database
) -> None:
    version = new_version(db)
    store = IndexStore(tmp_path / "indexes", db, compaction="off")
    kept = write_corpus(store, version, 3)  # small first segment: a merge is due
    snapshot = store.reader(current(db, version))
    assert isinstance(snapshot, FaissIndex) and snapshot.compaction_due()
    early = snapshot.prepare_compaction()  # built from rows the erase removes
    assert early is not None and early.building is not None
    path = store.path_for(version)
    assert SECRET[1].encode() in (path / early.building).read_bytes()  # it holds secrets

    assert store.erase(current(db, version), SECRET) == 3

    assert not any(p.name.startswith(BUILDING_PREFIX) for p in path.iterdir())
    late = snapshot.prepare_compaction()  # a stale snapshot merges after the erase
    assert late is not None and found_in(path, traces())
    seq = read_manifest(path)["seq"]  # type: ignore[index]
    for merge in (early, late):
        assert not FaissIndex.open(path, DIM).apply_compaction(merge)
    assert read_manifest(path)["seq"] == seq  # type: ignore[index]
    assert found_in(path, traces()) == set()
    assert everything(FaissIndex.open(path, DIM)) == kept


def test_erase_rewrites_a_directory_saved_before_segments(tmp_path: Path, db: Database) -> None:
    import faiss

    version = new_version(db)
    store = IndexStore(tmp_path / "indexes", db, compaction="off")
    path = store.path_for(version)
    path.mkdir(parents=True)
    raw = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    ids = [*SECRET[:2], "b1", "b2"]
    raw.add_with_ids(
        np.vstack([secret_vectors()[:2], unit_rows(2, 1)]),
        np.array([faiss_id(i) for i in ids], dtype=np.int64),
    )
    faiss.write_index(raw, str(path / "index.faiss"))
    payloads = [secret_payload(0), secret_payload(1), {}, {}]
    stored = {str(faiss_id(i)): {**p, "chunk_id": i} for i, p in zip(ids, payloads, strict=True)}
    (path / "payloads.json").write_text(json.dumps(stored))

    assert store.erase(current(db, version), SECRET) == 2

    assert found_in(path, traces()) == set()
    assert not {"index.faiss", "payloads.json"} & {p.name for p in path.iterdir()}
    assert everything(store.reader(current(db, version))) == {"b1", "b2"}


def test_erase_of_a_version_without_storage_returns_zero_and_creates_nothing(
    tmp_path: Path, db: Database
) -> None:
    client = make_client(path=tmp_path / "qdrant")
    try:
        store = IndexStore(tmp_path / "indexes", db, qdrant=lambda: client)
        faiss_version = new_version(db)
        assert store.erase(faiss_version, SECRET) == 0
        assert not store.path_for(faiss_version).exists()
        qdrant_version = new_version(db, backend="qdrant")
        assert store.erase(qdrant_version, SECRET) == 0
        name = collection_name(qdrant_version.kb_id, qdrant_version.number, qdrant_version.id)
        assert not collection_exists(client, name)
    finally:
        close_client(client)


def shard_files(qdrant_path: Path) -> set[str]:
    """What lies in the Edge folder besides shard directories: rebuild leftovers would."""
    return {p.name for p in qdrant_path.iterdir() if not (p / "edge_config.json").is_file()}


def test_qdrant_edge_erase_leaves_no_byte_of_the_chunks_in_its_files(
    tmp_path: Path, db: Database
) -> None:
    qdrant_path = tmp_path / "qdrant"
    clients = [make_client(path=qdrant_path)]
    version = new_version(db, backend="qdrant")
    store = IndexStore(tmp_path / "indexes", db, qdrant=lambda: clients[-1])
    name = collection_name(version.kb_id, version.number, version.id)
    needles = traces() + wal_traces()
    try:
        with store.writer(version) as index:
            index.upsert(["b-first"], unit_rows(1, 9), [{}])
        kept = write_corpus(store, version, 20) | {"b-first"}
        # why erase exists: the plainly deleted point still sits in its segment's files
        assert found_in(qdrant_path, needles) == set(traces())
        assert not (qdrant_path / name / "wal").exists()

        assert store.erase(current(db, version), [*SECRET, "never-written"]) == 3

        assert found_in(qdrant_path, needles) == set()
        assert shard_files(qdrant_path) == {f".{name}.lock"}
        row = current(db, version)
        assert row.vector_count == len(kept) == store.reader(row).count()
        assert everything(store.reader(row)) == kept
        assert store.erase(current(db, version), SECRET) == 0
        assert found_in(qdrant_path, needles) == set()
        with store.writer(current(db, version)) as index:  # writes go on after an erase
            index.upsert(["after"], unit_rows(1, 10), [{"document_id": "d-after"}])
        kept.add("after")
        close_client(clients[-1])
        clients.append(make_client(path=qdrant_path))  # the points come back from disk
        row = current(db, version)
        assert (
            everything(IndexStore(tmp_path / "indexes", db, qdrant=lambda: clients[-1]).reader(row))
            == kept
        )
    finally:
        close_client(clients[-1])


def test_qdrant_edge_erase_purges_a_shard_with_an_hnsw_segment(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the indexing threshold the shard holds an HNSW segment (built in a child
    process); erasing rewrites it without the chunks, and the graph is rebuilt."""
    from index import edge_index

    monkeypatch.setattr(edge_index, "INDEXING_THRESHOLD_KB", 64)  # 1,024 vectors of 16 floats
    qdrant_path = tmp_path / "qdrant"
    client = make_client(path=qdrant_path)
    version = new_version(db, backend="qdrant")
    store = IndexStore(tmp_path / "indexes", db, qdrant=lambda: client)
    n = 1500
    try:
        kept = write_corpus(store, version, n)
        index = store.reader(current(db, version))
        assert index._shard.info().indexed_vectors_count > n // 2  # type: ignore[attr-defined]
        assert found_in(qdrant_path, traces()) == set(traces())

        assert store.erase(current(db, version), SECRET) == 3

        assert found_in(qdrant_path, traces() + wal_traces()) == set()
        index = store.reader(current(db, version))
        assert index._shard.info().indexed_vectors_count > n // 2  # type: ignore[attr-defined]
        assert index.count() == len(kept)
        probes = sorted(kept)[:: max(1, len(kept) // 40)]
        rows = unit_rows(n, 1)
        found = sum(
            index.search(rows[int(i[1:])], 3)[0].chunk_id == i for i in probes if i[0] == "b"
        )
        assert found >= 0.9 * sum(1 for i in probes if i[0] == "b")
    finally:
        close_client(client)


def test_erase_while_background_merges_run(tmp_path: Path, db: Database) -> None:
    version = new_version(db)
    store = IndexStore(tmp_path / "indexes", db)  # compaction="background", the default
    kept = write_corpus(store, version, 3)
    for n in range(12):  # small writes: merges keep running in the background
        ids = [f"w{n}-{j}" for j in range(3)]
        with store.writer(version) as index:
            index.upsert(ids, unit_rows(3, 100 + n), [{"document_id": f"w{n}"}] * 3)
        kept |= set(ids)
        if n == 6:
            assert store.erase(current(db, version), SECRET) == 3
    store.wait_for_compaction(timeout=60)
    assert found_in(store.path_for(version), traces()) == set()
    assert everything(store.reader(current(db, version))) == kept


@pytest.mark.parametrize("backend", ["faiss", "qdrant"])
def test_erase_by_document_id_finds_rows_whose_chunk_ids_are_forgotten(
    tmp_path: Path, db: Database, backend: str
) -> None:
    """A document's older revisions leave rows (FAISS: dead rows in old segments) whose
    chunk ids the catalog no longer has: erase by `document_id` finds them."""
    qdrant_path = tmp_path / "qdrant"
    client = make_client(path=qdrant_path) if backend == "qdrant" else None
    version = new_version(db, backend=backend)
    store = IndexStore(tmp_path / "indexes", db, qdrant=lambda: client, compaction="off")
    root = qdrant_path if backend == "qdrant" else store.path_for(version)
    try:
        kept = write_corpus(store, version, 20)
        # revision 2 of the secret document replaces revision 1's chunks
        with store.writer(current(db, version)) as index:
            index.delete(SECRET)
            index.upsert(["r2-c0"], unit_rows(1, 77), [secret_payload(9)])
        needles = traces() + [section(9).encode()]
        # (not all of them: Edge may reuse the freed payload blocks of revision 1)
        assert found_in(root, needles)
        needles += wal_traces()

        assert store.erase(current(db, version), [], document_ids=["d-secret"]) == 1

        assert found_in(root, needles) == set()
        row = current(db, version)
        assert everything(store.reader(row)) == kept and row.vector_count == len(kept)
    finally:
        if client is not None:
            close_client(client)
