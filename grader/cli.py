"""`ninja-grade`: parse, call the library, render, pick the exit code. Nothing else.

Torch is imported only when something is graded, so `--help` stays instant.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import click

from grader.course import Course, CourseError, Exercise, Limits, load_course
from grader.formats import FORMATS

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def fail_setup(message: str) -> NoReturn:
    """A usage or set-up problem: one line on stderr, exit 2 (DESIGN.md)."""
    click.echo(f"ninja-grade: {message}", err=True)
    sys.exit(EXIT_USAGE)


def course_of(ctx: click.Context) -> Course:
    """The course named by --course (or the default), read once per invocation."""
    root = ctx.find_root()
    if "ninja.course" not in root.meta:
        root.meta["ninja.course"] = load_course(root.params.get("course"))
    course: Course = root.meta["ninja.course"]
    return course


def course_or_exit(ctx: click.Context) -> Course:
    try:
        return course_of(ctx)
    except CourseError as exc:
        fail_setup(str(exc))


def grade_command(exercise: Exercise) -> click.Command:
    """`ninja-grade <exercise> [SUBMISSION]`, one per exercise of course.yaml."""
    exercise_id = exercise.id

    @click.pass_context
    def command(ctx: click.Context, /, *, submission: Path | None, fmt: str, data: Path | None,
                time_limit: float | None, memory_limit: int | None, feedback: bool, output: Path | None,
                github: bool, **training: Any) -> None:
        course = course_or_exit(ctx)
        from grader.data import DataError
        from grader.grade import grade
        from grader.sandbox import SandboxError
        from grader.submission import SubmissionError

        limits = None
        if time_limit or memory_limit:
            base = exercise.limits if not training.get("full") else Limits(
                exercise.training.full_time_s if exercise.training else exercise.limits.time_s,
                exercise.limits.memory_mb)
            limits = Limits(time_limit or base.time_s, memory_limit or base.memory_mb)
        try:
            if training.get("full") or training.get("steps"):
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
                          "(results.json) and markdown (a $GITHUB_STEP_SUMMARY table) for CI."),
        click.Option(["--output", "-o"], type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="Write the report to this file (atomically) and the text report to stdout."),
        click.Option(["--github"], is_flag=True,
                     help="Also print GitHub Actions annotations (::error) for each failing gradient."),
    ]


def emit(reports: list[Any], *, fmt: str, output: Path | None, github: bool, seconds: float, path: str) -> None:
    """Render the reports where they were asked for."""
    from grader.formats import render, render_annotations, write_atomic

    if output is not None:
        try:
            write_atomic(output, render(fmt, reports, seconds=seconds))
        except OSError as exc:
            fail_setup(f"cannot write {output}: {exc.strerror}")
        click.echo(render("text", reports))
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
    from grader.notebooks import write_feedback
    from grader.report import render_html

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


def full_command(course: Course, exercise_id: str, submission: Path | None, data: Path | None, *, fmt: str,
                 limits: Limits | None, full: bool, steps: int | None, plot: Path | None) -> NoReturn:
    """Exercise 4's real training run, with a progress bar; the exit code says how it ended."""
    from grader.grade import train_full
    from grader.report import render_full
    from grader.training import save_loss_plot

    planned = steps or (course.exercise(exercise_id).training.full_steps  # type: ignore[union-attr]
                        if course.exercise(exercise_id).training else 0)
    started = time.monotonic()
    with click.progressbar(length=planned, label="training", file=sys.stderr, show_eta=True, show_pos=True,
                           item_show_func=lambda item: item) as bar:
        def progress(step: int, loss: float) -> None:
            if step % 50 == 0 or step == planned:
                rate = step / max(time.monotonic() - started, 1e-9)
                bar.current_item = f"loss {loss:.4f} · {rate:,.0f} steps/s"  # type: ignore[attr-defined]
                bar.update(50 if step % 50 == 0 else step % 50)

        run, _ = train_full(course, exercise_id, submission, data, steps=planned, progress=progress, limits=limits)
    plot_path = None
    if run.lossi:
        plot_path = save_loss_plot(run.lossi, str(plot or Path(f"{exercise_id}-loss.png")))
    training = course.exercise(exercise_id).training
    assert training is not None
    click.echo(render_full(run, training, plot_path, fmt=fmt), color=None if fmt == "text" else False)
    interrupted = run.stopped is not None and run.stopped.startswith("interrupted")
    sys.exit(130 if interrupted else EXIT_FAILED if run.stopped else EXIT_PASSED)


class NinjaCLI(click.Group):
    """The fixed commands, plus one grading command per exercise in course.yaml."""

    def _exercises(self, ctx: click.Context) -> dict[str, str]:
        """Exercise ids and titles for help; a broken course.yaml just lists none."""
        try:
            return {e.id: e.title for e in course_of(ctx).exercises}
        except CourseError:
            return {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self._exercises(ctx), *super().list_commands(ctx)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        builtin = super().get_command(ctx, cmd_name)
        if builtin is not None:
            return builtin
        for exercise in course_or_exit(ctx).exercises:
            if exercise.id == cmd_name:
                return grade_command(exercise)
        return None

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if self.get_command(ctx, name) is None and not name.startswith("-"):
            valid = ", ".join(e.id for e in course_or_exit(ctx).exercises)
            raise click.UsageError(f"no exercise or command {name!r}. The exercises are: {valid}.", ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        exercises = self._exercises(ctx)
        if exercises:
            with formatter.section("Exercises"):
                formatter.write_dl(list(exercises.items()))
        rows = [(name, cmd.get_short_help_str()) for name, cmd in self.commands.items()]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


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


@click.group(cls=NinjaCLI, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--course", type=click.Path(path_type=Path), default=None, envvar="NINJA_COURSE",
              help="course.yaml to use (default: the one shipped with the grader).")
@click.version_option(package_name="backprop-ninja")
def main(course: Path | None) -> None:
    """Grade your hand-written backprop against PyTorch autograd.

    \b
    Example:
      ninja-grade exercise1                     # grade exercises/exercise1.py
      ninja-grade exercise1 my_copy.py --format json
    """


@click.command(name="notebook")
@click.argument("which", metavar="[EXERCISE|all]", default="all")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("notebooks"), show_default=True,
              help="Folder to write the notebooks into.")
@click.pass_context
def notebook_command(ctx: click.Context, which: str, out: Path) -> None:
    """Write the exercises as Jupyter/Colab notebooks, with an inline check cell."""
    course = course_or_exit(ctx)
    ids = list(course.exercise_ids) if which == "all" else [which]
    try:
        for exercise_id in ids:
            course.exercise(exercise_id)
        from grader.notebooks import write_notebooks

        written = write_notebooks(course, ids, out)
    except CourseError as exc:
        fail_setup(str(exc))
    except OSError as exc:
        fail_setup(f"cannot write to {out}: {exc.strerror}")
    for path in written:
        click.echo(f"wrote {path}")


@click.pass_context
def all_callback(ctx: click.Context, /, *, submission: Path, fmt: str, data: Path | None, feedback: bool,
                 output: Path | None, github: bool) -> None:
    """Grade every exercise found in one notebook (or script); exit 0 only if all pass."""
    course = course_or_exit(ctx)
    from grader.data import DataError
    from grader.grade import grade
    from grader.sandbox import SandboxError
    from grader.submission import SubmissionError

    started = time.monotonic()
    try:
        reports = [grade(course, exercise_id, submission, data) for exercise_id in course.exercise_ids]
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
], help="Grade every exercise found in one notebook (or script); exit 0 only if all pass.",
    short_help="Grade every exercise in one notebook or script.")


main.add_command(hint_command)
main.add_command(notebook_command)
main.add_command(all_command)


def run(argv: list[str] | None = None) -> Any:
    return main.main(args=argv, prog_name="ninja-grade")
