"""The ingest benchmark runs end to end on a tiny corpus (figures come from `ragops bench`)."""

import pytest

from api.bench.ingest import make_corpus, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_corpus_is_deterministic_and_distinct():
    a, b = make_corpus(5, 80), make_corpus(5, 80)
    assert a == b and len({text for _, text in a}) == 5


def test_bench_reports_ratios_against_the_baseline_run_alongside():
    report = run(n_docs=4, words_per_doc=120)
    rows = report["rows"]
    assert rows["llama-index IngestionPipeline"]["speed_vs_baseline"] == 1.0
    assert all(row["chunks"] > 0 and row["seconds"] > 0 for row in rows.values())
    redacted, cached = rows["ragops, redaction on"], rows["ragops, re-ingest (embedding cache)"]
    assert (
        "redact" in redacted["stages"] and "redact" not in rows["ragops, redaction off"]["stages"]
    )
    # The re-ingest is served by the embedding cache.
    assert cached["stages"]["embed"] < redacted["stages"]["embed"]
