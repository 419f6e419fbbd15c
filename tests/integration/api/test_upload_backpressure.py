"""Uploads that do not wait on ingestion, and back-pressure, on real catalogs (SQLite and
PostgreSQL): one upload request is one catalog transaction however many files it
carries; the ingestion queue is bounded per KB and overall, and beyond it a request is
refused whole with 429 + Retry-After and nothing of it stored; the ingestion status
shows the queue against its bounds, its pace and an ETA."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, update

from api.app import create_app
from core.catalog.models import Document, DocumentRevision, Job, JobStatus, utcnow
from core.errors import Overloaded
from core.kbs import get_kb
from core.types import sha256_hex
from ingest.documents import INGEST_JOB, submit_uploads
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration]


def files(prefix: str, count: int, *, start: int = 0) -> list[tuple[str, tuple[str, bytes, str]]]:
    text = "{} note {}: the pier opens at {}."
    return [
        ("files", (f"{prefix}-{i}.txt", text.format(prefix, i, i).encode(), "text/plain"))
        for i in range(start, start + count)
    ]


def client_for(tmp_path: Path, catalog_url: str, **overrides: Any) -> TestClient:
    settings = make_settings(
        tmp_path / "data", database_url=catalog_url, redaction_enabled=False, **overrides
    )
    return TestClient(create_app(settings, components=SHARED_COMPONENTS))


def stored(client: TestClient) -> dict[str, int]:
    """Documents, revisions and ingestion jobs in the catalog, and blob files on disk."""
    rt = client.app.state.runtime
    with rt.db.session() as s:
        counts = {
            name: s.execute(select(func.count()).select_from(model)).scalar_one()
            for name, model in (("documents", Document), ("revisions", DocumentRevision))
        }
        counts["jobs"] = s.execute(
            select(func.count()).select_from(Job).where(Job.kind == INGEST_JOB)
        ).scalar_one()
    root = rt.settings.blob_dir
    counts["blobs"] = sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0
    return counts


class RevisionCommits:
    """Committed transactions that inserted document revisions: an upload's own writes
    (workers never insert revisions)."""

    def __init__(self, engine: Any) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", lambda conn: conn.info.pop("wrote_revisions", None))

    def _statement(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO DOCUMENT_REVISIONS"):
            conn.info["wrote_revisions"] = True

    def _commit(self, conn: Any) -> None:
        if conn.info.pop("wrote_revisions", False):
            self.count += 1


def error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_a_50_file_upload_is_one_transaction_while_ingestion_runs(tmp_path, catalog_url):
    with client_for(tmp_path, catalog_url, workers=2) as c:
        c.post("/v1/kbs", json={"name": "kb"})
        assert c.post("/v1/kbs/kb/documents", files=files("backlog", 20)).status_code == 202
        deadline = time.monotonic() + 60
        while c.get("/v1/kbs/kb/ingestion").json()["jobs"]["running"] == 0:
            assert time.monotonic() < deadline, "the workers never started ingesting"
            time.sleep(0.05)

        commits = RevisionCommits(c.app.state.runtime.db.engine)
        r = c.post("/v1/kbs/kb/documents", files=files("batch", 50))
        assert r.status_code == 202, r.text
        items = r.json()["documents"]
        assert [i["filename"] for i in items] == [f"batch-{i}.txt" for i in range(50)]
        assert all(
            i["status"] == "pending" and not i["duplicate"] and i["job_id"] and i["revision"] == 1
            for i in items
        )
        assert commits.count == 1, "the 50 files must be stored by one transaction"
        counts = stored(c)
        assert (counts["documents"], counts["revisions"], counts["jobs"]) == (70, 70, 70)

        # The same bytes again: 50 duplicates, nothing written, nothing queued.
        again = c.post("/v1/kbs/kb/documents", files=files("batch", 50)).json()["documents"]
        assert all(i["duplicate"] and i["job_id"] is None for i in again)
        assert [i["document_id"] for i in again] == [i["document_id"] for i in items]
        assert commits.count == 1 and stored(c) == counts


def test_per_file_outcomes_follow_the_files_in_order(tmp_path, catalog_url):
    """Within one request, each file sees the ones before it, as separate uploads would."""
    with client_for(tmp_path, catalog_url, workers=0) as c:
        c.post("/v1/kbs", json={"name": "kb"})
        x, y = b"version x of the harbour rules", b"version y of the harbour rules"
        r = c.post("/v1/kbs/kb/documents", files=[("files", ("a.txt", x)), ("files", ("b.txt", x))])
        a, b = r.json()["documents"]
        assert (a["filename"], a["revision"], a["duplicate"]) == ("a.txt", 1, False)
        # Same bytes as a.txt, sent right after it: a duplicate of a.txt, nothing queued.
        assert b == {**a, "duplicate": True, "job_id": None}

        r = c.post(
            "/v1/kbs/kb/documents",
            files=[("files", ("a.txt", y)), ("files", ("c.txt", x)), ("files", ("d.txt", y))],
        )
        a2, c2, d2 = r.json()["documents"]
        assert (a2["document_id"], a2["revision"], a2["duplicate"]) == (a["document_id"], 2, False)
        # x is no longer anyone's current content once a.txt moved on to y.
        assert (c2["filename"], c2["revision"], c2["duplicate"]) == ("c.txt", 1, False)
        assert d2 == {**a2, "duplicate": True, "job_id": None}
        assert stored(c) == {"documents": 2, "revisions": 3, "jobs": 3, "blobs": 2}
        detail = c.get(f"/v1/kbs/kb/documents/{a['document_id']}").json()
        assert detail["revision"] == 2 and [r["number"] for r in detail["revisions"]] == [1, 2]


def test_a_full_queue_refuses_the_request_with_retry_after(tmp_path, catalog_url):
    with client_for(
        tmp_path, catalog_url, workers=0, ingest_queue_max_per_kb=5, ingest_queue_max=8
    ) as c:
        c.post("/v1/kbs", json={"name": "kb"})
        assert c.post("/v1/kbs/kb/documents", files=files("first", 3)).status_code == 202
        before = stored(c)
        assert before == {"documents": 3, "revisions": 3, "jobs": 3, "blobs": 3}

        r = c.post("/v1/kbs/kb/documents", files=files("second", 3))
        err = error(r, 429)
        assert err["code"] == "overloaded"
        assert "RAGOPS_INGEST_QUEUE_MAX_PER_KB" in err["message"]
        # Nothing finished yet: no pace to estimate from.
        assert r.headers["Retry-After"] == "30"
        assert err["details"] == {
            "setting": "RAGOPS_INGEST_QUEUE_MAX_PER_KB",
            "limit": 5,
            "waiting": 3,
            "requested": 3,
            "retry_after_seconds": 30,
        }
        assert stored(c) == before, "a refused request stores nothing"

        # Unchanged files never count: 3 duplicates + 2 new ones fit exactly.
        r = c.post("/v1/kbs/kb/documents", files=files("first", 3) + files("second", 2))
        assert r.status_code == 202, r.text
        assert [i["duplicate"] for i in r.json()["documents"]] == [True] * 3 + [False] * 2
        status = c.get("/v1/kbs/kb/ingestion").json()["queue"]
        assert (status["queued"], status["running"], status["limit"]) == (5, 0, 5)
        r = c.post("/v1/kbs/kb/documents", files=files("third", 1))
        assert error(r, 429)["details"]["waiting"] == 5

        # The overall bound: 5 + 3 fill it; one more anywhere is refused.
        c.post("/v1/kbs", json={"name": "other"})
        assert c.post("/v1/kbs/other/documents", files=files("o", 3)).status_code == 202
        before = stored(c)
        r = c.post("/v1/kbs/other/documents", files=files("o", 1, start=3))
        err = error(r, 429)
        assert "(RAGOPS_INGEST_QUEUE_MAX)" in err["message"]
        assert err["details"]["limit"] == 8 and err["details"]["waiting"] == 8
        assert stored(c) == before
        other = c.get("/v1/kbs/other/ingestion").json()["queue"]
        assert other["overall"] == {"queued": 8, "running": 0, "limit": 8}

        # More new files than the KB's queue could ever hold: retrying cannot help.
        c.post("/v1/kbs", json={"name": "third"})
        r = c.post("/v1/kbs/third/documents", files=files("big", 6))
        assert "RAGOPS_INGEST_QUEUE_MAX_PER_KB" in error(r, 413)["message"]
        assert stored(c) == before


def test_retry_after_and_eta_follow_recent_throughput(tmp_path, catalog_url):
    with client_for(tmp_path, catalog_url, workers=0, ingest_queue_max_per_kb=5) as c:
        c.post("/v1/kbs", json={"name": "kb"})
        c.post("/v1/kbs/kb/documents", files=files("first", 5))
        rt = c.app.state.runtime
        # One job of the KB finished two minutes ago: the queue drains at ~0.5 per minute.
        with rt.db.session() as s:
            job_id = s.execute(select(Job.id).where(Job.kind == INGEST_JOB).limit(1)).scalar()
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status=JobStatus.SUCCEEDED, finished_at=utcnow() - timedelta(minutes=2))
            )
        queue = c.get("/v1/kbs/kb/ingestion").json()["queue"]
        assert queue["queued"] == 4 and queue["window_seconds"] == 300
        assert queue["documents_per_minute"] == pytest.approx(0.5, abs=0.01)
        assert queue["eta_seconds"] == pytest.approx(4 * 120, rel=0.02)

        # 4 waiting + 3 new is 2 over the limit of 5: about 2 × 120 s.
        r = c.post("/v1/kbs/kb/documents", files=files("second", 3))
        assert r.status_code == 429
        assert 235 <= int(r.headers["Retry-After"]) <= 245

        # An empty queue is due now.
        with rt.db.session() as s:
            s.execute(update(Job).values(status=JobStatus.FAILED, finished_at=utcnow()))
        queue = c.get("/v1/kbs/kb/ingestion").json()["queue"]
        assert (queue["queued"], queue["eta_seconds"]) == (0, 0.0)


class GatedBlobs:
    """The real blob store; `hook` runs once, after the first blob this store writes."""

    def __init__(self, inner: Any, hook: Any) -> None:
        self.inner, self.hook = inner, hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()


def test_a_queue_that_fills_while_blobs_are_written_still_stores_nothing(
    tmp_path, catalog_url, monkeypatch
):
    with client_for(tmp_path, catalog_url, workers=0, ingest_queue_max_per_kb=4) as c:
        c.post("/v1/kbs", json={"name": "kb"})
        rt = c.app.state.runtime
        before = stored(c)
        with rt.db.session() as s:
            kb = get_kb(session=s, name_or_id="kb")

        def another_client_fills_the_queue() -> None:
            with rt.db.session() as s:
                for _ in range(3):
                    rt.jobs.submit(s, kind=INGEST_JOB, payload={"revision_id": "x"}, kb_id=kb.id)

        monkeypatch.setattr(rt, "blobs", GatedBlobs(rt.blobs, another_client_fills_the_queue))
        r = c.post("/v1/kbs/kb/documents", files=files("late", 2))
        assert error(r, 429)["details"]["waiting"] == 3
        after = stored(c)
        assert after["blobs"] == before["blobs"] == 0, "the refused request's bytes are gone"
        assert (after["documents"], after["revisions"]) == (0, 0)


def test_concurrent_uploads_cannot_both_take_the_last_places(tmp_path, catalog_url, monkeypatch):
    """Both requests pass the first look (room for 3 of 5), then write their blobs; the
    transaction decides again under a lock, so only one of them is queued."""
    with client_for(tmp_path, catalog_url, workers=0, ingest_queue_max_per_kb=5) as c:
        c.post("/v1/kbs", json={"name": "kb"})
        rt = c.app.state.runtime
        with rt.db.session() as s:
            kb = get_kb(session=s, name_or_id="kb")
        both_looked = threading.Barrier(2, timeout=30)

        class EachWaits(GatedBlobs):
            def put(self, key: str, data: bytes) -> None:
                self.inner.put(key, data)
                if key in firsts:
                    both_looked.wait()

        docs = {
            name: [(f"{name}-{i}.txt", f"{name} {i}".encode(), "text/plain") for i in range(3)]
            for name in ("left", "right")
        }
        firsts = {sha256_hex(d[0][1]) for d in docs.values()}
        monkeypatch.setattr(rt, "blobs", EachWaits(rt.blobs, None))
        results: dict[str, Any] = {}

        def upload(name: str) -> None:
            try:
                results[name] = submit_uploads(rt, kb=kb, files=docs[name])
            except Overloaded as exc:
                results[name] = exc

        threads = [threading.Thread(target=upload, args=(n,)) for n in docs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        refused = [n for n, v in results.items() if isinstance(v, Overloaded)]
        assert len(results) == 2 and len(refused) == 1, results
        counts = stored(c)
        assert (counts["documents"], counts["jobs"], counts["blobs"]) == (3, 3, 3)
