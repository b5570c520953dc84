"""Student code is untrusted: hostile submissions fail cleanly, in bounded time.

Each file in tests/submissions/hostile/ is one attack, named for what it tries. Every
one must end with passed false, the right verdicts and a clear message, exit code 1,
no traceback, and nothing left behind: no files, no processes (none of the sandbox's is
alive once grading ends, and none is sleeping on as spawns_process asks).
"""

from __future__ import annotations

import ast
import contextlib
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import numpy
import pytest
import torch

from grader.confined import child as child_module
from grader.confined import jail as jail_module
from grader.confined import runner as runner_module
from grader.confined import zygote as grader_zygote
from grader.confined.jail import guard, safe_import, view_of
from grader.confined.policy import PolicyError, check_policy
from grader.confined.protocol import Case, Commit, Point, Run
from grader.confined.runner import names_in
from grader.confined.sandbox import RunResult, SandboxError
from grader.confined.unix import UnixSandbox
from grader.courseware.course import Course, Limits
from grader.courseware.data import Dataset
from grader.intake.submission import compile_program, compile_to_run
from tests.conftest import SUBMISSIONS, Cli, MechanismOff, grade, unix_only
from tests.forked import forked_here, replace_run

pytestmark = unix_only  # the portable sandbox's own tests: tests/test_platforms.py
resource = pytest.importorskip("resource")

HOSTILE = SUBMISSIONS / "hostile"

# attack -> (the status dlogits must get, words that must be said, and where: in dlogits' message, or in
# the report's notes, which say once which lines were left out and why). A refused line is left out on its
# own; what the rest computes is judged (and is wrong or missing in all of these: every one scores 0).
EXPECTED: dict[str, tuple[str, str, str]] = {
    "rebuilds_forward_with_autograd": ("missing", "line 2 (not run: 'requires_grad_' is autograd", "notes"),
    "reads_grad_of_given": ("missing", "line 2 (not run: 'grad' is autograd", "notes"),
    "monkeypatches_comparisons": ("wrong", "line 4 (not run: '__eq__' reaches Python's internals", "notes"),
    "monkeypatches_allclose_only": ("wrong", "maxdiff", "message"),
    "sys_exit_first": ("missing", "line 1 (not run: import of 'sys' is not allowed", "notes"),
    "os_exit_first": ("missing", "line 1 (not run: import of 'os' is not allowed", "notes"),
    "raises_system_exit_first": ("error", "your code ended early (line 2: SystemExit: 0)", "message"),
    "fakes_report": ("wrong", "line 3 (not run: 'save' is not available in graded code", "notes"),
    "prints_fake_report_only": ("wrong", "maxdiff", "message"),
    "infinite_loop": ("error", "time limit of 3 s reached (wall clock)", "message"),
    "memory_bomb": ("error", "memory limit of 256 MB reached", "message"),
    "runs_the_solution": ("missing", "line 2 (not run: import of 'glob' is not allowed", "notes"),
    "getattr_backward": ("error", "line 4: not run: 'getattr' is not available", "message"),
    "dunder_escape": ("wrong", "line 2 (not run: '__class__' reaches Python's internals", "notes"),
    "spawns_process": ("wrong", "line 2 (not run: import of 'subprocess' is not allowed", "notes"),
    "torch_module_escape": ("wrong", "line 2 (not run: '.os' is a module graded code may not use", "notes"),
    "frame_walk": ("wrong", "line 2 (not run: 'gi_frame' is not available", "notes"),
    "oversized_gradient": ("error", "dlogits is a tensor of shape (1000000,), larger than any tensor of the forward "
                                    "pass", "message"),
    "uses_cross_entropy": ("error", "line 2: not run: 'cross_entropy' does the whole computation for you",
                           "message"),
}


def sandbox_processes() -> list[str]:
    """Processes a sandbox left: children of this process's zygote still running, or a `sleep 600`."""
    zygote = grader_zygote._zygote
    left = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fields[0] != "Z" and ((zygote is not None and int(fields[1]) == zygote.pid)
                                 or command.startswith("sleep 600")):
            left.append(f"{proc.name}: {command}")
    return left


def scratch_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("ninja-scratch-*")}


@pytest.fixture(autouse=True)
def private_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each test's own temporary folder, so that what it leaves behind is told from what another
    grading on this machine (another test run) has open at the same moment."""
    folder = tmp_path_factory.mktemp("tmp")
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_every_hostile_file_has_an_expectation() -> None:
    """No attack in the folder goes untested, and no expectation lacks its file."""
    assert {p.stem for p in HOSTILE.glob("*.py")} == set(EXPECTED)


@pytest.mark.parametrize("attack", [a if a != "infinite_loop" else pytest.param(a, marks=pytest.mark.slow)  # 3 s of it
                                    for a in sorted(EXPECTED)])
def test_hostile_submission_fails_cleanly(cli: Cli, attack: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack gets passed false, its verdict and message, exit 1, and leaves nothing behind."""
    monkeypatch.chdir(tmp_path)
    before = scratch_dirs()
    started = time.monotonic()
    result = cli(["exercise2", str(HOSTILE / f"{attack}.py"), "--format", "json",
                  "--time-limit", "3", "--memory-limit", "256"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)  # the whole stdout is the grader's JSON
    status, words, where = EXPECTED[attack]
    (dlogits,) = report["gradients"]
    assert report["passed"] is False and report["score"] == 0
    assert dlogits["status"] == status
    said = dlogits["message"] if where == "message" else " ".join(report["notes"])
    assert words in said, (dlogits["message"], report["notes"])
    assert "Traceback" not in result.output
    assert elapsed < 30  # bounded: the limit is 3 s
    assert list(tmp_path.iterdir()) == []  # no results.json, nothing written here
    assert scratch_dirs() == before
    assert sandbox_processes() == []


def test_fake_report_printed_by_student_stays_in_output(cli: Cli, tmp_path: Path) -> None:
    """What the student prints is shown as their output, never as the grader's report."""
    result = cli(["exercise2", str(HOSTILE / "prints_fake_report_only.py")])
    assert result.exit_code == 1
    assert "your code printed:" in result.output
    assert "0/1 gradient correct" in result.output


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("x = torch.autograd", "'autograd' is autograd"),
        ("x = torch.func.vjp", "'func' is autograd"),
        ("with torch.enable_grad(): pass", "'enable_grad' is autograd"),
        ("x = logits.grad_fn", "'grad_fn' is autograd"),
        ("torch.Tensor.backward(loss)", "'backward' is autograd"),
        ("x = torch.ops.aten.tanh_backward(h, h)", "'ops' is not available"),
        ("x = torch.tanh_backward(h, h)", "'tanh_backward' is autograd"),
        ("x = eval('1')", "'eval' is not available"),
        ("x = __import__('os')", "'__import__' reaches Python's internals"),
        ("x = vars(torch)", "'vars' is not available"),
        ("x = torch.load('f')", "'load' is not available"),
        ("x = torch._C", "'._C' is private"),
        ("import torch.autograd", "import of 'torch.autograd' is not allowed"),
        ("from torch import autograd", "'autograd' is autograd"),
        ("import typing", "import of 'typing' is not allowed"),
        ("match loss:\n    case torch.Tensor(grad=g):\n        pass", "'grad' is autograd"),
    ],
)
def test_policy_names_the_line(code: str, words: str) -> None:
    """The static check flags each way into autograd or the interpreter, with its line."""
    violations = check_policy(ast.parse("y = 1\n" + code))
    assert violations, code
    culprit = next(i for i, line in enumerate(code.splitlines()) if words.split("'")[1].lstrip(".") in line)
    assert violations[0].lineno == 2 + culprit
    assert words in violations[0].message


@pytest.mark.parametrize(
    "code",
    ["import torch.nn.functional as F\nx = F.softmax(logits, 1)", "from torch.nn import functional\n",
     "import math, numpy as np, itertools, collections, random\n", "grad = dlogits\nbackward_pass = 1",
     "def unbroadcast(grad, like):\n    return grad.sum(0)\n", "x = torch.linalg.norm(h)\n"],
)
def test_policy_allows_ordinary_code(code: str) -> None:
    """Ordinary student code, variables called grad included, passes the static check."""
    assert check_policy(ast.parse(code)) == []


def test_runtime_guards_refuse_what_static_check_would() -> None:
    """The second line: guarded imports and module views refuse the same things at run time."""
    for name in ("os", "sys", "subprocess", "torch.autograd", "typing"):
        with pytest.raises(PolicyError):
            safe_import(name)
    tv = view_of(torch)
    for attr in ("os", "autograd", "_C", "load", "func", "sys", "utils"):
        with pytest.raises(PolicyError):
            getattr(tv, attr)
    with pytest.raises(PolicyError):
        tv.allclose = None  # type: ignore[attr-defined]
    assert tv.nn.functional.softmax is torch.nn.functional.softmax


SMALL = Limits(time_s=5, memory_mb=256)


def run_in_sandbox(source: str, given: dict[str, torch.Tensor], wanted: tuple[str, ...]) -> RunResult:
    with UnixSandbox(source, "<test>", SMALL) as box:
        box.case(Case(given, {}, {}, wanted))
        return box.run(Run())


@unix_only
def test_every_commit_is_decided_on_and_only_a_point_that_waits_is_given_values() -> None:
    """The grader decides on every commit of a run, in order; what it reveals at a point that waits is set
    before the next line runs, and a reveal at a point that does not wait is the grader's own error."""
    seen: list[int] = []

    def decide(commit: Commit) -> dict[str, torch.Tensor]:
        seen.append(commit.index)
        return {"a": torch.zeros(2)} if commit.index == 0 else {}

    points = (Point(0, ("a",), waits=True), Point(1, ("b",)))
    with UnixSandbox("a = x * 2\nb = a + 1\n", "<test>", SMALL) as box:
        box.case(Case({"x": torch.ones(2)}, {}, {}, ("a", "b")))
        result = box.run(Run(points, read_back=("b",)), decide)
        assert seen == [0, 1]
        assert torch.equal(result.commits[0]["a"], torch.full((2,), 2.0))  # committed before the reveal
        assert torch.equal(result.values["b"], torch.ones(2))  # computed from what was revealed
        with pytest.raises(SandboxError, match="does not wait"):
            box.run(Run(points, read_back=("b",)), lambda commit: {"b": torch.zeros(2)} if commit.index else {})


def test_sandbox_runtime_blocks_autograd_and_escapes_without_static_check() -> None:
    """Code the static check never saw still cannot reach autograd, os, or open files."""
    source = (
        "a = torch.ones(2)\n"
        "a.requires_grad_()\n"
        "import os\n"
        "b = torch.os\n"
        "c = open('/etc/passwd')\n"
        "d = a * 2\n"
    )
    result = run_in_sandbox(source, {}, ("d",))
    messages = [error.text for error in result.errors.values()]
    assert "requires_grad_ is not available" in messages[0]  # the jail's allow-list, before autograd is reached
    assert "import of 'os' is not allowed" in messages[1]
    assert "torch.os is not available" in messages[2]
    assert "NameError" in messages[3]
    assert torch.equal(result.values["d"], torch.full((2,), 2.0))  # type: ignore[arg-type]


SPOILS_THE_DATA = """
def first():
    return Xtr[0, 0] * 1
before = first()
spoil = lambda: Xtr.add_(1)
spoil()
emb = C * 1
[c.mul_(0) for c in [C]]
"""


def test_no_run_sees_what_an_earlier_run_changed_in_place() -> None:
    """Each run starts from its own copy of every tensor the code names, however it names it (in a
    function, a lambda, a comprehension): the data set's and the case's. Tensors it never names go
    in as they are, and stay as they were."""
    world = {"Xtr": torch.zeros(4, 3, dtype=torch.int64), "Xdev": torch.ones(2, 3, dtype=torch.int64)}
    C = torch.full((3, 2), 2.0)
    with UnixSandbox(SPOILS_THE_DATA, "<test>", SMALL, world=world) as box:
        box.case(Case({"C": C}, {}, {}, ("before", "emb")))
        runs = [box.run(Run()) for _ in range(3)]
    assert all(r.died is None and not r.errors for r in runs), [r.errors for r in runs]
    assert [int(r.values["before"]) for r in runs] == [0, 0, 0]  # type: ignore[arg-type, call-overload]
    assert all(torch.equal(r.values["emb"], C) for r in runs)  # type: ignore[arg-type]
    assert torch.equal(world["Xtr"], torch.zeros(4, 3, dtype=torch.int64)) and torch.equal(C, torch.full((3, 2), 2.0))


STASHES_BETWEEN_RUNS = """
stoi["runs"] = stoi.get("runs", 0) + 1
words.append("again")
seen = list(chars)
chars.append("!")
out = torch.tensor([float(stoi["runs"]), float(len(words)), float(len(seen))])
"""


def test_no_run_sees_what_an_earlier_run_left_in_the_data_sets_dicts_and_lists() -> None:
    """The data set's stoi, words and chars are each run's own copies: a count kept in them by one run
    is not there for the next (a program could tell its runs apart by it)."""
    world: dict[str, object] = {"stoi": {"a": 1}, "words": ["ab"], "chars": ["a", "b"]}
    with UnixSandbox(STASHES_BETWEEN_RUNS, "<test>", SMALL, world=world) as box:
        box.case(Case({}, {}, {}, ("out",)))
        runs = [box.run(Run()) for _ in range(3)]
    assert all(r.died is None and not r.errors for r in runs), [r.errors for r in runs]
    assert [r.values["out"].tolist() for r in runs] == [[1.0, 2.0, 2.0]] * 3  # type: ignore[union-attr]


LEAVES_IN_THE_PROCESS = """
import random
import numpy as np
seen = [random.random(), float(torch.rand(())), float(torch.zeros(()).element_size()), len(str(torch.tensor(1 / 3))),
        len(str(np.array([1 / 3]))), float(np.geterr()["divide"] == "raise")]
random.seed(1)
torch.manual_seed(1)
torch.set_default_dtype(torch.float64)
torch.set_printoptions(precision=9)
np.set_printoptions(precision=2)
np.seterr(divide="raise")
out = torch.tensor(seen)
"""


def test_no_run_finds_what_an_earlier_run_set_for_the_whole_process() -> None:
    """What graded code may set for the whole process through its modules (the random generators of random
    and torch, torch's default dtype, torch's and numpy's print options, numpy's error handling) is put
    back before each run: every run starts from the same, and none can count its runs or pass on a value."""
    with UnixSandbox(LEAVES_IN_THE_PROCESS, "<test>", SMALL) as box:
        box.case(Case({}, {}, {}, ("out",)))
        runs = [box.run(Run()) for _ in range(3)]
    assert all(r.died is None and not r.errors for r in runs), [r.errors for r in runs]
    first = runs[0].values["out"].tolist()  # type: ignore[union-attr]
    assert first[2:] == [4.0, 14.0, 12.0, 0.0], first  # float32, tensor(0.3333), [0.33333333], warn
    assert [r.values["out"].tolist() for r in runs] == [first] * 3  # type: ignore[union-attr]


OUTLIVES_ITS_RUN = """
junk = [[] for _ in range(100000)]  # sets the collector off: what an earlier run left in a cycle is freed here
del junk
seen = [float(torch.initial_seed() % 1000003), float(torch.is_inference(torch.zeros(1))), float(random.random())]

def later(box, seed):
    try:
        yield 1
    finally:
        torch.manual_seed(seed)

def hold(box):
    with torch.inference_mode():
        yield 1

class Dies:
    def __del__(self):
        random.seed(int(seen[0]) + 1)

cycle = []
g = later(cycle, int(seen[0]) + 1)
cycle.append(g)
next(g)
held = []
h = hold(held)
held.append(h)
next(h)
d = Dies()
out = torch.tensor(seen)
"""


def test_nothing_of_a_run_outlives_it_to_change_the_next(monkeypatch: pytest.MonkeyPatch,
                                                        mechanism_off: MechanismOff) -> None:
    """A generator in a cycle whose `finally` reseeds torch once the collector frees it, one that holds
    `torch.inference_mode()` open, and an object whose `__del__` reseeds random: each is dropped, and its
    finaliser run, before its run ends, so every run starts from the same state and none counts its runs."""
    def check() -> None:
        with forked_here(monkeypatch), UnixSandbox("import random\n" + OUTLIVES_ITS_RUN, "<test>", SMALL) as box:
            box.case(Case({}, {}, {}, ("out",)))
            runs = [box.run(Run()) for _ in range(3)]
        assert all(r.died is None and not r.errors for r in runs), [(r.died, r.errors) for r in runs]
        first = runs[0].values["out"].tolist()  # type: ignore[union-attr]
        assert first[1] == 0.0, first  # not in inference mode
        assert [r.values["out"].tolist() for r in runs] == [first] * 3  # type: ignore[union-attr]

    check()
    mechanism_off(check, lambda m: m.setattr(child_module, "let_go", lambda *owned: [o.clear() for o in owned]),
                  "dropping a run's objects as graded code, collector included (let_go)")


HOLDS_A_WITH_OPEN = """
import numpy
seen = 0.0
try:
    with numpy.errstate(divide="call"):
        numpy.float64(1.0) / numpy.float64(0.0)
except ValueError as e:
    seen = float(e.args[0])
count = int(seen) + 1
def cb(kind, flag, count=count):
    raise ValueError(count)
def hold():
    with numpy.errstate(call=cb):
        while True:
            try:
                yield 1
            except GeneratorExit:
                pass
g = hold()
next(g)
out = torch.tensor([seen])
"""


def test_a_with_held_open_past_its_run_leaves_nothing_for_the_next(monkeypatch: pytest.MonkeyPatch,
                                                                    mechanism_off: MechanismOff) -> None:
    """A generator that ignores GeneratorExit keeps its `with numpy.errstate(call=...)` from ever exiting,
    let_go or not (the policy refuses the pause; this is the child's own line behind it): numpy's error
    callback is put back before each run, so no run learns the count the last one left in it."""
    def check() -> None:
        with forked_here(monkeypatch), UnixSandbox(HOLDS_A_WITH_OPEN, "<test>", SMALL) as box:
            box.case(Case({}, {}, {}, ("out",)))
            runs = [box.run(Run()) for _ in range(3)]
        assert all(r.died is None for r in runs), [(r.died, r.errors) for r in runs]
        assert [r.values["out"].tolist() for r in runs] == [[0.0]] * 3  # type: ignore[union-attr]

    check()
    mechanism_off(check, lambda m: m.setattr(numpy, "seterrcall", lambda call: None), "putting numpy's callback back")


def test_a_run_that_leaves_inference_mode_on_ends_its_child() -> None:
    """Inference mode and a default device can only be ended by the `with` that set them: where a run has
    left one on, the child cannot start the next run as the first, so it says False and ends as a run
    that died. Grad mode, which `torch.inference_mode(False)` turns on, is put back."""
    with torch.no_grad():  # as in the child
        state = child_module.ProcessState()
        mode = torch.inference_mode()
        mode.__enter__()
        try:
            assert state.restore() is False
        finally:
            mode.__exit__(None, None, None)
        assert state.restore() is True
        with torch.inference_mode(False):  # turns grad mode on
            assert torch.is_grad_enabled()
            assert state.restore() is True and not torch.is_grad_enabled()
        with torch.device("meta"):  # a default device: a mode on torch's function-mode stack
            assert state.restore() is False
        assert state.restore() is True


def test_finalisers_of_graded_code_run_under_the_audit_hook(monkeypatch: pytest.MonkeyPatch,
                                                            mechanism_off: MechanismOff) -> None:
    """What graded code made is dropped as graded code (let_go), and the collector, wherever it starts,
    runs the finalisers of what it frees as graded code: the audit hook holds in every `__del__`."""
    graded_then: list[bool] = []

    class Dies:
        def __del__(self) -> None:
            graded_then.append(jail_module._graded[0])

    def by_let_go() -> None:
        graded_then.clear()
        ns: dict[str, object] = {"d": Dies()}
        runner_module.let_go(ns)
        assert graded_then == [True] and jail_module._graded[0] is False

    def by_the_collector() -> None:
        graded_then.clear()
        callback = jail_module._collecting
        gc.callbacks.append(callback)  # the collector holds on to this very list
        try:
            cycle: list[object] = [Dies()]
            cycle.append(cycle)
            del cycle
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        assert graded_then == [True] and jail_module._graded[0] is False

    by_let_go()
    by_the_collector()
    mechanism_off(by_let_go, lambda m: m.setattr(runner_module, "graded_code", contextlib.nullcontext),
                  "let_go's graded_code")
    mechanism_off(by_the_collector, lambda m: m.setattr(jail_module, "_collecting", lambda phase, info: None),
                  "the collector's callback")


def test_module_data_is_not_reachable_from_graded_code() -> None:
    """A pure-math module's functions are graded code's; its module-level dicts (docstring parts, which a
    run could write into for the next) are not."""
    result = run_in_sandbox("notes = torch.linalg.common_notes\nok = torch.linalg.norm(torch.ones(4))", {},
                            ("ok",))
    assert [e.text for e in result.errors.values()] == ["torch.linalg.common_notes is not available in graded code"]
    assert float(result.values["ok"]) == 2.0  # type: ignore[arg-type]


def test_names_in_finds_every_name_the_code_can_say() -> None:
    """The names of every code object: statements, functions, lambdas, comprehensions, classes."""
    program = compile_program("a = b\ndef f(x):\n    return c + x\ng = lambda: d\nh = [e for _ in f2]\n"
                              "class K:\n    y = k\n    def m(self):\n        return self.z + w\n", "<test>")
    assert {"a", "b", "c", "d", "e", "f2", "k", "w", "z"} <= names_in(program)
    assert "Xtr" not in names_in(program)


def test_the_child_compiles_the_statements_the_grader_judges() -> None:
    """compile_to_run (the child's) makes the very statements of compile_program (the grader's): the same
    indexes, lines and guarded code, for every solution, stub and test submission, a file with lines
    that do not parse among them (the grader's recovered source is what the child is sent)."""
    root = Path(__file__).resolve().parent.parent
    files = sorted([*root.glob("solutions/*.py"), *root.glob("exercises/*.py"), *SUBMISSIONS.rglob("*.py")])
    sources = [f.read_text() for f in files] + ["a = 1\nb = (\nc = a + 1\nreturn c\n"]
    assert len(sources) > 40
    for source in sources:
        graders = compile_program(compile_program(source, "<s>").source, "<s>", rewrite=guard)
        childs = compile_to_run(compile_program(source, "<s>").source, "<s>", rewrite=guard)
        assert [(s.index, s.lineno, s.end_lineno, s.code.co_code, s.code.co_names) for s in childs.statements] == \
               [(s.index, s.lineno, s.end_lineno, s.code.co_code, s.code.co_names) for s in graders.statements]
        assert childs.syntax_error == graders.syntax_error


@unix_only
def test_a_file_of_the_largest_size_in_any_characters_reaches_the_child() -> None:
    """The child is sent its source as bytes: 2 MB of emoji (a header of 12 MB as JSON escapes) runs."""
    source = "x = torch.ones(())  # " + "\U0001f600" * 500_000 + "\n"
    with UnixSandbox(source, "<emoji>", SMALL) as box:
        box.case(Case({}, {}, {}, ("x",)))
        result = box.run(Run())
    assert result.died is None and float(result.values["x"]) == 1.0, result.died  # type: ignore[arg-type]


@unix_only
@pytest.mark.parametrize(("limits", "said"), [(Limits(time_s=10, memory_mb=64), "memory limit of 64 MB"),
                                             (Limits(time_s=1, memory_mb=4096), "time limit of 1 s")])
def test_code_too_big_to_compile_within_its_limits_ends_its_run_not_the_sandbox(limits: Limits, said: str) -> None:
    """The child says it is ready before it compiles the code, which it does under the code's own limits:
    a file whose compiling alone overruns them (about a GB and 10 s of CPU here) ends the first run as the
    code's doing, never as a sandbox that could not start (which a batch counts as the grader's failure)
    nor as a run of no statements."""
    source = "x = [" + "1, " * 1_000_000 + "]\n"
    with UnixSandbox(source, "<big>", limits) as box:
        box.case(Case({}, {}, {}, ("x",)))
        result = box.run(Run())
    assert result.died is not None and said in result.died, result.died


def test_sandbox_child_that_exits_hard_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that ends itself with os._exit (past every Python guard) gives a reason, not a hang."""
    replace_run(monkeypatch, lambda ns: os._exit(0))
    with forked_here(monkeypatch):
        result = run_in_sandbox("x = 1", {}, ("x",))
    assert result.died == "your code ended the sandbox early (exit code 0)"
    assert result.values == {"x": None}


@pytest.mark.parametrize(
    ("source", "status"),
    [
        ("dlogits = F.softmax(logits, 1) / 0 * 0", "wrong"),  # NaN
        ("dlogits = F.softmax(logits, 1) / 0", "wrong"),  # inf
        ("dlogits = F.softmax(logits, 1).numpy()", "error"),
        ("dlogits = F.softmax(logits, 1).tolist()", "error"),
        ("dlogits = 'the gradient'", "error"),
        ("dlogits = torch.ones_like(logits, dtype=torch.int64)", "wrong"),
        ("dlogits = F.softmax(logits, 1", "error"),  # a syntax error
    ],
)
def test_cli_odd_values_fail_cleanly(cli: Cli, tmp_path: Path, source: str, status: str) -> None:
    """NaN, inf, numpy arrays, lists, strings, integer dtypes and syntax errors: passed false,
    the right verdict with a reason, exit 1, no traceback, nothing left behind."""
    sub = tmp_path / "odd.py"
    sub.write_text(source + "\n")
    before = scratch_dirs()
    result = cli(["exercise2", str(sub), "--format", "json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert report["passed"] is False and report["gradients"][0]["status"] == status
    assert report["gradients"][0]["message"]
    assert scratch_dirs() == before and sorted(p.name for p in tmp_path.iterdir()) == ["odd.py"]


def test_a_tensor_with_no_values_to_read_is_said_to_be_one(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           mechanism_off: MechanismOff) -> None:
    """A tensor on the meta device has a shape and no values: it is said to be one, `error` on its own
    gradient, where reading it ended the sandbox (your code ended the sandbox early)."""
    sub = tmp_path / "meta.py"
    sub.write_text("dlogits = torch.zeros_like(logits, device='meta')\n")

    def said() -> None:
        with forked_here(monkeypatch):  # the child is this process, forked, with the test's changes
            result = cli(["exercise2", str(sub), "--format", "json"])
        assert result.exit_code == 1 and result.stdout.startswith("{"), result.output[-600:]
        dlogits = json.loads(result.stdout)["gradients"][0]
        assert dlogits["status"] == "error" and dlogits["message"].startswith(
            "dlogits is a tensor on the meta device, not a torch.Tensor of shape"), dlogits

    said()
    mechanism_off(said, lambda m: m.setattr(runner_module, "_odd_kind", lambda t: None), "the check of a tensor's kind")


def test_student_raising_memory_limit_text_is_only_an_error_on_its_line(course: Course,
                                                                        dataset: Dataset) -> None:
    """A student's own `raise ValueError("memory limit")` is an exception on that line, not the
    sandbox's memory limit: the program goes on and the gradient after it is judged (typed, not text)."""
    solution = course.exercise("exercise2").solution.read_text()
    report = grade(course, dataset, "exercise2", 'try_this = 1\nraise ValueError("memory limit")\n' + solution)
    dlogits = report.gradients[0]
    assert dlogits.passed, dlogits.message


def test_runner_knows_a_real_allocation_failure_by_its_type() -> None:
    """torch's CPU allocator failing is the memory limit; the same words raised by hand are not."""
    try:
        torch.empty(10**14)
    except RuntimeError as exc:
        real: BaseException = exc
    assert runner_module.out_of_memory(real) and runner_module.out_of_memory(MemoryError())
    assert not runner_module.out_of_memory(ValueError("memory limit"))
    assert not runner_module.out_of_memory(ValueError(str(real)))


FORBIDDEN_CALLS = [(e, name) if e != "exercise4" else pytest.param(e, name, marks=pytest.mark.slow)  # it trains
                   for e in ("exercise1", "exercise2", "exercise3", "exercise4")
                   for name in ("cross_entropy", "nll_loss", "log_softmax", "batch_norm", "instance_norm",
                                "layer_norm", "group_norm")]


@pytest.mark.parametrize(("exercise_id", "name"), FORBIDDEN_CALLS)
def test_forbid_in_course_yaml_takes_effect(course: Course, dataset: Dataset, exercise_id: str,
                                            name: str) -> None:
    """A library call an exercise forbids (course.yaml's `forbid:`), in the line that gives a gradient
    its final value, is refused: that gradient is `error` naming the line and the call, every other
    one passes. A call it does not forbid is run (batch_norm is forbidden in 1, 3 and 4)."""
    exercise = course.exercise(exercise_id)
    last = exercise.gradients[-1].name
    source = exercise.solution.read_text() + f"\n{last} = {last} if F.{name} else None\n"
    line = len(source.splitlines())
    results = {g.name: g for g in grade(course, dataset, exercise_id, source).gradients}
    if name in exercise.forbid:
        assert results[last].status.value == "error"
        assert results[last].message.startswith(f"line {line}: not run: '{name}' does the whole computation")
        assert all(g.passed for g in results.values() if g.name != last)
    else:
        assert all(g.passed for g in results.values())


def test_forbid_lists_are_the_documented_ones(course: Course) -> None:
    """Each exercise forbids (course.yaml's forbid:) exactly the fused calls that would do its graded work."""
    assert {e.id: e.forbid for e in course.exercises} == {
        "exercise1": {"cross_entropy", "nll_loss", "log_softmax", "batch_norm"},
        "exercise2": {"cross_entropy", "nll_loss"},
        "exercise3": {"batch_norm", "instance_norm", "layer_norm", "group_norm"},
        "exercise4": {"cross_entropy", "nll_loss", "batch_norm"},
    }
