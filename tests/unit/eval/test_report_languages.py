"""The report's per-language breakdown on hand-worked runs: a question's language comes
from its test case's metadata, else from its text; per language, question counts and
every metric's mean in A and B with the delta, in the model, JSON, CSV and HTML."""

import csv
import io
import json
import re
from datetime import timedelta

import pytest

import eval.report as report_module
from eval.report import build_report, case_language
from eval.report_html import render_html
from tests.utils.reports import T0, finish, make_result, make_run

pytestmark = pytest.mark.unit

# (question, A's scores, B's scores); case-6's language is declared, not detected
CASES = [
    ("How often should I feed my sourdough starter?", (1.0, 0.6, 0.3), (0.5, 0.4)),
    ("What does Black play in the Sicilian Defence?", (0.5, None, None), (0.5, 0.2)),
    ("¿Con qué frecuencia debo alimentar la masa madre?", (0.2, 0.3, None), (0.4, 0.5)),
    ("¿Qué juegan las negras en la Defensa Siciliana?", (0.4, 0.5, None), (0.6, 0.5)),
    ("Как часто нужно кормить закваску?", (1.0, 0.9, None), (0.25, 0.7)),
    ("q6", (0.0, 0.1, None), (0.2, 0.3)),
]
DECLARED = {"case-6": "es"}


def runs():
    """A scores mrr, rouge and bleu (bleu only on question 1); B mrr and rouge."""
    b = make_run("B1", index_version=1, created_at=T0)
    a = make_run("A1", index_version=2, created_at=T0 + timedelta(hours=1))
    results_a, results_b = [], []
    for pos, (question, (mrr, rouge, bleu), (mrr_b, rouge_b)) in enumerate(CASES, 1):
        results_a.append(make_result(a, pos, question, {"mrr": mrr, "rouge": rouge, "bleu": bleu}))
        results_b.append(make_result(b, pos, question, {"mrr": mrr_b, "rouge": rouge_b}))
    finish(a, results_a)
    finish(b, results_b)
    return a, results_a, b, results_b


def by_name(row):
    return {m.name: m for m in row.metrics}


def test_means_counts_and_deltas_per_language():
    a, ra, b, rb = runs()
    report = build_report(a, ra, b, rb, languages=DECLARED)
    assert {r.position: r.language for r in report.rows} == {
        1: "en",
        2: "en",
        3: "es",
        4: "es",
        5: "ru",
        6: "es",  # declared; "q6" alone has no language signal
    }
    # languages in a fixed order, only those present
    assert [row.language for row in report.by_language] == ["en", "es", "ru"]
    en, es, ru = report.by_language
    assert (en.questions, en.baseline_questions) == (2, 2)
    assert (es.questions, es.baseline_questions) == (3, 3)
    assert (ru.questions, ru.baseline_questions) == (1, 1)
    assert [m.name for m in en.metrics] == report.metrics == ["mrr", "bleu", "rouge"]

    m = by_name(en)
    assert (m["mrr"].a, m["mrr"].a_count, m["mrr"].b, m["mrr"].b_count) == (0.75, 2, 0.5, 2)
    assert m["mrr"].delta == pytest.approx(0.25)
    # rouge: A scored one English question, B both
    assert (m["rouge"].a, m["rouge"].a_count, m["rouge"].b_count) == (0.6, 1, 2)
    assert m["rouge"].b == pytest.approx(0.3) and m["rouge"].delta == pytest.approx(0.3)
    # bleu: only A scored it, so no B mean and no delta
    assert (m["bleu"].a, m["bleu"].a_count, m["bleu"].b, m["bleu"].delta) == (0.3, 1, None, None)

    m = by_name(es)
    assert m["mrr"].a == pytest.approx(0.2) and m["mrr"].b == pytest.approx(0.4)
    assert m["mrr"].delta == pytest.approx(-0.2)
    assert m["rouge"].a == pytest.approx(0.3) and m["rouge"].b == pytest.approx(1.3 / 3, abs=1e-6)
    assert m["rouge"].delta == pytest.approx(0.3 - 1.3 / 3, abs=1e-6)
    assert (m["bleu"].a, m["bleu"].a_count, m["bleu"].delta) == (None, 0, None)

    m = by_name(ru)
    assert (m["mrr"].a, m["mrr"].b, m["mrr"].delta) == (1.0, 0.25, 0.75)
    assert m["rouge"].delta == pytest.approx(0.2)

    # the per-language counts add up to the overall ones
    overall = {row.name: row for row in report.aggregates}
    for name in report.metrics:
        counts = [by_name(lang)[name].a_count for lang in report.by_language]
        assert sum(counts) == overall[name].a_count


def test_without_a_baseline_only_a_is_broken_down():
    a, ra, _, _ = runs()
    ra[0].question = "Quelle est la capitale de la France ?"  # French: "other"
    report = build_report(a, ra, languages={**DECLARED, "case-5": "ru-RU", "case-2": "fr"})
    assert [(r.language, r.questions, r.baseline_questions) for r in report.by_language] == [
        ("es", 3, 0),
        ("ru", 1, 0),
        ("other", 2, 0),
    ]
    other = by_name(report.by_language[-1])
    assert (other["mrr"].a, other["mrr"].a_count) == (0.75, 2)
    assert (other["mrr"].b, other["mrr"].b_count, other["mrr"].delta) == (None, 0, None)


def test_declared_languages_are_normalised():
    assert case_language("es") == "es"
    assert case_language(" EN-us ") == "en"
    assert case_language("ru_RU") == "ru"
    assert case_language("fr") == "other"
    assert case_language("") is None
    assert case_language(None) is None
    assert case_language(3) is None


def test_detection_runs_once_per_distinct_question(monkeypatch):
    calls = []
    detect = report_module.detect_language

    def counting(text):
        calls.append(text)
        return detect(text)

    monkeypatch.setattr(report_module, "detect_language", counting)
    a, ra, b, rb = runs()
    build_report(a, ra, b, rb, languages=DECLARED)
    # A and B ask the same questions; case-6 declares its language
    assert sorted(calls) == sorted(q for q, _, _ in CASES[:5])


def test_by_language_in_summary_json_csv_and_html():
    a, ra, b, rb = runs()
    report = build_report(a, ra, b, rb, languages=DECLARED)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["by_language"] == data["summary"]["by_language"]
    assert list(data["by_language"]) == ["en", "es", "ru"]
    es = data["by_language"]["es"]
    assert (es["questions"], es["baseline_questions"]) == (3, 3)
    mrr = next(m for m in es["metrics"] if m["name"] == "mrr")
    assert mrr == {"name": "mrr", "a": 0.2, "a_count": 3, "b": 0.4, "b_count": 3, "delta": -0.2}
    assert {q["position"]: q["language"] for q in data["questions"]}[6] == "es"
    # existing summary fields are unchanged
    assert data["summary"]["better"] == report.summary["better"]

    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert {int(r["position"]): r["language"] for r in rows} == {
        1: "en",
        2: "en",
        3: "es",
        4: "es",
        5: "ru",
        6: "es",
    }

    page = render_html(report)
    section = page[page.index('<h2 id="languages">') : page.index('<h2 id="plots">')]
    tr = {
        name: row
        for row in re.findall(r"<tr>(.*?)</tr>", section)
        for name in ("English", "Spanish", "Russian")
        if name in row
    }
    assert set(tr) == {"English", "Spanish", "Russian"} and section.count("<tr>") == 4
    assert "<td class=num>3 / 3</td>" in tr["Spanish"]
    assert "−0.200" in tr["Spanish"] and "0.20 vs 0.40" in tr["Spanish"]
    assert "+0.750" in tr["Russian"] and "1.00 vs 0.25" in tr["Russian"]

    alone = render_html(build_report(a, ra, languages=DECLARED))
    section = alone[alone.index('<h2 id="languages">') : alone.index('<h2 id="plots">')]
    assert "<td class=num>3</td><td class=num>0.200</td>" in section  # es: count, mrr
