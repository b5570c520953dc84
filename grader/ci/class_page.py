"""The instructor's page: a ClassReport in, one self-contained HTML file out (figures embedded as
data URIs, no script, nothing fetched). A renderer: every number on it is the report's.

All text that came from a student (messages, lines of code) is escaped here.
"""

from __future__ import annotations

import base64
import html
import json

from grader.ci import class_figures
from grader.ci.class_report import UNDIAGNOSED, UNEXPLAINED, ClassReport, Mistake

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1040px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:24px;margin:0 0 2px}h2{font-size:19px;margin:34px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin:0 0 18px}.note{color:#555;font-size:13.5px;margin:4px 0 10px}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.tile{border:1px solid #d5dbe3;border-radius:6px;padding:8px 14px;min-width:110px;background:#f6f8fb}
.tile b{display:block;font-size:22px}.tile span{color:#444;font-size:13px}
img{max-width:100%;height:auto;display:block;margin:6px 0}
table{border-collapse:collapse;font-size:13.5px;margin:8px 0}
th,td{border-bottom:1px solid #e3e3e3;padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{color:#444;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.mistake{border-left:4px solid #0072B2;padding:6px 14px;margin:14px 0;background:#f6f8fb}
.mistake h3{margin:2px 0 6px;font-size:16px}
.mistake pre{background:#fff;border:1px solid #d5dbe3;padding:6px 10px;margin:6px 0;white-space:pre-wrap}
.said{white-space:pre-wrap;margin:4px 0}
details{margin:10px 0}summary{cursor:pointer;color:#0b5394}
"""


def _img(svg: bytes, alt: str) -> str:
    data = base64.b64encode(svg).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}">'


def _tile(value: object, what: str) -> str:
    return f'<div class="tile"><b>{html.escape(str(value))}</b><span>{html.escape(what)}</span></div>'


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def class_html(report: ClassReport) -> str:
    """The whole page."""
    title = f"{report.exercise}: {report.title}"
    parts = [f"<h1>What the class gets wrong</h1><p class='sub'>{html.escape(title)} · "
             f"{_plural(report.students, 'graded submission')}</p>",
             _scores(report), _drop_off(report), _mistakes(report)]
    if report.training is not None:
        parts.append(_training(report))
    parts.append(_how_counted(report))
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>Class report: {html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body><main>{''.join(parts)}</main></body></html>\n")


def _scores(report: ClassReport) -> str:
    median = report.median_score
    tiles = [_tile(report.students, "students graded"), _tile(report.passed, "pass every check"),
             _tile("-" if median is None else f"{median:g} / {report.max_score:g}", "median score"),
             _tile(report.untouched, "wrote nothing"), _tile(report.unreadable, "errors: could not be read or run")]
    if report.ungraded:
        tiles.append(_tile(report.ungraded, "not graded: the grader failed (rerun the batch)"))
    return (f"<h2>Scores</h2><div class='tiles'>{''.join(tiles)}</div>"
            + _img(class_figures.score_histogram(report),
                   f"Histogram of scores out of {report.max_score:g}: "
                   + ", ".join(f"{s:g} points: {c}" for s, c in report.scores)))


def _drop_off(report: ClassReport) -> str:
    stuck = max(report.gradients, key=lambda g: g.first_wrong, default=None)
    lead = (f"The commonest first wrong gradient is <code>{html.escape(stuck.name)}</code> "
            f"({_plural(stuck.first_wrong, 'student')}). " if stuck is not None and stuck.first_wrong else "")
    rows = "".join(
        f"<tr><td><code>{html.escape(g.name)}</code></td><td class='n'>{g.passed}/{g.graded}</td>"
        f"<td class='n'>{100 * g.rate:.0f}%</td><td class='n'>{g.first_wrong or ''}</td></tr>"
        for g in report.gradients)
    return ("<h2>Where the class drops off</h2>"
            f"<p class='note'>Gradients in backprop order, from the loss down. A student's first wrong gradient "
            f"is where they got stuck: the later ones often fail only through it. {lead}"
            f"{_plural(report.all_passed, 'student')} got every gradient right.</p>"
            + _img(class_figures.gradient_bars(report),
                   "Pass rate and first wrong gradient, per gradient: "
                   + "; ".join(f"{g.name} {100 * g.rate:.0f}% pass, first wrong for {g.first_wrong}"
                               for g in report.gradients))
            + "<details><summary>the numbers</summary><table><tr><th>gradient</th><th>passed</th>"
              f"<th>rate</th><th>first wrong</th></tr>{rows}</table></details>")


def _mistakes(report: ClassReport) -> str:
    figure = class_figures.label_heatmap(report)
    if figure is None:
        return "<h2>The mistakes</h2><p>No submission has a wrong gradient.</p>"
    meaning = {UNEXPLAINED: "wrong, and no simple transformation of the truth explains it",
               "error": "the code raised, timed out or broke a rule", "missing": "not assigned"}
    legend = "; ".join(f"<b>{html.escape(k)}</b>: {meaning[k]}" for k in UNDIAGNOSED if k in report.label_order)
    rows = "".join(
        f"<tr><td><code>{html.escape(g.name)}</code></td><td class='n'>{sum(c for _, c in g.labels)}</td><td>"
        + ", ".join(f"{html.escape(label)} {count}" for label, count in g.labels) + "</td></tr>"
        for g in report.gradients if g.labels)
    heat = _img(figure, "Wrong answers by gradient and label: " + "; ".join(
        f"{g.name}: " + ", ".join(f"{label} {count}" for label, count in g.labels)
        for g in report.gradients if g.labels))
    top = "".join(_mistake(i, m) for i, m in enumerate(report.mistakes, 1))
    how_many = {1: "commonest mistake", 2: "two commonest mistakes", 3: "three commonest mistakes"}
    commonest = (f"<h2>The {how_many.get(len(report.mistakes), 'commonest mistakes')}</h2>"
                 "<p class='note'>What one of these students was told, and their line, with comments, strings and "
                 f"names of their own taken out.</p>{top}" if report.mistakes else
                 "<p>No wrong answer carries a diagnosis.</p>")
    return ("<h2>The mistakes</h2><p class='note'>Each wrong answer counted under its diagnosis: the "
            f"transformation of the true gradient the student computed. {legend}.</p>{heat}"
            f"<details><summary>the numbers</summary><table><tr><th>gradient</th><th>wrong</th>"
            f"<th>labels</th></tr>{rows}</table></details>{commonest}")


def _mistake(rank: int, m: Mistake) -> str:
    code = (f"<pre><code>{html.escape(m.example)}</code></pre>" if m.example else
            "<p class='note'>(no line to show: the submission files were not found)</p>")
    return (f"<div class='mistake'><h3>{rank}. <code>{html.escape(m.gradient)}</code>: "
            f"{html.escape(m.label)} · {_plural(m.students, 'student')}</h3>{code}"
            f"<p class='said'><b>told:</b> {html.escape(m.message)}</p></div>")


def _training(report: ClassReport) -> str:
    stats = report.training
    assert stats is not None
    figure = class_figures.training_bars(report)
    stops = ", ".join(f"step {s}: {c}" for s, c in stats.stopped) or "none"
    tiles = "".join([_tile(stats.completed, "completed"), _tile(stats.diverged, "diverged from autograd"),
                     _tile(stats.stopped_runs, "stopped early"), _tile(stats.no_run, "never ran")])
    return (f"<h2>Training runs</h2><p class='note'>Each submission's backward pass trains the net for "
            f"{stats.planned} steps beside autograd's. Stopped early (by step): {html.escape(stops)}.</p>"
            f"<div class='tiles'>{tiles}</div>"
            + (_img(figure, f"Training runs: {stats.completed} completed, {stats.diverged} diverged, "
                            f"stopped: {stops}, {stats.no_run} never ran") if figure else ""))


def _how_counted(report: ClassReport) -> str:
    return ("<h2>How this was counted</h2><p class='note'>A pass rate is over the submissions that were "
            "judged (one that could not be read is judged on no gradient). The mistakes and first wrong "
            f"gradients leave out the {_plural(report.untouched, 'submission')} with nothing written. This page "
            "names no student; each student's report, in the batch's folder, says what they got and why. "
            "The same numbers, as JSON: <code>ninja-grade class-report DIR --json FILE</code>.</p>")


def class_json(report: ClassReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"
