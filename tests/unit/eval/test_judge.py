"""Judge configuration, metric selection, usage accounting, failure classification and
the validation of generated cases: the pieces that need no judge server."""

from __future__ import annotations

import httpx
import openai
import pytest
from pydantic import ValidationError

from core.errors import Conflict, InvalidInput, Unavailable
from eval.generate import GeneratedCase, _sample, _Source, check_generated, check_languages
from eval.judge import Usage, describe_failure, fatal, judge_for_metrics, judge_label
from eval.metrics import OFFLINE_METRICS, OfflineScorer, aggregate, metric_names
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


def test_judge_kind_comes_from_the_settings(tmp_path):
    assert make_settings(tmp_path).judge_kind is None
    s = make_settings(tmp_path, judge_base_url="http://h/v1", judge_model="m")
    assert s.judge_kind == "openai" and judge_label(s) == "openai:m"
    assert make_settings(tmp_path, judge="local").judge_kind == "local"
    off = make_settings(tmp_path, judge="none", judge_base_url="http://h/v1", judge_model="m")
    assert off.judge_kind is None and judge_label(off) is None
    with pytest.raises(ValidationError, match="RAGOPS_JUDGE_BASE_URL"):
        make_settings(tmp_path, judge="openai")
    with pytest.raises(ValidationError, match="RAGOPS_JUDGE_MODEL"):
        make_settings(tmp_path, judge_base_url="http://h/v1")


def test_offline_runs_never_depend_on_the_judge(tmp_path):
    broken = make_settings(tmp_path, judge="local", local_generator_path=str(tmp_path / "none"))
    assert judge_for_metrics(broken, ["mrr", "bleu"]) is None
    assert judge_for_metrics(broken, None) is None
    with pytest.raises(InvalidInput, match="RAGOPS_LOCAL_GENERATOR_PATH"):
        judge_for_metrics(broken, ["faithfulness"])


def test_llm_metrics_are_opt_in_and_need_a_judge():
    assert metric_names(None, judge="openai:m") == list(OFFLINE_METRICS)
    assert metric_names(["mrr", "faithfulness"], judge="openai:m") == ["mrr", "faithfulness"]
    with pytest.raises(Conflict, match="RAGOPS_JUDGE_BASE_URL.*RAGOPS_JUDGE=local") as exc:
        metric_names(["mrr", "answer_relevancy", "llm_context_recall"])
    assert "answer_relevancy, llm_context_recall" in str(exc.value)
    with pytest.raises(InvalidInput, match="llm_context_precision"):
        metric_names(["nope"], judge="openai:m")  # the choices include the judged ones


def test_aggregate_skips_the_errors_entry():
    rows = [
        {"faithfulness": None, "mrr": 1.0, "errors": {"faithfulness": "timed out"}},
        {"faithfulness": 0.5, "mrr": 0.0},
    ]
    assert aggregate(rows) == {
        "faithfulness": {"mean": 0.5, "count": 1},
        "mrr": {"mean": 0.5, "count": 2},
    }


def test_answers_are_generated_for_judged_metrics_even_without_reference():
    class Judged:
        needs_answer = True

    assert not OfflineScorer(metrics=["mrr"]).wants_answer(None)
    assert not OfflineScorer(metrics=["mrr"]).wants_answer("ref")
    assert OfflineScorer(metrics=["bleu"]).wants_answer("ref")
    assert OfflineScorer(metrics=["faithfulness"], judge=Judged()).wants_answer(None)


def test_usage_adds_earlier_attempts_and_prices_tokens():
    usage = Usage(judge="openai:m", price_in=0.5, price_out=2.0)
    usage.record({"prompt_tokens": 1000, "completion_tokens": 100})
    usage.record(None)  # a response without usage still counts as a call
    assert usage.as_dict() == {
        "judge": "openai:m",
        "calls": 2,
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "cost_usd": 0.7,
    }
    base = {"calls": 3, "prompt_tokens": 2000, "completion_tokens": 0, "cost_usd": 1.0}
    assert usage.as_dict(base)["calls"] == 5 and usage.as_dict(base)["cost_usd"] == 1.7
    assert Usage(judge="openai:m").as_dict()["cost_usd"] is None  # no prices: unknown
    assert Usage(judge="local:x", free=True).as_dict()["cost_usd"] == 0.0


def test_failures_are_told_apart():
    request = httpx.Request("POST", "http://judge/v1/chat/completions")
    timeout = openai.APITimeoutError(request=request)
    assert fatal(timeout) is None
    assert "RAGOPS_JUDGE_TIMEOUT_SECONDS" in describe_failure(timeout)
    down = fatal(openai.APIConnectionError(request=request))
    assert isinstance(down, Unavailable) and "RAGOPS_JUDGE_BASE_URL" in str(down)
    denied = openai.AuthenticationError(
        "bad key", response=httpx.Response(401, request=request), body=None
    )
    assert isinstance(fatal(denied), Unavailable) and "RAGOPS_JUDGE_API_KEY" in str(fatal(denied))
    busy = openai.InternalServerError(
        "overloaded", response=httpx.Response(503, request=request), body=None
    )
    assert fatal(busy) is None and "HTTP 503" in describe_failure(busy)
    with pytest.raises(ValidationError) as prose:
        GeneratedCase.model_validate_json("Sure! yes")
    assert "not valid GeneratedCase JSON" in describe_failure(prose.value)


PASSAGE = (
    "Feed a sourdough starter once a day at room temperature: discard all but 50 g, "
    "then add 50 g flour and 50 g water."
)


@pytest.mark.parametrize(
    ("question", "answer", "grounded", "problem"),
    [
        ("How often is a sourdough starter fed?", "Once a day.", True, None),
        ("Why?", "Once a day.", True, "too short"),
        ("How often is a sourdough starter fed?", "", True, "answer is missing"),
        ("How often is a starter fed?", "Every full moon, by wizards.", True, "no content word"),
        ("How often is a starter fed?", "Una vez al día.", False, None),
        (PASSAGE, "Once a day.", True, "copies the passage"),
    ],
)
def test_generated_cases_are_validated(question, answer, grounded, problem):
    found = check_generated(
        GeneratedCase(question=question, answer=answer), passage=PASSAGE, grounded=grounded
    )
    assert (found is None) if problem is None else (problem in found)


def test_sampling_spreads_over_documents_and_is_seeded():
    sources = [_Source(f"{d}{i}", "text", d) for d in "abc" for i in range(3)]
    order = _sample(sources, "job-1")
    assert sorted(s.chunk_id for s in order) == sorted(s.chunk_id for s in sources)
    assert len({s.document_id for s in order[:3]}) == 3  # one per document first
    assert [s.chunk_id for s in _sample(sources, "job-1")] == [s.chunk_id for s in order]


def test_languages_are_checked():
    assert check_languages(None) == []
    assert check_languages(["EN", "es", "en"]) == ["en", "es"]
    with pytest.raises(InvalidInput, match="unknown language 'xx'"):
        check_languages(["xx"])
