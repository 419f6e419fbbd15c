"""Reviewer reports for evaluation runs: run A (the one reported) against a baseline B.

`load_report` reads the catalog and `build_report` (pure, so unit-testable without a
database) assembles a `Report`: both runs' keys, aggregates with deltas, one row per
question sorted worst regression first, the KB + test set history for the "metric per
version over time" plot, and the contexts each run retrieved. `Report.to_dict()` is the
JSON format, `Report.to_csv()` the CSV one; `eval.report_html.render_html` the HTML one.
`Report.by_language` breaks the aggregates down by the question's language.

Decisions a reviewer should know:

- Only succeeded runs are reported (Conflict, 409, otherwise): a queued or running run's
  means still move as questions complete, and a failed run lacks questions, so a shared
  report of either would mislead. Wait for the run, or re-run the failed one.
- B defaults to the most recent succeeded run created before A on the same test set
  version and KB whose key differs (a re-run with the same key measures noise, not a
  change); none found: A is reported alone. An explicit `compare` may be any succeeded
  run of the same test set version, on another KB too; another test set (or another
  version of it) is InvalidInput (422): its questions cannot be paired.
- delta = A − B. Every metric is "higher is better" in [0, 1], so a negative delta is a
  regression. A question's `regression` is the mean delta over the metrics both runs
  scored for it; rows sort most negative first. Without B rows sort by A's mean score,
  weakest first.
- A question's language is the one its test case declares (metadata "language": "en",
  "es", "ru"; any other value is "other"), else `ingest.language.detect_language` of the
  question text, computed at report time (cheap: a regex pass, langdetect only for text
  with no function word; cached per report). Per language, `by_language` holds each
  run's question count and every metric's mean over that language's questions, with
  delta = A − B as in the overall aggregates.

Example::

    report = load_report(rt, run_id, compare=None)
    report.summary["text"]   # "A is better than B on 5/7 metrics …"
    Path("r.html").write_text(render_html(report))
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.catalog.models import (
    Chunk,
    EvalResult,
    EvalRun,
    IndexVersion,
    JobStatus,
    TestCase,
    utcnow,
)
from core.errors import Conflict, InvalidInput, NotFound
from eval.metrics import OFFLINE_METRICS
from ingest.language import LANGUAGES, OTHER, detect_language

if TYPE_CHECKING:
    from eval.services import EvalServices

FORMATS = ("html", "json", "csv")
MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}
# Runs of one KB + test set version shown in the history plot (the newest ones).
HISTORY_LIMIT = 100
# |delta| below this counts as unchanged: it would show as 0.000, and a reviewer should
# not see a question counted as regressed next to a delta that reads zero.
TIE = 5e-4
# Order of the per-language breakdown: the languages the pipeline analyses, then the rest.
LANGUAGE_ORDER = (*LANGUAGES, OTHER)
# Cells starting with one of these are formulas to a spreadsheet: CSV text gets a "'".
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _utc_iso(value: datetime) -> str:
    """A catalog timestamp (naive UTC) as the API sends every timestamp: ISO 8601, `Z`."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def metric_sort_key(name: str) -> tuple[int, str]:
    """Offline metrics in their declared order (recall@5 as recall@k), others after."""
    base = re.sub(r"@\d+$", "@k", name)
    order = OFFLINE_METRICS.index(base) if base in OFFLINE_METRICS else len(OFFLINE_METRICS)
    return order, name


@dataclass
class RunInfo:
    """What a report shows of one run; `chunking` is its index version's chunking config
    (None when the version row is gone)."""

    id: str
    label: str
    key: dict[str, Any]
    status: str
    created_at: datetime
    finished_at: datetime | None
    wall_seconds: float
    question_count: int
    aggregate: dict[str, dict[str, Any]]
    chunking: dict[str, Any] | None = None

    @classmethod
    def of(cls, run: EvalRun, label: str, chunking: dict[str, Any] | None = None) -> RunInfo:
        return cls(
            id=run.id,
            label=label,
            key=dict(run.key or {}),
            status=str(run.status),
            created_at=run.created_at,
            finished_at=run.finished_at,
            wall_seconds=float(run.wall_seconds or 0.0),
            question_count=int(run.question_count or 0),
            aggregate=dict(run.aggregate or {}),
            chunking=chunking,
        )

    def mean(self, metric: str) -> float | None:
        value = self.aggregate.get(metric)
        return None if value is None else float(value["mean"])

    def count(self, metric: str) -> int:
        return int((self.aggregate.get(metric) or {}).get("count", 0))


@dataclass
class Context:
    """One retrieved passage; `text` is None once the chunk was garbage-collected."""

    rank: int
    chunk_id: str
    document_id: str
    filename: str
    score: float
    text: str | None


@dataclass
class Side:
    """One run's outcome for one question. `errors` holds why an LLM judge gave no score
    for a metric (the `errors` entry of judged scores), apart from the numbers."""

    answer: str
    scores: dict[str, float | None]
    contexts: list[Context]
    seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class QuestionRow:
    position: int
    question: str
    a: Side
    b: Side | None
    deltas: dict[str, float | None]
    regression: float | None
    mean_a: float | None
    mean_b: float | None
    language: str = OTHER


@dataclass
class MetricRow:
    name: str
    a: float | None
    a_count: int
    b: float | None
    b_count: int
    delta: float | None


@dataclass
class LanguageRow:
    """The aggregates over one language's questions: how many each run answered, and
    one `MetricRow` per report metric (None where no question of the language scored it)."""

    language: str
    questions: int
    baseline_questions: int
    metrics: list[MetricRow]


@dataclass
class HistoryPoint:
    run_id: str
    created_at: datetime
    index_version: int
    means: dict[str, float]
    label: str = ""


@dataclass
class Report:
    run: RunInfo
    baseline: RunInfo | None
    # "requested", "latest earlier run" or None (no baseline)
    baseline_source: str | None
    metrics: list[str]
    compared: list[str]
    aggregates: list[MetricRow]
    rows: list[QuestionRow]
    history: list[HistoryPoint]
    by_language: list[LanguageRow] = field(default_factory=list)
    generated_at: datetime = field(default_factory=utcnow)

    @property
    def summary(self) -> dict[str, Any]:
        return summarize(self)

    def distributions(self) -> dict[str, dict[str, list[float]]]:
        """Per metric, the per-question scores of A and B (None left out)."""
        out: dict[str, dict[str, list[float]]] = {}
        for m in self.metrics:
            a = [r.a.scores[m] for r in self.rows if r.a.scores.get(m) is not None]
            b = [r.b.scores[m] for r in self.rows if r.b and r.b.scores.get(m) is not None]
            out[m] = {"a": [float(x) for x in a], "b": [float(x) for x in b]}  # type: ignore[arg-type]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON format: everything the HTML shows, as data."""

        def run(info: RunInfo | None) -> dict[str, Any] | None:
            if info is None:
                return None
            data = asdict(info)
            data["created_at"] = _utc_iso(info.created_at)
            data["finished_at"] = _utc_iso(info.finished_at) if info.finished_at else None
            return data

        summary = self.summary
        return {
            "run": run(self.run),
            "baseline": run(self.baseline),
            "baseline_source": self.baseline_source,
            "generated_at": _utc_iso(self.generated_at),
            "summary": summary,
            "metrics": self.metrics,
            "compared_metrics": self.compared,
            "aggregates": [asdict(m) for m in self.aggregates],
            "questions": [asdict(r) for r in self.rows],
            "history": [{**asdict(h), "created_at": _utc_iso(h.created_at)} for h in self.history],
            "distributions": self.distributions(),
            "by_language": summary["by_language"],
        }

    def csv_columns(self) -> list[str]:
        columns = ["position", "question", "regression", "mean_a", "mean_b"]
        for m in self.metrics:
            columns += [f"{m}_a", f"{m}_b", f"{m}_delta"]
        # language last: the columns before it keep their positions
        return columns + ["answer_a", "answer_b", "language"]

    def to_csv(self) -> str:
        """One row per question, worst regression first. Columns are stable whether or
        not there is a baseline (B's are empty then); text cells that a spreadsheet would
        take for a formula get a leading apostrophe."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(self.csv_columns())
        for r in self.rows:
            cells: list[Any] = [
                r.position,
                _text_cell(r.question),
                _num(r.regression),
                _num(r.mean_a),
                _num(r.mean_b),
            ]
            for m in self.metrics:
                cells += [
                    _num(r.a.scores.get(m)),
                    _num(r.b.scores.get(m) if r.b else None),
                    _num(r.deltas.get(m)),
                ]
            cells += [_text_cell(r.a.answer), _text_cell(r.b.answer if r.b else ""), r.language]
            writer.writerow(cells)
        return buf.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _text_cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


def _mean(values: Iterable[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return round(sum(present) / len(present), 6) if present else None


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 6)


def _contexts(result: EvalResult, texts: Mapping[str, str]) -> list[Context]:
    return [
        Context(
            rank=rank,
            chunk_id=str(hit.get("chunk_id", "")),
            document_id=str(hit.get("document_id", "")),
            filename=str(hit.get("filename", "")),
            score=float(hit.get("score", 0.0)),
            text=texts.get(str(hit.get("chunk_id", ""))),
        )
        for rank, hit in enumerate(result.retrieved or [], 1)
    ]


def _scores(result: EvalResult) -> dict[str, float | None]:
    return {
        m: (float(v) if isinstance(v, int | float) else None)
        for m, v in (result.scores or {}).items()
        if v is None or isinstance(v, int | float)
    }


def _side(result: EvalResult, texts: Mapping[str, str]) -> Side:
    errors = (result.scores or {}).get("errors")
    return Side(
        answer=result.answer or "",
        scores=_scores(result),
        contexts=_contexts(result, texts),
        seconds=float(result.seconds or 0.0),
        errors={str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {},
    )


def case_language(declared: Any) -> str | None:
    """A test case's declared language (its metadata "language") as "en", "es", "ru" or
    "other"; a region is dropped ("es-MX" is "es"). None when it declares none."""
    if not isinstance(declared, str) or not declared.strip():
        return None
    code = re.split(r"[-_]", declared.strip().lower(), maxsplit=1)[0]
    return code if code in LANGUAGES else OTHER


def _language_rows(
    metrics: Sequence[str],
    scored_a: Sequence[tuple[str, Mapping[str, float | None]]],
    scored_b: Sequence[tuple[str, Mapping[str, float | None]]] | None,
) -> list[LanguageRow]:
    """Per language present, the mean of each metric over that language's questions in
    A and B (`scored_*`: one (language, scores) pair per question; None: no baseline)."""
    out: list[LanguageRow] = []
    for language in LANGUAGE_ORDER:
        mine = [scores for lang, scores in scored_a if lang == language]
        theirs = [scores for lang, scores in scored_b or () if lang == language]
        if not mine and not theirs:
            continue
        rows = []
        for m in metrics:
            va = [s[m] for s in mine if s.get(m) is not None]
            vb = [s[m] for s in theirs if s.get(m) is not None]
            mean_a = _mean(va)
            mean_b = _mean(vb) if scored_b is not None else None
            rows.append(
                MetricRow(
                    name=m,
                    a=mean_a,
                    a_count=len(va),
                    b=mean_b,
                    b_count=len(vb),
                    delta=_delta(mean_a, mean_b),
                )
            )
        out.append(LanguageRow(language, len(mine), len(theirs), rows))
    return out


def check_comparable(run: EvalRun, baseline: EvalRun) -> None:
    """Runs pair question by question only on one test set version."""
    if baseline.id == run.id:
        raise InvalidInput("compare a run with another run, not with itself")
    if baseline.testset_id != run.testset_id:
        a, b = run.key or {}, baseline.key or {}
        raise InvalidInput(
            f"run {run.id} scored test set {a.get('testset')}@{a.get('testset_version')} but "
            f"run {baseline.id} scored {b.get('testset')}@{b.get('testset_version')}; "
            "compare runs of the same test set version"
        )


def check_reportable(run: EvalRun, role: str = "eval run") -> None:
    if run.status == JobStatus.SUCCEEDED:
        return
    if run.status == JobStatus.FAILED:
        raise Conflict(
            f"{role} {run.id} failed ({run.error or 'no error recorded'}); "
            "re-run it and report the new run"
        )
    done = round(100 * float(run.progress or 0.0))
    raise Conflict(f"{role} {run.id} is {done}% done; report when it has succeeded")


def build_report(
    run: EvalRun,
    results: Sequence[EvalResult],
    baseline: EvalRun | None = None,
    baseline_results: Sequence[EvalResult] = (),
    *,
    texts: Mapping[str, str] | None = None,
    history: Sequence[EvalRun] = (),
    chunking: Mapping[tuple[str, int], dict[str, Any]] | None = None,
    baseline_source: str | None = None,
    languages: Mapping[str, Any] | None = None,
) -> Report:
    """Assemble the report from loaded rows (no database access).

    `texts` maps chunk ids to their text; `chunking` maps (kb_id, index version) to the
    version's chunking config; `history` holds the succeeded runs of A's KB and test set;
    `languages` maps case ids to the language their test case declares (metadata
    "language"); other questions' language is detected from their text.
    """
    texts = texts or {}
    chunking = chunking or {}
    languages = languages or {}
    detected: dict[str, str] = {}

    def language_of(result: EvalResult) -> str:
        declared = case_language(languages.get(result.case_id))
        if declared is not None:
            return declared
        if result.question not in detected:
            detected[result.question] = detect_language(result.question)
        return detected[result.question]

    if baseline is not None:
        check_comparable(run, baseline)
    a = RunInfo.of(run, "A", chunking.get((run.kb_id, run.index_version)))
    b = (
        RunInfo.of(baseline, "B", chunking.get((baseline.kb_id, baseline.index_version)))
        if baseline is not None
        else None
    )
    names = set(a.aggregate) | (set(b.aggregate) if b else set())
    metrics = sorted(names, key=metric_sort_key)
    compared = [m for m in metrics if b is not None and m in a.aggregate and m in b.aggregate]

    aggregates = [
        MetricRow(
            name=m,
            a=a.mean(m),
            a_count=a.count(m),
            b=b.mean(m) if b else None,
            b_count=b.count(m) if b else 0,
            delta=_delta(a.mean(m), b.mean(m)) if b else None,
        )
        for m in metrics
    ]

    by_case = {r.case_id: r for r in baseline_results}
    rows: list[QuestionRow] = []
    for result in results:
        side_a = _side(result, texts)
        other = by_case.get(result.case_id)
        side_b = _side(other, texts) if other is not None else None
        deltas = {
            m: _delta(side_a.scores.get(m), side_b.scores.get(m) if side_b else None)
            for m in compared
        }
        rows.append(
            QuestionRow(
                position=result.position,
                question=result.question,
                a=side_a,
                b=side_b,
                deltas=deltas,
                regression=_mean(deltas.values()),
                mean_a=_mean(side_a.scores.get(m) for m in metrics),
                mean_b=_mean(side_b.scores.get(m) for m in metrics) if side_b else None,
                language=language_of(result),
            )
        )
    by_language = _language_rows(
        metrics,
        [(r.language, r.a.scores) for r in rows],
        [(language_of(r), _scores(r)) for r in baseline_results] if b is not None else None,
    )
    if b is not None:
        rows.sort(key=lambda r: (r.regression is None, r.regression or 0.0, r.position))
    else:
        rows.sort(key=lambda r: (r.mean_a is None, r.mean_a or 0.0, r.position))

    points = {h.id: h for h in history}
    points.setdefault(run.id, run)
    if baseline is not None and baseline.kb_id == run.kb_id:
        points.setdefault(baseline.id, baseline)
    labels = {run.id: "A", **({baseline.id: "B"} if baseline is not None else {})}
    timeline = [
        HistoryPoint(
            run_id=h.id,
            created_at=h.created_at,
            index_version=h.index_version,
            means={m: float(v["mean"]) for m, v in (h.aggregate or {}).items()},
            label=labels.get(h.id, ""),
        )
        for h in sorted(points.values(), key=lambda h: (h.created_at, h.id))
    ]
    return Report(
        run=a,
        baseline=b,
        baseline_source=baseline_source if b else None,
        metrics=metrics,
        compared=compared,
        aggregates=aggregates,
        rows=rows,
        history=timeline,
        by_language=by_language,
    )


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def language_summary(report: Report) -> dict[str, dict[str, Any]]:
    """`by_language` as data: {language: {"questions", "baseline_questions", "metrics":
    [{"name", "a", "a_count", "b", "b_count", "delta"}, …]}}, languages in
    LANGUAGE_ORDER."""
    return {
        row.language: {
            "questions": row.questions,
            "baseline_questions": row.baseline_questions,
            "metrics": [asdict(m) for m in row.metrics],
        }
        for row in report.by_language
    }


def summarize(report: Report) -> dict[str, Any]:
    """The verdict line and the counts behind it, with the per-language breakdown."""
    rows = report.rows
    if report.baseline is None:
        key = report.run.key
        scored = [r for r in rows if r.mean_a is not None]
        weakest = scored[0] if scored else None
        text = (
            f"No baseline: no earlier succeeded run of {key.get('testset')}@"
            f"{key.get('testset_version')} on {key.get('kb')} with a different key; "
            "pass compare=<run id> to pick one."
        )
        if weakest is not None:
            text += (
                f" Weakest question: #{weakest.position} “{_short(weakest.question)}” "
                f"(mean {weakest.mean_a:.3f})."
            )
        return {
            "text": text,
            "better": [],
            "worse": [],
            "unchanged": [],
            "questions_improved": 0,
            "questions_regressed": 0,
            "questions_unchanged": 0,
            "worst_regression": None,
            "by_language": language_summary(report),
        }
    deltas = {m.name: m.delta for m in report.aggregates if m.name in report.compared}
    better = [m for m, d in deltas.items() if d is not None and d > TIE]
    worse = [m for m, d in deltas.items() if d is not None and d < -TIE]
    unchanged = [m for m in deltas if m not in better and m not in worse]
    regressions = [r.regression for r in rows if r.regression is not None]
    improved = sum(1 for d in regressions if d > TIE)
    regressed = sum(1 for d in regressions if d < -TIE)
    worst = rows[0] if rows and rows[0].regression is not None else None
    if worst is not None and worst.regression is not None and worst.regression >= -TIE:
        worst = None
    n = len(deltas)
    # Lead with whichever side wins more metrics, so the line reads right at a glance.
    if len(worse) > len(better):
        text = f"A is worse than B on {len(worse)}/{n} metrics"
        details = [f"better on {len(better)}"] if better else []
    elif better:
        text = f"A is better than B on {len(better)}/{n} metrics"
        details = [f"worse on {len(worse)}"] if worse else []
    else:
        text = f"A and B score the same on all {n} compared metrics"
        details = []
    if unchanged and (better or worse):
        details.append(f"unchanged on {len(unchanged)}")
    if details:
        text += f" ({', '.join(details)})"
    text += f"; {regressed} of {len(regressions)} questions regressed, {improved} improved. " + (
        f"Worst regression: #{worst.position} “{_short(worst.question)}” "
        f"(Δ {worst.regression:+.3f})."
        if worst is not None and worst.regression is not None
        else "No question regressed."
    )
    return {
        "text": text,
        "better": better,
        "worse": worse,
        "unchanged": unchanged,
        "questions_improved": improved,
        "questions_regressed": regressed,
        "questions_unchanged": len(regressions) - improved - regressed,
        "worst_regression": (
            {"position": worst.position, "question": worst.question, "delta": worst.regression}
            if worst is not None
            else None
        ),
        "by_language": language_summary(report),
    }


# --- loading from the catalog ------------------------------------------------------


def _get_run(s: Session, run_id: str, role: str) -> EvalRun:
    run = s.get(EvalRun, run_id)
    if run is None:
        raise NotFound(f"{role} {run_id!r} not found; list runs with GET /v1/evals")
    return run


def default_baseline(s: Session, run: EvalRun) -> EvalRun | None:
    """The most recent earlier succeeded run of the same KB and test set version whose
    key differs from `run`'s."""
    return s.execute(
        select(EvalRun)
        .where(
            EvalRun.kb_id == run.kb_id,
            EvalRun.testset_id == run.testset_id,
            EvalRun.status == JobStatus.SUCCEEDED,
            EvalRun.key_hash != run.key_hash,
            EvalRun.created_at < run.created_at,
            EvalRun.id != run.id,
        )
        .order_by(EvalRun.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def _results(s: Session, run_id: str) -> list[EvalResult]:
    return list(
        s.execute(
            select(EvalResult).where(EvalResult.run_id == run_id).order_by(EvalResult.position)
        ).scalars()
    )


def _chunk_texts(s: Session, ids: set[str]) -> dict[str, str]:
    texts: dict[str, str] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):  # stay under SQL parameter limits
        batch = ordered[start : start + 500]
        rows = s.execute(select(Chunk.id, Chunk.text).where(Chunk.id.in_(batch))).all()
        texts.update((chunk_id, text) for chunk_id, text in rows)
    return texts


def _case_languages(s: Session, case_ids: set[str]) -> dict[str, Any]:
    """The "language" each test case's metadata declares, for the cases that declare one."""
    out: dict[str, Any] = {}
    ordered = sorted(case_ids)
    for start in range(0, len(ordered), 500):  # stay under SQL parameter limits
        batch = ordered[start : start + 500]
        rows = s.execute(select(TestCase.id, TestCase.metadata_).where(TestCase.id.in_(batch)))
        for case_id, metadata in rows.all():
            if isinstance(metadata, dict) and metadata.get("language") is not None:
                out[case_id] = metadata["language"]
    return out


def _chunking(s: Session, runs: Iterable[EvalRun]) -> dict[tuple[str, int], dict[str, Any]]:
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for run in runs:
        config = s.execute(
            select(IndexVersion.config).where(
                IndexVersion.kb_id == run.kb_id, IndexVersion.number == run.index_version
            )
        ).scalar_one_or_none()
        if config and isinstance(config.get("chunking"), dict):
            out[(run.kb_id, run.index_version)] = dict(config["chunking"])
    return out


def load_report(
    rt: EvalServices, run_id: str, *, compare: str | None = None, history_limit: int = HISTORY_LIMIT
) -> Report:
    """The report of run `run_id` against `compare` (default: see the module docstring).

    Raises NotFound (unknown run), Conflict (a run that has not succeeded) and
    InvalidInput (runs of different test set versions, or a run compared with itself).
    """
    with rt.db.session() as s:
        run = _get_run(s, run_id, "eval run")
        check_reportable(run)
        if compare:
            if compare == run_id:
                raise InvalidInput("compare a run with another run, not with itself")
            baseline: EvalRun | None = _get_run(s, compare, "compare run")
            assert baseline is not None
            check_comparable(run, baseline)
            check_reportable(baseline, "compare run")
            source = "requested"
        else:
            baseline = default_baseline(s, run)
            source = "latest earlier run"
        results = _results(s, run.id)
        baseline_results = _results(s, baseline.id) if baseline is not None else []
        history = list(
            s.execute(
                select(EvalRun)
                .where(
                    EvalRun.kb_id == run.kb_id,
                    EvalRun.testset_id == run.testset_id,
                    EvalRun.status == JobStatus.SUCCEEDED,
                )
                .order_by(EvalRun.created_at.desc())
                .limit(history_limit)
            ).scalars()
        )
        chunk_ids = {
            str(hit.get("chunk_id"))
            for r in [*results, *baseline_results]
            for hit in (r.retrieved or [])
        }
        return build_report(
            run,
            results,
            baseline,
            baseline_results,
            texts=_chunk_texts(s, chunk_ids),
            history=history,
            chunking=_chunking(s, [run, *([baseline] if baseline is not None else [])]),
            baseline_source=source,
            languages=_case_languages(s, {r.case_id for r in [*results, *baseline_results]}),
        )
