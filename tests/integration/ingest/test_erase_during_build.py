"""A version building during an erase does not bring the erased document back: the build
read the document and embedded its chunks before the erase, and writes them after it.
Both write paths re-check under the version's writer lock that the revision is still
its document's current one; the erase deleted the rows before taking that lock."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import ingest.worker
from api.app import create_app
from core.catalog.models import IndexVersion
from eval.erasure import Scope, erase_documents
from tests.conftest import make_settings
from tests.utils.answers import upload
from tests.utils.api import wait_for_documents, wait_version
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CANARY = "quorvexal"


def test_a_build_that_read_the_document_before_the_erase_writes_none_of_it(tmp_path, monkeypatch):
    settings = make_settings(tmp_path / "data", redaction_enabled=False, build_batch_documents=8)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        assert client.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        upload(
            client,
            "kb",
            [
                (f"{CANARY}.txt", f"The {CANARY} pump is serviced every spring.".encode()),
                ("other.txt", b"The boiler is serviced every autumn by the facilities team."),
            ],
        )
        docs = wait_for_documents(client, "kb", expected=2)
        doc_id = docs[f"{CANARY}.txt"]["id"]
        rt = client.app.state.runtime
        prepared = ingest.worker.revision_chunks
        receipts = []

        def prepare_then_erase(rt_, pipeline, ref, **kwargs):
            chunks = prepared(rt_, pipeline, ref, **kwargs)
            if ref.document_id == doc_id and not receipts:
                # The build holds the chunks and vectors; the erase happens now.
                kb_id = ref.kb_id
                receipts.append(
                    erase_documents(rt_, document_ids=[doc_id], scope=Scope([kb_id], True))
                )
            return chunks

        monkeypatch.setattr(ingest.worker, "revision_chunks", prepare_then_erase)
        r = client.post("/v1/kbs/kb/versions", json={"chunking": {"chunk_size": 96}})
        assert r.status_code == 202, r.text
        version = wait_version(client, "kb", 2)

        assert receipts and receipts[0]["status"] == "completed"
        lines = {v["version"]: v for v in receipts[0]["stores"]["vectors"]["versions"]}
        assert set(lines) == {1, 2} and lines[2]["status"] == "building"
        assert version["vector_count"] >= 1
        for number in (1, 2):
            r = client.post(
                "/v1/kbs/kb/retrieve",
                json={"query": f"{CANARY} pump", "index_version": number, "top_k": 10},
            )
            assert r.status_code == 200, r.text
            assert [h["filename"] for h in r.json()["results"]] == ["other.txt"], r.text
        with rt.db.session() as s:
            row = s.query(IndexVersion).filter_by(number=2).one()
        path = rt.indexes.path_for(row)
        assert not [p for p in path.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
