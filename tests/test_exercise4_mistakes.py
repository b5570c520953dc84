"""Exercise 4 scores what the student's backward pass really computes.

In exercise 4 only the parameter gradients are graded; the intermediates (dlogits ...
demb) are not. So a parameter gradient is judged on the value the code as written
produces, at every checkpoint, and a mistake in an intermediate costs the points of
exactly the parameter gradients it reaches, naming the intermediate at fault.

Each mistake is the course's solution with one edit, applied exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from grader.courseware.course import Course
from grader.courseware.data import Dataset
from grader.judging import judge
from grader.judging.results import Report
from tests.conftest import SUBMISSIONS, Cli, MechanismOff, failing, grade
from tests.helpers import with_mistake

PARAMS = {"dW2", "db2", "dbngain", "dbnbias", "dW1", "db1", "dC"}
# Everything a wrong dlogits reaches. db1 is not among them: a batchnorm's input gradient sums
# to zero over the batch whatever comes into it, so the true db1 is ~0 and so is the student's.
BELOW_DLOGITS = PARAMS - {"db1"}

# name -> (text in the solution, what the student wrote instead, the gradients it breaks,
#          the intermediate to blame (None: the gradient's own line), the diagnosis label or None)
MISTAKES: dict[str, tuple[str, str, set[str], str | None, str | None]] = {
    "dlogits_without_1_over_n": ("F.one_hot(Yb, logits.shape[1])) / n", "F.one_hot(Yb, logits.shape[1]))",
                                 BELOW_DLOGITS, "dlogits", "scale"),
    "dlogits_sign_flipped": ("dlogits = (F.softmax", "dlogits = -(F.softmax", BELOW_DLOGITS, "dlogits", "sign"),
    "fused_batchnorm_without_bessel": ("- n / (n - 1) * bnraw * dbngain", "- bnraw * dbngain",
                                       {"dW1", "dC"}, "dhprebn", "bessel"),
    "dlogits_without_one_hot": ("F.softmax(logits, 1) - F.one_hot(Yb, logits.shape[1])", "F.softmax(logits, 1)",
                                BELOW_DLOGITS, "dlogits", "missing-branch"),
    "db2_summed_over_the_wrong_dim": ("db2 = dlogits.sum(0)", "db2 = dlogits.sum(1)", {"db2"}, None, "shape"),
    "tanh_derivative_wrong": ("dhpreact = (1.0 - h * h) * dh", "dhpreact = (1.0 - h) * dh",
                              {"dbngain", "dbnbias", "dW1", "dC"}, "dhpreact", None),
    "dh_from_an_untransposed_W2": ("dh = dlogits @ W2.T", "dh = (dlogits @ W2.T) * 2.0",
                                   {"dbngain", "dbnbias", "dW1", "dC"}, "dh", "scale"),
    "transposed_matmul_in_dW2": ("dW2 = h.T @ dlogits", "dW2 = dlogits.T @ h", {"dW2"}, None, "transpose"),
    "fused_batchnorm_without_bngain": ("dhprebn = (bngain * bnvar_inv / n)", "dhprebn = (bnvar_inv / n)",
                                       {"dW1", "dC"}, "dhprebn", "factor"),
    "tanh_derivative_times_h": ("dhpreact = (1.0 - h * h) * dh", "dhpreact = (1.0 - h * h) * dh * h",
                                {"dbngain", "dbnbias", "dW1", "dC"}, "dhpreact", "factor"),
    "lost_duplicate_indices_in_dC": (
        "dC = torch.zeros_like(C).index_add_(0, Xb.view(-1), demb.view(-1, demb.shape[2]))",
        "dC = torch.zeros_like(C)\ndC[Xb] += demb", {"dC"}, None, "duplicate-indices"),
}


def grade_mistake(course: Course, dataset: Dataset, mistake: str) -> Report:
    correct, wrong, *_ = MISTAKES[mistake]
    return grade(course, dataset, "exercise4",
                 with_mistake(course.exercise("exercise4").solution.read_text(), correct, wrong))


@pytest.mark.slow
@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_exercise4_mistake_costs_exactly_what_it_reaches(course: Course, dataset: Dataset,
                                                         mistake: str) -> None:
    """A wrong backward pass loses the points of exactly the parameter gradients its mistake reaches,
    each naming the intermediate at fault (or its own line), and never passes."""
    _, _, broken, blame, label = MISTAKES[mistake]
    report = grade_mistake(course, dataset, mistake)
    assert failing(report) == broken
    assert report.score == len(PARAMS) - len(broken) and not report.passed
    assert report.training is not None and not report.training.agreed
    for g in report.gradients:
        if g.name not in broken:
            continue
        assert g.status.value == "wrong" and g.judged == "as written"
        assert g.blame == blame, g.message
        assert g.diagnosis == label, g.message
        if blame is not None:
            assert g.isolated is not None and g.isolated.passed
            assert g.message.startswith(f"{g.name}'s own line is right; it is wrong because {blame} (line ")
        else:
            assert g.isolated is not None and not g.isolated.passed
        assert f"ninja-grade hint exercise4 {g.name}" in g.message


@pytest.mark.slow
def test_exercise4_blame_says_what_the_intermediate_is(course: Course, dataset: Dataset) -> None:
    """The blame carries the intermediate's own diagnosis and the line it is written on."""
    report = grade_mistake(course, dataset, "dlogits_without_1_over_n")
    dW2 = next(g for g in report.gradients if g.name == "dW2")
    line = next(i for i, text in enumerate(course.exercise("exercise4").solution.read_text().splitlines(), 1)
                if text.startswith("dlogits ="))
    assert f"because dlogits (line {line}) is wrong: it is n = 32 times the truth [scale]" in dW2.message
    assert "Try: look for a factor you dropped or added" in dW2.message


@pytest.mark.slow
def test_exercise4_own_mistake_and_upstream_mistake_are_both_named(course: Course,
                                                                   dataset: Dataset) -> None:
    """A gradient whose own line is wrong, computed from a wrong intermediate, is told about both."""
    source = with_mistake(course.exercise("exercise4").solution.read_text(), *MISTAKES["dlogits_without_1_over_n"][:2])
    source = with_mistake(source, "dW2 = h.T @ dlogits", "dW2 = 0.5 * h.T @ dlogits")
    report = grade(course, dataset, "exercise4", source)
    dW2 = next(g for g in report.gradients if g.name == "dW2")
    assert dW2.status.value == "wrong" and dW2.isolated is not None and dW2.isolated.value == "wrong"
    assert dW2.diagnosis == "scale" and dW2.blame is None
    assert dW2.message.startswith("it is 1/2 times the truth")
    assert "; dlogits (line" in dW2.message and "is wrong: it is n = 32 times the truth [scale] too" in dW2.message


@pytest.mark.slow
def test_exercise4_right_written_the_long_way_scores_full(course: Course, dataset: Dataset) -> None:
    """Unfused batchnorm, cross-entropy in place and a loop for dC: right, so 7/7 and passed."""
    report = grade(course, dataset, "exercise4",
                   (SUBMISSIONS / "exercise4" / "correct_unfused_batchnorm_loop_dC.py").read_text())
    assert report.passed and report.score == 7, [(g.name, g.message) for g in report.gradients if not g.passed]
    assert {g.judged for g in report.gradients} == {"as written"}
    assert report.training is not None and report.training.agreed


def renamed_intermediates(source: str) -> str:
    """The solution with every intermediate under a name the grader does not know (gh, glogits...)."""
    for name in ("dlogits", "dhpreact", "dhprebn", "demb", "dh"):
        source = source.replace(name, name.replace("d", "g", 1))
    return source


@pytest.mark.slow
def test_exercise4_right_under_other_names_scores_full(course: Course, dataset: Dataset) -> None:
    """Intermediates under the student's own names: nothing to swap for the truth, and still 7/7, with
    nothing to say: the random values of the vector-Jacobian check go to the student's own variables."""
    report = grade(course, dataset, "exercise4",
                   renamed_intermediates(course.exercise("exercise4").solution.read_text()))
    assert report.passed and report.score == 7, [(g.name, g.message) for g in report.gradients if not g.passed]
    assert all(g.blame is None and g.diagnosis is None and not g.message for g in report.gradients)


ONE_NAME_FOR_EVERY_INTERMEDIATE = """
g = (F.softmax(logits, 1) - F.one_hot(Yb, logits.shape[1])) / n
dW2 = h.T @ g
db2 = g.sum(0)
g = (g @ W2.T) * (1.0 - h * h)
dbngain = (bnraw * g).sum(0, keepdim=True)
dbnbias = g.sum(0, keepdim=True)
g = (bngain * bnvar_inv / n) * (n * g - dbnbias - n / (n - 1) * bnraw * dbngain)
dW1 = embcat.T @ g
db1 = g.sum(0)
g = (g @ W1.T).view(emb.shape)
dC = torch.zeros_like(C).index_add_(0, Xb.view(-1), g.view(-1, g.shape[2]))
"""

# How honest code with its own names for the intermediates writes them.
HONEST_OWN_NAMES = ("renamed", "one name for every intermediate", "a copy for each line",
                    "torch imported, functions called", "the names reused after")


def own_names_source(solution: str, how: str) -> str:
    """The solution as honest code with its own names writes it (HONEST_OWN_NAMES)."""
    if how == "one name for every intermediate":
        return ONE_NAME_FOR_EVERY_INTERMEDIATE
    source = renamed_intermediates(solution)
    if how == "a copy for each line":
        return with_mistake(source, "dW1 = embcat.T @ ghprebn", "g2 = ghprebn.clone()\ndW1 = embcat.T @ g2")
    if how == "torch imported, functions called":
        source = with_mistake(source, "db1 = ghprebn.sum(0)", "db1 = torch.sum(ghprebn, 0)")
        source = with_mistake(source, "dW1 = embcat.T @ ghprebn", "dW1 = torch.matmul(embcat.T, ghprebn)")
        return "import torch\n" + source
    if how == "the names reused after":
        return source + "\nghprebn = None\nglogits = 0\n"
    return source


@pytest.mark.slow
@pytest.mark.parametrize("how", HONEST_OWN_NAMES)
def test_exercise4_zeros_for_db1_fail_under_any_names(course: Course, dataset: Dataset, how: str,
                                                     mechanism_off: MechanismOff) -> None:
    """Zeros match the true db1 (~0) on every value check. Under the student's own names for the
    intermediates, written as honest code writes them, the right db1 passes with nothing to say, and zeros
    fail: the random dhprebn goes to the variable that holds the true dhprebn where db1's and dW1's lines
    read it."""
    source = own_names_source(course.exercise("exercise4").solution.read_text(), how)
    right = grade(course, dataset, "exercise4", source)
    assert right.score == 7 and not [g.message for g in right.gradients if g.message]
    db1 = next(line for line in source.splitlines() if line.startswith("db1 = "))

    def zeros_fail() -> None:
        report = grade(course, dataset, "exercise4", with_mistake(source, db1, "db1 = torch.zeros_like(b1)"))
        assert failing(report) == {"db1"} and report.score == 6
        got = next(g for g in report.gradients if g.name == "db1")
        assert got.diagnosis == "coincidence" and got.message.startswith("right only because the true db1 is ~0")

    zeros_fail()
    if how == HONEST_OWN_NAMES[0]:
        mechanism_off(zeros_fail, lambda m: m.setattr(judge, "held", lambda candidates, plain, case: {}),
                      "finding the student's own variable for dhprebn")


@pytest.mark.slow
def test_exercise4_in_one_block_is_judged_on_values_and_says_so(course: Course, dataset: Dataset) -> None:
    """A backward pass inside one `with torch.no_grad():` block gives nowhere to set random values before
    db1's line: right code still scores 7/7, and db1 says it was judged on its values alone."""
    lines = [line for line in course.exercise("exercise4").solution.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    report = grade(course, dataset, "exercise4", "with torch.no_grad():\n" + "".join(f"    {x}\n" for x in lines))
    assert report.score == 7 and report.passed
    notes = {g.name: g.message for g in report.gradients if g.message}
    assert set(notes) == {"db1"} and notes["db1"].startswith("the true db1 is ~0, so its values cannot show")


@pytest.mark.slow
def test_exercise4_wrong_under_other_names_still_fails_without_guessing(course: Course,
                                                                        dataset: Dataset) -> None:
    """With unknown intermediate names a wrong value still fails on what it is, and nothing is
    blamed or labelled that the grader could not check: no variable holds the true dhprebn, so there is
    nowhere to hand random values to, and db1 (~0) is judged on its values, saying so."""
    source = renamed_intermediates(course.exercise("exercise4").solution.read_text())
    report = grade(course, dataset, "exercise4", with_mistake(source, *MISTAKES["dlogits_without_1_over_n"][:2]))
    assert failing(report) == BELOW_DLOGITS
    dW2 = next(g for g in report.gradients if g.name == "dW2")
    assert dW2.blame is None and dW2.diagnosis == "scale" and dW2.message.startswith("it is n = 32 times the truth")
    db1 = next(g for g in report.gradients if g.name == "db1")
    assert db1.passed and db1.diagnosis is None
    assert "judged on its values alone" in db1.message


@pytest.mark.slow
def test_exercise4_every_format_tells_the_same_score(cli: Cli, course: Course, tmp_path: Path) -> None:
    """dlogits without / n, a wrong intermediate that every parameter gradient reads, through the real
    CLI: text, JSON, JUnit and Gradescope all give 1 of 7, never full marks."""
    wrong = tmp_path / "exercise4.py"
    wrong.write_text(with_mistake(course.exercise("exercise4").solution.read_text(),
                                  *MISTAKES["dlogits_without_1_over_n"][:2]))
    text = cli(["exercise4", str(wrong)])
    assert text.exit_code == 1 and "1/7 gradients correct" in text.output
    as_json = cli(["exercise4", str(wrong), "--format", "json"])
    report = json.loads(as_json.stdout)
    assert (report["score"], report["max_score"], report["passed"]) == (1, 7, False)
    assert {g["name"] for g in report["gradients"] if g["status"] == "wrong"} == BELOW_DLOGITS
    assert all(g["blame"] == "dlogits" for g in report["gradients"] if g["status"] == "wrong")
    junit = cli(["exercise4", str(wrong), "--format", "junit"])
    suite = ElementTree.fromstring(junit.stdout).find("testsuite")
    assert suite is not None
    failed = {case.get("name") for case in suite.iter("testcase") if case.find("failure") is not None}
    assert failed == {*BELOW_DLOGITS, "training run"}
    out = tmp_path / "results.json"
    gradescope = cli(["exercise4", str(wrong), "--format", "gradescope", "--output", str(out)])
    assert gradescope.exit_code == 1
    results = json.loads(out.read_text())
    assert results["score"] == sum(t["score"] for t in results["tests"]) == 1
