"""Durable jobs on SQLite and PostgreSQL: exclusive claims, retries with backoff,
permanent failures, and recovery of work whose worker died."""

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import update

from core.catalog.models import Job, JobStatus, utcnow
from core.db import Database
from core.jobs import JobQueue, PermanentJobError, WorkerPool

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(catalog_url):
    db = Database(catalog_url)
    db.migrate()
    yield JobQueue(db, lease_seconds=5, backoff_seconds=0.05, max_attempts=3)
    db.dispose()


def submit(queue, n=1, kind="work"):
    ids = []
    with queue.db.session() as s:
        for i in range(n):
            job = queue.submit(s, kind=kind, payload={"i": i})
            s.flush()
            ids.append(job.id)
    return ids


def wait_all(queue, ids, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with queue.db.session() as s:
            jobs = [s.get(Job, i) for i in ids]
        if all(j.status in (JobStatus.SUCCEEDED, JobStatus.FAILED) for j in jobs):
            return jobs
        time.sleep(0.05)
    raise AssertionError("jobs did not finish in time")


def test_every_job_runs_exactly_once_across_competing_workers(queue):
    ids = submit(queue, 40)
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    def handler(payload, ctx):
        with lock:
            runs[payload["i"]] += 1
        time.sleep(0.01)
        return "ok"

    pools = [WorkerPool(queue, threads=3, poll_seconds=0.02) for _ in range(2)]
    for pool in pools:
        pool.register("work", handler)
        pool.start()
    try:
        jobs = wait_all(queue, ids)
    finally:
        for pool in pools:
            pool.stop()
    assert all(j.status == JobStatus.SUCCEEDED for j in jobs)
    assert runs == Counter({i: 1 for i in range(40)})


def test_transient_failures_retry_with_backoff_then_stop_with_the_reason(queue):
    (job_id,) = submit(queue)
    attempts = []
    final = []

    def handler(payload, ctx):
        attempts.append(time.monotonic())
        raise ConnectionError("database briefly unreachable")

    pool = WorkerPool(queue, threads=1, poll_seconds=0.01)
    pool.register("work", handler, on_final_failure=lambda p, reason: final.append(reason))
    pool.start()
    try:
        (job,) = wait_all(queue, [job_id])
    finally:
        pool.stop()
    assert job.status == JobStatus.FAILED
    assert job.attempts == 3 and len(attempts) == 3
    assert job.error == "database briefly unreachable"
    assert final == ["database briefly unreachable"]
    # Backoff doubles: 0.05 s then 0.1 s between attempts.
    assert attempts[1] - attempts[0] >= 0.05
    assert attempts[2] - attempts[1] >= 0.1


def test_permanent_failure_is_not_retried(queue):
    (job_id,) = submit(queue)
    calls = []

    def handler(payload, ctx):
        calls.append(1)
        raise PermanentJobError("file is not a valid PDF")

    pool = WorkerPool(queue, threads=1, poll_seconds=0.01)
    pool.register("work", handler)
    pool.start()
    try:
        (job,) = wait_all(queue, [job_id])
    finally:
        pool.stop()
    assert (job.status, job.attempts, job.error) == (JobStatus.FAILED, 1, "file is not a valid PDF")
    assert len(calls) == 1


def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(queue):
    (job_id,) = submit(queue)
    first = queue.claim("dead-worker")
    assert first is not None and first.id == job_id
    assert queue.claim("other") is None  # leased: nobody else may take it
    with queue.db.session() as s:  # the dead worker's lease runs out
        s.execute(
            update(Job).where(Job.id == job_id).values(lease_until=utcnow() - timedelta(seconds=1))
        )
    again = queue.claim("survivor")
    assert again is not None and again.id == job_id and again.attempts == 2
    queue.complete(job_id, "dead-worker")  # a late completion from the dead owner is ignored
    with queue.db.session() as s:
        assert s.get(Job, job_id).status == JobStatus.RUNNING
    queue.complete(job_id, "survivor", "done")
    with queue.db.session() as s:
        assert s.get(Job, job_id).status == JobStatus.SUCCEEDED


def test_progress_is_recorded_and_extends_the_lease(queue):
    (job_id,) = submit(queue)
    job = queue.claim("w")
    before = job.lease_until
    time.sleep(0.05)
    queue.report_progress(job_id, "w", 0.5, "embedding")
    with queue.db.session() as s:
        row = s.get(Job, job_id)
    assert (row.progress, row.message) == (0.5, "embedding")
    assert row.lease_until > before


def test_lost_worker_on_last_attempt_fails_the_job_and_records_why(queue):
    (job_id,) = submit(queue)
    recorded = []
    pool = WorkerPool(queue, threads=0)
    pool.register("work", lambda p, ctx: "ok", on_final_failure=lambda p, r: recorded.append(r))
    with queue.db.session() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status=JobStatus.RUNNING,
                attempts=3,
                lease_owner="gone",
                lease_until=utcnow() - timedelta(seconds=1),
            )
        )
    assert queue.claim("w") is None
    with queue.db.session() as s:
        row = s.get(Job, job_id)
    assert row.status == JobStatus.FAILED and "worker lost" in row.error
    assert recorded == [row.error]


def test_batch_handler_gets_many_jobs_and_each_ends_on_its_own(queue):
    """A batch kind: one worker takes several queued jobs at once; each job's outcome is
    recorded as the handler yields it (success, retry, permanent failure), and a job the
    handler never answers fails instead of hanging."""
    ids = submit(queue, 9, kind="batch")
    sizes: list[int] = []
    attempts: Counter[int] = Counter()

    def handler(items):
        sizes.append(len(items))
        for item in items:
            i = item.payload["i"]
            attempts[i] += 1
            if i == 3:
                yield item, PermanentJobError("bad input 3")
            elif i == 4 and attempts[i] == 1:
                yield item, RuntimeError("flaky 4")
            elif i == 5:
                continue  # never answered
            else:
                yield item, f"done {i}"

    failures: dict[int, str] = {}
    pool = WorkerPool(queue, threads=1, poll_seconds=0.02)
    pool.register_batch(
        "batch",
        handler,
        max_batch=4,
        on_final_failure=lambda payload, reason: failures.__setitem__(payload["i"], reason),
    )
    pool.start()
    try:
        jobs = {j.payload["i"]: j for j in wait_all(queue, ids)}
    finally:
        pool.stop()
    assert max(sizes) == 4 and sum(sizes) >= 9  # batches, bounded by max_batch
    assert {i for i, j in jobs.items() if j.status == JobStatus.SUCCEEDED} == {0, 1, 2, 4, 6, 7, 8}
    assert jobs[4].attempts == 2 and jobs[4].message == "done 4"
    assert jobs[3].status == JobStatus.FAILED and jobs[3].attempts == 1
    assert failures[3] == "bad input 3"
    assert jobs[5].status == JobStatus.FAILED and "no outcome" in failures[5]


def test_batches_never_run_a_job_twice_across_competing_workers(queue):
    ids = submit(queue, 60, kind="batch")
    runs: Counter[int] = Counter()
    lock = threading.Lock()

    def handler(items):
        for item in items:
            with lock:
                runs[item.payload["i"]] += 1
            time.sleep(0.005)
            yield item, "ok"

    pools = [WorkerPool(queue, threads=2, poll_seconds=0.02) for _ in range(2)]
    for pool in pools:
        pool.register_batch("batch", handler, max_batch=8)
        pool.start()
    try:
        jobs = wait_all(queue, ids)
    finally:
        for pool in pools:
            pool.stop()
    assert all(j.status == JobStatus.SUCCEEDED for j in jobs)
    assert runs == Counter({i: 1 for i in range(60)})
