"""Gradescope's autograder zip, for a course outside the grader's repository (examples/layernorm): what it
carries, its setup.sh and run_autograder run as Gradescope runs them in an /autograder of their own, and
the results.json they leave, whatever the submission."""

from __future__ import annotations

import json
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from grader.ci import wheel
from tests.conftest import ROOT, Cli, offline_env, posix_grader, run_cli

LAYERNORM = ROOT / "examples" / "layernorm"


def bundle(tmp_path: Path, *args: str, course: Path = LAYERNORM / "course.yaml") -> Path:
    out = tmp_path / "autograder.zip"
    result = run_cli(["--course", str(course), "gradescope-bundle", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


def test_gradescope_bundle_carries_the_course_the_grader_and_no_solution(tmp_path: Path) -> None:
    """At the zip's root setup.sh and run_autograder (executable); beside them the course's own files
    (course.yaml, its forward file, its stubs), names.txt and the grader's wheel, and no solution."""
    with zipfile.ZipFile(bundle(tmp_path)) as zf:
        names = set(zf.namelist())
        wheels = [n for n in names if n.startswith("wheels/")]
        assert names == {"setup.sh", "run_autograder", "course/course.yaml", "course/forward.py",
                         "course/exercises/exercise1.py", "course/exercises/exercise2.py", "data/names.txt", *wheels}
        assert len(wheels) == 1 and wheels[0].endswith("-py3-none-any.whl")
        for script in ("setup.sh", "run_autograder"):
            assert (zf.getinfo(script).external_attr >> 16) & stat.S_IXUSR
        assert zf.read("course/exercises/exercise1.py") == (LAYERNORM / "exercises" / "exercise1.py").read_bytes()
        assert "solution" not in " ".join(names)
        run_autograder = zf.read("run_autograder").decode()
        assert '--course "$root/source/course/course.yaml"' in run_autograder and "NINJA_GRADE" not in run_autograder
        with zipfile.ZipFile(zf.open(wheels[0])) as built:
            inside = set(built.namelist())
            entry_points = built.read(next(n for n in inside if n.endswith(".dist-info/entry_points.txt")))
    assert {"grader/cli/__main__.py", "grader/judging/compare.py", "grader/reporting/platforms.py"} <= inside
    assert b"ninja-grade = grader.cli:run" in entry_points
    assert all(n.startswith(("grader/", "backprop_ninja-")) for n in inside)


@posix_grader
@pytest.mark.slow
@pytest.mark.parametrize("packed", ["the whole grader", "grader/cli alone"])
def test_gradescope_bundle_runs_as_gradescope_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    offline_packages: Path, packed: str) -> None:
    """The zip unzipped into an /autograder of its own: setup.sh runs whole (its pip offline, against this
    interpreter's packages for torch and the rest; the grader from the zip's wheel), then run_autograder
    grades /autograder/submission with the grader setup.sh installed, and nothing from this checkout. A zip
    whose wheel holds only grader/cli cannot grade: its results.json says the autograder failed."""
    if packed == "grader/cli alone":
        whole = wheel.package_files()
        monkeypatch.setattr(wheel, "package_files", lambda: [(n, p) for n, p in whole if n.startswith("grader/cli/")])
    root = tmp_path / "autograder"
    with zipfile.ZipFile(bundle(tmp_path, "--exercise", "exercise2")) as zf:
        zf.extractall(root / "source")
    (root / "run_autograder").write_bytes((root / "source" / "run_autograder").read_bytes())  # as Gradescope copies it
    env = offline_env(offline_packages, AUTOGRADER_ROOT=str(root))
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], cwd=root / "source", env=env,
                           capture_output=True, text=True, timeout=600, check=False)
    assert setup.returncode == 0, setup.stderr
    (root / "submission").mkdir()
    (root / "submission" / "exercise2.py").write_bytes((LAYERNORM / "solutions" / "exercise2.py").read_bytes())
    run = subprocess.run(["bash", str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    assert run.returncode == 0, run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    if packed == "grader/cli alone":
        assert results["score"] == 0 and results["tests"] == []
        assert "The autograder failed" in results["output"] and "not your code" in results["output"]
        return
    assert results["score"] == 1 and [(t["name"], t["status"]) for t in results["tests"]] == [
        ("exercise2: dhpreln", "passed")]
    used = subprocess.run([str(root / "venv" / "bin" / "python"), "-I", "-c", "import grader; print(grader.__file__)"],
                          cwd=root, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert Path(used).is_relative_to(root / "venv"), used


def test_gradescope_unreadable_submission_still_gets_a_result(cli: Cli, tmp_path: Path) -> None:
    """A submission that cannot be read is said in one line on stderr (exit 2), and results.json still
    shows it: every gradient 0 of its points, the reason in the output."""
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "exercise2.py").write_bytes(b"\xff\xfe dhpreln = None")
    out = tmp_path / "results.json"
    result = cli(["--course", str(LAYERNORM / "course.yaml"), "all", str(tmp_path / "submission"),
                  "--format", "gradescope", "--output", str(out)])
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("ninja-grade: ") and "exercise2.py" in line
    results = json.loads(out.read_text())
    assert results["score"] == 0 and len(results["tests"]) == 20
    assert all(t["score"] == 0 and t["max_score"] == 1 and t["status"] == "failed" for t in results["tests"])
    reason = line.removeprefix("ninja-grade: ")
    assert reason in results["output"] and all(reason in t["output"] for t in results["tests"])
