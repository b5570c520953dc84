"""Classroom 50, for a course outside the grader's repository (examples/layernorm): init-classroom50
writes autograder.py beside the course and the grader, and autograder.py, run the way Classroom 50's
runner runs it (the student's checkout as the working directory, the runner's environment, the
runner's Python), writes a result.json that passes every check of the classroom50/result/v1
contract, for a right, a wrong and an unreadable submission."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Cli, offline_env, posix_grader
from tests.helpers import copy_course

LAYERNORM = ROOT / "examples" / "layernorm"
REPO = "https://github.com/ninja-org/cs-ninja-layernorm-alice"
RUNNER_ENV = {  # what the runner sets (wiki "Advanced Autograding", runner.py's run_entrypoint)
    "CLASSROOM": "cs-ninja", "ASSIGNMENT": "layernorm", "SUBMISSION_TAG": "submit/2026-09-14T10-00-00Z-abc1234",
    "COMMIT_URL": f"{REPO}/commit/abc1234", "RELEASE_URL": f"{REPO}/releases/tag/submit%2F2026-09-14T10-00-00Z-abc1234",
    "REVIEW_URL": f"{REPO}/compare/0f0f0f0...abc1234", "USERNAME": "alice", "OWNER": "alice",
    "ASSIGNMENT_TYPE": "individual", "PAGES_BASE_URL": "https://ninja-org.github.io/classroom50",
    "GITHUB_REPOSITORY": "ninja-org/cs-ninja-layernorm-alice", "GITHUB_SHA": "abc1234",
    "GITHUB_SERVER_URL": "https://github.com", "GITHUB_ACTOR": "alice",
}
UTC_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
WRONG_SIGN = ("dh = dlogits @ W2.T", "dh = -dlogits @ W2.T")  # one edit to the solution


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def assert_classroom50_result(result: dict[str, Any]) -> None:
    """Every rule the runner's and the collector's validate_result hold a result.json to (owner,
    assignment_type and submitted_by are stamped by the runner, not written here)."""
    assert result["schema"] == "classroom50/result/v1"
    assert result["classroom"] == RUNNER_ENV["CLASSROOM"] and result["assignment"] == RUNNER_ENV["ASSIGNMENT"]
    assert result["submission"] == RUNNER_ENV["SUBMISSION_TAG"] and result["submission"].startswith("submit/")
    assert (result["commit"], result["release"], result["review"]) == (
        RUNNER_ENV["COMMIT_URL"], RUNNER_ENV["RELEASE_URL"], RUNNER_ENV["REVIEW_URL"])
    assert isinstance(result["datetime"], str) and UTC_DATETIME.fullmatch(result["datetime"])
    assert is_count(result["score"]) and is_count(result["max-score"]) and result["score"] <= result["max-score"]
    tests = result["tests"]
    assert isinstance(tests, list) and tests
    for test in tests:
        assert isinstance(test["test-name"], str) and test["test-name"] and isinstance(test["passed"], bool)
        assert is_count(test["score"]) and is_count(test["max-score"]) and test["score"] <= test["max-score"]
        assert test["passed"] == (test["score"] == test["max-score"]) or test["max-score"] == 0
    assert result["score"] == sum(t["score"] for t in tests)
    assert result["max-score"] == sum(t["max-score"] for t in tests)
    assert len({t["test-name"] for t in tests}) == len(tests)


@pytest.fixture(scope="module")
def autograder(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CLASSROOM/autograders/ASSIGNMENT/ as init-classroom50 writes it."""
    folder = tmp_path_factory.mktemp("classroom50") / "cs-ninja" / "autograders" / "layernorm"
    result = cli(["--course", str(LAYERNORM / "course.yaml"), "init-classroom50", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def runner_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runner's own Python (setup-python's, in Classroom 50): a fresh one, holding nothing of this checkout."""
    venv = tmp_path_factory.mktemp("runner") / "python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    return venv / "bin" / "python"


def test_init_classroom50_writes_the_autograder_beside_the_course(cli: Cli, autograder: Path, tmp_path: Path) -> None:
    """autograder.py, the course's own files, names.txt and the grader's wheel, no solution; and the
    runtime block to paste into the assignment, printed as JSON."""
    files = sorted(p.relative_to(autograder).as_posix() for p in autograder.rglob("*") if p.is_file())
    wheels = [f for f in files if f.startswith("wheels/")]
    assert files == sorted(["autograder.py", "course/course.yaml", "course/forward.py", "course/exercises/exercise1.py",
                            "course/exercises/exercise2.py", "data/names.txt", *wheels]) and len(wheels) == 1
    assert (autograder / "autograder.py").stat().st_mode & 0o100
    result = cli(["--course", str(LAYERNORM / "course.yaml"), "init-classroom50", str(tmp_path / "again")])
    runtime = json.loads(result.stdout[result.stdout.index("{"):])
    assert runtime == {"runs-on": "ubuntu-latest", "python": "3.12"}


@posix_grader
@pytest.mark.slow
@pytest.mark.parametrize("submission", ["right", "wrong sign", "unreadable"])
def test_classroom50_autograder_runs_as_the_runner_calls_it(autograder: Path, runner_python: Path,
                                                            offline_packages: Path, tmp_path: Path,
                                                            submission: str) -> None:
    """In the student's checkout, with the runner's environment and Python (pip offline against this
    interpreter's packages; the grader from the wheel beside autograder.py): exit 0, a valid result.json
    with one test per gradient worth its points, and release-body.md. A wrong line costs its gradient
    and says why; a file that cannot be read fails every gradient, saying why, and still exits 0."""
    checkout = tmp_path / "cs-ninja-layernorm-alice"
    (checkout / "exercises").mkdir(parents=True)
    for name in ("exercise1.py", "exercise2.py"):
        shutil.copy(LAYERNORM / "solutions" / name, checkout / "exercises" / name)
    first = checkout / "exercises" / "exercise1.py"
    if submission == "wrong sign":
        first.write_text(first.read_text().replace(*WRONG_SIGN))
    if submission == "unreadable":
        first.write_bytes(b"\xff\xfe" + first.read_bytes())
    done = subprocess.run([str(runner_python), str(autograder / "autograder.py")], cwd=checkout,
                          env=offline_env(offline_packages, **RUNNER_ENV, CLASSROOM50_BUNDLE_DIR=str(autograder)),
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads((checkout / "result.json").read_text())
    assert_classroom50_result(result)
    tests = {t["test-name"]: t for t in result["tests"]}
    assert len(tests) == 20 and result["max-score"] == 20
    body = (checkout / "release-body.md").read_text()
    if submission == "right":
        assert result["score"] == 20 and all(t["passed"] for t in tests.values())
    elif submission == "wrong sign":
        assert result["score"] == 19 and [n for n, t in tests.items() if not t["passed"]] == ["exercise1: dh"]
        assert tests["exercise1: dh"]["diagnosis"] == "sign" and "opposite sign" in tests["exercise1: dh"]["message"]
        assert "| `dh` | wrong (sign) |" in body
    else:
        assert result["score"] == 0 and not any(t["passed"] for t in tests.values())
        reason = done.stderr.strip().splitlines()[-1].removeprefix("ninja-grade: ")
        assert "exercise1.py" in reason and all(t["message"] == reason for t in tests.values())
        assert "exercise1.py" in body
    used = subprocess.run([str(runner_python), "-I", "-c", "import grader; print(grader.__file__)"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert Path(used).is_relative_to(runner_python.parents[1]), used


def test_format_classroom50_says_what_the_runner_did_not_set(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the runner (no CLASSROOM, ASSIGNMENT, ...): one line naming what is missing, exit 2,
    nothing graded."""
    for name in RUNNER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLASSROOM", "cs-ninja")
    result = cli(["--course", str(LAYERNORM / "course.yaml"), "exercise2",
                  str(LAYERNORM / "solutions" / "exercise2.py"), "--format", "classroom50"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == ("ninja-grade: --format classroom50 is written for Classroom 50's runner, which sets "
                             "ASSIGNMENT, SUBMISSION_TAG, COMMIT_URL, RELEASE_URL; they are not set here (set them "
                             "to try it by hand)\n")


def test_init_classroom50_refuses_points_classroom50_cannot_count(cli: Cli, tmp_path: Path) -> None:
    """Classroom 50 takes whole points only: a course giving half points is refused in one line, before
    anything is written."""
    course = tmp_path / "course"
    copy_course(course, LAYERNORM)
    text = (course / "course.yaml").read_text()
    (course / "course.yaml").write_text(text.replace("  points: 1\n", "  points: 0.5\n", 1))
    result = cli(["--course", str(course / "course.yaml"), "init-classroom50", str(tmp_path / "out")])
    assert result.exit_code == 2 and not (tmp_path / "out").exists()
    assert result.stderr.startswith("ninja-grade: Classroom 50 takes whole points only, and course.yaml gives "
                                    "exercise1 dlogits (0.5)") and result.stderr.count("\n") == 1
