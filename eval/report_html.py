"""The HTML format of a `Report`: one self-contained page for reviewers.

Self-contained means it opens from a mail attachment or an artifact store with no
network: plots are inline base64 PNGs, the CSS is inline, there is no script at all, and
a Content-Security-Policy forbids loading anything else. Every string that comes from
users (questions, answers, passages, file names, run keys) goes through `html.escape`.
"Side by side" uses `<details>`, so no JavaScript is needed to expand a question.

Example::

    Path("report.html").write_text(render_html(load_report(rt, run_id)))
"""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from eval.report import TIE, Context, LanguageRow, QuestionRow, Report, RunInfo, Side
from eval.report_plots import distribution_png, history_png, regression_png

# Questions expanded on load in the side-by-side section (the worst ones).
OPEN_DETAILS = 2
# Characters of a passage shown; the JSON format carries it whole.
MAX_CONTEXT_CHARS = 3000

LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "ru": "Russian", "other": "other"}

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --a: #2563eb; --b: #d97706; --good: #15803d; --bad: #b91c1c; --muted: #6b7280;
  --line: #e5e7eb; --bg: #f8fafc; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: #111827;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 16px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.verdict { border-left: 6px solid var(--muted); font-size: 15px; }
.verdict.good { border-left-color: var(--good); }
.verdict.bad { border-left-color: var(--bad); }
.chips { margin-top: 8px; display: flex; flex-wrap: wrap; gap: 6px; }
.chip { font-size: 12px; padding: 1px 8px; border-radius: 999px; background: #f3f4f6; }
.chip.good { background: #dcfce7; color: var(--good); }
.chip.bad { background: #fee2e2; color: var(--bad); }
.tag { display: inline-block; min-width: 20px; text-align: center; font-weight: 700;
  color: #fff; border-radius: 4px; padding: 0 5px; font-size: 12px; }
.tag.a { background: var(--a); } .tag.b { background: var(--b); }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; font-size: 12.5px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.diff td { background: #fffbeb; } tr.diff td:first-child { font-weight: 600; }
.mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
.small { font-size: 11.5px; color: var(--muted); }
.pos { color: var(--good); font-weight: 600; } .neg { color: var(--bad); font-weight: 600; }
.zero { color: var(--muted); }
figure { margin: 0 0 18px; } figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: 12.5px; color: var(--muted); margin-top: 4px; }
.qtable td.q { min-width: 260px; max-width: 420px; }
.qtable td.cell { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.qtable a { color: inherit; text-decoration: none; border-bottom: 1px dotted #9ca3af; }
details { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  margin: 0 0 10px; }
summary { cursor: pointer; padding: 9px 14px; font-weight: 600; }
summary .small { font-weight: 400; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 0; border-top: 1px solid var(--line); }
.side { padding: 10px 14px; min-width: 0; }
.side + .side { border-left: 1px solid var(--line); }
.answer { white-space: pre-wrap; background: #f9fafb; border: 1px solid var(--line);
  border-radius: 6px; padding: 8px 10px; margin: 6px 0 10px; }
.scores { display: flex; flex-wrap: wrap; gap: 4px 10px; font-size: 12px; margin-bottom: 8px; }
ol.ctx { padding-left: 0; list-style: none; margin: 0; }
ol.ctx li { margin: 0 0 8px; }
.ctxhead { font-size: 12px; color: #374151; }
.ctxtext { white-space: pre-wrap; font-size: 12.5px; max-height: 11em; overflow: auto;
  border-left: 3px solid var(--line); padding: 2px 8px; margin-top: 2px; }
.gone { color: var(--muted); font-style: italic; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _delta_class(delta: float | None) -> str:
    if delta is None or abs(delta) < TIE:
        return "zero"
    return "pos" if delta > 0 else "neg"


def _tint(delta: float | None) -> str:
    """A background whose strength follows |delta| (full at 0.5)."""
    if delta is None or abs(delta) < TIE:
        return ""
    alpha = min(0.45, 0.08 + abs(delta) * 0.75)
    rgb = "21,128,61" if delta > 0 else "185,28,28"
    return f' style="background: rgba({rgb},{alpha:.2f})"'


def _delta(delta: float | None) -> str:
    if delta is None:
        text = "–"
    elif abs(delta) < TIE:
        text = "0.000"
    else:
        text = f"{delta:+.3f}".replace("-", "−")
    return f'<span class="{_delta_class(delta)}">{text}</span>'


def _img(png: bytes | None, alt: str, caption: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def _key_rows(a: RunInfo, b: RunInfo | None) -> list[tuple[str, str, str | None]]:
    def chunking(info: RunInfo) -> str:
        c = info.chunking
        if not c:
            return "unknown (version removed)"
        return f"size {c.get('chunk_size')}, overlap {c.get('chunk_overlap')}"

    def params(info: RunInfo, name: str) -> str:
        return str((info.key.get("params") or {}).get(name, "–"))

    def when(info: RunInfo) -> str:
        return f"{info.created_at:%Y-%m-%d %H:%M:%S} UTC"

    getters: list[tuple[str, Any]] = [
        ("run id", lambda i: i.id),
        ("knowledge base", lambda i: str(i.key.get("kb", "–"))),
        ("test set", lambda i: f"{i.key.get('testset')}@{i.key.get('testset_version')}"),
        ("index version", lambda i: f"v{i.key.get('index_version')}"),
        ("chunking", chunking),
        ("embedding model", lambda i: str(i.key.get("embedding_model", "–"))),
        ("generator", lambda i: str(i.key.get("generator", "–"))),
        ("prompt", lambda i: str(i.key.get("prompt", "–"))),
        ("top_k", lambda i: params(i, "top_k")),
        ("retrieval mode", lambda i: params(i, "mode")),
        ("questions", lambda i: str(i.question_count)),
        ("created", when),
        ("scoring time", lambda i: f"{i.wall_seconds:.1f} s"),
    ]
    return [(name, get(a), get(b) if b else None) for name, get in getters]


def _runs_table(report: Report) -> str:
    a, b = report.run, report.baseline
    head = '<tr><th>run</th><th><span class="tag a">A</span> reported</th>'
    head += (
        f'<th><span class="tag b">B</span> baseline ({escape(report.baseline_source or "")})</th>'
        if b
        else ""
    )
    rows = []
    for name, va, vb in _key_rows(a, b):
        differs = b is not None and name not in ("run id", "created", "scoring time") and va != vb
        cls = ' class="diff"' if differs else ""
        cells = f"<td>{escape(name)}</td><td class=mono>{escape(va)}</td>"
        if b:
            cells += f"<td class=mono>{escape(vb or '')}</td>"
        rows.append(f"<tr{cls}>{cells}</tr>")
    note = (
        '<p class="small">Highlighted rows differ between A and B.</p>'
        if b
        else '<p class="small">No baseline run: see the summary above.</p>'
    )
    return f"<table>{head}</tr>{''.join(rows)}</table>{note}"


def _aggregates_table(report: Report) -> str:
    b = report.baseline
    head = '<tr><th>metric</th><th class=num><span class="tag a">A</span> mean</th>'
    if b:
        head += '<th class=num><span class="tag b">B</span> mean</th><th class=num>Δ A − B</th>'
    head += "<th class=num>questions scored</th></tr>"
    rows = []
    for m in report.aggregates:
        cells = f"<td class=mono>{escape(m.name)}</td><td class=num>{_fmt(m.a)}</td>"
        count = str(m.a_count)
        if b:
            cells += f"<td class=num>{_fmt(m.b)}</td>"
            cells += f"<td class=num{_tint(m.delta)}>{_delta(m.delta)}</td>"
            count = f"{m.a_count} / {m.b_count}"
        rows.append(f"<tr>{cells}<td class=num>{count}</td></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _language_cell(row: LanguageRow) -> str:
    name = LANGUAGE_NAMES.get(row.language, row.language)
    return f"<td>{escape(name)} <span class='mono small'>{escape(row.language)}</span></td>"


def _language_table(report: Report) -> str:
    """One row per language present: its question count and each metric's mean over its
    questions (with a baseline: Δ A − B, then A vs B, as in the question table)."""
    two = report.baseline is not None
    head = "<tr><th>language</th><th class=num>questions</th>"
    head += "".join(f"<th class='num mono'>{escape(m)}</th>" for m in report.metrics) + "</tr>"
    rows = []
    for lang in report.by_language:
        count = f"{lang.questions} / {lang.baseline_questions}" if two else str(lang.questions)
        cells = [_language_cell(lang), f"<td class=num>{count}</td>"]
        for m in lang.metrics:
            if not two:
                cells.append(f"<td class=num>{_fmt(m.a)}</td>")
                continue
            scored = m.a is not None or m.b is not None
            scores = f"{_fmt(m.a, 2)} vs {_fmt(m.b, 2)}" if scored else ""
            cells.append(
                f'<td class=num{_tint(m.delta)}>{_delta(m.delta)}<div class="small">{scores}'
                "</div></td>"
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    legend = (
        "Mean of each metric over the questions in each language (declared by the test "
        "case, else detected from the question text)."
    )
    if two:
        legend += " Each cell: Δ (A − B), then A vs B; questions: A / B."
    return f'<p class="small">{legend}</p><table>{head}{"".join(rows)}</table>'


def _question_table(report: Report) -> str:
    two = report.baseline is not None
    metrics = report.metrics
    head = "<tr><th class=num>#</th><th>question</th><th>lang</th>"
    head += "<th class=num>mean Δ</th>" if two else "<th class=num>mean</th>"
    head += "".join(f"<th class='num mono'>{escape(m)}</th>" for m in metrics) + "</tr>"
    rows = []
    for r in report.rows:
        cells = [
            f"<td class=num>{r.position}</td>",
            f'<td class=q><a href="#q-{r.position}">{escape(r.question)}</a></td>',
            f"<td class=mono>{escape(r.language)}</td>",
        ]
        if two:
            cells.append(f"<td class=cell{_tint(r.regression)}>{_delta(r.regression)}</td>")
        else:
            cells.append(f"<td class=cell>{_fmt(r.mean_a)}</td>")
        for m in metrics:
            va = r.a.scores.get(m)
            if not two:
                cells.append(f"<td class=cell>{_fmt(va)}</td>")
                continue
            vb = r.b.scores.get(m) if r.b else None
            d = r.deltas.get(m)
            scores = f"{_fmt(va, 2)} vs {_fmt(vb, 2)}" if va is not None or vb is not None else ""
            cells.append(
                f'<td class=cell{_tint(d)}>{_delta(d)}<div class="small">{scores}</div></td>'
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    legend = (
        '<p class="small">Worst regression first. Each cell: Δ (A − B), then A vs B. '
        "Green: A better; red: A worse; – : not scored (no reference for that metric).</p>"
        if two
        else '<p class="small">Weakest questions first (mean over the metrics scored).</p>'
    )
    return f'{legend}<table class="qtable">{head}{"".join(rows)}</table>'


def _context(ctx: Context) -> str:
    head = (
        f'<div class="ctxhead">{ctx.rank}. <b>{escape(ctx.filename or ctx.document_id)}</b>'
        f' · score {ctx.score:.3f} · <span class="mono small">{escape(ctx.chunk_id)}</span></div>'
    )
    if ctx.text is None:
        body = '<div class="ctxtext gone">(chunk no longer stored)</div>'
    else:
        text = ctx.text
        if len(text) > MAX_CONTEXT_CHARS:
            text = text[:MAX_CONTEXT_CHARS] + " …"
        body = f'<div class="ctxtext">{escape(text)}</div>'
    return f"<li>{head}{body}</li>"


def _side(label: str, side: Side | None, metrics: list[str], other: Side | None = None) -> str:
    tag = f'<span class="tag {label.lower()}">{label}</span>'
    if side is None:
        return f'<div class="side">{tag} <span class="gone">not answered in this run</span></div>'
    answer = (
        f'<div class="answer">{escape(side.answer)}</div>'
        if side.answer
        else '<div class="answer gone">(no answer generated: the case has no reference '
        "answer, so only retrieval was scored)</div>"
    )

    def score(m: str) -> str:
        mine = side.scores.get(m)
        theirs = other.scores.get(m) if other else None
        diff = None if mine is None or theirs is None else mine - theirs
        return f'<span class="{_delta_class(diff)}">{_fmt(mine)}</span>' if other else _fmt(mine)

    scores = "".join(
        f"<span><span class=mono>{escape(m)}</span> {score(m)}</span>"
        for m in metrics
        if m in side.scores
    )
    contexts = "".join(_context(c) for c in side.contexts) or '<li class="gone">(none)</li>'
    errors = "".join(
        f'<div class="small">no {escape(m)} score: {escape(reason)}</div>'
        for m, reason in side.errors.items()
    )
    return (
        f'<div class="side">{tag} <b>answer</b>{answer}<div class="scores">{scores}</div>'
        f"{errors}"
        f'<b>retrieved passages</b><ol class="ctx">{contexts}</ol></div>'
    )


def _details(report: Report, index: int, row: QuestionRow) -> str:
    two = report.baseline is not None
    figure = f"mean Δ {_delta(row.regression)}" if two else f"mean {_fmt(row.mean_a)}"
    sides = _side("A", row.a, report.metrics, row.b)
    if two:
        sides += _side("B", row.b, report.metrics, row.a)
    opened = " open" if index < OPEN_DETAILS else ""
    return (
        f'<details id="q-{row.position}"{opened}><summary>#{row.position} '
        f'{escape(row.question)} <span class="small">· {figure}</span></summary>'
        f'<div class="pair">{sides}</div></details>'
    )


def _verdict(report: Report) -> str:
    summary = report.summary
    cls = ""
    if report.baseline is not None:
        better, worse = len(summary["better"]), len(summary["worse"])
        cls = " good" if better > worse else " bad" if worse > better else ""
    chips = "".join(
        f'<span class="chip good">▲ {escape(m)}</span>' for m in summary["better"]
    ) + "".join(f'<span class="chip bad">▼ {escape(m)}</span>' for m in summary["worse"])
    chips += "".join(f'<span class="chip">= {escape(m)}</span>' for m in summary["unchanged"])
    return (
        f'<div class="card verdict{cls}">{escape(summary["text"])}'
        + (f'<div class="chips">{chips}</div>' if chips else "")
        + "</div>"
    )


def render_html(report: Report) -> str:
    a, b = report.run, report.baseline
    key = a.key
    title = f"Eval report · {key.get('kb')} · {key.get('testset')}@{key.get('testset_version')}"
    versus = (
        f'<span class="tag a">A</span> run {escape(a.id)} '
        f"(index v{escape(str(key.get('index_version')))}) vs "
        f'<span class="tag b">B</span> run {escape(b.id)} '
        f"(index v{escape(str(b.key.get('index_version')))})"
        if b
        else f'<span class="tag a">A</span> run {escape(a.id)}'
    )
    figures = [
        _img(
            history_png(report),
            "metric per index version over time",
            "Metric per index version over time: the aggregate mean of every succeeded run of "
            "this knowledge base and test set version, oldest to newest, coloured by index "
            "version; A and B are ringed.",
        ),
        _img(
            distribution_png(report),
            "score distributions",
            "Distribution of per-question scores per metric (10 bins over 0–1).",
        ),
        _img(
            regression_png(report),
            "per-question change",
            "Mean Δ per question over the metrics both runs scored (red: A worse).",
        ),
    ]
    details = "".join(_details(report, i, row) for i, row in enumerate(report.rows))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<h1>{escape(title)}</h1>
<p class="sub">{versus} · {len(report.rows)} questions · generated
{report.generated_at:%Y-%m-%d %H:%M} UTC</p>
{_verdict(report)}
<h2 id="runs">Runs</h2>
{_runs_table(report)}
<h2 id="metrics">Aggregate metrics</h2>
{_aggregates_table(report)}
<h2 id="languages">By language</h2>
{_language_table(report)}
<h2 id="plots">Plots</h2>
{"".join(figures)}
<h2 id="questions">Questions</h2>
{_question_table(report)}
<h2 id="side-by-side">Answers and contexts side by side</h2>
<p class="small">Click a question to expand it; the worst {OPEN_DETAILS} are open.</p>
{details}
<footer>Generated by ragops. This page is self-contained: no scripts, no external
resources. The same report is available as JSON and CSV.</footer>
</main>
</body>
</html>
"""
