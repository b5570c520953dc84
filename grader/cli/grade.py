"""The commands that grade: `ninja-grade EXERCISE [SUBMISSION]` and `ninja-grade all`.

Torch is imported only when something is graded, so `--help` stays instant.
"""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from grader.cli.common import EXIT_FAILED, EXIT_PASSED, course_or_exit, fail_setup
from grader.courseware.course import Course, CourseError, Exercise, Limits
from grader.files import write_atomic
from grader.reporting.formats import FORMATS, render, render_annotations

PLAIN_PROGRESS_S = 10.0  # how often a training run says how far it is, where no bar can be drawn


def grade_command(exercise: Exercise) -> click.Command:
    """`ninja-grade <exercise> [SUBMISSION]`, one per exercise of course.yaml."""
    exercise_id = exercise.id

    @click.pass_context
    def command(ctx: click.Context, /, *, submission: Path | None, fmt: str, data: Path | None,
                time_limit: float | None, memory_limit: int | None, feedback: bool, output: Path | None,
                github: bool, watch: bool, **training: Any) -> None:
        course = course_or_exit(ctx)
        from grader.confined.sandbox import SandboxError
        from grader.courseware.data import DataError
        from grader.intake.submission import SubmissionError
        from grader.judging.grade import grade

        limits = None
        if time_limit or memory_limit:
            base = exercise.limits if not training.get("full") else Limits(
                exercise.training.full_time_s if exercise.training else exercise.limits.time_s,
                exercise.limits.memory_mb)
            limits = Limits(time_limit or base.time_s, memory_limit or base.memory_mb)
        if watch:
            watch_command(course, exercise, submission, data, limits)
        try:
            if training.get("full") or training.get("steps"):
                from grader.courseware.data import find_names

                find_names(data)  # a bad --data is said before the progress bar starts, in one line
                full_command(course, exercise_id, submission, data, fmt=fmt, limits=limits, **training)
            started = time.monotonic()
            report = grade(course, exercise_id, submission, data, limits)
        except (CourseError, SubmissionError, DataError, SandboxError) as exc:
            fail_setup(str(exc))
        emit([report], fmt=fmt, output=output, github=github, seconds=time.monotonic() - started,
             path=str(submission or exercise.stub))
        if feedback:
            write_feedback_for(submission, [report])
        sys.exit(EXIT_PASSED if report.passed else EXIT_FAILED)

    params: list[click.Parameter] = [
        click.Argument(["submission"], required=False, type=click.Path(path_type=Path)),
        *report_options(),
        click.Option(["--data"], type=click.Path(path_type=Path), default=None,
                     help="names.txt to use (default: $NINJA_DATA, ./names.txt, the cache, a download)."),
        click.Option(["--time-limit"], type=click.FloatRange(min=0.1), default=None,
                     help="Seconds the submission's code may run, all runs together (default: course.yaml)."),
        click.Option(["--memory-limit"], type=click.IntRange(min=64), default=None,
                     help="MB the submission's code may allocate (default: course.yaml)."),
        click.Option(["--feedback"], is_flag=True,
                     help="For a notebook: also write NOTEBOOK.feedback.html beside it, the notebook with "
                          "this report on top."),
        click.Option(["--watch"], is_flag=True,
                     help="Grade, then grade again each time the file is saved (what changed is said on "
                          "top); Ctrl-C ends it with the last verdict's exit code."),
    ]
    if exercise.training is not None:
        params += [
            click.Option(["--full"], is_flag=True,
                         help=f"Train for real: the lecture's {exercise.training.full_steps:,} steps with your "
                              "backward pass, then the train and val loss, samples and the loss curve. "
                              "Ctrl-C stops early."),
            click.Option(["--steps"], type=click.IntRange(min=1), default=None,
                         help="A shorter real run of this many steps (implies --full)."),
            click.Option(["--plot"], type=click.Path(path_type=Path, dir_okay=False), default=None,
                         help=f"Where to save the loss curve (default: ./{exercise_id}-loss.png)."),
        ]
    return click.Command(exercise_id, callback=command, params=params,
                         help=f"{exercise.title}.\n\nGrade SUBMISSION (default: the exercise's stub).")


def report_options() -> list[click.Parameter]:
    """--format, --output and --github, shared by every command that grades."""
    return [
        click.Option(["--format", "fmt"], type=click.Choice(FORMATS), default="text", show_default=True,
                     help="text for people; json for tools (one object on stdout); junit, gradescope "
                          "(results.json), markdown (a $GITHUB_STEP_SUMMARY table) and classroom (GitHub "
                          "Classroom's runner result: base64 on stdout, plain JSON with --output) for CI."),
        click.Option(["--output", "-o"], type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="Write the report to this file (atomically) and the text report to stdout."),
        click.Option(["--github"], is_flag=True,
                     help="Also print GitHub Actions annotations (::error) for each failing gradient."),
    ]


def emit(reports: list[Any], *, fmt: str, output: Path | None, github: bool, seconds: float, path: str) -> None:
    """Render the reports where they were asked for."""
    if output is not None:
        try:
            write_atomic(output, render(fmt, reports, seconds=seconds))
        except OSError as exc:
            fail_setup(f"cannot write {output}: {exc.strerror}")
        click.echo(render("text", reports))
    elif fmt == "classroom":  # what the grading reporter reads from <ID>_RESULTS
        click.echo(base64.b64encode(render(fmt, reports, seconds=seconds).encode()).decode(), color=False)
    else:
        click.echo(render(fmt, reports, seconds=seconds), color=None if fmt == "text" else False)
    if fmt == "text" and len(reports) > 1 and output is None:
        passed = sum(r.passed for r in reports)
        click.echo(click.style(f"\n{passed}/{len(reports)} exercises passed", bold=True))
    if github:
        annotations = render_annotations(reports, path)
        if annotations:
            click.echo(annotations, color=False)


def write_feedback_for(submission: Path | None, reports: list[Any]) -> None:
    """--feedback: the notebook as HTML with the report on top, beside the notebook."""
    from grader.intake.notebooks import write_feedback
    from grader.reporting.report import render_html

    if submission is None or submission.suffix != ".ipynb":
        click.echo("ninja-grade: --feedback is for notebooks; no feedback file written", err=True)
        return
    out = submission.with_name(f"{submission.stem}.feedback.html")
    try:
        write_feedback(submission, "".join(render_html(r) for r in reports), out)
    except OSError as exc:
        click.echo(f"ninja-grade: cannot write {out}: {exc.strerror}", err=True)
        return
    click.echo(f"feedback: {out}", err=True)


def watch_command(course: Course, exercise: Exercise, submission: Path | None, data: Path | None,
                  limits: Limits | None) -> NoReturn:
    """--watch: the data set and torch loaded once, then one grading per save of the file."""
    from grader.cli.watch import watch
    from grader.confined.sandbox import SandboxError
    from grader.courseware.data import DataError, find_names
    from grader.intake.submission import SubmissionError
    from grader.judging.grade import display_path, grade_program, load_submission
    from grader.reporting.report import render_text

    path = submission or exercise.stub
    try:
        dataset = find_names(data)
    except DataError as exc:
        fail_setup(str(exc))

    def grade_once() -> Any:
        program = load_submission(course, exercise, path)
        return grade_program(course, exercise, program, dataset, submission_label=display_path(path), limits=limits)

    sys.exit(watch(path, grade_once, render_text, (SubmissionError, SandboxError)))


def full_command(course: Course, exercise_id: str, submission: Path | None, data: Path | None, *, fmt: str,
                 limits: Limits | None, full: bool, steps: int | None, plot: Path | None) -> NoReturn:
    """Exercise 4's real training run, with a progress bar; the exit code says how it ended."""
    from grader.judging.grade import train_full
    from grader.judging.training import save_loss_plot
    from grader.reporting.report import render_full

    planned = steps or (course.exercise(exercise_id).training.full_steps  # type: ignore[union-attr]
                        if course.exercise(exercise_id).training else 0)
    started = time.monotonic()
    plain = not sys.stderr.isatty()  # a log (CI, a pipe): the bar draws nothing there, so say it in lines
    said = [0.0]  # when the last plain line was written
    with click.progressbar(length=planned, label="training", file=sys.stderr, show_eta=True, show_pos=True,
                           item_show_func=lambda item: item) as bar:
        def progress(step: int, loss: float) -> None:
            if step % 50 == 0 or step == planned:
                now = time.monotonic()
                rate = step / max(now - started, 1e-9)
                bar.current_item = f"loss {loss:.4f} · {rate:,.0f} steps/s"  # type: ignore[attr-defined]
                bar.update(50 if step % 50 == 0 else step % 50)
                if plain and (not said[0] or now - said[0] >= PLAIN_PROGRESS_S):
                    said[0] = now
                    click.echo(f"training: step {step:,} of {planned:,} · loss {loss:.4f} · {rate:,.0f} steps/s",
                               err=True)

        run, _ = train_full(course, exercise_id, submission, data, steps=planned, progress=progress, limits=limits)
    plot_path = None
    if run.lossi:
        plot_path = save_loss_plot(run.lossi, str(plot or Path(f"{exercise_id}-loss.png")))
    training = course.exercise(exercise_id).training
    assert training is not None
    click.echo(render_full(run, training, plot_path, fmt=fmt), color=None if fmt == "text" else False)
    sys.exit(130 if run.interrupted else EXIT_FAILED if run.stopped else EXIT_PASSED)


@click.pass_context
def all_callback(ctx: click.Context, /, *, submission: Path, fmt: str, data: Path | None, feedback: bool,
                 output: Path | None, github: bool, exercise: tuple[str, ...]) -> None:
    """Grade every exercise found in one notebook (or script, or folder); exit 0 only if all pass."""
    course = course_or_exit(ctx)
    from grader.confined.sandbox import SandboxError
    from grader.courseware.data import DataError
    from grader.intake.submission import SubmissionError
    from grader.judging.grade import grade, grade_nothing, submission_for

    started = time.monotonic()
    try:
        reports = []
        for exercise_id in exercise or course.exercise_ids:
            path = submission_for(course.exercise(exercise_id), submission)
            # One file for every exercise: read it by sections, as a notebook is.
            reports.append(grade(course, exercise_id, path, data, sections=path == submission)
                           if path is not None else grade_nothing(course, exercise_id, submission, data))
    except (CourseError, SubmissionError, DataError, SandboxError) as exc:
        fail_setup(str(exc))
    emit(reports, fmt=fmt, output=output, github=github, seconds=time.monotonic() - started, path=str(submission))
    if feedback:
        write_feedback_for(submission, reports)
    sys.exit(EXIT_PASSED if all(r.passed for r in reports) else EXIT_FAILED)


all_command = click.Command("all", callback=all_callback, params=[
    click.Argument(["submission"], type=click.Path(path_type=Path)),
    *report_options(),
    click.Option(["--data"], type=click.Path(path_type=Path), default=None, help="names.txt to use."),
    click.Option(["--feedback"], is_flag=True,
                 help="Also write NOTEBOOK.feedback.html: the notebook with the reports on top."),
    click.Option(["--exercise"], multiple=True, help="Only these exercises (repeatable; default: all)."),
], help="Grade every exercise found in one notebook, script or folder (exerciseN.py / .ipynb files); "
        "exit 0 only if all pass.",
    short_help="Grade every exercise in one notebook or script.")
