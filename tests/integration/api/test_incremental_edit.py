"""Editing one paragraph of a long document re-embeds and re-writes only the chunks whose
text changed: the rest keep their ids, rows and vectors (the revision's stage report
says how many of each), and retrieval sees the new text, not the old."""

import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.kbs import get_kb, live_version
from tests.conftest import make_settings
from tests.utils.api import top_filename
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOPICS = [
    "glacier hydrology",
    "medieval bookbinding",
    "sourdough fermentation",
    "tidal power plants",
    "beekeeping in winter",
    "railway signalling",
    "coral reef ecology",
    "violin varnish chemistry",
    "desert irrigation",
    "lighthouse optics",
    "alpine botany",
    "ship hull welding",
]


def paragraph(topic: str, i: int) -> str:
    # Every sentence names the section, so no two paragraphs are near-duplicates (the
    # cleaning stage would drop chunks that repeat an earlier one but for a number).
    sentences = [
        f"Section {i} explains {topic} in practical detail for field engineers.",
        f"In section {i}, the main idea of {topic} is that small careful steps add up.",
        f"Teams that study {topic} keep {i + 3} written logs of every measurement.",
        f"Experts in {topic} compare results across {2 * i + 5} sites to find what matters.",
        f"Part {i} on {topic} starts with history and ends with {i % 7 + 2} open questions.",
    ]
    return " ".join(sentences)


def document(replace: dict[int, str] | None = None) -> bytes:
    parts = ["# Field handbook"]
    for i in range(60):
        text = (replace or {}).get(i) or paragraph(TOPICS[i % len(TOPICS)], i)
        parts.append(text)
    return "\n\n".join(parts).encode()


@pytest.fixture
def client(tmp_path):
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        yield c


def upload_and_wait(client, data: bytes) -> dict:
    r = client.post(
        "/v1/kbs/kb/documents", files=[("files", ("handbook.md", data, "text/markdown"))]
    )
    assert r.status_code == 202, r.text
    doc_id = r.json()["documents"][0]["document_id"]
    return wait_for_revision(client, doc_id, r.json()["documents"][0]["revision"])


def wait_for_revision(
    client, doc_id: str, number: int, *, after: str | None = None, timeout: float = 180.0
) -> dict:
    """The revision once it is indexed (again, if `after`: indexed later than that)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = client.get(f"/v1/kbs/kb/documents/{doc_id}").json()
        rev = next(r for r in doc["revisions"] if r["number"] == number)
        if after is not None and (rev["indexed_at"] or "") <= after:
            time.sleep(0.2)
            continue
        if rev["status"] in ("indexed", "failed"):
            assert rev["status"] == "indexed", rev
            return rev
        time.sleep(0.2)
    raise AssertionError(f"revision {number} not indexed in {timeout}s")


def live_vectors(client) -> int:
    rt = client.app.state.runtime
    with rt.db.session() as s:
        version = live_version(session=s, kb_id=get_kb(session=s, name_or_id="kb").id)
    return rt.indexes.reader(version).count()


def test_editing_one_paragraph_rewrites_only_the_changed_chunks(client):
    assert client.post("/v1/kbs", json={"name": "kb", "redaction": {"enabled": False}}).status_code
    first = upload_and_wait(client, document())
    total = first["chunk_count"]
    assert total >= 20, first
    counts = first["report"]["counts"]
    assert counts["embed"]["embedded"] == total
    assert counts["index"] == {"written": total, "unchanged": 0, "deleted": 0}

    edited = paragraph("volcanic soil chemistry", 17)
    second = upload_and_wait(client, document({17: edited}))
    counts = second["report"]["counts"]
    changed = counts["embed"]["embedded"]
    print(
        f"\nedit one paragraph: {changed} of {second['chunk_count']} chunks re-embedded; "
        f"index {counts['index']}"
    )
    assert 1 <= changed <= 3
    assert counts["embed"]["cache_hits"] == second["chunk_count"] - changed
    assert counts["index"]["written"] == changed
    assert counts["index"]["unchanged"] == second["chunk_count"] - changed
    assert counts["index"]["deleted"] == changed + total - second["chunk_count"]
    # Exactly the document's current chunks are in the index, old text is gone.
    assert live_vectors(client) == second["chunk_count"]
    assert top_filename(client, "kb", "volcanic soil chemistry") == "handbook.md"
    hits = client.post("/v1/kbs/kb/retrieve", json={"query": "volcanic soil", "top_k": 40}).json()
    texts = " ".join(h["text"] for h in hits["results"])
    assert "volcanic soil chemistry" in texts
    assert "Section 17 explains" not in texts or "Section 17 explains volcanic" in texts


def test_an_unchanged_reupload_of_new_metadata_moves_no_vectors_twice(client):
    """Same text, reprocessed by force: every chunk is unchanged and nothing is written."""
    assert client.post("/v1/kbs", json={"name": "kb", "redaction": {"enabled": False}}).status_code
    first = upload_and_wait(client, document())
    doc_id = client.get("/v1/kbs/kb/documents").json()["documents"][0]["id"]
    r = client.post(f"/v1/kbs/kb/documents/{doc_id}/reprocess")
    assert r.status_code == 202, r.text
    again = wait_for_revision(client, doc_id, r.json()["revision"], after=first["indexed_at"])
    counts = again["report"]["counts"]
    assert counts["embed"] == {"embedded": 0, "cache_hits": first["chunk_count"]}
    assert counts["index"] == {"written": 0, "unchanged": first["chunk_count"], "deleted": 0}
    assert live_vectors(client) == first["chunk_count"]
