"""The docs say what the code does: the command reference is the CLI's own help, and the verdict
and diagnosis tables (the README's and the students' guide's) hold every verdict and every label
the grader gives, with the verdicts that pass marked as passing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from grader.cli.reference import render
from grader.judging.diagnose import LABELS
from grader.judging.results import Status
from tests.conftest import ROOT

TABLED = [ROOT / "README.md", ROOT / "docs" / "students.md"]


def table_rows(text: str, header: str) -> dict[str, list[str]]:
    """The rows of the Markdown table whose header line starts `| header |`: first cell (its
    `code`) -> the other cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_docs_cli_reference_is_the_cli_help() -> None:
    """docs/cli.md is what `python -m grader.cli.reference` renders from the click group now: a
    changed option, command or help text fails until the page is regenerated (make docs)."""
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert page == render(), "docs/cli.md is stale: run `python -m grader.cli.reference docs/cli.md`"
    for command in ("exercise1", "exercise4", "all", "batch", "check-course", "class-report", "hint", "notebook",
                    "init-github-actions", "init-classroom50", "prairielearn", "gradescope-bundle"):
        assert f"## `ninja-grade {command}`" in page, command
    assert "--steps" in page and "--replay" in page and "--gradebook-format" in page
    assert "init-classroom`" not in page  # retired, hidden from --help: not on the page either


@pytest.mark.parametrize("doc", TABLED, ids=lambda p: p.name)
def test_docs_verdict_table_holds_every_status(doc: Path) -> None:
    """Every verdict the results model has is a row, and the rows that say it passes are exactly the
    verdicts that pass."""
    rows = table_rows(doc.read_text(encoding="utf-8"), "verdict")
    assert set(rows) == {s.value for s in Status}
    assert {name for name, cells in rows.items() if cells[-1] == "yes"} == {s.value for s in Status if s.passed}
    assert all(cells[-1] in ("yes", "no") for cells in rows.values())


@pytest.mark.parametrize("doc", TABLED, ids=lambda p: p.name)
def test_docs_label_table_holds_every_diagnosis(doc: Path) -> None:
    """Every diagnosis label the grader can give is a row, in the order diagnose.py lists them, and
    no row names a label it cannot give."""
    rows = table_rows(doc.read_text(encoding="utf-8"), "label")
    assert list(rows) == list(LABELS)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub and MkDocs make it, for the headings used here."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def test_docs_readme_links_resolve() -> None:
    """Every relative link and picture in README.md (which the site's --strict build never reads) names
    a file that is there, and every #anchor a heading of that file."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", readme) + re.findall(r'<img src="([^"]+)"', readme)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert len(local) >= 10, local
    for target in local:
        path, _, anchor = target.partition("#")
        assert (ROOT / path).is_file(), f"README links to {path}, which is not there"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(encoding="utf-8"), re.MULTILINE)
            assert anchor in {slug(h) for h in headings}, f"README links to {target}: no such heading"


def test_reference_tool_takes_no_option_for_a_file(tmp_path: Path) -> None:
    """`python -m grader.cli.reference --help` says its usage and writes nothing (no file named `--help`);
    another option is a usage error, exit 2."""
    run = [sys.executable, "-m", "grader.cli.reference"]
    helped = subprocess.run([*run, "--help"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: python -m grader.cli.reference [FILE]")
    wrong = subprocess.run([*run, "-o"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert wrong.returncode == 2 and wrong.stderr.startswith("usage:") and not wrong.stdout
    assert not list(tmp_path.iterdir())
