"""The report's plots as PNG bytes, drawn offline with matplotlib's object API.

No pyplot: figures are plain `Figure` objects (no global state, no GUI backend), and a
lock serialises drawing because matplotlib is not thread-safe and the API renders in a
thread pool. Text is drawn with math parsing off, so a "$" in a label stays a "$".
Colours match the HTML: A blue, B orange.
"""

from __future__ import annotations

import io
import math
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from eval.report import Report

COLOR_A = "#2563eb"
COLOR_B = "#f59e0b"
GOOD = "#16a34a"
BAD = "#dc2626"
NEUTRAL = "#9ca3af"
DPI = 110
_LOCK = threading.Lock()
_STYLE = {
    "text.parse_math": False,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "axes.edgecolor": "#9ca3af",
}


def _png(draw: Any, *args: Any) -> bytes:
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with _LOCK, rc_context(_STYLE):
        fig: Figure = draw(Figure, *args)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _grid(n: int, cols: int = 3) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def _limits(values: list[float]) -> tuple[float, float]:
    """Zoom on the values (at least 0.1 tall) without leaving [0, 1]."""
    lo, hi = min(values), max(values)
    span = max(hi - lo, 0.1)
    mid = (lo + hi) / 2
    lo, hi = mid - span / 2 - 0.02, mid + span / 2 + 0.02
    if lo < 0:
        lo, hi = 0.0, min(1.02, hi - lo)
    if hi > 1.02:
        lo, hi = max(0.0, lo - (hi - 1.02)), 1.02
    return lo, hi


def _draw_history(figure: type[Figure], report: Report) -> Figure:
    from matplotlib.lines import Line2D

    points = report.history
    metrics = report.metrics
    rows, cols = _grid(len(metrics))
    fig = figure(figsize=(12, 2.1 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    versions = sorted({p.index_version for p in points})
    palette = [
        "#0ea5e9",
        "#8b5cf6",
        "#10b981",
        "#ef4444",
        "#64748b",
        "#ec4899",
        "#84cc16",
        "#14b8a6",
    ]
    color = {v: palette[i % len(palette)] for i, v in enumerate(versions)}
    xs = list(range(len(points)))
    step = max(1, math.ceil(len(points) / 8))
    ticks = xs[::step]
    labels = [f"v{points[i].index_version}\n{points[i].created_at:%m-%d %H:%M}" for i in ticks]
    for ax, m in zip(axes, metrics, strict=False):
        pts = [(x, p) for x, p in zip(xs, points, strict=True) if m in p.means]
        if not pts:
            ax.set_visible(False)
            continue
        px = [x for x, _ in pts]
        py = [p.means[m] for _, p in pts]
        ax.plot(px, py, color="#cbd5e1", linewidth=1.2, zorder=1)
        ax.scatter(px, py, c=[color[p.index_version] for _, p in pts], s=28, zorder=2)
        for x, p in pts:
            if p.label:
                c = COLOR_A if p.label == "A" else COLOR_B
                ax.scatter([x], [p.means[m]], s=140, facecolors="none", edgecolors=c, zorder=3)
                ax.annotate(
                    p.label,
                    (x, p.means[m]),
                    xytext=(0, 8),
                    textcoords="offset points",
                    ha="center",
                    color=c,
                    fontweight="bold",
                )
        ax.set_title(m)
        ax.set_ylim(*_limits(py))
        ax.set_xlim(-0.5, len(points) - 0.5)
        ax.set_xticks(ticks, labels, fontsize=7)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=color[v], label=f"index v{v}")
        for v in versions
    ]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 8))
    return fig


def history_png(report: Report) -> bytes | None:
    """Aggregate mean per metric per run of this KB + test set, oldest → newest, coloured
    by index version, A and B ringed."""
    if not report.metrics or not report.history:
        return None
    return _png(_draw_history, report)


def _draw_distributions(figure: type[Figure], report: Report) -> Figure:
    import numpy as np

    dists = report.distributions()
    metrics = report.metrics
    rows, cols = _grid(len(metrics))
    fig = figure(figsize=(12, 2.3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    edges = np.linspace(0.0, 1.0, 11)
    centers = (edges[:-1] + edges[1:]) / 2
    two = report.baseline is not None
    width = 0.042 if two else 0.085
    for ax, m in zip(axes, metrics, strict=False):
        a, _ = np.histogram(dists[m]["a"], bins=edges)
        ax.bar(centers - (width / 2 if two else 0), a, width=width, color=COLOR_A, label="A")
        title = f"{m}  ·  A {np.mean(dists[m]['a']):.3f}" if dists[m]["a"] else m
        if two:
            b, _ = np.histogram(dists[m]["b"], bins=edges)
            ax.bar(centers + width / 2, b, width=width, color=COLOR_B, label="B")
            if dists[m]["b"]:
                title += f" / B {np.mean(dists[m]['b']):.3f}"
        ax.set_title(title)
        ax.set_xlim(0, 1)
        ax.set_xticks(edges[::2])
        ax.yaxis.get_major_locator().set_params(integer=True)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    if two:
        axes[0].legend(loc="upper left", frameon=False)
    return fig


def distribution_png(report: Report) -> bytes | None:
    """Per metric, a histogram of per-question scores (10 bins over [0, 1]), A beside B."""
    if not report.metrics or not report.rows:
        return None
    return _png(_draw_distributions, report)


def _draw_regressions(figure: type[Figure], report: Report) -> Figure:
    values = [r.regression for r in report.rows if r.regression is not None]
    fig = figure(figsize=(12, 2.4), layout="constrained")
    ax = fig.subplots()
    colors = [BAD if v < 0 else GOOD if v > 0 else NEUTRAL for v in values]
    ax.bar(range(len(values)), values, color=colors, width=0.8)
    ax.axhline(0, color="#6b7280", linewidth=0.8)
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.set_xlabel("questions, worst regression first")
    ax.set_ylabel("mean Δ (A − B)")
    ax.set_title(f"Per-question change over {len(report.compared)} metrics")
    return fig


def regression_png(report: Report) -> bytes | None:
    """Each question's mean delta, in report order (worst regression first)."""
    if report.baseline is None or not any(r.regression is not None for r in report.rows):
        return None
    return _png(_draw_regressions, report)
