"""Student code is untrusted: hostile submissions fail cleanly, in bounded time.

Each file in tests/submissions/hostile/ is one attack, named for what it tries. Every
one must end with passed false, the right verdicts and a clear message, exit code 1,
no traceback, and nothing left behind: no files, no processes.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import stat
import tempfile
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from grader.cli import main
from grader.confined import runner as runner_module
from grader.confined.policy import PolicyError, check_policy, safe_import, view_of
from grader.confined.runner import Run, RunResult
from grader.confined.sandbox import Sandbox
from grader.courseware.course import Course, Limits
from tests.conftest import SUBMISSIONS, GradeSource, unix_only

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
    "infinite_loop": ("error", "time limit of 3 s reached", "message"),
    "memory_bomb": ("error", "memory limit of 256 MB reached", "message"),
    "runs_the_solution": ("missing", "line 2 (not run: import of 'glob' is not allowed", "notes"),
    "getattr_backward": ("error", "line 4: not run: 'getattr' is not available", "message"),
    "dunder_escape": ("wrong", "line 2 (not run: '__class__' reaches Python's internals", "notes"),
    "spawns_process": ("wrong", "line 2 (not run: import of 'subprocess' is not allowed", "notes"),
    "torch_module_escape": ("wrong", "line 2 (not run: '.os' is a module graded code may not use", "notes"),
    "frame_walk": ("wrong", "line 2 (not run: 'gi_frame' is not available", "notes"),
    "uses_cross_entropy": ("error", "line 2: not run: 'cross_entropy' does the whole computation for you",
                           "message"),
}


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


@pytest.mark.parametrize("attack", sorted(EXPECTED))
def test_hostile_submission_fails_cleanly(attack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack gets passed false, its verdict and message, exit 1, and leaves nothing behind."""
    monkeypatch.chdir(tmp_path)
    before = scratch_dirs()
    started = time.monotonic()
    result = CliRunner().invoke(main, ["exercise2", str(HOSTILE / f"{attack}.py"), "--format", "json",
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
    assert not Path("/tmp/pwned").exists()


def test_fake_report_printed_by_student_stays_in_output(tmp_path: Path) -> None:
    """What the student prints is shown as their output, never as the grader's report."""
    result = CliRunner().invoke(main, ["exercise2", str(HOSTILE / "prints_fake_report_only.py")])
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


def run_in_sandbox(source: str, given: dict[str, object], wanted: tuple[str, ...]) -> tuple[RunResult, Sandbox]:
    with Sandbox(source, "<test>", SMALL) as box:
        (result,) = box.run_case(given, {}, [Run()], wanted)
        return result, box


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
    result, _ = run_in_sandbox(source, {}, ("d",))
    messages = list(result.errors.values())
    assert "autograd is off" in messages[0]
    assert "import of 'os' is not allowed" in messages[1]
    assert "torch.os is not available" in messages[2]
    assert "NameError" in messages[3]
    assert torch.equal(result.values["d"], torch.full((2,), 2.0))  # type: ignore[arg-type]


def test_sandbox_child_that_exits_hard_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that ends itself with os._exit (past both lines) gives a reason, not a hang."""
    monkeypatch.setattr("grader.confined.child.run_once", lambda *a, **k: os._exit(0))
    result, _ = run_in_sandbox("x = 1", {}, ("x",))
    assert result.died == "your code ended the sandbox early (exit code 0)"
    assert result.values == {"x": None}


def test_sandbox_leaves_no_process_behind() -> None:
    """When grading ends, the child's whole process group is gone."""
    _, box = run_in_sandbox("x = torch.ones(1)", {}, ("x",))
    time.sleep(0.05)
    alive = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == box.pid:  # field 5 of stat: the process group
                alive.append(proc.name)
    assert alive == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the chroot and the user switch need root")
def test_sandbox_cannot_read_course_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the Python guards, the OS layer still hides the course's files from the child."""
    solution = str(Path(__file__).resolve().parent.parent / "solutions" / "exercise1.py")

    def try_to_read(*args: object, **kwargs: object) -> runner_module.RunResult:
        try:
            with open(solution) as f:
                f.read()
            readable = 1.0
        except OSError:
            readable = 0.0
        return runner_module.RunResult({"x": torch.tensor([readable, float(os.getuid())])}, {})

    monkeypatch.setattr("grader.confined.child.run_once", try_to_read)
    result, _ = run_in_sandbox("x = 1", {}, ("x",))
    readable, uid = result.values["x"].tolist()  # type: ignore[union-attr]
    assert readable == 0.0
    assert uid == 65534  # nobody


def test_sandbox_child_is_confined(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child has an empty environment, stdin on /dev/null, its own session, limits, and
    (as root) a scratch root directory."""

    def inspect(*args: object, **kwargs: object) -> runner_module.RunResult:
        env_clean = float(set(os.environ) <= {"PATH", "HOME", "LANG"} and "NINJA_DATA" not in os.environ)
        stdin_null = float(stat.S_ISCHR(os.fstat(0).st_mode) and os.fstat(0).st_rdev == os.makedev(1, 3))
        own_session = float(os.getsid(0) == os.getpid())
        cpu_limited = float(resource.getrlimit(resource.RLIMIT_CPU)[0] != resource.RLIM_INFINITY)
        rooted = float(os.getcwd() == "/" and not os.path.exists("/etc/passwd")) if os.geteuid() == 0 else 1.0
        return runner_module.RunResult({"x": torch.tensor([env_clean, stdin_null, own_session, cpu_limited,
                                                           rooted])}, {})

    monkeypatch.setenv("NINJA_DATA", "/a/secret/path")
    monkeypatch.setattr("grader.confined.child.run_once", inspect)
    result, _ = run_in_sandbox("x = 1", {}, ("x",))
    assert result.values["x"].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0]  # type: ignore[union-attr]


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
def test_cli_odd_values_fail_cleanly(tmp_path: Path, source: str, status: str) -> None:
    """NaN, inf, numpy arrays, lists, strings, integer dtypes and syntax errors: passed false,
    the right verdict with a reason, exit 1, no traceback, nothing left behind."""
    sub = tmp_path / "odd.py"
    sub.write_text(source + "\n")
    before = scratch_dirs()
    result = CliRunner().invoke(main, ["exercise2", str(sub), "--format", "json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert report["passed"] is False and report["gradients"][0]["status"] == status
    assert report["gradients"][0]["message"]
    assert scratch_dirs() == before and sorted(p.name for p in tmp_path.iterdir()) == ["odd.py"]


def test_student_raising_memory_limit_text_is_only_an_error_on_its_line(course: Course,
                                                                        grade_source: GradeSource) -> None:
    """A student's own `raise ValueError("memory limit")` is an exception on that line, not the
    sandbox's memory limit: the program goes on and the gradient after it is judged (typed, not text)."""
    solution = course.exercise("exercise2").solution.read_text()
    report = grade_source("exercise2", 'try_this = 1\nraise ValueError("memory limit")\n' + solution)
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


def forking_run(*_args: object, **_kwargs: object) -> RunResult:
    """Stands in for the child's run_once: tries to start a process that would outlive grading."""
    try:
        pid = os.fork()
    except OSError as exc:
        return RunResult({"x": None}, {0: f"refused: {errno.errorcode[exc.errno or 0]}"})
    if pid == 0:  # the grandchild: would sleep on long after grading if nothing killed it
        time.sleep(60)
        os._exit(0)
    return RunResult({"x": None}, {0: f"forked {pid}"})


def test_sandbox_child_cannot_start_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past every Python guard (run_once itself replaced), the OS refuses the confined child a
    new process: RLIMIT_NPROC is 0."""
    monkeypatch.setattr("grader.confined.child.run_once", forking_run)
    result, _ = run_in_sandbox("x = 1", {}, ("x",))
    assert result.errors == {0: "refused: EAGAIN"}


def test_sandbox_kills_what_the_child_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the process limit lifted, a grandchild the child starts (sleeping for a minute) is
    killed with the child's process group when grading ends: nothing outlives the sandbox."""
    real_setrlimit = resource.setrlimit

    def without_nproc(which: int, limits: tuple[int, int]) -> None:
        if which != resource.RLIMIT_NPROC:
            real_setrlimit(which, limits)

    monkeypatch.setattr("grader.confined.child.resource.setrlimit", without_nproc)
    monkeypatch.setattr("grader.confined.child.run_once", forking_run)
    result, _ = run_in_sandbox("x = 1", {}, ("x",))
    grandchild = int(result.errors[0].removeprefix("forked "))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            break  # gone
        if state == "Z":
            break  # dead, waiting to be reaped by init
        time.sleep(0.05)
    else:
        pytest.fail(f"process {grandchild}, started in the sandbox, is still running after grading")


FORBIDDEN_CALLS = [(e, name) for e in ("exercise1", "exercise2", "exercise3", "exercise4")
                   for name in ("cross_entropy", "nll_loss", "log_softmax", "batch_norm", "instance_norm",
                                "layer_norm", "group_norm")]


@pytest.mark.parametrize(("exercise_id", "name"), FORBIDDEN_CALLS)
def test_forbid_in_course_yaml_takes_effect(course: Course, grade_source: GradeSource, exercise_id: str,
                                            name: str) -> None:
    """A library call an exercise forbids (course.yaml's `forbid:`), in the line that gives a gradient
    its final value, is refused: that gradient is `error` naming the line and the call, every other
    one passes. A call it does not forbid is run (batch_norm is forbidden in 1, 3 and 4)."""
    exercise = course.exercise(exercise_id)
    last = exercise.gradients[-1].name
    source = exercise.solution.read_text() + f"\n{last} = {last} if F.{name} else None\n"
    line = len(source.splitlines())
    results = {g.name: g for g in grade_source(exercise_id, source).gradients}
    if name in exercise.forbid:
        assert results[last].status.value == "error"
        assert results[last].message.startswith(f"line {line}: not run: '{name}' does the whole computation")
        assert all(g.passed for g in results.values() if g.name != last)
    else:
        assert all(g.passed for g in results.values())


def test_forbid_lists_are_the_documented_ones(course: Course) -> None:
    """The fused calls each exercise forbids, as the README promises them."""
    assert {e.id: e.forbid for e in course.exercises} == {
        "exercise1": {"cross_entropy", "nll_loss", "log_softmax", "batch_norm"},
        "exercise2": {"cross_entropy", "nll_loss"},
        "exercise3": {"batch_norm", "instance_norm", "layer_norm", "group_norm"},
        "exercise4": {"cross_entropy", "nll_loss", "batch_norm"},
    }
