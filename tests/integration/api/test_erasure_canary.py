"""The proof that an erase leaves no trace (issue 15): a document carrying unique canary
strings, an e-mail address and a phone number is driven through everything that can copy
it — retrieval, an answer, feedback with a correction, a test set made from that
feedback, an eval run, a second and a third index version (one promoted, so the first is
retired), the embedding cache — then erased. Afterwards every byte of the data directory
(the SQLite catalog and its write-ahead log, blobs, FAISS segment files, Qdrant's local
storage), every row of the PostgreSQL catalog, and every API listing is scanned for the
canaries: none is left. On SQLite and PostgreSQL, FAISS and Qdrant.

Before the erase the same scans must find the canaries (so the scan can fail).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text

from api.app import create_app
from core.catalog.models import EmbeddingCacheEntry, Job
from tests.conftest import make_settings
from tests.utils.answers import upload
from tests.utils.api import wait_eval_run, wait_for_documents, wait_version
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.slow]

OTHER_DOC = (
    "Travel policy. Employees book trains for trips under four hours. Flights need the "
    "approval of a director. Hotel nights are refunded up to 150 euros in capitals."
)


def canaries() -> dict[str, str]:
    tag = uuid.uuid4().hex[:12]
    return {
        "word": f"zorblatt{tag}",
        "email": f"canary.{tag}@example.org",
        "phone": f"+1 415 555 {int(tag[:4], 16) % 10000:04d}",
        "filename": f"canary-{tag}.txt",
    }


def canary_doc(c: dict[str, str]) -> bytes:
    return (
        f"Incident report {c['word']}. The contractor {c['word']} reported a water leak in "
        f"the server room on the third floor. Contact {c['email']} or call {c['phone']} for "
        f"the follow-up. The facilities team replaced the valve of {c['word']} the same day "
        "and the room was dry by the evening."
    ).encode()


def found_in_bytes(root: Path, needles: list[str]) -> list[str]:
    """'<file>: <needle>' for every file under root holding a needle (UTF-8 or UTF-16)."""
    hits = []
    encoded = [(n, n.encode(), n.encode("utf-16-le")) for n in needles]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for needle, utf8, utf16 in encoded:
            if utf8 in data or utf16 in data:
                hits.append(f"{path.relative_to(root)}: {needle}")
    return hits


def found_in_postgres(url: str, needles: list[str]) -> list[str]:
    """'<table>: <needle>' for every table of the schema with a row holding a needle."""
    engine = create_engine(url)
    hits = []
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                rows = conn.execute(text(f'SELECT CAST(t AS text) FROM "{table}" t')).scalars()
                blob = "\n".join(rows)
                hits += [f"{table}: {n}" for n in needles if n in blob]
    finally:
        engine.dispose()
    return hits


def listings(client: TestClient, ids: dict[str, Any]) -> dict[str, str]:
    """Every API listing and detail that could show the document or a copy of it."""
    out = {}

    def get(path: str, **params: Any) -> None:
        r = client.get(path, params=params)
        out[f"GET {path} {params or ''}"] = f"{r.status_code} {r.text}"

    get("/v1/kbs")
    get("/v1/kbs/kb")
    get("/v1/kbs/kb/documents", limit=1000)
    get(f"/v1/kbs/kb/documents/{ids['doc']}")
    get("/v1/kbs/kb/ingestion")
    get("/v1/kbs/kb/versions")
    for number in (1, 2, 3):
        get(f"/v1/kbs/kb/versions/{number}")
    get(f"/v1/answers/{ids['answer']}")
    get("/v1/testsets")
    get("/v1/testsets/fb/1")
    get("/v1/evals")
    get(f"/v1/evals/{ids['run']}")
    get(f"/v1/evals/{ids['run']}/results")
    for job in ids["jobs"]:
        get(f"/v1/jobs/{job}")
    get("/v1/audit", limit=1000)
    get("/v1/audit", limit=1000, format="jsonl")
    get("/v1/erasures")
    for number in (1, 2, 3):
        r = client.post(
            "/v1/kbs/kb/retrieve",
            json={"query": f"{ids['word']} water leak {ids['email']}", "index_version": number},
        )
        out[f"retrieve v{number}"] = f"{r.status_code} {r.text}"
    return out


def leaks(texts: dict[str, str], needles: list[str]) -> list[str]:
    return [f"{where}: {n}" for where, body in texts.items() for n in needles if n in body]


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.mark.parametrize("backend", ["faiss", "qdrant"])
def test_an_erased_document_leaves_no_trace(tmp_path, catalog_url, backend):
    c = canaries()
    needles = [c["word"], c["email"], c["phone"]]
    data = tmp_path / "data"
    catalog = {"database_url": catalog_url} if catalog_url else {}
    settings = make_settings(data, redaction_enabled=False, index_backend=backend, **catalog)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        assert client.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        upload(client, "kb", [(c["filename"], canary_doc(c)), ("travel.txt", OTHER_DOC.encode())])
        docs = wait_for_documents(client, "kb", expected=2)
        assert {d["status"] for d in docs.values()} == {"indexed"}, docs
        doc_id = docs[c["filename"]]["id"]

        # Everything that copies it: retrieval, an answer, feedback with a correction,
        # a test set from that feedback, an eval run over it.
        question = f"Who reported the water leak of {c['word']}? Write to {c['email']}"
        r = client.post("/v1/kbs/kb/retrieve", json={"query": question})
        assert r.status_code == 200 and r.json()["results"][0]["document_id"] == doc_id, r.text
        r = client.post("/v1/kbs/kb/answer", json={"query": question, "generator": "extractive"})
        assert r.status_code == 200, r.text
        answer_id = r.json()["id"]
        assert c["word"] in json.dumps(client.get(f"/v1/answers/{answer_id}").json())
        r = client.post(
            f"/v1/answers/{answer_id}/feedback",
            json={
                "rating": -1,
                "comment": f"ask {c['email']}",
                "correction": f"The contractor {c['word']} ({c['phone']}) reported it.",
            },
        )
        assert r.status_code == 201, r.text
        r = client.post("/v1/testsets/fb/from-feedback", params={"kb": "kb"})
        assert r.status_code == 201, r.text
        r = client.post("/v1/evals", json={"testset": "fb", "kb": "kb", "generator": "extractive"})
        assert r.status_code == 202, r.text
        run = wait_eval_run(client, r.json()["id"])

        # A second version (promoted; the first is retired, not yet collected) and a
        # third one left ready.
        for number, promote in ((2, True), (3, False)):
            r = client.post("/v1/kbs/kb/versions", json={"chunking": {"chunk_size": 64 * number}})
            assert r.status_code == 202, r.text
            wait_version(client, "kb", number)
            if promote:
                assert client.post("/v1/kbs/kb/versions/2/promote").status_code == 200
                assert client.delete("/v1/kbs/kb/versions/1").json()["status"] == "retired"
        statuses = {
            v["number"]: v["status"] for v in client.get("/v1/kbs/kb/versions").json()["versions"]
        }
        assert statuses == {1: "retired", 2: "live", 3: "ready"}, statuses

        rt = client.app.state.runtime
        with rt.db.session() as s:
            assert s.query(EmbeddingCacheEntry).count() > 0
            jobs = [j.id for j in s.query(Job).all()]
        ids = {
            "doc": doc_id,
            "answer": answer_id,
            "run": run["id"],
            "jobs": jobs,
            "word": c["word"],
            "email": c["email"],
        }

        # The scans can fail: before the erase they find the canaries.
        before = found_in_bytes(data, needles + [c["filename"]])
        if catalog_url:
            before += found_in_postgres(catalog_url, needles)
        assert any("blobs" in h for h in before), before
        assert any(("indexes" in h or "qdrant" in h) for h in before), before
        assert catalog_url is None or any("answers" in h for h in before), before
        assert leaks(listings(client, ids), needles), "the listings show the canaries before"

        r = client.post(f"/v1/kbs/kb/documents/{doc_id}/erase")
        assert r.status_code == 200, r.text
        receipt = r.json()
        print("\nerase receipt:", json.dumps(receipt, indent=1))
        assert receipt["status"] == "completed", receipt
        stores = receipt["stores"]
        assert stores["documents"]["ids"] == [doc_id]
        assert stores["answers"]["ids"] == [answer_id]
        assert stores["feedback"]["count"] == 1
        assert stores["test_cases"]["count"] == 1
        assert stores["eval_results"]["count"] >= 1
        assert stores["blobs"]["count"] == 1
        assert stores["embedding_cache"]["count"] >= 1
        assert stores["chunks"]["count"] >= 1
        assert {(v["version"], v["status"]) for v in stores["vectors"]["versions"]} == {
            (1, "retired"),
            (2, "live"),
            (3, "ready"),
        }
        assert all(v["removed"] >= 1 for v in stores["vectors"]["versions"]), stores["vectors"]
        assert not leaks({"receipt": r.text}, needles + [c["filename"]])

        after = found_in_bytes(data, needles + [c["filename"]])
        if catalog_url:
            after += found_in_postgres(catalog_url, needles + [c["filename"]])
        assert after == [], after
        assert leaks(listings(client, ids), needles + [c["filename"]]) == []
        # The rest of the KB still serves.
        r = client.post("/v1/kbs/kb/retrieve", json={"query": "Who approves flights?"})
        assert r.status_code == 200 and r.json()["results"][0]["filename"] == "travel.txt"
        assert client.get(f"/v1/erasures/{receipt['id']}").json()["id"] == receipt["id"]
        events = client.get("/v1/audit", params={"action": "document.erase"}).json()["events"]
        assert [e["target"] for e in events] == [receipt["id"]]
