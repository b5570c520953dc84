"""Renderers: a Report in, text out. No grading logic lives here."""

from __future__ import annotations

import html
import json
import os
import re
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from grader.courseware.course import TrainingSpec
from grader.judging.results import FullRun, GradientResult, Report, Status, TrainingResult
from grader.reporting.graph_marks import first_wrong_line
from grader.reporting.pictures import picture_img

if TYPE_CHECKING:
    from grader.courseware.graph import Graph

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


def start_here(report: Report, graph: Graph | None) -> str | None:
    """`The first wrong gradient, going backwards from the loss, is dprobs (line 15), 2 steps from the
    loss: start there.`, given the exercise's graph; None without one or when nothing is wrong."""
    said = first_wrong_line(report, graph) if graph is not None else None
    return f"{said[0].upper()}{said[1:]}." if said else None


def render_text(report: Report, graph: Graph | None = None) -> str:
    """The report as the terminal shows it; with the exercise's graph, it also says where to start."""
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
    first = start_here(report, graph)
    if first is not None:
        lines += ["", click.style(first, fg="red")]
    if any(g.passed and not g.chained.passed for g in report.gradients):
        lines += ["", "chained: what the lecture's cmp prints for your code as written. A gradient can be",
                  "right on its own (its verdict) and still wrong there, when one it is computed from is wrong."]
    if report.output.strip():
        lines += ["", "your code printed:"]
        lines += [f"  {line}" for line in report.output.rstrip().splitlines()]
    if report.training is not None:
        lines += ["", *training_lines(report.training)]
    correct = sum(g.passed for g in report.gradients)
    total = len(report.gradients)
    score = f"{correct}/{total} gradient{'s' if total != 1 else ''} correct"
    if report.training is not None and not report.training.agreed and correct == total:
        score = (f"{correct}/{total} gradients right at every step judged, but your run does not agree with "
                 "autograd's: not passed")
    if report.max_score != total:
        score += f" · score {report.score:g}/{report.max_score:g}"
    lines += ["", click.style(score, fg="green" if report.passed else "red", bold=True)]
    if untouched and report.start:
        lines.append(f"Nothing written yet. {report.start}")
    return inert_in_ci_logs("\n".join(lines))


# What a CI log obeys as a command, for the text report is read in CI logs and shows what graded code
# printed and raised: GitHub Actions' `::name::` (a line's first word) and `##[name]`, Azure Pipelines'
# `##vso[`, TeamCity's `##teamcity[` (anywhere in a line).
LOG_COMMAND_START = re.compile(r"^(\s*):(?=:)", re.MULTILINE)
LOG_COMMAND_INSIDE = re.compile(r"#(?=#(?:\[|vso\[|teamcity\[))", re.IGNORECASE)


def inert_in_ci_logs(text: str) -> str:
    """The text with a space inside each CI log command (`: :add-mask::`, `# #[error]`): the words stay
    readable, and no runner takes a submission's print for its own command (a mask, a fake annotation,
    `::stop-commands::` hiding the grader's own)."""
    return LOG_COMMAND_INSIDE.sub("# ", LOG_COMMAND_START.sub(r"\1: ", text))


def training_lines(t: TrainingResult) -> list[str]:
    """Exercise 4's run with the student's gradients, beside autograd's."""
    verdict = click.style("agrees", fg="green") if t.agreed else click.style("does not agree", fg="red", bold=True)
    lines = [f"training: {len(t.losses)} of {t.planned} steps with your gradients beside autograd's (same batches)"]
    if t.losses:
        lines.append(f"  final loss: yours {t.losses[-1]:.4f} · autograd {t.reference[-1]:.4f} · largest "
                     f"difference {t.max_diff:.1e} (allowed {t.loss_atol:g}): {verdict}")
        faster = "faster" if t.student_ms < t.autograd_ms else "slower"
        lines.append(f"  backward per step: yours {t.student_ms:.3f} ms · autograd {t.autograd_ms:.3f} ms "
                     f"(one thread each): yours is {faster}")
    if t.stopped:
        lines.append(click.style(f"  {t.stopped}", fg="red"))
    return lines


def render_full(run: FullRun, training: TrainingSpec, plot_path: str | None, *, fmt: str) -> str:
    """Exercise 4's real run: how far it got, the losses beside the lecture's, samples, the plot."""
    if fmt == "json":
        return json.dumps({**run.to_dict(), "lecture_train_loss": training.lecture_train,
                           "lecture_val_loss": training.lecture_val, "plot": plot_path}, indent=2)
    rate = run.steps / run.seconds if run.seconds else 0.0
    lines = [click.style(f"full run: {run.steps:,} of {run.planned:,} steps in {run.seconds:,.0f} s "
                         f"({rate:,.0f} steps/s)", bold=True)]
    if run.threads:
        lines.append("  torch threads: " + ", ".join(f"{who} {n}" for who, n in run.threads.items()))
    if run.stopped:
        lines.append(click.style(f"  {run.stopped}", fg="yellow" if run.interrupted else "red"))
    if run.train_loss is not None and run.val_loss is not None:
        lines.append(f"  train loss {run.train_loss:.4f} (lecture {training.lecture_train:.4f}) · "
                     f"val loss {run.val_loss:.4f} (lecture {training.lecture_val:.4f})")
        lines.append("  (batchnorm calibrated on the whole training set, as in the lecture)")
    if run.samples:
        lines += ["", "20 names from your net:" if len(run.samples) == 20 else "names from your net:"]
        lines += [f"  {name}" for name in run.samples]
    if plot_path:
        lines += ["", f"loss curve: {os.path.abspath(plot_path)}"]
    return "\n".join(lines)


def render_html(report: Report, graph: Graph | None = None,
                shapes: Mapping[str, tuple[int, ...]] | None = None) -> str:
    """The report as HTML (the --feedback page, Jupyter); with the exercise's graph and its tensors'
    shapes, the picture of the graph comes first."""
    colour = {Status.EXACT: "#1a7f37", Status.APPROXIMATE: "#1a7f37", Status.WRONG: "#cf222e",
              Status.MISSING: "#9a6700", Status.ERROR: "#8250df"}
    rows = []
    for g in report.gradients:
        numbers = ("", "", "") if g.maxdiff is None else (str(g.exact), str(g.approximate), f"{g.maxdiff:.1e}")
        label = f" [{g.diagnosis}]" if g.diagnosis else ""
        rows.append(
            f"<tr><td><code>{g.name}</code></td><td>{numbers[0]}</td><td>{numbers[1]}</td><td>{numbers[2]}</td>"
            f"<td style='color:{colour[g.status]};font-weight:bold'>{g.status.value}{html.escape(label)}</td>"
            f"<td>{g.chained.value}</td><td>{html.escape(g.message)}</td></tr>")
        if g.picture is not None and not g.passed:  # where it is wrong, beside what it should be
            rows.append(f"<tr><td></td><td colspan='6'>{picture_img(g.name, g.picture)}</td></tr>")
    correct = sum(g.passed for g in report.gradients)
    notes = "".join(f"<p><i>note: {html.escape(n)}</i></p>" for n in report.notes)
    printed = f"<p>your code printed:</p><pre>{html.escape(report.output)}</pre>" if report.output.strip() else ""
    picture = ""
    if graph is not None and shapes is not None:
        from grader.reporting.graph_picture import graph_html  # noqa: PLC0415 - matplotlib only for a picture

        first = start_here(report, graph)
        picture = graph_html(report, graph, shapes) + (f"<p><b>{html.escape(first)}</b></p>" if first else "")
    return (f"<h4>{html.escape(report.exercise)}: {html.escape(report.title)}</h4>{notes}{picture}"
            "<table><tr><th>gradient</th><th>exact</th><th>approximate</th><th>maxdiff</th><th>verdict</th>"
            f"<th>chained</th><th>why</th></tr>{''.join(rows)}</table>{printed}"
            f"<p><b>{correct}/{len(report.gradients)} gradients correct</b></p>")


