"""The HTTP API in-process with every real component: unstructured, Presidio, the packaged
embedding model, FAISS and the SQLite catalog."""

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.kbs import get_kb, live_version
from tests.conftest import make_settings
from tests.utils.api import top_filename, wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_docx, make_pdf
from tests.utils.samples import QUERIES, build_corpus

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def client(tmp_path):
    settings = make_settings(tmp_path / "data", max_file_bytes=200_000)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        yield c


@pytest.fixture
def corpus(tmp_path):
    return build_corpus(tmp_path / "corpus")


def upload(client, kb, paths_or_items, metadata=None):
    files = []
    for item in paths_or_items:
        name, data = (item.name, item.read_bytes()) if hasattr(item, "read_bytes") else item
        files.append(("files", (name, data, "application/octet-stream")))
    data = {"metadata": json.dumps(metadata)} if metadata is not None else None
    return client.post(f"/v1/kbs/{kb}/documents", files=files, data=data)


def vector_count(client, kb):
    """Vectors in the live FAISS snapshot, read from the running app's own index store."""
    rt = client.app.state.runtime
    with rt.db.session() as s:
        kb_row = get_kb(session=s, name_or_id=kb)
        version = live_version(session=s, kb_id=kb_row.id)
    return rt.indexes.reader(version).count()


def test_corpus_is_indexed_and_each_query_finds_its_document(client, corpus):
    assert client.post("/v1/kbs", json={"name": "docs"}).status_code == 201
    r = upload(client, "docs", corpus, metadata={"source": "samples"})
    assert r.status_code == 202, r.text
    items = r.json()["documents"]
    assert len(items) == 6 and all(i["status"] == "pending" and not i["duplicate"] for i in items)
    docs = wait_for_documents(client, "docs", expected=6)
    assert {d["status"] for d in docs.values()} == {"indexed"}, docs
    for query, expected in QUERIES:
        assert top_filename(client, "docs", query) == expected, query

    r = client.post("/v1/kbs/docs/retrieve", json={"query": "pyroclastic flow speed", "top_k": 3})
    body = r.json()
    assert body["index_version"] == 1
    hit = body["results"][0]
    assert hit["filename"] == "volcanoes.pdf" and hit["metadata"]["page_number"] == 2
    assert hit["metadata"]["source"] == "samples" and hit["metadata"]["revision"] == 1
    assert set(hit) == {
        "chunk_id",
        "document_id",
        "filename",
        "text",
        "score",
        "metadata",
        "scores",
    }

    # Filters: the same query restricted to another document.
    only = client.post(
        "/v1/kbs/docs/retrieve",
        json={"query": "pyroclastic flow speed", "filters": {"filename": "sourdough.md"}},
    ).json()
    assert only["results"] and {h["filename"] for h in only["results"]} == {"sourdough.md"}

    kb = client.get("/v1/kbs/docs").json()
    assert kb["live_version"] == 1 and kb["document_count"] == 6


def test_personal_data_is_redacted_and_reported(client, corpus):
    client.post("/v1/kbs", json={"name": "pii"})
    chess = next(p for p in corpus if p.name == "chess_openings.txt")
    upload(client, "pii", [chess])
    docs = wait_for_documents(client, "pii", expected=1)
    detail = client.get(f"/v1/kbs/pii/documents/{docs['chess_openings.txt']['id']}").json()
    counts = detail["revisions"][0]["report"]["counts"]["redact"]
    assert counts.get("EMAIL_ADDRESS") == 1 and counts.get("PHONE_NUMBER") == 1
    assert counts.get("PERSON", 0) >= 1
    dumped = json.dumps(detail)
    assert "jane.doe@example.com" not in dumped and "Jane Doe" not in dumped
    hits = client.post(
        "/v1/kbs/pii/retrieve",
        json={"query": "who organises the club tournament, e-mail and phone", "top_k": 10},
    ).json()
    text = " ".join(h["text"] for h in hits["results"])
    assert "<EMAIL_ADDRESS>" in text
    for secret in ("jane.doe@example.com", "415 555 0132", "Jane Doe"):
        assert secret not in text

    # Redaction off for a KB keeps the text as written.
    client.post("/v1/kbs", json={"name": "raw", "redaction": {"enabled": False}})
    upload(client, "raw", [chess])
    wait_for_documents(client, "raw", expected=1)
    hits = client.post(
        "/v1/kbs/raw/retrieve",
        json={"query": "who organises the club tournament, e-mail and phone", "top_k": 10},
    ).json()
    assert "jane.doe@example.com" in " ".join(h["text"] for h in hits["results"])


def test_reupload_update_and_delete(client):
    client.post("/v1/kbs", json={"name": "life"})
    v1 = make_docx("Harbour rules", ["Boats must moor at the northern pier after dusk."])
    r1 = upload(client, "life", [("rules.docx", v1)]).json()["documents"][0]
    wait_for_documents(client, "life", expected=1)
    count = vector_count(client, "life")

    # Identical bytes: same revision, nothing queued, no new vectors.
    again = upload(client, "life", [("rules.docx", v1)]).json()["documents"][0]
    assert again["duplicate"] and again["revision"] == 1 and again["job_id"] is None
    assert again["document_id"] == r1["document_id"]
    assert vector_count(client, "life") == count

    # Changed content under the same name: revision 2 replaces revision 1's chunks.
    v2 = make_docx("Harbour rules", ["Kayaks are stored in the blue shed by the slipway."])
    r2 = upload(client, "life", [("rules.docx", v2)]).json()["documents"][0]
    assert (r2["document_id"], r2["revision"], r2["duplicate"]) == (r1["document_id"], 2, False)
    wait_for_documents(client, "life", expected=1)
    detail = client.get(f"/v1/kbs/life/documents/{r1['document_id']}").json()
    assert [(r["number"], r["status"]) for r in detail["revisions"]] == [
        (1, "superseded"),
        (2, "indexed"),
    ]
    hits = client.post(
        "/v1/kbs/life/retrieve", json={"query": "where do boats moor", "top_k": 10}
    ).json()["results"]
    assert all("northern pier" not in h["text"] for h in hits)
    assert any("blue shed" in h["text"] for h in hits)
    assert vector_count(client, "life") == detail["chunk_count"]

    # Delete removes its vectors.
    assert client.delete(f"/v1/kbs/life/documents/{r1['document_id']}").status_code == 204
    assert vector_count(client, "life") == 0
    assert client.post("/v1/kbs/life/retrieve", json={"query": "kayaks"}).json()["results"] == []
    r = client.get(f"/v1/kbs/life/documents/{r1['document_id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_bad_input_gets_precise_errors_and_fails_alone(client, corpus):
    client.post("/v1/kbs", json={"name": "bad"})

    def err(r, status):
        assert r.status_code == status, r.text
        return r.json()["error"]["message"]

    assert "empty" in err(upload(client, "bad", [("empty.txt", b"")]), 400)
    assert "unsupported" in err(upload(client, "bad", [("x.bin", bytes(range(256)) * 8)]), 415)
    assert "over the limit" in err(upload(client, "bad", [("big.txt", b"word " * 50_000)]), 413)
    assert "not found" in err(upload(client, "nope", [("a.txt", b"hello")]), 404)
    assert "JSON" in err(
        client.post(
            "/v1/kbs/bad/documents",
            files=[("files", ("a.txt", b"hello"))],
            data={"metadata": "{oops"},
        ),
        422,
    )
    # A rejected request stores nothing, even its valid files.
    assert client.get("/v1/kbs/bad/documents").json()["total"] == 0

    good = [p for p in corpus if p.suffix in {".md", ".txt", ".pdf"}]
    truncated = make_pdf(["This PDF is cut off half way."])[:180]
    r = upload(client, "bad", [*good, ("broken.pdf", truncated)])
    assert r.status_code == 202
    docs = wait_for_documents(client, "bad", expected=4)
    assert docs["broken.pdf"]["status"] == "failed"
    assert "PDF" in docs["broken.pdf"]["error"]
    assert all(docs[p.name]["status"] == "indexed" for p in good)
    listing = client.get("/v1/kbs/bad/documents").json()
    assert listing["counts"] == {"indexed": 3, "failed": 1}


def test_knowledge_base_crud_and_validation(client):
    r = client.post(
        "/v1/kbs",
        json={
            "name": "kb-1",
            "description": "team docs",
            "chunking": {"chunk_size": 128, "chunk_overlap": 16},
        },
    )
    assert r.status_code == 201
    kb = r.json()
    assert kb["chunking"] == {"chunk_size": 128, "chunk_overlap": 16}
    assert kb["embedding_model"] == "multilingual-e5-small" and kb["live_version"] is None
    assert client.post("/v1/kbs", json={"name": "kb-1"}).status_code == 409

    def invalid(body):
        r = client.post("/v1/kbs", json=body)
        assert r.status_code == 422, r.text
        return r.json()["error"]["message"]

    assert "truncated" in invalid({"name": "a", "chunking": {"chunk_size": 600}})
    assert "chunk_overlap" in invalid(
        {"name": "a", "chunking": {"chunk_size": 50, "chunk_overlap": 60}}
    )
    assert "PASSWORD" in invalid({"name": "a", "redaction": {"entities": ["PASSWORD"]}})
    assert "not found" in invalid({"name": "a", "embedding_model": "/no/such/model"})
    assert "invalid knowledge base name" in invalid({"name": "../etc"})

    r = client.patch("/v1/kbs/kb-1", json={"chunking": {"chunk_size": 100}, "description": "new"})
    assert r.status_code == 200
    assert r.json()["chunking"] == {"chunk_size": 100, "chunk_overlap": 16}
    assert r.json()["description"] == "new"
    assert [k["name"] for k in client.get("/v1/kbs").json()["data"]] == ["kb-1"]
    assert client.delete("/v1/kbs/kb-1").status_code == 204
    assert client.get("/v1/kbs/kb-1").status_code == 404
    r = client.post("/v1/kbs/kb-1/retrieve", json={"query": "x"})
    assert r.status_code == 404 and "not found" in r.json()["error"]["message"]
    r = client.post("/v1/kbs", json={"name": "z"})
    r = client.post("/v1/kbs/z/retrieve", json={"query": "x", "top_k": 0})
    assert r.status_code == 422 and "top_k" in r.json()["error"]["message"]


def test_admin_key_protects_v1_routes(tmp_path):
    settings = make_settings(tmp_path / "data", admin_key="s3cret-key")
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").json()["status"] == "ready"
        r = c.get("/v1/kbs")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert c.get("/v1/kbs", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert c.get("/v1/kbs", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200


def test_redaction_policy_per_kb_operator_and_spanish_ids(client):
    r = client.post("/v1/kbs", json={"name": "masked", "redaction": {"operator": "mask"}})
    assert r.status_code == 201 and r.json()["redaction"]["operator"] == "mask"
    assert r.json()["redaction"]["entity_operators"] is None  # mask applies to all
    r = client.post("/v1/kbs", json={"name": "plain"})
    assert r.json()["redaction"]["operator"] == "replace"
    assert r.json()["redaction"]["entity_operators"] == {"PERSON": "pseudonymize"}
    text = (
        "Para la reserva escriba a lucia.garcia@example.es o llame al +34 612 345 678. "
        "El titular del contrato tiene el DNI 12345678Z y vive en Sevilla."
    )
    upload(client, "masked", [("reserva.txt", text.encode())])
    docs = wait_for_documents(client, "masked", expected=1)
    detail = client.get(f"/v1/kbs/masked/documents/{docs['reserva.txt']['id']}").json()
    counts = detail["revisions"][0]["report"]["counts"]
    assert counts["redact"]["EMAIL_ADDRESS"] == 1 and counts["redact"]["ES_NIF"] == 1
    assert counts["redact_by_language"]["es:ES_NIF"] == 1
    hits = client.post("/v1/kbs/masked/retrieve", json={"query": "reserva contrato"}).json()
    stored = " ".join(h["text"] for h in hits["results"])
    assert "Sevilla" in stored and "****" in stored
    for secret in ("lucia.garcia@example.es", "12345678Z", "612 345 678"):
        assert secret not in stored
    r = client.post("/v1/kbs", json={"name": "bad-op", "redaction": {"operator": "blur"}})
    assert r.status_code == 422 and "operator" in r.json()["error"]["message"]


def test_people_pseudonymised_per_document(client):
    policy = {"operator": "replace", "entity_operators": {"PERSON": "pseudonymize"}}
    r = client.post("/v1/kbs", json={"name": "pseudo", "redaction": policy})
    assert r.status_code == 201 and r.json()["redaction"]["entity_operators"] == {
        "PERSON": "pseudonymize"
    }
    text = (
        "Jane Doe signed the lease for the harbour warehouse in May. "
        "Mark Smith, the landlord, wrote to jane.doe@example.com about the deposit. "
        "Jane Doe paid the deposit the following week."
    )
    upload(client, "pseudo", [("lease.txt", text.encode())])
    wait_for_documents(client, "pseudo", expected=1)
    hits = client.post("/v1/kbs/pseudo/retrieve", json={"query": "who paid the deposit"})
    stored = hits.json()["results"][0]["text"]
    assert stored.count("<PERSON_1>") == 2 and "<PERSON_2>" in stored, stored
    assert "<EMAIL_ADDRESS>" in stored and "Jane" not in stored and "Mark" not in stored
    bad = {"entity_operators": {"NAME": "mask"}}
    r = client.post("/v1/kbs", json={"name": "bad-entity-op", "redaction": bad})
    assert r.status_code == 422
    assert "redaction.entity_operators: unknown NAME" in r.json()["error"]["message"]


def test_zip_members_become_documents_and_bombs_are_refused(client):
    from tests.utils.corpus import make_md, make_xlsx, make_zip
    from tests.utils.hostile import encrypted_pdf, traversal_zip, zip_bomb

    client.post("/v1/kbs", json={"name": "zips"})
    archive = make_zip(
        {
            "guides/ferry.md": make_md(
                "Ferry", ["The island ferry leaves the eastern quay at nine."]
            ),
            "guides/horarios.docx": make_docx(
                "Horarios", ["La biblioteca municipal abre de lunes a viernes de nueve a ocho."]
            ),
            "tables/prices.xlsx": make_xlsx({"Prices": [["item", "price"], ["kayak", "40"]]}),
            "photo.bin": bytes(range(256)) * 4,
            "locked.pdf": encrypted_pdf(),
        }
    )
    r = upload(client, "zips", [("bundle.zip", archive)])
    assert r.status_code == 202, r.text
    body = r.json()
    names = sorted(d["filename"] for d in body["documents"])
    assert names == [
        "bundle.zip/guides/ferry.md",
        "bundle.zip/guides/horarios.docx",
        "bundle.zip/locked.pdf",
        "bundle.zip/tables/prices.xlsx",
    ]
    assert [s["filename"] for s in body["skipped"]] == ["bundle.zip/photo.bin"]
    assert "unsupported" in body["skipped"][0]["reason"]
    docs = wait_for_documents(client, "zips", expected=4)
    assert "password" in docs["bundle.zip/locked.pdf"]["error"]
    assert all(docs[n]["status"] == "indexed" for n in names if not n.endswith(".pdf"))
    hits = client.post("/v1/kbs/zips/retrieve", json={"query": "¿cuándo abre la biblioteca?"})
    assert hits.json()["results"][0]["filename"] == "bundle.zip/guides/horarios.docx"

    for bad, guard in ((zip_bomb(), "expands"), (traversal_zip(), "outside the archive")):
        r = upload(client, "zips", [("evil.zip", bad)])
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "archive_rejected"
        assert guard in r.json()["error"]["message"]
    assert client.get("/v1/kbs/zips/documents").json()["total"] == 4


def test_cleaning_policy_is_set_per_kb(client):
    r = client.post(
        "/v1/kbs",
        json={
            "name": "clean",
            "cleaning": {"remove_boilerplate": False, "near_duplicate_threshold": None},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["cleaning"]["remove_boilerplate"] is False
    assert r.json()["cleaning"]["near_duplicate_threshold"] is None
    r = client.patch("/v1/kbs/clean", json={"cleaning": {"near_duplicate_threshold": 0.8}})
    assert r.status_code == 200
    assert r.json()["cleaning"] == {
        **r.json()["cleaning"],
        "near_duplicate_threshold": 0.8,
        "remove_boilerplate": False,
    }
    r = client.patch("/v1/kbs/clean", json={"cleaning": {"near_duplicate_threshold": 2}})
    assert r.status_code == 422 and "near_duplicate_threshold" in r.json()["error"]["message"]
