"""What a class's files are called, and what they are, never costs the rest of the class its grades.

A file name too long to be a report's, a pipe or a device handed in as a submission, the batch's own
folder among the paths given, and a name holding a newline and a GitHub Actions command: each is
one student's row (or none), said safely, and every other student is graded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import grader.pipeline
from grader.ci import batch
from grader.cli import class_report as class_report_cli
from grader.cli import merge as merge_cli
from grader.cli import tools as tools_cli
from tests.conftest import ROOT, Cli, MechanismOff, needs_fork
from tests.helpers import read_gradebook

pytestmark = needs_fork

SOLUTION = (ROOT / "solutions" / "exercise2.py").read_text()
FORGED = "x\n::error title=forged::all grades are fine"  # a legal file name: a newline, then a workflow command


def raw(text: str) -> str:
    """A name printed as it is: one_line switched off."""
    return text


def commands_in(log: str) -> list[str]:
    """The lines of a log that GitHub Actions would run as workflow commands (leading spaces are trimmed)."""
    return [line for line in log.splitlines() if line.lstrip().startswith("::")]


def test_batch_long_file_name_gets_a_report_and_the_class_is_graded(cli: Cli, tmp_path: Path,
                                                                    mechanism_off: MechanismOff) -> None:
    """A student file named with 250 letters (legal, but too long for a report's temporary file): it and
    its classmate are graded, its report is under a shortened name with a hash of its id, and a rerun
    finds both reports and grades no one again."""
    subs = tmp_path / "subs"
    subs.mkdir()
    long_id = "a" * 250
    for student in ("alice", long_id):
        (subs / f"{student}.py").write_text(SOLUTION)
    out = tmp_path / "out"
    args = ["batch", "exercise2", str(subs / "alice.py"), str(subs / f"{long_id}.py"), "--jobs", "1", "--out", str(out)]

    def check() -> None:
        for path in out.glob("*"):
            path.unlink()
        result = cli(args)
        assert result.exit_code == 0, result.output
        rows = read_gradebook(out / "gradebook.csv")
        assert rows[long_id]["score"] == "1" and rows["alice"]["score"] == "1"
        name = batch.report_name(long_id)
        assert len(name.encode()) <= batch.REPORT_NAME_BYTES and name.startswith("a" * 100)
        assert json.loads((out / name).read_text())["student"] == long_id
        again = cli(args)
        assert again.exit_code == 0, again.output
        assert "grading 0 of 2: all graded before and unchanged" in again.stdout

    check()
    mechanism_off(check, lambda m: m.setattr(batch, "report_name", lambda student: f"{student}.json"),
                  "report_name's shortened report file names")


def test_report_name_is_stable_and_unique_for_long_ids() -> None:
    """Two long ids that share their first 300 characters get two report names, each the same every time;
    a name not valid UTF-8 is cut at a whole character."""
    first, second = "é" * 300 + "1", "é" * 300 + "2"
    assert batch.report_name(first) == batch.report_name(first) != batch.report_name(second)
    odd = "\udcff" * 300
    assert len(os.fsencode(batch.report_name(odd))) <= batch.REPORT_NAME_BYTES
    assert batch.report_name("alice") == "alice.json"


def test_batch_skips_its_own_out_folder_on_a_rerun(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   mechanism_off: MechanismOff) -> None:
    """`cd subs; ninja-grade batch EX *` twice: the rerun is given ninja-batch/ among the students, and
    skips it (said on stderr), so the gradebook holds the students alone and nothing is graded again."""
    subs = tmp_path / "subs"
    subs.mkdir()
    for student in ("alice", "bob"):
        (subs / f"{student}.py").write_text(SOLUTION)
    monkeypatch.chdir(subs)
    first = cli(["batch", "exercise2", "alice.py", "bob.py", "--jobs", "1"])
    assert first.exit_code == 0, first.output

    def check() -> None:
        everything = sorted(p.name for p in subs.iterdir())  # what the shell's * gives
        assert everything == ["alice.py", "bob.py", "ninja-batch"]
        result = cli(["batch", "exercise2", *everything, "--jobs", "1"])
        assert result.exit_code == 0, result.output
        assert sorted(read_gradebook(subs / "ninja-batch" / "gradebook.csv")) == ["alice", "bob"]
        assert "skipped ninja-batch/: it holds a batch's reports, not a student's submission" in result.stderr
        assert not (subs / "ninja-batch" / "ninja-batch.json").exists()

    check()
    mechanism_off(check, lambda m: m.setattr(batch, "holds_batch_output", lambda path, out: False),
                  "holds_batch_output")


def test_a_folder_with_a_shards_manifest_is_a_batchs_output(tmp_path: Path) -> None:
    """A folder another batch or shard wrote its manifest in is no student's, whatever --out is now;
    a student's folder is, even with a manifest put in it."""
    shard = tmp_path / "shard-0"
    shard.mkdir()
    (shard / "ninja-shard-0-of-2.manifest").write_text("{}")
    student = tmp_path / "carol"
    student.mkdir()
    (student / "exercise2.py").write_text(SOLUTION)
    assert batch.holds_batch_output(shard, tmp_path / "ninja-batch")
    assert not batch.holds_batch_output(student, tmp_path / "ninja-batch")
    (student / "ninja-batch.manifest").write_text("")  # a student cannot hide their folder behind one
    assert not batch.holds_batch_output(student, tmp_path / "ninja-batch")


def test_batch_pipe_and_device_are_not_regular_files_and_match_the_roster(cli: Cli, tmp_path: Path,
                                                                          mechanism_off: MechanismOff) -> None:
    """carol.py a FIFO and erin.py a link to /dev/zero: each is an error row saying what it is, under the
    id its name gives (carol, erin), which the roster's carol and erin match; no pipe is opened (the
    batch would wait for a writer forever)."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "alice.py").write_text(SOLUTION)
    os.mkfifo(subs / "carol.py")
    (subs / "erin.py").symlink_to("/dev/zero")
    roster = tmp_path / "roster.csv"
    roster.write_text("name,student_id\nAlice,alice\nCarol,carol\nErin,erin\n")
    out = tmp_path / "out"

    def check() -> None:
        result = cli(["batch", "exercise2", *(str(subs / n) for n in ("alice.py", "carol.py", "erin.py")),
                      "--jobs", "1", "--out", str(out), "--roster", str(roster), "--force"])
        assert result.exit_code == 1, result.output
        rows = read_gradebook(out / "gradebook.csv")
        assert sorted(rows) == ["alice", "carol", "erin"]
        assert rows["carol"]["error"] == f"{subs}/carol.py is not a regular file: it is a pipe (FIFO); hand in " \
                                         "a .py or .ipynb file"
        assert rows["erin"]["error"] == f"{subs}/erin.py is not a regular file: it is a symbolic link to a device; " \
                                        "hand in a .py or .ipynb file"
        assert "no submission" not in result.stderr and "disagree" not in result.stderr

    check()
    mechanism_off(check, lambda m: m.setattr(batch, "_name", lambda p: p.stem if p.is_file() else p.name),
                  "the id of a pipe or a device without its suffix")
    mechanism_off(check, lambda m: m.setattr(batch, "_not_a_file", lambda p: f"{p} does not exist"),
                  "saying what a path that is not a regular file is")


def test_batch_odd_file_names_reach_stderr_quoted(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  mechanism_off: MechanismOff) -> None:
    """A file named with a newline and `::error ...`: the roster's mismatches and the grader's faults name
    it quoted, on one line, so no line of the batch's stderr is a GitHub Actions command."""
    subs = tmp_path / "subs"
    subs.mkdir()
    for student in ("alice", FORGED):
        (subs / f"{student}.py").write_text(SOLUTION)
    roster = tmp_path / "roster.csv"
    roster.write_text("name,student_id\nAlice,alice\n")
    real = grader.pipeline.grade_program

    def failing_on_forged(*args: Any, **kwargs: Any) -> Any:  # the grader's own fault on that one file
        if FORGED in kwargs["submission_label"]:
            raise ZeroDivisionError("the grader's bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(grader.pipeline, "grade_program", failing_on_forged)

    def check() -> None:
        result = cli(["batch", "exercise2", str(subs / "alice.py"), str(subs / f"{FORGED}.py"), "--jobs", "1",
                      "--out", str(tmp_path / "out"), "--roster", str(roster), "--force"])
        assert result.exit_code == 3, result.output
        assert commands_in(result.stderr) == [], result.stderr
        assert f"  {FORGED!r} (" in result.stderr  # the fault
        assert '  "x\\n::error title=forged::all grades are fine: not in the roster' in result.stderr  # the roster's

    check()
    mechanism_off(check, lambda m: m.setattr(tools_cli, "one_line", raw), "one_line in the list of faults")
    mechanism_off(check, lambda m: m.setattr(class_report_cli, "one_line", raw), "one_line in roster mismatches")


def test_merge_odd_file_names_reach_stderr_quoted(cli: Cli, tmp_path: Path, mechanism_off: MechanismOff) -> None:
    """merge's list of students with no report names a file called with a newline and `::error ...`
    quoted, so no line of its stderr is a GitHub Actions command."""
    subs = tmp_path / "subs"
    subs.mkdir()
    for student in ("alice", FORGED):  # both in shard 1 of 2: shard 0 grades no one
        (subs / f"{student}.py").write_text(SOLUTION)
    out = tmp_path / "shard-0"
    shard = cli(["batch", "exercise2", str(subs / "alice.py"), str(subs / f"{FORGED}.py"), "--shard", "0/2",
                 "--out", str(out)])
    assert "grading 0: none of the submissions is this shard's" in shard.stdout, shard.output

    def check() -> None:
        result = cli(["merge", str(out), "--out", str(tmp_path / "merged")])
        assert result.exit_code == 3, result.output
        assert commands_in(result.stderr) == [], result.stderr
        assert f"  {FORGED!r}: shard 1/2 not among the folders given" in result.stderr.splitlines()

    check()
    mechanism_off(check, lambda m: m.setattr(merge_cli, "one_line", raw), "one_line in merge's lists")
