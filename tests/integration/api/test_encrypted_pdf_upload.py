"""Uploaded PDFs with an owner password only are indexed (parsed in the isolated worker
processes, like any upload); one that needs a user password fails with the reason."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import make_settings
from tests.utils.api import top_filename, wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.encrypted_pdf import VARIANTS, owner_locked_pdf, user_locked_pdf

pytestmark = pytest.mark.integration

TOPICS = {
    "rc4-128-r3": "ferry",
    "aes-128-r4": "library",
    "aes-256-r6": "bridge",
    "aes-128-r4-strings-identity": "orchard",
    "aes-128-r4-strings-rc4": "observatory",
}


def _pages(topic: str) -> list[str]:
    # Distinct sentences: lines repeated on every page are dropped as boilerplate.
    return [
        f"The {topic} committee met in March and reviewed the draft plans.",
        f"Contractors for the {topic} project were chosen after a public tender.",
        f"Work on the {topic} finished in autumn, two weeks ahead of schedule.",
    ]


def test_owner_locked_pdfs_are_indexed_and_user_locked_fails(tmp_path):
    assert set(TOPICS) == set(VARIANTS)
    files = [
        ("files", (f"{variant}.pdf", owner_locked_pdf(_pages(topic), variant), "application/pdf"))
        for variant, topic in TOPICS.items()
    ]
    files.append(("files", ("locked.pdf", user_locked_pdf(_pages("vault")), "application/pdf")))
    with TestClient(
        create_app(make_settings(tmp_path / "data"), components=SHARED_COMPONENTS)
    ) as c:
        assert c.post("/v1/kbs", json={"name": "archive"}).status_code == 201
        assert c.post("/v1/kbs/archive/documents", files=files).status_code == 202
        docs = wait_for_documents(c, "archive", expected=len(files), timeout=180)

        locked = docs.pop("locked.pdf")
        assert locked["status"] == "failed"
        assert "the PDF is password-protected; upload an unencrypted copy" in locked["error"]
        assert {name: d["status"] for name, d in docs.items()} == {
            f"{v}.pdf": "indexed" for v in VARIANTS
        }
        assert all(d["chunk_count"] >= 1 and d["error"] is None for d in docs.values()), docs
        for d in docs.values():  # the parse report says the file was opened by decrypting
            report = c.get(f"/v1/kbs/archive/documents/{d['id']}").json()["revisions"][0]["report"]
            assert report["counts"]["parse"]["decrypted"] == 1, report
        for variant, topic in TOPICS.items():
            assert (
                top_filename(c, "archive", f"when did work on the {topic} finish")
                == f"{variant}.pdf"
            )
