"""Scale-out mode for real: `ragops worker` subprocesses on Redis (and RabbitMQ) run the
ingestion jobs an API-like process submits, each exactly once even when every message is
delivered twice, and the shared FAISS index ends up with no duplicate vectors."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api.runtime import Runtime
from core.catalog.models import (
    Chunk,
    DocumentRevision,
    IndexVersion,
    Job,
    JobStatus,
    KnowledgeBase,
    VersionStatus,
)
from core.config import Settings
from ingest.documents import INGEST_JOB, check_upload, submit_upload
from ingest.knowledge_bases import create_kb
from retrieval.search import retrieve
from tests.conftest import make_settings, need_service
from tests.utils.celery_workers import TOPICS, Worker, flushed_redis, wait_logged
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_text

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
# A Redis database no other test uses; flushed before and after.
REDIS_URL = os.environ.get("RAGOPS_TEST_CELERY_REDIS_URL", "redis://127.0.0.1:6379/14")
AMQP_URL = os.environ.get("RAGOPS_TEST_CELERY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
FINAL = {"indexed", "failed", "superseded"}


@pytest.fixture
def redis_url() -> Iterator[str]:
    with flushed_redis(REDIS_URL) as url:
        yield url


@pytest.fixture
def amqp_url() -> str:
    from kombu import Connection

    try:
        with Connection(AMQP_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001
        need_service("RabbitMQ", f"{AMQP_URL}: {exc.__class__.__name__}: {exc}")
    return AMQP_URL


def celery_settings(tmp_path: Path, database_url: str, broker_url: str) -> Settings:
    return make_settings(
        tmp_path / "data",
        database_url=database_url,
        celery_broker_url=broker_url,
        # A queue of its own, so no message left over from another run is consumed.
        celery_queue=f"ragops-test-{uuid.uuid4().hex[:8]}",
        workers=0,
    )


def upload(
    rt: Runtime, kb: KnowledgeBase, docs: dict[str, str], *, duplicate: bool = False
) -> dict[str, str]:
    """Submit text documents (with `duplicate`, each job's message is sent twice, the
    second right behind the first); returns job id -> revision id."""
    jobs: dict[str, str] = {}
    for name, sentence in docs.items():
        data = make_text(name.removesuffix(".txt").title(), [sentence])
        media_type = check_upload(name, data, max_bytes=rt.settings.max_file_bytes)
        outcome = submit_upload(rt, kb=kb, filename=name, data=data, media_type=media_type)
        assert outcome.job_id is not None
        if duplicate:
            assert rt.jobs.dispatch(outcome.job_id)
        jobs[outcome.job_id] = outcome.revision_id
    return jobs


def wait_final(rt: Runtime, revision_ids: list[str], timeout: float = 150) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        with rt.db.session() as s:
            rows = s.execute(
                select(DocumentRevision.id, DocumentRevision.status).where(
                    DocumentRevision.id.in_(revision_ids)
                )
            ).all()
        states = dict(rows)
        if all(states.get(r) in FINAL for r in revision_ids):
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"revisions not processed in {timeout}s: {states}")
        time.sleep(0.3)


def test_two_workers_index_every_document_exactly_once(tmp_path, postgres_url, redis_url):
    settings = celery_settings(tmp_path, postgres_url, redis_url)
    rt = Runtime(settings, components=SHARED_COMPONENTS)
    rt.db.migrate()  # before the workers start, so they never race to create the schema
    workers = [Worker(tmp_path / f"worker-{i}.log", settings) for i in range(2)]
    try:
        rt.start(workers=False, warm_ingest=False)  # loads the model while the workers do
        for w in workers:
            w.wait_ready(time.monotonic() + 120)
        kb = create_kb(rt, name="scale")
        t0 = time.monotonic()
        jobs = upload(rt, kb, TOPICS, duplicate=True)
        states = wait_final(rt, list(jobs.values()))
        elapsed = time.monotonic() - t0
        ran = wait_logged(workers, set(jobs))
        shares = [len(r) for r in ran]
        print(f"\ncelery: {len(jobs)} documents in {elapsed:.1f}s, jobs per worker {shares}")

        assert set(states.values()) == {"indexed"}, states
        with rt.db.session() as s:
            rows = s.execute(select(Job).where(Job.kind == INGEST_JOB)).scalars().all()
            chunk_counts = s.execute(
                select(func.sum(DocumentRevision.chunk_count)).where(
                    DocumentRevision.id.in_(list(jobs.values()))
                )
            ).scalar_one()
            chunk_rows = s.execute(select(func.count()).select_from(Chunk)).scalar_one()
            live = s.execute(
                select(IndexVersion).where(
                    IndexVersion.kb_id == kb.id, IndexVersion.status == VersionStatus.LIVE
                )
            ).scalar_one()
        assert {(j.id, j.status, j.attempts) for j in rows} == {
            (job_id, JobStatus.SUCCEEDED, 1) for job_id in jobs
        }
        # Each job ran in exactly one worker, and both workers took a share.
        assert ran[0].isdisjoint(ran[1])
        assert ran[0] | ran[1] == set(jobs)
        assert ran[0] and ran[1], [w.output()[-2000:] for w in workers]

        assert chunk_counts == chunk_rows > 0
        assert rt.indexes.reader(live).count() == chunk_counts  # no vector indexed twice
        hit = retrieve(rt, kb=kb, query="how are espresso shots brewed?", top_k=1).results[0]
        assert hit.filename == "espresso.txt"
    finally:
        for w in workers:
            w.stop()
        rt.close()


def test_rabbitmq_worker_runs_a_job(tmp_path, postgres_url, amqp_url):
    settings = celery_settings(tmp_path, postgres_url, amqp_url)
    rt = Runtime(settings, components=SHARED_COMPONENTS)
    rt.db.migrate()
    worker = Worker(tmp_path / "worker.log", settings)
    try:
        kb = create_kb(rt, name="rabbit")  # loads the model in this process
        jobs = upload(rt, kb, {"kelp.txt": TOPICS["kelp.txt"]})
        worker.wait_ready(time.monotonic() + 120)
        states = wait_final(rt, list(jobs.values()), timeout=120)
        assert set(states.values()) == {"indexed"}, worker.output()[-2000:]
        assert wait_logged([worker], set(jobs)) == [set(jobs)]
        with rt.db.session() as s:
            job = s.get(Job, next(iter(jobs)))
        assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    finally:
        worker.stop()
        if rt.jobs.dispatcher is not None:
            from core.dispatch import CeleryDispatcher

            assert isinstance(rt.jobs.dispatcher, CeleryDispatcher)
            with rt.jobs.dispatcher.app.connection_for_write() as conn:
                conn.default_channel.queue_delete(settings.celery_queue)
        rt.close()
