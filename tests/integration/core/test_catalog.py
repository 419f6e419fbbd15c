"""The catalog on both SQLite and the real PostgreSQL: migrations, constraints, cascades."""

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexVersion,
    KnowledgeBase,
    VersionStatus,
)
from core.db import Database

pytestmark = pytest.mark.integration


@pytest.fixture
def db(catalog_url):
    database = Database(catalog_url)
    database.migrate()
    yield database
    database.dispose()


def test_migrations_create_every_table_and_are_idempotent(db):
    db.migrate()  # second run is a no-op
    tables = set(inspect(db.engine).get_table_names())
    assert {
        "knowledge_bases",
        "documents",
        "document_revisions",
        "chunks",
        "index_versions",
        "jobs",
        "embedding_cache",
        "alembic_version",
    } <= tables


def seed(db) -> tuple[str, str, str]:
    with db.session() as s:
        kb = KnowledgeBase(name="kb1", config={"chunking": {"chunk_size": 10}})
        s.add(kb)
        s.flush()
        doc = Document(kb_id=kb.id, filename="a.txt", metadata_={"team": "ops"})
        s.add(doc)
        s.flush()
        rev = DocumentRevision(
            document_id=doc.id,
            number=1,
            content_sha256="0" * 64,
            size_bytes=3,
            media_type="text/plain",
        )
        s.add(rev)
        s.flush()
        s.add(
            Chunk(
                id="c" * 32,
                kb_id=kb.id,
                document_id=doc.id,
                revision_id=rev.id,
                position=0,
                text="abc",
                text_hash="1" * 64,
                token_count=1,
                metadata_={"page_number": 1},
            )
        )
        s.add(
            IndexVersion(
                kb_id=kb.id,
                number=1,
                status=VersionStatus.LIVE,
                embedding_model="m",
                dimension=3,
                config={},
                config_hash="x",
            )
        )
        return kb.id, doc.id, rev.id


def test_rows_round_trip_with_json(db):
    kb_id, doc_id, _ = seed(db)
    with db.session() as s:
        doc = s.get(Document, doc_id)
        assert doc.metadata_ == {"team": "ops"}
        assert doc.revisions[0].status == "pending"
        assert s.get(KnowledgeBase, kb_id).config["chunking"]["chunk_size"] == 10


def test_unique_constraints(db):
    kb_id, _, _ = seed(db)
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Document(kb_id=kb_id, filename="a.txt"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(
            IndexVersion(
                kb_id=kb_id, number=1, embedding_model="m", dimension=3, config={}, config_hash="y"
            )
        )
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(KnowledgeBase(name="kb1"))


def test_deleting_a_kb_cascades_to_everything_under_it(db):
    kb_id, _, _ = seed(db)
    with db.session() as s:
        s.delete(s.get(KnowledgeBase, kb_id))
    with db.session() as s:
        for model in (Document, DocumentRevision, Chunk, IndexVersion):
            assert s.execute(select(func.count()).select_from(model)).scalar() == 0
