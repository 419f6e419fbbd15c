"""Resilience through the API: reprocess, ingestion status with dead letters and
throughput, per-request limits, and the detected language of each document."""

import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import make_settings
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_docx, make_pdf

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def files(*items):
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


@pytest.fixture
def client(tmp_path):
    settings = make_settings(tmp_path / "data", max_request_bytes=50_000, job_max_attempts=1)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        c.post("/v1/kbs", json={"name": "kb"})
        yield c


def test_status_reprocess_and_language(client):
    r = client.post(
        "/v1/kbs/kb/documents",
        files=files(
            (
                "guide.docx",
                make_docx(
                    "Guía",
                    [
                        "La biblioteca municipal abre de lunes a viernes "
                        "de nueve a ocho y los sábados por la mañana."
                    ],
                ),
            ),
            (
                "notes.txt",
                "Путеводитель по городу: музей открыт каждый день, кроме понедельника.".encode(),
            ),
            ("broken.pdf", make_pdf(["cut off"])[:150]),
        ),
    )
    assert r.status_code == 202
    docs = wait_for_documents(client, "kb", expected=3)
    assert docs["guide.docx"]["language"] == "es" and docs["notes.txt"]["language"] == "ru"

    status = client.get("/v1/kbs/kb/ingestion").json()
    assert status["counts"] == {"indexed": 2, "failed": 1} and status["total"] == 3
    assert status["jobs"]["dead_letter"] == 1 and status["jobs"]["queued"] == 0
    assert status["throughput"]["last_5_minutes"]["documents"] == 2
    assert status["oldest_pending"] is None
    assert [f["filename"] for f in status["recent_failures"]] == ["broken.pdf"]
    assert "PDF" in status["recent_failures"][0]["error"]

    # Reprocessing an indexed document keeps serving it and re-indexes it in place.
    guide = docs["guide.docx"]
    before = client.post("/v1/kbs/kb/retrieve", json={"query": "¿cuándo abre la biblioteca?"})
    r = client.post(f"/v1/kbs/kb/documents/{guide['id']}/reprocess")
    assert r.status_code == 202 and r.json()["job_id"]
    deadline = time.monotonic() + 60
    while (
        client.get("/v1/kbs/kb/ingestion").json()["jobs"]["queued"]
        + client.get("/v1/kbs/kb/ingestion").json()["jobs"]["running"]
    ):
        assert time.monotonic() < deadline
        after = client.post("/v1/kbs/kb/retrieve", json={"query": "¿cuándo abre la biblioteca?"})
        assert after.json()["results"], "the document must keep serving while reprocessed"
        time.sleep(0.1)
    after = client.post("/v1/kbs/kb/retrieve", json={"query": "¿cuándo abre la biblioteca?"})
    assert [h["chunk_id"] for h in after.json()["results"]] == [
        h["chunk_id"] for h in before.json()["results"]
    ]

    # A document that fails again stays failed with its reason; nothing else changes.
    broken = docs["broken.pdf"]
    assert client.post(f"/v1/kbs/kb/documents/{broken['id']}/reprocess").status_code == 202
    docs = wait_for_documents(client, "kb", expected=3)
    assert docs["broken.pdf"]["status"] == "failed" and "PDF" in docs["broken.pdf"]["error"]
    assert docs["guide.docx"]["status"] == "indexed"
    r = client.post("/v1/kbs/kb/documents/nope/reprocess")
    assert r.status_code == 404


def test_request_size_limit_and_busy_reprocess(tmp_path):
    settings = make_settings(tmp_path / "data", max_request_bytes=50_000, workers=0)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        c.post("/v1/kbs", json={"name": "kb"})
        r = c.post(
            "/v1/kbs/kb/documents",
            files=files(("a.txt", b"alpha " * 5000), ("b.txt", b"beta " * 6000)),
        )
        assert r.status_code == 413 and "RAGOPS_MAX_REQUEST_BYTES" in r.json()["error"]["message"]
        r = c.post("/v1/kbs/kb/documents", files=files(("a.txt", b"alpha beta gamma")))
        doc_id = r.json()["documents"][0]["document_id"]
        status = c.get("/v1/kbs/kb/ingestion").json()
        assert status["jobs"]["queued"] == 1 and status["oldest_pending"]["status"] == "pending"
        r = c.post(f"/v1/kbs/kb/documents/{doc_id}/reprocess")
        assert r.status_code == 409 and "already being processed" in r.json()["error"]["message"]
