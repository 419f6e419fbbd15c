"""The scheduler on SQLite and PostgreSQL: one actor at a time through the catalog lease,
takeover when the holder stops, GC queued, stuck work reconciled, jobs persisted."""

import time

import pytest
from sqlalchemy import inspect, select

from api.runtime import Runtime
from core.catalog.models import (
    Document,
    DocumentRevision,
    Job,
    KnowledgeBase,
    RevisionStatus,
)
from core.leases import CatalogLease
from eval.scheduler import SchedulerService
from index.versions import GC_JOB
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = pytest.mark.integration


@pytest.fixture
def rt(tmp_path, catalog_url):
    runtime = Runtime(
        make_settings(
            tmp_path / "data", database_url=catalog_url, workers=0, scheduler_lease_seconds=1
        ),
        components=SHARED_COMPONENTS,
    )
    runtime.db.migrate()
    yield runtime
    runtime.close()


def test_only_one_lease_holder_and_takeover_after_expiry(rt):
    a = CatalogLease(rt.db, "x", ttl_seconds=0.5, owner="a")
    b = CatalogLease(rt.db, "x", ttl_seconds=0.5, owner="b")
    assert a.acquire() and not b.acquire()
    assert a.acquire()  # renewal
    time.sleep(0.6)
    assert b.acquire() and not a.acquire()
    b.release()
    assert a.acquire()


def test_two_schedulers_one_actor(rt):
    first, second = SchedulerService(rt, persistent=False), SchedulerService(rt, persistent=False)
    acted = [(first.tick("gc"), second.tick("gc")) for _ in range(3)]
    assert acted == [(True, False)] * 3
    with rt.db.session() as s:
        gc_jobs = s.execute(select(Job).where(Job.kind == GC_JOB)).scalars().all()
    assert len(gc_jobs) == 1  # one queued GC job; later ticks don't pile up more
    time.sleep(1.1)  # the first scheduler stops renewing: the second takes over
    assert second.tick("gc") and not first.tick("gc")


def test_reconcile_fails_revisions_whose_job_is_gone(rt):
    with rt.db.session() as s:
        kb = KnowledgeBase(name="k", config={})
        s.add(kb)
        s.flush()
        doc = Document(kb_id=kb.id, filename="a.txt")
        s.add(doc)
        s.flush()
        rev = DocumentRevision(
            document_id=doc.id,
            number=1,
            content_sha256="0" * 64,
            size_bytes=1,
            media_type="text/plain",
            status=RevisionStatus.EMBEDDING,
        )
        s.add(rev)
    assert SchedulerService(rt, persistent=False).tick("reconcile")
    with rt.db.session() as s:
        row = s.get(DocumentRevision, rev.id)
    assert row.status == RevisionStatus.FAILED and "ended without finishing" in row.error


def test_job_store_lives_in_the_catalog(rt):
    service = SchedulerService(rt)
    sched = service.build(blocking=False)
    sched.start(paused=True)
    try:
        assert {j["id"] for j in service.jobs()} == {
            "ragops-gc",
            "ragops-reconcile",
            "ragops-sync",
        }
        assert "apscheduler_jobs" in inspect(rt.db.engine).get_table_names()
    finally:
        sched.shutdown(wait=False)
