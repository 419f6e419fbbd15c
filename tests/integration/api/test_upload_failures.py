"""Uploads are all or nothing per file, on the real blob store and real catalogs: a file
whose bytes cannot be written is reported `not_stored` with its reason while the others
are stored and queued; storage that fails for every file, or a catalog that cannot be
written, answers 503 with Retry-After and stores nothing; no blob is left behind.

The faults are real file-system and database ones: a regular file where a blob shard
directory (or the whole blob directory) must go, so the store's mkdir fails (this works
as root too, where a chmod would not), and another connection holding SQLite's write
lock."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from api.app import create_app
from core.catalog.models import Document, DocumentRevision, Job
from core.types import sha256_hex
from ingest.documents import INGEST_JOB
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration]


def client_for(tmp_path: Path, catalog_url: str = "") -> TestClient:
    settings = make_settings(
        tmp_path / "data", database_url=catalog_url, redaction_enabled=False, workers=0
    )
    return TestClient(create_app(settings, components=SHARED_COMPONENTS))


def texts(count: int) -> list[bytes]:
    """Distinct notes whose blobs go to distinct shard directories."""
    found: dict[str, bytes] = {}
    n = 0
    while len(found) < count:
        data = f"harbour note {n}: the pier opens at {n % 24} o'clock.".encode()
        found.setdefault(sha256_hex(data)[:2], data)
        n += 1
    return list(found.values())


def block_shard(client: TestClient, data: bytes) -> Path:
    """A regular file where this content's shard directory must go: its blob cannot be
    written (mkdir fails), while other blobs can."""
    root = client.app.state.runtime.settings.blob_dir
    root.mkdir(parents=True, exist_ok=True)
    blocker = root / sha256_hex(data)[:2]
    blocker.write_bytes(b"")
    return blocker


def blobs(client: TestClient) -> set[str]:
    """Names of the files in the blob store's shard directories (temp files included)."""
    root = client.app.state.runtime.settings.blob_dir
    return {p.name for p in root.glob("*/*") if p.is_file()} if root.is_dir() else set()


def stored(client: TestClient) -> dict[str, Any]:
    rt = client.app.state.runtime
    with rt.db.session() as s:
        return {
            "documents": sorted(s.execute(select(Document.filename)).scalars()),
            "revisions": s.execute(select(func.count()).select_from(DocumentRevision)).scalar(),
            "jobs": s.execute(
                select(func.count()).select_from(Job).where(Job.kind == INGEST_JOB)
            ).scalar(),
        }


def post(client: TestClient, named: list[tuple[str, bytes]]) -> Any:
    files = [("files", (name, data, "text/plain")) for name, data in named]
    return client.post("/v1/kbs/kb/documents", files=files)


def test_a_file_that_cannot_be_stored_fails_alone(tmp_path, catalog_url):
    a, b, c, a2 = texts(4)
    with client_for(tmp_path, catalog_url) as client:
        assert client.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        blocker = block_shard(client, b)

        r = post(client, [("a.txt", a), ("b.txt", b), ("c.txt", c)])
        assert r.status_code == 202, r.text
        body = r.json()
        items = body["documents"]
        assert [i["filename"] for i in items] == ["a.txt", "b.txt", "c.txt"]
        assert [i["status"] for i in items] == ["pending", "not_stored", "pending"]
        assert items[0]["job_id"] and items[2]["job_id"]
        failed = items[1]
        assert failed["error"]["code"] == "unavailable"
        assert failed["error"]["message"].startswith("b.txt: could not be stored")
        assert failed["document_id"] is None and failed["job_id"] is None
        assert not failed["duplicate"] and body["not_stored"] == 1
        assert items[0]["error"] is None

        assert stored(client) == {"documents": ["a.txt", "c.txt"], "revisions": 2, "jobs": 2}
        assert blobs(client) == {sha256_hex(a), sha256_hex(c)}, "no blob (or temp) for b.txt"
        listed = client.get("/v1/kbs/kb/documents").json()
        assert listed["total"] == 2

        # Storage back: sending the failed file again stores it.
        blocker.unlink()
        again = post(client, [("b.txt", b)]).json()["documents"][0]
        assert again["status"] == "pending" and again["revision"] == 1 and again["job_id"]

        # A new version whose bytes cannot be written: 503, the document keeps revision 1.
        block_shard(client, a2)
        r = post(client, [("a.txt", a2)])
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "30"
        doc = client.get(f"/v1/kbs/kb/documents/{items[0]['document_id']}").json()
        assert [(v["number"], v["content_sha256"]) for v in doc["revisions"]] == [
            (1, sha256_hex(a))
        ]
        assert stored(client)["revisions"] == 3
        assert sha256_hex(a2) not in blobs(client)


def test_storage_down_for_every_file_is_503_and_stores_nothing(tmp_path):
    with client_for(tmp_path) as client:
        assert client.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        root = client.app.state.runtime.settings.blob_dir
        shutil.rmtree(root, ignore_errors=True)
        root.write_bytes(b"")  # the blob directory is a file: nothing can be written

        r = post(client, [(f"n{i}.txt", data) for i, data in enumerate(texts(3))])
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "30"
        error = r.json()["error"]
        assert error["code"] == "unavailable"
        assert "blob store could not be written" in error["message"]
        assert "nothing of this upload was stored" in error["message"]
        assert stored(client) == {"documents": [], "revisions": 0, "jobs": 0}


def test_a_catalog_that_cannot_be_written_stores_nothing(tmp_path):
    """SQLite's write lock held elsewhere: the upload's transaction cannot start. The
    app's connections wait 0.3 s for the lock here instead of the configured 30 s."""
    with client_for(tmp_path) as client:
        assert client.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        rt = client.app.state.runtime

        @event.listens_for(rt.db.engine, "connect")
        def _short_wait(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA busy_timeout=300")

        rt.db.engine.dispose()
        holder = sqlite3.connect(rt.settings.data_dir / "catalog.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            r = post(client, [(f"n{i}.txt", data) for i, data in enumerate(texts(2))])
        finally:
            holder.rollback()
            holder.close()
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "30"
        message = r.json()["error"]["message"]
        assert "catalog could not be written (database is locked)" in message
        assert stored(client) == {"documents": [], "revisions": 0, "jobs": 0}
        assert blobs(client) == set(), "the blobs written before the catalog failed are gone"
