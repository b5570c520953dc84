"""Student text stays text on every page and in every format: the HTML report (the --feedback page,
check()'s Jupyter view), the Markdown summary, GitHub annotations and JUnit XML.

The tests of a protection run their own check twice: as the code is, and with the escaping (or the
notebook's rebuilding) switched off, where the same check must fail.
"""

from __future__ import annotations

import json
import re
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar

import IPython.display
import nbformat
import pytest

from grader.confined import protocol
from grader.courseware.data import synthetic_words
from grader.inline import ReportView, check
from grader.judging.results import GradientResult, Picture, Report, Status
from grader.reporting import feedback
from grader.reporting import report as report_module
from grader.reporting.formats import render_annotations, render_junit, render_markdown
from tests.conftest import Cli, MechanismOff
from tests.helpers import no_escape

# Markup that would run or show as markup if it reached a page unescaped; each says where it came from.
MESSAGE, PRINTED = "<script>alert('message')</script>", "<img src=x onerror=alert('printed')>"
HOSTILE = ("def boom():\n"  # called to compute dlogits, so a notebook's cell keeps it and its print
           f"    print({PRINTED!r})\n"
           f"    raise ValueError({MESSAGE!r})\n\n\n"
           "dlogits = boom()\n")


def switch_off_escaping(m: pytest.MonkeyPatch) -> None:
    m.setattr(report_module, "html", types.SimpleNamespace(escape=no_escape))


def raw(page: str, text: str) -> bool:
    """Whether `text` is on the page as markup (unescaped)."""
    return text in page


def shown(page: str, text: str) -> bool:
    """Whether `text` is on the page as text: escaped, so it reads as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in re.sub(
        r"&(quot|#x27|#39);", lambda m: {"quot": '"'}.get(m[1], "'"), page)


def test_html_report_escapes_every_text_field(mechanism_off: MechanismOff) -> None:
    """The exercise, title, each message and diagnosis, every note and the printed output reach the
    HTML report as text: each field's markup is shown, never made."""
    fields = {name: f"<b id='{name}'>{name}</b>" for name in ("exercise", "title", "message", "diagnosis", "note",
                                                               "output")}
    g = GradientResult("dlogits", "logits", Status.WRONG, Status.WRONG, False, False, 1.0, fields["message"], 1.0,
                       diagnosis=fields["diagnosis"])
    report = Report(fields["exercise"], fields["title"], "<b>sub</b>.py", (g,), notes=(fields["note"],),
                    output=fields["output"])

    def check_page() -> None:
        page = report_module.render_html(report)
        assert [name for name, text in fields.items() if raw(page, text) or not shown(page, text)] == []

    check_page()
    mechanism_off(check_page, switch_off_escaping, "html.escape in grader/reporting/report.py")


class FakeIPython:
    """Enough of a Jupyter kernel for check(): it is there, and display() is caught."""

    user_ns: ClassVar[dict[str, Any]] = {}


@pytest.mark.slow
def test_check_jupyter_view_shows_student_text_as_text(monkeypatch: pytest.MonkeyPatch,
                                                       mechanism_off: MechanismOff) -> None:
    """check() in Jupyter displays its report as HTML: an exception message and printed text from the
    student's code are shown there as text, never run as script."""
    displayed: list[Any] = []
    monkeypatch.setattr("grader.inline._ipython", FakeIPython)
    monkeypatch.setattr(IPython.display, "display", displayed.append)
    assert check("exercise2", source="# Exercise 2\n" + HOSTILE) is None
    (view,) = displayed
    assert isinstance(view, ReportView)

    def check_view() -> None:
        page = view._repr_html_()
        assert not raw(page, MESSAGE) and shown(page, MESSAGE)
        assert not raw(page, PRINTED) and shown(page, PRINTED)

    check_view()
    mechanism_off(check_view, switch_off_escaping, "html.escape in grader/reporting/report.py")


def hostile_notebook(path: Path) -> None:
    """A student's notebook with markup in every place a notebook can hold it."""
    code = nbformat.v4.new_code_cell("# Exercise 2\n" + HOSTILE, execution_count=1)
    code.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": "<script>alert('html output')</script>",
                                                     "image/svg+xml": "<svg onload=alert('svg')></svg>"}),
        nbformat.v4.new_output("execute_result", execution_count=1,
                               data={"text/plain": "<script>alert('plain')</script>",
                                     "text/markdown": "[md](javascript:alert('md output'))"}),
        nbformat.v4.new_output("stream", name="stdout", text="<script>alert('stream')</script>"),
    ]
    raw_cell = nbformat.v4.new_raw_cell("<script>alert('raw')</script>")
    raw_cell.metadata["format"] = "text/html"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Notes\n<script>alert('markdown')</script> [link](javascript:alert('link'))"),
        code, raw_cell])
    nb.metadata["title"] = "<script>alert('title')</script>"
    nbformat.write(nb, str(path))


@pytest.mark.slow
def test_feedback_page_shows_student_text_as_text(cli: Cli, tmp_path: Path, mechanism_off: MechanismOff) -> None:
    """--feedback on a notebook with markup in its Markdown, raw and code cells, its outputs, its name,
    its exception messages and prints: the page runs none of it; the code, messages and prints are
    shown as written."""
    notebook = tmp_path / "<b>mine.ipynb"
    hostile_notebook(notebook)
    data = tmp_path / "<i>names.txt"
    data.write_text("\n".join(synthetic_words()) + "\n")  # not the lecture's: the report notes its path
    page_path = tmp_path / "<b>mine.feedback.html"

    def check_page() -> None:
        page_path.unlink(missing_ok=True)
        result = cli(["exercise2", str(notebook), "--feedback", "--data", str(data)])
        assert result.exit_code == 1, result.output
        page = page_path.read_text()
        live = r"<script>alert|<svg onload|onload=|<img src=x|<b>mine|<i>names|(?:href|src)=.?javascript:"
        assert re.findall(live, page) == []
        assert shown(page, MESSAGE) and shown(page, PRINTED)  # the report says them, as text
        assert shown(page, f"{data} is not the lecture's names.txt")  # a note holding a path
        assert shown(page, "<script>alert('markdown')</script>")  # the student's Markdown, as written
        assert ">boom<" in page and "exercise2: Cross-entropy backward in one go" in page  # the code, highlighted

    check_page()
    mechanism_off(check_page, switch_off_escaping, "html.escape in grader/reporting/report.py")
    mechanism_off(check_page, lambda m: m.setattr(feedback, "inert_notebook", lambda nb: nb),
                  "the notebook rebuilt from its text")


def test_html_report_rows_say_each_verdict_and_its_numbers() -> None:
    """The HTML table: per gradient its numbers in their own columns, the verdict and label, the chained
    verdict and why; a picture only under the wrong one; the count of correct ones; no printed section
    when nothing was printed."""
    right = GradientResult("dW2", "W2", Status.EXACT, Status.EXACT, True, True, 0.0, "", 1.0)
    picture = Picture((1, 2), (0.5, -0.5), (0.25, 0.0), "lecture")
    wrong = GradientResult("db2", "b2", Status.WRONG, Status.WRONG, False, True, 0.25, "why", 1.0, diagnosis="scale",
                           picture=picture)
    missing = GradientResult("dh", "h", Status.MISSING, Status.MISSING, False, False, None, "", 1.0)
    page = report_module.render_html(Report("exercise1", "t", "s.py", (right, wrong, missing), notes=("a", "b")))
    assert ("<tr><td><code>dW2</code></td><td>True</td><td>True</td><td>0.0e+00</td><td style='color:#1a7f37;"
            "font-weight:bold'>exact</td><td>exact</td><td></td></tr>") in page
    assert ("<tr><td><code>db2</code></td><td>False</td><td>True</td><td>2.5e-01</td><td style='color:#cf222e;"
            "font-weight:bold'>wrong [scale]</td><td>wrong</td><td>why</td></tr><tr><td></td><td colspan='6'>"
            '<img alt="db2: the truth, and your value minus it"') in page
    assert ("<tr><td><code>dh</code></td><td></td><td></td><td></td><td style='color:#9a6700;font-weight:bold'>"
            "missing</td><td>missing</td><td></td></tr></table><p><b>1/3 gradients correct</b></p>") in page
    assert page.count("<img") == 1 and "printed" not in page
    assert "<p><i>note: a</i></p><p><i>note: b</i></p><table>" in page


HOSTILE_LINE = "a|b\r\nc <x> & `y` [l](u) *e* _u_ ~s~ \\ ::x 50% \x07end"


def test_markdown_cell_makes_student_text_inert() -> None:
    """A message in the Markdown summary: one line, no markup, links, emphasis, code, table cells,
    workflow commands or control characters; each character still readable."""
    g = GradientResult("dC", "C", Status.WRONG, Status.WRONG, False, False, 1.0, HOSTILE_LINE, 1.0)
    table = render_markdown([Report("exercise1", "t", "s", (g,))])
    (row,) = [line for line in table.splitlines() if line.startswith("| `dC` |")]
    assert row == ("| `dC` | wrong | wrong | 1.0e+00 | a&#124;b  c &lt;x&gt; &amp; \\`y\\` \\[l\\]\\(u\\) \\*e\\* "
                   "\\_u\\_ \\~s\\~ \\\\ :&#58;x 50&#37; end |")
    assert len(table.splitlines()) == 5  # heading, blank, header, rule, the one row


def test_annotations_and_junit_make_student_text_inert() -> None:
    """An annotation's message is one line with %, CR and LF percent-encoded and control characters
    dropped; JUnit XML drops what XML 1.0 cannot carry and keeps the rest as it was."""
    g = GradientResult("dC", "C", Status.WRONG, Status.WRONG, False, False, 1.0, HOSTILE_LINE, 1.0, line=3)
    report = Report("exercise1", "t", "s", (g,))
    (line,) = render_annotations([report], "s.py").splitlines()
    assert line.endswith("::a|b%0D%0Ac <x> & `y` [l](u) *e* _u_ ~s~ \\ ::x 50%25 end")
    failure = ET.fromstring(render_junit([report]).split("\n", 1)[1]).find("testsuite/testcase/failure")
    assert failure is not None and failure.get("message") == "a|b" and failure.text is not None
    assert failure.text.endswith("c <x> & `y` [l](u) *e* _u_ ~s~ \\ ::x 50% end")


# What a terminal would obey: ESC ] 52 writes the reader's clipboard, ESC [ 2J clears the screen, BEL rings.
TERMINAL = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\x1b]0;graded\x07"
HOSTILE_TERMINAL = ("def boom():\n"
                    f"    print({TERMINAL + 'printed 26/26'!r})\n"
                    f"    raise ValueError({TERMINAL + 'raised'!r})\n\n\n"
                    "dlogits = boom()\n")


def test_text_report_keeps_no_terminal_escape_of_graded_code(cli: Cli, tmp_path: Path,
                                                             mechanism_off: MechanismOff) -> None:
    """What graded code prints and raises reaches the text report, even in colour on a terminal, without
    its control characters: no clipboard write, cleared screen or bell; the words still read."""
    submission = tmp_path / "exercise2.py"
    submission.write_text(HOSTILE_TERMINAL)

    def check_text() -> None:
        result = cli(["exercise2", str(submission)], color=True)
        assert result.exit_code == 1, result.output
        assert "\x1b]" not in result.stdout and "\x1b[2J" not in result.stdout and "\x07" not in result.stdout
        assert "]52;c;cHduZWQ=[2J]0;gradedprinted 26/26" in result.stdout
        assert "ValueError: ]52;c;cHduZWQ=[2J]0;gradedraised" in result.stdout

    check_text()
    mechanism_off(check_text, lambda m: m.setattr(protocol, "_plain", lambda text: text),
                  "_plain in grader/confined/protocol.py")


LONE_SURROGATE = "def boom():\n    raise ValueError('bad \\ud800 value')\n\n\ndlogits = boom()\n"


@pytest.mark.parametrize("fmt", ["text", "junit", "markdown", "json"])
def test_a_lone_surrogate_graded_code_raises_is_written_by_every_format(cli: Cli, tmp_path: Path, fmt: str,
                                                                        mechanism_off: MechanismOff) -> None:
    """An exception whose text holds a lone surrogate (which no UTF-8 can encode) is shown with a
    replacement character, on the terminal and in a file, in every format: a report, not a traceback."""
    submission = tmp_path / "exercise2.py"
    submission.write_text(LONE_SURROGATE)
    written = tmp_path / f"report.{fmt}"

    def check_formats() -> None:
        shown = cli(["exercise2", str(submission), "--format", fmt])
        assert shown.exit_code == 1, shown.exception
        assert ("bad \\ufffd value" if fmt == "json" else "bad \ufffd value") in shown.stdout, shown.stdout[-400:]
        saved = cli(["exercise2", str(submission), "--format", fmt, "-o", str(written)])
        assert saved.exit_code == 1, saved.exception
        assert "bad \ufffd value" in (json.loads(written.read_text())["gradients"][0]["message"] if fmt == "json"
                                      else written.read_text(encoding="utf-8"))

    check_formats()
    mechanism_off(check_formats, lambda m: m.setattr(protocol, "_SURROGATE", re.compile("(?!)")),
                  "_plain's replacement of lone surrogates")
    with pytest.MonkeyPatch.context() as m:  # past that replacement, a file is still written, the surrogate escaped
        m.setattr(protocol, "_SURROGATE", re.compile("(?!)"))
        saved = cli(["exercise2", str(submission), "--format", fmt, "-o", str(written)])
    assert saved.exit_code == 1 and "bad \\ud800 value" in written.read_text(encoding="utf-8"), saved.exception


# What a CI log would obey: a mask, a fake annotation, the grader's own commands switched off.
LOG_COMMANDS = ("::add-mask::26/26", "  ::error title=graded::all exact", "::stop-commands::token",
                "a ##[error]b ##vso[task.complete result=Succeeded]c ##teamcity[buildStatus text='ok']")
HOSTILE_LOG = ("def boom():\n"
               + "".join(f"    print({line!r})\n" for line in LOG_COMMANDS)
               + "    raise ValueError('::notice::raised ' * 12)\n\n\n"
               "dlogits = boom()\n")


def test_text_report_gives_a_ci_log_no_command_of_graded_code(cli: Cli, tmp_path: Path,
                                                              mechanism_off: MechanismOff) -> None:
    """What graded code prints or raises, shown in the text report (which CI logs carry), is no command
    of GitHub Actions (`::name::` first on a line, `##[`), Azure Pipelines or TeamCity: each still reads,
    with a space inside."""
    submission = tmp_path / "exercise2.py"
    submission.write_text(HOSTILE_LOG)

    def check_text() -> None:
        result = cli(["exercise2", str(submission)])
        assert result.exit_code == 1, result.output
        lines = result.stdout.splitlines()
        assert not [line for line in lines if line.lstrip().startswith("::")], result.stdout
        assert not [line for line in lines if "##[" in line or "##vso[" in line or "##teamcity[" in line]
        assert "  : :add-mask::26/26" in lines and "    : :error title=graded::all exact" in lines
        assert "  a # #[error]b # #vso[task.complete result=Succeeded]c # #teamcity[buildStatus text='ok']" in lines
        assert [line for line in lines if line.lstrip().startswith(": :notice::raised")]  # wrapped lines

    check_text()
    mechanism_off(check_text, lambda m: m.setattr(report_module, "inert_in_ci_logs", lambda text: text),
                  "inert_in_ci_logs in grader/reporting/report.py")
