"""What the tests share beyond fixtures: how a set-up error must look, and the proof that a
protection's check can fail.

A test of a protection (escaping, atomic writes, the data's lookup order...) runs its own check
twice: once as the code is, where it must pass, and once with the mechanism switched off, where it
must fail. A check that still passes with its mechanism gone proves nothing, and `check_fails_without`
says so.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import Result

Check = Callable[[], object]
SwitchOff = Callable[[pytest.MonkeyPatch], object]


def assert_setup_error(result: Result, *words: str) -> str:
    """`result` (of CliRunner) is a set-up error as docs/DESIGN.md has it: exit 2, nothing on stdout,
    and on stderr one line that starts "ninja-grade: " and holds each of `words`. Returns that line."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == "", f"a set-up error printed on stdout: {result.stdout!r}"
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), f"not one line: {result.stderr!r}"
    line = result.stderr.rstrip("\n")
    assert line.startswith("ninja-grade: "), line
    for word in words:
        assert word in line, (word, line)
    return line


def check_fails_without(monkeypatch: pytest.MonkeyPatch, check: Check, switch_off: SwitchOff, mechanism: str) -> None:
    """Run `check` with `switch_off` applied (it monkeypatches the mechanism away): the check must
    fail there. The patches are undone before this returns, whatever happens."""
    with monkeypatch.context() as patched:
        switch_off(patched)
        try:
            check()
        except AssertionError:
            return
    pytest.fail(f"the check still passes with {mechanism} switched off: it cannot catch that mechanism breaking")


def no_escape(text: str, quote: bool = True) -> str:
    """html.escape switched off: the text as it came."""
    return text

