"""Every student's machine: the portable sandbox, and nothing Unix-only at import time.

"Without Unix" runs the real CLI in a subprocess whose Python has no resource, pwd or fcntl
module and no os.fork, os.setsid or os.killpg, as on Windows; the portable sandbox's child
is started the same way (a sitecustomize on PYTHONPATH hides them in both), so neither
process can lean on what Windows lacks. The portable sandbox on this Linux is checked too,
from outside, through /proc.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.cli.tools import BATCH_NEEDS_FORK
from grader.confined.choice import protections
from grader.confined.portable import PortableSandbox
from grader.confined.sandbox import Sandbox
from grader.confined.unix import UNIX_NEEDED, UnixSandbox
from grader.courseware.course import Limits
from tests.conftest import ROOT, SUBMISSIONS, Cli

HIDE_UNIX = """
import os, sys
for name in ("resource", "pwd", "fcntl"):
    sys.modules[name] = None  # importing them fails, as on Windows
for name in ("fork", "setsid", "killpg", "forkpty"):
    if hasattr(os, name):
        delattr(os, name)
"""
HOSTILE = SUBMISSIONS / "hostile"


@pytest.fixture(scope="module")
def hidden(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose sitecustomize hides the Unix-only modules from any Python started with it on PYTHONPATH."""
    folder = tmp_path_factory.mktemp("without-unix")
    (folder / "sitecustomize.py").write_text(HIDE_UNIX)
    return folder


def without_unix(hidden: Path, *args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hidden), os.environ.get("PYTHONPATH")]))}
    env.pop("NINJA_SANDBOX", None)
    return subprocess.run([sys.executable, "-c", "from grader.cli import run; run()", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout, check=False)


def test_the_hiding_works(hidden: Path) -> None:
    """The stand-in for Windows really lacks what it should, in the grader and in any Python it starts."""
    env = {**os.environ, "PYTHONPATH": str(hidden)}
    probe = ("import os, importlib.util; missing = [m for m in ('resource', 'pwd', 'fcntl') "
             "if not _try(m)]; print(missing, [n for n in ('fork', 'setsid', 'killpg') if hasattr(os, n)])")
    code = "def _try(m):\n    try:\n        __import__(m)\n        return True\n    except ImportError:\n" \
           "        return False\n" + probe
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "['resource', 'pwd', 'fcntl'] []"


def test_help_works_without_unix_modules(hidden: Path) -> None:
    """`import grader` and `ninja-grade --help` need nothing Unix-only."""
    result = without_unix(hidden, "--help")
    assert result.returncode == 0, result.stderr
    assert "exercise1" in result.stdout and "--sandbox" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.slow
def test_without_unix_every_solution_passes_in_the_portable_sandbox(hidden: Path, tmp_path: Path) -> None:
    """All four exercises' solutions, graded where the unix sandbox cannot run: the portable one grades
    them, and the report says which sandbox and which protections held."""
    result = without_unix(hidden, "all", str(ROOT / "solutions"), "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    report = json.loads(result.stdout)
    assert [(e["exercise"], e["score"], e["max_score"]) for e in report["exercises"]] == [
        ("exercise1", 26, 26), ("exercise2", 1, 1), ("exercise3", 1, 1), ("exercise4", 7, 7)]
    sandbox = report["environment"]["sandbox"]
    assert sandbox["sandbox"] == "portable"
    assert sandbox["memory"] == "the grader watches its memory and kills it over the limit"
    assert sandbox["time"] == "wall clock (grader)"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_without_unix_a_real_run_trains(hidden: Path, tmp_path: Path) -> None:
    """Exercise 4's streamed real run works over the portable sandbox's pipes."""
    result = without_unix(hidden, "exercise4", str(ROOT / "solutions" / "exercise4.py"), "--steps", "200",
                          "--format", "json", "--plot", str(tmp_path / "curve.png"))
    assert result.returncode == 0, result.stderr[-2000:]
    run = json.loads(result.stdout)
    assert run["steps"] == 200 and run["stopped"] is None and run["val_loss"] is not None
    assert (tmp_path / "curve.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(("attack", "status", "words"), [
    ("infinite_loop", "error", "time limit of 3 s reached (wall clock)"),
    ("raises_system_exit_first", "error", "your code ended early (line 2: SystemExit: 0)"),
    ("prints_fake_report_only", "wrong", "maxdiff"),
    ("memory_bomb", "error", "memory limit of 256 MB reached"),
])
def test_without_unix_misbehaving_code_fails_cleanly(hidden: Path, tmp_path: Path, attack: str, status: str,
                                                     words: str) -> None:
    """A loop, an early exit, a fake report on stdout, a memory bomb (no RLIMIT_AS here: the grader
    watches the child's memory): each is graded for what it is, in bounded time, nothing left behind."""
    started = time.monotonic()
    result = without_unix(hidden, "exercise2", str(HOSTILE / f"{attack}.py"), "--format", "json",
                          "--time-limit", "3", "--memory-limit", "256", cwd=tmp_path)
    assert time.monotonic() - started < 60
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)  # the whole stdout is the grader's own JSON, whatever the code printed
    (dlogits,) = report["gradients"]
    assert report["score"] == 0 and dlogits["status"] == status
    assert words in dlogits["message"], dlogits["message"]
    assert not dlogits["message"].startswith("CPU")  # the child's import of torch is not the student's time
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def spawned_children_of(parent: int) -> list[int]:
    """The portable sandboxes' children started by process `parent` (from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent and b"grader.confined.spawned" in cmdline:
                found.append(int(proc.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the child through /proc")
def test_without_unix_a_crashed_child_is_named(hidden: Path, tmp_path: Path) -> None:
    """A child that crashes (a real SIGSEGV, sent from outside as a segfault would end it) costs the
    gradient, with the signal's name, and the grading ends at once."""
    env = {**os.environ, "PYTHONPATH": str(hidden)}
    env.pop("NINJA_SANDBOX", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "from grader.cli import run; run()", "exercise2", str(HOSTILE / "infinite_loop.py"),
         "--format", "json", "--time-limit", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env=env)
    deadline = time.monotonic() + 120
    children: list[int] = []
    while not children and time.monotonic() < deadline:
        time.sleep(0.2)
        children = spawned_children_of(process.pid)
    assert children, "the portable sandbox's child never started"
    time.sleep(3)  # past its start-up: torch imported, the student's loop running
    os.kill(children[0], signal.SIGSEGV)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, out + err
    (dlogits,) = json.loads(out)["gradients"]
    assert dlogits["status"] == "error"
    assert "your code crashed the sandbox (SIGSEGV)" in dlogits["message"]


@pytest.mark.slow
def test_without_unix_batch_says_what_it_needs(hidden: Path, tmp_path: Path) -> None:
    """A batch forks its workers: without fork it says so in one line, exit 2, nothing written."""
    result = without_unix(hidden, "batch", "exercise2", str(ROOT / "solutions" / "exercise2.py"), "--out",
                          str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [f"ninja-grade: {BATCH_NEEDS_FORK}"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_without_unix_asking_for_the_unix_sandbox_says_why_not(hidden: Path, tmp_path: Path) -> None:
    """--sandbox unix where it cannot run: one line, exit 2, no traceback."""
    result = without_unix(hidden, "--sandbox", "unix", "exercise2", str(ROOT / "solutions" / "exercise2.py"),
                          cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [f"ninja-grade: {UNIX_NEEDED}"]


# --- the portable sandbox on this system, forced with --sandbox portable ----------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inspects the child through /proc")
def test_portable_child_is_confined_seen_from_outside() -> None:
    """Before it runs a line of student code, the portable child has: its own session, 0-2 on the null
    device and no other file open but its two pipes, an environment with nothing of the grader's, a
    scratch working directory, CPU and address-space limits; and when grading ends it is gone."""
    with PortableSandbox("x = 1", "x.py", Limits(7, 300)) as box:
        proc = Path(f"/proc/{box.pid}")
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        assert int(fields[3]) == box.pid  # field 6: the session, its own
        fds = {int(fd.name): os.readlink(fd) for fd in (proc / "fd").iterdir()}
        assert fds[0] == fds[1] == fds[2] == "/dev/null"
        assert {target.split(":")[0] for fd, target in fds.items() if fd > 2} == {"pipe"}
        assert len(fds) == 5
        environ = dict(item.split("=", 1) for item in (proc / "environ").read_bytes().decode().split("\0") if item)
        assert set(environ) <= {"PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS",
                                "MKL_NUM_THREADS", "PATH", "TMPDIR", "TEMP", "TMP"}, environ  # what it started with
        assert os.readlink(proc / "cwd") == box.scratch
        limits = (proc / "limits").read_text()
        cpu = next(line for line in limits.splitlines() if line.startswith("Max cpu time"))
        memory = next(line for line in limits.splitlines() if line.startswith("Max address space"))
        # the CPU limit is 7 s + 1 on top of what the child had used when it confined itself (its start-up)
        used = sum(int(t) for t in fields[11:13]) / os.sysconf("SC_CLK_TCK")  # fields 14-15: utime, stime
        assert used - 1 <= int(cpu.split()[3]) - 8 <= used, (cpu, used)
        assert memory.split()[3] != "unlimited"
        pid, scratch = box.pid, box.scratch
    assert not Path(f"/proc/{pid}").exists() or (Path(f"/proc/{pid}") / "stat").read_text().split()[2] == "Z"
    assert not Path(scratch).exists()


@pytest.mark.slow
@pytest.mark.parametrize(("attack", "status", "words"), [
    ("infinite_loop", "error", "time limit of 3 s reached (wall clock)"),
    ("memory_bomb", "error", "memory limit of 256 MB reached"),
    ("monkeypatches_allclose_only", "wrong", "maxdiff"),
])
def test_portable_sandbox_holds_on_this_system(cli: Cli, attack: str, status: str, words: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """--sandbox portable grades misbehaving code as the unix sandbox does (RLIMIT_AS here)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NINJA_SANDBOX", "auto")  # restored at teardown: --sandbox sets it for the process
    result = cli(["--sandbox", "portable", "exercise2", str(HOSTILE / f"{attack}.py"),
                  "--format", "json", "--time-limit", "3", "--memory-limit", "256"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    (dlogits,) = report["gradients"]
    assert dlogits["status"] == status and words in dlogits["message"], dlogits["message"]
    assert not dlogits["message"].startswith("CPU")  # the child's import of torch is not the student's time
    assert report["environment"]["sandbox"]["sandbox"] == "portable"
    assert report["environment"]["sandbox"]["memory"] == "RLIMIT_AS"
    assert list(tmp_path.iterdir()) == []


def test_protections_name_each_sandbox() -> None:
    """The environment's sandbox entry says which sandbox graded, and what held."""
    unix, portable = protections("unix"), protections("portable")
    assert unix["sandbox"] == "unix" and portable["sandbox"] == "portable"
    assert set(unix) == set(portable)
    assert "RLIMIT_CPU" in unix["time"] and unix["memory"] == "RLIMIT_AS"


def test_sandboxes_override_nothing_they_share() -> None:
    """The unix and portable sandboxes implement Sandbox's abstract parts and nothing more of it: how
    the child starts, is spoken to and ends; the protocol, the clock and the checks are one code."""
    shared = {name for name, value in vars(Sandbox).items()
              if callable(value) and not getattr(value, "__isabstractmethod__", False)}
    assert shared and Sandbox.__abstractmethods__
    for kind in (UnixSandbox, PortableSandbox):
        assert shared & set(vars(kind)) == set(), kind.__name__
        assert Sandbox.__abstractmethods__ <= set(vars(kind)), kind.__name__


def test_a_bad_sandbox_choice_is_one_line(tmp_path: Path) -> None:
    """A typo in NINJA_SANDBOX (or --sandbox) is refused by name before anything is graded."""
    env = {**os.environ, "NINJA_SANDBOX": "portabel"}
    result = subprocess.run([sys.executable, "-c", "from grader.cli import run; run()", "exercise2",
                             str(ROOT / "solutions" / "exercise2.py")], capture_output=True, text=True, env=env,
                            cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "portabel" in result.stderr and "Traceback" not in result.stderr


def test_a_portable_child_that_cannot_start_is_one_sentence(cli: Cli, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    """A child Python that dies before it is ready (a broken install) is the grader's set-up problem,
    said as such, never blamed on the student's code."""
    real = subprocess.Popen

    def broken_python(cmd: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return real([cmd[0], "-c", "import sys; sys.exit(3)"], **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr("grader.confined.portable.subprocess.Popen", broken_python)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NINJA_SANDBOX", "auto")  # restored at teardown: --sandbox sets it for the process
    result = cli(["--sandbox", "portable", "exercise2", str(ROOT / "solutions" / "exercise2.py")])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == ("ninja-grade: cannot start the portable sandbox: its Python ended (exit code 3) "
                                     "before it was ready; set NINJA_SANDBOX_DEBUG=FILE to see why in FILE")
