"""The ingest benchmark runs end to end on a tiny corpus (figures come from `ragops bench`)."""

import pytest

from api.bench.corpus import make_documents
from api.bench.ingest import make_corpus, run
from api.bench.service import run_llama_index
from ingest.embed import resolve_model_path

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


def test_llama_index_baseline_reports_text_its_chunks_hide_from_the_model():
    """SentenceSplitter counts tiktoken tokens: a Russian chunk of 200 of them is longer
    than MiniLM's 256-token window. Counting the model's own tokens (the fair
    baseline) leaves no chunk over it."""
    docs = make_documents(3, words=600)  # en, es, ru
    model = str(resolve_model_path("all-MiniLM-L6-v2"))
    plain = run_llama_index(docs, model, 200, 32)
    fair = run_llama_index(docs, model, 200, 32, model_tokens=True)
    assert plain["truncated_chunks"] > 0 and plain["tokens_not_embedded_share"] > 0
    assert fair["truncated_chunks"] == 0 and fair["tokens_not_embedded_share"] == 0
    assert fair["chunks"] > plain["chunks"]
