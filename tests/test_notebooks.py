"""Notebooks: students' notebooks in the lecture's layout graded without a kernel, the
course's generated notebooks run in a real one, and bad notebooks refused in a sentence."""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest
import torch
from nbclient import NotebookClient

import grader
from grader.courseware.cases import build_case, setting_of
from grader.courseware.course import Course, default_course_path
from grader.courseware.data import Dataset, find_names
from grader.courseware.draw import SECRET_ENV
from grader.courseware.notebooks import build_notebook
from grader.inline import check
from grader.intake import notebooks
from grader.intake.extract import (
    Cell,
    Layout,
    Section,
    clean_code,
    in_the_order_they_ran,
    layout_of,
    renames_from_batch,
    section_of,
)
from grader.reporting import feedback
from tests.conftest import ROOT, Cli, MechanismOff, grade, run_cli
from tests.helpers import NOTEBOOK_GRADES, assert_setup_error, copy_course

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"

def grade_all(path: Path) -> dict[str, dict[str, object]]:
    result = run_cli(["all", str(path), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    return {r["exercise"]: r for r in json.loads(result.stdout)["exercises"]}


def test_every_fixture_notebook_has_an_expectation() -> None:
    """Each notebook in tests/notebooks is checked below, and each expectation has its notebook."""
    assert {p.stem for p in NOTEBOOKS.glob("*.ipynb")} == set(NOTEBOOK_GRADES)
    assert len(NOTEBOOK_GRADES) >= 8


# the notebooks whose grading takes more than about a second here, or trains (exercise 4)
SLOW_NOTEBOOKS = {"helpers_in_earlier_cells", "indented_cells", "lecture_all_correct", "lecture_mixed"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_NOTEBOOKS else n
                                  for n in sorted(NOTEBOOK_GRADES)])
def test_fixture_notebook_gets_expected_verdicts(name: str) -> None:
    """A student's notebook in the lecture's layout is graded to the verdicts it deserves."""
    reports = grade_all(NOTEBOOKS / f"{name}.ipynb")
    for exercise, expected in NOTEBOOK_GRADES[name].items():
        report = reports[exercise]
        if expected == "none":
            assert report["score"] == 0
            assert any(f"no code for {exercise} found" in n for n in report["notes"]), report["notes"]
            assert {g["status"] for g in report["gradients"]} == {"missing"}
            continue
        score, failing = expected  # type: ignore[misc]
        got = {g["name"]: (g["status"], g["diagnosis"]) for g in report["gradients"]
               if g["status"] not in ("exact", "approximate")}
        assert got == failing, (exercise, got)
        assert report["score"] == score


def test_renamed_gradients_are_reported() -> None:
    """Renames learned from cmp calls are said in the notes."""
    notes = grade_all(NOTEBOOKS / "renamed_gradients.ipynb")["exercise1"]["notes"]
    assert "read dcsi as dcounts_sum_inv, as your cmp call says" in notes  # type: ignore[operator]


@pytest.mark.slow
@pytest.mark.usefixtures("one_draw")
def test_transcript_script_is_read_like_its_notebook() -> None:
    """A .py transcribing the lecture's notebook gets the same verdicts as the notebook itself (both on
    the same cases)."""
    from_notebook = grade_all(NOTEBOOKS / "lecture_mixed.ipynb")
    from_script = grade_all(NOTEBOOKS / "lecture_mixed_transcript.py")
    for exercise, report in from_notebook.items():
        strip = lambda r: [(g["name"], g["status"], g["chained"], g["diagnosis"], g["maxdiff"])  # noqa: E731
                           for g in r["gradients"]]
        assert strip(report) == strip(from_script[exercise])


@pytest.mark.slow
def test_messages_point_at_notebook_cells(tmp_path: Path) -> None:
    """An exception in a notebook cell is reported at that cell's line, not the extracted program's."""
    nb = nbformat.read(str(NOTEBOOKS / "lecture_all_correct.ipynb"), as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if c.source.startswith("# backward pass\n\ndlogits"))
    nb.cells[i].source = nb.cells[i].source.replace("dlogits /= n", "dlogits /= W1")
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, str(path))
    report = grade_all(path)["exercise2"]
    message = report["gradients"][0]["message"]  # type: ignore[index]
    assert message.startswith(f"cell {i + 1}, line 5: RuntimeError")


def test_messages_map_only_the_graders_own_line_numbers(tmp_path: Path) -> None:
    """A student's exception text that names a line reaches the report as written; the line the grader
    names, where it was raised, is the notebook cell's."""
    nb = nbformat.read(str(NOTEBOOKS / "lecture_all_correct.ipynb"), as_version=4)
    i = next(i for i, c in enumerate(nb.cells) if c.source.startswith("# backward pass\n\ndlogits"))
    raising = 'def divided(d):\n    raise ValueError("see line 3")\ndlogits = divided(dlogits)'
    nb.cells[i].source = nb.cells[i].source.replace("dlogits /= n", raising)
    path = tmp_path / "raises.ipynb"
    nbformat.write(nb, str(path))
    report = grade_all(path)["exercise2"]
    assert report["gradients"][0]["message"] == f"cell {i + 1}, line 6: ValueError: see line 3"


@pytest.mark.parametrize("exercise_id", ["exercise1", "exercise2", "exercise3",
                                         pytest.param("exercise4", marks=pytest.mark.slow)])  # it trains
@pytest.mark.usefixtures("one_draw")
def test_same_submission_as_py_and_notebook_same_report(cli: Cli, course: Course, tmp_path: Path,
                                                        exercise_id: str) -> None:
    """The solution graded as a .py and as a course notebook gets the same verdicts (on the same cases)."""
    exercise = course.exercise(exercise_id)
    path = tmp_path / f"{exercise_id}.ipynb"
    nbformat.write(build_notebook(course, exercise, exercise.solution), str(path))
    as_py = json.loads(cli([exercise_id, str(exercise.solution), "--format", "json"]).stdout)
    as_nb = json.loads(cli([exercise_id, str(path), "--format", "json"]).stdout)
    strip = lambda r: [(g["name"], g["status"], g["chained"], g["diagnosis"], g["maxdiff"])  # noqa: E731
                       for g in r["gradients"]]
    assert strip(as_py) == strip(as_nb)
    assert as_nb["passed"] is True


def write_text(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


NB_OF_ONE_CELL = ('{"cells": [{"cell_type": "%s", "id": "c1", "metadata": {}, "source": %s, "outputs": [], '
                  '"execution_count": null}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')


@pytest.mark.parametrize(
    ("content", "code", "words"),
    [
        ("", 2, "is empty, not a notebook"),
        ("{not json", 2, "is not a Jupyter notebook: Notebook does not appear to be JSON"),
        ("[1, 2]", 2, "is not a Jupyter notebook"),
        (b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5, "x": "\xff"}', 2, "is not UTF-8"),
        ('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}', 1, "no code for exercise1 found"),
        *((NB_OF_ONE_CELL % (kind, source), 2, f"is not a Jupyter notebook: cell 1's source is {said}, not text")
          for kind, source, said in (("code", "5", "a number"), ("markdown", "5", "a number"),
                                     ("code", "null", "null"), ("code", '{"a": 1}', "an object"))),
    ],
)
def test_bad_notebooks_get_one_line(cli: Cli, tmp_path: Path, content: str | bytes, code: int, words: str) -> None:
    """Empty, non-JSON, non-UTF-8 and codeless notebooks, and a cell whose source is not text: one line of
    reason, exit 1 or 2, no traceback."""
    path = write_text(tmp_path / "bad.ipynb", content)
    result = cli(["exercise1", str(path)])
    if code == 2:
        assert_setup_error(result, words)
    else:
        assert result.exit_code == code and words in result.stdout and "Traceback" not in result.output


def test_old_nbformat_v3_notebook_is_converted_and_graded(cli: Cli, course: Course, tmp_path: Path) -> None:
    """A notebook saved in nbformat 3, headings and all, is read (converted) and graded like any other."""
    solution = course.exercise("exercise2").solution.read_text()
    nb3 = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(cells=[
        nbformat.v3.new_heading_cell("Exercise 2", level=2), nbformat.v3.new_code_cell(input=solution)])])
    path = write_text(tmp_path / "old.ipynb", nbformat.writes(nb3, version=3))
    result = cli(["exercise2", str(path)])
    assert result.exit_code == 0, result.output
    assert "1/1 gradient correct" in result.output


def test_half_a_surrogate_pair_in_a_cell_does_not_lose_the_cell(cli: Cli, course: Course, tmp_path: Path,
                                                                 mechanism_off: MechanismOff) -> None:
    """JSON may hold "\\ud800", which no text can: such a character in a comment or a string of the
    exercise's cell is read as U+FFFD, and the cell is graded, not left out."""
    solution = course.exercise("exercise2").solution.read_text()
    source = json.dumps("# Exercise 2 \ud83d\n" + solution + "\nnote = 'half a pair: \udca9'\n")
    assert "\\ud83d" in source and "\\udca9" in source
    path = write_text(tmp_path / "surrogate.ipynb", NB_OF_ONE_CELL % ("code", source))

    def graded() -> None:
        result = cli(["exercise2", str(path)])
        assert result.exit_code == 0 and "1/1 gradient correct" in result.output, result.output

    graded()
    mechanism_off(graded, lambda m: m.setattr(notebooks, "LONE_SURROGATE", re.compile("(?!)")),
                  "reading a lone surrogate as U+FFFD")


def test_a_cell_of_too_many_statements_is_said_in_a_line(cli: Cli, tmp_path: Path,
                                                         mechanism_off: MechanismOff) -> None:
    """Each statement of a cell is cut out on its own: past 5,000 in one cell, the exercise's cell is said
    to have too many before any is, every gradient error, exit 1."""
    source = json.dumps("# Exercise 2\n" + "dlogits = 1\n" * 5001)
    path = write_text(tmp_path / "many.ipynb", NB_OF_ONE_CELL % ("code", source))

    def said() -> None:
        result = cli(["exercise2", str(path), "--format", "json"])
        assert result.exit_code == 1 and result.stdout.startswith("{"), result.output[-600:]
        assert json.loads(result.stdout)["gradients"][0]["message"] == (
            "cell 1: the code has 5,001 statements, over the 5,000 a submission may have")

    said()
    mechanism_off(said, lambda m: m.setattr("grader.intake.extract.MAX_STATEMENTS", 10**6), "the cap on a cell")


def test_an_old_notebooks_heading_of_a_huge_level_is_refused_before_it_is_converted(
        cli: Cli, tmp_path: Path, mechanism_off: MechanismOff) -> None:
    """nbformat turns a version-3 heading cell into `level` hashes: a 3 KB file asking for a level of
    3,000,000,000 would have the grader allocate 3 GB. Its level is checked first (1 to 6), and such a
    file is refused in one line (the check is shown at a level of ten million, which nbformat writes)."""
    for level in (3_000_000_000, 10_000_000, 0, "2"):
        nb3 = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(cells=[
            nbformat.v3.new_code_cell(input="x = 1"), nbformat.v3.new_heading_cell("Exercise 1", level=1)])])
        nb3.worksheets[0].cells[1].level = level
        path = write_text(tmp_path / "heading.ipynb", nbformat.writes(nb3, version=3))
        assert path.stat().st_size < 1000

        def refused(path: Path = path, level: object = level) -> None:
            assert_setup_error(cli(["exercise1", str(path)]), f"is not a Jupyter notebook: cell 2 is a heading of "
                                                              f"level {level!r}, where a heading's level is 1 to 6")

        refused()
        if level == 10_000_000:
            mechanism_off(refused, lambda m: m.setattr(notebooks, "_as_v4", lambda nb, path: nbformat.convert(nb, 4)),
                          "the check of an old heading's level")


def test_notebook_with_50_mb_of_outputs_is_graded(cli: Cli, course: Course, tmp_path: Path) -> None:
    """Outputs are never read as code: a notebook with 50 MB of them grades as usual."""
    nb = build_notebook(course, course.exercise("exercise2"), course.exercise("exercise2").solution)
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * (50 * 2**20))]
    path = tmp_path / "huge.ipynb"
    nbformat.write(nb, str(path))
    assert path.stat().st_size > 50 * 2**20
    result = cli(["exercise2", str(path)])
    assert result.exit_code == 0 and "1/1 gradient correct" in result.output


def test_notebook_command_writes_all_exercises(cli: Cli, tmp_path: Path) -> None:
    """`ninja-grade notebook all` writes one valid notebook per exercise, Colab-ready."""
    result = cli(["notebook", "all", "--out", str(tmp_path), "--course-repo", "https://example.org/course.git"])
    assert result.exit_code == 0, result.output
    paths = sorted(tmp_path.glob("*.ipynb"))
    assert [p.name for p in paths] == ["exercise1.ipynb", "exercise2.ipynb", "exercise3.ipynb", "exercise4.ipynb"]
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
        sources = [c.source for c in nb.cells]
        assert "!git clone -q --depth 1 https://example.org/course.git" in sources[1]
        assert "%pip install" in sources[1] and f'setup("{path.stem}", globals())' in sources[1]
        assert sources[-1] == f'check("{path.stem}")'
    ex1 = nbformat.read(str(tmp_path / "exercise1.ipynb"), as_version=4)
    assert sum(c.source.count("= None  # (") for c in ex1.cells if c.cell_type == "code") == 26


def test_notebook_command_unknown_exercise_exit_2(cli: Cli, tmp_path: Path) -> None:
    """An unknown exercise is a one-line error."""
    assert_setup_error(cli(["notebook", "exercise9", "--out", str(tmp_path)]), "no exercise 'exercise9'")


def run_in_kernel(nb: nbformat.NotebookNode, cwd: Path) -> list[str]:
    """Execute a notebook top to bottom in a real kernel; the text of every output."""
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", out
            texts.append(out.get("text") or out.get("data", {}).get("text/plain", ""))
    return texts


@pytest.mark.slow
@pytest.mark.parametrize(("exercise_id", "total"), [("exercise1", 26), ("exercise2", 1), ("exercise3", 1),
                                                     ("exercise4", 7)])
def test_generated_notebook_with_solution_runs_and_checks_clean(course: Course, tmp_path: Path,
                                                                 exercise_id: str, total: int) -> None:
    """A course notebook with the solution pasted into its blanks runs in a kernel without
    error, and its check cell reports every gradient passing."""
    exercise = course.exercise(exercise_id)
    texts = run_in_kernel(build_notebook(course, exercise, exercise.solution), tmp_path)
    report = texts[-1]
    assert f"{total}/{total} gradient{'s' if total > 1 else ''} correct" in report
    assert "\x1b[" not in report  # plain text for the text/plain view
    if exercise.training:
        assert "agrees" in report


@pytest.mark.slow
def test_generated_stub_notebook_runs_and_reports_missing(course: Course, tmp_path: Path) -> None:
    """The untouched course notebook runs without error; its check says nothing is written yet."""
    texts = run_in_kernel(build_notebook(course, course.exercise("exercise2")), tmp_path)
    assert "0/1 gradient correct" in texts[-1]


def test_inline_check_outside_jupyter_returns_the_report(course: Course, capsys: pytest.CaptureFixture[str]) -> None:
    """check() on source text grades it with the CLI's judge and prints the same table."""
    report = check("exercise2", source="# Exercise 2\n" + course.exercise("exercise2").solution.read_text())
    assert report is not None and report.passed
    assert "1/1 gradient correct" in capsys.readouterr().out


def test_default_course_is_the_repositorys() -> None:
    """Without --course or $NINJA_COURSE the grader reads the course.yaml beside its package: the one
    these fixtures are written for."""
    os.environ.pop("NINJA_COURSE", None)
    assert default_course_path() == ROOT / "course.yaml"


def test_feedback_html_written_beside_notebook(cli: Cli, tmp_path: Path) -> None:
    """--feedback renders the notebook with nbconvert, the report on top, beside the notebook."""
    nb = tmp_path / "mine.ipynb"
    nb.write_bytes((NOTEBOOKS / "lecture_mixed.ipynb").read_bytes())
    result = cli(["exercise2", str(nb), "--feedback"])
    assert result.exit_code == 1
    html = (tmp_path / "mine.feedback.html").read_text()
    assert "exercise2: Cross-entropy backward in one go" in html and "[scale]" in html
    assert ">softmax<" in html  # the student's own cells, highlighted
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("command", [["exercise2"], ["all", "--exercise", "exercise2"]])
def test_feedback_page_is_written_when_outputs_are_malformed(cli: Cli, tmp_path: Path, command: list[str],
                                                             mechanism_off: MechanismOff) -> None:
    """A notebook that grades, whose saved outputs are not what nbformat describes (an error's traceback
    the number 7, a text/plain of 5, an output with no type): --feedback writes the page, leaving out what
    it cannot show, with no traceback."""
    nb = nbformat.reads((NOTEBOOKS / "lecture_mixed.ipynb").read_text(), as_version=4)
    code = next(cell for cell in nb.cells if cell.cell_type == "code")
    code.outputs = [{"output_type": "error", "ename": "ValueError", "evalue": "shown", "traceback": 7},
                    {"output_type": "execute_result", "data": {"text/plain": 5}, "metadata": {}, "execution_count": 1},
                    {"no": "output_type"}]
    path = tmp_path / "odd.ipynb"
    path.write_text(json.dumps(nb))
    page = tmp_path / "odd.feedback.html"

    def written() -> None:
        page.unlink(missing_ok=True)
        result = cli([command[0], str(path), *command[1:], "--feedback"])
        assert result.exit_code == 1 and not isinstance(result.exception, Exception), result.exception  # no crash
        assert "Traceback" not in result.output and f"feedback: {page}" in result.stderr, result.output[-800:]
        assert "ValueError" in page.read_text()

    written()
    mechanism_off(written, lambda m: m.setattr(feedback, "inert_output", feedback_inert_output_unchecked),
                  "the checks of each output's shape")


def feedback_inert_output_unchecked(output: Any) -> Any:
    """inert_output as if every output were well formed."""
    return nbformat.v4.new_output("error", ename=str(output["ename"]), evalue="",
                                  traceback=[str(line) for line in output["traceback"]])


def test_top_level_check_is_the_inline_one(course: Course, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`from grader import check` grades exactly like grader.inline.check: the same report, right or wrong
    (on the same cases: a class's secret pins them for the same code)."""
    monkeypatch.setenv(SECRET_ENV, "one class")
    for source in (course.exercise("exercise2").solution.read_text(),
                   "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\n"):
        top = grader.check("exercise2", source="# Exercise 2\n" + source)
        inline = check("exercise2", source="# Exercise 2\n" + source)
        assert top is not None and inline is not None
        assert top.to_dict() == inline.to_dict()
    assert top.passed is False and inline.gradients[0].diagnosis == "scale"


def test_notebook_course_repo_comes_from_the_checkouts_remote(cli: Cli, tmp_path: Path) -> None:
    """Without --course-repo the set-up cell clones the course checkout's own origin, and says so."""
    course = copy_course(tmp_path / "course")
    subprocess.run(["git", "init", "-q", str(course)], check=True)
    subprocess.run(["git", "-C", str(course), "remote", "add", "origin", "https://example.org/our-course.git"],
                   check=True)
    course_file = course / "course.yaml"
    result = cli(["--course", str(course_file), "notebook", "exercise2", "--out", str(tmp_path / "nb")])
    assert result.exit_code == 0, result.output
    assert "course repository: https://example.org/our-course.git (the git remote 'origin' of" in result.output
    nb = nbformat.read(str(tmp_path / "nb" / "exercise2.ipynb"), as_version=4)
    assert "!git clone -q --depth 1 https://example.org/our-course.git backprop-ninja" in nb.cells[1].source


def test_course_repo_is_asked_for_never_a_placeholder(cli: Cli, tmp_path: Path) -> None:
    """A course with no git remote and no --course-repo: one line asking for the URL, exit 2, nothing
    written (no YOUR-ORG placeholder in a notebook)."""
    course_file = copy_course(tmp_path / "course") / "course.yaml"  # a folder of its own, not a git checkout
    out = tmp_path / "written"
    result = cli(["--course", str(course_file), "notebook", "all", "--out", str(out)])
    assert_setup_error(result, "which git URL should students fetch the course from? Say --course-repo URL")
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize(("order", "verdict"), [((0, 2, 1, 3), "0/1 gradient correct"),
                                                 ((0, 1, 2, 3), "1/1 gradient correct")])
def test_inline_check_grades_the_order_cells_ran(course: Course, tmp_path: Path, order: tuple[int, ...],
                                                 verdict: str) -> None:
    """One notebook, a wrong try above the right cell, run in two orders in a real kernel: check()
    grades what the kernel ran last, as the student saw it, not the document's order."""
    right = course.exercise("exercise2").solution.read_text()
    wrong = "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\n"  # no / n
    setup = 'from grader.inline import check, setup\nsetup("exercise2", globals())'
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in
                                         (setup, "# Exercise 2\n" + wrong, "# Exercise 2\n" + right,
                                          'check("exercise2")')])
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for index in order:
            client.execute_cell(nb.cells[index], index)
    report = "".join(out.get("data", {}).get("text/plain", "") for out in nb.cells[3].outputs)
    assert verdict in report, report


def test_notebook_over_100_mb_is_refused_in_a_line(cli: Cli, tmp_path: Path) -> None:
    """A notebook over 100 MB is refused before it is read (exit 2, one line saying what to do);
    the file here is sparse, so the test writes nothing to disk."""
    big = tmp_path / "huge.ipynb"
    with big.open("wb") as f:
        f.truncate(100 * 2**20 + 1)
    result = cli(["exercise2", str(big)])
    assert assert_setup_error(result) == (
        f"ninja-grade: {big} is 104,857,601 bytes, over the 100 MB a notebook to grade may have: clear its outputs "
        "and save it again")


def test_notebook_with_over_2_mb_of_code_is_refused_in_a_line(cli: Cli, tmp_path: Path,
                                                              mechanism_off: MechanismOff) -> None:
    """A notebook of a few MB whose code cells hold more than a .py may (2 MB), in one cell or spread over
    several, in nbformat 4 or 3: refused before any cell is read or parsed, in one line, exit 2."""
    half = "# " + "x" * (2**20) + "\n"  # a comment: cheap to parse, so the check is seen to be what refuses it
    nb4 = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("dlogits = 1\n" + half),
                                          nbformat.v4.new_markdown_cell(half), nbformat.v4.new_code_cell(half)])
    nb3 = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(cells=[
        nbformat.v3.new_code_cell(input=half * 3)])])
    big4 = write_text(tmp_path / "big4.ipynb", nbformat.writes(nb4))
    big3 = write_text(tmp_path / "big3.ipynb", nbformat.writes(nb3, version=3))

    def refused() -> None:
        assert assert_setup_error(cli(["exercise2", str(big4)])) == (
            f"ninja-grade: {big4} holds 2,097,170 bytes of code; a submission is at most 2,097,152")
        assert_setup_error(cli(["exercise2", str(big3)]), "holds 3,145,737 bytes of code; a submission is at most")

    refused()
    mechanism_off(refused, lambda m: m.setattr(notebooks, "refuse_too_much_code", lambda raw, path: None),
                  "the cap on a notebook's code")


def test_notebook_of_too_many_cells_is_refused_in_a_line(cli: Cli, tmp_path: Path,
                                                         mechanism_off: MechanismOff) -> None:
    """A notebook of 2,001 tiny cells (each would be parsed and sorted into an exercise on its own) is
    refused in one line, exit 2; the lecture's notebooks, of some 20 cells, are graded as ever."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1") for _ in range(2001)])
    path = write_text(tmp_path / "cells.ipynb", nbformat.writes(nb))

    def refused() -> None:
        assert assert_setup_error(cli(["exercise2", str(path)])) == (
            f"ninja-grade: {path} has 2,001 cells; a notebook to grade has at most 2,000")

    refused()
    mechanism_off(refused, lambda m: m.setattr(notebooks, "refuse_too_much_code", lambda raw, path: None),
                  "the cap on a notebook's cells")


def test_script_cut_into_too_many_cells_is_said_in_a_line(cli: Cli, tmp_path: Path,
                                                          mechanism_off: MechanismOff) -> None:
    """A script transcribing the notebook, cut by `# %%` lines into 2,002 cells (within the 2 MB a .py may
    have): said in one line before any cell is parsed, every gradient error, exit 1."""
    script = write_text(tmp_path / "transcript.py", "words = []\n" + "# %%\nx = 1\n" * 2001)

    def said() -> None:
        result = cli(["exercise2", str(script), "--format", "json"])
        assert result.exit_code == 1 and result.stdout.startswith("{"), result.output[-600:]
        assert json.loads(result.stdout)["gradients"][0]["message"] == (
            "the code is cut into 2,002 cells (at `# %%` or `# Exercise N` lines), over the 2,000 a submission may "
            "have")

    said()
    mechanism_off(said, lambda m: m.setattr("grader.intake.extract.MAX_CELLS", 10**6), "the cap on a script's cells")


@pytest.mark.slow
def test_all_given_a_folder_with_one_notebook_grades_it_for_every_exercise(tmp_path: Path) -> None:
    """A student's folder holding a single notebook (any name): `all` grades every exercise from it,
    as it grades the notebook itself."""
    folder = tmp_path / "alice"
    folder.mkdir()
    shutil.copy(NOTEBOOKS / "lecture_mixed.ipynb", folder / "my work.ipynb")
    from_folder = grade_all(folder)
    assert set(from_folder) == set(NOTEBOOK_GRADES["lecture_mixed"])
    for exercise, (score, _) in NOTEBOOK_GRADES["lecture_mixed"].items():  # type: ignore[misc]
        assert from_folder[exercise]["score"] == score, exercise


@pytest.mark.slow
def test_batch_grades_notebook_submissions(cli: Cli, course: Course, tmp_path: Path) -> None:
    """`batch` takes .ipynb submissions (files, or a student's folder with one notebook) and grades
    each to what it deserves."""
    exercise = course.exercise("exercise2")
    subs = tmp_path / "subs"
    (subs / "carol").mkdir(parents=True)
    nbformat.write(build_notebook(course, exercise, exercise.solution), str(subs / "alice.ipynb"))
    nbformat.write(build_notebook(course, exercise), str(subs / "bob.ipynb"))  # the untouched stub
    shutil.copy(NOTEBOOKS / "lecture_mixed.ipynb", subs / "carol" / "whatever.ipynb")  # dlogits [scale]
    out = tmp_path / "out"
    result = cli(["batch", "exercise2", str(subs / "alice.ipynb"), str(subs / "bob.ipynb"),
                  str(subs / "carol"), "--jobs", "2", "--out", str(out)])
    assert result.exit_code == 1, result.output
    reports = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert {s: r["gradients"][0]["status"] for s, r in reports.items()} == \
        {"alice": "approximate", "bob": "missing", "carol": "wrong"}
    assert reports["carol"]["gradients"][0]["diagnosis"] == "scale"


@pytest.mark.slow
def test_one_bad_line_costs_only_its_gradient_and_is_said_once() -> None:
    """An autograd read and a half-written last line, in a student's exercise-1 cell: each is left
    out on its own, its gradient is error naming the cell, line and reason, and the notes list both
    once; the gradients computed from dhpreact are judged given its true value."""
    report = grade_all(NOTEBOOKS / "autograd_read_and_unfinished_line.ipynb")["exercise1"]
    results = {g["name"]: g for g in report["gradients"]}
    assert re.match(r"cell \d+, line \d+: not run: 'grad' is autograd", results["dhpreact"]["message"])
    assert re.match(r"cell \d+, line \d+: syntax error: invalid syntax", results["dC"]["message"])
    assert results["dbngain"]["status"] in ("exact", "approximate")  # computed from the true dhpreact
    (note,) = [n for n in report["notes"] if n.startswith("left out, each on its own")]
    assert "(syntax error: invalid syntax)" in note and "(not run: 'grad' is autograd" in note


@pytest.mark.slow
def test_renamed_batch_is_the_graders_and_data_loading_stays_out() -> None:
    """`Xb, yb = Xtr[ix], ytr[ix]` makes yb the grader's Yb (said once); the student's data loading
    (open, !wget, the dataset) never enters the program, so nothing is refused or left out."""
    report = grade_all(NOTEBOOKS / "renamed_batch_and_own_ix.ipynb")["exercise1"]
    assert "read yb as Yb, the grader's batch, as your batch line says" in report["notes"]
    assert not any("left out" in n or "not run" in n for n in report["notes"]), report["notes"]


def test_cells_are_read_as_ipython_runs_them() -> None:
    """Help lines (`?F.softmax`, `torch.zeros_like?`), magics and shell lines do nothing, and the
    indentation every line shares is removed; line numbers stay as they are."""
    cell = "    ?F.softmax\n    torch.zeros_like??\n    %time x = 1\n    !ls\n    dlogits = 1\n      # deeper\n"
    cleaned = clean_code(cell)
    assert cleaned is not None
    assert cleaned.splitlines() == ["pass", "pass", "pass", "pass", "dlogits = 1", "  # deeper"]


@pytest.mark.slow
def test_cells_run_out_of_order_are_graded_as_they_ran() -> None:
    """A wrong try run after the right cell (the execution counts say so) is what the kernel held:
    graded in that order, and the report says so, naming the cells with their counts."""
    report = grade_all(NOTEBOOKS / "ran_out_of_order.ipynb")["exercise1"]
    (note,) = [n for n in report["notes"] if "ran in another order than they stand" in n]
    assert re.search(r"graded in the order they ran, as your kernel saw them: cell \d+ \[10\], cell \d+ \[11\]", note)


def test_cells_out_of_order_but_not_all_run_are_graded_as_they_stand() -> None:
    """When some exercise cell never ran, the order the kernel saw is not known: document order, and a
    note that says why a gradient may fail only here."""
    cells = [Cell(10, "code", "dlogits = 1", 7), Cell(11, "code", "dlogits = 2", None), Cell(12, "code", "x = 1", 3)]
    order, note = in_the_order_they_ran(cells, 2)
    assert order == cells and note is not None and "not every one was run, so they are graded as they stand" in note
    ran = [Cell(10, "code", "a", 2), Cell(11, "code", "b", 1)]
    assert in_the_order_they_ran(ran, 1)[0] == ran[::-1]
    in_order = [Cell(10, "code", "a", 1), Cell(11, "code", "b", None), Cell(12, "code", "c", 5)]
    assert in_the_order_they_ran(in_order, 1) == (in_order, None)


PNG_IMG = re.compile(r'<img alt="(\w+): the truth, and your value minus it"[^>]*src="data:image/png;base64,([^"]+)"')


@pytest.mark.slow
def test_feedback_pictures_only_for_wrong_gradients(cli: Cli, course: Course, tmp_path: Path) -> None:
    """--feedback embeds one picture (a PNG data URI: no side files) per wrong gradient, and none for a
    notebook whose gradients are all right."""
    wrong, right = tmp_path / "wrong.ipynb", tmp_path / "right.ipynb"
    wrong.write_bytes((NOTEBOOKS / "lecture_mixed.ipynb").read_bytes())
    exercise = course.exercise("exercise1")
    nbformat.write(build_notebook(course, exercise, exercise.solution), str(right))
    for notebook in (wrong, right):
        cli(["exercise1", str(notebook), "--feedback"])
    pictures = PNG_IMG.findall((tmp_path / "wrong.feedback.html").read_text())
    assert sorted(name for name, _ in pictures) == ["dbndiff", "dprobs"]  # the two wrong in lecture_mixed
    assert all(base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n" for _, data in pictures)
    assert PNG_IMG.findall((tmp_path / "right.feedback.html").read_text()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["right.feedback.html", "right.ipynb", "wrong.feedback.html",
                                                         "wrong.ipynb"]


@pytest.mark.slow
def test_inline_check_shows_the_picture_in_jupyter(course: Course, tmp_path: Path) -> None:
    """In a real kernel, check()'s HTML view holds the picture of a wrong gradient, and none when right."""
    setup = 'from grader.inline import check, setup\nsetup("exercise2", globals())'
    for body, expected in (("dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\n", 1),
                           (course.exercise("exercise2").solution.read_text(), 0)):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in
                                             (setup, "# Exercise 2\n" + body, 'check("exercise2")')])
        client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
        shown = "".join(out.get("data", {}).get("text/html", "") for out in nb.cells[2].outputs)
        assert len(PNG_IMG.findall(shown)) == expected, shown[:300]


def test_picture_shows_exactly_the_rows_that_are_wrong(course: Course, dataset: Dataset) -> None:
    """dC with repeated indices overwritten: its picture's difference is non-zero on the rows of C picked
    more than once and zero on every other row, so the picture shows where, not just that."""
    solution = course.exercise("exercise1").solution.read_text()
    loop = "for k in range(Xb.shape[0]):\n    for j in range(Xb.shape[1]):\n        dC[Xb[k, j]] += demb[k, j]"
    assert solution.count(loop) == 1
    dC = next(g for g in grade(course, dataset, "exercise1", solution.replace(loop, "dC[Xb] += demb")).gradients
              if g.name == "dC")
    assert dC.picture is not None and dC.picture.case == "lecture" and dC.picture.shape == (27, 10)
    rows = [dC.picture.difference[r * 10:(r + 1) * 10] for r in range(27)]
    wrong_rows = {r for r, row in enumerate(rows) if max(abs(x) for x in row) > 1e-6}
    lecture = build_case(course.cases[0], setting_of(course.exercise("exercise1"), find_names(
        os.environ.get("NINJA_DATA") or None, allow_download=False)))
    counts = torch.bincount(lecture.tensors["Xb"].flatten(), minlength=27)
    assert wrong_rows == {r for r in range(27) if counts[r] > 1}
    assert len(wrong_rows) < 27


def test_only_the_batch_line_maps_onto_the_graders_batch(course: Course) -> None:
    """`xb, yb = X_train[ix], Y_train[ix]` (any training split's name) maps xb, yb onto Xb, Yb;
    another pair drawn from other tensors (`x, y = X[k], Y[k]`) is the student's own and stays."""
    provided = layout_of(course).provided
    assert renames_from_batch([ast.parse("xb, yb = X_train[ix], Y_train[ix]")], provided) == {"xb": "Xb", "yb": "Yb"}
    assert renames_from_batch([ast.parse("Xb, yb = Xtr[ix], ytr[ix]")], provided) == {"yb": "Yb"}
    assert renames_from_batch([ast.parse("x, y = X[k], Y[k]\nx2, y2 = Xdev[ix], Ydev[ix]")], provided) == {}


def test_sections_follow_the_courses_layout() -> None:
    """Which exercise an unmarked cell belongs to comes from the course: two atom-by-atom exercises, a
    fused one (with its mark) and a training one, none of them the lecture's."""
    layout = Layout(frozenset(), frozenset(), frozenset(), (
        Section(frozenset({"da", "db", "de"}), training=False), Section(frozenset({"dc", "dd"}), training=False),
        Section(frozenset({"da"}), training=False, marks=("a_fast",)),
        Section(frozenset({"dw", "dv"}), training=True)))

    def section(source: str, current: int) -> int:
        return section_of(Cell(1, "code", source), ast.parse(source), current, layout)

    assert section("db = 1\nde = 2", 0) == 1
    assert section("da = 1\ndb = 2", 0) == 0  # da is also the fused exercise's: one atom is not enough
    assert section("dc = 1\ndd = 2", 1) == 2
    assert section("db = 1\ndc = 2", 2) == 2  # one atom of each atom-by-atom exercise: it stays where it is
    assert section("da = x.softmax(1) - y", 2) == 3  # the fused gradient from the forward pass alone
    assert section("da = dc * 2", 2) == 2  # ... but from another gradient it is not the fused exercise's
    assert section("check = a_fast", 2) == 3  # the exercise's mark
    assert section("for i in range(3):\n    dw = 1\n    dv = 2", 3) == 4
