"""Why a gradient is wrong: no label without proof, degenerate gradients judged right, hints."""

from __future__ import annotations

from dataclasses import replace

import click
import pytest

from grader.courseware.course import Course, Gradient, Tolerance
from grader.courseware.data import Dataset
from grader.judging import judge, shapes
from grader.judging.compare import Check
from grader.judging.diagnose import ADVICE, LABELS
from grader.judging.results import Status
from grader.judging.vjp import VJPCheck, settle_with_vjp
from grader.reporting.report import render_text
from tests.conftest import Cli, MechanismOff, grade, statuses
from tests.helpers import assert_setup_error


def test_random_tensors_get_no_label(course: Course, dataset: Dataset) -> None:
    """Random values of the right shape are wrong, and the grader does not invent a reason."""
    exercise = course.exercise("exercise1")
    source = "\n".join(f"{g.name} = torch.randn_like({g.tensor})" for g in exercise.gradients)
    report = grade(course, dataset, "exercise1", source)
    assert set(statuses(report).values()) == {"wrong"}
    assert [g.diagnosis for g in report.gradients] == [None] * 26


def test_correct_report_has_no_diagnosis_and_no_message(course: Course, dataset: Dataset) -> None:
    """The report of the course's solution is plain: no labels, no notes, no messages."""
    report = grade(course, dataset, "exercise1", course.exercise("exercise1").solution.read_text())
    assert all(g.diagnosis is None and g.message == "" for g in report.gradients)


def test_degenerate_gradients_pass_whatever_the_noise(course: Course, dataset: Dataset) -> None:
    """Correct db1 and dlogit_maxes pass even with an atol far below their float noise."""
    exercise = course.exercise("exercise1")
    strict = replace(exercise, gradients=tuple(
        replace(g, tolerance=Tolerance(0.0, 1e-15)) if g.name in ("db1", "dlogit_maxes") else g
        for g in exercise.gradients))
    # Sums in another order than autograd's: right formulas, different float noise.
    source = exercise.solution.read_text().replace(
        "db1 = dhprebn.sum(0)", "db1 = dhprebn.flip(0).double().sum(0).float()").replace(
        "dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)",
        "dlogit_maxes = -(dnorm_logits.flip(1).double().sum(1, keepdim=True).float())")
    report = grade(course, dataset, strict, source, label="noise.py")
    by_name = {g.name: g for g in report.gradients}
    for name in ("db1", "dlogit_maxes"):
        assert by_name[name].passed, by_name[name].message
        assert by_name[name].maxdiff and by_name[name].maxdiff > 1e-15  # the raw values really differ
        assert "is ~0, so float noise decides its raw value" in by_name[name].message
    assert report.passed


def test_shortcut_that_skips_consumers_passes_with_note(course: Course, dataset: Dataset) -> None:
    """dlogits written the fused way inside exercise 1 is right for this loss: it passes, with a note."""
    source = course.exercise("exercise1").solution.read_text().replace(
        "dlogits = dnorm_logits.clone()  # (32, 27)",
        "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\ndlogits /= n\ndlogits -= 0 * dnorm_logits",
    ).replace(
        "dlogits += F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes", "pass")
    report = grade(course, dataset, "exercise1", source)
    dlogits = next(g for g in report.gradients if g.name == "dlogits")
    assert dlogits.passed
    assert "a shortcut through later gradients or the forward pass" in dlogits.message


@pytest.mark.parametrize(
    ("source", "label"),
    [
        ("dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1", "scale"),
        ("dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\ndlogits /= -n", "sign"),
        ("dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\ndlogits /= 32", "hard-coded-batch"),
        ("dlogits = F.softmax(logits, 0)\ndlogits[range(n), Yb] -= 1\ndlogits /= n", None),
    ],
)
def test_fused_cross_entropy_mistakes(course: Course, dataset: Dataset, source: str, label: str | None) -> None:
    """Exercise 2's common slips get their label; softmax over the wrong dimension gets none."""
    (g,) = grade(course, dataset, "exercise2", source).gradients
    assert g.status.value == "wrong"
    assert g.diagnosis == label


def test_every_label_has_advice() -> None:
    """Each label the grader can give comes with something to try."""
    assert set(ADVICE) == set(LABELS)


def test_every_gradient_has_three_hint_levels(course: Course) -> None:
    """course.yaml has hints at levels 1, 2 and 3 for every gradient of every exercise."""
    for exercise in course.exercises:
        for grad in exercise.gradients:
            assert len(grad.hints) == 3, grad.name
            assert len(set(grad.hints)) == 3


def test_hint_cli_levels(cli: Cli) -> None:
    """`ninja-grade hint` shows hints up to the level asked, and says how to see more."""
    one = cli(["hint", "exercise1", "dC"])
    assert one.exit_code == 0
    assert one.output.startswith("hint 1: Forward line: emb = C[Xb].")
    assert "--level 2" in one.output
    three = cli(["hint", "exercise1", "dC", "--level", "3"])
    assert three.output.count("hint ") == 3 and "--level" not in three.output


@pytest.mark.parametrize(("args", "words"), [(["exercise1", "dX"], "has no gradient 'dX'"),
                                             (["exercise7", "dC"], "no exercise 'exercise7'")])
def test_hint_cli_unknown_names_exit_2(cli: Cli, args: list[str], words: str) -> None:
    """Unknown exercises and gradients are one-line errors, exit 2."""
    assert_setup_error(cli(["hint", *args]), words)


def test_text_report_shows_label_and_hint(course: Course, dataset: Dataset) -> None:
    """The text report prints the label beside the verdict and the hint command below it."""
    source = course.exercise("exercise1").solution.read_text().replace(
        "dprobs = (1.0 / probs) * dlogprobs", "dprobs = -(1.0 / probs) * dlogprobs")
    text = click.unstyle(render_text(grade(course, dataset, "exercise1", source)))
    line = next(x for x in text.splitlines() if x.startswith("dprobs "))
    assert line.rstrip().endswith("wrong       [sign]")
    assert "it is the truth with the opposite sign" in text and "ninja-grade hint exercise1 dprobs" in text


def test_vjp_that_ran_and_gave_nothing_settles_nothing() -> None:
    """A ~0 gradient off by float noise passes on the graph's word only when there was nothing to hand
    random gradients to (the code names none); a run that gave no usable tensor settles nothing."""
    grad = Gradient("db1", "b1", 1.0, Tolerance(1e-5, 1e-8))
    noisy = [Check(Status.WRONG, "maxdiff 3.0e-08 is over the tolerance", maxdiff=3e-8)]
    not_run = VJPCheck(None, degenerate=True, typical=1e-2, consumers=("hprebn",), ran=False)
    settled, note = settle_with_vjp(grad, noisy, not_run)
    assert settled[0].status is Status.APPROXIMATE and "judged on its values alone" in note
    assert "which it can only where a variable of yours holds dhprebn, set in a statement before db1's" in note
    ran_empty = replace(not_run, ran=True)
    assert settle_with_vjp(grad, noisy, ran_empty) == (noisy, "")


def test_exercise1_in_one_block_scores_in_full(course: Course, dataset: Dataset,
                                              mechanism_off: MechanismOff) -> None:
    """The lecture's exercise 1 inside one `with torch.no_grad():` block is honest code: 26/26, nothing
    called a shortcut or a coincidence. No random value can be set between its lines, so the ~0 gradients
    (dlogit_maxes, db1) say they were judged on their values alone, and no other gradient has a note."""
    lines = [line for line in course.exercise("exercise1").solution.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    source = "with torch.no_grad():\n" + "".join(f"    {line}\n" for line in lines)

    def in_full() -> None:
        report = grade(course, dataset, "exercise1", source)
        assert report.score == 26 and report.passed
        notes = {g.name: g.message for g in report.gradients if g.message}
        assert set(notes) == {"dlogit_maxes", "db1"}, notes
        assert all("judged on its values alone" in note for note in notes.values())
        assert not {g.diagnosis for g in report.gradients} - {None}

    in_full()
    mechanism_off(in_full, lambda m: m.setattr(judge, "reachable", lambda *_: True),
                  "leaving unreachable random values to the graph")


PERMUTED_SIZE_ONES = """
dlogits = (F.softmax(logits, 1) - F.one_hot(Yb, logits.shape[1])) / n
dlogits = dlogits.flatten().roll(1).reshape(*[1] * 12, logits.shape[1], n)
"""


def test_many_dims_are_not_tried_in_every_order(course: Course, dataset: Dataset,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The truth's numbers in a 14-dim value are said without trying its 14! orders of dims, which the
    grader's own process would never finish (a value of 3 dims is still tried in every order: see
    test_example_course)."""
    asked: list[int] = []
    real = shapes.itertools.permutations

    def counted(dims: range) -> object:
        asked.append(len(dims))
        if len(dims) > shapes.MOST_DIMS_PERMUTED:
            raise AssertionError(f"every order of {len(dims)} dims tried")
        return real(dims)

    monkeypatch.setattr(shapes.itertools, "permutations", counted)
    (dlogits,) = grade(course, dataset, "exercise2", PERMUTED_SIZE_ONES).gradients
    assert dlogits.status is Status.WRONG
    assert "it holds the truth's numbers, but in other places" in dlogits.message
    assert max(asked, default=0) <= shapes.MOST_DIMS_PERMUTED, asked
