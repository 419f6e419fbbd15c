"""The gate's checks on two runs' aggregates: floors, regressions against live, the
`@k` metric names, and what counts as unmeasured."""

import math

from eval.gates import GatePolicy, evaluate, summary


def agg(**means):
    return {name.replace("_at_", "@"): {"mean": v, "count": 10} for name, v in means.items()}


def test_floors_and_regressions_pass_and_fail_on_the_numbers():
    policy = GatePolicy(testset="t", min_scores={"faithfulness": 0.8}, max_regression=0.02)
    live = agg(faithfulness=0.80, mrr=0.70, rouge=0.30)
    ok, checks = evaluate(policy, agg(faithfulness=0.85, mrr=0.69, rouge=0.31), live)
    assert ok and len(checks) == 4  # one floor + three metrics compared with live
    ok, checks = evaluate(policy, agg(faithfulness=0.79, mrr=0.67, rouge=0.31), live)
    failed = {(c["metric"], c["rule"].split()[0]) for c in checks if not c["passed"]}
    assert not ok and failed == {("faithfulness", ">="), ("mrr", "no")}
    text = summary(checks)
    assert text.startswith("2 of 4 checks failed") and "mrr 0.6700" in text
    assert "live 0.7000" in text


def test_exactly_at_the_limit_passes_despite_float_noise():
    policy = GatePolicy(testset="t", min_scores={"mrr": 0.8}, max_regression=0.02)
    ok, _ = evaluate(policy, agg(mrr=0.8), agg(mrr=0.82))
    assert ok


def test_recall_at_k_matches_the_runs_top_k_and_missing_is_a_failure():
    policy = GatePolicy(testset="t", min_scores={"recall@k": 0.5, "bleu": 0.1})
    ok, checks = evaluate(policy, agg(recall_at_3=0.9), None)
    by_metric = {c["metric"]: c for c in checks}
    assert by_metric["recall@k"]["passed"] and by_metric["recall@k"]["value"] == 0.9
    assert not ok and by_metric["bleu"]["note"] == "not measured in the candidate run"


def test_without_live_only_floors_apply_and_nan_is_unmeasured():
    policy = GatePolicy(testset="t", min_scores={"rouge": 0.1}, max_regression=0.0)
    ok, checks = evaluate(policy, agg(rouge=0.2, mrr=0.1), None)
    assert ok and [c["metric"] for c in checks] == ["rouge"]
    ok, checks = evaluate(policy, agg(rouge=math.nan), agg(rouge=0.2))
    assert not ok and all(c["value"] is None for c in checks)


def test_only_the_named_metrics_are_compared_with_live():
    policy = GatePolicy(testset="t", max_regression=0.01, metrics=["mrr"])
    ok, checks = evaluate(policy, agg(mrr=0.7, rouge=0.0), agg(mrr=0.7, rouge=0.9))
    assert ok and [c["metric"] for c in checks] == ["mrr"]
