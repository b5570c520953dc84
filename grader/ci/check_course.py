"""`ninja-grade check-course`: prove a course sound before students see it.

For every exercise of a course.yaml: the stub, the solution and the course name the same
gradients in the same order; every gradient has three hint levels; the shapes in the
stub's comments are the shapes the forward pass gives on the course's first batch; the stub
grades all `missing`; the solution passes on every case. Each problem is one line.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from grader.courseware.cases import first_case, setting_of, without_gradient
from grader.courseware.course import Course, CourseError, Exercise
from grader.courseware.data import Dataset
from grader.courseware.forward import forward_of
from grader.pipeline import grade

SHAPE_COMMENT = re.compile(r"#\s*(\((?:\s*\d+\s*,)*(?:\s*\d+\s*)?\))")
HINT_LEVELS = 3


@dataclass(frozen=True)
class Assignment:
    name: str
    line: int
    blank: bool  # `= None` or `= ...`: a stub's blank
    shape: tuple[int, ...] | None  # from a `# (32, 27)` comment on its line


def assignments(path: Path) -> list[Assignment]:
    """The file's top-level `name = ...` statements, in order, with their shape comments."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []
    for node in ast.parse(source, str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            blank = isinstance(node.value, ast.Constant) and node.value.value in (None, Ellipsis)
            match = SHAPE_COMMENT.search(lines[node.lineno - 1])
            shape = tuple(ast.literal_eval(match.group(1))) if match else None
            found.append(Assignment(node.targets[0].id, node.lineno, blank, shape))
    return found


def first_each(found: list[Assignment], names: set[str]) -> list[Assignment]:
    seen: dict[str, Assignment] = {}
    for a in found:
        if a.name in names and a.name not in seen:
            seen[a.name] = a
    return list(seen.values())


def order_problems(where: str, listed: list[str], course: list[str], exercise_id: str) -> list[str]:
    problems = [f"{where}: {name} is not a gradient of {exercise_id} in course.yaml"
                for name in listed if name not in course]
    problems += [f"{where}: no line assigns {name}, a gradient of {exercise_id}" for name in course
                 if name not in listed]
    common_listed = [n for n in listed if n in course]
    common_course = [n for n in course if n in listed]
    if common_listed != common_course:
        at = next(i for i, (a, b) in enumerate(zip(common_listed, common_course, strict=True)) if a != b)
        problems.append(f"{where}: gradients in another order than course.yaml's: {common_listed[at]} where "
                        f"course.yaml has {common_course[at]}")
    return problems


def first_case_shapes(course: Course, exercise: Exercise, dataset: Dataset) -> dict[str, tuple[int, ...]]:
    """Each graded tensor's shape on the course's first case (a training exercise: its first step)."""
    setting = setting_of(exercise, dataset)
    case = first_case(exercise, setting, course.cases)
    return {grad.name: tuple(case.truth[grad.tensor].shape) for grad in (*exercise.gradients, *exercise.intermediates)
            if grad.tensor in case.truth}


def check_exercise(course: Course, exercise: Exercise, dataset: Dataset) -> list[str]:
    names = [g.name for g in exercise.gradients]
    where = {"stub": exercise.stub, "solution": exercise.solution}
    problems = [f"{exercise.id}: {g.name} has {len(g.hints)} hint level{'s' * (len(g.hints) != 1)}, "
                f"not {HINT_LEVELS}" for g in exercise.gradients if len(g.hints) != HINT_LEVELS]
    try:
        stub = assignments(exercise.stub)
        solution = assignments(exercise.solution)
    except FileNotFoundError as exc:
        return [*problems, f"{exercise.id}: {exc.filename} does not exist (course.yaml names it)"]
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        return [*problems, f"{exercise.id}: cannot read its files: {exc}"]
    blanks = [a.name for a in stub if a.blank]
    problems += order_problems(f"{exercise.stub} (stub)", blanks, names, exercise.id)
    problems += order_problems(f"{exercise.solution} (solution)",
                               [a.name for a in first_each(solution, set(names))], names, exercise.id)
    try:
        missing = without_gradient(exercise, forward_of(exercise)[1])
        if missing:
            return [*problems, *(f"{exercise.id}: {m}" for m in missing)]
        shapes = first_case_shapes(course, exercise, dataset)
    except CourseError as exc:
        return [*problems, f"{exercise.id}: {exc}"]
    for a in stub:
        if a.blank and a.name in shapes and a.shape is not None and a.shape != shapes[a.name]:
            problems.append(f"{exercise.stub}:{a.line}: the comment says {a.name} is {a.shape}, the forward pass "
                            f"gives {shapes[a.name]} on the course's first batch")
    for label, path in where.items():
        report = grade(course, exercise.id, path, dataset.source if not dataset.synthetic else None)
        for g in report.gradients:
            if label == "stub" and g.status.value != "missing":
                problems.append(f"{path} (stub): {g.name} is {g.status.value}, not missing ({g.message})")
            if label == "solution" and not g.passed:
                problems.append(f"{path} (solution): {g.name} is {g.status.value}: {g.message}")
        if label == "solution" and report.training is not None and not report.training.agreed:
            problems.append(f"{path} (solution): its training run does not follow autograd's")
    return problems


def check_course(course: Course, dataset: Dataset) -> list[str]:
    """Every problem with the course, one line each; an empty list: the course is sound."""
    return [problem for exercise in course.exercises for problem in check_exercise(course, exercise, dataset)]
