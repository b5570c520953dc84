"""Shared fixtures and tools: the course, the data set, the one way to grade a source text in this
process (`grade`) and the one way to run the CLI (the `cli` fixture, `run_cli` outside a test)."""

from __future__ import annotations

import functools
import os
import select
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import pytest
from click.testing import CliRunner, Result

from grader.cli import main
from grader.confined.unix import unix_sandbox_available
from grader.courseware.course import CaseSpec, Course, Exercise, load_course
from grader.courseware.data import Dataset, find_names
from grader.courseware.draw import Draw, pinned
from grader.intake.submission import compile_program
from grader.judging.results import Report
from grader.pipeline import grade_program
from tests.helpers import ROOT, Check, SwitchOff, check_fails_without

# What some tests need of the system; elsewhere (macOS, Windows: the CI matrix) they are skipped, saying why.
unix_only = pytest.mark.skipif(not (sys.platform.startswith("linux") and unix_sandbox_available()),
                               reason="tests the unix sandbox, which grades on Linux only")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="batch workers are forked: no os.fork here")
needs_sigint = pytest.mark.skipif(os.name == "nt", reason="Ctrl-C cannot be sent to a process as a signal here")

# The CLI as `python -c` runs it, taking Ctrl-C (SIGINT) as a terminal would, even where the suite
# itself was started with SIGINT ignored (`nohup`, a shell's background job): every program started
# from it inherits that, and Python then never raises KeyboardInterrupt.
CLI_TAKING_CTRL_C = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                     "from grader.cli import run; run()")
posix_grader = pytest.mark.skipif(os.name == "nt", reason="runs a platform's bash scripts in a POSIX venv, as the "
                                  "platforms' Linux machines do")
SUBMISSIONS = Path(__file__).resolve().parent / "submissions"


@pytest.fixture(scope="session")
def course() -> Course:
    return load_course(ROOT / "course.yaml")


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """$NINJA_DATA when set (CI), else the synthetic stand-in; never a download."""
    return find_names(os.environ.get("NINJA_DATA") or None, allow_download=False)


def pinned_draw(course: Course) -> Draw:
    """The cases the suite's expectations are written on, instead of fresh ones: the course's first case,
    then seed 1337 with a batch of 27 and seed 4242 with 48; the probes from the first seed + 1."""
    first = course.cases[0]
    return pinned(course, (first, CaseSpec("seed 1337, batch 27", 1337, 27, fresh=True),
                           CaseSpec("seed 4242, batch 48", 4242, 48, fresh=True)), probe_seed=first.seed + 1)


@pytest.fixture
def one_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every grading in this process draws the same fresh cases and seeds, whatever its code: those a
    class's secret gives no code (a .py and its notebook hold different code, so a secret alone would
    draw them different cases)."""
    from grader.courseware import draw  # noqa: PLC0415

    monkeypatch.setattr("grader.pipeline.draw_cases",
                        lambda course, exercise, **_: draw.draw(course, exercise, secret="one class"))


def grade(course: Course, dataset: Dataset, exercise: str | Exercise, source: str, *, label: str = "<submission>",
          draw: Draw | Literal["pinned", "fresh"] = "pinned") -> Report:
    """`source` graded as a submission of `exercise` (its id, or an Exercise changed for the test), in this
    process, as a student's file is: on the pinned draw (`pinned_draw`), on the cases a student's grading
    draws (`draw="fresh"`: fresh ones, or a class secret's), or on the `draw` given. `label` is the
    submission's name in the report."""
    if isinstance(exercise, str):
        exercise = course.exercise(exercise)
    if isinstance(draw, str):
        draw = pinned_draw(course) if draw == "pinned" else None
    return grade_program(course, exercise, compile_program(source, label), dataset, submission_label=label,
                         draw=draw)


Cli = Callable[..., Result]
_RUNNER = CliRunner()


def run_cli(args: Sequence[str], **options: Any) -> Result:
    """`ninja-grade ARGS` run in this process through click's CliRunner; `options` go to its invoke (`env`,
    `color`, `input`, `prog_name`). The result keeps stdout and stderr apart. Tests take the `cli` fixture;
    this is for the helpers they call."""
    return _RUNNER.invoke(main, list(args), **options)


@pytest.fixture(scope="session")
def cli() -> Cli:
    """`cli(ARGS, **options)`: the real CLI, run in this process (`run_cli`)."""
    return run_cli


def statuses(report: Report) -> dict[str, str]:
    return {g.name: g.status.value for g in report.gradients}


def failing(report: Report) -> set[str]:
    return {g.name for g in report.gradients if not g.passed}


_PENDING: dict[int, str] = {}  # per pipe: what was read past the last line returned


def wait_for_line(stream: IO[str], prefix: str, *, timeout: float) -> str:
    """The first line of `stream` (a child's pipe) that starts with `prefix`, read as it comes; fails
    after `timeout`. Reads the descriptor itself: a text wrapper's buffer would hide lines from select."""
    fd = stream.fileno()
    deadline = time.monotonic() + timeout
    while True:
        pending = _PENDING.get(fd, "")
        while "\n" in pending:
            line, pending = pending.split("\n", 1)
            _PENDING[fd] = pending
            if line.startswith(prefix):
                return line.strip()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break  # the process ended without it
        _PENDING[fd] = pending + chunk.decode(errors="replace")
    pytest.fail(f"no line starting {prefix!r} within {timeout} s")


UNPRIVILEGED = "ninja-grader-test"  # the user the tests grade as, where they run as root


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int

    def command(self, *args: str) -> list[str]:
        """`args` run as this user (through setpriv when the tests run as root), with no groups."""
        if os.geteuid() != 0:
            return list(args)
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", "--", *args]


def _reachable_by_others(path: Path) -> list[tuple[Path, int]]:
    """Let other users traverse every folder above `path` (the interpreter may live under /root);
    the modes changed, to put back."""
    changed = []
    for folder in reversed(path.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
            changed.append((folder, mode))
    return changed


@pytest.fixture(scope="session")
def unprivileged() -> Iterator[User]:
    """A user without rights to grade as: created when the tests run as root (as in CI), who can run
    this Python and read this checkout; the user running the tests otherwise."""
    if os.geteuid() != 0:
        import pwd  # noqa: PLC0415 - Unix only

        me = pwd.getpwuid(os.getuid())
        yield User(me.pw_name, me.pw_uid, me.pw_gid)
        return
    import pwd  # noqa: PLC0415 - Unix only

    if shutil.which("setpriv") is None or shutil.which("useradd") is None:
        pytest.skip("grading as another user needs setpriv and useradd (util-linux, passwd)")
    try:
        pwd.getpwnam(UNPRIVILEGED)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", UNPRIVILEGED],
                       check=True, capture_output=True)
    entry = pwd.getpwnam(UNPRIVILEGED)
    changed = _reachable_by_others(Path(os.path.realpath(sys.executable)))
    try:
        yield User(UNPRIVILEGED, entry.pw_uid, entry.pw_gid)
    finally:
        for folder, mode in changed:
            folder.chmod(mode)


OWN_DISTRIBUTION = ("backprop_ninja", "__editable__", "grader")  # this checkout, as the test interpreter sees it


@pytest.fixture(scope="session")
def offline_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this interpreter's installed packages (torch, click, pip, ...) without the grader: on
    PYTHONPATH, with PIP_NO_INDEX=1, it stands in for the package index a platform downloads from (no
    torch wheel is on this machine to install from), so a bundle's set-up runs whole, offline, and
    installs only the grader, from the bundle's own wheel."""
    import torch  # noqa: PLC0415 - its folder is the one holding every dependency

    site = Path(torch.__file__).resolve().parents[1]
    folder = tmp_path_factory.mktemp("offline-packages")
    for entry in site.iterdir():
        if not entry.name.startswith(OWN_DISTRIBUTION) and entry.suffix != ".pth":
            (folder / entry.name).symlink_to(entry)
    return folder


def offline_env(packages: Path, **extra: str) -> dict[str, str]:
    """The environment of a platform's process: no path to this checkout, no package index, no data but
    what the bundle carries."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NINJA_DATA", "NINJA_COURSE")}
    return {**env, "PYTHONPATH": str(packages), "PIP_NO_INDEX": "1", "NINJA_OFFLINE": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            **extra}


MechanismOff = Callable[[Check, SwitchOff, str], None]


@pytest.fixture
def mechanism_off(monkeypatch: pytest.MonkeyPatch) -> MechanismOff:
    """`mechanism_off(check, switch_off, "what")`: `check` fails once `switch_off` has monkeypatched the
    mechanism away (tests/helpers.py); every test of a protection ends with it."""
    return functools.partial(check_fails_without, monkeypatch)
