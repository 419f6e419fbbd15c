"""The Dify External Knowledge API (`POST /retrieval`) on the real app."""

import pytest

from tests.utils.answers import corpus_client
from tests.utils.samples import QUERIES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY = "dify-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with corpus_client(tmp_path_factory.mktemp("dify"), admin_key=KEY) as c:
        yield c


def body(query=QUERIES[0][0], top_k=3, score_threshold=0.0, **extra):
    return {
        "knowledge_id": "docs",
        "query": query,
        "retrieval_setting": {"top_k": top_k, "score_threshold": score_threshold},
        **extra,
    }


def test_records_have_difys_shape(client):
    r = client.post("/retrieval", json=body(), headers=AUTH)
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    assert len(records) == 3
    top = records[0]
    assert set(top) == {"content", "score", "title", "metadata"}
    assert top["title"] == "volcanoes.pdf" and "pyroclastic" in top["content"].lower()
    assert 0 < top["score"] <= 1 and isinstance(top["metadata"], dict)
    assert top["metadata"]["page_number"] == 2 and top["metadata"]["index_version"] == 1
    assert [x["score"] for x in records] == sorted((x["score"] for x in records), reverse=True)


def test_threshold_and_metadata_condition(client):
    r = client.post("/retrieval", json=body(score_threshold=0.99), headers=AUTH)
    assert r.json() == {"records": []}
    condition = {
        "logical_operator": "and",
        "conditions": [
            {"name": ["filename"], "comparison_operator": "is", "value": "sourdough.md"}
        ],
    }
    r = client.post("/retrieval", json=body(metadata_condition=condition), headers=AUTH)
    assert r.status_code == 200 and {x["title"] for x in r.json()["records"]} == {"sourdough.md"}
    condition["conditions"][0]["comparison_operator"] = "contains"
    r = client.post("/retrieval", json=body(metadata_condition=condition), headers=AUTH)
    assert r.status_code == 400 and "not supported" in r.json()["error_msg"]


def test_errors_have_difys_codes(client):
    r = client.post("/retrieval", json=body())
    assert r.status_code == 403 and r.json()["error_code"] == 1001
    r = client.post("/retrieval", json=body(), headers={"Authorization": f"Basic {KEY}"})
    assert r.status_code == 403 and r.json()["error_code"] == 1001
    r = client.post("/retrieval", json=body(), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 403 and r.json() == {
        "error_code": 1002,
        "error_msg": "Authorization failed",
    }
    r = client.post("/retrieval", json={**body(), "knowledge_id": "missing"}, headers=AUTH)
    assert r.status_code == 404 and r.json()["error_code"] == 2001
    r = client.post("/retrieval", json={"knowledge_id": "docs"}, headers=AUTH)
    assert r.status_code == 400 and "query" in r.json()["error_msg"]
