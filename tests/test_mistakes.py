"""Real wrong submissions: each common mistake is judged wrong on its gradient alone,
and named: the diagnosis says which transformation of the truth the student computed.

Each mistake (MISTAKES in tests/helpers.py, shared with the class and the pictures
that grade them too) is the course's solution with one edit, the way students make it.
The edit must apply exactly once, so a change to the solution cannot silently turn a
mistake into a no-op.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from grader.courseware.course import CaseSpec, Course
from grader.courseware.data import Dataset
from grader.courseware.draw import draw
from grader.judging.diagnose import ADVICE
from tests.conftest import failing, grade
from tests.helpers import MISTAKES, with_mistake


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_mistake_is_wrong_on_its_gradient_only(course: Course, dataset: Dataset, mistake: str) -> None:
    """One common mistake fails its gradient alone, with the right diagnosis, its wording (WORDING)
    and no label elsewhere."""
    correct, wrong, broken, label = MISTAKES[mistake]
    source = with_mistake(course.exercise("exercise1").solution.read_text(), correct, wrong)
    report = grade(course, dataset, "exercise1", source)
    assert failing(report) == {broken}
    result = next(g for g in report.gradients if g.name == broken)
    assert result.status.value == ("error" if "raises" in mistake else "wrong")
    assert result.diagnosis == label
    assert [g.name for g in report.gradients if g.diagnosis] == ([broken] if label else [])
    if result.status.value == "wrong" or label is not None:
        assert f"ninja-grade hint exercise1 {broken}" in result.message
    if label is not None:  # says in words which branch, dimension, factor or rows, then what to try
        assert re.search(WORDING[mistake], result.message), result.message
        assert f"Try: {ADVICE[label]}" in result.message
    assert report.score == 25


def test_hard_coded_batch_says_which_case_broke(course: Course, dataset: Dataset) -> None:
    """A formula right only for n = 32 passes the lecture's batch and names the one it failed."""
    correct, wrong, *_ = MISTAKES["hard_coded_32"]
    report = grade(course, dataset, "exercise1",
                   with_mistake(course.exercise("exercise1").solution.read_text(), correct, wrong))
    result = report.gradients[0]
    assert result.case is not None and result.case != "lecture"
    assert result.diagnosis == "hard-coded-batch"
    assert "right on 'lecture' (batch of 32) but wrong on" in result.message
    assert "use n (or Xb.shape[0]) wherever the batch size appears" in result.message


@pytest.mark.parametrize("secret", ["sec4", "sec5"])
def test_a_sign_right_only_where_the_truth_is_zero_is_a_sign_not_a_hard_coded_batch(
        course: Course, dataset: Dataset, secret: str) -> None:
    """db1 negated: its truth is ~0, so it can pass a first case by a hair and fail a fresh batch of another size
    (these classes' secrets draw such batches). No batch size written as a number negates a gradient: it is a
    sign. The first case is the lecture's batch in float64, where the negated ~0 is within the tolerance on
    every machine (in float32, whether it is depends on the order the CPU sums in)."""
    correct, wrong, *_ = MISTAKES["db1_sign_hidden_by_zero"]
    exercise = course.exercise("exercise1")
    source = with_mistake(exercise.solution.read_text(), correct, wrong)
    drawn = draw(course, exercise, secret=secret, source=source)
    first = CaseSpec("lecture in float64", course.cases[0].seed, course.cases[0].batch_size, "float64")
    report = grade(course, dataset, exercise, source, draw=replace(drawn, cases=(first, *drawn.cases[1:])))
    db1 = next(g for g in report.gradients if g.name == "db1")
    assert db1.message.startswith("right on 'lecture in float64' (batch of 32) but wrong on a fresh batch")
    assert db1.diagnosis == "sign" and "the truth with the opposite sign" in db1.message


def test_mistake_spreads_only_in_chained(course: Course, dataset: Dataset) -> None:
    """An early slip fails its own gradient in status, but every later one in chained."""
    correct, wrong, *_ = MISTAKES["sign_flipped"]
    report = grade(course, dataset, "exercise1",
                   with_mistake(course.exercise("exercise1").solution.read_text(), correct, wrong))
    chained = {g.name: g.chained.value for g in report.gradients}
    assert chained["dlogprobs"] == "exact"
    assert chained["dprobs"] == "wrong" and chained["dC"] == "wrong"
    dcounts = next(g for g in report.gradients if g.name == "dcounts")
    assert dcounts.passed and dcounts.chained.value == "wrong"


def test_shape_message_says_what_to_sum(course: Course, dataset: Dataset) -> None:
    """A missing sum over a broadcast dimension is explained in terms of that dimension."""
    correct, wrong, *_ = MISTAKES["missing_sum_over_broadcast"]
    report = grade(course, dataset, "exercise1",
                   with_mistake(course.exercise("exercise1").solution.read_text(), correct, wrong))
    msg = next(g for g in report.gradients if g.name == "dcounts_sum_inv").message
    assert "dcounts_sum_inv has shape (32, 27); counts_sum_inv is (32, 1)" in msg
    assert "sum the gradient over dim 1 with keepdim=True" in msg


def test_transposed_result_is_called_transposed(course: Course, dataset: Dataset) -> None:
    """A transposed matmul result says it looks transposed."""
    correct, wrong, *_ = MISTAKES["transposed_matmul"]
    report = grade(course, dataset, "exercise1",
                   with_mistake(course.exercise("exercise1").solution.read_text(), correct, wrong))
    dW1 = next(g for g in report.gradients if g.name == "dW1")
    assert dW1.diagnosis == "transpose" and "it is the truth transposed" in dW1.message


# mistake -> what its message must say, in words (a regex): which branch, which dimension, keepdim
# or not, which factor. The case that decides may be any batch, so n is matched as a number.
WORDING: dict[str, str] = {
    "accumulator_started_from_ones": r"it is the truth plus 1 everywhere",
    "aliased_then_changed_in_place": r"it was right when assigned at line \d+, then a later line changed it in "
                                     r"place \(through another name that shares its memory\?\)",
    "bias_not_summed": r"db2 has shape \(\d+, 27\); b2 is \(27,\): the sum over dim 0 is missing: b2 was broadcast "
                       r"along dim 0 in the forward pass, so sum the gradient over dim 0",
    "bias_summed_over_features": r"summed over dim 1 with keepdim=True; bnbias was broadcast along dim 0, so sum "
                                 r"over dim 0 with keepdim=True",
    "missing_sum_over_broadcast": r"the sum over dim 1 is missing: counts_sum_inv was broadcast along dim 1 in the "
                                  r"forward pass, so sum the gradient over dim 1 with keepdim=True",
    "wrong_sum_dimension": r"summed over dim 1 with keepdim=True; bngain was broadcast along dim 0",
    "db1_assumed_zero": r"right only because the true db1 is ~0: given other values of dhprebn, it does not "
                        r"change as the true gradient would",
    "logit_maxes_assumed_zero": r"right only because the true dlogit_maxes is ~0",
    "db1_sign_hidden_by_zero": r"it is the truth with the opposite sign",
    "sign_flipped": r"it is the truth with the opposite sign",
    "hard_coded_32": r"right on 'lecture' \(batch of 32\) but wrong on a fresh batch of \d+ \(seed \d+\): there it is "
                     r"[\d.]+ times the truth",
    "hard_coded_31": r"right on 'lecture' \(batch of 32\) but wrong on a fresh batch of \d+ \(seed \d+\)",
    "log_derivative_divides_by_zero": r"dprobs contains NaN \(\d+ of \d+ entries\)",
    "lost_duplicate_indices_in_dC": r"rows of C picked more than once \(like row \d+, \d+ times in this batch\) "
                                    r"hold one contribution instead of their sum",
    "missing_1_over_n": r"it is n = \d+ times the truth",
    "missing_branch_of_bndiff": r"bndiff feeds bndiff2 and bnraw, but only the path through bnraw is counted: the "
                                r"contribution through bndiff2 is missing",
    "missing_branch_of_counts": r"counts feeds counts_sum and probs, but only the path through probs is counted: "
                                r"the contribution through counts_sum is missing",
    "missing_branch_of_hprebn_mean": r"only the path through bndiff is counted: the contribution through bnmeani "
                                     r"is missing",
    "missing_max_branch_of_logits": r"only the path through norm_logits is counted: the contribution through "
                                    r"logit_maxes is missing \(it is ~0 for this batch",
    "n_instead_of_n_minus_1": r"it is \(n-1\)/n = 0\.9\d+ times the truth: n where the forward pass has n-1",
    "power_rule_half_dropped": r"it is 2 times the truth",
    "square_rule_doubled": r"it is 2 times the truth",
    "transposed_matmul": r"dW1 has shape \(64, 30\); W1 is \(30, 64\): it is the truth transposed; check the "
                         r"order of the matmul",
    "bias_summed_over_the_wrong_dim": r"db2 has shape \(32,\); b2 is \(27,\): summed over dim 1; b2 was broadcast "
                                      r"along dim 0, so sum over dim 0",
    "column_sum_over_rows_keepdim": r"dcounts_sum_inv has shape \(1, 27\); counts_sum_inv is \(32, 1\): summed over "
                                    r"dim 0 with keepdim=True; counts_sum_inv was broadcast along dim 1",
    "range_32_raises_elsewhere": r"right on 'lecture' \(batch of 32\) but raises on a fresh batch of \d+ "
                                 r"\(seed \d+\): line \d+: IndexError: .* "
                                 r"\(the 32 on line \d+ is the batch size: write n",
    "view_32_raises_elsewhere": r"right on 'lecture' \(batch of 32\) but raises on a fresh batch of \d+ "
                                r"\(seed \d+\): line \d+: RuntimeError: .* "
                                r"\(the 32 on line \d+ is the batch size: write n",
    "right_only_through_broadcasting": r"dbndiff2 has shape \(1, 64\); bndiff2 is \(32, 64\): its values are right, "
                                       r"repeated along dim 0, which is why the lecture's cmp passes it",
    "view_scrambled": r"it holds the truth's numbers viewed as \(\d+, 10, 3\), then with dims 1 and 2 swapped: a view "
                      r"keeps the numbers in their order, so view straight to \(\d+, 3, 10\) \(emb's shape\) with no "
                      r"transpose",
    "power_one_too_high": r"it is the truth times counts_sum: the local derivative through counts_sum_inv = "
                          r"counts_sum\*\*-1 has a factor counts_sum too many",
    "gain_forgotten": r"it is the truth divided by bngain: the local derivative through hpreact = bngain \* bnraw \+ "
                      r"bnbias has a factor bngain missing",
    "log_derivative_upside_down": r"it is the truth times probs\*\*2: the local derivative through logprobs = "
                                  r"probs.log\(\) has two factors probs too many",
    "factor_forgotten_inside_the_sum": r"it is the truth with each term of its sum over dim 1 divided by counts: the "
                                       r"local derivative through probs = counts \* counts_sum_inv has a factor "
                                       r"counts missing",
    "forward_power_kept": r"it is the truth times \(bnvar \+ 1e-5\): the local derivative through bnvar_inv = "
                          r"\(bnvar \+ 1e-5\)\*\*-0.5 has a factor \(bnvar \+ 1e-5\) too many",
    "one_branch_without_its_factor": r"it is the truth with its contribution through probs divided by "
                                     r"counts_sum_inv: the local derivative through probs = counts \* counts_sum_inv "
                                     r"has a factor counts_sum_inv missing",
    "tanh_derivative_times_h": r"it is the truth times h: the local derivative through h = torch.tanh\(hpreact\) "
                               r"has a factor h too many",
    "eps_dropped": r"it is the truth without the forward pass's epsilon: bnvar_inv = \(bnvar \+ 1e-5\)\*\*-0.5 adds "
                   r"1e-5 to bnvar, and your formula leaves it out",
    "viewed_in_another_order": r"demb has shape \(10, 3, \d+\); emb is \(\d+, 3, 10\): its numbers are right and in "
                               r"the right order, so view it as \(\d+, 3, 10\), emb's shape",
    "matmul_without_T_raises": r"line \d+: RuntimeError: mat1 and mat2 shapes cannot be multiplied \(\d+x64 and "
                               r"30x64\): you multiplied dhprebn \(\d+x64\) by W1 \(30x64\); from hprebn = embcat @ "
                               r"W1 \+ b1, dembcat = dhprebn @ W1.T",
    "matmul_of_dh_without_T_raises": r"you multiplied dlogits \(\d+x27\) by W2 \(64x27\); from logits = h @ W2 \+ b2, "
                                     r"dh = dlogits @ W2.T",
    "matmul_of_dW1_without_T_raises": r"you multiplied embcat \(\d+x30\) by dhprebn \(\d+x64\); from hprebn = "
                                      r"embcat @ W1 \+ b1, dW1 = embcat.T @ dhprebn",
}


def test_every_labelled_mistake_has_its_wording() -> None:
    """Each mistake with a label has the words its message must say, and no other mistake does."""
    assert set(WORDING) == {name for name, (*_, label) in MISTAKES.items() if label is not None}


# exercise -> mistake -> (text in the solution, what the student wrote instead, the label it must get,
# what the message must say). The fused formulas get their labels from their terms (grader/judging/diagnose.py).
FUSED: dict[str, dict[str, tuple[str, str, str, str]]] = {
    "exercise2": {
        "without_the_one_hot_term": ("dlogits[range(n), Yb] -= 1", "pass", "missing-branch",
                                     r"the one-hot term \(the path through logprobs\[range\(n\), Yb\]\) is "
                                     r"missing from the formula: subtract F.one_hot\(Yb, vocab_size\) / n"),
        "without_1_over_n": ("dlogits /= n", "pass", "scale", r"it is n = 32 times the truth"),
        "sign_flipped": ("dlogits /= n", "dlogits /= -n", "sign", r"it is the truth with the opposite sign"),
        "hard_coded_32": ("dlogits /= n", "dlogits /= 32", "hard-coded-batch",
                          r"right on 'lecture' \(batch of 32\) but wrong on .*\(the 32 on line \d+ is the batch "
                          r"size: write n"),
    },
    "exercise3": {
        "without_bessel": ("n / (n - 1)", "1.0", "bessel",
                           r"the batch-variance term carries \(n-1\)/n = 0\.96\d+ of its weight: n where the "
                           r"forward pass has n-1"),
        "variance_term_sign": ("- n / (n - 1) * bnraw", "+ n / (n - 1) * bnraw", "sign",
                               r"the batch-variance term of the formula has the wrong sign"),
        "without_the_mean_term": ("- dhpreact.sum(0) ", " ", "missing-branch",
                                  r"hprebn feeds bnmeani and bndiff, but only the path through bndiff is counted: "
                                  r"the contribution through bnmeani is missing"),
        "without_1_over_n": ("bnvar_inv / n * (  # (32, 64)", "bnvar_inv * (  # (32, 64)", "scale",
                             r"it is n = 32 times the truth"),
        "without_bngain": (
            "dhprebn = bngain * bnvar_inv / n * (  # (32, 64)", "dhprebn = bnvar_inv / n * (", "factor",
            r"it is the truth divided by bngain: your formula has a factor bngain missing \(bngain comes in at "
            r"hpreact = bngain \* bnraw \+ bnbias\)"),
        "variance_factor_squared": (
            "dhprebn = bngain * bnvar_inv / n * (  # (32, 64)", "dhprebn = bngain * bnvar_inv**2 / n * (", "factor",
            r"it is the truth times bnvar_inv: your formula has a factor bnvar_inv too many \(bnvar_inv = "
            r"\(bnvar \+ 1e-5\)\*\*-0.5\)"),
    },
}


@pytest.mark.parametrize(("exercise_id", "mistake"), [(e, m) for e, ms in FUSED.items() for m in ms])
def test_fused_mistake_is_named(course: Course, dataset: Dataset, exercise_id: str, mistake: str) -> None:
    """In exercises 2 and 3 the common slips get their label and words, as in exercise 1: a missing
    term, a term's sign, the Bessel factor, 1/n, a hard-coded 32."""
    correct, wrong, label, words = FUSED[exercise_id][mistake]
    report = grade(course, dataset, exercise_id,
                   with_mistake(course.exercise(exercise_id).solution.read_text(), correct, wrong))
    (result,) = report.gradients
    assert result.status.value == "wrong" and result.diagnosis == label, result.message
    assert re.search(words, result.message), result.message
    assert f"Try: {ADVICE[label]}" in result.message
