"""The class report's figures: a ClassReport in, SVG out. A renderer, no counting.

Drawn as plain SVG elements, with no plotting library: a figure is a few dozen bars, cells and
labels, and a batch draws its page in milliseconds. Every label is an SVG text element, so the
page's text stays text: searchable, and sharp at any zoom. One style for all: Okabe and Ito's
colour-blind-safe palette, used only in pairs that differ in lightness too (dark blue against
orange), so every figure reads in grey; every bar and cell carries its number, so no colour has
to be told apart at all. No red/green pair anywhere.
"""

from __future__ import annotations

import math
import re
from xml.sax.saxutils import escape

from grader.ci.class_report import ClassReport

BLUE, ORANGE, SKY, GREY = "#0072B2", "#E69F00", "#56B4E9", "#6b6b6b"
INK = "#222222"
TRACK = "#e8eef5"  # a pass-rate bar's track: how far 100 % is
GRID = "#d9d9d9"
# One hue, light to dark (ColorBrewer's sequential Blues): ordered in grey as in colour.
HEAT = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")
SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
TEXT = 12  # px: the figures' text, ticks and bar labels
SMALL = 10.5  # px: numbers on bars and cells
ROW = 24  # px per gradient in the bar charts and the heat map
WIDTH = 960  # px: the page's figures are this wide, the heat map at most (unless its labels need more)
MIN_CELL, MAX_CELL = 30.0, 58.0  # px: the width of a heat map's cell
MIN_BARS = 500.0  # px: the least room the two bar charts of the gradients share
UNDRAWABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")  # characters XML has no room for


def text_width(text: str, size: float, *, mono: bool = False) -> float:
    """About how wide `text` is drawn: for margins, so no label is cut off (a wider guess is harmless)."""
    return len(text) * size * (0.61 if mono else 0.6)


def nice_ticks(top: float) -> list[int]:
    """Whole-number ticks from 0 that cover `top`, at most about six, at steps of 1, 2 or 5 times a power of 10."""
    if top <= 0:
        return [0, 1]
    step = next(m * 10 ** power for power in range(16) for m in (1, 2, 5) if top / (m * 10 ** power) <= 6)
    return list(range(0, math.ceil(top / step) * step + 1, step))


def counts_axis(biggest: float, room: float) -> tuple[list[int], float]:
    """The ticks of an axis of counts up to `biggest`, and where the axis ends: past the last tick, and
    `room` times the biggest bar plus one, so that the bar's number fits beyond it."""
    ticks = nice_ticks(biggest)
    return ticks, max(ticks[-1], biggest * room + 1)


def heat_colour(fraction: float) -> str:
    """The Blues colour at `fraction` (0 lightest, 1 darkest), interpolated between its anchors."""
    fraction = min(1.0, max(0.0, fraction))
    at = fraction * (len(HEAT) - 1)
    low = int(at)
    high = min(low + 1, len(HEAT) - 1)
    mix = at - low
    a, b = (tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in (HEAT[low], HEAT[high]))
    return "#" + "".join(f"{round(x + (y - x) * mix):02x}" for x, y in zip(a, b, strict=True))


class Canvas:
    """An SVG drawing, element by element, in px."""

    def __init__(self, width: float, height: float) -> None:
        self.width, self.height = math.ceil(width), math.ceil(height)
        self.parts: list[str] = []
        self.defs: list[str] = []

    def rect(self, x: float, y: float, w: float, h: float, fill: str, *, stroke: str | None = None,
             stroke_width: float = 0.5) -> None:
        edge = f' stroke="{stroke}" stroke-width="{stroke_width:g}"' if stroke else ""
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(0.0, w):.1f}" height="{h:.1f}" '
                          f'fill="{fill}"{edge}/>')

    def line(self, x1: float, y1: float, x2: float, y2: float, *, stroke: str = GREY, width: float = 0.8) -> None:
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
                          f'stroke-width="{width:g}"/>')

    def text(self, x: float, y: float, text: str, *, size: float = TEXT, anchor: str = "start", fill: str = INK,
             bold: bool = False, mono: bool = False, rotate: float = 0.0) -> None:
        """Text whose middle is at height y (its anchor says which end is at x)."""
        weight = ' font-weight="bold"' if bold else ""
        family = MONO if mono else SANS
        turn = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate else ""
        self.parts.append(f'<text x="{x:.1f}" y="{y + size * 0.35:.1f}" font-family="{family}" '
                          f'font-size="{size:g}" text-anchor="{anchor}" fill="{fill}"{weight}{turn}>'
                          f"{escape(UNDRAWABLE.sub('', text))}</text>")

    def pattern(self, name: str, body: str) -> str:
        """A fill pattern of 6 px tiles, defined once; what a fill attribute names it by."""
        self.defs.append(f'<pattern id="{name}" width="6" height="6" patternUnits="userSpaceOnUse">{body}</pattern>')
        return f"url(#{name})"

    def svg(self) -> bytes:
        defs = f"<defs>{''.join(self.defs)}</defs>" if self.defs else ""
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}">{defs}<rect width="100%" height="100%" fill="white"/>'
                f"{''.join(self.parts)}</svg>").encode()


def _x_axis(c: Canvas, span: tuple[float, float], y: float, ticks: list[int], *, top: float, label: str) -> None:
    """A horizontal axis at height y from 0 (at span's left) to `top` (at its right), its ticks and its label."""
    left, right = span
    c.line(left, y, right, y)
    for t in ticks:
        x = left + (right - left) * t / top
        c.line(x, y, x, y + 4)
        c.text(x, y + 13, str(t), anchor="middle")
    c.text((left + right) / 2, y + 31, label, anchor="middle")


def score_histogram(report: ClassReport) -> bytes:
    """Students per score, on an axis of scores from 0 to the maximum (every whole score marked, up to 60)."""
    counts = dict(report.scores)
    whole = float(report.max_score).is_integer() and all(score.is_integer() for score in counts)
    xs = [float(x) for x in range(int(report.max_score) + 1)] if whole and report.max_score <= 60 else sorted(counts)
    ys = [counts.get(x, 0) for x in xs]
    if not xs:  # nobody graded
        xs, ys = [0.0], [0]
    ticks, top = counts_axis(max(ys), 1.18)
    labels = [f"{x:g}" for x in xs]
    shown = set(range(0, len(xs), max(1, len(xs) // 14))) if len(xs) > 14 else set(range(len(xs)))
    left = 24 + max(text_width(str(t), TEXT) for t in ticks) + 10
    c = Canvas(WIDTH, 240)
    plot_top, bottom, right = 14.0, 190.0, WIDTH - 10.0
    lo, hi = min(0.0, xs[0]) - 0.6, max(float(report.max_score), xs[-1]) + 0.6  # a bar's half width of room
    unit = (right - left) / (hi - lo)  # px per point
    bar = max(2.0, 0.8 * unit)
    for i, (score, label, y) in enumerate(zip(xs, labels, ys, strict=True)):
        middle = left + (score - lo) * unit
        height = (bottom - plot_top) * y / top
        c.rect(middle - bar / 2, bottom - height, bar, height, BLUE)
        if y:
            c.text(middle, bottom - height - 7, str(y), size=SMALL, anchor="middle")
        if i in shown:
            c.line(middle, bottom, middle, bottom + 4)
            c.text(middle, bottom + 13, label, anchor="middle")
    c.line(left, bottom, right, bottom)
    c.line(left, plot_top, left, bottom)
    for t in ticks:
        at = bottom - (bottom - plot_top) * t / top
        c.line(left - 4, at, left, at)
        c.text(left - 7, at, str(t), anchor="end")
    c.text((left + right) / 2, bottom + 33, f"score (of {report.max_score:g})", anchor="middle")
    c.text(12, (plot_top + bottom) / 2, "students", anchor="middle", rotate=-90)
    return c.svg()


def gradient_bars(report: ClassReport) -> bytes:
    """Left: the pass rate of each gradient, in backprop order from the top. Right: how many students
    get it wrong first."""
    names = [g.name for g in report.gradients]
    names_w = max((text_width(n, TEXT, mono=True) for n in names), default=0.0) + 12
    top_y, n = 30.0, len(names)
    bottom = top_y + ROW * max(n, 1)
    left0 = names_w
    span = max(MIN_BARS, WIDTH - 10 - left0 - 24)  # a longer name makes the figure wider (the page scales it)
    c = Canvas(left0 + span + 34, bottom + 46)
    left1 = left0 + span * 0.6
    right0 = left1 + 24
    right1 = c.width - 10.0
    firsts = [g.first_wrong for g in report.gradients]
    ticks, most = counts_axis(max(firsts, default=0), 1.25)
    for i, g in enumerate(report.gradients):
        y = top_y + ROW * i
        middle = y + ROW / 2
        c.text(left0 - 8, middle, g.name, anchor="end", mono=True)
        c.rect(left0, y + 2.5, left1 - left0, ROW - 5, TRACK)
        rate = 100 * g.rate
        end = left0 + (left1 - left0) * rate / 100
        c.rect(left0, y + 2.5, end - left0, ROW - 5, BLUE)
        inside = rate > 30
        c.text(end - 5 if inside else end + 5, middle, f"{rate:.0f}%  {g.passed}/{g.graded}", size=SMALL,
               anchor="end" if inside else "start", fill="white" if inside else INK)
        width = (right1 - right0) * g.first_wrong / most
        c.rect(right0, y + 2.5, width, ROW - 5, ORANGE)
        if g.first_wrong:
            c.text(right0 + width + 4, middle, str(g.first_wrong), size=SMALL)
    c.line(left0, top_y, left0, bottom)
    c.line(right0, top_y, right0, bottom)
    c.text((left0 + left1) / 2, 12, "pass rate", anchor="middle", bold=True)
    c.text((right0 + right1) / 2, 12, "first wrong gradient", anchor="middle", bold=True)
    _x_axis(c, (left0, left1), bottom + 2, [0, 20, 40, 60, 80, 100], top=100, label="% of graded submissions")
    _x_axis(c, (right0, right1), bottom + 2, ticks, top=most, label="students")
    return c.svg()


def label_heatmap(report: ClassReport) -> bytes | None:
    """Gradient x label: how many wrong answers carry each label. Rows with no wrong answer are left
    out; None when there is no wrong answer at all."""
    rows = [g for g in report.gradients if g.labels]
    if not rows:
        return None
    columns = list(report.label_order)
    grid = [[dict(g.labels).get(label, 0) for label in columns] for g in rows]
    most = max(max(row) for row in grid)
    cell_h = 24.0
    names_w = max(text_width(g.name, TEXT, mono=True) for g in rows) + 14
    slant = math.radians(40)
    rise = max(text_width(label, TEXT) for label in columns) * math.sin(slant) + 10
    top_y = 26 + rise
    # Cells as wide as the page's width lets every column, and every turned label, fit (never under
    # MIN_CELL: a wider figure is scaled down by the page, its text with it).
    room = WIDTH - 10 - names_w
    across = [text_width(label, TEXT) * math.cos(slant) for label in columns]  # how far right each label leans
    fits = [room / len(columns)] + [(room - lean) / (i + 0.5) for i, lean in enumerate(across)]
    cell_w = max(MIN_CELL, min(MAX_CELL, *fits))
    width = names_w + cell_w * len(columns)
    reach = max(names_w + cell_w * (i + 0.5) + lean for i, lean in enumerate(across))
    title = "wrong answers by gradient and label"
    title_w = text_width(title, TEXT) * 1.1  # bold
    c = Canvas(max(width, reach, title_w + 10) + 10, top_y + cell_h * len(rows) + 8)
    c.text(max(width / 2, title_w / 2 + 5), 12, title, anchor="middle", bold=True)
    for j, label in enumerate(columns):
        x = names_w + cell_w * (j + 0.5)
        c.text(x - 2, top_y - 8, label, rotate=-40)
    for i, (g, row) in enumerate(zip(rows, grid, strict=True)):
        y = top_y + cell_h * i
        c.text(names_w - 8, y + cell_h / 2, g.name, anchor="end", mono=True)
        for j, value in enumerate(row):
            if value:
                x = names_w + cell_w * j
                c.rect(x, y, cell_w, cell_h, heat_colour(value / (most * 1.15)))
                c.text(x + cell_w / 2, y + cell_h / 2, str(value), size=SMALL, anchor="middle",
                       fill="white" if value > 0.55 * most else INK)
    bottom = top_y + cell_h * len(rows)
    for j in range(1, len(columns)):
        c.line(names_w + cell_w * j, top_y, names_w + cell_w * j, bottom, stroke=GRID, width=0.6)
    for i in range(1, len(rows)):
        c.line(names_w, top_y + cell_h * i, width, top_y + cell_h * i, stroke=GRID, width=0.6)
    return c.svg()


def training_bars(report: ClassReport) -> bytes | None:
    """Exercise 4's runs: how many completed, diverged, were stopped (at which step) or never ran."""
    stats = report.training
    if stats is None:
        return None
    c = Canvas(WIDTH, 0)
    strays = c.pattern("strays", f'<rect width="6" height="6" fill="{SKY}"/>'
                                 f'<path d="M-1,7 L7,-1 M5,7 L7,5 M-1,1 L1,-1" stroke="{INK}" stroke-width="0.6"/>')
    stopped = c.pattern("stopped", f'<rect width="6" height="6" fill="{ORANGE}"/>'
                                   f'<circle cx="3" cy="3" r="0.9" fill="{INK}"/>')
    rows = [("completed, with autograd's losses", stats.completed, BLUE),
            ("ran every step, losses strayed", stats.diverged, strays),
            *((f"stopped at step {step}", count, stopped) for step, count in stats.stopped),
            ("no run: the code could not run", stats.no_run, GREY)]
    rows = [row for row in rows if row[1]] or rows[:1]
    height = 30.0
    labels_w = max(text_width(r[0], TEXT) for r in rows) + 14
    top_y, bottom = 8.0, 8.0 + height * len(rows)
    c.height = math.ceil(bottom + 46)
    ticks, most = counts_axis(max(r[1] for r in rows), 1.2)
    left, right = labels_w, WIDTH - 10.0
    for i, (label, count, fill) in enumerate(rows):
        y = top_y + height * i
        c.text(left - 8, y + height / 2, label, anchor="end")
        width = (right - left) * count / most
        c.rect(left, y + 4, width, height - 8, fill, stroke=INK, stroke_width=0.5)
        c.text(left + width + 4, y + height / 2, str(count), size=SMALL)
    c.line(left, top_y, left, bottom)
    _x_axis(c, (left, right), bottom + 2, ticks, top=most, label=f"runs (each planned for {stats.planned} steps)")
    return c.svg()
