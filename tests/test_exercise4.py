"""Exercise 4: the student's backward pass inside a real training run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.course import Course
from grader.results import Report
from tests.conftest import GradeSource, failing, wait_for_line

STEP_COMMENT = "dW2 = h.T @ dlogits  # (200, 27)"




@pytest.fixture(scope="module")
def solution_report(course: Course, grade_source: GradeSource) -> Report:
    return grade_source("exercise4", course.exercise("exercise4").solution.read_text())


def test_solution_passes_every_check(solution_report: Report) -> None:
    """The course's solution: every parameter gradient right at every checkpoint, losses agree."""
    assert solution_report.passed, [(g.name, g.status, g.message) for g in solution_report.gradients]
    training = solution_report.training
    assert training is not None and training.agreed
    assert len(training.losses) == training.planned == 500
    assert training.max_diff <= training.loss_atol
    assert training.student_ms > 0 and training.autograd_ms > 0
    assert [c["name"] for c in solution_report.cases] == ["step 0", "step 250", "step 499"]


def test_training_loss_goes_down(solution_report: Report) -> None:
    """A real run: the loss after 500 steps is well below the initial one."""
    training = solution_report.training
    assert training is not None
    assert training.losses[0] > 3.0 > training.losses[-1] + 0.3


def test_stub_is_missing_and_run_stops(course: Course, grade_source: GradeSource) -> None:
    """The untouched stub: every gradient missing, and the run says why it could not go on."""
    report = grade_source("exercise4", course.exercise("exercise4").stub.read_text())
    assert {g.status.value for g in report.gradients} == {"missing"}
    assert report.training is not None and not report.training.agreed
    assert report.training.stopped == "your run stopped at step 0: dC is missing"
    assert not report.passed


def test_one_wrong_parameter_fails_on_it_alone(course: Course, grade_source: GradeSource) -> None:
    """A wrong dW2 fails on dW2 with a diagnosis, and the run drifts away from autograd's."""
    source = course.exercise("exercise4").solution.read_text().replace(STEP_COMMENT, "dW2 = 0.5 * h.T @ dlogits")
    report = grade_source("exercise4", source)
    assert failing(report) == {"dW2"}
    dW2 = report.gradients[0]
    assert dW2.diagnosis == "scale" and "1/2 times the truth" in dW2.message
    assert report.training is not None and not report.training.agreed
    assert report.training.max_diff > report.training.loss_atol


def test_right_at_step_0_but_wrong_later_fails_at_the_step_it_breaks(course: Course,
                                                                      grade_source: GradeSource) -> None:
    """A formula that is only right early in training fails, judged in full at the first step it is
    wrong (every step is screened), not only at the next checkpoint."""
    source = course.exercise("exercise4").solution.read_text().replace(
        STEP_COMMENT, "dW2 = h.T @ dlogits if loss.item() > 2.9 else 1.1 * h.T @ dlogits")
    report = grade_source("exercise4", source)
    assert failing(report) == {"dW2"}
    assert report.training is not None
    breaks = next(step for step, loss in enumerate(report.training.losses) if loss <= 2.9)
    assert 0 < breaks < 250
    dW2 = report.gradients[0]
    assert dW2.case == f"step {breaks}"
    assert [c["name"] for c in report.cases] == ["step 0", f"step {breaks}", "step 250", "step 499"]
    assert f"right on 'step 0' but wrong on 'step {breaks}'" in dW2.message


def test_cli_json_for_exercise4(tmp_path: Path) -> None:
    """--format json carries the training run beside the docs/DESIGN.md fields."""
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    result = CliRunner().invoke(main, ["exercise4", str(solution), "--format", "json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["score"] == 7
    assert report["training"]["agreed"] is True and report["training"]["steps"] == 500


def test_cli_short_real_run_reports_and_plots(tmp_path: Path) -> None:
    """--steps N trains for real: losses beside the lecture's, 20 names, a PNG whose path is printed."""
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    plot = tmp_path / "curve.png"
    result = CliRunner().invoke(main, ["exercise4", str(solution), "--steps", "300", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "full run: 300 of 300 steps" in result.output
    assert "(lecture 2.0719)" in result.output and "(lecture 2.1162)" in result.output
    names = result.output.split("20 names from your net:")[1].split("loss curve:")[0].split()
    assert len(names) == 20 and all(n.endswith(".") for n in names)
    assert f"loss curve: {plot}" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_real_run_of_a_broken_backward_stops_with_reason(tmp_path: Path) -> None:
    """A backward pass that breaks mid-run stops the real run with the step and the reason, exit 1."""
    broken = tmp_path / "broken.py"
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    broken.write_text(solution.read_text().replace(STEP_COMMENT, "dW2 = h.T @ dlogits if loss.item() > 3 else None"))
    result = CliRunner().invoke(main, ["exercise4", str(broken), "--steps", "400", "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 1
    assert "stopped at step" in result.output and "dW2 is missing" in result.output


def test_full_is_only_for_training_exercises() -> None:
    """--full belongs to exercise 4; other exercises do not offer it."""
    result = CliRunner().invoke(main, ["exercise1", "--full"])
    assert result.exit_code == 2 and "No such option" in result.output


def test_full_run_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C during a real run ends it cleanly: the report of the steps done, exit 130."""
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    process = subprocess.Popen(
        [sys.executable, "-c", "from grader.cli import run; run()", "exercise4", str(solution), "--steps", "100000",
         "--plot", str(tmp_path / "curve.png")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    first = wait_for_line(process.stderr, "training: step ", timeout=120)  # steps are being taken: Ctrl-C now
    assert first.startswith("training: step 50 of 100,000 · loss "), first
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130, out
    assert "interrupted after" in out and "val loss" in out
    assert (tmp_path / "curve.png").is_file()
    assert not os.path.exists(tmp_path / ".curve.png.tmp")
