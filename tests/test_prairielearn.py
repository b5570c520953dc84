"""PrairieLearn's external grader: `ninja-grade prairielearn` writes the image's build folder (Dockerfile,
entrypoint, the course, names.txt, the grader's wheel) and the question's externalGradingOptions; the
entrypoint, run directly against a /grade folder of its own (NINJA_GRADE_ROOT; no Docker, no root),
writes a results.json PrairieLearn reads, under 1 MB, for a right, a wrong, an unreadable and an
oversized submission. The image's own install (pip in Docker) is not run here."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from grader.courseware.course import Course, load_course
from grader.courseware.data import Dataset
from grader.reporting.platforms import CUT, render_prairielearn
from tests.conftest import ROOT, Cli, grade, run_cli

LAYERNORM = ROOT / "examples" / "layernorm"
LIMIT = 1_000_000  # bytes PrairieLearn takes
WRONG_SCALE = ("\ndhpreln = ", "\ndhpreln = 2 * ")  # one edit to exercise 2's solution


def write_image_folder(tmp_path: Path, course: Path, *args: str) -> Path:
    folder = tmp_path / "image"
    result = run_cli(["--course", str(course), "prairielearn", str(folder), *args])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def layernorm_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("pl"), LAYERNORM / "course.yaml", "--image",
                              "ghcr.io/ninja-org/layernorm-grader")


def grade_folder(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """/grade as PrairieLearn lays it out before the entrypoint runs: no results/ yet."""
    root = tmp_path / "grade"
    for folder in ("student", "data", "serverFilesCourse", "tests"):
        (root / folder).mkdir(parents=True)
    (root / "data" / "data.json").write_text(json.dumps({"params": {}, "correct_answers": {}}))
    for name, data in files.items():
        (root / "student" / name).write_bytes(data)
    return root


def run_entrypoint(image: Path, root: Path, *exercises: str) -> dict[str, Any]:
    """The entrypoint as the container runs it, with this checkout's grader standing in for the image's."""
    env = {**{k: v for k, v in os.environ.items() if k != "NINJA_DATA"}, "NINJA_GRADE_ROOT": str(root)}
    done = subprocess.run([sys.executable, str(image / "entrypoint.py"), *exercises], env=env, cwd=root,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    raw = (root / "results" / "results.json").read_bytes()
    assert len(raw) <= LIMIT
    results: dict[str, Any] = json.loads(raw)
    return results


def assert_prairielearn_results(results: dict[str, Any]) -> None:
    """The fields PrairieLearn and <pl-external-grader-results> read, and their types."""
    assert isinstance(results["gradable"], bool) and isinstance(results["message"], str)
    if not results["gradable"]:
        assert results["format_errors"] and all(isinstance(e, str) and e for e in results["format_errors"])
        return
    assert 0.0 <= results["score"] <= 1.0 and isinstance(results["output"], str)
    for test in results["tests"]:
        assert isinstance(test["name"], str) and test["name"]
        assert 0 <= test["points"] <= test["max_points"] and isinstance(test["message"], str)
        assert isinstance(test["output"], str)
        for image in test.get("images", []):
            assert isinstance(image["label"], str) and image["url"].startswith("data:image/png;base64,")
            assert base64.b64decode(image["url"].split(",", 1)[1], validate=True).startswith(b"\x89PNG")
    points = sum(t["points"] for t in results["tests"])
    assert results["score"] == pytest.approx(points / sum(t["max_points"] for t in results["tests"]))


def test_prairielearn_writes_the_image_folder_and_the_question_options(layernorm_image: Path) -> None:
    """The Dockerfile installs CPU torch and the grader's wheel and copies the course, names.txt and the
    entrypoint, every one of them in the folder (the build context is whole); info.json's
    externalGradingOptions name the image, the entrypoint and a timeout within PrairieLearn's 600 s; no
    solution is anywhere in the folder."""
    dockerfile = (layernorm_image / "Dockerfile").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in dockerfile
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE):
        assert (layernorm_image / source).exists(), source
    assert re.search(r"^RUN python -m pip install .*backprop_ninja-.*\.whl", dockerfile, re.MULTILINE)
    assert "ghcr.io/ninja-org/layernorm-grader" in dockerfile
    options = json.loads((layernorm_image / "info.json").read_text())["externalGradingOptions"]
    assert options["enabled"] is True and options["image"] == "ghcr.io/ninja-org/layernorm-grader"
    assert options["entrypoint"] == ["/opt/ninja/entrypoint.py"] and 0 < options["timeout"] <= 600
    assert "COPY entrypoint.py /opt/ninja/entrypoint.py" in dockerfile
    files = [p.relative_to(layernorm_image).as_posix() for p in layernorm_image.rglob("*") if p.is_file()]
    assert "course/course.yaml" in files and "data/names.txt" in files and not any("solution" in f for f in files)


@pytest.mark.slow
@pytest.mark.parametrize("submission", ["right", "wrong scale", "unreadable"])
def test_prairielearn_entrypoint_grades_a_grade_folder(layernorm_image: Path, tmp_path: Path, submission: str) -> None:
    """Right: score 1, every test full marks. Wrong (twice the truth): its test 0 of 1 with the diagnosis
    and a picture of it as a PNG data URL. Unreadable: not gradable, the reason in format_errors (no
    attempt lost)."""
    source = (LAYERNORM / "solutions" / "exercise2.py").read_bytes()
    if submission == "wrong scale":
        source = source.replace(*(part.encode() for part in WRONG_SCALE), 1)
    if submission == "unreadable":
        source = b"\xff\xfe" + source
    root = grade_folder(tmp_path, {"exercise2.py": source})
    results = run_entrypoint(layernorm_image, root, "exercise2")
    assert_prairielearn_results(results)
    if submission == "unreadable":
        assert results["gradable"] is False and results["score"] == 0
        assert "exercise2.py" in results["format_errors"][0]
        return
    (test,) = results["tests"]
    assert test["name"] == "exercise2: dhpreln" and test["max_points"] == 1
    if submission == "right":
        assert results["score"] == 1 and test["points"] == 1 and "images" not in test
    else:
        assert results["score"] == 0 and test["points"] == 0 and test["description"] == "wrong (scale)"
        assert [image["label"] for image in test["images"]] == ["dhpreln: the truth, and your value minus it"]


def noisy(solution: Path, gradients: list[str]) -> bytes:
    """A solution whose every gradient is then made wrong by noise (pictures that do not compress), and
    that prints as much as the grader keeps: what a student mid-debugging submits."""
    noise = "".join(f"{g} = {g} + torch.rand_like({g})\n" for g in gradients)
    return (solution.read_text() + "\n" + noise + "print('x' * 10_000)\n").encode()


@pytest.mark.slow
def test_prairielearn_oversized_results_leave_the_last_pictures_out(tmp_path: Path) -> None:
    """Exercises 1 and 4 of the lecture's course with every gradient wrong: their pictures alone are over
    PrairieLearn's 1 MB. results.json stays under it, keeps the first wrong gradients' pictures (the
    ones to fix first), leaves the last ones out and says how many."""
    course = load_course(ROOT / "course.yaml")
    image = write_image_folder(tmp_path, ROOT / "course.yaml")
    files = {f"{e}.py": noisy(course.exercise(e).solution, list(course.exercise(e).gradient_names))
             for e in ("exercise1", "exercise4")}
    results = run_entrypoint(image, grade_folder(tmp_path, files))
    assert_prairielearn_results(results)
    wrong = [t for t in results["tests"] if t["name"].startswith(("exercise1:", "exercise4:"))]
    assert len(wrong) == 33 and all(t["points"] == 0 for t in wrong)
    pictured = [bool(t.get("images")) for t in wrong]
    kept = sum(pictured)
    assert 0 < kept < len(wrong) and pictured == [True] * kept + [False] * (len(wrong) - kept)
    assert f"{len(wrong) - kept} of {len(wrong)} pictures of wrong gradients left out" in results["message"]
    assert "What your code for exercise1 printed:\nxxxx" in results["output"]


def test_platform_results_carry_no_terminal_escape(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A submission whose error message and prints hold terminal escapes (which PrairieLearn's page
    would turn into colours, and a log into anything): neither PrairieLearn's nor Classroom 50's
    results carry a control character, and the rest of the text is kept."""
    hostile = tmp_path / "exercise2.py"
    hostile.write_text("def boom():\n    raise ValueError('\\x1b[32m100/100\\x1b[0m')\n\n\n"
                       "print('\\x1b[2J\\x1b[31mall tests passed\\x07')\ndlogits = boom()\n")
    for name, value in {"CLASSROOM": "c", "ASSIGNMENT": "a", "SUBMISSION_TAG": "submit/x", "COMMIT_URL": "u",
                        "RELEASE_URL": "r"}.items():
        monkeypatch.setenv(name, value)
    for fmt in ("prairielearn", "classroom50"):
        result = cli(["exercise2", str(hostile), "--format", fmt])
        assert result.exit_code == 1, result.output
        results = json.loads(result.stdout)
        texts = [results.get("message", ""), results.get("output", ""),
                 *(t.get("message", "") for t in results["tests"]), *(t.get("output", "") for t in results["tests"])]
        assert all(not re.search("[\x00-\x08\x0b-\x1f]", text) for text in texts), (fmt, texts)
        assert any("100/100" in text for text in texts), fmt


def test_prairielearn_results_over_the_limit_lose_pictures_then_text(course: Course, dataset: Dataset) -> None:
    """Under a limit smaller than one picture, the renderer leaves the picture out and says so, then
    cuts the texts until the results fit; the score and every test stay."""
    source = (ROOT / "solutions" / "exercise1.py").read_text()
    report = grade(course, dataset, "exercise1", source.replace("dprobs = (1.0 / probs) * dlogprobs",
                                                      "dprobs = -(1.0 / probs) * dlogprobs"))
    whole = json.loads(render_prairielearn([report]))
    assert [t["name"] for t in whole["tests"] if t.get("images")] == ["exercise1: dprobs"]
    limit = len(json.dumps({**whole, "tests": [{k: v for k, v in t.items() if k != "images"}
                                               for t in whole["tests"]]})) - 50
    fitted = render_prairielearn([report], limit=limit)
    assert len(fitted) <= limit
    results = json.loads(fitted)
    assert not any(t.get("images") for t in results["tests"]) and results["score"] == whole["score"]
    assert [t["name"] for t in results["tests"]] == [t["name"] for t in whole["tests"]]
    assert "1 of 1 pictures of wrong gradients left out" in results["message"]
    cut = [t for t in results["tests"] if t["output"] != next(w["output"] for w in whole["tests"]
                                                              if w["name"] == t["name"])]
    assert cut and all(t["output"] == "" or t["output"].endswith(CUT) for t in cut)
