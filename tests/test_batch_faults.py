"""A class's gradebook never records a grade the grader did not really give.

Set-up problems stop the batch before anyone is graded; a grader fault leaves the
submission ungraded (no report, no score) for the next run; a submission whose grading
kills its worker is identified and graded `error`, one whose worker hangs is stopped at a deadline and
left ungraded, and the others are graded normally.
"""

from __future__ import annotations

import ctypes
import faulthandler
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import grader.pipeline
from grader.courseware.data import synthetic_words
from tests.conftest import ROOT, Cli, MechanismOff, needs_fork
from tests.helpers import assert_setup_error, read_gradebook

pytestmark = needs_fork

SOLUTION = (ROOT / "solutions" / "exercise2.py").read_text()


def class_of(tmp_path: Path, *students: str) -> list[str]:
    """One correct exercise-2 submission per student, as files named for them."""
    folder = tmp_path / "subs"
    folder.mkdir()
    for student in students:
        (folder / f"{student}.py").write_text(SOLUTION)
    return [str(folder / f"{student}.py") for student in students]


def misbehave_on(monkeypatch: pytest.MonkeyPatch, student: str, action: Callable[[], Any]) -> None:
    """Make the grader itself fail on one student's submission. Workers are forked from this
    process, so they inherit the patch; the student's own code is correct."""
    real = grader.pipeline.grade_program

    def patched(*args: Any, **kwargs: Any) -> Any:
        if f"{student}.py" in kwargs["submission_label"]:
            action()
        return real(*args, **kwargs)

    monkeypatch.setattr(grader.pipeline, "grade_program", patched)


def test_batch_bad_data_is_a_setup_error_before_anyone_is_graded(cli: Cli, tmp_path: Path) -> None:
    """A typo in --data: one line, exit 2, no report, no gradebook, no OUT."""
    subs = class_of(tmp_path, "alice", "bob")
    out = tmp_path / "out"
    result = cli(["batch", "exercise2", *subs, "--jobs", "2", "--out", str(out),
                  "--data", str(tmp_path / "nonexistent" / "names.txt")])
    assert assert_setup_error(result) == f"ninja-grade: no names.txt at {tmp_path}/nonexistent/names.txt"
    assert not out.exists()


def test_batch_unwritable_out_is_a_setup_error(cli: Cli, tmp_path: Path) -> None:
    """An --out that cannot be a folder (under a file) is refused before anyone is graded."""
    subs = class_of(tmp_path, "alice")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = cli(["batch", "exercise2", *subs, "--out", str(blocker / "out")])
    assert_setup_error(result, "cannot write the reports to")
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow
def test_batch_gradebook_goes_where_asked(cli: Cli, tmp_path: Path) -> None:
    """--gradebook writes the CSV there, the class page beside it (and neither in OUT): a row per student,
    with the score and each gradient's status; the batch says where it is."""
    subs = class_of(tmp_path, "alice", "bob")
    (tmp_path / "subs" / "bob.py").write_text("dlogits = F.softmax(logits, 1)\n")
    out, book = tmp_path / "out", tmp_path / "grades" / "exercise2.csv"
    book.parent.mkdir()
    result = cli(["batch", "exercise2", *subs, "--jobs", "1", "--out", str(out), "--gradebook", str(book)])
    assert result.exit_code == 1, result.output
    assert f"reports in {out}/, gradebook {book}" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["alice.json", "bob.json", "ninja-batch.manifest"]
    rows = read_gradebook(book)
    assert {s: (r["score"], r["max_score"], r["passed"], r["dlogits"]) for s, r in rows.items()} == {
        "alice": ("1", "1", "True", rows["alice"]["dlogits"]), "bob": ("0", "1", "False", "wrong")}
    assert rows["alice"]["dlogits"] in ("exact", "approximate")
    assert sorted(p.name for p in book.parent.iterdir()) == ["class.html", "exercise2.csv"]  # the page beside it


def test_batch_gradebook_in_a_missing_folder_is_a_setup_error(cli: Cli, tmp_path: Path) -> None:
    """A --gradebook whose folder does not exist is said in one line before anyone is graded: no OUT."""
    subs = class_of(tmp_path, "alice")
    out, book = tmp_path / "out", tmp_path / "nowhere" / "grades.csv"
    result = cli(["batch", "exercise2", *subs, "--out", str(out), "--gradebook", str(book)])
    assert_setup_error(result, f"cannot write the gradebook to {book}: {book.parent} is not a folder")
    assert not out.exists() and not book.parent.exists()


def test_batch_out_that_is_a_file_is_a_setup_error(cli: Cli, tmp_path: Path) -> None:
    """An --out that is a file is said in one line, and the file is left as it was."""
    subs = class_of(tmp_path, "alice")
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    result = cli(["batch", "exercise2", *subs, "--out", str(blocker)])
    assert_setup_error(result, "--out", str(blocker), "is a file")
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow
def test_batch_settings_reach_every_worker_and_each_submission_is_recorded_once(cli: Cli, tmp_path: Path) -> None:
    """--data and --time-limit are what each worker grades with; an OUT that does not exist yet is made,
    folders and all; a file that is not a submission gets its report with the reason; a rerun grades
    none of them again."""
    subs = class_of(tmp_path, "alice")
    (tmp_path / "subs" / "loop.py").write_text("while True:\n    pass\n")
    (tmp_path / "subs" / "notes.txt").write_text("not a submission")
    subs += [str(tmp_path / "subs" / "loop.py"), str(tmp_path / "subs" / "notes.txt")]
    names = tmp_path / "other-names.txt"
    names.write_text("\n".join(synthetic_words()) + "\n")
    out = tmp_path / "deep" / "er" / "out"
    args = ["batch", "exercise2", *subs, "--jobs", "2", "--out", str(out), "--data", str(names), "--time-limit", "1"]
    result = cli(args)
    assert result.exit_code == 1, result.output
    reports = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    assert set(reports) == {"alice", "loop", "notes"}
    assert reports["alice"]["passed"] and f"{names} is not the lecture's names.txt" in reports["alice"]["notes"][0]
    assert reports["loop"]["gradients"][0]["message"].startswith("time limit of 1 s reached")
    assert reports["notes"]["error"] == "notes.txt is not a .py or .ipynb file" and reports["notes"]["score"] == 0
    assert {r["exercise"] for r in reports.values()} == {"exercise2"}
    assert set(read_gradebook(out / "gradebook.csv")) == {"alice", "loop", "notes"}
    before = {p.name: p.read_bytes() for p in out.glob("*.json")}
    again = cli(args)
    assert "(3 graded before)" in again.stdout
    assert {p.name: p.read_bytes() for p in out.glob("*.json")} == before


@pytest.mark.slow
def test_batch_workers_grade_the_course_asked_for(cli: Cli, tmp_path: Path) -> None:
    """`--course` reaches the workers: the LayerNorm example's solution, batch-graded as that course's
    exercise, passes (graded against the lecture's course, it could not)."""
    student = tmp_path / "alice.py"
    student.write_text((ROOT / "examples" / "layernorm" / "solutions" / "exercise2.py").read_text())
    out = tmp_path / "out"
    result = cli(["--course", str(ROOT / "examples" / "layernorm" / "course.yaml"), "batch",
                  "exercise2", str(student), "--jobs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "alice.json").read_text())
    assert report["passed"] and [g["name"] for g in report["gradients"]] == ["dhpreln"]


@pytest.mark.slow
def test_batch_grader_fault_records_nothing_and_a_rerun_finishes(cli: Cli, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug of the grader's on one submission: no report or score for it, the batch names it and
    the command to retry, exits 3; the rerun (bug gone) grades only it, and the class is complete."""
    subs = class_of(tmp_path, "alice", "bob", "carol")
    out = tmp_path / "out"
    args = ["batch", "exercise2", *subs, "--jobs", "2", "--out", str(out)]

    def bug() -> None:
        raise RuntimeError("injected grader bug")

    misbehave_on(monkeypatch, "bob", bug)
    first = cli(args)
    assert first.exit_code == 3, first.output
    assert "1 submission was not graded: the grader failed on them, not the students" in first.output
    assert "bob" in first.output and "RuntimeError: injected grader bug" in first.output
    assert "again to grade just these" in first.output
    assert sorted(p.name for p in out.glob("*.json")) == ["alice.json", "carol.json"]
    rows = read_gradebook(out / "gradebook.csv")
    assert rows["bob"]["score"] == "" and rows["bob"]["passed"] == "" and "not graded" in rows["bob"]["error"]
    assert rows["alice"]["score"] == "1"

    monkeypatch.undo()
    second = cli(args)
    assert second.exit_code == 0, second.output
    assert "(2 graded before)" in second.output
    assert {student: row["score"] for student, row in read_gradebook(out / "gradebook.csv").items()} == \
        {"alice": "1", "bob": "1", "carol": "1"}


@pytest.mark.slow
def test_batch_submission_that_kills_its_worker_is_identified(cli: Cli, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash in native code (a real SIGSEGV) while grading one submission kills its worker; that
    submission is tried once more in a fresh worker, graded `error` with how the worker died, and the
    others pass."""
    subs = class_of(tmp_path, "alice", "bob", "carol", "dave")
    out = tmp_path / "out"

    def crash() -> None:
        faulthandler.disable()  # pytest's handler would print the crashed worker's stack
        ctypes.string_at(0)

    misbehave_on(monkeypatch, "carol", crash)
    result = cli(["batch", "exercise2", *subs, "--jobs", "2", "--out", str(out)])
    assert result.exit_code == 1, result.output
    carol = json.loads((out / "carol.json").read_text())
    assert carol["score"] == 0 and carol["passed"] is False
    assert "killed the grader's worker 2 times (killed by SIGSEGV)" in carol["error"]
    for student in ("alice", "bob", "dave"):
        report = json.loads((out / f"{student}.json").read_text())
        assert report["passed"] is True and report["score"] == 1 and "error" not in report
    assert "3 passed · 0 failed · 1 errored" in result.output


# The batch, run as its own process, with the grader made to hang on one student's submission (the
# worker sleeps for an hour: the student's code is correct and never runs that long) and the deadline
# for a worker's answer cut from minutes to ANSWER_WITHIN seconds.
HANGS_ON_ERIN = """
import os, sys, time
import grader.ci.batch, grader.pipeline
real = grader.pipeline.grade_program
def hanging(*args, **kwargs):
    if "erin.py" in kwargs["submission_label"]:
        time.sleep(3600)
    return real(*args, **kwargs)
grader.pipeline.grade_program = hanging
grader.ci.batch.answer_within = lambda limits: float(os.environ["ANSWER_WITHIN"])
from grader.cli import run
run()
"""


@pytest.mark.slow
def test_batch_worker_that_hangs_in_the_pool_is_killed_and_named(tmp_path: Path,
                                                                 mechanism_off: MechanismOff) -> None:
    """A worker of the pool that never answers (the grader's own code hanging on erin's, the third of four,
    so never a worker's first) is killed at the deadline: the batch ends, names erin as not graded (no
    report, exit 3), and the other worker grades the rest."""
    subs = class_of(tmp_path, "alice", "bob", "erin", "frank")
    out = tmp_path / "out"

    def hangs_and_ends() -> None:
        shutil.rmtree(out, ignore_errors=True)
        try:
            done = subprocess.run([sys.executable, "-c", HANGS_ON_ERIN, "batch", "exercise2", *subs, "--jobs", "2",
                                   "--out", str(out)], env={**os.environ, "ANSWER_WITHIN": os.environ.get(
                                       "TEST_ANSWER_WITHIN", "15")}, capture_output=True, text=True, timeout=45,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise AssertionError("the batch did not end: a hung worker held it") from None
        assert done.returncode == 3, done.stderr
        assert "  erin (" in done.stderr and "the grader's worker gave no answer in 15 s" in done.stderr
        assert sorted(p.name for p in out.glob("*.json")) == ["alice.json", "bob.json", "frank.json"]
        assert all(json.loads((out / f"{s}.json").read_text())["passed"] for s in ("alice", "bob", "frank"))

    hangs_and_ends()
    mechanism_off(hangs_and_ends, lambda m: m.setenv("TEST_ANSWER_WITHIN", "100000"),
                  "the deadline of a worker's answer")
