"""The package layout shows the data flow: one subpackage per stage, each saying its job in a
line, and imports that flow one way (docs/DESIGN.md, "Data flow")."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import grader
from grader.cli import run
from grader.inline import check, setup
from tests.conftest import ROOT

STAGES = ["courseware", "intake", "confined", "judging", "pipeline", "reporting", "ci", "cli"]  # in the data's order
SHARED = {"grader.files"}  # used by every stage
TOP = {"grader", "grader.inline", "grader.api"}  # the notebook's API and the library's, above every stage


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def grader_imports(path: Path) -> set[str]:
    """Every grader module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("grader"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if (ROOT / node.module.replace(".", "/") / f"{alias.name}.py").exists())
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("grader"))
    return found


def test_every_stage_is_a_package_that_says_its_job() -> None:
    for stage in STAGES:
        package = importlib.import_module(f"grader.{stage}")
        assert package.__doc__ and package.__doc__.strip().splitlines()[0].endswith("."), stage  # its job, a line
    loose = sorted(p.name for p in (ROOT / "grader").glob("*.py"))
    assert loose == ["__init__.py", "api.py", "files.py", "inline.py", "pipeline.py"]


def test_imports_flow_one_way() -> None:
    """A stage imports only the stages before it in the data's order (and files.py); nothing below
    the notebook API imports it."""
    wrong = []
    for path in sorted((ROOT / "grader").rglob("*.py")):
        here = module_name(path)
        mine = stage_of(here)
        for imported in grader_imports(path):
            theirs = stage_of(imported)
            if imported in SHARED or here in TOP or imported == "grader":
                continue
            if imported in TOP or theirs is None or (mine is not None and theirs > mine):
                wrong.append(f"{here} imports {imported}")
    assert wrong == []


def test_layout_public_names_are_importable() -> None:
    """The notebook's `from grader import setup, check`, and the entry point `grader.cli:run`."""
    assert grader.setup.__doc__ and "grader.inline.setup" in grader.setup.__doc__ and callable(setup)
    assert grader.check.__doc__ and "grader.inline.check" in grader.check.__doc__ and callable(check)
    assert callable(run)


def test_no_test_module_imports_from_another() -> None:
    """A test module takes what it shares from tests/conftest.py, tests/helpers.py, tests/classroom.py or
    tests/forked.py, never from another test module."""
    wrong = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] if node.module != "tests" else [f"tests.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            wrong += [f"{path.name} imports {name}" for name in names if name.startswith("tests.test_")]
    assert wrong == []
