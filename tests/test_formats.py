"""Reports for CI and Gradescope: JUnit XML, results.json, Markdown, annotations, --output."""

from __future__ import annotations

import json
import os
import platform
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from grader.judging.results import GradientResult, Report, Status
from grader.reporting.formats import render_annotations, render_markdown
from tests.conftest import ROOT, Cli, run_cli
from tests.helpers import assert_setup_error

SOLUTION1 = ROOT / "solutions" / "exercise1.py"
# A submission with a right gradient, a wrong one, a missing one and one that raises, with
# hostile text in its exception message.
HOSTILE_TEXT = "::set-output name=score::100 %0A::error::pwned | <img src=x> & `code`\x07"
MIXED = SOLUTION1.read_text().replace(
    "dprobs = (1.0 / probs) * dlogprobs", "dprobs = -(1.0 / probs) * dlogprobs").replace(
    "dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv", "dcounts_sum = boom()").replace(
    "demb = dembcat.view(emb.shape)  # (32, 3, 10)", "demb = None") + (
    f"\n\ndef boom():\n    raise ValueError({HOSTILE_TEXT!r})\n")
GRADESCOPE_TOP = {"score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
                  "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
GRADESCOPE_TEST = {"score", "max_score", "status", "name", "name_format", "number", "output", "output_format", "tags",
                   "visibility", "extra_data"}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mixed") / "mixed.py"
    # boom() must exist before it is called: define it first.
    source = MIXED.split("\n\ndef boom")[0]
    path.write_text(f"def boom():\n    raise ValueError({HOSTILE_TEXT!r})\n\n\n" + source)
    return path


def run(args: list[str]) -> tuple[int, str]:
    result = run_cli(args)
    return result.exit_code, result.stdout


def test_junit_matches_the_structure_ci_systems_read(mixed: Path) -> None:
    """<testsuites>/<testsuite>/<testcase> with consistent counts; failures and errors typed."""
    code, out = run(["exercise1", str(mixed), "--format", "junit"])
    assert code == 1
    root = ET.fromstring(out.split("\n", 1)[1])
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert suite.get("name") == "exercise1" and int(suite.get("tests", "-1")) == len(cases) == 26
    failures = [c for c in cases if c.find("failure") is not None]
    errors = [c for c in cases if c.find("error") is not None]
    assert int(suite.get("failures", "-1")) == len(failures) and int(suite.get("errors", "-1")) == len(errors)
    assert int(root.get("tests", "-1")) == 26 and int(root.get("failures", "-1")) == len(failures)
    assert {c.get("name") for c in failures} == {"dprobs", "demb"}
    assert {c.get("name") for c in errors} == {"dcounts_sum"}
    for case in cases:
        assert case.get("classname") == "exercise1" and float(case.get("time", "x")) >= 0
        for child in case:
            assert child.tag in ("failure", "error") and child.get("message") and child.get("type")
    sign = next(c for c in failures if c.get("name") == "dprobs").find("failure")
    assert sign is not None and sign.get("type") == "sign" and "opposite sign" in (sign.text or "")
    error = errors[0].find("error")
    assert error is not None and "::set-output" in (error.get("message") or "")  # kept, as plain text
    assert float(suite.get("time", "x")) >= 0


def test_gradescope_results_field_by_field(mixed: Path) -> None:
    """results.json: known fields only, one test per gradient worth its points, score = sum."""
    code, out = run(["exercise1", str(mixed), "--format", "gradescope"])
    assert code == 1
    results = json.loads(out)
    assert set(results) <= GRADESCOPE_TOP
    assert isinstance(results["score"], (int, float)) and results["visibility"] in VISIBILITY
    tests = results["tests"]
    assert len(tests) == 26
    for t in tests:
        assert set(t) <= GRADESCOPE_TEST
        assert isinstance(t["name"], str) and t["name"].startswith("exercise1: d")
        assert t["status"] in ("passed", "failed") and t["visibility"] in VISIBILITY
        assert 0 <= t["score"] <= t["max_score"] == 1
        assert isinstance(t["output"], str) and isinstance(t["number"], str)
        assert (t["score"] == t["max_score"]) == (t["status"] == "passed")
    assert results["score"] == sum(t["score"] for t in tests) == 23
    dprobs = next(t for t in tests if t["name"] == "exercise1: dprobs")
    assert dprobs["tags"] == ["sign"] and "opposite sign" in dprobs["output"]


def test_markdown_and_annotations_keep_student_text_inert(mixed: Path) -> None:
    """Hostile text in messages can start no workflow command and injects no markup."""
    code, out = run(["exercise1", str(mixed), "--format", "markdown", "--github"])
    assert code == 1
    lines = out.splitlines()
    annotations = [x for x in lines if x.startswith("::")]
    assert len(annotations) == 3  # dprobs, dcounts_sum, demb: nothing else starts a command
    assert all(x.startswith(f"::error file={mixed},") for x in annotations)
    boom = next(x for x in annotations if "dcounts_sum" in x)
    assert "%250A" in boom and "\x07" not in out  # %0A stays text; control characters are dropped
    table = "\n".join(x for x in lines if x.startswith("|"))
    assert "&lt;img src=x&gt;" in table and "<img" not in table and "&#124;" in table
    assert ":&#58;set-output" in table


def test_annotation_escaping_of_newlines_and_properties() -> None:
    """Newlines and % in messages, and : , in file names, are percent-encoded."""
    g = GradientResult("dC", "C", Status.WRONG, Status.WRONG, False, False, 1.0, "a\nb%0Ac\r::error::x", 1.0, line=3)
    report = Report("exercise1", "t", "s", (g,))
    (line,) = render_annotations([report], "weird:name,1.py").splitlines()
    assert line == ("::error file=weird%3Aname%2C1.py,line=3,title=exercise1 dC%3A wrong::"
                    "a%0Ab%250Ac%0D::error::x")
    rows = [x for x in render_markdown([report]).splitlines() if x.startswith("|") and "dC" in x]
    assert rows == ["| `dC` | wrong | wrong | 1.0e+00 | a b&#37;0Ac :&#58;error:&#58;x |"]  # one row, one line


def test_json_carries_the_environment() -> None:
    """JSON reports say which torch, Python and platform made the verdicts, and the cases."""
    code, out = run(["exercise2", str(ROOT / "solutions" / "exercise2.py"), "--format", "json"])
    report = json.loads(out)
    assert code == 0
    environment = report["environment"]
    assert environment["torch"] == torch.__version__
    assert environment["python"] == platform.python_version()
    assert environment["platform"] == platform.platform()
    assert isinstance(environment["threads"], int) and environment["threads"] >= 1
    sizes = [c["batch_size"] for c in report["cases"]]
    assert sizes[0] == 32 and len(sizes) == 3 and all(20 <= n <= 64 and n != 32 for n in sizes[1:])
    assert [c["fresh"] for c in report["cases"]] == [False, True, True] and report["draw"]["drawn"] == "fresh"


def test_output_file_is_written_atomically(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails at the last moment (the rename) leaves the old report whole and no
    temporary file behind: a plain open-and-write would already have truncated it."""
    target = tmp_path / "results.json"
    target.write_text('{"old": "report"}')

    def crash(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("grader.files.os.replace", crash)
    result = cli(["exercise2", str(ROOT / "solutions" / "exercise2.py"), "--format", "json", "--output", str(target)])
    assert_setup_error(result, f"cannot write {target}: No space left on device")
    assert target.read_text() == '{"old": "report"}'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    monkeypatch.undo()
    result = cli(["exercise2", str(ROOT / "solutions" / "exercise2.py"), "--format", "json", "--output", str(target)])
    assert result.exit_code == 0 and json.loads(target.read_text())["score"] == 1


def test_output_file_goes_where_asked(cli: Cli, tmp_path: Path) -> None:
    """--output writes the format to a file (creating folders), the text report to stdout."""
    target = tmp_path / "deep" / "junit.xml"
    result = cli(["exercise2", str(ROOT / "solutions" / "exercise2.py"), "--format", "junit", "--output", str(target)])
    assert result.exit_code == 0
    assert ET.fromstring(target.read_text().split("\n", 1)[1]).tag == "testsuites"
    assert "1/1 gradient correct" in result.stdout
    assert [p.name for p in target.parent.iterdir()] == ["junit.xml"]


def test_output_to_unwritable_place_is_exit_2(cli: Cli, tmp_path: Path) -> None:
    """An --output that cannot be written is a set-up error in one line."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = cli(["exercise2", str(ROOT / "solutions" / "exercise2.py"), "--output", str(blocker / "x.json")])
    assert_setup_error(result, f"cannot write {blocker / 'x.json'}")


def test_all_with_a_folder_finds_each_exercise(cli: Cli, tmp_path: Path) -> None:
    """`ninja-grade all FOLDER` grades exerciseN.py files and says which are missing."""
    (tmp_path / "exercise2.py").write_text((ROOT / "solutions" / "exercise2.py").read_text())
    (tmp_path / "exercise3.py").write_text((ROOT / "solutions" / "exercise3.py").read_text())
    result = cli(["all", str(tmp_path), "--exercise", "exercise1", "--exercise", "exercise2",
                  "--exercise", "exercise3", "--format", "json"])
    assert result.exit_code == 1
    reports = {r["exercise"]: r for r in json.loads(result.stdout)["exercises"]}
    assert reports["exercise2"]["passed"] and reports["exercise3"]["passed"]
    assert not reports["exercise1"]["passed"]
    assert any("no submission for exercise1" in n for n in reports["exercise1"]["notes"])


def test_all_with_one_exercise_file_grades_only_that_exercise(cli: Cli) -> None:
    """A single exercise file given to `all` is read by sections: the other exercises have no code."""
    result = cli(["all", str(SOLUTION1), "--exercise", "exercise1", "--exercise", "exercise2", "--format", "json"])
    reports = {r["exercise"]: r for r in json.loads(result.stdout)["exercises"]}
    assert reports["exercise1"]["passed"] is True
    assert reports["exercise2"]["passed"] is False
    assert any("no code for exercise2" in n for n in reports["exercise2"]["notes"])


@pytest.mark.slow
def test_files_written_for_others_get_the_umask_mode(cli: Cli, tmp_path: Path) -> None:
    """Reports, results.json and gradebooks come out readable by others (644 under umask 022), not
    the 600 a temporary file is made with, and still whole (written atomically)."""
    old = os.umask(0o022)
    try:
        report = tmp_path / "results.json"
        cli(["exercise2", str(ROOT / "solutions" / "exercise2.py"), "--format", "gradescope", "--output", str(report)])
        out = tmp_path / "batch"
        cli(["batch", "exercise2", str(ROOT / "solutions" / "exercise2.py"), "--out", str(out), "--jobs", "1"])
    finally:
        os.umask(old)
    for path in (report, out / "exercise2.json", out / "gradebook.csv"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


@pytest.mark.slow
def test_feedback_without_ipython_prints_no_lexer_warning(tmp_path: Path) -> None:
    """On a machine without IPython, --feedback writes the page and prints no nbconvert warning."""
    notebook = tmp_path / "mine.ipynb"
    notebook.write_bytes((ROOT / "tests" / "notebooks" / "lecture_mixed.ipynb").read_bytes())
    code = ("import sys; sys.modules['IPython'] = None\n"
            "from grader.cli import run\n"
            f"sys.argv = ['ninja-grade', 'exercise2', {str(notebook)!r}, '--feedback']\nrun()\n")
    result = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 1, result.stderr
    assert "lexer unavailable" not in result.stderr and "Warning" not in result.stderr, result.stderr
    assert (tmp_path / "mine.feedback.html").read_text().count("exercise2: Cross-entropy backward in one go") == 1
