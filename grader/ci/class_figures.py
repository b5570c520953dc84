"""The class report's figures: a ClassReport in, SVG out. A renderer, no counting.

One style for all: Okabe and Ito's colour-blind-safe palette, used only in pairs that differ in
lightness too (dark blue against orange), so every figure reads in grey; every bar and cell
carries its number, so no colour has to be told apart at all. No red/green pair anywhere.
"""

from __future__ import annotations

import io
from typing import Any

from grader.ci.class_report import ClassReport

BLUE, ORANGE, SKY, GREY = "#0072B2", "#E69F00", "#56B4E9", "#6b6b6b"
INK = "#222222"
HEAT = "Blues"  # one hue, light to dark: ordered in grey as in colour
ROW = 0.26  # inches per gradient in the bar charts and the heat map


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415 - only a class report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.rcParams.update({
        "svg.fonttype": "none",  # text stays text: searchable, and sharp at any zoom
        "svg.hashsalt": "class-report",  # the same report, the same file
        "font.size": 9, "axes.titlesize": 10, "axes.titleweight": "bold", "axes.edgecolor": GREY,
        "axes.labelcolor": INK, "xtick.color": INK, "ytick.color": INK, "text.color": INK,
        "axes.spines.top": False, "axes.spines.right": False,
    })
    return plt


def _svg(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    fig.clear()
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.close(fig)
    return buffer.getvalue()


def score_histogram(report: ClassReport) -> bytes:
    """Students per score, every score from 0 to the maximum on the axis."""
    plt = _pyplot()
    counts = dict(report.scores)
    whole = float(report.max_score).is_integer() and all(score.is_integer() for score in counts)
    xs = list(range(int(report.max_score) + 1)) if whole and report.max_score <= 60 else sorted(counts)
    ys = [counts.get(float(x), 0) for x in xs]
    if not xs:  # nobody graded
        xs, ys = [0], [0]
    fig, ax = plt.subplots(figsize=(10, 2.6))
    bars = ax.bar(xs, ys, width=0.8, color=BLUE)
    ax.bar_label(bars, labels=[str(y) if y else "" for y in ys], fontsize=8, padding=1)
    ax.set_xlabel(f"score (of {report.max_score:g})")
    ax.set_ylabel("students")
    ax.set_xticks(xs[::max(1, len(xs) // 14)] if len(xs) > 14 else xs)
    ax.set_ylim(0, max(ys, default=0) * 1.18 + 1)
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _svg(fig)


def gradient_bars(report: ClassReport) -> bytes:
    """Left: the pass rate of each gradient, in backprop order from the top. Right: how many students
    get it wrong first."""
    plt = _pyplot()
    names = [g.name for g in report.gradients]
    ys = list(range(len(names)))
    fig, (left, right) = plt.subplots(1, 2, sharey=True, figsize=(10, 0.9 + ROW * len(names)),
                                      gridspec_kw={"width_ratios": [3, 2], "wspace": 0.08})
    rates = [100 * g.rate for g in report.gradients]
    left.barh(ys, [100] * len(ys), color="#e8eef5", height=0.72)  # the track: how far 100 % is
    left.barh(ys, rates, color=BLUE, height=0.72)
    for y, g, rate in zip(ys, report.gradients, rates, strict=True):
        inside = rate > 30
        left.text(rate - 1.5 if inside else rate + 1.5, y, f"{rate:.0f}%  {g.passed}/{g.graded}", va="center",
                  ha="right" if inside else "left", fontsize=7.5, color="white" if inside else INK)
    left.set_xlim(0, 100)
    left.set_yticks(ys, names, fontfamily="monospace")
    left.invert_yaxis()
    left.set_title("pass rate")
    left.set_xlabel("% of graded submissions")
    firsts = [g.first_wrong for g in report.gradients]
    bars = right.barh(ys, firsts, color=ORANGE, height=0.72)
    right.bar_label(bars, labels=[str(f) if f else "" for f in firsts], fontsize=7.5, padding=2)
    right.set_xlim(0, max(firsts, default=0) * 1.25 + 1)
    right.set_title("first wrong gradient")
    right.set_xlabel("students")
    right.xaxis.get_major_locator().set_params(integer=True)
    right.tick_params(axis="y", length=0)
    return _svg(fig)


def label_heatmap(report: ClassReport) -> bytes | None:
    """Gradient x label: how many wrong answers carry each label. Rows with no wrong answer are left
    out; None when there is no wrong answer at all."""
    rows = [g for g in report.gradients if g.labels]
    if not rows:
        return None
    plt = _pyplot()
    columns = list(report.label_order)
    grid = [[dict(g.labels).get(label, 0) for label in columns] for g in rows]
    top = max(max(row) for row in grid)
    fig, ax = plt.subplots(figsize=(min(10.0, max(3.4, 1.6 + 0.62 * len(columns))), 1.3 + ROW * len(rows)))
    masked = [[value if value else float("nan") for value in row] for row in grid]
    ax.imshow(masked, cmap=HEAT, vmin=0, vmax=top * 1.15, aspect="auto", interpolation="nearest")
    for r, row in enumerate(grid):
        for c, value in enumerate(row):
            if value:
                ax.text(c, r, str(value), ha="center", va="center", fontsize=8,
                        color="white" if value > 0.55 * top else INK)
    ax.set_xticks(range(len(columns)), columns, rotation=40, ha="left", rotation_mode="anchor")
    ax.set_yticks(range(len(rows)), [g.name for g in rows], fontfamily="monospace")
    ax.set_xticks([x - 0.5 for x in range(1, len(columns))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(rows))], minor=True)
    ax.grid(which="minor", color="#d9d9d9", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    ax.spines[:].set_visible(False)
    ax.xaxis.tick_top()
    ax.set_title("wrong answers by gradient and label", pad=8)
    return _svg(fig)


def training_bars(report: ClassReport) -> bytes | None:
    """Exercise 4's runs: how many completed, diverged, were stopped (at which step) or never ran."""
    stats = report.training
    if stats is None:
        return None
    plt = _pyplot()
    rows = [("completed, with autograd's losses", stats.completed, BLUE, ""),
            ("ran every step, losses strayed", stats.diverged, SKY, "//"),
            *((f"stopped at step {step}", count, ORANGE, "..") for step, count in stats.stopped),
            ("no run: the code could not run", stats.no_run, GREY, "")]
    rows = [row for row in rows if row[1]] or rows[:1]
    fig, ax = plt.subplots(figsize=(10, 0.7 + 0.32 * len(rows)))
    ys = list(range(len(rows)))
    bars = ax.barh(ys, [r[1] for r in rows], color=[r[2] for r in rows], hatch=None, height=0.66,
                   edgecolor=INK, linewidth=0.4)
    for bar, (_, _, _, hatch) in zip(bars, rows, strict=True):
        bar.set_hatch(hatch)
    ax.bar_label(bars, fontsize=8, padding=2)
    ax.set_yticks(ys, [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, max(r[1] for r in rows) * 1.2 + 1)
    ax.set_xlabel(f"runs (each planned for {stats.planned} steps)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _svg(fig)
