"""IR metrics on hand-worked rankings, and the ragas non-LLM metrics on real strings."""

import math

import pytest

from eval.metrics import (
    OFFLINE_METRICS,
    OfflineScorer,
    aggregate,
    metric_names,
    mrr,
    ndcg_at_k,
    ranked_unique,
    recall_at_k,
)

pytestmark = pytest.mark.unit


def test_recall_at_k():
    ranked = ["a", "b", "c", "d"]
    assert recall_at_k(ranked, {"c"}, k=3) == 1.0
    assert recall_at_k(ranked, {"c"}, k=2) == 0.0
    assert recall_at_k(ranked, {"a", "d", "z"}, k=4) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        recall_at_k(ranked, set(), k=3)


def test_mrr():
    assert mrr(["a", "b", "c"], {"a"}) == 1.0
    assert mrr(["a", "b", "c"], {"c", "b"}) == 0.5
    assert mrr(["a", "b", "c"], {"z"}) == 0.0


def test_ndcg_at_k():
    # Relevant at ranks 1 and 3 of two relevant: (1 + 1/log2(4)) / (1 + 1/log2(3)).
    expected = (1 + 0.5) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "x", "b"], {"a", "b"}, k=3) == pytest.approx(expected)
    assert ndcg_at_k(["x", "a"], {"a"}, k=2) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["x", "a"], {"a"}, k=1) == 0.0
    assert ndcg_at_k(["a", "b"], {"a", "b"}, k=5) == 1.0


def test_ranked_unique_keeps_first_occurrence():
    assert ranked_unique(["d1", "d2", "d1", "d3", "d2"]) == ["d1", "d2", "d3"]


def test_aggregate_skips_missing_scores():
    rows = [{"mrr": 1.0, "bleu": None}, {"mrr": 0.5, "bleu": 0.25}]
    assert aggregate(rows) == {
        "bleu": {"mean": 0.25, "count": 1},
        "mrr": {"mean": 0.75, "count": 2},
    }


def test_metric_names_validate():
    assert metric_names(None) == list(OFFLINE_METRICS)
    assert metric_names(["mrr", "mrr", "bleu"]) == ["mrr", "bleu"]
    from core.errors import Conflict, InvalidInput

    with pytest.raises(InvalidInput, match="unknown metric 'nope'"):
        metric_names(["nope"])
    with pytest.raises(Conflict, match="faithfulness"):
        metric_names(["faithfulness"])


class _UnitEmbedder:
    """Deterministic bag-of-letters embedder (normalised), like a real one's contract."""

    def encode(self, texts, *, kind="passage"):
        import numpy as np

        out = np.zeros((len(texts), 26))
        for i, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_ragas_answer_metrics_identical_strings_score_one():
    scorer = OfflineScorer(embedder=_UnitEmbedder())
    text = "A pyroclastic flow moves down the volcano at hundreds of kilometres per hour."
    scores = scorer.answer_scores(answer=text, reference=text)
    assert set(scores) == {"string_similarity", "bleu", "rouge", "semantic_similarity"}
    assert all(v == pytest.approx(1.0) for v in scores.values()), scores

    other = scorer.answer_scores(answer="Bees dance to point at flowers.", reference=text)
    assert all(0.0 <= v < 1.0 for v in other.values()), other
    assert scorer.answer_scores(answer=text, reference=None) == dict.fromkeys(scores)


def test_ragas_context_metrics_in_unit_range():
    scorer = OfflineScorer()
    reference = ["Movable metal type was invented by Johannes Gutenberg around 1440."]
    same = scorer.context_scores(question="q", contexts=reference, references=reference)
    assert same == {"context_precision": pytest.approx(1.0), "context_recall": 1.0}

    mixed = scorer.context_scores(
        question="q",
        contexts=["Sourdough starters need feeding daily.", reference[0]],
        references=reference,
    )
    assert 0.0 < mixed["context_precision"] < 1.0 and mixed["context_recall"] == 1.0
    assert scorer.context_scores(question="q", contexts=["x"], references=[]) == {
        "context_precision": None,
        "context_recall": None,
    }


def test_ir_scores_name_k_and_skip_without_references():
    scorer = OfflineScorer(metrics=["recall@k", "mrr", "ndcg@k"])
    assert scorer.ir_scores(ranked_docs=["a", "b"], relevant=["b"], k=5) == {
        "recall@5": 1.0,
        "mrr": 0.5,
        "ndcg@5": pytest.approx(1 / math.log2(3), abs=1e-6),
    }
    assert scorer.ir_scores(ranked_docs=["a"], relevant=[], k=3) == {
        "recall@3": None,
        "mrr": None,
        "ndcg@3": None,
    }
