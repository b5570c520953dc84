"""Shared fixtures: the course, the data set, and a way to grade a file."""

from __future__ import annotations

import functools
import os
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from grader.confined.sandbox import unix_sandbox_available
from grader.courseware.course import Course, load_course
from grader.courseware.data import Dataset, find_names
from grader.intake.submission import compile_program
from grader.judging.grade import grade_program
from grader.judging.results import Report
from tests.helpers import Check, SwitchOff, check_fails_without

ROOT = Path(__file__).resolve().parent.parent

# What some tests need of the system; elsewhere (macOS, Windows: the CI matrix) they are skipped, saying why.
unix_only = pytest.mark.skipif(not (sys.platform.startswith("linux") and unix_sandbox_available()),
                               reason="tests the unix sandbox, which grades on Linux only")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="batch workers are forked: no os.fork here")
needs_sigint = pytest.mark.skipif(os.name == "nt", reason="Ctrl-C cannot be sent to a process as a signal here")
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"


@pytest.fixture(scope="session")
def course() -> Course:
    return load_course(ROOT / "course.yaml")


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """$NINJA_DATA when set (CI), else the synthetic stand-in; never a download."""
    return find_names(os.environ.get("NINJA_DATA") or None, allow_download=False)


GradeSource = Callable[[str, str], Report]


@pytest.fixture(scope="session")
def grade_source(course: Course, dataset: Dataset) -> GradeSource:
    """Grade source text as a submission of an exercise, in this process."""

    def _grade(exercise_id: str, source: str) -> Report:
        program = compile_program(source, "<submission>")
        return grade_program(course, course.exercise(exercise_id), program, dataset, submission_label="<submission>")

    return _grade


def statuses(report: Report) -> dict[str, str]:
    return {g.name: g.status.value for g in report.gradients}


def failing(report: Report) -> set[str]:
    return {g.name for g in report.gradients if not g.passed}


_PENDING: dict[int, str] = {}  # per pipe: what was read past the last line returned


def wait_for_line(stream: IO[str], prefix: str, *, timeout: float) -> str:
    """The first line of `stream` (a child's pipe) that starts with `prefix`, read as it comes; fails
    after `timeout`. Reads the descriptor itself: a text wrapper's buffer would hide lines from select."""
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    while True:
        pending = _PENDING.get(fd, "")
        while "\n" in pending:
            line, pending = pending.split("\n", 1)
            _PENDING[fd] = pending
            if line.startswith(prefix):
                return line.strip()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break  # the process ended without it
        _PENDING[fd] = pending + chunk.decode(errors="replace")
    pytest.fail(f"no line starting {prefix!r} within {timeout} s")


MechanismOff = Callable[[Check, SwitchOff, str], None]


@pytest.fixture
def mechanism_off(monkeypatch: pytest.MonkeyPatch) -> MechanismOff:
    """`mechanism_off(check, switch_off, "what")`: `check` fails once `switch_off` has monkeypatched the
    mechanism away (tests/helpers.py); every test of a protection ends with it."""
    return functools.partial(check_fails_without, monkeypatch)
