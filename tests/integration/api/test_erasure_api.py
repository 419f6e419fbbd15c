"""Erase by data subject (`POST /v1/erasure`) and the erase routes' validation and scope:
what a key may erase is what it administers, nothing else moves."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.catalog.models import Answer
from tests.conftest import make_settings
from tests.utils.answers import upload
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.slow]

BOOT = {"Authorization": "Bearer boot-admin"}


@pytest.fixture
def world(tmp_path):
    tag = uuid.uuid4().hex[:10]
    email = f"ana.{tag}@example.org"
    settings = make_settings(tmp_path / "data", admin_key="boot-admin", redaction_enabled=False)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as client:
        for kb in ("kb", "other"):
            assert client.post("/v1/kbs", json={"name": kb}, headers=BOOT).status_code == 201
        upload(
            client,
            "kb",
            [
                (
                    "hr-note.txt",
                    f"Ana García joined the Madrid office. Her address is {email}.".encode(),
                ),
                ("travel.txt", b"Flights need the approval of a director. Trains are preferred."),
            ],
            headers=BOOT,
        )
        upload(client, "other", [("copy.txt", f"Contact: {email.upper()}".encode())], headers=BOOT)
        kb_docs = wait_for_documents(client, "kb", expected=2, headers=BOOT)
        other_docs = wait_for_documents(client, "other", expected=1, headers=BOOT)
        keys = {}
        for name, role, kbs in (("owner-kb", "owner", ["kb"]), ("reader-kb", "reader", ["kb"])):
            r = client.post("/v1/keys", json={"name": name, "role": role, "kbs": kbs}, headers=BOOT)
            assert r.status_code == 201, r.text
            keys[name] = {"Authorization": f"Bearer {r.json()['key']}"}
        yield client, email, keys, kb_docs, other_docs


def test_erase_by_subject_stays_within_the_keys_kbs(world):
    client, email, keys, kb_docs, other_docs = world
    # An answer asked about the person, from a document that does not mention them.
    r = client.post(
        "/v1/kbs/kb/answer",
        json={"query": f"Who approves flights for {email}?", "generator": "extractive"},
        headers=keys["reader-kb"],
    )
    assert r.status_code == 200, r.text
    about_her = r.json()["id"]
    r = client.post(
        "/v1/kbs/kb/answer",
        json={"query": "Who approves flights?", "generator": "extractive"},
        headers=keys["reader-kb"],
    )
    unrelated = r.json()["id"]
    # A test set outside any KB quoting her: only a key over every KB erases there.
    r = client.post(
        "/v1/testsets",
        json={
            "name": "hr",
            "cases": [
                {"question": f"What is {email}?", "reference_answer": "Ana's address."},
                {"question": "Trains?", "reference_answer": "Preferred."},
            ],
        },
        headers=BOOT,
    )
    assert r.status_code == 201, r.text

    r = client.post("/v1/erasure", json={"values": [email.title()]}, headers=keys["owner-kb"])
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert email not in r.text.casefold()
    assert receipt["kind"] == "subject" and receipt["status"] == "completed"
    assert receipt["stores"]["documents"]["ids"] == [kb_docs["hr-note.txt"]["id"]]
    assert receipt["stores"]["answers"]["ids"] == [about_her]
    assert receipt["stores"]["test_cases"]["count"] == 0
    assert client.get(f"/v1/answers/{unrelated}", headers=BOOT).status_code == 200
    assert client.get(f"/v1/answers/{about_her}", headers=BOOT).status_code == 404
    names = {
        d["filename"] for d in client.get("/v1/kbs/kb/documents", headers=BOOT).json()["documents"]
    }
    assert names == {"travel.txt"}
    # The other KB is not this key's: its copy stays.
    docs = client.get("/v1/kbs/other/documents", headers=BOOT).json()["documents"]
    assert [d["id"] for d in docs] == [other_docs["copy.txt"]["id"]]
    assert client.get("/v1/testsets/hr/1", headers=BOOT).json()["case_count"] == 2

    # The bootstrap admin erases everywhere: the other KB's copy and the global case.
    r = client.post("/v1/erasure", json={"values": [email]}, headers=BOOT)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["stores"]["documents"]["ids"] == [other_docs["copy.txt"]["id"]]
    assert receipt["stores"]["test_cases"]["count"] == 1
    testset = client.get("/v1/testsets/hr/1", headers=BOOT).json()
    assert testset["case_count"] == 1 and [c["question"] for c in testset["cases"]] == ["Trains?"]
    rt = client.app.state.runtime
    with rt.db.session() as s:
        rows = [json.dumps([a.query, a.answer, a.contexts]) for a in s.query(Answer).all()]
    assert rows and not any(email in row.casefold() for row in rows)
    listed = client.get("/v1/erasures", headers=keys["owner-kb"]).json()["erasures"]
    assert len(listed) == 1  # the admin's erase touched a KB this key does not see
    events = client.get("/v1/audit", params={"action": "erasure.subject"}, headers=BOOT).json()
    assert [e["detail"]["values"] for e in events["events"]] == [1, 1]


def test_erase_a_document_and_refusals(world):
    client, email, keys, kb_docs, other_docs = world
    doc = kb_docs["travel.txt"]["id"]
    owner, reader = keys["owner-kb"], keys["reader-kb"]
    assert client.post(f"/v1/kbs/kb/documents/{doc}/erase", headers=reader).status_code == 403
    other = other_docs["copy.txt"]["id"]
    r = client.post(f"/v1/kbs/other/documents/{other}/erase", headers=owner)
    assert r.status_code == 404 and "knowledge base 'other' not found" in r.text
    r = client.post(f"/v1/kbs/kb/documents/{other}/erase", headers=owner)
    assert r.status_code == 404 and "not found in knowledge base 'kb'" in r.text
    for body, fragment in (
        ({}, "values"),
        ({"values": []}, "values"),
        ({"values": ["ab"]}, "at least 3"),
        ({"values": ["  a  "]}, "pattern"),
        ({"values": ["a b"]}, "pattern"),
        ({"values": ["   "]}, "pattern"),
        ({"values": [email], "dry_run": True}, "dry_run"),
        ({"values": "x" * 10}, "values"),
    ):
        r = client.post("/v1/erasure", json=body, headers=owner)
        assert r.status_code == 422, (body, r.text)
        assert fragment in r.text, r.text
    assert client.post("/v1/erasure", json={"values": [email]}, headers=reader).status_code == 403

    r = client.post(f"/v1/kbs/kb/documents/{doc}/erase", headers=owner)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["stores"]["documents"]["ids"] == [doc]
    lines = receipt["stores"]["vectors"]["versions"]
    assert [(v["version"], v["status"], v["removed"]) for v in lines] == [
        (1, "live", lines[0]["removed"])
    ]
    assert lines[0]["removed"] >= 1
    assert client.post(f"/v1/kbs/kb/documents/{doc}/erase", headers=owner).status_code == 404
    assert client.get(f"/v1/erasures/{receipt['id']}", headers=owner).json() == receipt
    assert client.get(f"/v1/erasures/{receipt['id']}", headers=reader).status_code == 403
    assert client.get("/v1/erasures/" + "0" * 32, headers=owner).status_code == 404
    r = client.post("/v1/kbs/kb/retrieve", json={"query": "approval of a director"}, headers=reader)
    assert all(h["document_id"] != doc for h in r.json()["results"])
