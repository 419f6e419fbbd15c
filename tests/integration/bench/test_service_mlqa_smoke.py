"""The service benchmark on the mlqa set runs end to end on a tiny subset (two questions,
records and QA documents per language, both models) and writes every figure it promises;
the full figures come from `python -m tests.bench.bench_service_mlqa`."""

import json

import pytest

from tests.bench.bench_service_mlqa import (
    BASELINE,
    DEFAULT_MODELS,
    LANGUAGES,
    METHODS,
    identifier_docs,
    main,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_identifier_records_are_deterministic_unique_and_hold_their_answer():
    docs = identifier_docs()
    assert docs == identifier_docs() and len(docs) == 200
    assert len({d.identifier for d in docs}) == 200
    assert {d.language for d in docs} == set(LANGUAGES)
    for d in docs:
        assert d.identifier in d.question and d.text.count(d.identifier) >= 3
        assert d.answer in d.text


def test_the_bench_runs_end_to_end_on_a_tiny_subset(tmp_path):
    out = tmp_path / "service_mlqa.json"
    main(["--limit", "2", "--cache", str(tmp_path / "cache"), "--json", str(out)])
    r = json.loads(out.read_text())

    assert r["models"] == list(DEFAULT_MODELS)
    for model in DEFAULT_MODELS:
        ingest = r["ingest"][model]
        assert ingest["failed"] == 0 and ingest["chunks"] >= ingest["documents"] > 0
        for method in METHODS:
            quality = r["retrieval"][model][method]
            assert {*LANGUAGES, "all"} <= quality.keys()
            assert 0 <= quality["all"]["mrr@10"] <= quality["all"]["recall@10"] <= 1
            forms = r["identifiers"][model][method]
            assert 0 <= forms["identifier"]["all"] <= 1
        # A question naming the record finds it first on every method.
        assert all(r["identifiers"][model][m]["question"]["all"] >= 0.9 for m in METHODS)
        answers = r["extractive"][model]
        for name, key in (("qa", "contains"), ("identifier", "contains"), ("mlqa", "cites_gold")):
            assert answers[name]["all"]["n"] == 6 and 0 <= answers[name]["all"][key] <= 1
        assert answers["identifier"]["all"]["contains"] >= 0.5
    latency = r["latency"]
    for where, methods in (("in_process", METHODS), ("http", ("dense", "hybrid"))):
        for method in methods:
            for model in DEFAULT_MODELS:
                timing = latency[where][method][model]
                assert 0 < timing["p50"] <= timing["p99"]
    ratios = latency["ratios"][f"multilingual-e5-small / {BASELINE}"]
    assert ratios["in_process hybrid"]["p50"] > 0
