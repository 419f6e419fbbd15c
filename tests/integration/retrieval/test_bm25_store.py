"""The per-version BM25 store against a real catalog (SQLite and PostgreSQL): what it
builds equals BM25 over the same texts, and a rebuild reuses what it tokenised before."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import update

from api.runtime import Runtime
from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexVersion,
    KnowledgeBase,
    RevisionStatus,
    VersionStatus,
)
from core.db import Database
from core.types import sha256_hex
from retrieval.bm25 import Bm25Index, Bm25Store
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

CONFIG = "c" * 64
DOCS = {
    "thames.txt": ["The river Thames flows through London.", "London bridges cross the river."],
    "tajo.txt": ["El río Tajo nace en la sierra de Albarracín.", "El Tajo desemboca en Lisboa."],
    "volga.txt": ["Река Волга впадает в Каспийское море.", "Волга — самая длинная река Европы."],
}


@pytest.fixture
def db(catalog_url: str) -> Database:
    database = Database(catalog_url)
    database.migrate()
    yield database
    database.engine.dispose()


def add_document(db: Database, kb_id: str, filename: str, texts: list[str]) -> None:
    with db.session() as s:
        doc = Document(kb_id=kb_id, filename=filename, metadata_={"source": filename[:-4]})
        s.add(doc)
        s.flush()
        rev = DocumentRevision(
            document_id=doc.id,
            number=1,
            content_sha256=sha256_hex(filename),
            size_bytes=1,
            media_type="text/plain",
            status=RevisionStatus.INDEXED,
        )
        s.add(rev)
        s.flush()
        doc.current_revision_id = rev.id
        for position, text in enumerate(texts):
            s.add(
                Chunk(
                    id=sha256_hex(f"{filename}:{position}")[:32],
                    kb_id=kb_id,
                    document_id=doc.id,
                    revision_id=rev.id,
                    position=position,
                    text=text,
                    text_hash=sha256_hex(text),
                    token_count=len(text.split()),
                    metadata_={"page_number": position + 1},
                    config_hash=CONFIG,
                )
            )


@pytest.fixture
def version(db: Database) -> IndexVersion:
    with db.session() as s:
        kb = KnowledgeBase(name="rivers")
        s.add(kb)
        s.flush()
        version = IndexVersion(
            kb_id=kb.id,
            number=1,
            status=VersionStatus.LIVE,
            embedding_model="m",
            dimension=3,
            config_hash=CONFIG,
            generation=1,
        )
        s.add(version)
    for filename, texts in DOCS.items():
        add_document(db, version.kb_id, filename, texts)
    return version


def bump(db: Database, version: IndexVersion) -> None:
    version.generation += 1
    with db.session() as s:
        s.execute(
            update(IndexVersion)
            .where(IndexVersion.id == version.id)
            .values(generation=version.generation)
        )


def test_the_built_index_equals_bm25_over_the_same_texts(db, version):
    index = Bm25Store(db).for_version(version)
    assert index.ids == sorted(index.ids)  # rows by chunk id, whatever the catalog's order
    expected = {sha256_hex(f"{f}:{i}")[:32]: t for f, ts in DOCS.items() for i, t in enumerate(ts)}
    assert set(index.ids) == set(expected)
    reference = Bm25Index.build([expected[i] for i in index.ids])
    for query in ("river London", "río Tajo", "реки Волги"):
        assert index.search(query, 6) == reference.search(query, 6)
    row = index.ids.index(sha256_hex("tajo.txt:1")[:32])
    payload = index.payloads[row]
    assert payload["source"] == "tajo" and payload["filename"] == "tajo.txt"
    assert payload["page_number"] == 2 and payload["chunk_id"] == index.ids[row]
    hits = index.search("river", 6, filters={"source": "thames"})
    assert hits and {index.payloads[r]["filename"] for r, _ in hits} == {"thames.txt"}


def test_a_rebuild_tokenises_only_new_text_and_forget_drops_everything(db, version):
    store = Bm25Store(db)
    before = store.for_version(version)
    # The stored text of a known hash changes behind the store's back: a rebuild keeps
    # the counts it made from that hash (it never reads that text again)...
    old_id = sha256_hex("thames.txt:0")[:32]
    with db.session() as s:
        s.execute(update(Chunk).where(Chunk.id == old_id).values(text="zebra zebra"))
    add_document(db, version.kb_id, "neva.txt", ["Нева впадает в Финский залив."])
    bump(db, version)
    after = store.for_version(version)
    assert after is not before and len(after) == len(before) + 1
    assert after.search("zebra", 3) == []
    assert after.ids[after.search("Thames", 1)[0][0]] == old_id
    assert after.ids[after.search("Нева", 1)[0][0]] == sha256_hex("neva.txt:0")[:32]
    # ... until it forgets (an erasure): then every text is read and tokenised again.
    assert store.forget([version.id], []) == 1
    fresh = store.for_version(version)
    assert fresh.ids[fresh.search("zebra", 1)[0][0]] == old_id
    assert fresh.search("Thames", 3) == []


def test_copies_of_a_text_score_alike(db, version):
    add_document(db, version.kb_id, "copy.txt", DOCS["thames.txt"])
    bump(db, version)
    index = Bm25Store(db).for_version(version)
    scores = dict(index.search("Thames", 10))
    assert len(scores) == 2 and np.isclose(*scores.values())


def test_background_mode_answers_from_the_previous_index_while_rebuilding(db, version):
    store = Bm25Store(db, background=True)
    before = store.for_version(version)  # nothing cached yet: built on the query path
    add_document(db, version.kb_id, "neva.txt", ["Нева впадает в Финский залив."])
    bump(db, version)
    assert store.for_version(version) is before  # at once, the rebuild in a thread
    after = store.for_version(version, wait=True)
    assert len(after) == len(before) + 1 and after.search("Нева", 1)


def test_the_runtime_takes_the_mode_from_the_settings(tmp_path):
    on = Runtime(make_settings(tmp_path / "a", bm25_background_rebuild=True))
    off = Runtime(make_settings(tmp_path / "b"))
    try:
        assert on.bm25.background and not off.bm25.background
    finally:
        on.close()
        off.close()
