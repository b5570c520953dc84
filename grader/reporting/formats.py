"""Reports for machines: JUnit XML, Gradescope's results.json, Markdown and GitHub annotations.

Every renderer takes one or more Reports (one per exercise of a submission) and holds no
grading logic. Student-controlled text (exception messages, names of files) is escaped
for each target, so it can never become markup, a workflow command or broken XML. Classroom
50's result.json and PrairieLearn's results.json are in grader/reporting/platforms.py.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from grader.judging.results import GradientResult, Report, Status, json_report

if TYPE_CHECKING:
    from grader.courseware.graph import Graph

# XML 1.0 cannot carry most control characters, even escaped: drop them.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def environment(reports: list[Report]) -> dict[str, Any]:
    """Where the verdicts were made, as the first report captured it when graded, with what confined
    the code as the first report whose code ran says it held. A report made by hand, never graded,
    has no environment: this machine's, now, stands in for it."""
    held = next((r.sandbox for r in reports if r.sandbox), None)
    first = next((r.environment for r in reports if r.environment), None)
    if first is None:
        from grader.judging.environment import captured  # noqa: PLC0415 - torch, for a report never graded

        first = captured()
    return {**first, "sandbox": held or first["sandbox"]}


def printable(text: str) -> str:
    """Text without the control characters (terminal escapes included) no report should carry."""
    return _XML_BAD.sub("", text)


def one_line(text: str) -> str:
    """A student id, a file's path or a line naming them, as one line of a terminal or a CI log may
    hold it: as it is when every character is printable and it cannot be read as a GitHub Actions
    command, else quoted as Python quotes it (`'x\\n::error::...'`), so a file's name can neither start
    a line of its own nor move the cursor."""
    return text if text.isprintable() and not text.lstrip().startswith("::") else repr(text)


def details(g: GradientResult) -> str:
    """One gradient's verdict, diagnosis, deciding case and message, as lines of plain text."""
    lines = [f"status: {g.status.value} (chained: {g.chained.value})"]
    if g.diagnosis:
        lines.append(f"diagnosis: {g.diagnosis}")
    if g.maxdiff is not None:
        lines.append(f"maxdiff: {g.maxdiff:.3e}")
    if g.case:
        lines.append(f"case: {g.case}")
    if g.message:
        lines.append(g.message)
    return "\n".join(lines)


def render_junit(reports: list[Report], seconds: float = 0.0) -> str:
    """One <testsuite> per exercise, one <testcase> per gradient (classname = exercise)."""
    root = ET.Element("testsuites", name="backprop-ninja")
    total = {"tests": 0, "failures": 0, "errors": 0}
    for report in reports:
        failures = sum(g.status in (Status.WRONG, Status.MISSING) for g in report.gradients)
        errors = sum(g.status is Status.ERROR for g in report.gradients)
        per_case = seconds / max(1, len(report.gradients) * len(reports))
        suite = ET.SubElement(root, "testsuite", name=report.exercise, tests=str(len(report.gradients)),
                              failures=str(failures), errors=str(errors), skipped="0",
                              time=f"{per_case * len(report.gradients):.3f}")
        for g in report.gradients:
            case = ET.SubElement(suite, "testcase", classname=report.exercise, name=g.name, time=f"{per_case:.3f}")
            if not g.passed:
                first = (g.message.splitlines()[0] if g.message else g.status.value)[:500]
                kind = "error" if g.status is Status.ERROR else "failure"
                element = ET.SubElement(case, kind, message=printable(first), type=g.diagnosis or g.status.value)
                element.text = printable(details(g))
        if report.training is not None:
            case = ET.SubElement(suite, "testcase", classname=report.exercise, name="training run", time="0")
            if not report.training.agreed:
                failure = ET.SubElement(case, "failure", message=printable(report.training.stopped or
                                        "the loss curve does not follow autograd's"), type="training")
                failure.text = json.dumps(report.training.to_dict(), indent=2)
            suite.set("tests", str(int(suite.get("tests", "0")) + 1))
            suite.set("failures", str(int(suite.get("failures", "0")) + (not report.training.agreed)))
        for key in total:
            total[key] += int(suite.get(key, "0"))
    for key, value in total.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_gradescope(reports: list[Report], *, visibility: str = "visible") -> str:
    """Gradescope's results.json: the total score and one test per gradient, worth its points."""
    tests: list[dict[str, Any]] = []
    for report in reports:
        for g in report.gradients:
            tests.append({
                "name": f"{report.exercise}: {g.name}",
                "number": f"{report.exercise.removeprefix('exercise')}.{len(tests) + 1}",
                "score": g.score,
                "max_score": g.points,
                "status": "passed" if g.passed else "failed",
                "output": details(g),
                "visibility": visibility,
                **({"tags": [g.diagnosis]} if g.diagnosis else {}),
            })
    score = sum(r.score for r in reports)
    lines = [f"{r.exercise}: {sum(g.passed for g in r.gradients)}/{len(r.gradients)} gradients correct"
             for r in reports]
    lines += [printable(note) for r in reports for note in r.notes]
    for r in reports:
        if r.training is not None:
            t = r.training
            lines.append(f"{r.exercise} training run: {'agrees' if t.agreed else 'does not agree'} with autograd"
                         + (f" ({t.stopped})" if t.stopped else ""))
    return json.dumps({"score": score, "output": "\n".join(lines), "visibility": visibility,
                       "stdout_visibility": "hidden", "tests": tests}, indent=2)


def _md_cell(text: str) -> str:
    """Student text made inert in a Markdown table cell and on a runner's stdout."""
    text = _XML_BAD.sub("", text).replace("\r", " ").replace("\n", " ")
    text = re.sub(r"([\\`*_\[\]()~])", r"\\\1", text)  # no emphasis, code, links or images
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "&#124;")
    return text.replace("::", ":&#58;").replace("%", "&#37;")


def render_markdown(reports: list[Report]) -> str:
    """A summary for $GITHUB_STEP_SUMMARY: a table per exercise."""
    out = []
    for report in reports:
        correct = sum(g.passed for g in report.gradients)
        mark = "✅" if report.passed else "❌"
        out += [f"### {mark} {report.exercise}: {_md_cell(report.title)} — {correct}/{len(report.gradients)} "
                "gradients correct", "", "| gradient | verdict | chained | maxdiff | why |", "|---|---|---|---|---|"]
        for g in report.gradients:
            verdict = g.status.value + (f" ({g.diagnosis})" if g.diagnosis else "")
            maxdiff = f"{g.maxdiff:.1e}" if g.maxdiff is not None else ""
            out.append(f"| `{g.name}` | {verdict} | {g.chained.value} | {maxdiff} | {_md_cell(g.message)} |")
        if report.training is not None:
            t = report.training
            out += ["", f"Training run: {'agrees' if t.agreed else 'does not agree'} with autograd over "
                    f"{len(t.losses)}/{t.planned} steps; backward {t.student_ms:.3f} ms/step vs autograd "
                    f"{t.autograd_ms:.3f} ms."]
        out.append("")
    return "\n".join(out)


def _escape_data(text: str) -> str:
    return _XML_BAD.sub("", text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_annotations(reports: list[Report], submission_path: str) -> str:
    """GitHub workflow commands: an ::error on the line where each failing gradient is assigned."""
    lines = []
    for report in reports:
        for g in report.gradients:
            if g.passed:
                continue
            where = f"file={_escape_property(submission_path)}"
            if g.line is not None and submission_path.endswith(".py"):
                where += f",line={g.line}"
            title = _escape_property(f"{report.exercise} {g.name}: {g.status.value}"
                                     + (f" ({g.diagnosis})" if g.diagnosis else ""))
            lines.append(f"::error {where},title={title}::{_escape_data(g.message or g.status.value)}")
    return "\n".join(lines)


FORMATS = ("text", "json", "junit", "gradescope", "markdown", "classroom50", "prairielearn")
PLATFORM_FORMATS = ("gradescope", "classroom50", "prairielearn")  # what a grading platform reads back
RETIRED_FORMATS = {
    "classroom": "--format classroom fed GitHub Classroom's grading reporter, and GitHub Classroom was "
                 "discontinued on 2026-08-28: use --format classroom50 (Classroom 50), or junit and markdown "
                 "(a plain GitHub Actions workflow: ninja-grade init-github-actions)",
}


def render(fmt: str, reports: list[Report], *, seconds: float = 0.0, environ: Mapping[str, str] | None = None,
           unreadable: str | None = None, graphs: Mapping[str, Graph] | None = None) -> str:
    """Any format, for the reports of one submission (one exercise, or all of them). `environ` is
    where Classroom 50's runner says which submission this is; `unreadable`, the reason a
    submission could not be read at all (the reports are then every gradient `error`); `graphs`
    (by exercise) lets the text say where to start."""
    from grader.reporting.platforms import render_classroom50, render_prairielearn  # noqa: PLC0415 - as below
    from grader.reporting.report import render_text  # noqa: PLC0415 - report imports nothing from here

    if fmt == "text":
        return "\n\n".join(render_text(r, (graphs or {}).get(r.exercise)) for r in reports)
    if fmt == "json":
        return json.dumps(json_report(reports, environment(reports)), indent=2)
    if fmt == "junit":
        return render_junit(reports, seconds)
    if fmt == "gradescope":
        return render_gradescope(reports)
    if fmt == "markdown":
        return render_markdown(reports)
    if fmt == "classroom50":
        return render_classroom50(reports, environ or {})
    if fmt == "prairielearn":
        return render_prairielearn(reports, unreadable=unreadable)
    raise ValueError(f"unknown format {fmt!r}")
