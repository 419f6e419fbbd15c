"""`load_report` on SQLite and the real PostgreSQL: which run is the default baseline,
which runs make the history, chunk texts and index chunking read from the catalog."""

from datetime import timedelta
from types import SimpleNamespace

import pytest

from core.catalog.models import (
    Chunk,
    Document,
    DocumentRevision,
    IndexVersion,
    JobStatus,
    KnowledgeBase,
    TestCase,
    TestSet,
    VersionStatus,
)
from core.db import Database
from core.errors import Conflict, InvalidInput, NotFound
from eval.report import load_report
from tests.utils.reports import T0, finish, make_result, make_run

pytestmark = pytest.mark.integration


@pytest.fixture
def rt(catalog_url):
    db = Database(catalog_url)
    db.migrate()
    yield SimpleNamespace(db=db)
    db.dispose()


def seed(db) -> None:
    """KB with index v1 (200-token chunks) and v2 (48), test set smoke@1 (2 questions) and
    other@1, and runs in time order: v1, v2 (B), a re-run of B's key, a failed one, v2
    again with another top_k (A), one after A, and one of the other test set."""
    with db.session() as s:
        kb = KnowledgeBase(id="kb1", name="docs")
        s.add(kb)
        s.flush()
        doc = Document(id="doc1", kb_id=kb.id, filename="a.md")
        s.add(doc)
        s.flush()
        rev = DocumentRevision(
            id="rev1",
            document_id=doc.id,
            number=1,
            content_sha256="0" * 64,
            size_bytes=3,
            media_type="text/markdown",
        )
        s.add(rev)
        s.flush()
        for i, text in enumerate(["first passage", "second passage"]):
            s.add(
                Chunk(
                    id=f"c{i}",
                    kb_id=kb.id,
                    document_id=doc.id,
                    revision_id=rev.id,
                    position=i,
                    text=text,
                    text_hash=str(i) * 64,
                    token_count=2,
                )
            )
        for number, size in [(1, 200), (2, 48)]:
            s.add(
                IndexVersion(
                    kb_id=kb.id,
                    number=number,
                    status=VersionStatus.READY,
                    embedding_model="m",
                    dimension=3,
                    config={"chunking": {"chunk_size": size, "chunk_overlap": 8}},
                    config_hash=str(number) * 64,
                )
            )
        s.add(TestSet(id="ts1", name="smoke", version=1, case_count=2))
        s.add(TestSet(id="ts2", name="other", version=1, case_count=1))
        s.flush()
        s.add(TestCase(id="case-1", testset_id="ts1", position=1, question="q1"))
        s.add(TestCase(id="case-2", testset_id="ts1", position=2, question="q2"))
        s.flush()

        def run(run_id, version, hours, key="", status=JobStatus.SUCCEEDED, **kw):
            r = make_run(
                run_id, index_version=version, created_at=T0 + timedelta(hours=hours), **kw
            )
            r.key_hash = key or f"key-{run_id}"
            r.status = status
            scores = [{"mrr": 0.5 + hours / 100}, {"mrr": 0.2}]
            results = [
                make_result(r, pos, f"q{pos}", sc, chunk_ids=["c0", "gone"])
                for pos, sc in enumerate(scores, 1)
            ]
            for res in results:
                res.id = f"{run_id}-{res.position}"
            finish(r, results)
            if status != JobStatus.SUCCEEDED:
                r.aggregate = {}
            s.add(r)
            s.flush()
            if kw.get("testset_id", "ts1") == "ts1":
                s.add_all(results)
                s.flush()
            return r

        run("v1", 1, 0)
        run("b", 2, 1, key="key-b")
        run("rerun", 2, 2, key="key-a")  # same key as A: noise, not a baseline
        run("failed", 1, 3, status=JobStatus.FAILED)
        run("a", 2, 4, key="key-a")
        run("later", 1, 5)
        run("othertest", 1, 6, testset_id="ts2")


def test_default_baseline_history_and_contexts(rt):
    seed(rt.db)
    report = load_report(rt, "a")
    assert report.baseline is not None and report.baseline.id == "b"
    assert report.baseline_source == "latest earlier run"
    # history: every succeeded run of the KB + test set version, oldest first
    assert [(h.run_id, h.label) for h in report.history] == [
        ("v1", ""),
        ("b", "B"),
        ("rerun", ""),
        ("a", "A"),
        ("later", ""),
    ]
    assert report.run.chunking == {"chunk_size": 48, "chunk_overlap": 8}
    contexts = report.rows[0].a.contexts
    assert [(c.chunk_id, c.text) for c in contexts] == [("c0", "first passage"), ("gone", None)]
    assert report.rows[0].regression is not None

    report = load_report(rt, "a", compare="v1")
    assert report.baseline.id == "v1" and report.baseline.chunking["chunk_size"] == 200
    assert report.baseline_source == "requested"
    assert load_report(rt, "v1").baseline is None  # nothing earlier
    assert len(load_report(rt, "a", history_limit=2).history) == 3  # newest 2, plus B


def test_load_report_refuses_what_it_cannot_pair(rt):
    seed(rt.db)
    with pytest.raises(InvalidInput, match="scored test set smoke@1 but run othertest"):
        load_report(rt, "a", compare="othertest")
    with pytest.raises(Conflict, match="compare run failed failed"):
        load_report(rt, "a", compare="failed")
    with pytest.raises(Conflict, match="eval run failed failed"):
        load_report(rt, "failed")
    with pytest.raises(NotFound, match="compare run 'zzz' not found"):
        load_report(rt, "a", compare="zzz")
