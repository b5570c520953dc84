"""The grading pipeline: how one submission of one exercise is graded, top to bottom.

The application layer between the stages: `ninja-grade`, the batch, the notebook's check()
and grader/api.py all grade through it. One submission goes through these steps, each done
by its stage and named where grade_program takes it:

    load      intake      the file as it is, or the exercise's code found in a notebook's (or a
                          script's) cells: a Program, its statements and where each line is
    draw      courseware  the course's pinned cases, and fresh ones drawn for this code
    refuse    intake      each top-level statement the policy refuses, left out on its own
    confine   confined    a sandbox: a child the kernel confines, which alone runs the code
    judge     judging     every gradient on every case against autograd, with diagnoses (a
                          training exercise: checkpoints, and its losses beside autograd's)
    report    judging     the Report: the verdicts, the notes, the cases, where it was graded

Nothing here runs graded code: only the sandbox does.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

from grader.confined.choice import limits_note, open_sandbox, protections
from grader.confined.policy import check_policy
from grader.confined.sandbox import Sandbox
from grader.courseware.cases import Setting, build_case, setting_of
from grader.courseware.course import Course, CourseError, Exercise, Limits
from grader.courseware.data import Dataset
from grader.courseware.draw import Draw
from grader.courseware.draw import draw as draw_cases
from grader.courseware.forward import dataset_of
from grader.intake.extract import Cell, extract, layout_of, looks_like_transcript, script_cells
from grader.intake.refuse import Refusals, left_out_note, refuse_by_statement
from grader.intake.submission import TOO_DEEP, Program, compile_program, parse, read_source
from grader.judging.environment import captured
from grader.judging.judge import all_error, judge, summarize, with_left_out
from grader.judging.results import FullRun, GradientResult, Report, Status, TrainingResult
from grader.judging.training import full_run, quick_check, training_result

# --- the pipeline: one submission, top to bottom -------------------------------------------


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


def grade_program(course: Course, exercise: Exercise, program: Program, dataset: Dataset, *,
                  submission_label: str, limits: Limits | None = None, draw: Draw | None = None) -> Report:
    """A loaded program through the rest of the pipeline: draw (`draw`: default, drawn now), refuse,
    confine, judge, report. Its code runs only in the sandbox, never here."""
    draw = draw if draw is not None else draw_cases(course, exercise, source=program.source)
    program = refuse(program, exercise)
    if program.syntax_error is not None:  # nothing of it can run: every gradient is that error
        judged = Judged(all_error(exercise, program.syntax_error), tuple(spec.to_dict() for spec in draw.cases))
        return report_of(judged, None, exercise=exercise, program=program, dataset=dataset, label=submission_label,
                         draw=draw)
    setting = setting_of(exercise, dataset)
    with confine(program, exercise, setting, limits or exercise.limits) as sandbox:
        judged = judge_in(sandbox, exercise, program, setting, draw)
    return report_of(judged, sandbox, exercise=exercise, program=program, dataset=dataset, label=submission_label,
                     draw=draw)


# --- load ----------------------------------------------------------------------------------


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
        tree = parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return compile_program(source, str(path))
    if sections or looks_like_transcript(tree, layout_of(course)):
        return program_from_cells(course, exercise, script_cells(source), label)
    return compile_program(source, str(path))


def program_from_cells(course: Course, exercise: Exercise, cells: list[Cell], label: str) -> Program:
    """One exercise's code out of a notebook's cells, as a program."""
    number = course.exercises.index(exercise) + 1
    wanted = frozenset(g.name for g in (*exercise.gradients, *exercise.intermediates))
    try:
        found = extract(cells, number, wanted, layout_of(course))
    except RecursionError:  # a walk over the cells' trees (an unparse): code nested deeper than it can follow
        return Program(label, "", (), TOO_DEEP)
    if found is None:
        return compile_program("", label, notes=(f"no code for {exercise.id} found in {label}: no cell assigns "
                                                 f"{', '.join(exercise.gradient_names[:3])}, ...",))
    if found.syntax_error is not None:
        return Program(label, "", (), found.syntax_error, notes=found.notes)
    return compile_program(found.source, label, origins=found.origins, notes=found.notes, left_out=found.left_out)


def display_path(path: Path) -> str:
    """The path as the user would type it: relative to here when it is below here."""
    absolute = path.resolve()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(absolute)


# --- refuse --------------------------------------------------------------------------------


def refusals_of(exercise: Exercise) -> Refusals:
    """Why the policy refuses one statement of graded code (grader/confined/policy.py), under the exercise's rules."""
    def refusals(statement: ast.stmt) -> list[str]:
        return [v.message for v in check_policy(ast.Module(body=[statement], type_ignores=[]), exercise.forbid)]
    return refusals


def refuse(program: Program, exercise: Exercise) -> Program:
    """The program without the statements the exercise's rules refuse, each left out on its own."""
    return refuse_by_statement(program, refusals_of(exercise))


# --- confine -------------------------------------------------------------------------------


def confine(program: Program, exercise: Exercise, setting: Setting, limits: Limits) -> AbstractContextManager[Sandbox]:
    """The sandbox the program runs in, under `limits`: with the data graded code may read, for an
    exercise judged case by case (a training exercise's child computes its own forward pass)."""
    world = setting.world if exercise.training is None else None
    return open_sandbox(program.source, program.path, limits, world=world)


# --- judge ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    """What judging left for the report."""

    gradients: tuple[GradientResult, ...]
    cases: tuple[dict[str, object], ...]  # what each case was, as the report names it
    output: str = ""  # what the code printed (the first case's chained run)
    training: TrainingResult | None = None


def judge_in(sandbox: Sandbox, exercise: Exercise, program: Program, setting: Setting, draw: Draw) -> Judged:
    """Every gradient judged on the draw's cases; a training exercise's quick run from the draw's
    training seed (both runs, the student's and autograd's, start from it)."""
    if exercise.training is None:
        cases = [build_case(spec, setting) for spec in draw.cases]
        gradients, output = judge(exercise, program, cases, sandbox, probe_seed=draw.probe_seed)
        return Judged(with_left_out(gradients, program), tuple(spec.to_dict() for spec in draw.cases), output)
    run = quick_check(exercise, program, setting, sandbox, seed=draw.training_seed, probe_seed=draw.probe_seed)
    graded = with_left_out(tuple(summarize(g, exercise, program, run.cases, run.checks)
                                 for g in exercise.gradients), program)
    if run.died is not None:  # the code as a whole failed mid-run: nothing it computed is trusted
        graded = tuple(replace(g, status=Status.ERROR, message=f"{run.stopped}; no points for a run that could "
                               "not finish", diagnosis=None) if g.passed else g for g in graded)
    return Judged(graded, tuple(c.spec.to_dict() for c in run.cases), run.checks[0].output,
                  training_result(exercise.training, run))


# --- report --------------------------------------------------------------------------------


def report_of(judged: Judged, sandbox: Sandbox | None, *, exercise: Exercise, program: Program, dataset: Dataset,
              label: str, draw: Draw) -> Report:
    """The Report, with the notes about the submission as a whole: the data set's, the program's,
    the lines left out, and what stopped it running (a syntax error) or what the sandbox could not hold."""
    notes = [*((dataset.note,) if dataset.note else ()), *program.notes, *left_out_note(program)]
    held: dict[str, str] = {}
    if sandbox is None:
        notes.append(f"{label}: {program.syntax_error}")
    else:
        held = protections(sandbox.kind, sandbox.held)
        notes += [n for n in (limits_note(sandbox.held),) if n]
    return Report(exercise=exercise.id, title=exercise.title, submission=label, gradients=judged.gradients,
                  notes=tuple(notes), output=judged.output, start=exercise.start, cases=judged.cases,
                  training=judged.training, sandbox=held, environment=captured(held), draw=draw.to_dict())


# --- a training exercise's real run, and a folder of submissions ----------------------------------------


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
    program = refuse(program, exercise)
    if program.syntax_error is not None:
        return FullRun(0, planned, (), None, None, (), 0.0, program.syntax_error), dataset
    limits = limits or Limits(exercise.training.full_time_s, exercise.limits.memory_mb)
    setting = setting_of(exercise, dataset)
    with confine(program, exercise, setting, limits) as sandbox:
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
