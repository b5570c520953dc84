"""Renderers: a Report in, text out. No grading logic lives here."""

from __future__ import annotations

import json
import textwrap

import click

from grader.results import GradientResult, Report, Status

COLOURS = {
    Status.EXACT: "green",
    Status.APPROXIMATE: "green",
    Status.WRONG: "red",
    Status.MISSING: "yellow",
    Status.ERROR: "magenta",
}


WRAP = 100  # messages are wrapped to this many columns
CMP_WIDTH = len("exact: False | approximate: False | maxdiff: 1.0e-00")


def fmt_maxdiff(maxdiff: float | None) -> str:
    if maxdiff is None:
        return "-"
    return "0" if maxdiff == 0 else f"{maxdiff:.1e}"


def cmp_line(g: GradientResult, width: int) -> str:
    """The lecture's cmp line, then the verdict."""
    if g.status in (Status.MISSING, Status.ERROR) or g.maxdiff is None:
        numbers = ""
    else:
        numbers = (f"exact: {g.exact!s:5} | approximate: {g.approximate!s:5} | "
                   f"maxdiff: {fmt_maxdiff(g.maxdiff):7}")
    numbers = f"{numbers:{CMP_WIDTH}}"
    verdict = click.style(f"{g.status.value:11}", fg=COLOURS[g.status], bold=not g.passed)
    chained = f" (chained: {g.chained.value})" if g.passed and not g.chained.passed else ""
    label = click.style(f" [{g.diagnosis}]", fg=COLOURS[g.status]) if g.diagnosis else ""
    return f"{g.name:{width}} | {numbers} | {verdict}{label}{chained}"


def render_text(report: Report) -> str:
    lines = [click.style(f"{report.exercise}: {report.title}", bold=True),
             f"{report.submission}, judged on {len(report.cases)} case"
             f"{'s' if len(report.cases) != 1 else ''} "
             f"({'; '.join(c['name'] for c in report.cases)})", ""]
    for note in report.notes:
        lines.append(click.style(f"note: {note}", fg="yellow"))
    if report.notes:
        lines.append("")
    width = max(len(g.name) for g in report.gradients)
    untouched = report.untouched
    for g in report.gradients:
        lines.append(cmp_line(g, width).rstrip())
        if g.message and not (untouched and g.status is Status.MISSING):
            lines.append(textwrap.fill(g.message, WRAP, initial_indent=f"{'':{width}}   ↳ ",
                                       subsequent_indent=f"{'':{width}}     ", break_on_hyphens=False))
    if any(g.passed and not g.chained.passed for g in report.gradients):
        lines += ["", "chained: what the lecture's cmp prints for your code as written. A gradient can be",
                  "right on its own (its verdict) and still wrong there, when one it is computed from is wrong."]
    if report.output.strip():
        lines += ["", "your code printed:"]
        lines += [f"  {line}" for line in report.output.rstrip().splitlines()]
    correct = sum(g.passed for g in report.gradients)
    total = len(report.gradients)
    score = f"{correct}/{total} gradient{'s' if total != 1 else ''} correct"
    if report.max_score != total:
        score += f" · score {report.score:g}/{report.max_score:g}"
    lines += ["", click.style(score, fg="green" if report.passed else "red", bold=True)]
    if untouched and report.start:
        lines.append(f"Nothing written yet. {report.start}")
    return "\n".join(lines)


def render_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)


RENDERERS = {"text": render_text, "json": render_json}
