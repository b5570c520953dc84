"""The course's tools: hints, notebooks, batch grading, and checking a course."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from grader.ci.gradebooks import FORMATS as GRADEBOOK_FORMATS
from grader.cli.class_report import roster_or_exit, write_batch_outputs
from grader.cli.common import EXIT_FAILED, EXIT_GRADER_FAULT, EXIT_PASSED, course_of, course_or_exit, fail_setup
from grader.courseware.course import Course, CourseError, Limits
from grader.reporting.formats import one_line

if TYPE_CHECKING:
    from grader.ci.batch import Plan, Tally
    from grader.courseware.data import Dataset


@click.command(name="hint")
@click.argument("exercise_id", metavar="EXERCISE")
@click.argument("gradient")
@click.option("--level", type=click.IntRange(1, 3), default=1, show_default=True,
              help="1: where to look; 2: the shapes, sums and broadcasts; 3: the structure of the answer.")
@click.pass_context
def hint_command(ctx: click.Context, exercise_id: str, gradient: str, level: int) -> None:
    """Show a hint for one gradient, from gentle (1) to nearly the answer (3)."""
    try:
        grad = course_of(ctx).exercise(exercise_id).gradient(gradient)
    except CourseError as exc:
        fail_setup(str(exc))
    if not grad.hints:
        fail_setup(f"course.yaml has no hints for {gradient}")
    shown = min(level, len(grad.hints))
    for i in range(shown):
        click.echo(f"{click.style(f'hint {i + 1}', bold=True)}: {grad.hints[i]}")
    if shown < len(grad.hints):
        click.echo(f"(more: ninja-grade hint {exercise_id} {gradient} --level {shown + 1})")


def resolve_course_repo(root: Path, given: str | None) -> tuple[str, str]:
    """The course's git URL (as given, else the course checkout's remote 'origin') and where it came
    from, said once the command has written its files. Never a placeholder: with neither, it asks
    for one (exit 2)."""
    if given:
        return given, f"course repository: {given} (--course-repo)"
    try:
        found = subprocess.run(["git", "-C", str(root), "config", "--get", "remote.origin.url"],
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        found = ""
    if not found:
        fail_setup(f"which git URL should students fetch the course from? Say --course-repo URL (the course at "
                   f"{root} has no git remote 'origin' to take it from)")
    return found, f"course repository: {found} (the git remote 'origin' of {root})"


@click.command(name="notebook")
@click.argument("which", metavar="[EXERCISE|all]", default="all")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("notebooks"), show_default=True,
              help="Folder to write the notebooks into.")
@click.option("--course-repo", default=None, metavar="URL",
              help="The git URL of your copy of this course, which the notebook's set-up cell fetches on Colab "
                   "(default: the git remote 'origin' of the course's checkout).")
@click.pass_context
def notebook_command(ctx: click.Context, which: str, out: Path, course_repo: str | None) -> None:
    """Write the exercises as Jupyter/Colab notebooks, with an inline check cell."""
    course = course_or_exit(ctx)
    ids = list(course.exercise_ids) if which == "all" else [which]
    try:
        for exercise_id in ids:
            course.exercise(exercise_id)
    except CourseError as exc:
        fail_setup(str(exc))
    repo, source = resolve_course_repo(course.root, course_repo)
    try:
        from grader.courseware.notebooks import write_notebooks

        written = write_notebooks(course, ids, out, course_repo=repo)
    except CourseError as exc:  # its forward file, read for the forward cell
        fail_setup(str(exc))
    except OSError as exc:
        fail_setup(f"cannot write to {out}: {exc.strerror}")
    click.echo(source, err=True)
    for path in written:
        click.echo(f"wrote {path}")


@click.command(name="batch")
@click.argument("exercise_id", metavar="EXERCISE")
@click.argument("submissions", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Workers in parallel (default: the cores it may use).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("ninja-batch"), show_default=True,
              help="Folder for one JSON report per student; a rerun grades again only what changed since.")
@click.option("--gradebook", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the CSV gradebook (default: OUT/gradebook.csv; a shard's: "
                   "OUT/gradebook-shard-I-of-N.csv).")
@click.option("--force", is_flag=True, help="Grade again everything, even what is graded and unchanged in OUT.")
@click.option("--shard", default=None, metavar="I/N",
              help="Grade shard I of N (counted from 0): the students whose id hashes to I. 'N' alone takes I "
                   "from JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX or SLURM_ARRAY_TASK_ID; without "
                   "--shard, an AWS Batch or SLURM array's index and size are used. ninja-grade merge joins them.")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="names.txt to use.")
@click.option("--time-limit", type=click.FloatRange(min=0.1), default=None, help="Seconds per submission.")
@click.option("--memory-limit", type=click.IntRange(min=64), default=None, help="MB per submission.")
@click.option("--gradebook-format", type=click.Choice(GRADEBOOK_FORMATS), default="csv", show_default=True,
              help="csv: a row per submission, a column per gradient; canvas, moodle, blackboard: the file that "
                   "LMS's gradebook import takes.")
@click.option("--roster", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CSV of name, student_id, email, lms_id: who each submission (its file name) is.")
@click.option("--gradebook-column", default=None, metavar="NAME",
              help="The LMS's assignment column (default: the exercise id); Canvas's 'NAME (ID)' or "
                   "Blackboard's 'NAME |ID' grades an existing one.")
@click.pass_context
def batch_command(ctx: click.Context, /, *, exercise_id: str, submissions: tuple[Path, ...], jobs: int | None,
                  out: Path, gradebook: Path | None, force: bool, shard: str | None, data: Path | None,
                  time_limit: float | None, memory_limit: int | None, gradebook_format: str, roster: Path | None,
                  gradebook_column: str | None) -> None:
    """Grade many submissions (files, or folders of one student each) into a gradebook, with the class
    page (class.html) beside it. A rerun grades again exactly the submissions whose file, course,
    data, limits or grader differ from what their report records."""
    from grader.confined.zygote import start_early

    start_early()  # the zygote that forks each worker's imports torch while this process does
    from grader.ci import batch
    from grader.ci.pool import usable_cores
    from grader.ci.shards import ShardError, shard_from

    course = course_or_exit(ctx)
    try:
        exercise = course.exercise(exercise_id)
        from grader.courseware.forward import forward_of  # torch: imported only to grade

        forward_of(exercise)  # a broken forward file is said once, before anyone is graded, not as every grade
    except CourseError as exc:
        fail_setup(str(exc))
    limits = Limits(time_limit or exercise.limits.time_s, memory_limit or exercise.limits.memory_mb)
    try:
        part = shard_from(shard, os.environ)
    except ShardError as exc:
        fail_setup(str(exc))
    # before anyone is graded: one line, exit 2, nothing written
    dataset = check_batch_setup(course, data, out, gradebook)
    people = roster_or_exit(roster)
    subs = batch.discover(batch_inputs(list(submissions), out), exercise_id)
    course_arg = ctx.find_root().params.get("course")
    try:
        plan = batch.plan_batch(course, exercise_id, subs, out=out, force=force, dataset=dataset, limits=limits,
                                shard=part)
    except OSError as exc:  # the course's own files, read for the record
        fail_setup(f"cannot read the course to record what is graded: {exc}")
    if not part.whole:
        click.echo(f"shard {part.name} ({part.source}): {len(plan.share)} of the {len(subs)} submissions")
    click.echo(plan.said)
    tally = grade_with_a_bar(course, exercise_id, plan, [s.student for s in subs], out=out,
                             jobs=jobs or len(usable_cores()) or os.cpu_count() or 1,
                             course_path=str(course_arg) if course_arg else None, data=str(data) if data else None,
                             limits=limits)
    share = [p.sub for p in plan.share]
    table, reports = batch.gradebook(course, exercise_id, share, {**plan.kept, **tally.reports})
    book = gradebook or out / part.gradebook_name
    page = write_batch_outputs(course, exercise, students=[s.student for s in share], table=table, reports=reports,
                               book=book, fmt=gradebook_format, roster=people, column=gradebook_column,
                               page=part.whole, repeated=plan.repeated)
    click.echo(f"{len(share)} submissions: {tally}" + (f" ({tally.skipped} graded before)" if tally.skipped else ""))
    click.echo(f"reports in {out}/, gradebook {book}" + (f", class page {page}" if page else "")
               + ("" if part.whole else "; ninja-grade merge joins the shards' folders"))
    say_rates_and_faults(course, exercise_id, reports, tally.faults)
    all_passed = len(reports) == len(share) and all(r.get("passed") for r in reports)
    sys.exit(EXIT_GRADER_FAULT if tally.faults else EXIT_PASSED if all_passed else EXIT_FAILED)


def batch_inputs(submissions: list[Path], out: Path) -> list[Path]:
    """The submissions less the batch's own output folders (said on stderr); exit 2 when none is left."""
    from grader.ci.batch import holds_batch_output

    kept = []
    for path in submissions:
        if holds_batch_output(path, out):
            click.echo(f"skipped {one_line(str(path))}/: it holds a batch's reports, not a student's submission",
                       err=True)
        else:
            kept.append(path)
    if not kept:
        fail_setup("no submissions to grade: every path given holds a batch's reports")
    return kept


def grade_with_a_bar(course: Course, exercise_id: str, plan: Plan, students: list[str], *, out: Path, jobs: int,
                     course_path: str | None, data: str | None, limits: Limits) -> Tally:
    """Grade what the plan says, with a progress bar that says the tally so far; the tally."""
    from grader.ci.batch import run_batch

    with click.progressbar(length=len(plan.todo), label=f"grading {exercise_id}", file=sys.stderr,
                           item_show_func=lambda item: item) as bar:
        def progress(report: dict[str, Any] | None, tally: Tally) -> None:
            bar.current_item = str(tally)  # type: ignore[attr-defined]
            bar.update(1)

        try:
            return run_batch(course, exercise_id, plan, students, out=out, jobs=jobs, course_path=course_path,
                             data=data, limits=limits, progress=progress)
        except OSError as exc:
            fail_setup(f"cannot write to {out}: {exc.strerror}")


def say_rates_and_faults(course: Course, exercise_id: str, reports: list[dict[str, Any]], faults: list[Any]) -> None:
    """The end of a batch: the pass rate per gradient, then (on stderr) what the grader failed on."""
    from grader.ci.batch import pass_rates

    click.echo("\npass rate per gradient:")
    for name, passed, graded in pass_rates(course, exercise_id, reports):
        share = passed / graded if graded else 0.0
        click.echo(f"  {name:16} {'█' * round(share * 20):20} {passed:4}/{graded} ({share:.0%})")
    if faults:
        click.echo(f"\n{len(faults)} submission{'s were' if len(faults) != 1 else ' was'} not graded: "
                   "the grader failed on them, not the students. No report or score was recorded for them.",
                   err=True)
        for fault in faults:
            click.echo(f"  {one_line(fault.student)} ({one_line(fault.path)}): {one_line(fault.reason)}", err=True)
        retry = " ".join(one_line(shlex.quote(arg)) for arg in ["ninja-grade", *sys.argv[1:]]) if sys.argv[1:] else \
            "the same ninja-grade batch command"
        click.echo(f"Run {retry} again to grade just these (the others are kept).", err=True)


BATCH_NEEDS_FORK = ("batch grading forks its workers, which needs Linux or macOS (as on CI runners); here, grade "
                    "one submission at a time, or run the batch in WSL")


def check_batch_setup(course: Course, data: Path | None, out: Path, gradebook: Path | None) -> Dataset:
    """What would make every student's grade wrong or lost, found before the first is graded; the data
    set it found."""
    from grader.confined.choice import chosen_kind
    from grader.confined.sandbox import SandboxError
    from grader.confined.unix import UNIX_NEEDED, unix_sandbox_available
    from grader.courseware.data import DataError
    from grader.courseware.forward import dataset_of

    if not hasattr(os, "fork"):
        fail_setup(BATCH_NEEDS_FORK)
    try:
        if chosen_kind() == "unix" and not unix_sandbox_available():
            fail_setup(UNIX_NEEDED)
    except SandboxError as exc:
        fail_setup(str(exc))

    try:
        dataset = dataset_of(course, data)
    except DataError as exc:
        fail_setup(str(exc))
    if out.exists() and not out.is_dir():
        fail_setup(f"--out {out} is a file, not a folder")
    existing = next((p for p in [out, *out.parents] if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        fail_setup(f"cannot write the reports to {out}: {existing} is not a folder you can write to")
    if gradebook is not None and not gradebook.parent.is_dir():
        fail_setup(f"cannot write the gradebook to {gradebook}: {gradebook.parent} is not a folder")
    return dataset


@click.command("check-course", short_help="Prove a course sound: stubs, solutions, hints, shapes.")
@click.argument("course_file", required=False, type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None, help="names.txt to use.")
@click.pass_context
def check_course_command(ctx: click.Context, course_file: Path | None, data: Path | None) -> None:
    """Check COURSE_FILE (default: the --course one, else the shipped course.yaml) the way its
    students will meet it: every solution passes on every case, every stub grades all missing,
    stub, solution and course name the same gradients in the same order, every gradient has three
    hint levels, and the stubs' shape comments match the forward pass. One line per problem; exit 0
    when there are none, 1 when there are."""
    from grader.ci.check_course import check_course
    from grader.confined.sandbox import SandboxError
    from grader.courseware.course import load_course
    from grader.courseware.data import DataError
    from grader.courseware.forward import dataset_of
    from grader.intake.submission import SubmissionError

    try:
        course = load_course(course_file) if course_file is not None else course_of(ctx)
        problems = check_course(course, dataset_of(course, data))
    except (CourseError, DataError, SandboxError, SubmissionError) as exc:
        fail_setup(str(exc))
    for problem in problems:
        click.echo(problem)
    count = len(course.exercises)
    if problems:
        click.echo(f"{len(problems)} problem{'s' * (len(problems) != 1)} in {count} exercises", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"sound: {count} exercise{'s' * (count != 1)}, every solution passes, every stub is all missing, "
               "hints and shapes agree")
