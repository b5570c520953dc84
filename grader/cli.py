"""`ninja-grade`: parse, call the library, render, pick the exit code. Nothing else.

Torch is imported only when something is graded, so `--help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from grader.course import Course, CourseError, Limits, load_course

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


def grade_command(exercise_id: str, title: str) -> click.Command:
    """`ninja-grade <exercise> [SUBMISSION]`, one per exercise of course.yaml."""

    @click.command(name=exercise_id, help=f"{title}.\n\nGrade SUBMISSION (default: the exercise's stub).")
    @click.argument("submission", required=False, type=click.Path(path_type=Path))
    @click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
                  help="text for people; json for tools (one object on stdout).")
    @click.option("--data", type=click.Path(path_type=Path), default=None,
                  help="names.txt to use (default: $NINJA_DATA, ./names.txt, the cache, a download).")
    @click.option("--time-limit", type=click.FloatRange(min=0.1), default=None,
                  help="Seconds the submission's code may run, all runs together (default: course.yaml).")
    @click.option("--memory-limit", type=click.IntRange(min=64), default=None,
                  help="MB the submission's code may allocate (default: course.yaml).")
    @click.pass_context
    def command(ctx: click.Context, *, submission: Path | None, fmt: str, data: Path | None,
                time_limit: float | None, memory_limit: int | None) -> None:
        course = course_or_exit(ctx)
        from grader.data import DataError
        from grader.grade import grade
        from grader.report import RENDERERS
        from grader.sandbox import SandboxError
        from grader.submission import SubmissionError

        limits = course.exercise(exercise_id).limits
        limits = Limits(time_limit or limits.time_s, memory_limit or limits.memory_mb)
        try:
            report = grade(course, exercise_id, submission, data, limits)
        except (CourseError, SubmissionError, DataError, SandboxError) as exc:
            fail_setup(str(exc))
        click.echo(RENDERERS[fmt](report), color=None if fmt == "text" else False)
        sys.exit(EXIT_PASSED if report.passed else EXIT_FAILED)

    return command


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
        titles = {e.id: e.title for e in course_or_exit(ctx).exercises}
        if cmd_name in titles:
            return grade_command(cmd_name, titles[cmd_name])
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


main.add_command(hint_command)


def run(argv: list[str] | None = None) -> Any:
    return main.main(args=argv, prog_name="ninja-grade")
