"""The labels read from the forward pass's own lines (grader/judging/slips.py, shapes.py): a factor too many or too
few, a dropped epsilon, a rearrangement, a matmul that needs .T. Each is a claim checked on every case:
right variants never get one, and values near the edges (a factor ~1 everywhere) get none rather than a
guess. The per-gradient mistakes of both courses are in tests/test_mistakes.py and
tests/test_example_course.py; these are the cases that need a course of their own or a whole grading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grader.courseware.cases import build_case, setting_of
from grader.courseware.course import Course, load_course
from grader.courseware.data import Dataset
from grader.judging.compare import Check
from grader.judging.diagnose import Diagnosis
from grader.judging.judge import fold
from grader.judging.results import Status
from tests.conftest import ROOT, failing, grade, pinned_draw, statuses
from tests.helpers import copy_course, with_mistake

EXAMPLE = ROOT / "examples" / "layernorm"

# Right, written otherwise than the solution: a one_hot matmul for dC, norm_logits.exp() for counts,
# sums without keepdim (judged on their values, with a note).
RIGHT_VARIANTS = {
    "dC = torch.zeros_like(C)  # (27, 10)\nfor k in range(Xb.shape[0]):\n    for j in range(Xb.shape[1]):\n"
    "        dC[Xb[k, j]] += demb[k, j]":
        "dC = F.one_hot(Xb.view(-1), num_classes=C.shape[0]).float().T @ demb.view(-1, C.shape[1])",
    "dnorm_logits = counts * dcounts": "dnorm_logits = norm_logits.exp() * dcounts",
    "dbnbias = dhpreact.sum(0, keepdim=True)": "dbnbias = dhpreact.sum(0)",
    "dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)": "dcounts_sum_inv = (counts * dprobs).sum(1)",
    "dbnmeani = (-dbndiff).sum(0, keepdim=True)": "dbnmeani = (-dbndiff).sum(0)",
}
RIGHT_VARIANTS_LAYERNORM = {
    "dC = torch.zeros_like(C)  # (27, 10)\ndC.index_add_(0, Xb.view(-1), demb.view(-1, n_embd))":
        "dC = F.one_hot(Xb.view(-1), num_classes=vocab_size).float().T @ demb.view(-1, n_embd)",
    "dlnvar_inv = (lndiff * dlnraw).sum(1, keepdim=True)": "dlnvar_inv = (lndiff * dlnraw).sum(1)",
    "dlngain = (lnraw * dhpreact).sum(0, keepdim=True)": "dlngain = (lnraw * dhpreact).sum(0)",
}


def with_edits(solution: str, edits: dict[str, str]) -> str:
    for old, new in edits.items():
        solution = with_mistake(solution, old, new)
    return solution


def test_right_variants_get_no_label(course: Course, dataset: Dataset) -> None:
    """A one_hot matmul for dC, norm_logits.exp() for counts and sums without keepdim are right in both
    courses: full marks, and no gradient carries a label."""
    lecture = grade(course, dataset, "exercise1",
                    with_edits(course.exercise("exercise1").solution.read_text(), RIGHT_VARIANTS))
    layernorm = load_course(EXAMPLE / "course.yaml")
    second = grade(layernorm, dataset, "exercise1",
                          with_edits(layernorm.exercise("exercise1").solution.read_text(), RIGHT_VARIANTS_LAYERNORM))
    for report in (lecture, second):
        assert report.passed, {g.name: g.message for g in report.gradients if not g.passed}
        assert [g.name for g in report.gradients if g.diagnosis] == []


@pytest.fixture
def gain_near_one(tmp_path: Path) -> Course:
    """The LayerNorm course with a gain drawn within 0.1% of 1 (not 10%) and an epsilon of 1e-4 (not 1e-5)."""
    copy_course(tmp_path / "course", EXAMPLE)
    forward = tmp_path / "course" / "forward.py"
    text = forward.read_text()
    assert text.count("* 0.1 + 1.0") == 1 and text.count("(lnvar + 1e-5)") == 1
    forward.write_text(text.replace("* 0.1 + 1.0", "* 1e-3 + 1.0").replace("(lnvar + 1e-5)", "(lnvar + 1e-4)"))
    solution = tmp_path / "course" / "solutions" / "exercise1.py"
    solution.write_text(solution.read_text().replace("(lnvar + 1e-5)", "(lnvar + 1e-4)"))
    return load_course(tmp_path / "course" / "course.yaml")


def test_factor_about_one_everywhere_gets_no_label_and_eps_comes_from_the_forward_file(
        gain_near_one: Course, dataset: Dataset) -> None:
    """With a gain within 0.1% of 1, forgetting it is wrong but names nothing: the value is the truth divided
    by a tensor that is ~constant, which no value could tell from a constant. The epsilon the diagnosis names
    is the forward file's own (1e-4 here)."""
    solution = gain_near_one.exercise("exercise1").solution.read_text()
    source = with_edits(solution, {"dlnraw = lngain * dhpreact": "dlnraw = dhpreact",
                                   "dlnvar = -0.5 * (lnvar + 1e-4) ** -1.5": "dlnvar = -0.5 * lnvar ** -1.5"})
    report = grade(gain_near_one, dataset, "exercise1", source)
    assert failing(report) == {"dlnraw", "dlnvar"}, statuses(report)
    by_name = {g.name: g for g in report.gradients}
    assert by_name["dlnraw"].status is Status.WRONG and by_name["dlnraw"].diagnosis is None
    assert by_name["dlnraw"].message.startswith("maxdiff "), by_name["dlnraw"].message
    assert by_name["dlnvar"].diagnosis == "eps"
    assert "lnvar_inv = (lnvar + 1e-4)**-0.5 adds 1e-4 to lnvar" in by_name["dlnvar"].message


@pytest.mark.slow
def test_exercise4_matmul_that_raises_names_the_operand(course: Course, dataset: Dataset) -> None:
    """In exercise 4 a parameter gradient whose matmul raises on shapes is told which operand needs .T,
    with the hint command; the others are unaffected."""
    source = with_mistake(course.exercise("exercise4").solution.read_text(), "dW1 = embcat.T @ dhprebn",
                          "dW1 = embcat @ dhprebn")
    report = grade(course, dataset, "exercise4", source)
    assert failing(report) == {"dW1"}
    dW1 = next(g for g in report.gradients if g.name == "dW1")
    assert dW1.status is Status.ERROR and dW1.diagnosis == "matmul"
    assert re.search(r"you multiplied embcat \(32x30\) by dhprebn \(32x200\); from hprebn = embcat @ W1 \+ b1, "
                     r"dW1 = embcat\.T @ dhprebn\. Try: ", dW1.message), dW1.message
    assert dW1.message.endswith("(hints: ninja-grade hint exercise4 dW1)")


def test_fold_gives_a_forward_label_only_when_every_failing_case_has_it(course: Course, dataset: Dataset) -> None:
    """A factor, eps, rearrangement or matmul label found on some failing cases but not on all is no label;
    the other labels stand as before (a shape mistake may hide on a batch whose sizes coincide)."""
    setting = setting_of(course.exercise("exercise1"), dataset)
    cases = [build_case(spec, setting) for spec in pinned_draw(course).cases]
    factor = Diagnosis("factor", "it is the truth times counts_sum")
    scale = Diagnosis("scale", "it is 2 times the truth")

    def wrong(diagnosis: Diagnosis | None) -> Check:
        return Check(Status.WRONG, "maxdiff 1.0e-02 is over the tolerance", maxdiff=1e-2, diagnosis=diagnosis)

    assert fold([wrong(factor)] * 3, cases).diagnosis == factor
    assert fold([wrong(factor), wrong(None), wrong(factor)], cases).diagnosis is None
    assert fold([wrong(factor), wrong(scale), wrong(factor)], cases).diagnosis == scale
    assert fold([wrong(scale), wrong(None), wrong(None)], cases).diagnosis == scale
    passed = Check(Status.APPROXIMATE, maxdiff=1e-9, approximate=True)
    assert fold([passed, wrong(factor), wrong(factor)], cases).diagnosis == factor  # passing cases do not count
