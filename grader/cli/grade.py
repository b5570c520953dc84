"""The commands that grade: `ninja-grade EXERCISE [SUBMISSION]` and `ninja-grade all`.

Torch is imported only when something is graded, so `--help` stays instant.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import click

from grader.cli.common import EXIT_FAILED, EXIT_PASSED, course_or_exit, fail_setup
from grader.courseware.course import Course, CourseError, Exercise, Limits
from grader.files import write_atomic
from grader.reporting.formats import FORMATS, PLATFORM_FORMATS, RETIRED_FORMATS, render, render_annotations

PLAIN_PROGRESS_S = 10.0  # how often a training run says how far it is, where no bar can be drawn


def grade_command(exercise: Exercise) -> click.Command:
    """`ninja-grade <exercise> [SUBMISSION]`, one per exercise of course.yaml."""
    exercise_id = exercise.id

    @click.pass_context
    def command(ctx: click.Context, /, *, submission: Path | None, fmt: str, data: Path | None,
                time_limit: float | None, memory_limit: int | None, feedback: bool, output: Path | None,
                summary: Path | None, github: bool, watch: bool, replay: Path | None, graph: Path | None,
                **training: Any) -> None:
        course = course_or_exit(ctx)
        check_platform(fmt, [exercise])
        check_graph_path(graph, training)
        from grader.confined.zygote import start_early

        start_early()  # the sandbox's zygote imports torch while this process does
        from grader.confined.sandbox import SandboxError
        from grader.courseware.data import DataError
        from grader.intake.submission import SubmissionError
        from grader.pipeline import grade

        limits = limits_asked(exercise, time_limit, memory_limit, full=bool(training.get("full")))
        if watch:
            watch_command(course, exercise, submission, data, limits, graph_path=graph)
        try:
            if training.get("full") or training.get("steps"):
                from grader.courseware.forward import dataset_of

                dataset_of(course, data)  # a bad --data is said before the progress bar starts, in one line
                full_command(course, exercise_id, submission, data, fmt=fmt, limits=limits, **training)
            started = time.monotonic()
            draw = replayed(course, exercise, replay) if replay is not None else None
            report = grade(course, exercise_id, submission, data, limits, draw=draw)
        except SubmissionError as exc:
            keep_unreadable(str(exc), [exercise], submission or exercise.stub, fmt=fmt, output=output,
                            summary=summary)
            fail_setup(str(exc))
        except (CourseError, DataError, SandboxError) as exc:
            fail_setup(str(exc))
        emit([report], fmt=fmt, output=output, github=github, seconds=time.monotonic() - started,
             path=str(submission or exercise.stub), summary=summary, graphs=graphs_of(course, [report]))
        if feedback:
            write_feedback_for(submission, [report], course, data)
        if graph is not None:
            write_graph(graph, report, course, data)
        sys.exit(EXIT_PASSED if report.passed else EXIT_FAILED)

    return click.Command(exercise_id, callback=command, params=exercise_options(exercise),
                         help=f"{exercise.title}.\n\nGrade SUBMISSION (default: the exercise's stub).")


def limits_asked(exercise: Exercise, time_limit: float | None, memory_limit: int | None, *,
                 full: bool) -> Limits | None:
    """--time-limit and --memory-limit over the exercise's own limits (a real training run's for --full);
    None when neither is given."""
    if not (time_limit or memory_limit):
        return None
    base = exercise.limits if not full else Limits(
        exercise.training.full_time_s if exercise.training else exercise.limits.time_s, exercise.limits.memory_mb)
    return Limits(time_limit or base.time_s, memory_limit or base.memory_mb)


def exercise_options(exercise: Exercise) -> list[click.Parameter]:
    """The arguments and options of `ninja-grade <exercise>`: a training exercise's too."""
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
        click.Option(["--replay"], type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="Grade on the cases and random probes a JSON report was graded on (an appeal, a bug "
                          "report), instead of fresh ones: the same report again."),
        click.Option(["--graph"], type=click.Path(path_type=Path), default=None,
                     help="Also draw the forward graph into this file (.svg, or .png): every tensor "
                          "coloured by its gradient's verdict, the first wrong one marked."),
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
                         help=f"Where to save the loss curve (default: ./{exercise.id}-loss.png)."),
        ]
    return params


def replayed(course: Course, exercise: Exercise, path: Path) -> Any:
    """--replay: the draw a JSON report names, or one line saying why it cannot be read."""
    import json

    from grader.courseware.draw import replay

    try:
        return replay(json.loads(path.read_text(encoding="utf-8")), course, exercise)
    except OSError as exc:
        fail_setup(f"cannot read the report to replay {path}: {exc.strerror}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        fail_setup(f"{path} is not a JSON report (ninja-grade ... --format json writes one)")
    except CourseError as exc:
        fail_setup(f"{path}: {exc}")


class FormatChoice(click.Choice):  # type: ignore[type-arg]
    """The formats; a retired one is said in one line (exit 2), not listed."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in RETIRED_FORMATS:
            fail_setup(RETIRED_FORMATS[value])
        return super().convert(value, param, ctx)


def report_options() -> list[click.Parameter]:
    """--format, --output, --summary and --github, shared by every command that grades."""
    return [
        click.Option(["--format", "fmt"], type=FormatChoice(FORMATS), default="text", show_default=True,
                     help="text for people; json for tools (one object on stdout); junit and markdown (a "
                          "$GITHUB_STEP_SUMMARY table) for CI; gradescope, classroom50 and prairielearn for "
                          "those platforms (their results file; Classroom 50's runner sets the submission's names)."),
        click.Option(["--output", "-o"], type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="Write the report to this file (atomically) and the text report to stdout. For a "
                          "platform's format it is written even when the submission cannot be read (exit 2)."),
        click.Option(["--summary"], type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="Also write the Markdown table to this file ($GITHUB_STEP_SUMMARY, or Classroom 50's "
                          "release-body.md)."),
        click.Option(["--github"], is_flag=True,
                     help="Also print GitHub Actions annotations (::error) for each failing gradient."),
    ]


def check_platform(fmt: str, exercises: Iterable[Exercise]) -> None:
    """What would make a platform's results unusable, said before anything is graded."""
    if fmt == "classroom50":
        from grader.reporting.platforms import classroom50_problem

        problem = classroom50_problem(exercises, os.environ)
        if problem:
            fail_setup(problem)


def write_or_exit(path: Path, text: str) -> None:
    try:
        write_atomic(path, text)
    except OSError as exc:
        fail_setup(f"cannot write {path}: {exc.strerror}")


def emit(reports: list[Any], *, fmt: str, output: Path | None, github: bool, seconds: float, path: str,
         summary: Path | None = None, graphs: dict[str, Any] | None = None) -> None:
    """Render the reports where they were asked for; `graphs` (by exercise) let the text say where to start."""
    if output is not None:
        write_or_exit(output, render(fmt, reports, seconds=seconds, environ=os.environ))
        click.echo(render("text", reports, graphs=graphs))
    else:
        click.echo(render(fmt, reports, seconds=seconds, environ=os.environ, graphs=graphs),
                   color=None if fmt == "text" else False)
    if summary is not None:
        write_or_exit(summary, render("markdown", reports))
    if fmt == "text" and len(reports) > 1 and output is None:
        passed = sum(r.passed for r in reports)
        click.echo(click.style(f"\n{passed}/{len(reports)} exercises passed", bold=True))
    if github:
        annotations = render_annotations(reports, path)
        if annotations:
            click.echo(annotations, color=False)


def keep_unreadable(reason: str, exercises: Iterable[Exercise], submission: Path, *, fmt: str,
                    output: Path | None, summary: Path | None) -> None:
    """A submission that cannot be read still leaves a platform a result to show (every gradient
    `error`, the reason said; PrairieLearn: not gradable) in --output and --summary. The exit stays 2."""
    from grader.pipeline import display_path
    from grader.reporting.platforms import unreadable_reports

    reports = unreadable_reports(exercises, display_path(submission), reason)
    if output is not None and fmt in PLATFORM_FORMATS:
        write_or_exit(output, render(fmt, reports, environ=os.environ, unreadable=reason))
    if summary is not None:
        write_or_exit(summary, render("markdown", reports))




def graphs_of(course: Course, reports: list[Any]) -> dict[str, Any]:
    """Each graded exercise's graph, by exercise (its forward file is loaded already)."""
    from grader.courseware.forward import forward_of

    return {r.exercise: forward_of(course.exercise(r.exercise))[1] for r in reports}


def check_graph_path(graph: Path | None, training: dict[str, Any]) -> None:
    """--graph: a picture of a grading, as .svg or .png; said before anything is graded."""
    if graph is None:
        return
    from grader.reporting.graph_picture import SUFFIXES

    if training.get("full") or training.get("steps"):
        fail_setup("--graph draws a grading's verdicts; it does not go with --full or --steps")
    if graph.is_dir():
        fail_setup(f"--graph {graph} is a folder; give a file name ending in .svg or .png")
    if graph.suffix.lower() not in SUFFIXES:
        fail_setup(f"--graph {graph}: the picture is written as .svg or .png (by the file's suffix), "
                   f"not {graph.suffix or 'a name without one'}")


def write_graph(path: Path, report: Any, course: Course, data: Path | None) -> None:
    """--graph: the forward graph with the report's verdicts, written whole or not at all."""
    from grader.courseware.cases import graph_with_shapes
    from grader.courseware.forward import dataset_of
    from grader.reporting.graph_picture import SUFFIXES, graph_picture

    graph, shapes = graph_with_shapes(course.exercise(report.exercise), dataset_of(course, data), course.cases)
    try:
        write_atomic(path, graph_picture(report, graph, shapes, SUFFIXES[path.suffix.lower()]))
    except OSError as exc:
        fail_setup(f"cannot write {path}: {exc.strerror}")
    click.echo(f"graph: {path}", err=True)


def write_feedback_for(submission: Path | None, reports: list[Any], course: Course, data: Path | None) -> None:
    """--feedback: the notebook as HTML with the report on top (each exercise's graph first), beside it."""
    from grader.courseware.cases import graph_with_shapes
    from grader.courseware.forward import dataset_of
    from grader.reporting.feedback import write_feedback
    from grader.reporting.report import render_html

    if submission is None or submission.suffix != ".ipynb":
        click.echo("ninja-grade: --feedback is for notebooks; no feedback file written", err=True)
        return
    out = submission.with_name(f"{submission.stem}.feedback.html")
    dataset = dataset_of(course, data)
    pages = [render_html(r, *graph_with_shapes(course.exercise(r.exercise), dataset, course.cases)) for r in reports]
    try:
        write_feedback(submission, "".join(pages), out)
    except OSError as exc:
        click.echo(f"ninja-grade: cannot write {out}: {exc.strerror}", err=True)
        return
    click.echo(f"feedback: {out}", err=True)


def watch_command(course: Course, exercise: Exercise, submission: Path | None, data: Path | None,
                  limits: Limits | None, *, graph_path: Path | None = None) -> NoReturn:
    """--watch: the data set and torch loaded once, then one grading per save of the file."""
    from grader.cli.watch import watch
    from grader.confined.sandbox import SandboxError
    from grader.courseware.cases import graph_with_shapes
    from grader.courseware.data import DataError
    from grader.courseware.forward import dataset_of
    from grader.intake.submission import SubmissionError
    from grader.pipeline import display_path, grade_program, load_submission
    from grader.reporting.graph_picture import SUFFIXES, graph_picture
    from grader.reporting.report import render_text

    path = submission or exercise.stub
    try:
        dataset = dataset_of(course, data)
    except DataError as exc:
        fail_setup(str(exc))

    graph, shapes = graph_with_shapes(exercise, dataset, course.cases)

    def grade_once() -> Any:
        program = load_submission(course, exercise, path)
        report = grade_program(course, exercise, program, dataset, submission_label=display_path(path), limits=limits)
        if graph_path is not None:  # the picture follows each save too
            try:
                write_atomic(graph_path, graph_picture(report, graph, shapes, SUFFIXES[graph_path.suffix.lower()]))
            except OSError as exc:
                click.echo(f"ninja-grade: cannot write {graph_path}: {exc.strerror}", err=True)
        return report

    sys.exit(watch(path, grade_once, functools.partial(render_text, graph=graph), (SubmissionError, SandboxError)))


def full_command(course: Course, exercise_id: str, submission: Path | None, data: Path | None, *, fmt: str,
                 limits: Limits | None, full: bool, steps: int | None, plot: Path | None) -> NoReturn:
    """Exercise 4's real training run, with a progress bar; the exit code says how it ended."""
    from grader.pipeline import train_full
    from grader.reporting.loss_plot import save_loss_plot
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
                 output: Path | None, summary: Path | None, github: bool, exercise: tuple[str, ...]) -> None:
    """Grade every exercise found in one notebook (or script, or folder); exit 0 only if all pass."""
    course = course_or_exit(ctx)
    try:
        exercises = [course.exercise(e) for e in exercise or course.exercise_ids]
    except CourseError as exc:
        fail_setup(str(exc))
    check_platform(fmt, exercises)
    from grader.confined.zygote import start_early

    start_early()  # the sandbox's zygote imports torch while this process does
    from grader.confined.sandbox import SandboxError
    from grader.courseware.data import DataError
    from grader.intake.submission import SubmissionError
    from grader.pipeline import grade, grade_nothing, submission_for

    started = time.monotonic()
    try:
        reports = []
        for one in exercises:
            path = submission_for(one, submission)
            # One file for every exercise: read it by sections, as a notebook is.
            reports.append(grade(course, one.id, path, data, sections=path == submission)
                           if path is not None else grade_nothing(course, one.id, submission, data))
    except SubmissionError as exc:
        keep_unreadable(str(exc), exercises, submission, fmt=fmt, output=output, summary=summary)
        fail_setup(str(exc))
    except (CourseError, DataError, SandboxError) as exc:
        fail_setup(str(exc))
    emit(reports, fmt=fmt, output=output, github=github, seconds=time.monotonic() - started, path=str(submission),
         summary=summary, graphs=graphs_of(course, reports))
    if feedback:
        write_feedback_for(submission, reports, course, data)
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
