"""The catalog functions the routes call instead of writing SQL themselves, on a real
catalog (SQLite and PostgreSQL), and the public bodies validated from their rows."""

from __future__ import annotations

import pytest

from api.answer_schemas import AnswerPublic, AnswerSettingsPublic
from api.schemas import DocumentPublic, DocumentSummary, KnowledgeBasePublic
from core.catalog.models import (
    Answer,
    Document,
    DocumentRevision,
    IndexVersion,
    KnowledgeBase,
    VersionStatus,
)
from core.db import Database
from core.errors import InvalidInput, NotFound
from core.kbs import kb_name, kb_names, kb_summaries
from index.versions import queryable_numbers
from ingest.config import CleaningConfig
from ingest.documents import get_document, list_documents, list_revisions
from retrieval import answers

pytestmark = pytest.mark.integration

CONFIG = {
    "chunking": {"chunk_size": 64, "chunk_overlap": 8},
    "redaction": {"enabled": False},
    "embedding_model": "all-MiniLM-L6-v2",
}


@pytest.fixture
def db(catalog_url: str):
    database = Database(catalog_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def kb(db: Database) -> KnowledgeBase:
    with db.session() as s:
        row = KnowledgeBase(name="handbook", config=CONFIG)
        s.add(row)
        s.flush()
        for number, status in ((1, VersionStatus.RETIRED), (2, VersionStatus.LIVE)):
            s.add(
                IndexVersion(
                    kb_id=row.id,
                    number=number,
                    status=status,
                    embedding_model="m",
                    dimension=3,
                    config_hash="h",
                )
            )
        s.add(KnowledgeBase(name="empty", config=CONFIG))
    return row


def add_document(db: Database, kb: KnowledgeBase, filename: str, *, status: str | None) -> str:
    with db.session() as s:
        doc = Document(kb_id=kb.id, filename=filename, metadata_={"team": "hr"})
        s.add(doc)
        s.flush()
        for number in (1, 2) if status else ():
            rev = DocumentRevision(
                document_id=doc.id,
                number=number,
                content_sha256=f"{filename}{number}",
                size_bytes=10,
                media_type="text/plain",
                status=status,
                report={"language": "en"} if number == 2 else {},
                chunk_count=3,
            )
            s.add(rev)
            s.flush()
            doc.current_revision_id = rev.id
        return doc.id


def test_kb_summaries(db, kb):
    add_document(db, kb, "a.txt", status="indexed")
    with db.session() as s:
        rows = kb_summaries(session=s)
        assert [(r.name, r.live_version, r.document_count) for r in rows] == [
            ("empty", None, 0),
            ("handbook", 2, 1),
        ]
        (one,) = kb_summaries(session=s, kb_id=kb.id)
        assert kb_names(session=s) == {r.id: r.name for r in rows}
        assert kb_name(session=s, kb_id=kb.id) == "handbook"
        assert kb_name(session=s, kb_id=None) is None
    public = KnowledgeBasePublic.model_validate(one, from_attributes=True).model_dump()
    # A row from before cleaning settings existed gets the defaults.
    assert public["cleaning"] == CleaningConfig().model_dump()
    assert public["chunking"] == CONFIG["chunking"] and public["reranker"] is None
    assert (public["live_version"], public["document_count"]) == (2, 1)


def test_queryable_numbers(db, kb):
    with db.session() as s:
        assert queryable_numbers(session=s) == [(kb.id, 2)]


def test_documents(db, kb):
    add_document(db, kb, "b.txt", status="failed")
    add_document(db, kb, "a.txt", status=None)  # no revision yet
    with db.session() as s:
        rows = list_documents(session=s, kb=kb)
        assert [(r.filename, r.status, r.revision) for r in rows] == [
            ("a.txt", None, None),
            ("b.txt", "failed", 2),
        ]
        assert [r.filename for r in list_documents(session=s, kb=kb, status="failed")] == ["b.txt"]
        assert [r.filename for r in list_documents(session=s, kb=kb, limit=1, offset=1)] == [
            "b.txt"
        ]
        summary = DocumentSummary.model_validate(rows[0], from_attributes=True)
        assert summary.model_dump(exclude={"id", "updated_at"}) == {
            "filename": "a.txt",
            "status": "unknown",
            "error": None,
            "language": None,
            "revision": None,
            "media_type": None,
            "redaction": None,
            "chunk_count": 0,
            "metadata": {"team": "hr"},
        }
        row = get_document(session=s, kb=kb, document_id=rows[1].id)
        detail = DocumentPublic.from_row(
            row, revisions=list_revisions(session=s, document_id=row.id)
        )
        assert (detail.language, detail.revision) == ("en", 2)
        assert [r.number for r in detail.revisions] == [1, 2]
        with pytest.raises(NotFound, match="document 'nope' not found in knowledge base"):
            get_document(session=s, kb=kb, document_id="nope")


def test_answers_feedback_and_defaults(db, kb):
    with db.session() as s:
        row = Answer(
            kb_id=kb.id,
            query="q",
            answer="a",
            generator="extractive",
            prompt_name="default",
            prompt_version=1,
        )
        s.add(row)
        s.flush()
        answer_id = row.id
    with db.session() as s:
        answers.add_feedback(session=s, answer_id=answer_id, rating=-1, correction="b")
        with pytest.raises(NotFound, match="answer 'nope' not found"):
            answers.add_feedback(session=s, answer_id="nope", rating=1)
    with db.session() as s:
        answer = answers.get_answer(session=s, answer_id=answer_id)
        public = AnswerPublic.from_row(
            answer,
            kb="handbook",
            feedback=answers.list_feedback(session=s, answer_id=answer_id),
        )
        assert public.prompt.model_dump() == {"name": "default", "version": 1}
        assert [(f.rating, f.correction) for f in public.feedback] == [(-1, "b")]

        def defaults() -> dict:
            found = answers.answer_defaults(session=s, kb_id=kb.id, server_generator="local")
            return AnswerSettingsPublic.model_validate(found, from_attributes=True).model_dump()

        assert defaults() == {
            "generator": "local",
            "generator_source": "server",
            "prompt": {"name": "default", "version": None},
        }
        answers.set_answer_defaults(
            session=s, kb_id=kb.id, generator="extractive", prompt="default@1"
        )
        assert defaults() == {
            "generator": "extractive",
            "generator_source": "kb",
            "prompt": {"name": "default", "version": 1},
        }
        answers.set_answer_defaults(session=s, kb_id=kb.id, generator="")
        assert defaults()["generator_source"] == "server"
        with pytest.raises(InvalidInput, match="unknown generator"):
            answers.set_answer_defaults(session=s, kb_id=kb.id, generator="nope")
        with pytest.raises(NotFound, match="prompt 'missing' not found"):
            answers.set_answer_defaults(session=s, kb_id=kb.id, prompt="missing")
