"""What the tests share beyond fixtures: how a set-up error must look, and the proof that a
protection's check can fail.

A test of a protection (escaping, atomic writes, the data's lookup order...) runs its own check
twice: once as the code is, where it must pass, and once with the mechanism switched off, where it
must fail. A check that still passes with its mechanism gone proves nothing, and `check_fails_without`
says so.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

ROOT = Path(__file__).resolve().parent.parent

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


def copy_course(into: Path, course: Path = ROOT) -> Path:
    """The course in the folder `course` (the lecture's, or examples/layernorm) as files of its own in `into`,
    to change: its course.yaml, its forward file, its stubs and its solutions. Returns `into`."""
    forward = yaml.safe_load((course / "course.yaml").read_text())["forward"]
    into.mkdir(parents=True, exist_ok=True)
    for part in ("course.yaml", forward, "exercises", "solutions"):
        if (course / part).is_dir():
            shutil.copytree(course / part, into / part)
        else:
            shutil.copy(course / part, into / part)
    return into


def gradebook_rows(path: Path) -> list[dict[str, str]]:
    """A batch's CSV gradebook (OUT/gradebook.csv, or the file --gradebook names): its rows in order, each
    by column name. A roster's entry with no submission is a row whose student is empty."""
    with path.open() as f:
        return list(csv.DictReader(f))


def read_gradebook(path: Path) -> dict[str, dict[str, str]]:
    """A batch's CSV gradebook as student -> their row."""
    return {row["student"]: row for row in gradebook_rows(path)}


def no_escape(text: str, quote: bool = True) -> str:
    """html.escape switched off: the text as it came."""
    return text



DESIGN = ROOT / "docs" / "DESIGN.md"


def design_json_examples() -> list[Any]:
    """The JSON examples of docs/DESIGN.md's "The JSON report" contract, in order: a report, then a
    training exercise's `training`."""
    section = DESIGN.read_text(encoding="utf-8").split("## The JSON report (**contract**)")[1].split("\n## ")[0]
    return [json.loads(block.split("```")[0]) for block in section.split("```json\n")[1:]]


def _kind(value: object) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}[type(value)]


def assert_shaped_as(documented: object, actual: object, where: str = "report") -> None:
    """`actual` (a report as the CLI wrote it) has exactly the documented fields at every level, and
    the documented field's JSON type wherever the documented value is not null; each item of a list
    is shaped as the documented list's first item."""
    if documented is not None:
        assert _kind(actual) == _kind(documented), f"{where} is {_kind(actual)}, documented as {_kind(documented)}"
    if isinstance(documented, dict) and isinstance(actual, dict):
        assert set(actual) == set(documented), (
            f"{where}: written but not documented {sorted(set(actual) - set(documented))}, "
            f"documented but not written {sorted(set(documented) - set(actual))}")
        for key, value in documented.items():
            assert_shaped_as(value, actual[key], f"{where}.{key}")
    elif isinstance(documented, list) and documented and isinstance(actual, list):
        for i, item in enumerate(actual):
            assert_shaped_as(documented[0], item, f"{where}[{i}]")
