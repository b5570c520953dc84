"""What the tests share beyond fixtures: how a set-up error must look, the proof that a protection's
check can fail, a course copied to change, a batch's gradebook read back, docs/DESIGN.md's JSON
examples, exercise 1's common mistakes (`MISTAKES`, `with_mistake`) and what each fixture notebook
must be graded as (`NOTEBOOK_GRADES`). Fixtures, `grade` and the CLI's `cli` are in conftest.py.

A test of a protection (escaping, atomic writes, the data's lookup order...) runs its own check
twice: once as the code is, where it must pass, and once with the mechanism switched off, where it
must fail. A check that still passes with its mechanism gone proves nothing, and `check_fails_without`
says so.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

ROOT = Path(__file__).resolve().parent.parent

Check = Callable[[], object]
SwitchOff = Callable[[pytest.MonkeyPatch], object]


def assert_setup_error(result: Result, *words: str) -> str:
    """`result` (of CliRunner) is a set-up error as docs/DESIGN.md has it: exit 2, nothing on stdout,
    and on stderr one line that starts "ninja-grade: " and holds each of `words`. Returns that line."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stdout == "", f"a set-up error printed on stdout: {result.stdout!r}"
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), f"not one line: {result.stderr!r}"
    line = result.stderr.rstrip("\n")
    assert line.startswith("ninja-grade: "), line
    for word in words:
        assert word in line, (word, line)
    return line


def check_fails_without(monkeypatch: pytest.MonkeyPatch, check: Check, switch_off: SwitchOff, mechanism: str) -> None:
    """Run `check` with `switch_off` applied (it monkeypatches the mechanism away): the check must
    fail there. The patches are undone before this returns, whatever happens."""
    with monkeypatch.context() as patched:
        switch_off(patched)
        try:
            check()
        except AssertionError:
            return
    pytest.fail(f"the check still passes with {mechanism} switched off: it cannot catch that mechanism breaking")


def copy_course(into: Path, course: Path = ROOT) -> Path:
    """The course in the folder `course` (the lecture's, or examples/layernorm) as files of its own in `into`,
    to change: its course.yaml, its forward file, its stubs and its solutions. Returns `into`."""
    forward = yaml.safe_load((course / "course.yaml").read_text())["forward"]
    into.mkdir(parents=True, exist_ok=True)
    for part in ("course.yaml", forward, "exercises", "solutions"):
        if (course / part).is_dir():
            shutil.copytree(course / part, into / part)
        else:
            shutil.copy(course / part, into / part)
    return into


def gradebook_rows(path: Path) -> list[dict[str, str]]:
    """A batch's CSV gradebook (OUT/gradebook.csv, or the file --gradebook names): its rows in order, each
    by column name. A roster's entry with no submission is a row whose student is empty."""
    with path.open() as f:
        return list(csv.DictReader(f))


def read_gradebook(path: Path) -> dict[str, dict[str, str]]:
    """A batch's CSV gradebook as student -> their row."""
    return {row["student"]: row for row in gradebook_rows(path)}


def no_escape(text: str, quote: bool = True) -> str:
    """html.escape switched off: the text as it came."""
    return text



DESIGN = ROOT / "docs" / "DESIGN.md"


def design_json_examples() -> list[Any]:
    """The JSON examples of docs/DESIGN.md's "The JSON report" contract, in order: a report, then a
    training exercise's `training`."""
    section = DESIGN.read_text(encoding="utf-8").split("## The JSON report (**contract**)")[1].split("\n## ")[0]
    return [json.loads(block.split("```")[0]) for block in section.split("```json\n")[1:]]


def _kind(value: object) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}[type(value)]


def assert_shaped_as(documented: object, actual: object, where: str = "report") -> None:
    """`actual` (a report as the CLI wrote it) has exactly the documented fields at every level, and
    the documented field's JSON type wherever the documented value is not null; each item of a list
    is shaped as the documented list's first item."""
    if documented is not None:
        assert _kind(actual) == _kind(documented), f"{where} is {_kind(actual)}, documented as {_kind(documented)}"
    if isinstance(documented, dict) and isinstance(actual, dict):
        assert set(actual) == set(documented), (
            f"{where}: written but not documented {sorted(set(actual) - set(documented))}, "
            f"documented but not written {sorted(set(documented) - set(actual))}")
        for key, value in documented.items():
            assert_shaped_as(value, actual[key], f"{where}.{key}")
    elif isinstance(documented, list) and documented and isinstance(actual, list):
        for i, item in enumerate(actual):
            assert_shaped_as(documented[0], item, f"{where}[{i}]")


DC_LOOP = """for k in range(Xb.shape[0]):
    for j in range(Xb.shape[1]):
        dC[Xb[k, j]] += demb[k, j]"""

# Exercise 1's common mistakes (tests/test_mistakes.py grades each), each a one-edit change to the solution:
# name -> (text in the solution, what the student wrote instead, the gradient it breaks,
#          the diagnosis it must get, or None where no transformation of the truth explains it)
MISTAKES: dict[str, tuple[str, str, str, str | None]] = {
    "missing_1_over_n": ("dlogprobs[range(n), Yb] = -1.0 / n", "dlogprobs[range(n), Yb] = -1.0", "dlogprobs", "scale"),
    "sign_flipped": ("dprobs = (1.0 / probs) * dlogprobs", "dprobs = -(1.0 / probs) * dlogprobs", "dprobs", "sign"),
    "missing_sum_over_broadcast": (
        "dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)",
        "dcounts_sum_inv = counts * dprobs", "dcounts_sum_inv", "shape"),
    "wrong_sum_dimension": (
        "dbngain = (bnraw * dhpreact).sum(0, keepdim=True)",
        "dbngain = (bnraw * dhpreact).sum(1, keepdim=True)", "dbngain", "shape"),
    "bias_not_summed": ("db2 = dlogits.sum(0)", "db2 = dlogits", "db2", "shape"),
    "bias_summed_over_features": ("dbnbias = dhpreact.sum(0, keepdim=True)", "dbnbias = dhpreact.sum(1, keepdim=True)",
                                  "dbnbias", "shape"),
    "missing_branch_of_counts": (
        "dcounts += torch.ones_like(counts) * dcounts_sum", "pass", "dcounts", "missing-branch"),
    "missing_branch_of_bndiff": ("dbndiff += (2 * bndiff) * dbndiff2", "pass", "dbndiff", "missing-branch"),
    "missing_branch_of_hprebn_mean": (
        "dhprebn += 1.0 / n * (torch.ones_like(hprebn) * dbnmeani)", "pass", "dhprebn", "missing-branch"),
    "missing_max_branch_of_logits": (
        "dlogits += F.one_hot(logits.max(1).indices, num_classes=logits.shape[1]) * dlogit_maxes", "pass",
        "dlogits", "missing-branch"),
    "n_instead_of_n_minus_1": (
        "dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(bndiff2) * dbnvar",
        "dbndiff2 = (1.0 / n) * torch.ones_like(bndiff2) * dbnvar", "dbndiff2", "bessel"),
    "power_rule_half_dropped": (
        "dbnvar = (-0.5 * (bnvar + 1e-5) ** -1.5) * dbnvar_inv",
        "dbnvar = (-1.0 * (bnvar + 1e-5) ** -1.5) * dbnvar_inv", "dbnvar", "scale"),
    "square_rule_doubled": ("dbndiff2 = (1.0 / (n - 1))", "dbndiff2 = (2.0 / (n - 1))", "dbndiff2", "scale"),
    "transposed_matmul": ("dW1 = embcat.T @ dhprebn", "dW1 = (embcat.T @ dhprebn).T", "dW1", "transpose"),
    "lost_duplicate_indices_in_dC": (DC_LOOP, "dC[Xb] += demb", "dC", "duplicate-indices"),
    "accumulator_started_from_ones": ("dC = torch.zeros_like(C)", "dC = torch.ones_like(C)", "dC", "offset"),
    "hard_coded_32": ("dlogprobs[range(n), Yb] = -1.0 / n", "dlogprobs[range(n), Yb] = -1.0 / 32", "dlogprobs",
                      "hard-coded-batch"),
    "hard_coded_31": (
        "dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(bndiff2) * dbnvar",
        "dbndiff2 = (1.0 / 31) * torch.ones_like(bndiff2) * dbnvar", "dbndiff2", "hard-coded-batch"),
    "aliased_then_changed_in_place": ("dhprebn = dbndiff.clone()", "dhprebn = dbndiff", "dbndiff", "aliasing"),
    "log_derivative_divides_by_zero": ("dprobs = (1.0 / probs) * dlogprobs", "dprobs = dlogprobs / (probs - probs)",
                                       "dprobs", "not-finite"),
    "db1_assumed_zero": ("db1 = dhprebn.sum(0)", "db1 = torch.zeros_like(b1)", "db1", "coincidence"),
    "db1_sign_hidden_by_zero": ("db1 = dhprebn.sum(0)", "db1 = -dhprebn.sum(0)", "db1", "sign"),
    "logit_maxes_assumed_zero": ("dlogit_maxes = (-dnorm_logits).sum(1, keepdim=True)",
                                 "dlogit_maxes = torch.zeros_like(logit_maxes)", "dlogit_maxes", "coincidence"),
    "tanh_derivative_wrong": ("dhpreact = (1.0 - h**2) * dh", "dhpreact = (1.0 - h) * dh", "dhpreact", None),
    "view_scrambled": ("demb = dembcat.view(emb.shape)", "demb = dembcat.view(n, 10, 3).transpose(1, 2)", "demb",
                       "permutation"),
    "one_branch_scaled": ("dbndiff += (2 * bndiff) * dbndiff2", "dbndiff += bndiff * dbndiff2", "dbndiff", None),
    # mistakes the lecture's batch hides, or that raise only on a batch of another size
    "bias_summed_over_the_wrong_dim": ("db2 = dlogits.sum(0)", "db2 = dlogits.sum(1)", "db2", "shape"),
    "column_sum_over_rows_keepdim": ("dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)",
                                     "dcounts_sum_inv = (counts * dprobs).sum(0, keepdim=True)", "dcounts_sum_inv",
                                     "shape"),
    "range_32_raises_elsewhere": ("dlogprobs[range(n), Yb] = -1.0 / n", "dlogprobs[range(32), Yb] = -1.0 / n",
                                  "dlogprobs", "hard-coded-batch"),
    "view_32_raises_elsewhere": ("demb = dembcat.view(emb.shape)", "demb = dembcat.view(32, 3, 10)", "demb",
                                 "hard-coded-batch"),
    "right_only_through_broadcasting": ("dbndiff2 = (1.0 / (n - 1)) * torch.ones_like(bndiff2) * dbnvar",
                                        "dbndiff2 = (1.0 / (n - 1)) * dbnvar", "dbndiff2", "shape"),
    # a local derivative with a factor of the forward pass too many or too few, or the wrong power
    "power_one_too_high": ("dcounts_sum = (-counts_sum**-2)", "dcounts_sum = (-counts_sum**-1)", "dcounts_sum",
                           "factor"),
    "gain_forgotten": ("dbnraw = bngain * dhpreact", "dbnraw = dhpreact", "dbnraw", "factor"),
    "log_derivative_upside_down": ("dprobs = (1.0 / probs) * dlogprobs", "dprobs = probs * dlogprobs", "dprobs",
                                   "factor"),
    "factor_forgotten_inside_the_sum": ("dcounts_sum_inv = (counts * dprobs).sum(1, keepdim=True)",
                                        "dcounts_sum_inv = dprobs.sum(1, keepdim=True)", "dcounts_sum_inv", "factor"),
    "forward_power_kept": ("dbnvar = (-0.5 * (bnvar + 1e-5) ** -1.5)", "dbnvar = (-0.5 * (bnvar + 1e-5) ** -0.5)",
                           "dbnvar", "factor"),
    "one_branch_without_its_factor": ("dcounts = counts_sum_inv * dprobs", "dcounts = dprobs.clone()", "dcounts",
                                      "factor"),
    "tanh_derivative_times_h": ("dhpreact = (1.0 - h**2) * dh", "dhpreact = (1.0 - h**2) * dh * h", "dhpreact",
                                "factor"),
    # the forward pass's epsilon left out
    "eps_dropped": ("dbnvar = (-0.5 * (bnvar + 1e-5) ** -1.5)", "dbnvar = (-0.5 * bnvar ** -1.5)", "dbnvar", "eps"),
    "eps_mistyped": ("dbnvar = (-0.5 * (bnvar + 1e-5) ** -1.5)", "dbnvar = (-0.5 * (bnvar + 1e-4) ** -1.5)", "dbnvar",
                     None),
    "eps_doubled": ("dbnvar = (-0.5 * (bnvar + 1e-5) ** -1.5)", "dbnvar = (-0.5 * (bnvar + 2e-5) ** -1.5)", "dbnvar",
                    None),
    # the right numbers in other places: a view in the right order needs no transpose; values nearly all
    # equal (dlogprobs is zero but for one entry a row) say nothing by their sorted values
    "viewed_in_another_order": ("demb = dembcat.view(emb.shape)", "demb = dembcat.view(10, 3, n)", "demb", "shape"),
    "labels_of_other_examples": ("dlogprobs[range(n), Yb] = -1.0 / n", "dlogprobs[range(n), Yb.flip(0)] = -1.0 / n",
                                 "dlogprobs", None),
    # a matmul that raises on shapes: which operand needs .T; none for a matrix the forward line does not use
    "matmul_without_T_raises": ("dembcat = dhprebn @ W1.T", "dembcat = dhprebn @ W1", "dembcat", "matmul"),
    "matmul_of_dh_without_T_raises": ("dh = dlogits @ W2.T", "dh = dlogits @ W2", "dh", "matmul"),
    "matmul_of_dW1_without_T_raises": ("dW1 = embcat.T @ dhprebn", "dW1 = embcat @ dhprebn", "dW1", "matmul"),
    "matmul_with_the_wrong_matrix_raises": ("dembcat = dhprebn @ W1.T", "dembcat = dhprebn @ C", "dembcat", None),
}


def with_mistake(solution: str, correct: str, wrong: str) -> str:
    """`solution` with its one `correct` text written `wrong`; fails unless `correct` is there exactly once,
    so that a change to the solution cannot silently turn a mistake into a no-op."""
    assert solution.count(correct) == 1, f"the solution does not contain {correct!r} exactly once"
    return solution.replace(correct, wrong)


# What each notebook of tests/notebooks must be graded as (tests/test_notebooks.py): exercise -> (score,
# {gradient: (status, diagnosis)} for those not passing), or "none" where the notebook has no code for it.
NOTEBOOK_GRADES: dict[str, dict[str, object]] = {
    "lecture_all_correct": {"exercise1": (26, {}), "exercise2": (1, {}), "exercise3": (1, {}), "exercise4": (7, {})},
    "lecture_mixed": {
        "exercise1": (24, {"dprobs": ("wrong", "sign"), "dbndiff": ("wrong", "missing-branch")}),
        "exercise2": (0, {"dlogits": ("wrong", "scale")}),
        "exercise3": (1, {}),
        "exercise4": (6, {"db2": ("wrong", "shape")}),
    },
    "spread_over_cells": {"exercise1": (25, {"dbndiff2": ("wrong", "bessel")}), "exercise2": (1, {}),
                          "exercise3": (1, {}), "exercise4": "none"},
    "helpers_in_earlier_cells": {"exercise1": (25, {"dC": ("missing", None)}), "exercise2": "none"},
    "renamed_gradients": {"exercise1": (26, {}), "exercise2": (1, {}), "exercise3": "none"},
    "magics_plots_prints": {"exercise1": (26, {}), "exercise2": (1, {}), "exercise3": (1, {})},
    "no_markers": {"exercise1": (25, {"dW2": ("wrong", "transpose")}), "exercise2": (1, {}), "exercise3": (1, {}),
                   "exercise4": "none"},
    "commented_out_and_stale": {"exercise1": (26, {}), "exercise2": (1, {}), "exercise3": "none"},
    "changed_seed_and_batch": {"exercise1": (26, {}), "exercise2": (1, {}), "exercise3": (1, {})},
    # one bad line costs only the gradients it touches
    "autograd_read_and_unfinished_line": {"exercise1": (24, {"dhpreact": ("error", None), "dC": ("error", None)}),
                                          "exercise2": (1, {}), "exercise3": "none", "exercise4": "none"},
    "indented_cells": {"exercise1": (26, {}), "exercise2": (1, {}), "exercise3": "none", "exercise4": "none"},
    "renamed_batch_and_own_ix": {"exercise1": (26, {}), "exercise2": (1, {}), "exercise3": "none",
                                 "exercise4": "none"},
    "ran_out_of_order": {"exercise1": (25, {"dbnvar": ("wrong", "sign")}), "exercise2": (1, {}),
                         "exercise3": "none", "exercise4": "none"},
}
