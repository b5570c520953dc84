"""Nothing Unix-only at import time: on a Python without resource, pwd, fcntl and os.fork (as on
Windows), `import grader` and `ninja-grade --help` work, and grading says in one line what it
needs instead of crashing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

WITHOUT_UNIX = """
import os, sys
for name in ("resource", "pwd", "fcntl"):
    sys.modules[name] = None  # importing them fails, as on Windows
for name in ("fork", "setsid", "killpg"):
    delattr(os, name)
import grader
from grader.cli import run
sys.argv = ["ninja-grade", *sys.argv[1:]]
run()
"""
NEEDS = ("ninja-grade: grading needs a Unix system here (Linux or macOS: the sandbox forks and sets resource "
         "limits); on Windows, grade in WSL or in Colab")


def without_unix(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT_UNIX, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, check=False)


def test_help_works_without_unix_modules() -> None:
    """`import grader` and `ninja-grade --help` need nothing Unix-only."""
    result = without_unix("--help")
    assert result.returncode == 0, result.stderr
    assert "exercise1" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["exercise2", "solutions/exercise2.py"], ["all", "solutions/exercise2.py"],
                                     ["batch", "exercise2", "solutions/exercise2.py", "--out", "OUT"]])
def test_grading_without_unix_says_what_it_needs(tmp_path: Path, command: list[str]) -> None:
    """Grading one file, all exercises or a batch: one line saying what is needed, exit 2, no
    traceback, nothing written."""
    args = [str(tmp_path / "out") if a == "OUT" else str(ROOT / a) if a.endswith(".py") else a for a in command]
    result = without_unix(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [NEEDS]
    assert list(tmp_path.iterdir()) == []
