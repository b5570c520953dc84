"""Grade one submission of one exercise: the library call behind `ninja-grade`."""

from __future__ import annotations

import ast
import os
from pathlib import Path

from grader.cases import Splits, build_case, make_splits
from grader.course import Course, Exercise, Limits
from grader.data import Dataset, find_names
from grader.judge import all_error, judge
from grader.policy import check_policy
from grader.results import Report
from grader.sandbox import Sandbox
from grader.submission import Program, load_program

_splits_cache: dict[tuple[str, int], Splits] = {}


def splits_for(dataset: Dataset) -> Splits:
    """Build the lecture's splits once per data set per process."""
    key = (dataset.source, len(dataset.words))
    if key not in _splits_cache:
        _splits_cache[key] = make_splits(dataset)
    return _splits_cache[key]


def policy_violation(program: Program, exercise: Exercise) -> str | None:
    """The first rule the code breaks (grader/policy.py), as a sentence, or None."""
    violations = check_policy(ast.parse(program.source), exercise.forbid)
    if not violations:
        return None
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return f"not run: {violations[0]}{more}"


def grade_program(course: Course, exercise: Exercise, program: Program, dataset: Dataset, *,
                  submission_label: str, limits: Limits | None = None) -> Report:
    """Judge a compiled program. Its code runs only in the sandbox, never here."""
    notes = [dataset.note] if dataset.note else []
    blocker = program.syntax_error or policy_violation(program, exercise)
    output = ""
    if blocker is not None:
        gradients = all_error(exercise, blocker)
        notes.append(f"{submission_label}: {blocker}")
    else:
        splits = splits_for(dataset)
        # Fork before any true gradient exists in this process: the child never holds one
        # it has not been handed.
        with Sandbox(program.source, program.path, limits or exercise.limits) as sandbox:
            cases = [build_case(spec, splits) for spec in course.cases]
            gradients, output = judge(exercise, program, cases, sandbox)
    return Report(
        exercise=exercise.id,
        title=exercise.title,
        submission=submission_label,
        gradients=gradients,
        notes=tuple(notes),
        output=output,
        start=exercise.start,
        cases=tuple({"name": c.name, "seed": c.seed, "batch_size": c.batch_size, "dtype": c.dtype}
                    for c in course.cases),
    )


def display_path(path: Path) -> str:
    """The path as the user would type it: relative to here when it is below here."""
    absolute = path.resolve()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(absolute)


def grade(course: Course, exercise_id: str, submission: str | os.PathLike[str] | None = None,
          data: str | os.PathLike[str] | None = None, limits: Limits | None = None) -> Report:
    """Grade `submission` (default: the exercise's stub). Raises CourseError,
    SubmissionError or DataError for problems of set-up, never for student mistakes."""
    exercise = course.exercise(exercise_id)
    path = Path(submission) if submission is not None else exercise.stub
    label = display_path(path)
    program = load_program(path)
    dataset = find_names(data)
    return grade_program(course, exercise, program, dataset, submission_label=label, limits=limits)
