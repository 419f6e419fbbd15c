"""The report model on hand-worked runs: deltas, worst-regression order, the verdict,
validation, CSV columns, and HTML that escapes user text and loads nothing."""

import csv
import io
import json
import re
from datetime import timedelta

import pytest

from core.catalog.models import JobStatus
from core.errors import Conflict, InvalidInput
from eval.report import (
    build_report,
    check_comparable,
    check_format,
    check_reportable,
    metric_sort_key,
)
from eval.report_html import render_html
from tests.utils.reports import T0, finish, make_result, make_run, random_pair

pytestmark = pytest.mark.unit


def three_questions():
    """A vs B on three questions and two metrics (+ one metric only A scored)."""
    b = make_run("B1", index_version=1, created_at=T0)
    a = make_run("A1", index_version=2, created_at=T0 + timedelta(hours=1))
    results_b = [
        make_result(b, 1, "q1", {"mrr": 0.5, "rouge": 0.5}, chunk_ids=["c1"]),
        make_result(b, 2, "q2", {"mrr": 1.0, "rouge": 0.8}),
        make_result(b, 3, "q3", {"mrr": 0.2, "rouge": None}),
    ]
    results_a = [
        make_result(a, 1, "q1", {"mrr": 1.0, "rouge": 0.7, "bleu": 0.3}, chunk_ids=["c2"]),
        make_result(a, 2, "q2", {"mrr": 0.5, "rouge": 0.6, "bleu": 0.1}),  # regressed
        make_result(a, 3, "q3", {"mrr": 0.1, "rouge": 0.9, "bleu": None}),  # slightly worse
    ]
    finish(a, results_a)
    finish(b, results_b)
    return a, results_a, b, results_b


def test_rows_sort_worst_regression_first_with_deltas():
    a, ra, b, rb = three_questions()
    report = build_report(a, ra, b, rb, texts={"c1": "old passage"}, baseline_source="requested")
    assert report.metrics == ["mrr", "bleu", "rouge"]  # declared order, not alphabetical
    assert report.compared == ["mrr", "rouge"]  # B never scored bleu
    assert [r.position for r in report.rows] == [2, 3, 1]
    worst, middle, best = report.rows
    assert worst.deltas == {"mrr": -0.5, "rouge": -0.2}
    assert worst.regression == pytest.approx(-0.35)
    # rouge unscored in B: the regression is the mrr delta alone
    assert middle.deltas == {"mrr": -0.1, "rouge": None}
    assert middle.regression == pytest.approx(-0.1)
    assert best.regression == pytest.approx(0.35)
    assert best.mean_a == pytest.approx((1.0 + 0.7 + 0.3) / 3)
    # contexts carry the chunk text, or None when the chunk is gone
    assert [c.text for c in best.b.contexts] == ["old passage"]
    assert [c.text for c in best.a.contexts] == [None]

    by_name = {m.name: m for m in report.aggregates}
    assert by_name["mrr"].a == pytest.approx(1.6 / 3, abs=1e-6)
    assert by_name["mrr"].delta == pytest.approx(1.6 / 3 - 1.7 / 3, abs=1e-5)
    assert by_name["rouge"].delta == pytest.approx(round(2.2 / 3, 6) - 0.65, abs=1e-6)
    assert by_name["rouge"].b_count == 2
    assert by_name["bleu"].b is None and by_name["bleu"].delta is None

    summary = report.summary
    assert summary["better"] == ["rouge"] and summary["worse"] == ["mrr"]
    assert summary["questions_regressed"] == 2 and summary["questions_improved"] == 1
    assert summary["worst_regression"] == {"position": 2, "question": "q2", "delta": -0.35}
    assert summary["text"].startswith("A is better than B on 1/2 metrics (worse on 1);")
    assert "Worst regression: #2 “q2” (Δ -0.350)" in summary["text"]


def test_verdict_leads_with_the_side_that_wins_more_metrics():
    a, ra, b, rb = three_questions()
    for r in ra:
        r.scores = {m: (0.0 if v is not None else None) for m, v in r.scores.items()}
    finish(a, ra)
    text = build_report(a, ra, b, rb).summary["text"]
    assert text.startswith("A is worse than B on 2/2 metrics; 3 of 3 questions regressed")
    c = make_run("C1", index_version=3, created_at=T0 + timedelta(hours=2))
    rc = [make_result(c, r.position, r.question, r.scores) for r in rb]
    finish(c, rc)
    same = build_report(c, rc, b, rb)
    assert same.summary["text"].startswith("A and B score the same on all 2 compared metrics;")
    assert same.summary["text"].endswith("No question regressed.")


def test_without_baseline_rows_sort_by_weakest_and_history_is_timed():
    a, ra, _, _ = three_questions()
    older = make_run("old", index_version=1, created_at=T0 - timedelta(days=1))
    older.aggregate = {"mrr": {"mean": 0.4, "count": 3}}
    report = build_report(a, ra, history=[a, older])
    assert report.baseline is None and report.compared == []
    assert [r.position for r in report.rows] == [2, 3, 1]  # means 0.4, 0.5, 0.667
    assert all(r.regression is None and r.b is None for r in report.rows)
    assert [(h.run_id, h.label) for h in report.history] == [("old", ""), ("A1", "A")]
    assert report.history[0].means == {"mrr": 0.4}
    assert report.summary["text"].startswith("No baseline: no earlier succeeded run of smoke@1")
    assert "Weakest question: #2 “q2” (mean 0.400)" in report.summary["text"]


def test_runs_must_share_a_test_set_version_and_have_succeeded():
    a, _, b, _ = three_questions()
    other = make_run("X", index_version=1, created_at=T0, testset_id="ts2")
    other.key = {**other.key, "testset": "other", "testset_version": 3}
    with pytest.raises(InvalidInput, match="scored test set smoke@1 but run X scored other@3"):
        check_comparable(a, other)
    with pytest.raises(InvalidInput, match="not with itself"):
        check_comparable(a, a)
    check_comparable(a, b)

    a.status, a.progress = JobStatus.RUNNING, 0.4
    with pytest.raises(Conflict, match="eval run A1 is 40% done; report when it has succeeded"):
        check_reportable(a)
    b.status, b.error = JobStatus.FAILED, "generator unreachable"
    with pytest.raises(Conflict, match=r"compare run B1 failed \(generator unreachable\)"):
        check_reportable(b, "compare run")
    assert check_format("csv") == "csv"
    with pytest.raises(InvalidInput, match="format must be one of html, json, csv, got 'xml'"):
        check_format("xml")


def test_metric_order_follows_the_declared_metrics():
    names = ["semantic_similarity", "zzz", "ndcg@10", "mrr", "recall@10", "bleu"]
    assert sorted(names, key=metric_sort_key) == [
        "recall@10",
        "mrr",
        "ndcg@10",
        "bleu",
        "semantic_similarity",
        "zzz",
    ]


def test_csv_has_one_row_per_question_with_both_scores_and_deltas():
    a, ra, b, rb = three_questions()
    ra[0].question = "=HYPERLINK(1)"
    ra[0].answer = "+1 is the answer"
    report = build_report(a, ra, b, rb)
    rows = list(csv.reader(io.StringIO(report.to_csv())))
    assert rows[0] == [
        "position",
        "question",
        "regression",
        "mean_a",
        "mean_b",
        "mrr_a",
        "mrr_b",
        "mrr_delta",
        "bleu_a",
        "bleu_b",
        "bleu_delta",
        "rouge_a",
        "rouge_b",
        "rouge_delta",
        "answer_a",
        "answer_b",
        "language",
    ]
    assert [r[0] for r in rows[1:]] == ["2", "3", "1"]
    q2 = dict(zip(rows[0], rows[1], strict=True))
    assert q2["regression"] == "-0.35" and q2["mrr_a"] == "0.5" and q2["mrr_b"] == "1"
    assert q2["mrr_delta"] == "-0.5" and q2["bleu_b"] == "" and q2["bleu_delta"] == ""
    q1 = dict(zip(rows[0], rows[3], strict=True))
    # a spreadsheet must not evaluate question or answer text as a formula
    assert q1["question"] == "'=HYPERLINK(1)" and q1["answer_a"] == "'+1 is the answer"

    alone = build_report(a, ra)
    header, *body = list(csv.reader(io.StringIO(alone.to_csv())))
    assert header == rows[0] and all(r[header.index("mrr_b")] == "" for r in body)


def test_json_is_the_whole_model():
    pair = random_pair(questions=8)
    report = build_report(pair.a, pair.results_a, pair.b, pair.results_b, texts=pair.texts)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["run"]["id"] == "run-a" and data["baseline"]["id"] == "run-b"
    regressions = [q["regression"] for q in data["questions"]]
    assert regressions == sorted(regressions)
    assert len(data["distributions"]["mrr"]["a"]) == 8
    assert data["summary"]["text"] == report.summary["text"]
    assert [h["label"] for h in data["history"]][-2:] == ["B", "A"]


def test_html_escapes_user_text_and_is_self_contained():
    pair = random_pair(questions=12)
    pair.results_a[0].answer = '<img src="https://evil.example/x.png" onerror="alert(1)">'
    pair.texts["a1-0"] = "</div><script>alert('chunk')</script>"
    report = build_report(
        pair.a,
        pair.results_a,
        pair.b,
        pair.results_b,
        texts=pair.texts,
        history=pair.history,
        chunking={("kb1", 3): {"chunk_size": 200, "chunk_overlap": 32}},
        baseline_source="requested",
    )
    page = render_html(report)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "&lt;/div&gt;&lt;script&gt;alert(&#x27;chunk&#x27;)" in page
    assert "&lt;img src=&quot;https://evil.example/x.png&quot;" in page
    # every image is inline, nothing is fetched: the only URL is the escaped answer text
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert re.findall(r"https?://", page) == ["https://"]
    assert "default-src 'none'" in page
    assert "(chunk no longer stored)" in page  # b1-2 was garbage-collected
    assert "size 200, overlap 32" in page and "unknown (version removed)" in page
    assert report.summary["text"].split(";")[0] in page
    # worst regression first in both the table and the side-by-side section
    worst = report.rows[0].position
    assert page.index(f'href="#q-{worst}"') < page.index(f'href="#q-{report.rows[1].position}"')
    assert f'<details id="q-{worst}" open>' in page


def test_judge_errors_are_kept_apart_from_the_scores():
    a, ra, b, rb = three_questions()
    ra[0].scores = {**ra[0].scores, "mrr": None, "errors": {"mrr": "judge <timed out>"}}
    finish(a, ra)
    report = build_report(a, ra, b, rb)
    row = next(r for r in report.rows if r.position == 1)
    assert row.a.errors == {"mrr": "judge <timed out>"} and "errors" not in row.a.scores
    assert "errors" not in report.metrics and "errors_a" not in report.csv_columns()
    assert row.deltas["mrr"] is None
    assert "no mrr score: judge &lt;timed out&gt;" in render_html(report)
