"""What every ninja-grade command shares: the course it works on, and how it fails."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from grader.courseware.course import Course, CourseError, load_course

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_GRADER_FAULT = 3  # batch: the grader failed on some submissions; they got no report, a rerun grades them


def fail_setup(message: str) -> NoReturn:
    """A usage or set-up problem: one line on stderr, exit 2 (docs/DESIGN.md)."""
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
