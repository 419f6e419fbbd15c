"""Evaluation runs end to end with real components: the sample corpus indexed, a test set
of the labelled sample queries, runs pinned to two index versions, and resumption."""

import pytest
from sqlalchemy import delete, select

from core.catalog.models import EvalResult
from eval.runs import run_eval
from tests.utils.answers import corpus_client
from tests.utils.api import wait_eval_run, wait_version
from tests.utils.samples import QUERIES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with corpus_client(tmp_path_factory.mktemp("evals"), kb="kb") as c:
        cases = [{"question": q, "reference_doc_ids": [f]} for q, f in QUERIES]
        cases[5]["reference_answer"] = "Black answers 1.e4 with 1...c5, the Sicilian Defence."
        r = c.post("/v1/testsets", json={"name": "samples", "cases": cases})
        assert r.status_code == 201, r.text
        yield c


def test_eval_runs_on_two_index_versions_and_resume(client):
    c = client
    r = c.post("/v1/evals", json={"testset": "samples", "kb": "kb", "top_k": 5})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued" and r.json()["key"]["index_version"] == 1
    run1 = wait_eval_run(c, r.json()["id"])
    assert run1["progress"] == 1 and run1["completed_count"] == 6
    assert run1["aggregate"]["recall@5"] == {"mean": 1.0, "count": 6}
    assert run1["aggregate"]["mrr"]["mean"] > 0.5 and run1["aggregate"]["ndcg@5"]["mean"] > 0.5
    assert run1["aggregate"]["bleu"]["count"] == 1  # only one case has a reference answer
    assert run1["key"] == {
        "testset": "samples",
        "testset_version": 1,
        "kb": "kb",
        "index_version": 1,
        "embedding_model": run1["key"]["embedding_model"],
        "generator": "extractive",
        "prompt": "default@1",
        "params": {"top_k": 5, "mode": "hybrid"},
    }
    results = c.get(f"/v1/evals/{run1['id']}/results").json()["results"]
    assert [row["position"] for row in results] == [1, 2, 3, 4, 5, 6]
    for row, (_, filename) in zip(results, QUERIES, strict=True):
        assert row["scores"]["recall@5"] == 1.0
        assert filename in {hit["filename"] for hit in row["retrieved"]}
    assert results[5]["answer"] and 0 <= results[5]["scores"]["rouge"] <= 1
    assert results[0]["scores"]["bleu"] is None and results[0]["answer"] == ""

    # Version 2 with small chunks, evaluated pinned while version 1 stays live.
    r = c.post("/v1/kbs/kb/versions", json={"chunking": {"chunk_size": 48, "chunk_overlap": 8}})
    assert r.status_code == 202, r.text
    wait_version(c, "kb", 2)
    r = c.post("/v1/evals", json={"testset": "samples", "kb": "kb", "index_version": 2})
    run2 = wait_eval_run(c, r.json()["id"])
    assert run2["key"]["index_version"] == 2 and run2["key_hash"] != run1["key_hash"]
    assert run2["aggregate"]["recall@5"]["count"] == 6
    listed = c.get("/v1/evals", params={"kb": "kb", "testset": "samples"}).json()["runs"]
    assert {x["id"] for x in listed} == {run1["id"], run2["id"]}

    # Resumption: a retried job scores only the questions without a stored result.
    rt = c.app.state.runtime
    with rt.db.session() as s:
        kept = set(
            s.execute(
                select(EvalResult.id).where(
                    EvalResult.run_id == run1["id"], EvalResult.position <= 4
                )
            ).scalars()
        )
        s.execute(
            delete(EvalResult).where(EvalResult.run_id == run1["id"], EvalResult.position > 4)
        )
    assert run_eval(rt, {"run_id": run1["id"]}) == "scored 2 questions (4 already done)"
    assert run_eval(rt, {"run_id": run1["id"]}) == "scored 0 questions (6 already done)"
    with rt.db.session() as s:
        ids = set(s.execute(select(EvalResult.id).where(EvalResult.run_id == run1["id"])).scalars())
    assert len(ids) == 6 and kept < ids
    again = c.get(f"/v1/evals/{run1['id']}").json()
    assert again["aggregate"] == run1["aggregate"] and again["wall_seconds"] >= run1["wall_seconds"]


def test_eval_requests_are_validated(client):
    c = client

    def error(body, status):
        r = c.post("/v1/evals", json={"testset": "samples", "kb": "kb", **body})
        assert r.status_code == status, r.text
        return r.json()["error"]["message"]

    assert "not found" in error({"testset": "nope"}, 404)
    assert "no version 7" in error({"testset_version": 7}, 404)
    assert "not found" in error({"kb": "nope"}, 404)
    assert "unknown metric" in error({"metrics": ["nope"]}, 422)
    assert "faithfulness" in error({"metrics": ["faithfulness"]}, 409)
    assert "mode" in error({"mode": "sparse"}, 422)
    assert "generator" in error({"generator": "gpt9"}, 422)
    assert c.get("/v1/evals/nope").status_code == 404
    assert c.get("/v1/evals/nope/results").status_code == 404
