"""Shared fixtures: the course, the data set, and a way to grade a file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from grader.course import Course, load_course
from grader.data import Dataset, find_names
from grader.grade import grade_program
from grader.results import Report
from grader.submission import compile_program

ROOT = Path(__file__).resolve().parent.parent
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
