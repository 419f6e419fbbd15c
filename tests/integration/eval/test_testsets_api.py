"""Test sets through the API: JSONL, CSV and JSON uploads, versions, per-line 422s and
promotion of corrected thumbs-down answers into cases."""

import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.catalog.models import Answer, AnswerFeedback
from tests.conftest import make_settings
from tests.utils.components import SHARED_COMPONENTS

pytestmark = [pytest.mark.integration]

JSONL = "\n".join(
    json.dumps(c)
    for c in [
        {"question": "What is a pyroclastic flow?", "reference_doc_ids": ["volcanoes.pdf"]},
        {
            "question": "How do bees share directions?",
            "reference_answer": "With the waggle dance.",
            "reference_contexts": ["Worker bees perform a waggle dance."],
            "tags": ["bees", "easy"],
        },
    ]
)
CSV = (
    "question,reference_answer,reference_doc_ids,tags\n"
    'What does Black play in the Sicilian?,1...c5,chess_openings.txt,"chess|openings"\n'
    'Feed a starter how often?,Daily,"[""sourdough.md""]",\n'
)


@pytest.fixture
def client(tmp_path):
    settings = make_settings(tmp_path / "data", redaction_enabled=False)
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        yield c


def upload(client, name, filename, text):
    return client.post(
        "/v1/testsets", data={"name": name}, files={"file": (filename, text.encode())}
    )


def test_upload_jsonl_and_csv_with_versions(client):
    r = upload(client, "smoke", "cases.jsonl", JSONL)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["case_count"] == 2

    r = upload(client, "smoke", "cases.csv", CSV)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2 and r.json()["case_count"] == 2

    r = client.post(
        "/v1/testsets",
        json={"name": "smoke", "cases": [{"question": "Q?", "reference_answer": "A"}]},
    )
    assert r.status_code == 201 and r.json()["version"] == 3

    versions = client.get("/v1/testsets/smoke").json()["testsets"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [t["name"] for t in client.get("/v1/testsets").json()["testsets"]] == ["smoke"] * 3

    v1 = client.get("/v1/testsets/smoke/1").json()
    assert v1["cases"][1]["tags"] == ["bees", "easy"]
    assert v1["cases"][0]["reference_doc_ids"] == ["volcanoes.pdf"]
    v2 = client.get("/v1/testsets/smoke/2").json()
    assert v2["cases"][0]["tags"] == ["chess", "openings"]
    assert v2["cases"][1]["reference_doc_ids"] == ["sourdough.md"]
    assert v2["cases"][1]["reference_answer"] == "Daily"

    assert client.get("/v1/testsets/smoke/9").status_code == 404
    assert "not found" in client.get("/v1/testsets/nope").json()["error"]["message"]


def test_bad_lines_are_422_naming_line_and_field(client):
    bad = "\n".join(
        [
            json.dumps({"question": "ok", "reference_answer": "fine"}),
            json.dumps({"reference_answer": "no question"}),
            "{not json",
            json.dumps({"question": "q", "reference_doc_ids": "a.pdf", "tags": [1]}),
            json.dumps({"question": "no reference"}),
        ]
    )
    r = upload(client, "bad", "bad.jsonl", bad)
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "line 2: field 'question' is missing or empty" in message
    assert "line 3: not valid JSON" in message
    assert "line 4: field 'tags' must be a list of strings" in message
    assert "line 5: no reference" in message
    assert "line 1" not in message

    r = upload(client, "bad", "bad.csv", "question,colour\nq,red\n")
    assert r.status_code == 422 and "unknown column 'colour'" in r.json()["error"]["message"]
    r = upload(client, "bad", "bad.csv", "question,reference_answer\nq,a\n,b\n")
    assert r.status_code == 422
    assert "line 3: field 'question'" in r.json()["error"]["message"]
    r = client.post("/v1/testsets", json={"name": "bad", "cases": [{"question": "q", "extra": 1}]})
    assert r.status_code == 422 and "case 1: unknown field 'extra'" in r.json()["error"]["message"]
    r = upload(client, "bad", "cases.txt", "question\nq\n")
    assert r.status_code == 422 and ".jsonl or .csv" in r.json()["error"]["message"]
    assert client.get("/v1/testsets/bad").status_code == 404  # nothing was stored


def test_from_feedback_and_generation(client):
    assert client.post("/v1/kbs", json={"name": "kb"}).status_code == 201
    kb_id = client.get("/v1/kbs/kb").json()["id"]
    r = client.post("/v1/testsets/fb/from-feedback", params={"kb": "kb"})
    assert r.status_code == 409 and "rating -1 and a correction" in r.json()["error"]["message"]

    rt = client.app.state.runtime
    with rt.db.session() as s:
        for i, (rating, correction) in enumerate([(-1, "Daily."), (-1, None), (1, "x")]):
            answer = Answer(
                kb_id=kb_id,
                query=f"question {i}",
                answer="wrong",
                contexts=[{"index": 1, "chunk_id": "c", "document_id": "d", "text": f"ctx {i}"}],
                generator="extractive",
                prompt_name="default",
                prompt_version=1,
            )
            s.add(answer)
            s.flush()
            s.add(AnswerFeedback(answer_id=answer.id, rating=rating, correction=correction))

    r = client.post("/v1/testsets/fb/from-feedback", params={"kb": "kb"})
    assert r.status_code == 201, r.text
    assert r.json()["source"] == "feedback" and r.json()["case_count"] == 1
    case = client.get("/v1/testsets/fb/1").json()["cases"][0]
    assert case["question"] == "question 0" and case["reference_answer"] == "Daily."
    assert case["reference_contexts"] == ["ctx 0"] and case["tags"] == ["feedback"]
    assert client.post("/v1/testsets/fb/from-feedback", params={"kb": "nope"}).status_code == 404

    r = client.post("/v1/testsets/generate", json={"kb": "kb", "name": "gen", "size": 5})
    assert r.status_code == 409 and "RAGOPS_JUDGE_BASE_URL" in r.json()["error"]["message"]
