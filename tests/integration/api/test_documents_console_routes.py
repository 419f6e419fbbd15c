"""What the console's documents pages read, through the API, on SQLite and PostgreSQL:
the document list's filters (status, media type, language, upload metadata, filename
text) and facets, the redaction report of each revision (counts by entity type and
language, never the values), and a document's chunks as indexed (text after
redaction), with clear 4xx for bad parameters. Real ingestion: the packaged parser,
Presidio with the packaged spaCy/natasha models, all-MiniLM-L6-v2 and FAISS."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import make_settings
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.corpus import make_md, make_pdf

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENGLISH = (
    "The library opens at nine on weekdays. Ask John Smith at john.smith@example.com "
    "for the keys to the reading room."
)
SPANISH = (
    "La biblioteca municipal abre a las nueve de la mañana. Escriba a María García en "
    "maria.garcia@ejemplo.es para pedir las llaves de la sala de lectura."
)
RUSSIAN = (
    "Библиотека открывается в девять часов утра. Пишите Ивану Петрову на "
    "ivan.petrov@example.ru по поводу ключей от читального зала."
)
EMAILS = ("john.smith@example.com", "maria.garcia@ejemplo.es", "ivan.petrov@example.ru")


def zipped(members: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return buf.getvalue()


def upload(client: TestClient, items: list[tuple[str, bytes]], metadata: dict) -> None:
    files = [("files", (name, data, "application/octet-stream")) for name, data in items]
    r = client.post("/v1/kbs/kb/documents", files=files, data={"metadata": json.dumps(metadata)})
    assert r.status_code == 202, r.text


def names(client: TestClient, **params) -> list[str]:
    r = client.get("/v1/kbs/kb/documents", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(body["documents"]) or "limit" in params
    return [d["filename"] for d in body["documents"]]


def error(client: TestClient, path: str, code: int, **params) -> str:
    r = client.get(path, params=params)
    assert r.status_code == code, r.text
    return r.json()["error"]["message"]


@pytest.fixture
def client(tmp_path, catalog_url):
    settings = make_settings(
        tmp_path / "data",
        database_url=catalog_url,
        embedding_model="all-MiniLM-L6-v2",
        job_max_attempts=1,
    )
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        assert c.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        upload(
            c,
            [
                ("pack.zip", zipped({"es.txt": SPANISH, "ru.txt": RUSSIAN})),
                ("Guide.md", make_md("Reading room", [ENGLISH])),
            ],
            {"team": "legal", "year": 2020, "draft": True},
        )
        upload(
            c,
            [("notes.txt", ENGLISH.encode()), ("broken.pdf", make_pdf(["cut off"])[:150])],
            {"team": "ops", "year": 2021.5, "draft": False},
        )
        wait_for_documents(c, "kb", expected=5, timeout=180)
        yield c


def test_filters_facets_redaction_report_and_chunks(client):
    everything = ["Guide.md", "broken.pdf", "notes.txt", "pack.zip/es.txt", "pack.zip/ru.txt"]
    assert names(client) == everything

    # Status, media type, language, filename text (case-insensitive, LIKE characters
    # taken literally), metadata key=value (strings, numbers, booleans), combined.
    assert names(client, status="failed") == ["broken.pdf"]
    assert names(client, media_type="text/markdown") == ["Guide.md"]
    assert names(client, media_type="application/pdf") == ["broken.pdf"]
    assert names(client, language="es") == ["pack.zip/es.txt"]
    assert names(client, language="ru") == ["pack.zip/ru.txt"]
    assert names(client, language="en") == ["Guide.md", "notes.txt"]
    assert names(client, q="PACK.ZIP/") == ["pack.zip/es.txt", "pack.zip/ru.txt"]
    assert names(client, q="guide") == ["Guide.md"]
    assert names(client, q="%") == [] and names(client, q="_") == []
    assert names(client, metadata="team=legal") == [
        "Guide.md",
        "pack.zip/es.txt",
        "pack.zip/ru.txt",
    ]
    assert names(client, metadata="year=2020") == names(client, metadata="team=legal")
    assert names(client, metadata="year=2021.5") == ["broken.pdf", "notes.txt"]
    assert names(client, metadata="draft=true") == names(client, metadata="team=legal")
    assert names(client, metadata="draft=false") == ["broken.pdf", "notes.txt"]
    assert names(client, metadata="team=nobody") == []
    assert names(client, metadata="missing=legal") == []
    assert names(client, metadata=["team=ops", "year=2021.5"], status="indexed") == ["notes.txt"]
    assert names(client, metadata=["team=ops", "year=2020"]) == []
    assert names(client, language="en", q="notes", status="indexed") == ["notes.txt"]
    page = client.get("/v1/kbs/kb/documents", params={"limit": 2, "offset": 1})
    body = page.json()
    assert body["total"] == 5 and [d["filename"] for d in body["documents"]] == everything[1:3]
    filtered = client.get("/v1/kbs/kb/documents", params={"language": "en", "limit": 1}).json()
    assert filtered["total"] == 2 and len(filtered["documents"]) == 1
    # `counts` stay the whole KB's, whatever the filters.
    assert filtered["counts"] == {"indexed": 4, "failed": 1}
    assert filtered["facets"] is None
    assert filtered["documents"][0]["media_type"] == "text/markdown"

    facets = client.get("/v1/kbs/kb/documents", params={"facets": "true", "q": "x"}).json()
    assert facets["facets"] == {
        "media_type": {"application/pdf": 1, "text/markdown": 1, "text/plain": 3},
        "language": {"en": 2, "es": 1, "none": 1, "ru": 1},
    }

    # The redaction report of each revision: counts by type and language, no values.
    docs = {d["filename"]: d for d in client.get("/v1/kbs/kb/documents").json()["documents"]}
    spanish = client.get(f"/v1/kbs/kb/documents/{docs['pack.zip/es.txt']['id']}")
    assert spanish.status_code == 200
    assert spanish.json()["media_type"] == "text/plain"
    redaction = spanish.json()["revisions"][0]["redaction"]
    assert redaction == {
        "total": 2,
        "by_entity": {"EMAIL_ADDRESS": 1, "PERSON": 1},
        "by_language": {"es": {"EMAIL_ADDRESS": 1, "PERSON": 1}},
    }
    russian = client.get(f"/v1/kbs/kb/documents/{docs['pack.zip/ru.txt']['id']}").json()
    assert russian["revisions"][0]["redaction"]["by_language"] == {
        "ru": {"EMAIL_ADDRESS": 1, "PERSON": 1}
    }
    broken = client.get(f"/v1/kbs/kb/documents/{docs['broken.pdf']['id']}").json()
    assert broken["revisions"][0]["redaction"] is None  # it never reached redaction
    for doc in docs.values():
        text = client.get(f"/v1/kbs/kb/documents/{doc['id']}").text
        assert not any(e in text for e in EMAILS), doc["filename"]

    # Chunks as indexed: the live version's, text after redaction.
    chunks = client.get(f"/v1/kbs/kb/documents/{docs['pack.zip/es.txt']['id']}/chunks").json()
    assert chunks["index_version"] == 1 and chunks["revision"] == 1
    assert chunks["total"] == len(chunks["chunks"]) >= 1
    text = " ".join(c["text"] for c in chunks["chunks"])
    assert "<EMAIL_ADDRESS>" in text and "<PERSON_1>" in text
    assert "maria.garcia" not in text and "García" not in text
    assert "biblioteca municipal" in text
    first = chunks["chunks"][0]
    assert first["position"] == 0 and first["token_count"] > 0
    assert first["metadata"]["language"] == "es"
    pinned = client.get(
        f"/v1/kbs/kb/documents/{docs['pack.zip/es.txt']['id']}/chunks",
        params={"index_version": 1, "offset": 1},
    ).json()
    assert pinned["chunks"] == chunks["chunks"][1:] and pinned["offset"] == 1
    none = client.get(f"/v1/kbs/kb/documents/{docs['broken.pdf']['id']}/chunks").json()
    assert none["total"] == 0 and none["chunks"] == [] and none["revision"] is None

    bad_parameters_are_clear_4xx(client)


def bad_parameters_are_clear_4xx(client: TestClient) -> None:
    docs = "/v1/kbs/kb/documents"
    assert "language 'fr' is not one of en, es, ru, other" in error(
        client, docs, 422, language="fr"
    )
    message = error(client, docs, 422, metadata="team")
    assert "metadata filter 'team': write key=value" in message
    assert "metadata filter '=x'" in error(client, docs, 422, metadata="=x")
    assert "metadata filter 'a\"b=c'" in error(client, docs, 422, metadata='a"b=c')
    assert "media_type" in error(client, docs, 422, media_type="plain")
    assert "status" in error(client, docs, 422, status="queued")
    assert "q" in error(client, docs, 422, q="x" * 513)
    some = client.get(docs).json()["documents"][0]["id"]
    chunks = f"{docs}/{some}/chunks"
    assert "index version 7 not found in knowledge base 'kb'" in error(
        client, chunks, 404, index_version=7
    )
    assert "index_version" in error(client, chunks, 422, index_version=0)
    assert "limit" in error(client, chunks, 422, limit=1001)
    assert "not found in knowledge base 'kb'" in error(client, f"{docs}/{'0' * 32}/chunks", 404)
    assert "not found" in error(client, "/v1/kbs/nosuch/documents/x/chunks", 404)
