"""Scale-out with no shared disk: an API (the real app, in this process, over HTTP via
TestClient, no in-process workers) and two `ragops worker` subprocesses (Celery on
Redis), each with its own data directory, sharing only PostgreSQL (a fresh schema),
Redis and an S3 endpoint (moto's server, `python -m moto.server`, over HTTP).

What it asserts:
- `/readyz` of the API is 200 with `blobs_writable` probing the bucket (and no probe
  object left behind);
- every uploaded document ends `indexed`, each ingest job succeeded on its first attempt
  and ran in exactly one worker (the workers' `ran job <id> as` lines), both took some;
- the raw bytes of every upload are in the bucket, under `<prefix>/<sha256>`, byte for
  byte, and in no data directory: no blob folder has a file, and no file under the API's
  or a worker's data directory contains any upload's bytes;
- vectors: FAISS files live in the data directory of the process that wrote them, so
  each worker's own copy of the live version holds exactly the chunks of the documents it
  ingested, the two are disjoint, and together they hold every chunk row of the catalog
  once.

What it does not check:
- serving vectors across processes: with FAISS the API cannot read what the workers
  wrote (a scale-out deployment needs a Qdrant server, RAGOPS_QDRANT_URL, as
  docker-compose.yml sets; none runs here), so no query goes through the API;
- real object-store behaviour moto does not have: it does not verify Content-MD5 or
  x-amz-checksum-sha256 (S3 and MinIO refuse a mismatch; see test_s3_blobs.py for what
  is checked instead); it is one in-memory process, so there is no replication between
  sites or disks, no throttling (503 SlowDown), no slow or dropped connections, no
  access policy (a missing key is never a 403 here, as it is on S3 without
  s3:ListBucket), and abandoned multipart uploads are never expired; the bucket is
  unversioned (a versioned one would keep deleted uploads, see README); and the uploads
  here are far below the multipart threshold (multipart is covered in test_s3_blobs.py);
- TLS, IAM credentials from the environment or instance roles (keys are passed as
  RAGOPS_BLOB_ACCESS_KEY / RAGOPS_BLOB_SECRET_KEY).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.catalog.models import Chunk, IndexVersion, Job, JobStatus, VersionStatus
from core.config import Settings
from core.db import Database
from index.store import IndexStore
from ingest.documents import INGEST_JOB
from tests.conftest import make_settings
from tests.integration.core.test_s3_blobs import ACCESS, SECRET, MotoServer
from tests.utils.celery_workers import TOPICS, Worker, flushed_redis
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_text

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[3]
# A Redis database no other test uses (test_celery_workers.py has 14); flushed around.
REDIS_URL = os.environ.get("RAGOPS_TEST_SCALEOUT_REDIS_URL", "redis://127.0.0.1:6379/13")
FINAL = {"indexed", "failed", "superseded"}
PREFIX = "uploads"
# Deadlines are generous: CI runs this beside other tests on two cores, and three
# processes load the embedding model, parser and redactor at once.
READY_S, INDEXED_S = 420, 420


@pytest.fixture
def redis_url() -> Iterator[str]:
    with flushed_redis(REDIS_URL) as url:
        yield url


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path / "moto.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def process_settings(
    data_dir: Path, *, database_url: str, broker_url: str, queue: str, blob_url: str
) -> Settings:
    return make_settings(
        data_dir,
        database_url=database_url,
        celery_broker_url=broker_url,
        celery_queue=queue,
        workers=0,
        blob_url=blob_url,
        blob_access_key=ACCESS,
        blob_secret_key=SECRET,
    )


def wait_ready(client: TestClient, deadline: float) -> dict[str, Any]:
    while True:
        r = client.get("/readyz")
        if r.status_code == 200:
            return r.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"the API is not ready in time: {r.text}")
        time.sleep(1)


def wait_indexed(client: TestClient, kb: str, count: int, deadline: float) -> dict[str, str]:
    while True:
        listed = client.get(f"/v1/kbs/{kb}/documents", params={"limit": 100}).json()
        states = {d["filename"]: d["status"] for d in listed["documents"]}
        if len(states) == count and set(states.values()) <= FINAL:
            return states
        if time.monotonic() > deadline:
            raise AssertionError(f"documents not processed in time: {states}")
        time.sleep(1)


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """Files under `root` whose bytes contain any of `needles`."""
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.stat().st_size < 256 * 1024 * 1024:
            data = path.read_bytes()
            if any(n in data for n in needles):
                found.append(str(path))
    return found


def test_api_and_two_workers_share_no_disk(tmp_path, postgres_url, redis_url, moto):
    bucket = moto.new_bucket()
    common = {
        "database_url": postgres_url,
        "broker_url": redis_url,
        # A queue of its own, so no message left over from another run is consumed.
        "queue": f"ragops-test-{uuid.uuid4().hex[:8]}",
        "blob_url": moto.url(bucket, PREFIX),
    }
    api_settings = process_settings(tmp_path / "api", **common)
    worker_settings = [process_settings(tmp_path / f"worker-{i}", **common) for i in range(2)]
    db = Database(postgres_url)
    db.migrate()  # before the workers start: no race for the schema
    workers = [Worker(tmp_path / f"worker-{i}.log", s) for i, s in enumerate(worker_settings)]
    docs = {name: make_text(name.removesuffix(".txt").title(), [s]) for name, s in TOPICS.items()}
    app = create_app(api_settings, components=SHARED_COMPONENTS, background_warm_up=True)
    try:
        with TestClient(app) as client:
            deadline = time.monotonic() + READY_S
            ready = wait_ready(client, deadline)
            assert ready["checks"]["blobs_writable"] is True, ready
            for w in workers:
                w.wait_ready(deadline)

            assert client.post("/v1/kbs", json={"name": "scaleout"}).status_code == 201
            files = [("files", (name, data, "text/plain")) for name, data in docs.items()]
            r = client.post("/v1/kbs/scaleout/documents", files=files)
            assert r.status_code == 202, r.text
            items = r.json()["documents"]
            assert [i["status"] for i in items] == ["pending"] * len(docs), items
            job_to_revision = {i["job_id"]: i["revision_id"] for i in items}

            states = wait_indexed(client, "scaleout", len(docs), time.monotonic() + INDEXED_S)
            assert set(states.values()) == {"indexed"}, states
            kb_id = client.get("/v1/kbs/scaleout").json()["id"]
        for w in workers:
            w.stop()  # their index files are final from here on

        # Each job ran once, in one worker, and both workers took a share.
        ran = [w.ran() for w in workers]
        print(f"\nno shared disk: {len(docs)} documents, jobs per worker {[len(r) for r in ran]}")
        assert ran[0].isdisjoint(ran[1])
        assert ran[0] | ran[1] == set(job_to_revision)
        assert ran[0] and ran[1], [w.output()[-2000:] for w in workers]
        with db.session() as s:
            jobs = s.execute(select(Job).where(Job.kind == INGEST_JOB)).scalars().all()
            assert {(j.id, j.status, j.attempts) for j in jobs} == {
                (job_id, JobStatus.SUCCEEDED, 1) for job_id in job_to_revision
            }
            chunks = dict(s.execute(select(Chunk.id, Chunk.revision_id)).all())
            live = s.execute(
                select(IndexVersion).where(
                    IndexVersion.kb_id == kb_id, IndexVersion.status == VersionStatus.LIVE
                )
            ).scalar_one()
            s.expunge(live)

        # Raw bytes: in the bucket, content-addressed, and on no local disk.
        expected = {f"{PREFIX}/{hashlib.sha256(d).hexdigest()}": d for d in docs.values()}
        s3 = moto.client()
        listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        assert sorted(o["Key"] for o in listed) == sorted(expected), "no probe left either"
        for name, data in expected.items():
            assert s3.get_object(Bucket=bucket, Key=name)["Body"].read() == data
        for settings in [api_settings, *worker_settings]:
            blob_dir = settings.blob_dir
            assert not blob_dir.exists() or not any(p.is_file() for p in blob_dir.rglob("*"))
            assert files_holding(settings.data_dir, list(docs.values())) == []

        # Vectors: each worker's local FAISS copy of the live version holds the chunks
        # of the documents it ingested, nothing else; together, every chunk once.
        assert chunks and set(chunks.values()) == set(job_to_revision.values())
        held = []
        for settings, jobs_ran in zip(worker_settings, ran, strict=True):
            mine = {job_to_revision[j] for j in jobs_ran}
            want = {c for c, rev in chunks.items() if rev in mine}
            index = IndexStore(settings.index_dir, db, compaction="off").reader(live)
            assert index.present(list(chunks)) == want
            assert index.count() == len(want)
            held.append(want)
        assert held[0].isdisjoint(held[1]) and held[0] | held[1] == set(chunks)
    finally:
        for w in workers:
            w.stop()
        db.dispose()
