"""The course's own files: solutions pass, stubs are untouched, all three agree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from grader.courseware.cases import build_case, setting_of
from grader.courseware.course import Course
from grader.courseware.data import Dataset
from grader.judging.diagnose import fmt_shape
from tests.conftest import SUBMISSIONS, failing, grade, statuses

BLANK = re.compile(r"^(?P<name>d\w+) = None  # (?P<shape>\([\d, ]+\))$")  # `dW1 = None  # (30, 64)`


def first_assignments(path: Path, names: tuple[str, ...]) -> list[str]:
    """The given gradient names, in the order a file first assigns them at top level."""
    seen: list[str] = []
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        for t in targets:
            for name in ast.walk(t):
                if isinstance(name, ast.Name) and name.id in names and name.id not in seen:
                    seen.append(name.id)
    return seen


@pytest.mark.parametrize("exercise_id", ["exercise1", "exercise2", "exercise3"])
def test_solution_passes_every_gradient(course: Course, dataset: Dataset, exercise_id: str) -> None:
    """The course's solution passes every gradient of its exercise, isolated and chained."""
    exercise = course.exercise(exercise_id)
    report = grade(course, dataset, exercise_id, exercise.solution.read_text())
    assert report.passed, statuses(report)
    assert all(g.chained.passed for g in report.gradients)
    assert report.score == report.max_score == len(exercise.gradients)


@pytest.mark.parametrize("exercise_id", ["exercise1", "exercise2", "exercise3"])
def test_stub_is_all_missing(course: Course, dataset: Dataset, exercise_id: str) -> None:
    """An untouched stub runs without error and every gradient is missing."""
    exercise = course.exercise(exercise_id)
    report = grade(course, dataset, exercise_id, exercise.stub.read_text())
    assert set(statuses(report).values()) == {"missing"}
    assert report.untouched and not report.passed and report.score == 0


@pytest.mark.parametrize("exercise_id", ["exercise1", "exercise2", "exercise3", "exercise4"])
def test_stub_solution_and_course_list_the_same_gradients(course: Course, exercise_id: str) -> None:
    """Stub, solution and course.yaml name the same gradients in the same order, and the
    stub assigns nothing else that looks like a gradient."""
    exercise = course.exercise(exercise_id)
    everything = (*exercise.gradient_names, "dlogits", "dh", "dhpreact", "dhprebn", "dembcat", "demb")
    assert first_assignments(exercise.stub, everything) == list(exercise.gradient_names)
    assert first_assignments(exercise.solution, exercise.gradient_names) == list(exercise.gradient_names)


@pytest.mark.parametrize("exercise_id", ["exercise1", "exercise2", "exercise3"])
def test_stub_blanks_carry_their_shape(course: Course, dataset: Dataset, exercise_id: str) -> None:
    """Every blank of a stub says, in its comment, the shape its tensor really has on the lecture's
    batch (from the grader's forward pass), one blank per gradient, in the course's order."""
    exercise = course.exercise(exercise_id)
    lecture = build_case(course.cases[0], setting_of(exercise, dataset))
    blanks = [BLANK.match(line) for line in exercise.stub.read_text().splitlines()]
    said = [(m["name"], m["shape"]) for m in blanks if m]
    assert [name for name, _ in said] == list(exercise.gradient_names)
    for (name, shape), grad in zip(said, exercise.gradients, strict=True):
        assert shape == fmt_shape(lecture.truth[grad.tensor].shape), name


def test_exercise4_stub_blanks_carry_their_shape(course: Course, dataset: Dataset) -> None:
    """The exercise-4 stub's blanks say the shapes of the training net's parameters."""
    exercise = course.exercise("exercise4")
    assert exercise.training is not None
    params, _ = setting_of(exercise, dataset).parameters(exercise.training.seed)
    said = [(m["name"], m["shape"]) for line in exercise.stub.read_text().splitlines() if (m := BLANK.match(line))]
    assert said == [(g.name, fmt_shape(params[g.tensor].shape)) for g in exercise.gradients]


@pytest.mark.parametrize("path", sorted((SUBMISSIONS / "exercise1").glob("correct_*.py")), ids=lambda p: p.stem)
def test_correct_submission_written_differently_passes(course: Course, dataset: Dataset, path: Path) -> None:
    """Correct code in another style (einsum, index_add_, helpers, other order) passes."""
    report = grade(course, dataset, "exercise1", path.read_text())
    assert failing(report) == set(), statuses(report)
    assert all(g.chained.passed for g in report.gradients)


def test_squeezed_shape_passes_with_a_note(course: Course, dataset: Dataset) -> None:
    """dbnmeani of shape (64,) for (1, 64) is judged on its values and says so."""
    report = grade(course, dataset, "exercise1", (SUBMISSIONS / "exercise1" / "correct_lecture_style.py").read_text())
    dbnmeani = next(g for g in report.gradients if g.name == "dbnmeani")
    assert dbnmeani.passed
    assert "shape (64,) judged as (1, 64)" in dbnmeani.message
