"""Job dispatch for Celery mode on SQLite and PostgreSQL, without a broker: messages go
out only after COMMIT, a message delivered many times runs its job once, retries are
re-sent with their backoff, and overdue jobs are re-sent by exactly one caller."""

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update

from core.catalog.models import Job, JobStatus, utcnow
from core.celery_app import RUN_JOB_TASK, make_celery, register_tasks, run_job_message
from core.db import Database
from core.dispatch import redispatch_stale
from core.jobs import JobQueue, WorkerPool
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


class RecordingDispatcher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, float]] = []
        self.lock = threading.Lock()

    def send(self, job_id: str, *, countdown: float = 0.0) -> None:
        with self.lock:
            self.sent.append((job_id, countdown))

    def close(self) -> None:
        pass


@pytest.fixture
def queue(catalog_url):
    db = Database(catalog_url)
    db.migrate()
    q = JobQueue(db, lease_seconds=5, backoff_seconds=0.5, max_attempts=3)
    q.dispatcher = RecordingDispatcher()
    yield q
    db.dispose()


def test_message_is_sent_only_after_commit(queue):
    with queue.db.session() as s:
        first = queue.submit(s, kind="work", payload={})
        second = queue.submit(s, kind="work", payload={})
        assert queue.dispatcher.sent == []  # the row is not visible to a worker yet
    assert [job_id for job_id, _ in queue.dispatcher.sent] == [first.id, second.id]

    with pytest.raises(RuntimeError), queue.db.session() as s:
        queue.submit(s, kind="work", payload={})
        raise RuntimeError("caller's transaction fails")
    assert len(queue.dispatcher.sent) == 2  # a rolled-back job is never announced


def test_duplicate_messages_run_the_job_once(queue, tmp_path):
    with queue.db.session() as s:
        job_id = queue.submit(s, kind="work", payload={}).id
    runs: Counter[str] = Counter()

    def handler(payload, ctx):
        runs[ctx.job_id] += 1
        time.sleep(0.3)
        return "done"

    pool = WorkerPool(queue, threads=0)
    pool.register("work", handler)
    # Never connects: calling a task object runs its body in this process.
    app = make_celery(make_settings(tmp_path, celery_broker_url="redis://127.0.0.1:6379/0"))
    register_tasks(app, pool)
    task = app.tasks[RUN_JOB_TASK]

    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda: outcomes.append(task(job_id))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes.append(task(job_id))  # a late redelivery after it finished

    assert runs[job_id] == 1
    assert outcomes.count("ran") == 1
    assert outcomes.count("skipped") >= 1  # the late one found it finished
    with queue.db.session() as s:
        job = s.get(Job, job_id)
    assert (job.status, job.attempts, job.message) == (JobStatus.SUCCEEDED, 1, "done")


def test_retry_is_resent_with_its_backoff_and_waits_for_it(queue):
    with queue.db.session() as s:
        job_id = queue.submit(s, kind="flaky", payload={}).id
    calls = Counter()

    def flaky(payload, ctx):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("transient")
        return "ok"

    pool = WorkerPool(queue, threads=0)
    pool.register("flaky", flaky)
    queue.dispatcher.sent.clear()

    assert run_job_message(pool, job_id) == "ran"  # attempt 1 fails and is re-queued
    assert [(j, round(c, 2)) for j, c in queue.dispatcher.sent] == [(job_id, 0.5)]

    # The retry message arriving before the backoff ends is re-sent, not run early.
    queue.dispatcher.sent.clear()
    assert run_job_message(pool, job_id) == "waiting"
    assert queue.dispatcher.sent[0][0] == job_id and queue.dispatcher.sent[0][1] >= 0.4

    time.sleep(0.6)
    assert run_job_message(pool, job_id) == "ran"
    with queue.db.session() as s:
        job = s.get(Job, job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 2)


def test_overdue_jobs_are_resent_by_one_caller(queue):
    with queue.db.session() as s:
        fresh, stale, abandoned = (queue.submit(s, kind="work", payload={}) for _ in range(3))
    long_ago = utcnow() - timedelta(seconds=120)
    with queue.db.session() as s:
        s.execute(update(Job).where(Job.id == stale.id).values(run_after=long_ago))
        s.execute(
            update(Job)
            .where(Job.id == abandoned.id)
            .values(status=JobStatus.RUNNING, lease_owner="dead", lease_until=long_ago, attempts=1)
        )
    queue.dispatcher.sent.clear()

    results: list[list[str]] = []
    callers = [
        threading.Thread(
            target=lambda: results.append(redispatch_stale(queue, older_than_seconds=30))
        )
        for _ in range(3)
    ]
    for t in callers:
        t.start()
    for t in callers:
        t.join()

    sent = sorted(job_id for job_id, _ in queue.dispatcher.sent)
    assert sent == sorted([stale.id, abandoned.id])  # each once; the fresh job is not overdue
    assert fresh.id not in sent
    # The re-sent messages can be claimed: the bump kept both runnable.
    assert queue.claim_specific(stale.id, "w") is not None
    assert queue.claim_specific(abandoned.id, "w") is not None
    # And nothing is overdue again until another interval passes.
    assert redispatch_stale(queue, older_than_seconds=30) == []
