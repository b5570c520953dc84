"""A plain GitHub Actions workflow, with GitHub Classroom retired: init-github-actions writes it for any
course (examples/layernorm), a step of it run as GitHub runs it gives the summary table, the annotations
and a JUnit report from one grading, and the retired Classroom command and format say, in one line,
what to use instead."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, Cli, posix_grader, run_cli

LAYERNORM = ROOT / "examples" / "layernorm"
WRONG_SIGN = ("dh = dlogits @ W2.T", "dh = -dlogits @ W2.T")  # one edit to the solution


def write_workflow(repo: Path) -> dict:  # type: ignore[type-arg]
    result = run_cli(["--course", str(LAYERNORM / "course.yaml"), "init-github-actions", str(repo)])
    assert result.exit_code == 0, result.output
    loaded: dict = yaml.safe_load((repo / ".github" / "workflows" / "ninja-grade.yml").read_text())  # type: ignore[type-arg]
    return loaded


def test_init_github_actions_writes_a_workflow_that_points_at_no_classroom(tmp_path: Path) -> None:
    """On every push: install CPU torch and the wheel the repository carries, one step per exercise
    writing JUnit, the summary and annotations, the reports kept as an artifact; the course in
    .github/ninja/ without its solutions; nothing of GitHub Classroom anywhere."""
    workflow = write_workflow(tmp_path)
    text = (tmp_path / ".github" / "workflows" / "ninja-grade.yml").read_text()
    assert "classroom" not in text.lower()
    assert workflow[True] == ["push", "workflow_dispatch"]  # YAML reads the key `on` as true
    steps = workflow["jobs"]["grade"]["steps"]
    install = next(s for s in steps if s.get("id") == "install")
    assert "download.pytorch.org/whl/cpu" in install["run"] and ".github/ninja/wheels/backprop_ninja-" in install["run"]
    graders = [s for s in steps if s.get("name") in ("exercise1", "exercise2")]
    assert [s["name"] for s in graders] == ["exercise1", "exercise2"]
    for step in graders:
        name = step["name"]
        assert f"--format junit --output \"ninja-reports/{name}.xml\"" in step["run"]
        assert '--summary "$GITHUB_STEP_SUMMARY"' in step["run"] and "--github" in step["run"]
        assert "steps.install.outcome == 'success'" in step["if"]
    assert steps[-1]["uses"] == "actions/upload-artifact@v4" and steps[-1]["with"]["path"] == "ninja-reports/"
    carried = sorted(p.relative_to(tmp_path / ".github" / "ninja").as_posix()
                     for p in (tmp_path / ".github" / "ninja").rglob("*") if p.is_file())
    assert carried[:5] == ["course/course.yaml", "course/exercises/exercise1.py", "course/exercises/exercise2.py",
                           "course/forward.py", "data/names.txt"] and len(carried) == 6
    assert not any("solution" in name for name in carried)


@posix_grader
@pytest.mark.slow
def test_github_actions_step_runs_as_github_would(tmp_path: Path) -> None:
    """The exercise-1 step, run by bash -e in a student's repository with a wrong sign in dh: it fails
    (a red step), its summary table says why, an annotation marks the line, and its JUnit report has
    the one failure, all from one grading."""
    repo = tmp_path / "student"
    workflow = write_workflow(repo)
    (repo / "exercises").mkdir()
    source = (LAYERNORM / "solutions" / "exercise1.py").read_text().replace(*WRONG_SIGN)
    (repo / "exercises" / "exercise1.py").write_text(source)
    step = next(s for s in workflow["jobs"]["grade"]["steps"] if s.get("name") == "exercise1")
    summary = tmp_path / "step_summary.md"
    env = {**{k: v for k, v in os.environ.items() if k != "NINJA_DATA"}, **workflow["env"],
           "GITHUB_STEP_SUMMARY": str(summary), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 1, done.stderr
    assert "| `dh` | wrong (sign) |" in summary.read_text()
    line = 1 + source.splitlines().index(WRONG_SIGN[1] + "  # (32, 64)")
    assert f"::error file=exercises/exercise1.py,line={line},title=exercise1 dh%3A wrong (sign)::" in done.stdout
    suite = ET.parse(repo / "ninja-reports" / "exercise1.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "19" and suite.get("failures") == "1"


@pytest.mark.parametrize("args", [["init-classroom"], ["init-classroom", "repo", "--course-repo", "https://x.org/c"]])
def test_init_classroom_names_what_replaces_it(cli: Cli, args: list[str]) -> None:
    """The retired command, however it is called: one line on stderr saying GitHub Classroom is gone
    and naming the two commands that replace it, exit 2, nothing written."""
    result = cli(args)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "GitHub Classroom was discontinued on 2026-08-28" in line
    assert "ninja-grade init-classroom50" in line and "ninja-grade init-github-actions" in line


def test_format_classroom_is_retired_in_one_line(cli: Cli) -> None:
    """--format classroom says in one line that its reporter is gone and what to use, exit 2."""
    result = cli(["exercise2", str(ROOT / "solutions" / "exercise2.py"), "--format", "classroom"])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "discontinued on 2026-08-28" in line and "--format classroom50" in line


def test_help_lists_the_platform_commands_and_not_the_retired_one(cli: Cli) -> None:
    """`ninja-grade --help` shows init-github-actions, init-classroom50, prairielearn and gradescope-bundle,
    and no init-classroom; --format's choices have no classroom."""
    listed = cli(["--help"]).stdout
    assert all(f"  {name} " in listed for name in ("init-github-actions", "init-classroom50", "prairielearn",
                                                    "gradescope-bundle"))
    assert "init-classroom " not in listed
    formats = cli(["exercise2", "--help"]).stdout
    assert "classroom50" in formats and "|classroom|" not in formats and "|classroom]" not in formats
