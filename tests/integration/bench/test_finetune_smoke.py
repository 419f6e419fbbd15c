"""The fine-tuning benchmark runs end to end on a tiny subset of the mlqa set (12 dev and
4 held-out questions per language, MiniLM, 2 training steps) and writes every figure it
promises; the real figures come from `python -m tests.bench.bench_finetune`."""

import json

import pytest

from tests.bench.bench_finetune import feedback_pairs, main
from tests.bench.mlqa import LANGUAGES, load_questions

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_feedback_pairs_come_from_the_dev_split_and_split_by_document():
    questions = load_questions()
    pairs = feedback_pairs(questions, 200, seed=0)
    assert len(pairs) == 200 and pairs == feedback_pairs(questions, 200, seed=0)
    dev_ids = {q.id for q in questions if q.split == "dev"}
    assert all(p.origin["mlqa"] in dev_ids for p in pairs)
    sides: dict[str, set[str]] = {}
    for p in pairs:
        sides.setdefault(p.document_id, set()).add(p.split)
    assert all(len(s) == 1 for s in sides.values())
    assert 0.1 < sum(p.split == "dev" for p in pairs) / len(pairs) < 0.3


def test_the_bench_runs_end_to_end_on_a_tiny_subset(tmp_path):
    out = tmp_path / "finetune.json"
    main(["--smoke", "--model", "all-MiniLM-L6-v2", "--json", str(out)])
    r = json.loads(out.read_text())

    assert r["smoke"] is True and r["steps"] == 2
    assert r["dataset"]["train"] > 0 and r["dataset"]["dev"] > 0
    assert 0 < r["dataset"]["hard_negatives"] <= r["dataset"]["train"]
    assert r["seconds"]["training"] > 0 and len(r["loss_first_last"]) == 2
    for side in ("base", "tuned"):
        figures = r["heldout"][side]
        assert {*LANGUAGES, "all"} <= figures.keys()
        assert figures["all"]["n"] == 12
        assert 0 <= figures["all"]["mrr@10"] <= figures["all"]["recall@10"] <= 1
    reg = r["registration"]
    assert reg["would_register"] is (reg["gain"] + 1e-9 >= reg["min_gain"])
    assert r["dev_report"]["overall"]["questions"] == r["dataset"]["dev"]
    gate = r["gate"]["all"]
    assert gate["passed"] is all(c["passed"] for c in gate["checks"])
    assert {c["metric"] for c in gate["checks"]} == {"recall@5", "mrr@10"}
