"""LLM-judged metrics in real eval runs: the sample corpus indexed, ragas' judged
metrics over HTTP against the scripted judge server (a stand-in for a paid endpoint whose
verdicts follow the prompt content), usage accounting, per-question error isolation,
resumption; and one slow smoke run with the real local model as judge."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from api.app import create_app
from core.catalog.models import EvalResult
from core.errors import Unavailable
from eval.judge import Judge
from eval.llm_metrics import LLMScorer
from eval.runs import run_eval
from tests.conftest import make_settings
from tests.utils import scripted_judge_server as sj
from tests.utils.answers import corpus_client, upload
from tests.utils.api import wait_for_documents
from tests.utils.components import SHARED_COMPONENTS
from tests.utils.samples import QUERIES
from tests.utils.servers import free_port, serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JUDGED = ["faithfulness", "answer_relevancy", "llm_context_precision", "llm_context_recall"]
REFERENCES = {
    3: "Feed it once a day at room temperature: discard all but 50 g, then add 50 g flour "
    "and 50 g water.",
    5: "Black answers 1. e4 with 1... c5, fighting for the d4 square from the side.",
}
PRICE_IN, PRICE_OUT = 0.5, 2.0


@pytest.fixture(scope="module")
def judge():
    app = sj.make_app()
    with serve(app) as url:
        yield app, f"{url}/v1"


def judge_settings(base_url: str) -> dict:
    return {
        "judge_base_url": base_url,
        "judge_model": "scripted",
        "judge_api_key": sj.API_KEY,
        "judge_price_per_1k_input": PRICE_IN,
        "judge_price_per_1k_output": PRICE_OUT,
        # The `openai` answer generator talks to the same server, which answers plain
        # chat requests with an unfaithful sentence.
        "openai_base_url": base_url,
        "openai_model": "scripted",
        "openai_api_key": sj.API_KEY,
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory, judge):
    _, base_url = judge
    with corpus_client(tmp_path_factory.mktemp("judge"), kb="kb", **judge_settings(base_url)) as c:
        cases = [{"question": q, "reference_doc_ids": [f]} for q, f in QUERIES]
        for i, answer in REFERENCES.items():
            cases[i]["reference_answer"] = answer
        r = c.post("/v1/testsets", json={"name": "samples", "cases": cases})
        assert r.status_code == 201, r.text
        yield c


def wait_run(client, run_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/v1/evals/{run_id}").json()
        if run["status"] in {"succeeded", "failed"}:
            return run
        time.sleep(0.2)
    raise AssertionError(f"eval run {run_id} did not finish: {run}")


def judged_calls(app, since: int) -> dict:
    """What the server answered as a judge (not as the answer generator) since `since`."""
    rows = [(k, u) for k, u in app.state.requests[since:] if k != "answer"]
    return {
        "calls": len(rows),
        "prompt_tokens": sum(u["prompt_tokens"] for _, u in rows),
        "completion_tokens": sum(u["completion_tokens"] for _, u in rows),
    }


def evaluate(client, judge_app, **body):
    before = len(judge_app.state.requests)
    r = client.post("/v1/evals", json={"testset": "samples", "kb": "kb", **body})
    assert r.status_code == 202, r.text
    run = wait_run(client, r.json()["id"])
    assert run["status"] == "succeeded", run["error"]
    results = client.get(f"/v1/evals/{run['id']}/results").json()["results"]
    return run, results, judged_calls(judge_app, before)


def cost(usage):
    return round(
        usage["prompt_tokens"] / 1000 * PRICE_IN + usage["completion_tokens"] / 1000 * PRICE_OUT,
        6,
    )


def test_judged_scores_follow_the_answer_and_usage_is_counted(client, judge):
    app, _ = judge
    faithful, faithful_rows, served = evaluate(
        client, app, metrics=["recall@k", *JUDGED], generator="extractive"
    )
    assert faithful["key"]["params"]["judge"] == "openai:scripted"
    assert faithful["usage"] == {"judge": "openai:scripted", **served, "cost_usd": cost(served)}
    assert served["calls"] >= 6 * 3 and served["prompt_tokens"] > 0
    for row in faithful_rows:
        assert "errors" not in row["scores"], row["scores"]
        assert set(JUDGED) <= set(row["scores"])
        if not row["answer"].startswith("I don't know"):
            assert row["scores"]["faithfulness"] == 1.0, row["answer"]
    with_reference = [faithful_rows[i] for i in REFERENCES]
    assert all(row["scores"]["llm_context_recall"] == 1.0 for row in with_reference)
    assert all(row["scores"]["llm_context_precision"] > 0 for row in with_reference)
    assert faithful_rows[0]["scores"]["llm_context_recall"] is None  # no reference answer

    unfaithful, unfaithful_rows, served = evaluate(
        client, app, metrics=["recall@k", *JUDGED], generator="openai"
    )
    assert unfaithful["usage"]["calls"] == served["calls"]
    assert all(
        row["answer"].startswith("The moon is made of green cheese") for row in unfaithful_rows
    )
    assert all(row["scores"]["faithfulness"] == 0.0 for row in unfaithful_rows)
    agg_f, agg_u = faithful["aggregate"], unfaithful["aggregate"]
    assert agg_f["faithfulness"]["mean"] > 0.5 > agg_u["faithfulness"]["mean"] == 0.0
    assert agg_u["answer_relevancy"]["mean"] < agg_f["answer_relevancy"]["mean"]
    # Context metrics judge the passages against the reference, not the answer.
    for name in ("llm_context_precision", "llm_context_recall"):
        assert agg_u[name] == agg_f[name]
        assert agg_f[name]["count"] == len(REFERENCES)


def test_a_bad_verdict_costs_one_metric_not_the_run_and_resumes(client, judge):
    app, _ = judge
    app.state.garbage["NLIStatementOutput"] = -1
    try:
        run, rows, served = evaluate(client, app, metrics=["faithfulness", "answer_relevancy"])
    finally:
        app.state.garbage.clear()
    for row in rows:
        scores = row["scores"]
        assert scores["faithfulness"] is None
        assert "NLIStatementOutput" in scores["errors"]["faithfulness"]
        assert "answer_relevancy" not in scores["errors"]
        assert 0 <= scores["answer_relevancy"] <= 1
    assert "faithfulness" not in run["aggregate"]
    assert run["aggregate"]["answer_relevancy"]["count"] == 6
    assert run["usage"]["calls"] == served["calls"]

    # A retried job scores only the missing questions and adds their judge calls.
    rt = client.app.state.runtime
    with rt.db.session() as s:
        s.execute(delete(EvalResult).where(EvalResult.run_id == run["id"], EvalResult.position > 4))
    before = len(app.state.requests)
    assert run_eval(rt, {"run_id": run["id"]}) == "scored 2 questions (4 already done)"
    extra = judged_calls(app, before)
    again = client.get(f"/v1/evals/{run['id']}").json()
    assert extra["calls"] > 0
    assert again["usage"]["calls"] == run["usage"]["calls"] + extra["calls"]
    assert again["usage"]["prompt_tokens"] == run["usage"]["prompt_tokens"] + extra["prompt_tokens"]
    # The kept rows keep their errors; the re-scored ones met a working judge.
    with rt.db.session() as s:
        stored = dict(
            s.execute(
                select(EvalResult.position, EvalResult.scores).where(EvalResult.run_id == run["id"])
            ).all()
        )
    assert sorted(stored) == [1, 2, 3, 4, 5, 6]
    assert all("faithfulness" in stored[p]["errors"] for p in (1, 2, 3, 4))
    assert all(stored[p]["faithfulness"] is not None for p in (5, 6))


def test_an_unreachable_judge_fails_the_attempt_instead_of_scoring_none(tmp_path):
    settings = make_settings(
        tmp_path,
        judge_base_url=f"http://127.0.0.1:{free_port()}/v1",
        judge_model="m",
        judge_timeout_seconds=5,
    )
    scorer = LLMScorer(
        Judge(settings, embedder=SHARED_COMPONENTS.embedder(settings)), metrics=["faithfulness"]
    )
    with pytest.raises(Unavailable, match="RAGOPS_JUDGE_BASE_URL"):
        scorer.score(question="q?", answer="An answer.", contexts=["A passage."], reference=None)


def test_local_model_as_judge_completes_and_counts_tokens(tmp_path):
    """The real SmolLM2 as judge: too small for reliable JSON, so the run must complete
    with per-metric errors (or scores), never crash, and record the tokens it used."""
    settings = make_settings(
        tmp_path / "data",
        redaction_enabled=False,
        judge="local",
        judge_max_tokens=24,
        judge_retries=0,
        judge_timeout_seconds=600,
    )
    text = (
        "Feed a sourdough starter once a day at room temperature: discard all but 50 g, "
        "then add 50 g flour and 50 g water. A healthy starter doubles within eight hours."
    )
    with TestClient(create_app(settings, components=SHARED_COMPONENTS)) as c:
        assert c.post("/v1/kbs", json={"name": "kb"}).status_code == 201
        upload(c, "kb", [("starter.txt", text.encode())])
        wait_for_documents(c, "kb", expected=1)
        case = {
            "question": "How often should I feed my sourdough starter?",
            "reference_doc_ids": ["starter.txt"],
        }
        assert c.post("/v1/testsets", json={"name": "one", "cases": [case]}).status_code == 201
        r = c.post("/v1/evals", json={"testset": "one", "kb": "kb", "metrics": ["faithfulness"]})
        assert r.status_code == 202, r.text
        run = wait_run(c, r.json()["id"], timeout=900)
        assert run["status"] == "succeeded", run["error"]
        assert run["key"]["params"]["judge"].startswith("local:SmolLM2")
        usage = run["usage"]
        assert usage["calls"] >= 1 and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        assert usage["cost_usd"] == 0.0
        (row,) = c.get(f"/v1/evals/{run['id']}/results").json()["results"]
        scores = row["scores"]
        assert scores["faithfulness"] is not None or scores["errors"]["faithfulness"]
