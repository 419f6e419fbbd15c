"""Index version snapshots through the API, on SQLite and PostgreSQL: export a Qdrant
Edge version, list and download it, restore it into its KB (another KB: 422)
(a ready version that answers /retrieve, dense and hybrid, with the source's top hits
once pinned or promoted), refuse another model (422), FAISS versions (409) and unknown
ids (404); the CLI snapshots and restores from a file."""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as cli_app
from api.cli import helpers as cli_helpers
from api.components import Components
from tests.conftest import make_settings
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_md

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "all-MiniLM-L6-v2"
DOCS = {
    "rivers.md": make_md(
        "Rivers",
        [
            "The Danube flows through ten countries before it reaches the Black Sea.",
            "Salmon swim upstream in autumn to spawn in the gravel beds of cold rivers.",
        ],
    ),
    "invoices.md": make_md(
        "Invoices",
        [
            "An invoice must state the VAT number of the supplier and the due date.",
            "Late payment of an invoice incurs interest at the statutory rate.",
        ],
    ),
    "glaciers.md": make_md(
        "Glaciers",
        [
            "Glaciers carve U-shaped valleys as they move slowly downhill.",
            "Meltwater from glaciers feeds many alpine lakes in summer.",
        ],
    ),
}
QUERIES = ["Where does the Danube end?", "What must an invoice contain?", "How do glaciers move?"]


@pytest.fixture
def settings(tmp_path, catalog_url):
    return make_settings(
        tmp_path / "data",
        database_url=catalog_url,
        redaction_enabled=False,
        embedding_model=MODEL,
        index_backend="qdrant",
    )


@contextmanager
def loaded(settings, components=SHARED_COMPONENTS):
    """The app over `settings` with KB `src` holding DOCS in its (Qdrant Edge) version 1."""
    with TestClient(create_app(settings, components=components)) as c:
        assert c.post("/v1/kbs", json={"name": "src"}).status_code == 201
        files = [("files", (name, data)) for name, data in DOCS.items()]
        assert c.post("/v1/kbs/src/documents", files=files).status_code == 202
        wait_for_documents(c, "src", expected=len(DOCS))
        yield c


@pytest.fixture
def client(settings):
    with loaded(settings) as c:
        yield c


def hits(client, kb, query, **extra):
    r = client.post(f"/v1/kbs/{kb}/retrieve", json={"query": query, "top_k": 3, **extra})
    assert r.status_code == 200, r.text
    body = r.json()
    return body["index_version"], [h["chunk_id"] for h in body["results"]]


def test_export_list_download_restore_and_retrieve(client):
    c = client
    assert c.get("/v1/kbs/src/versions/1").json()["engine"] == "qdrant-edge"
    r = c.post("/v1/kbs/src/versions/1/snapshots")
    assert r.status_code == 201, r.text
    snap = r.json()
    assert (snap["kb"], snap["version"], snap["engine"]) == ("src", 1, "qdrant-edge")
    assert snap["embedding_model"] == MODEL and snap["dimension"] == 384 and snap["lexical"]
    assert snap["point_count"] == c.get("/v1/kbs/src/versions/1").json()["vector_count"] > 0

    listing = c.get("/v1/kbs/src/snapshots").json()["snapshots"]
    assert [s["id"] for s in listing] == [snap["id"]]
    assert c.get(f"/v1/kbs/src/snapshots/{snap['id']}").json()["sha256"] == snap["sha256"]
    download = c.get(f"/v1/kbs/src/snapshots/{snap['id']}/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-tar"
    assert hashlib.sha256(download.content).hexdigest() == snap["sha256"]
    assert len(download.content) == snap["size_bytes"]

    # Another KB, even with the same model, is refused: the points cite src's documents.
    assert c.post("/v1/kbs", json={"name": "dst"}).status_code == 201
    r = c.post("/v1/kbs/dst/versions/restore", json={"snapshot_id": snap["id"]})
    assert r.status_code == 422, r.text
    assert "restores only into it" in r.json()["error"]["message"]
    assert c.get("/v1/kbs/dst/versions").json()["versions"] == []

    # Into its own KB: a new ready version, not live, answering as version 1 does.
    r = c.post("/v1/kbs/src/versions/restore", json={"snapshot_id": snap["id"]})
    assert r.status_code == 201, r.text
    restored = r.json()
    assert (restored["number"], restored["status"], restored["engine"]) == (
        2,
        "ready",
        "qdrant-edge",
    )
    origin = restored["index_params"]["restored_from"]
    assert (origin["snapshot_id"], origin["kb"], origin["version"]) == (snap["id"], "src", 1)
    assert restored["vector_count"] == snap["point_count"]
    assert c.get("/v1/kbs/src/versions").json()["live_version"] == 1

    expected = {}
    for query in QUERIES:
        expected[query, None] = hits(c, "src", query)[1]  # the default mode, on live v1
        for mode in ("dense", "hybrid"):
            _, expected[query, mode] = hits(c, "src", query, mode=mode, index_version=1)
            assert expected[query, mode]
            assert hits(c, "src", query, mode=mode, index_version=2) == (2, expected[query, mode])
    assert c.post("/v1/kbs/src/versions/2/promote").status_code == 200
    for query in QUERIES:
        assert hits(c, "src", query) == (2, expected[query, None])

    record = c.get(f"/v1/kbs/src/snapshots/{snap['id']}").json()
    src_id = c.get("/v1/kbs/src").json()["id"]
    assert [(r["kb_id"], r["version_number"]) for r in record["restored_into"]] == [(src_id, 2)]


def test_refusals(client):
    c = client
    snap = c.post("/v1/kbs/src/versions/1/snapshots").json()
    # Another embedding model: 422 naming both.
    r = c.post("/v1/kbs", json={"name": "e5", "embedding_model": "multilingual-e5-small"})
    assert r.status_code == 201, r.text
    r = c.post("/v1/kbs/e5/versions/restore", json={"snapshot_id": snap["id"]})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert MODEL in message and "multilingual-e5-small" in message
    assert c.get("/v1/kbs/e5/versions").json()["versions"] == []
    # Unknown ids and versions: 404.
    assert c.post("/v1/kbs/src/versions/restore", json={"snapshot_id": "0" * 32}).status_code == 404
    assert c.get(f"/v1/kbs/src/snapshots/{'0' * 32}").status_code == 404
    assert c.get(f"/v1/kbs/src/snapshots/{'0' * 32}/download").status_code == 404
    assert c.get(f"/v1/kbs/e5/snapshots/{snap['id']}").status_code == 404  # not e5's
    assert c.post("/v1/kbs/src/versions/9/snapshots").status_code == 404
    # A FAISS version: 409 saying why and what to do instead.
    r = c.post("/v1/kbs/src/versions", json={"backend": "faiss"})
    assert r.status_code == 202, r.text
    number = r.json()["number"]
    deadline = time.monotonic() + 120
    while c.get(f"/v1/kbs/src/versions/{number}").json()["status"] != "ready":
        assert time.monotonic() < deadline, "the FAISS version did not build"
        time.sleep(0.2)
    r = c.post(f"/v1/kbs/src/versions/{number}/snapshots")
    assert r.status_code == 409 and "FAISS version" in r.json()["error"]["message"], r.text


def test_erasing_a_document_deletes_the_snapshots_that_may_hold_it(client):
    c = client
    before = c.post("/v1/kbs/src/versions/1/snapshots").json()
    # A document uploaded after that snapshot, then a snapshot that holds it.
    files = [("files", ("fjords.md", make_md("Fjords", ["Fjords are drowned glacial valleys."])))]
    assert c.post("/v1/kbs/src/documents", files=files).status_code == 202
    docs = wait_for_documents(c, "src", expected=len(DOCS) + 1)
    after = c.post("/v1/kbs/src/versions/1/snapshots").json()
    assert after["point_count"] > before["point_count"]

    r = c.post(f"/v1/kbs/src/documents/{docs['fjords.md']['id']}/erase")
    assert r.status_code == 200, r.text
    assert r.json()["stores"]["snapshots"]["ids"] == [after["id"]]
    # The newer archive is gone (404 saying why); the older one, which cannot hold the
    # document, still downloads and restores.
    gone = c.get(f"/v1/kbs/src/snapshots/{after['id']}/download")
    assert gone.status_code == 404 and "erasure" in gone.json()["error"]["message"]
    assert c.get(f"/v1/kbs/src/snapshots/{after['id']}").json()["erased_at"] is not None
    r = c.post("/v1/kbs/src/versions/restore", json={"snapshot_id": after["id"]})
    assert r.status_code == 404, r.text
    assert c.get(f"/v1/kbs/src/snapshots/{before['id']}/download").status_code == 200
    r = c.post("/v1/kbs/src/versions/restore", json={"snapshot_id": before["id"]})
    assert r.status_code == 201, r.text


def test_cli_snapshot_and_restore_from_a_file(settings, tmp_path, monkeypatch):
    # Components of its own, closed before the CLI opens the Edge shards (one holder at
    # a time; the shared ones keep their Qdrant folders open for the session).
    components = Components()
    try:
        with loaded(settings, components) as c:
            assert c.post("/v1/kbs", json={"name": "copy"}).status_code == 201
    finally:
        components.close()
    monkeypatch.setattr(cli_helpers, "get_settings", lambda: settings)
    runner = CliRunner()
    out = tmp_path / "src-v1.snapshot"
    done = runner.invoke(cli_app, ["versions", "snapshot", "src", "1", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert out.is_file() and "wrote" in done.output
    done = runner.invoke(cli_app, ["versions", "restore", "src", str(out)])
    assert done.exit_code == 0, done.output
    assert "as version 2 of src" in done.output
    listing = runner.invoke(cli_app, ["versions", "--kb", "src"])
    assert listing.exit_code == 0 and "ready" in listing.output, listing.output
    elsewhere = runner.invoke(cli_app, ["versions", "restore", "copy", str(out)])
    assert elsewhere.exit_code == 2 and "restores only into it" in elsewhere.output
    bad = runner.invoke(cli_app, ["versions", "restore", "copy", "0" * 32])
    assert bad.exit_code == 2 and "not found" in bad.output, bad.output
