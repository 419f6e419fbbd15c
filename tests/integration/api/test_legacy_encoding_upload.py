"""Uploads in the encodings people really have (a Russian text file in CP866, an HTML page
in windows-1252 with no charset) are indexed, searchable, and their stage report names the
encoding that was detected."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import make_settings
from tests.utils.api import top_filename, wait_for_documents
from tests.utils.components import SHARED_COMPONENTS

pytestmark = pytest.mark.integration

RU = (
    "Смотритель маяка Пётр Савельев записывал погоду каждое утро.\n\n"
    "Его журнал за сорок лет хранится в городском музее и открыт для читателей."
)
RU_BAKERY = (
    "Пекарня у старого порта открывается в шесть утра.\n\n"
    "Хлеб там пекут в дровяной печи по рецепту, которому больше ста лет."
)
ES = (
    "<html><head><title>Panadería</title></head><body><h1>La panadería del puerto</h1>"
    "<p>El horno de leña se enciende a las cuatro; la masa madre descansa doce horas.</p>"
    "<p>¿Por qué el pan sabe así? Según la dueña, por el agua del río y la paciencia.</p>"
    "</body></html>"
)
EN = (
    "The glacier \u201cretreat\u201d survey measured 1\u20ac per metre of core sample.\n\n"
    "Field notes from the caf\u00e9 at the valley floor recorded daily melt rates."
)
FILES = {
    "journal-cp866.txt": (RU.encode("cp866"), "cp866", "кто записывал погоду на маяке"),
    "bakery-koi8.txt": (RU_BAKERY.encode("koi8-r"), "koi8-r", "когда открывается пекарня"),
    "panaderia-1252.html": (ES.encode("cp1252"), "cp1252", "cuánto descansa la masa madre"),
    "glacier-utf16.txt": (EN.encode("utf-16-le"), "utf-16-le", "glacier melt rates survey"),
}


def test_legacy_encodings_are_detected_indexed_and_reported(tmp_path):
    files = [
        ("files", (name, data, "application/octet-stream")) for name, (data, _, _) in FILES.items()
    ]
    with TestClient(
        create_app(make_settings(tmp_path / "data"), components=SHARED_COMPONENTS)
    ) as c:
        assert c.post("/v1/kbs", json={"name": "legacy"}).status_code == 201
        r = c.post("/v1/kbs/legacy/documents", files=files)
        assert r.status_code == 202, r.text
        docs = wait_for_documents(c, "legacy", expected=len(files), timeout=180)
        assert {n: d["status"] for n, d in docs.items()} == {n: "indexed" for n in FILES}, docs
        for name, (_, encoding, query) in FILES.items():
            revision = c.get(f"/v1/kbs/legacy/documents/{docs[name]['id']}").json()
            counts = revision["revisions"][0]["report"]["counts"]["parse"]
            assert counts.get(f"encoding:{encoding}") == 1, (name, counts)
            if query:
                assert top_filename(c, "legacy", query) == name
