"""Exercise 4: the student's backward pass inside a real training run."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import torch

from grader.confined import child as child_module
from grader.courseware.cases import setting_of
from grader.courseware.course import Course, Limits
from grader.courseware.data import Dataset
from grader.judging.results import Report
from grader.judging.training import STEPS_PER_REQUEST, lr_at
from grader.pipeline import train_full
from tests.conftest import CLI_TAKING_CTRL_C, Cli, MechanismOff, failing, grade, needs_sigint, unix_only, wait_for_line
from tests.forked import forked_here
from tests.helpers import assert_setup_error, assert_shaped_as, design_json_examples

STEP_COMMENT = "dW2 = h.T @ dlogits  # (200, 27)"




@pytest.fixture(scope="module")
def solution_report(course: Course, dataset: Dataset) -> Report:
    return grade(course, dataset, "exercise4", course.exercise("exercise4").solution.read_text())


@pytest.mark.slow
def test_solution_passes_every_check(solution_report: Report) -> None:
    """The course's solution: every parameter gradient right at every checkpoint, losses agree."""
    assert solution_report.passed, [(g.name, g.status, g.message) for g in solution_report.gradients]
    training = solution_report.training
    assert training is not None and training.agreed
    assert len(training.losses) == training.planned == 500
    assert training.max_diff <= training.loss_atol
    assert training.student_ms > 0 and training.autograd_ms > 0
    assert [c["name"] for c in solution_report.cases] == ["step 0", "step 250", "step 499"]


@pytest.mark.slow
def test_training_loss_goes_down(solution_report: Report) -> None:
    """A real run: the loss after 500 steps is well below the initial one."""
    training = solution_report.training
    assert training is not None
    assert training.losses[0] > 3.0 > training.losses[-1] + 0.3


def test_stub_is_missing_and_run_stops(course: Course, dataset: Dataset) -> None:
    """The untouched stub: every gradient missing, and the run says why it could not go on."""
    report = grade(course, dataset, "exercise4", course.exercise("exercise4").stub.read_text())
    assert {g.status.value for g in report.gradients} == {"missing"}
    assert report.training is not None and not report.training.agreed
    assert report.training.stopped == "your run stopped at step 0: dC is missing"
    assert not report.passed


@pytest.mark.slow
def test_one_wrong_parameter_fails_on_it_alone(course: Course, dataset: Dataset) -> None:
    """A wrong dW2 fails on dW2 with a diagnosis, and the run drifts away from autograd's."""
    source = course.exercise("exercise4").solution.read_text().replace(STEP_COMMENT, "dW2 = 0.5 * h.T @ dlogits")
    report = grade(course, dataset, "exercise4", source)
    assert failing(report) == {"dW2"}
    dW2 = report.gradients[0]
    assert dW2.diagnosis == "scale" and "1/2 times the truth" in dW2.message
    assert report.training is not None and not report.training.agreed
    assert report.training.max_diff > report.training.loss_atol


@pytest.mark.slow
def test_right_at_step_0_but_wrong_later_fails_at_the_step_it_breaks(course: Course,
                                                                      dataset: Dataset) -> None:
    """A formula that is only right early in training fails, judged in full at the first step it is
    wrong (every step is screened), not only at the next checkpoint."""
    source = course.exercise("exercise4").solution.read_text().replace(
        STEP_COMMENT, "dW2 = h.T @ dlogits if loss.item() > 2.9 else 1.1 * h.T @ dlogits")
    report = grade(course, dataset, "exercise4", source)
    assert failing(report) == {"dW2"}
    assert report.training is not None
    breaks = next(step for step, loss in enumerate(report.training.losses) if loss <= 2.9)
    assert 0 < breaks < 250
    dW2 = report.gradients[0]
    assert dW2.case == f"step {breaks}"
    assert [c["name"] for c in report.cases] == ["step 0", f"step {breaks}", "step 250", "step 499"]
    assert f"right on 'step 0' (batch of 32) but wrong on 'step {breaks}' (batch of 32)" in dW2.message


@pytest.mark.slow
def test_cli_json_for_exercise4(cli: Cli, tmp_path: Path) -> None:
    """--format json carries the training run beside the docs/DESIGN.md fields, each field of both as
    the contract's examples show them."""
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    result = cli(["exercise4", str(solution), "--format", "json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    documented, training = design_json_examples()
    assert_shaped_as({**documented, **training}, report)
    assert report["draw"]["training_seed"] is not None  # the quick run's seed, replayed by --replay
    assert report["passed"] is True and report["score"] == 7
    assert report["training"]["agreed"] is True and report["training"]["steps"] == 500


@pytest.mark.slow
def test_cli_short_real_run_reports_and_plots(cli: Cli, tmp_path: Path) -> None:
    """--steps N trains for real: losses beside the lecture's, 20 names, a PNG whose path is printed."""
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    plot = tmp_path / "curve.png"
    result = cli(["exercise4", str(solution), "--steps", "300", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "full run: 300 of 300 steps" in result.output
    assert "(lecture 2.0719)" in result.output and "(lecture 2.1162)" in result.output
    names = result.output.split("20 names from your net:")[1].split("loss curve:")[0].split()
    assert len(names) == 20 and all(n.endswith(".") for n in names)
    assert f"loss curve: {plot}" in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@unix_only
def test_no_training_step_sees_what_the_last_one_left(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      mechanism_off: MechanismOff) -> None:
    """Each training step is a run of its own: the process is put back before it, so a backward pass that
    goes wrong once it finds torch's generator seeded by the step before trains on to the end."""
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    counts = tmp_path / "counts.py"
    counts.write_text(solution.read_text() + "\nif torch.initial_seed() == 12345:\n    dW2 = dW2 * float('nan')\n"
                      "torch.manual_seed(12345)\n")

    def trains_on() -> None:
        with forked_here(monkeypatch):
            result = cli(["exercise4", str(counts), "--steps", "6", "--plot", str(tmp_path / "p.png")])
        assert "full run: 6 of 6 steps" in result.output and "stopped at step" not in result.output, result.output

    trains_on()
    mechanism_off(trains_on, lambda m: m.setattr(child_module, "fresh_start", lambda state, **_: None),
                  "putting the process back before each step")


@pytest.mark.slow
def test_cli_real_run_of_a_broken_backward_stops_with_reason(cli: Cli, tmp_path: Path) -> None:
    """A backward pass that breaks mid-run stops the real run with the step and the reason, exit 1."""
    broken = tmp_path / "broken.py"
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    broken.write_text(solution.read_text().replace(STEP_COMMENT, "dW2 = h.T @ dlogits if loss.item() > 3 else None"))
    result = cli(["exercise4", str(broken), "--steps", "400", "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 1
    assert "stopped at step" in result.output and "dW2 is missing" in result.output


@pytest.mark.slow
def test_real_run_of_a_net_that_never_ends_a_name_still_ends(tmp_path: Path) -> None:
    """A backward pass that drives the end of a name's logit far down leaves finite losses and a net that
    never picks '.': the names sampled from it are cut at lecture.LONGEST_SAMPLE letters, and the
    grading ends (the real CLI, in a process of its own that a hang could not take down with the tests)."""
    import lecture  # noqa: PLC0415 - the course's forward file, for its cap

    never_ends = tmp_path / "exercise4.py"
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    never_ends.write_text(solution.read_text() + "\ndb2 = db2 + 1e4 * (torch.arange(db2.shape[0]) == 0)\n")
    done = subprocess.run([sys.executable, "-m", "grader.cli", "exercise4", str(never_ends), "--steps", "3",
                           "--plot", str(tmp_path / "p.png")], check=False, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr  # every step ran: --steps reports the run
    names = done.stdout.split("names from your net:\n", 1)[1].split("\n\n", 1)[0].split()
    assert len(names) == 20 and {len(n) for n in names} == {lecture.LONGEST_SAMPLE}, done.stdout
    assert all("." not in n for n in names)


@pytest.mark.slow
def test_real_run_that_makes_the_loss_nan_samples_nothing(cli: Cli, tmp_path: Path) -> None:
    """A huge but finite dW2 makes the next step's loss NaN: the run stops there, says why, and no name is
    sampled from the broken net (the course's sample would fail on it, which is no fault of the course)."""
    huge = tmp_path / "exercise4.py"
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    huge.write_text(solution.read_text()
                    + "\ndW2 = dW2 + 3e38 * (torch.arange(dW2.numel()).view(dW2.shape) % 2 * 2 - 1)\n")
    result = cli(["exercise4", str(huge), "--steps", "3", "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 1, result.output
    assert "stopped at step 1: dC contains NaN or inf" in result.output
    assert "train loss nan" in result.output and "names from your net" not in result.output
    assert "sample() failed" not in result.output


def test_full_is_only_for_training_exercises(cli: Cli) -> None:
    """--full belongs to exercise 4; other exercises do not offer it."""
    assert_setup_error(cli(["exercise1", "--full"]), "No such option '--full'")


@pytest.mark.slow
@needs_sigint
def test_full_run_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C during a real run ends it cleanly: the report of the steps done, exit 130, and the loss curve
    of those steps as a whole PNG, with nothing else left beside it."""
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    process = subprocess.Popen(
        [sys.executable, "-c", CLI_TAKING_CTRL_C, "exercise4", str(solution), "--steps", "100000",
         "--plot", str(tmp_path / "curve.png")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    first = wait_for_line(process.stderr, "training: step ", timeout=120)  # steps are being taken: Ctrl-C now
    assert first.startswith("training: step 50 of 100,000 · loss "), first
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=120)
    assert process.returncode == 130, out
    steps = int(re.search(r"full run: ([\d,]+) of 100,000 steps", out)[1].replace(",", ""))  # type: ignore[index]
    assert 50 <= steps < 100_000, out
    assert f"interrupted after {steps} steps" in out and "val loss" in out
    plot = tmp_path / "curve.png"
    assert f"loss curve: {plot}" in out
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]  # no temporary or partial file of any name
    png = plot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png.endswith(b"IEND\xaeB`\x82")  # whole, to its last chunk
    assert matplotlib.image.imread(plot).shape[:2] == (400, 800)  # the 8 x 4 inch curve, readable


# --- the real run's protocol: the child runs ahead, the grader computes every loss ------------------


def data_of(dataset: Dataset) -> str | None:
    return None if dataset.synthetic else dataset.source  # None: the synthetic stand-in, offline


def reference_run(course: Course, dataset: Dataset, source: str, steps: int) -> list[float]:
    """The lecture's loop written out here, in this process: the course's forward pass, `source` as the
    backward pass, the lecture's update; each step's loss, in order."""
    spec = course.exercise("exercise4").training
    assert spec is not None
    setting = setting_of(course.exercise("exercise4"), dataset)
    params, g = setting.parameters(spec.seed)
    flat = torch.cat([p.reshape(-1) for p in params.values()])
    views = dict(zip(params, (part.view(p.shape) for part, p in zip(flat.split([p.numel() for p in params.values()]),
                                                                       params.values(), strict=True)), strict=True))
    code = compile(source, "backward", "exec")
    losses = []
    with torch.no_grad():
        for step in range(steps):
            ix = torch.randint(0, setting.world["Xtr"].shape[0], (spec.batch_size,), generator=g)  # type: ignore[attr-defined]
            Xb, Yb = setting.world["Xtr"][ix], setting.world["Ytr"][ix]  # type: ignore[index]
            acts = setting.graph.forward(views, Xb, Yb, setting.sizes)
            ns = {"torch": torch, "F": torch.nn.functional, "n": spec.batch_size, "Xb": Xb, "Yb": Yb,
                  **{k: v.clone() for k, v in views.items()}, **acts}
            exec(code, ns)
            losses.append(float(acts["loss"]))
            flat -= lr_at(spec, step, steps) * torch.cat([ns[f"d{name}"].reshape(-1) for name in params])
    return losses


@pytest.mark.slow
def test_real_run_takes_the_lectures_steps_to_the_bit(course: Course, dataset: Dataset) -> None:
    """Across several of the child's requests and the learning-rate switch, every loss the grader computes
    is the loss of the lecture's loop run here with the same backward pass, bit for bit."""
    steps = 2 * STEPS_PER_REQUEST + 7
    solution = course.exercise("exercise4").solution
    run, _ = train_full(course, "exercise4", solution, data_of(dataset), steps=steps)
    expected = [math.log10(loss) for loss in reference_run(course, dataset, solution.read_text(), steps)]
    assert run.stopped is None and run.steps == steps
    assert list(run.lossi) == expected
    assert run.threads == {"grader": 1, "sandbox": 1}


@pytest.mark.slow
def test_real_run_stops_at_the_exact_step_of_a_nan_mid_request(course: Course, dataset: Dataset,
                                                                tmp_path: Path) -> None:
    """Gradients that turn NaN at some step inside one of the child's requests stop the run at that very
    step, named, with every step before it kept."""

    solution = course.exercise("exercise4").solution.read_text()
    losses = reference_run(course, dataset, solution, 200)
    threshold = min(losses[:70])  # first beaten somewhere past the child's first request of 64 steps
    first = next(i for i, loss in enumerate(losses) if loss < threshold)
    assert 70 <= first < 200 and first % 64, first
    broken = tmp_path / "nan.py"
    broken.write_text(solution + f"\nif loss.item() < {threshold!r}:\n    dW1 = dW1 * float('nan')\n")
    run, _ = train_full(course, "exercise4", broken, data_of(dataset), steps=200)
    assert run.stopped == f"stopped at step {first}: dW1 contains NaN or inf"
    assert run.steps == len(run.lossi) == first


@pytest.mark.slow
def test_real_run_stops_a_hang_with_its_step_and_the_limit(course: Course, dataset: Dataset, tmp_path: Path) -> None:
    """A backward pass that hangs mid-run stops at the step that never came back, with the time limit."""

    solution = course.exercise("exercise4").solution.read_text()
    losses = reference_run(course, dataset, solution, 120)
    first = next(i for i, loss in enumerate(losses) if loss <= 3.2)
    hangs = tmp_path / "hang.py"
    hangs.write_text(solution + "\nwhile loss.item() <= 3.2:\n    pass\n")
    run, _ = train_full(course, "exercise4", hangs, data_of(dataset), steps=120,
                        limits=Limits(4.0, 1024))
    assert run.stopped == f"stopped at step {first}: time limit of 4 s reached (wall clock)", run.stopped
    assert run.steps == first
    assert run.val_loss is not None  # the steps before it still give the losses


@pytest.mark.slow
def test_real_run_reports_threads_in_text_and_json(cli: Cli, tmp_path: Path) -> None:
    """Thread counts are chosen, not inherited: the report says how many each process used."""
    solution = Path(__file__).resolve().parent.parent / "solutions" / "exercise4.py"
    result = cli(["exercise4", str(solution), "--steps", "3", "--format", "json", "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["threads"] == {"grader": 1, "sandbox": 1}
    text = cli(["exercise4", str(solution), "--steps", "3", "--plot", str(tmp_path / "p.png")])
    assert "torch threads: grader 1, sandbox 1" in text.output
