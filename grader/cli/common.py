"""What every ninja-grade command shares: the course it works on, and how it fails."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, NoReturn

import click

from grader.courseware.course import Course, CourseError, load_course

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_GRADER_FAULT = 3  # batch: the grader failed on some submissions; they got no report, a rerun grades them


def fail_setup(message: str) -> NoReturn:
    """A usage or set-up problem: one line on stderr, exit 2 (docs/DESIGN.md)."""
    click.echo(f"ninja-grade: {message}", err=True)
    sys.exit(EXIT_USAGE)


class OneLineUsageError(click.UsageError):
    """A usage error (a missing argument, an unknown option) said as every set-up error is."""

    def show(self, file: IO[Any] | None = None) -> None:
        where = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"ninja-grade: {' '.join(self.format_message().split())}{where}", file=file, err=file is None)


@contextmanager
def usage_in_one_line() -> Iterator[None]:
    """Click's usage errors (Usage, Try, a blank line, Error) become one line on stderr, exit 2."""
    try:
        yield
    except (OneLineUsageError, click.exceptions.NoArgsIsHelpError):  # the second shows the help, as it should
        raise
    except click.UsageError as exc:
        raise OneLineUsageError(exc.format_message(), exc.ctx) from None


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
