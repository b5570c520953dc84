"""The CLI reference page (docs/cli.md), rendered from the click group itself.

    python -m grader.cli.reference docs/cli.md      (what `make docs` runs; no PATH: to stdout)

Every command's `--help`, as `ninja-grade` prints it for the shipped course, at a fixed width, so
the page is the same on every machine and a test can regenerate it and compare.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from grader.cli import main
from grader.courseware.course import COURSE_FILE, SHIPPED_WITH
from grader.files import write_atomic

WIDTH = 88  # the help's line width on the page, whatever the terminal


def _help(command: click.Command, name: str, parent: click.Context | None) -> tuple[click.Context, str]:
    ctx = click.Context(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH,
                        **command.context_settings)
    if parent is None:
        ctx.params = {"course": SHIPPED_WITH / COURSE_FILE}  # the shipped course, not $NINJA_COURSE's
    return ctx, command.get_help(ctx)


def _section(title: str, text: str) -> list[str]:
    return [f"## `{title}`", "", "```text", text.rstrip(), "```", ""]


def render() -> str:
    """The page: the group's help, then each exercise's grading command, then every other command."""
    root, group_help = _help(main, "ninja-grade", None)
    lines = [
        "# Command reference",
        "",
        "Every command's `--help`, generated from the CLI itself (`python -m grader.cli.reference`,",
        "run by `make docs`); a test renders it again and compares, so it says what the code does.",
        "The exercise commands are the shipped course's; another course (`--course`) has its own.",
        "",
        *_section("ninja-grade", group_help),
    ]
    seen: dict[tuple[object, ...], str] = {}  # the options of a command already on the page: its name
    for name in main.list_commands(root):
        command = main.get_command(root, name)
        if command is None or command.hidden:
            continue
        ctx, text = _help(command, name, root)
        same = tuple(param.get_help_record(ctx) or param.name for param in command.get_params(ctx))
        if same in seen:  # exercise2 and exercise3 take exactly exercise1's arguments and options
            lines += [f"## `ninja-grade {name}`", "", f"{command.get_short_help_str(limit=200)} It takes the same"
                      f" arguments and options as [`ninja-grade {seen[same]}`](#ninja-grade-{seen[same]}).", ""]
            continue
        seen[same] = name
        lines += _section(f"ninja-grade {name}", text)
    return "\n".join(lines)


USAGE = "usage: python -m grader.cli.reference [FILE]  (the command reference, written to FILE or printed)"

if __name__ == "__main__":
    args = sys.argv[1:]
    if args in (["-h"], ["--help"]):
        click.echo(USAGE)
    elif len(args) > 1 or (args and args[0].startswith("-")):
        click.echo(USAGE, err=True)
        sys.exit(2)
    elif args:
        write_atomic(Path(args[0]), render().encode("utf-8"))
    else:
        click.echo(render(), nl=False)
