"""Verdicts on odd values: non-tensors, NaN, dtypes, shapes, early exits, in-place edits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from grader.courseware.course import Course, load_course
from grader.courseware.data import Dataset
from grader.courseware.notebooks import build_notebook
from tests.conftest import ROOT, Cli, grade

SOLUTION2 = "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\ndlogits /= n\n"


def only(report):  # type: ignore[no-untyped-def]
    (g,) = report.gradients
    return g


@pytest.mark.parametrize(
    ("source", "status", "words"),
    [
        ("dlogits = [[0.0] * 27] * n", "error", "is a list, not a torch.Tensor of shape (32, 27)"),
        ("dlogits = F.softmax(logits, 1).numpy()", "error", "is a ndarray, not a torch.Tensor"),
        ("dlogits = 'softmax minus one-hot'", "error", "is a str, not a torch.Tensor"),
        ("dlogits = ...", "missing", "not written yet"),
        ("dlogits = torch.zeros_like(logits, dtype=torch.long)", "wrong", "has dtype torch.int64"),
        (SOLUTION2 + "dlogits[0, 0] = float('nan')", "wrong", "contains NaN (1 of"),
        (SOLUTION2 + "dlogits = dlogits / 0", "wrong", "contains inf"),
        ("dlogits = torch.zeros(n, 28)", "wrong", "a gradient always has the shape of its tensor"),
        ("raise SystemExit(0)\n" + SOLUTION2, "error", "your code ended early (line 1: SystemExit: 0)"),
        ("raise ValueError('not today')\n" + SOLUTION2, "pass", None),
        ("dlogits = 1 / 0", "error", "line 1: ZeroDivisionError: division by zero"),
    ],
)
def test_odd_values_get_a_verdict_and_a_reason(course: Course, dataset: Dataset, source: str, status: str,
                                               words: str | None) -> None:
    """Every odd value of dlogits is judged, never crashes, and the message says why; an exception
    in a line that does not compute it costs it nothing, and leaves no complaint on it."""
    g = only(grade(course, dataset, "exercise2", source))
    if words is None:
        assert g.passed and g.message == ""
    else:
        assert g.status.value == status and words in g.message


def test_float64_gradient_is_judged_with_a_note(course: Course, dataset: Dataset) -> None:
    """A right gradient in float64 passes, and the note says it was cast."""
    g = only(grade(course, dataset, "exercise2", SOLUTION2 + "dlogits = dlogits.double()"))
    assert g.passed and "dtype torch.float64 judged as torch.float32" in g.message


RIGHT_IN_ONE = "dlogits = (F.softmax(logits, 1) - F.one_hot(Yb, vocab_size).float()) / n\n"


@pytest.mark.parametrize(("source", "passed"), [
    (RIGHT_IN_ONE + "dlogits[0, 0] += 1\ndlogits *= 2\n", False),  # right where assigned, then spoilt in place
    (SOLUTION2, True),  # wrong where assigned (softmax alone), then made right in place
])
def test_changed_in_place_after_assignment_is_judged_on_final_value(course: Course, dataset: Dataset, source: str,
                                                                    passed: bool) -> None:
    """Like cmp, a gradient is judged on its value when the code ends, not where it is assigned: the
    value at its only assignment gives the other verdict, so no other rule passes both."""
    assert only(grade(course, dataset, "exercise2", source)).passed is passed
    assignment = source.splitlines(keepends=True)[0]
    assert only(grade(course, dataset, "exercise2", assignment)).passed is not passed  # the value where it was assigned


def test_exercise3_gets_the_true_dhpreact(course: Course, dataset: Dataset) -> None:
    """Exercise 3 hands the student dhpreact; dhprebn computed from it through the atoms passes."""
    atomic = (
        "dbnraw = bngain * dhpreact\n"
        "dbndiff = bnvar_inv * dbnraw\n"
        "dbnvar_inv = (bndiff * dbnraw).sum(0, keepdim=True)\n"
        "dbnvar = -0.5 * (bnvar + 1e-5) ** -1.5 * dbnvar_inv\n"
        "dbndiff += 2 * bndiff * dbnvar / (n - 1)\n"
        "dhprebn = dbndiff - dbndiff.sum(0, keepdim=True) / n\n"
    )
    assert only(grade(course, dataset, "exercise3", atomic)).passed


def test_statement_order_does_not_matter(course: Course, dataset: Dataset) -> None:
    """Gradients computed in a different order from the lecture's are judged the same."""
    lines = course.exercise("exercise1").solution.read_text().split("\n\n")
    # Move the whole batchnorm-gain block (dbngain, dbnbias, dbnraw) after dbnvar_inv's
    # paragraph cannot work (dbnvar_inv needs dbnraw), so swap two independent ones.
    i = next(k for k, p in enumerate(lines) if p.startswith("# logits = h @ W2 + b2"))
    block = lines[i].splitlines()
    lines[i] = "\n".join([block[0], block[3], block[2], block[1]])  # db2, dW2, dh
    report = grade(course, dataset, "exercise1", "\n\n".join(lines))
    assert report.passed


SCALED = SOLUTION2 + "dlogits = dlogits * (1 + {k})\n"  # every entry off by k of itself
SHIFTED = SOLUTION2 + "dlogits = dlogits + {d}\n"  # every entry off by d


@pytest.mark.parametrize(("source", "status"), [
    (SOLUTION2, "approximate"),  # the lecture's formula is not bit-equal to autograd's here
    (SCALED.format(k=0.5e-5), "approximate"),  # inside rtol 1e-5
    (SCALED.format(k=3e-5), "wrong"),  # outside it, on the largest entries
    (SHIFTED.format(d=0.5e-8), "approximate"),  # inside atol 1e-8 (and rtol's share)
    (SHIFTED.format(d=5e-7), "wrong"),  # over atol plus rtol's share of every entry (|dlogits| <= 1/32)
])
def test_approximate_verdict_has_torch_allclose_edges(course: Course, dataset: Dataset, source: str,
                                                      status: str) -> None:
    """`approximate` is torch.allclose with the default rtol 1e-5, atol 1e-8: a value just inside
    passes, one just outside is wrong, and the message gives the tolerance it missed. No label is
    claimed for a difference too small for a diagnosis to tell from float error."""
    g = only(grade(course, dataset, "exercise2", source))
    assert g.status.value == status, g.message
    if source == SCALED.format(k=3e-5):
        assert g.diagnosis is None and "is over the tolerance (rtol 1e-05, atol 1e-08)" in g.message
    if source == SHIFTED.format(d=5e-7):  # 5e-7 on entries up to 1/32: under what a label can resolve (1e-4)
        assert g.diagnosis is None and "is over the tolerance (rtol 1e-05, atol 1e-08)" in g.message


def test_tolerance_in_course_yaml_takes_effect(tmp_path: Path, dataset: Dataset) -> None:
    """A gradient's own rtol in course.yaml changes its verdict: 3e-5 off is wrong by default and
    approximate under rtol 1e-4."""
    spec = yaml.safe_load((ROOT / "course.yaml").read_text())
    exercise2 = next(e for e in spec["exercises"] if e["id"] == "exercise2")
    exercise2["gradients"][0]["rtol"] = 1e-4
    spec["forward"] = str(ROOT / spec["forward"])
    for exercise in spec["exercises"]:
        exercise["stub"], exercise["solution"] = str(ROOT / exercise["stub"]), str(ROOT / exercise["solution"])
    (tmp_path / "course.yaml").write_text(yaml.safe_dump(spec))
    loose = load_course(tmp_path / "course.yaml")
    assert loose.exercise("exercise2").gradients[0].tolerance.rtol == 1e-4
    report = grade(loose, dataset, "exercise2", SCALED.format(k=3e-5))
    assert only(report).status.value == "approximate"


USED_TOO_EARLY = ("dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(bndiff2) * dbnvar",
                  "dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(dbndiff) * dbnvar")


def test_name_used_before_it_is_assigned_names_both_lines(course: Course, dataset: Dataset) -> None:
    """torch.ones_like(dbndiff) one line before dbndiff is first assigned (it ran in the student's
    notebook only on a stale kernel value): that gradient's error names both lines and says why;
    the gradients after it are judged as usual."""
    solution = course.exercise("exercise1").solution.read_text()
    assert solution.count(USED_TOO_EARLY[0]) == 1
    source = solution.replace(*USED_TOO_EARLY)
    lines = source.splitlines()
    used = next(i for i, x in enumerate(lines, 1) if x.startswith("dbndiff2 ="))
    assigned = next(i for i, x in enumerate(lines, 1) if x.startswith("dbndiff ="))
    report = grade(course, dataset, "exercise1", source)
    results = {g.name: g for g in report.gradients}
    assert {name for name, g in results.items() if not g.passed} == {"dbndiff2"}
    assert results["dbndiff2"].message.startswith(
        f"line {used}: dbndiff is used before line {assigned} assigns it (in a notebook this runs only while the "
        "kernel still holds an older value; restart and run all to see it)")


def test_name_used_before_it_is_assigned_in_a_notebook_names_cells(cli: Cli, course: Course, tmp_path: Path) -> None:
    """The same in a course notebook: both lines are given as cells and lines of the notebook."""
    exercise = course.exercise("exercise1")
    mistaken = tmp_path / "mine.py"
    mistaken.write_text(exercise.solution.read_text().replace(*USED_TOO_EARLY))
    notebook = tmp_path / "mine.ipynb"
    nbformat.write(build_notebook(course, exercise, mistaken), str(notebook))
    report = json.loads(cli(["exercise1", str(notebook), "--format", "json"]).stdout)
    dbndiff2 = next(g for g in report["gradients"] if g["name"] == "dbndiff2")
    assert re.match(r"cell \d+, line \d+: dbndiff is used before cell \d+, line \d+ assigns it", dbndiff2["message"])


def test_graded_code_reads_the_lectures_data(course: Course, dataset: Dataset) -> None:
    """The lecture's data is in the graded namespace (words chars stoi itos Xtr ... Yte), so a line that
    reads it runs as in the notebook and the gradient is judged as usual."""
    solution = course.exercise("exercise1").solution.read_text()
    line = "num_classes=logits.shape[1]"
    assert solution.count(line) == 1
    # db2 keeps its value only if every data name is there and looks as the lecture builds it
    source = solution.replace(line, "num_classes=len(itos)") + (
        "\ndb2 = db2 if (len(words) > 1000 and chars[0] == 'a' and stoi['.'] == 0 and itos[1] == 'a'"
        " and Xtr.shape[1] == 3 and Ytr.shape == Xtr.shape[:1] and Xdev.dtype == Xte.dtype == torch.long"
        " and Ydev.ndim == Yte.ndim == 1) else None\n")
    report = grade(course, dataset, "exercise1", source)
    assert report.passed, [(g.name, g.message) for g in report.gradients if not g.passed]


def test_statement_sharing_a_line_with_a_refused_one_is_left_out_and_said(course: Course, dataset: Dataset) -> None:
    """`...; dlogits /= n; x = logits.grad` on one line: the line goes as a whole, and the gradient it
    computed is error saying why, never silently missing."""
    g = only(grade(course, dataset, "exercise2", SOLUTION2.replace("\n", "; ").rstrip("; ") + "; x = logits.grad\n"))
    assert g.status.value == "error"
    assert g.message.startswith("line 1: not run: it shares its line with a statement that was refused")
