"""A second course, made only through the course interface (examples/layernorm): the lecture's MLP
with LayerNorm in place of BatchNorm. It is graded by the real CLI with the same verdicts and
diagnoses as the lecture's, check-course proves it sound, and its notebooks show its own forward
pass; and the grader's own code names nothing of the lecture's forward pass."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from grader.courseware.cases import build_case, setting_of
from grader.courseware.course import Course, load_course
from grader.courseware.data import Dataset
from grader.courseware.forward import load_forward
from grader.courseware.notebooks import build_notebook
from grader.judging.diagnose import ADVICE
from tests.conftest import ROOT, Cli, failing, grade, statuses
from tests.helpers import assert_setup_error, copy_course

EXAMPLE = ROOT / "examples" / "layernorm"


@pytest.fixture(scope="module")
def layernorm() -> Course:
    return load_course(EXAMPLE / "course.yaml")


def test_its_forward_pass_is_layernorm_as_torch_computes_it(layernorm: Course, dataset: Dataset) -> None:
    """The course's graph normalises each example across its features, as F.layer_norm does, and its
    truth is what autograd gives through F.layer_norm on the same parameters and batch."""
    case = build_case(layernorm.cases[0], setting_of(layernorm.exercise("exercise1"), dataset))
    g = case.namespace
    hpreln = g["hpreln"]
    assert isinstance(hpreln, torch.Tensor)
    expected = F_layer_norm(hpreln, g["lngain"], g["lnbias"])  # type: ignore[arg-type]
    assert torch.allclose(g["hpreact"], expected, atol=1e-5)  # type: ignore[arg-type]
    leaf = hpreln.clone().requires_grad_(True)
    with torch.enable_grad():
        out = torch.tanh(F_layer_norm(leaf, g["lngain"], g["lnbias"])) @ g["W2"] + g["b2"]  # type: ignore[arg-type, operator]
        torch.nn.functional.cross_entropy(out, g["Yb"]).backward()  # type: ignore[arg-type, no-untyped-call]
    assert leaf.grad is not None and torch.allclose(case.truth["hpreln"], leaf.grad, atol=1e-7)
    assert float(case.truth["b1"].abs().max()) > 1e-4  # unlike under batchnorm, b1 matters here


def F_layer_norm(x: torch.Tensor, gain: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.layer_norm(x, (x.shape[1],), gain.view(-1), bias.view(-1), eps=1e-5)


def test_check_course_proves_it_sound(cli: Cli) -> None:
    result = cli(["check-course", str(EXAMPLE / "course.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("sound: 2 exercises")


@pytest.mark.slow
def test_the_real_cli_grades_it(tmp_path: Path) -> None:
    """`ninja-grade --course examples/layernorm/course.yaml exercise1 FILE`, a real process: the solution
    scores full marks and exits 0; the stub is all missing and exits 1."""
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from grader.cli import run; run()", "--course",
                               str(EXAMPLE / "course.yaml"), *args], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})  # this checkout

    solved = cli("exercise1", str(EXAMPLE / "solutions" / "exercise1.py"))
    assert solved.returncode == 0, solved.stdout + solved.stderr
    assert "19/19 gradients correct" in solved.stdout
    stub = cli("exercise2")
    assert stub.returncode == 1, stub.stdout + stub.stderr
    assert "0/1 gradient correct" in stub.stdout and "dhpreln" in stub.stdout


SOLUTION1 = (EXAMPLE / "solutions" / "exercise1.py").read_text()
SOLUTION2 = (EXAMPLE / "solutions" / "exercise2.py").read_text()
# Real mistakes, each one edit of the solution: (exercise, old, new, the gradient it breaks, its label,
# words the diagnosis must say).
MISTAKES = {
    "batchnorm_habit_sums_over_the_batch": (
        "exercise1", "dlnvar_inv = (lndiff * dlnraw).sum(1, keepdim=True)",
        "dlnvar_inv = (lndiff * dlnraw).sum(0, keepdim=True)", "dlnvar_inv", "shape", "broadcast along dim 1"),
    "mean_over_the_batch_size": (
        "exercise1", "dlndiff2 = torch.ones_like(lndiff2) / n_hidden * dlnvar",
        "dlndiff2 = torch.ones_like(lndiff2) / n * dlnvar", "dlndiff2", "scale", "times the truth"),
    "forgotten_path_through_the_mean": (
        "exercise1", "dhpreln = dlndiff + torch.ones_like(hpreln) / n_hidden * dlnmeani", "dhpreln = dlndiff.clone()",
        "dhpreln", "missing-branch", "through lnmeani is missing"),
    "repeated_rows_overwritten": (
        "exercise1", "dC.index_add_(0, Xb.view(-1), demb.view(-1, n_embd))", "dC[Xb] += demb",
        "dC", "duplicate-indices", "rows of C picked more than once"),
    "fused_variance_term_with_the_wrong_sign": (
        "exercise2", "- lnraw * (dlnraw", "+ lnraw * (dlnraw", "dhpreln", "sign", "the variance term"),
    "fused_with_a_bessel_factor_layernorm_does_not_have": (
        "exercise2", "- lnraw * (dlnraw", "- n_hidden / (n_hidden - 1) * lnraw * (dlnraw", "dhpreln", "bessel",
        "n_hidden/(n_hidden-1)"),
    "gain_forgotten": (
        "exercise1", "dlnraw = lngain * dhpreact", "dlnraw = dhpreact", "dlnraw", "factor",
        "it is the truth divided by lngain: the local derivative through hpreact = lngain * lnraw + lnbias has a "
        "factor lngain missing"),
    "factor_forgotten_inside_the_sum": (
        "exercise1", "dlngain = (lnraw * dhpreact).sum(0, keepdim=True)", "dlngain = dhpreact.sum(0, keepdim=True)",
        "dlngain", "factor", "it is the truth with each term of its sum over dim 0 divided by lnraw"),
    "forward_power_kept": (
        "exercise1", "dlnvar = -0.5 * (lnvar + 1e-5) ** -1.5", "dlnvar = -0.5 * (lnvar + 1e-5) ** -0.5", "dlnvar",
        "factor", "it is the truth times (lnvar + 1e-5)"),
    "tanh_derivative_over_h": (
        "exercise1", "dhpreact = (1.0 - h**2) * dh", "dhpreact = (1.0 - h**2) * dh / h", "dhpreact", "factor",
        "it is the truth divided by h: the local derivative through h = torch.tanh(hpreact) has a factor h missing"),
    # right on the first batch (its variances are large enough for 1e-5 to vanish), wrong on another: it is
    # the epsilon, not the batch size
    "eps_dropped": (
        "exercise1", "dlnvar = -0.5 * (lnvar + 1e-5) ** -1.5", "dlnvar = -0.5 * lnvar ** -1.5", "dlnvar", "eps",
        "but wrong on a fresh batch of 27 (seed 1337): there it is the truth without the forward pass's epsilon: "
        "lnvar_inv = (lnvar + 1e-5)**-0.5 adds 1e-5 to lnvar, and your formula leaves it out"),
    "view_scrambled": (
        "exercise1", "demb = dembcat.view(emb.shape)", "demb = dembcat.view(n, n_embd, block_size).transpose(1, 2)",
        "demb", "permutation", "then with dims 1 and 2 swapped: a view keeps the numbers in their order"),
    "matmul_without_T": (
        "exercise1", "dembcat = dhpreln @ W1.T", "dembcat = dhpreln @ W1", "dembcat", "matmul",
        "from hpreln = embcat @ W1 + b1, dembcat = dhpreln @ W1.T"),
    "matmul_of_dW2_without_T": (
        "exercise1", "dW2 = h.T @ dlogits", "dW2 = h @ dlogits", "dW2", "matmul",
        "you multiplied h (32x64) by dlogits (32x27); from logits = h @ W2 + b2, dW2 = h.T @ dlogits"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_mistakes_get_the_lectures_quality_of_diagnosis(layernorm: Course, dataset: Dataset, mistake: str) -> None:
    """Each real mistake in the second course fails its gradient alone, with its label, its words, what to try
    and the hint command: the labels come from its own forward file."""
    exercise_id, old, new, broken, label, words = MISTAKES[mistake]
    solution = SOLUTION1 if exercise_id == "exercise1" else SOLUTION2
    assert solution.count(old) == 1
    report = grade(layernorm, dataset, exercise_id, solution.replace(old, new))
    assert failing(report) == {broken}, statuses(report)
    grad = next(g for g in report.gradients if g.name == broken)
    assert grad.diagnosis == label, grad.message
    assert words in grad.message, grad.message
    assert f"Try: {ADVICE[label]}" in grad.message
    assert f"(hints: ninja-grade hint {exercise_id} {broken})" in grad.message


def test_its_notebook_shows_its_own_forward_pass(layernorm: Course) -> None:
    """The notebook for the example's exercise shows the example's forward code, not the lecture's, and
    its set-up and check cells name the example's course."""
    nb = build_notebook(layernorm, layernorm.exercise("exercise2"))
    text = "\n".join(c.source for c in nb.cells)
    assert "lnvar = lndiff2.mean(1, keepdim=True)" in text and "bnvar" not in text
    assert "setup(\"exercise2\", globals(), course='examples/layernorm/course.yaml')" in text
    assert "check(\"exercise2\", course='examples/layernorm/course.yaml')" in text
    nbformat.validate(nb)


def test_its_filled_notebook_grades_full_marks(cli: Cli, layernorm: Course, tmp_path: Path) -> None:
    """The example's exercise-1 notebook, filled with the solution, graded by the CLI as a notebook: the
    cells are found by the example's own layout (its forward pass's names are the grader's to give)."""
    exercise = layernorm.exercise("exercise1")
    path = tmp_path / "exercise1.ipynb"
    nbformat.write(build_notebook(layernorm, exercise, exercise.solution), str(path))
    result = cli(["--course", str(EXAMPLE / "course.yaml"), "exercise1", str(path)])
    assert result.exit_code == 0, result.output
    assert "19/19 gradients correct" in result.output


def test_the_grader_names_nothing_of_the_lectures_forward_pass() -> None:
    """No string in grader/'s code (docstrings aside) names a tensor of the lecture's forward passes or
    its gradient: the lecture is one course among others, read from lecture.py. The names every forward
    pass shares (loss, the batch Xb Yb, its size n) are the interface, and one- or two-letter names (C,
    h, W1) are left out, as words like `-h` and `C.UTF-8` would match them."""
    lecture = load_forward(ROOT / "lecture.py")
    names = {name for g in lecture.graphs.values() for name in (*g.nodes, *g.leaves)} - {"loss", "Xb", "Yb", "n"}
    names |= {f"d{name}" for name in names} | {"loss_fast", "hpreact_fast"}
    names = {name for name in names if len(name) > 2}
    found = []
    for path in sorted((ROOT / "grader").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                hits = set(re.findall(r"[A-Za-z_]\w*", node.value)) & names
                found += [f"{path.relative_to(ROOT)}:{node.lineno}: {hit}" for hit in sorted(hits)]
    assert found == []
    assert {"hprebn", "dlogits", "bngain", "loss_fast"} <= names  # the check looks for the right names


@pytest.fixture
def copy_of_example(tmp_path: Path) -> Path:
    return copy_course(tmp_path / "course", EXAMPLE)


FORWARD_BREAKS = {
    # what is changed in forward.py -> the one line the grader says; LINE is the line `old` starts on
    "a line that is not an assignment": (
        "lndiff2 = lndiff**2\n", "lndiff2 = lndiff**2\nprint(lndiff2)\n",
        "forward.py, graph layernorm, line LINE+1: each line of a forward pass is `name = expression`"),
    "no loss at the end": (
        "loss = F.cross_entropy(logits, Yb)\n", "loss = F.cross_entropy(logits, Yb)\nextra = loss * 2\n",
        "forward.py, graph layernorm: the last line of a forward pass computes `loss`"),
    "a node computed twice": (
        "lndiff2 = lndiff**2\n", "lndiff2 = lndiff**2\nlndiff2 = lndiff**2\n",
        "forward.py, graph layernorm, line LINE+1: lndiff2 is computed twice; each node has one line"),
    "an error while importing": (
        "SIZES = {", "SIZES = undefined_name or {", "forward.py failed to load at line LINE: NameError"),
    "no batch()": ("def batch(", "def draw(", "forward.py defines no batch; a forward file needs"),
    "parameters() that fails": (
        '"C": torch.randn((vocab_size, n_embd)', '"C": torch.randn((vocab_size, n_embd, -1)',
        "forward.py: parameters() failed at line LINE: RuntimeError"),
    "a forward line that fails": (
        "lnvar = lndiff2.mean(1, keepdim=True)", "lnvar = lndiff2.mean(5, keepdim=True)",
        "the forward pass failed at lnvar (forward.py, graph layernorm, line LINE): IndexError"),
}


@pytest.mark.parametrize("name", sorted(FORWARD_BREAKS))
def test_a_broken_forward_file_is_one_sentence(cli: Cli, copy_of_example: Path, name: str) -> None:
    """Each way a forward file can be wrong is said in one line naming the file (and its line), exit 2,
    from the real CLI; never a traceback."""
    old, new, said = FORWARD_BREAKS[name]
    forward = copy_of_example / "forward.py"
    text = forward.read_text()
    assert text.count(old) == 1
    line = text[:text.index(old)].count("\n") + 1
    said = said.replace("LINE+1", str(line + 1)).replace("LINE", str(line))
    forward.write_text(text.replace(old, new))
    result = cli(["--course", str(copy_of_example / "course.yaml"), "exercise2",
                  str(copy_of_example / "solutions" / "exercise2.py")])
    assert_setup_error(result, said)


def test_a_graph_or_tensor_the_forward_file_lacks_is_one_line(cli: Cli, copy_of_example: Path) -> None:
    """course.yaml naming a graph the forward file does not have: one line, exit 2. A gradient of a tensor
    the graph does not compute: check-course says so in one line."""
    course_file = copy_of_example / "course.yaml"
    text = course_file.read_text()
    course_file.write_text(text.replace("    graph: layernorm\n    stub: exercises/exercise2.py",
                                        "    graph: layernorm2\n    stub: exercises/exercise2.py"))
    result = cli(["--course", str(course_file), "exercise2"])
    assert_setup_error(result, "forward.py has no graph 'layernorm2'; it has layernorm")
    course_file.write_text(text.replace("      - name: dhpreln\n        tensor: hpreln\n        hints:\n"
                                        "          - \"Three", "      - name: dhprelm\n        tensor: hprelm\n"
                                        "        hints:\n          - \"Three"))
    result = cli(["check-course", str(course_file)])
    assert result.exit_code == 1
    assert ("exercise2: dhprelm is the gradient of hprelm, but graph layernorm of forward.py gives hprelm no "
            "gradient (not computed there, or not on the way to the loss)") in result.output.splitlines()


def test_a_broken_forward_file_stops_batch_and_notebook_before_anything_is_written(cli: Cli, copy_of_example: Path,
                                                                                  tmp_path: Path) -> None:
    """Batch grading and notebook writing with a broken forward file: one line, exit 2, nothing written;
    not a fault recorded against every student, not a traceback."""
    forward = copy_of_example / "forward.py"
    forward.write_text(forward.read_text().replace("lndiff2 = lndiff**2\n", "lndiff2 = lndiff**2\nprint(1)\n"))
    said = "forward.py, graph layernorm, line"
    student = tmp_path / "alice"
    student.mkdir()
    shutil.copy(EXAMPLE / "solutions" / "exercise1.py", student / "exercise1.py")
    course = ["--course", str(copy_of_example / "course.yaml")]
    batch = cli([*course, "batch", "exercise1", str(student), "--out", str(tmp_path / "out")])
    notebook = cli([*course, "notebook", "all", "--out", str(tmp_path / "nb"),
                    "--course-repo", "https://example.org/course.git"])
    for result in (batch, notebook):
        assert_setup_error(result, said)
    assert not (tmp_path / "out").exists() and not list((tmp_path / "nb").glob("*.ipynb"))
