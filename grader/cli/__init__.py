"""`ninja-grade`: parse, call the library, render, pick the exit code. Nothing else.

Torch is imported only when something is graded, so `--help` stays instant; and the process ends
without taking the interpreter apart module by module, which takes about 0.3 s once torch is
loaded (`run`).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from grader import __version__
from grader.cli.class_report import class_report_command
from grader.cli.common import course_of, course_or_exit, usage_in_one_line
from grader.cli.grade import all_command, grade_command
from grader.cli.merge import merge_command
from grader.cli.platforms import (
    gradescope_bundle_command,
    init_classroom50_command,
    init_classroom_command,
    init_github_actions_command,
    prairielearn_command,
)
from grader.cli.tools import batch_command, check_course_command, hint_command, notebook_command
from grader.courseware.course import CourseError


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

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        with usage_in_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with usage_in_one_line():  # a command's own arguments are parsed here
            return super().invoke(ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        exercises = self._exercises(ctx)
        if exercises:
            with formatter.section("Exercises"):
                formatter.write_dl(list(exercises.items()))
        rows = [(name, cmd.get_short_help_str()) for name, cmd in self.commands.items() if not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=NinjaCLI, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--course", type=click.Path(path_type=Path), default=None, envvar="NINJA_COURSE",
              help="course.yaml to use (default: the one shipped with the grader).")
@click.option("--sandbox", type=click.Choice(["auto", "unix", "portable"]), default=None, envvar="NINJA_SANDBOX",
              help="Where graded code runs: 'unix' forks a confined child (Linux, macOS), 'portable' starts a fresh "
                   "Python (any system, Windows too), 'auto' (the default) picks unix wherever it works.")
@click.version_option(version=__version__, prog_name="ninja-grade")
def main(course: Path | None, sandbox: str | None) -> None:
    """Grade your hand-written backprop against PyTorch autograd.

    \b
    Example:
      ninja-grade exercise1                     # grade exercises/exercise1.py
      ninja-grade exercise1 my_copy.py --format json
    """
    if sandbox:
        os.environ["NINJA_SANDBOX"] = sandbox  # read where a sandbox is opened, batch workers included


for command in (hint_command, notebook_command, all_command, batch_command, merge_command, class_report_command,
                check_course_command, init_github_actions_command, init_classroom50_command, prairielearn_command,
                gradescope_bundle_command, init_classroom_command):
    main.add_command(command)


def run(argv: list[str] | None = None) -> NoReturn:
    """ninja-grade itself. Once the command is done, what an exit must do is done (the atexit
    handlers, which end the sandbox's zygote; the output flushed) and the process ends there: the
    interpreter's own teardown of every module and object frees nothing the system would not."""
    escape_what_cannot_be_encoded()
    try:
        main.main(args=argv, prog_name="ninja-grade")
        code: object = 0
    except SystemExit as done:
        code = done.code
    except OSError as exc:  # its output could not be written: a full disk, a reader that has gone
        if exc.errno not in (errno.ENOSPC, errno.EIO, errno.EPIPE, errno.EDQUOT):
            raise
        if exc.errno != errno.EPIPE:
            with contextlib.suppress(OSError):
                print(f"ninja-grade: cannot write its output ({exc.strerror})", file=sys.stderr)
        code = LOST_OUTPUT
    if code is not None and not isinstance(code, int):  # sys.exit("why"): said, and the exit status is 1
        print(code, file=sys.stderr)
        code = 1
    end_now(code or 0)


def escape_what_cannot_be_encoded() -> None:
    """stdout and stderr write a character their encoding cannot (a lone surrogate, in UTF-8) escaped,
    where they would raise UnicodeEncodeError halfway through a report."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]


LOST_OUTPUT = 120  # the exit status Python itself gives when its output cannot be written at the end


def end_now(code: int) -> NoReturn:
    """End this process with `code`, after its atexit handlers and with its output flushed (no thread of
    the grader's outlives its command: the portable sandbox's are daemons). Output that cannot be written
    makes it 120, as Python's own exit would; a reader that has gone (`| head`) loses nothing it wanted."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            pass
        except (OSError, ValueError):  # a full disk, a closed file
            code = code or LOST_OUTPUT
    os._exit(code)
