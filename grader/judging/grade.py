"""Grade one submission of one exercise: the library call behind `ninja-grade`."""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from grader.confined.choice import limits_note, open_sandbox, protections
from grader.confined.policy import check_policy
from grader.courseware.cases import build_case, setting_of
from grader.courseware.course import Course, CourseError, Exercise, Limits
from grader.courseware.data import Dataset
from grader.courseware.draw import Draw
from grader.courseware.draw import draw as draw_cases
from grader.courseware.forward import dataset_of
from grader.intake.extract import Cell, extract, layout_of, looks_like_transcript, script_cells
from grader.intake.refuse import Refusals, left_out_note, refuse_by_statement
from grader.intake.submission import Program, compile_program, read_source
from grader.judging.environment import captured
from grader.judging.judge import all_error, judge, summarize, with_left_out
from grader.judging.results import FullRun, Report, Status
from grader.judging.training import full_run, quick_check, training_result


def load_submission(course: Course, exercise: Exercise, path: Path, *, sections: bool = False) -> Program:
    """The code to grade: a .py as it is, or the exercise's code found in a notebook (or in a
    script that transcribes the lecture's notebook, or in any script when `sections` says
    it holds several exercises). Raises SubmissionError if unreadable."""
    label = display_path(path)
    if path.suffix == ".ipynb":
        from grader.intake.notebooks import read_cells  # noqa: PLC0415 - nbformat only for notebooks (~0.1 s)

        return program_from_cells(course, exercise, read_cells(path), label)
    source = read_source(path)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return compile_program(source, str(path))
    if sections or looks_like_transcript(tree, layout_of(course)):
        return program_from_cells(course, exercise, script_cells(source), label)
    return compile_program(source, str(path))


def program_from_cells(course: Course, exercise: Exercise, cells: list[Cell], label: str) -> Program:
    """One exercise's code out of a notebook's cells, as a program."""
    number = course.exercises.index(exercise) + 1
    wanted = frozenset(g.name for g in (*exercise.gradients, *exercise.helpers))
    found = extract(cells, number, wanted, layout_of(course))
    if found is None:
        return compile_program("", label, notes=(f"no code for {exercise.id} found in {label}: no cell assigns "
                                                 f"{', '.join(exercise.gradient_names[:3])}, ...",))
    if found.syntax_error is not None:
        return Program(label, "", (), found.syntax_error, notes=found.notes)
    return compile_program(found.source, label, origins=found.origins, notes=found.notes, left_out=found.left_out)


def refusals_of(exercise: Exercise) -> Refusals:
    """Why the policy refuses one statement of graded code (grader/confined/policy.py), under the exercise's rules."""
    def refusals(statement: ast.stmt) -> list[str]:
        return [v.message for v in check_policy(ast.Module(body=[statement], type_ignores=[]), exercise.forbid)]
    return refusals


def grade_program(course: Course, exercise: Exercise, program: Program, dataset: Dataset, *,
                  submission_label: str, limits: Limits | None = None, draw: Draw | None = None) -> Report:
    """Judge a compiled program on the pinned cases and fresh ones (`draw`: default, drawn now).
    Its code runs only in the sandbox, never here."""
    draw = draw if draw is not None else draw_cases(course, exercise, source=program.source)
    program = refuse_by_statement(program, refusals_of(exercise))
    notes = [dataset.note] if dataset.note else []
    notes += [*program.notes, *left_out_note(program)]
    blocker = program.syntax_error or None
    output = ""
    held: dict[str, str] = {}
    if blocker is not None:
        gradients = all_error(exercise, blocker)
        notes.append(f"{submission_label}: {blocker}")
    elif exercise.training is not None:
        return grade_training(exercise, program, dataset, submission_label=submission_label, limits=limits,
                              draw=draw)
    else:
        setting = setting_of(exercise, dataset)
        with open_sandbox(program.source, program.path, limits or exercise.limits, world=setting.world) as sandbox:
            cases = [build_case(spec, setting) for spec in draw.cases]
            gradients, output = judge(exercise, program, cases, sandbox, probe_seed=draw.probe_seed)
        held = protections(sandbox.kind, sandbox.held)
        notes += [n for n in (limits_note(sandbox.held),) if n]
        gradients = with_left_out(gradients, program)
    return Report(
        exercise=exercise.id,
        title=exercise.title,
        submission=submission_label,
        gradients=gradients,
        notes=tuple(notes),
        output=output,
        start=exercise.start,
        cases=tuple(spec.to_dict() for spec in draw.cases),
        sandbox=held,
        environment=captured(held),
        draw=draw.to_dict(),
    )


def grade_training(exercise: Exercise, program: Program, dataset: Dataset, *, submission_label: str,
                   limits: Limits | None = None, draw: Draw) -> Report:
    """Exercise 4: checkpoints judged in full, and the run's losses against autograd's, from the
    draw's training seed (both runs start from it)."""
    assert exercise.training is not None
    setting = setting_of(exercise, dataset)
    with open_sandbox(program.source, program.path, limits or exercise.limits) as sandbox:
        run = quick_check(exercise, program, setting, sandbox, seed=draw.training_seed, probe_seed=draw.probe_seed)
    note = limits_note(sandbox.held)
    gradients = with_left_out(tuple(summarize(g, exercise, program, run.cases, run.checks)
                                    for g in exercise.gradients), program)
    if run.died is not None:  # the code as a whole failed mid-run: nothing it computed is trusted
        gradients = tuple(replace(g, status=Status.ERROR, message=f"{run.stopped}; no points for a run that could "
                                  "not finish", diagnosis=None) if g.passed else g for g in gradients)
    training = training_result(exercise.training, run)
    return Report(
        exercise=exercise.id, title=exercise.title, submission=submission_label, gradients=gradients,
        notes=(*((dataset.note,) if dataset.note else ()), *program.notes, *left_out_note(program),
               *((note,) if note else ())),
        output=run.checks[0].output,
        start=exercise.start,
        cases=tuple(c.spec.to_dict() for c in run.cases),
        training=training,
        sandbox=protections(sandbox.kind, sandbox.held),
        environment=captured(protections(sandbox.kind, sandbox.held)),
        draw=draw.to_dict(),
    )


def display_path(path: Path) -> str:
    """The path as the user would type it: relative to here when it is below here."""
    absolute = path.resolve()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(absolute)


def grade(course: Course, exercise_id: str, submission: str | os.PathLike[str] | None = None,
          data: str | os.PathLike[str] | None = None, limits: Limits | None = None, *,
          sections: bool = False, draw: Draw | None = None) -> Report:
    """Grade `submission` (default: the exercise's stub). With `sections`, a .py is read as
    holding several exercises, like a notebook. `draw`: the cases and probes (default: the
    course's pinned cases and fresh ones, drawn now; courseware/draw.py). Raises CourseError,
    SubmissionError or DataError for problems of set-up, never for student mistakes."""
    exercise = course.exercise(exercise_id)
    path = Path(submission) if submission is not None else exercise.stub
    label = display_path(path)
    program = load_submission(course, exercise, path, sections=sections)
    dataset = dataset_of(course, data)
    return grade_program(course, exercise, program, dataset, submission_label=label, limits=limits, draw=draw)


def train_full(course: Course, exercise_id: str, submission: str | os.PathLike[str] | None = None,
               data: str | os.PathLike[str] | None = None, *, steps: int | None = None,
               progress: Callable[[int, float], None] = lambda step, loss: None,
               limits: Limits | None = None) -> tuple[FullRun, Dataset]:
    """Exercise 4 for real: the lecture's run (or `steps` of it) with the student's backward."""
    exercise = course.exercise(exercise_id)
    if exercise.training is None:
        raise CourseError(f"{exercise_id} is not a training exercise; --full is for exercise 4")
    path = Path(submission) if submission is not None else exercise.stub
    program = load_submission(course, exercise, path)
    dataset = dataset_of(course, data)
    planned = steps or exercise.training.full_steps
    program = refuse_by_statement(program, refusals_of(exercise))
    if program.syntax_error is not None:
        return FullRun(0, planned, (), None, None, (), 0.0, program.syntax_error), dataset
    limits = limits or Limits(exercise.training.full_time_s, exercise.limits.memory_mb)
    setting = setting_of(exercise, dataset)
    with open_sandbox(program.source, program.path, limits) as sandbox:
        return full_run(exercise, setting, sandbox, planned, progress), dataset


def submission_for(exercise: Exercise, path: Path) -> Path | None:
    """The file to grade for one exercise: `path` itself, or, in a folder, the exercise's own
    .py or .ipynb (exercise1.py, exercise1.ipynb), else the folder's only notebook."""
    if not path.is_dir():
        return path
    names = {f"{exercise.id}.py", f"{exercise.id}.ipynb", exercise.stub.name}
    own = sorted(p for p in path.rglob("*") if p.is_file() and p.name in names)
    if own:
        return own[0]
    notebooks = sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    return notebooks[0] if len(notebooks) == 1 else None


def grade_nothing(course: Course, exercise_id: str, where: Path, data: str | os.PathLike[str] | None) -> Report:
    """The report for an exercise with no submission at all: every gradient missing, saying why."""
    exercise = course.exercise(exercise_id)
    label = display_path(where)
    program = compile_program("", label, notes=(f"no submission for {exercise_id} in {label}: expected "
                                                f"{exercise_id}.py or {exercise_id}.ipynb",))
    return grade_program(course, exercise, program, dataset_of(course, data), submission_label=label)
