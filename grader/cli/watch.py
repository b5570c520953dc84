"""`--watch`: grade, then grade again each time the file is saved, in the same process.

torch is imported and the data set read once; each save costs one grading. What changed since
the last grading is said on top (newly passing gradients in green, newly failing in red). A
file caught mid-save (half-written, not yet UTF-8 or JSON) is reported in one line and the
watch waits for the next save; Ctrl-C ends it with the last verdict's exit code. Polling the
file's (mtime, size) needs no extra dependency.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import click

from grader.judging.results import Report

POLL_S = 0.03  # how often the file is looked at
Stamp = tuple[int, int] | None  # (mtime in ns, size), or None while the file is missing


def stamp(path: Path) -> Stamp:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def next_save(path: Path, seen: Stamp, *, poll: float = POLL_S) -> Stamp:
    """Wait until the file differs from `seen` and has stopped changing (an editor's write done)."""
    while True:
        time.sleep(poll)
        now = stamp(path)
        if now != seen and now is not None:
            time.sleep(poll)
            if stamp(path) == now:
                return now


def changes(before: Report | None, after: Report) -> str:
    """`since the last save: now passing dW2, db2; now failing dC`, coloured; empty the first time."""
    if before is None:
        return ""
    was = {g.name: g.passed for g in before.gradients}
    fixed = [g.name for g in after.gradients if g.passed and not was.get(g.name, False)]
    broke = [g.name for g in after.gradients if not g.passed and was.get(g.name, False)]
    parts = ([click.style(f"now passing {', '.join(fixed)}", fg="green", bold=True)] if fixed else []) + (
        [click.style(f"now failing {', '.join(broke)}", fg="red", bold=True)] if broke else [])
    return "since the last save: " + ("; ".join(parts) if parts else "no verdict changed")


def watch(path: Path, grade_once: Callable[[], Report], render: Callable[[Report], str],
          problem_types: tuple[type[Exception], ...]) -> int:
    """Grade `path` now and after every save until Ctrl-C; the last verdict's exit code."""
    last: Report | None = None
    code = 1
    seen = stamp(path)
    while True:
        try:
            try:
                report = grade_once()
            except problem_types as exc:  # caught mid-save, or unreadable: say so, wait for the next save
                click.echo(click.style(f"{path}: {exc} (waiting for the next save)", fg="yellow"))
            else:
                if os.isatty(1):
                    click.clear()
                said = changes(last, report)
                click.echo("\n".join(filter(None, [said, render(report)])))
                last, code = report, 0 if report.passed else 1
            click.echo(f"watching {path}: each save is graded again (Ctrl-C to stop)")
            seen = next_save(path, seen)
        except KeyboardInterrupt:
            return code
