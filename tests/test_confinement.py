"""What the kernel and the OS leave a confined child, past every Python guard.

Each test replaces what the child runs with plain Python of its own (tests/forked.py): as if
graded code had escaped the jail entirely. It then checks that the operating system still
refuses: files outside the scratch folder, sockets, signals and ptrace to other processes,
new privileges, files over the size limit, CPU and wall-clock time, new processes. Each is
tried as root (the child chroots into its scratch folder as nobody) and as a user without
rights (Landlock, seccomp), and each is tried again with its protection switched off, where
the same check must fail: no test here passes without the mechanism it names.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from grader.confined import child as child_module
from grader.confined import kernel
from grader.confined import unix as unix_module
from grader.confined import zygote as grader_zygote
from grader.confined.choice import protections
from grader.confined.protocol import Case, Run
from grader.confined.sandbox import Sandbox
from grader.confined.unix import UnixSandbox
from grader.courseware.course import Limits
from tests.conftest import ROOT, Cli, User, grade, unix_only
from tests.forked import forked_here, replace_run

pytestmark = unix_only
resource = pytest.importorskip("resource")
pwd = pytest.importorskip("pwd")

SMALL = Limits(time_s=5, memory_mb=256)
SOLUTION = ROOT / "solutions" / "exercise1.py"
Body = Callable[[dict[str, object]], dict[int, str]]


def read_one(path: Path | str) -> None:
    with open(path) as f:
        f.read(1)


def write(path: Path | str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def outcome(action: Callable[[], object]) -> str:
    try:
        action()
    except OSError as exc:
        return f"refused: {errno.errorcode.get(exc.errno or 0, exc.errno)}"
    return "done"


def in_child(monkeypatch: pytest.MonkeyPatch, body: Body, *, as_user: User | None = None, limits: Limits = SMALL,
             deadline_s: float | None = None, groups: list[int] | None = None) -> tuple[dict[int, str], str | None,
                                                                                      Sandbox]:
    """Run `body` in a confined child forked from this process; what it said, and why it died if it did."""
    replace_run(monkeypatch, body)
    with forked_here(monkeypatch, as_user=(as_user.uid, as_user.gid) if as_user else None, groups=groups), \
            UnixSandbox("x = 1", "<test>", limits) as box:
        if deadline_s is not None:
            box.deadline = time.monotonic() + deadline_s
        box.case(Case({}, {}, {}, ()))
        result = box.run(Run())
    return {i: error.text for i, error in result.errors.items()}, result.died, box


@pytest.fixture(params=["root", "user"])
def who(request: pytest.FixtureRequest, unprivileged: User) -> User | None:
    """The grader as root (None: the child drops to nobody in a chroot) or as a user without rights."""
    if request.param == "root":
        if os.geteuid() != 0:
            pytest.skip("the tests do not run as root")
        return None
    return unprivileged if os.geteuid() == 0 else None


@pytest.fixture
def users_file(unprivileged: User) -> Iterator[Path]:
    """A file only the unprivileged user (and root) can read, in a folder they may write to (under /tmp,
    where they can reach it: pytest's own temporary folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="ninja-home-", dir="/tmp"))
    secret = folder / "secret.txt"
    secret.write_text("the user's own secret\n")
    if os.geteuid() == 0:
        os.chown(folder, unprivileged.uid, unprivileged.gid)
        os.chown(secret, unprivileged.uid, unprivileged.gid)
    secret.chmod(0o600)
    yield secret
    shutil.rmtree(folder, ignore_errors=True)


def files_body(readable: list[Path], writable: Path) -> Body:
    def body(ns: dict[str, object]) -> dict[int, str]:
        out = {i: outcome(lambda p=p: read_one(p)) for i, p in enumerate(readable)}
        out[90] = outcome(lambda: write(writable, b"pwned"))
        out[91] = outcome(lambda: write("own.txt", b"fine"))  # its scratch folder
        return out
    return body


def test_child_opens_no_file_outside_its_scratch_folder(monkeypatch: pytest.MonkeyPatch, who: User | None,
                                                        users_file: Path) -> None:
    """No read of the course's solutions or the user's files, no write beside them; its own folder works."""
    pwned = users_file.parent / "pwned.txt"
    said, died, _ = in_child(monkeypatch, files_body([SOLUTION, users_file], pwned), as_user=who)
    assert died is None
    assert said[0].startswith("refused") and said[1].startswith("refused") and said[90].startswith("refused")
    assert said[91] == "done" and not pwned.exists()


def test_child_files_are_kept_by_landlock_alone_for_a_user(monkeypatch: pytest.MonkeyPatch, unprivileged: User,
                                                           users_file: Path) -> None:
    """For a grader without root nothing else keeps files from the child: with Landlock off it reads them."""
    as_user = unprivileged if os.geteuid() == 0 else None
    monkeypatch.setattr(kernel, "landlock_only", lambda folder: "")
    pwned = users_file.parent / "pwned.txt"
    said, _, box = in_child(monkeypatch, files_body([SOLUTION, users_file], pwned), as_user=as_user)
    assert said[0] == "done" and said[1] == "done" and said[90] == "done"
    assert not box.held["landlock"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the chroot needs root")
def test_child_files_are_kept_by_the_chroot_too_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """As root, the chroot hides the course's files even with Landlock off; with both off they are read."""
    monkeypatch.setattr(kernel, "landlock_only", lambda folder: "")
    said, _, _ = in_child(monkeypatch, files_body([SOLUTION], Path("/tmp") / f"ninja-{uuid.uuid4().hex}"))
    assert said[0].startswith("refused")

    def no_chroot(scratch: str) -> str:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        return ""

    monkeypatch.setattr(child_module, "_drop_root", no_chroot)
    said, _, _ = in_child(monkeypatch, files_body([SOLUTION], Path("/tmp") / f"ninja-{uuid.uuid4().hex}"))
    assert said[0] == "done"


def sockets_body(ns: dict[str, object]) -> dict[int, str]:
    return {0: outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
            1: outcome(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())}


def test_child_opens_no_socket(monkeypatch: pytest.MonkeyPatch, who: User | None) -> None:
    """No new socket of any family (seccomp); with seccomp off, it can open one."""
    said, _, _ = in_child(monkeypatch, sockets_body, as_user=who)
    assert said == {0: "refused: EPERM", 1: "refused: EPERM"}
    monkeypatch.setattr(kernel, "seccomp_filter", lambda: "")
    said, _, _ = in_child(monkeypatch, sockets_body, as_user=who)
    assert said == {0: "done", 1: "done"}


@pytest.fixture
def neighbour(unprivileged: User) -> Iterator[int]:
    """A process of the unprivileged user, as another student's child or the user's own shell would be."""
    proc = subprocess.Popen(unprivileged.command("sleep", "60"))
    time.sleep(0.2)
    yield proc.pid
    proc.kill()
    proc.wait()


def reach_body(target: int) -> Body:
    def body(ns: dict[str, object]) -> dict[int, str]:
        libc = ctypes.CDLL(None, use_errno=True)

        def attach() -> None:
            if libc.ptrace(16, target, 0, 0) != 0:  # PTRACE_ATTACH
                raise OSError(ctypes.get_errno(), "ptrace")
            libc.ptrace(17, target, 0, 0)  # PTRACE_DETACH

        return {0: outcome(lambda: os.kill(target, 0)), 1: outcome(attach)}
    return body


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a second process of the same user, made by root")
def test_child_neither_signals_nor_traces_another_process(monkeypatch: pytest.MonkeyPatch, unprivileged: User,
                                                          neighbour: int) -> None:
    """A child of a user without rights cannot signal or ptrace that user's other processes (seccomp
    and Landlock's scope); with both off, it can."""
    said, _, _ = in_child(monkeypatch, reach_body(neighbour), as_user=unprivileged)
    assert said[0].startswith("refused") and said[1].startswith("refused")
    monkeypatch.setattr(kernel, "seccomp_filter", lambda: "")
    monkeypatch.setattr(kernel, "landlock_only", lambda folder: "")
    said, _, _ = in_child(monkeypatch, reach_body(neighbour), as_user=unprivileged)
    assert said == {0: "done", 1: "done"}


@pytest.mark.skipif(os.geteuid() != 0, reason="the switch to nobody needs root")
def test_child_cannot_signal_the_grader_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """As root the child is nobody with no groups: it cannot signal the grader; left as root, it could."""
    grader = os.getpid()

    def body(ns: dict[str, object]) -> dict[int, str]:
        return {0: outcome(lambda: os.kill(grader, 0)), 1: str(os.getuid()), 2: str(os.getgid()),
                3: str(os.getgroups())}

    said, _, _ = in_child(monkeypatch, body)
    assert said[0] == "refused: EPERM" and said[1] == "65534" and said[2] != "0" and said[3] == "[]"
    monkeypatch.setattr(kernel, "seccomp_filter", lambda: "")
    monkeypatch.setattr(kernel, "landlock_only", lambda folder: "")
    monkeypatch.setattr(child_module, "_drop_root", lambda scratch: "")
    said, _, _ = in_child(monkeypatch, body)
    assert said[0] == "done" and said[1] == "0"


@pytest.mark.skipif(os.geteuid() != 0, reason="the switch to nobody needs root")
def test_child_drops_its_groups_as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """As root, the child keeps none of the grader's groups (here the grader has group 4242); without
    setgroups it would keep them."""
    def body(ns: dict[str, object]) -> dict[int, str]:
        return {0: str(os.getgroups()), 1: str(os.getgid())}

    said, _, _ = in_child(monkeypatch, body, groups=[4242])
    assert said == {0: "[]", 1: "65534"}
    monkeypatch.setattr(child_module.os, "setgroups", lambda groups: None)
    said, _, _ = in_child(monkeypatch, body, groups=[4242])
    assert said[0] == "[4242]"


def test_child_works_in_an_empty_scratch_folder(monkeypatch: pytest.MonkeyPatch, unprivileged: User) -> None:
    """A grader without root gives the child an empty scratch folder as its working folder; without the
    move into it, the child would work where the grader does."""
    as_user = unprivileged if os.geteuid() == 0 else None

    def body(ns: dict[str, object]) -> dict[int, str]:
        return {0: os.path.basename(os.getcwd()), 1: str(sorted(os.listdir(".")))}

    said, _, box = in_child(monkeypatch, body, as_user=as_user)
    assert said[0] == os.path.basename(box.scratch) and said[0].startswith("ninja-scratch-") and said[1] == "[]"
    monkeypatch.setattr(child_module.os, "chdir", lambda path: None)
    monkeypatch.setattr(kernel, "landlock_only", lambda folder: "")
    said, _, _ = in_child(monkeypatch, body, as_user=as_user)
    assert not said[0].startswith("ninja-scratch-")


def test_child_has_no_new_privileges(monkeypatch: pytest.MonkeyPatch, who: User | None) -> None:
    """no_new_privs is set (Landlock and seccomp need it); without it, neither is installed."""
    def body(ns: dict[str, object]) -> dict[int, str]:
        libc = ctypes.CDLL(None, use_errno=True)
        return {0: str(libc.prctl(39, 0, 0, 0, 0))}  # PR_GET_NO_NEW_PRIVS

    said, _, box = in_child(monkeypatch, body, as_user=who)
    assert said == {0: "1"} and box.held["landlock"] and box.held["seccomp"]
    monkeypatch.setattr(kernel, "no_new_privs", lambda: "")
    said, _, box = in_child(monkeypatch, body, as_user=who)
    assert said == {0: "0"} and not box.held["landlock"] and not box.held["seccomp"]


def big_write(ns: dict[str, object]) -> dict[int, str]:
    return {0: outcome(lambda: write("big.bin", b"\0" * (child_module.FILE_SIZE_LIMIT + 1)))}


def test_child_writes_no_file_over_the_size_limit(monkeypatch: pytest.MonkeyPatch, who: User | None) -> None:
    """A write past RLIMIT_FSIZE fails (EFBIG) instead of filling the disk; without the limit it succeeds."""
    said, died, _ = in_child(monkeypatch, big_write, as_user=who)
    assert died is None and said == {0: "refused: EFBIG"}
    real = resource.setrlimit

    def no_fsize(which: int, limits: tuple[int, int]) -> None:
        if which != resource.RLIMIT_FSIZE:
            real(which, limits)

    monkeypatch.setattr(child_module.resource, "setrlimit", no_fsize)
    said, _, _ = in_child(monkeypatch, big_write, as_user=who)
    assert said == {0: "done"}


def spin(ns: dict[str, object]) -> dict[int, str]:
    while True:
        pass


@pytest.mark.slow
def test_child_is_stopped_by_its_cpu_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy loop ends at RLIMIT_CPU, said as the CPU limit, even when the wall clock is far; without
    the CPU limit only the wall clock ends it, and says so."""
    limits = Limits(time_s=1, memory_mb=256)
    _, died, _ = in_child(monkeypatch, spin, limits=limits, deadline_s=15)
    assert died == "CPU time limit of 1 s reached"
    real = resource.setrlimit

    def no_cpu(which: int, limit: tuple[int, int]) -> None:
        if which != resource.RLIMIT_CPU:
            real(which, limit)

    monkeypatch.setattr(child_module.resource, "setrlimit", no_cpu)
    _, died, _ = in_child(monkeypatch, spin, limits=limits, deadline_s=4)
    assert died == "time limit of 1 s reached (wall clock)"


@pytest.mark.slow
def test_child_is_stopped_by_the_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that sleeps uses no CPU: only the grader's wall clock ends it, in its time; with the
    deadline pushed out, the same child finishes its run."""
    def sleeps(ns: dict[str, object]) -> dict[int, str]:
        time.sleep(3)
        return {0: "woke"}

    limits = Limits(time_s=1, memory_mb=256)
    started = time.monotonic()
    said, died, _ = in_child(monkeypatch, sleeps, limits=limits)
    assert died == "time limit of 1 s reached (wall clock)" and time.monotonic() - started < 3
    said, died, _ = in_child(monkeypatch, sleeps, limits=limits, deadline_s=8)
    assert died is None and said == {0: "woke"}


def starts_a_process(ns: dict[str, object]) -> dict[int, str]:
    try:
        pid = os.fork()
    except OSError as exc:
        return {0: f"refused: {errno.errorcode[exc.errno or 0]}"}
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    return {0: f"started {pid}"}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_child_starts_no_process(monkeypatch: pytest.MonkeyPatch, who: User | None) -> None:
    """RLIMIT_NPROC 0: no new process; without it the child starts one."""
    said, _, _ = in_child(monkeypatch, starts_a_process, as_user=who)
    assert said == {0: "refused: EAGAIN"}
    real = resource.setrlimit
    monkeypatch.setattr(child_module.resource, "setrlimit",
                        lambda which, limit: real(which, limit) if which != resource.RLIMIT_NPROC else None)
    said, _, _ = in_child(monkeypatch, starts_a_process, as_user=who)
    assert said[0].startswith("started")
    os.kill(int(said[0].split()[1]), signal.SIGKILL)


def test_sandbox_leaves_no_process_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a child starts (with the process limit lifted) dies with its process group when grading ends;
    without the kill of the group it would sleep on."""
    real = resource.setrlimit
    monkeypatch.setattr(child_module.resource, "setrlimit",
                        lambda which, limit: real(which, limit) if which != resource.RLIMIT_NPROC else None)
    said, _, _ = in_child(monkeypatch, starts_a_process)
    grandchild = int(said[0].split()[1])
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)
    monkeypatch.setattr(unix_module.os, "killpg", lambda pid, sig: None)
    said, _, _ = in_child(monkeypatch, starts_a_process)
    survivor = int(said[0].split()[1])
    time.sleep(0.3)
    try:
        assert alive(survivor)
    finally:
        os.kill(survivor, signal.SIGKILL)


# --- the zygote: a child never forked from the grader ------------------------------------------


def memory_holds(pid: int, needle: bytes) -> bool:
    """Whether a process's writable memory holds `needle` (read as root through /proc)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "w" not in fields[1] or (len(fields) > 5 and fields[5].startswith("[v")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except (OSError, OverflowError, ValueError):
                continue
    return False


@pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root")
def test_child_holds_nothing_of_the_graders_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child is forked by the zygote: none of the grader's memory (a planted secret, standing for its
    environment and the truths of earlier gradings) is in the child's; a child forked from the grader
    itself would hold it."""
    secret = f"ninja-secret-{uuid.uuid4().hex}".encode()
    monkeypatch.setenv("NINJA_TEST_SECRET", secret.decode())
    kept = bytearray(secret)  # held by the grader, as a freed truth would linger in its heap

    def waits(ns: dict[str, object]) -> dict[int, str]:
        time.sleep(5)
        return {}

    with UnixSandbox("x = 1", "<test>", SMALL) as box:
        box.case(Case({}, {}, {}, ()))
        box.run(Run())
        assert not memory_holds(box.pid, secret)
    replace_run(monkeypatch, waits)
    with forked_here(monkeypatch), UnixSandbox("x = 1", "<test>", SMALL) as forked:
        forked.case(Case({}, {}, {}, ()))
        forked.deadline = time.monotonic() + 0.5
        found = memory_holds(forked.pid, secret)
    assert found and kept


@pytest.mark.skipif(os.geteuid() != 0, reason="reading another process's memory needs root")
def test_no_child_finds_the_code_of_one_before_it_in_the_zygotes_memory() -> None:
    """What a child runs goes to that child alone: neither the zygote nor a child it forks later holds the
    source, the path or the scratch folder of one before (a class graded one after another by one worker,
    whose next student reads uninitialised memory with numpy.empty)."""
    marker = f"ninja-private-{uuid.uuid4().hex}"
    with UnixSandbox(f"# {marker}: alice's own solution\nx = 1\n", f"/class/{marker}/alice.py", SMALL) as alice:
        alice.case(Case({}, {}, {}, ()))
        alice.run(Run())
        scratch = alice.scratch.encode()
    zygote = grader_zygote.start()
    with UnixSandbox("y = 2", "<bob>", SMALL) as bob:
        bob.case(Case({}, {}, {}, ()))
        bob.run(Run())
        for pid in (zygote.pid, bob.pid):
            assert not memory_holds(pid, marker.encode())
            assert not memory_holds(pid, scratch)


def test_grader_is_not_dumpable_once_it_grades(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a sandbox makes the grader non-dumpable (its /proc is root's); without that call it stays dumpable."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE 1, as a fresh process is
    with UnixSandbox("x = 1", "<test>", SMALL):
        assert libc.prctl(3, 0, 0, 0, 0) == 0  # PR_GET_DUMPABLE
    libc.prctl(4, 1, 0, 0, 0)
    monkeypatch.setattr(kernel, "not_dumpable", lambda: True)
    with UnixSandbox("x = 1", "<test>", SMALL):
        assert libc.prctl(3, 0, 0, 0, 0) == 1


READS_PARENT = """
import os, sys
from grader.confined import kernel
if sys.argv[1] == "on":
    kernel.not_dumpable()
pid = os.fork()
if pid == 0:
    try:
        text = open(f"/proc/{os.getppid()}/environ", "rb").read()
        print("read" if b"NINJA_TEST_SECRET" in text else "empty", flush=True)
    except OSError as exc:
        print("refused", exc.errno, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_not_dumpable_keeps_a_same_user_process_out(unprivileged: User) -> None:
    """Run as a user without rights: a process of the same user cannot read a non-dumpable grader's
    environment; it can read a dumpable one's."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "NINJA_TEST_SECRET": "the CI's token"}

    def attempt(switch: str) -> str:
        done = subprocess.run(unprivileged.command(sys.executable, "-c", READS_PARENT, switch), capture_output=True,
                              text=True, env=env, cwd="/", timeout=60, check=False)
        return done.stdout.strip() + done.stderr[-300:]

    assert attempt("on").startswith("refused")
    assert attempt("off") == "read"


def test_confine_reports_what_held(monkeypatch: pytest.MonkeyPatch, who: User | None) -> None:
    """What the child says held is what this kernel offers (Landlock's ABI, seccomp), named in the report."""
    _, _, box = in_child(monkeypatch, lambda ns: {}, as_user=who)
    held: dict[str, Any] = protections(box.kind, box.held)
    assert held["landlock"].startswith(f"Landlock ABI {kernel.landlock_abi()}") if kernel.landlock_abi() else True
    assert held["seccomp"].startswith("seccomp") and held["no_new_privs"] == "no_new_privs"
    assert held["files"].startswith("chroot") == (who is None and os.geteuid() == 0)


def starts_clean(ns: dict[str, object]) -> dict[int, str]:
    return {0: str(sorted(os.environ)), 1: str(os.fstat(0).st_rdev == os.makedev(1, 3)),
            2: str(os.getsid(0) == os.getpid()),
            **{10 + i: str(resource.getrlimit(r)[0]) for i, r in enumerate(
                (resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_FSIZE, resource.RLIMIT_NPROC,
                 resource.RLIMIT_CORE))}}


def test_child_starts_clean(monkeypatch: pytest.MonkeyPatch, who: User | None) -> None:
    """The child has nothing of the grader's environment, 0-2 on the null device, its own session, and
    every limit set; with the environment left as it was, the grader's variables would be there."""
    monkeypatch.setenv("NINJA_DATA", "/a/secret/path")
    said, _, _ = in_child(monkeypatch, starts_clean, as_user=who)
    assert said[0] == str(sorted(["HOME", "LANG", "PATH"]))
    assert said[1] == "True" and said[2] == "True"
    unlimited = str(resource.RLIM_INFINITY)
    assert unlimited not in (said[10], said[11], said[12]) and said[13] == "0" and said[14] == "0"
    monkeypatch.setattr(child_module.os.environ, "clear", lambda: None)
    said, _, _ = in_child(monkeypatch, starts_clean, as_user=who)
    assert "NINJA_DATA" in said[0]


@pytest.mark.slow
def test_time_limit_is_shared_by_every_run_of_a_submission(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wall clock is one budget for all of a submission's runs and cases: five runs of 0.4 s each
    outlast a 1 s limit; given a new clock for each run (the protection off), every run would finish."""
    def slow(ns: dict[str, object]) -> dict[int, str]:
        time.sleep(0.4)
        return {0: "done"}

    def five_runs() -> list[str | None]:
        replace_run(monkeypatch, slow)
        with forked_here(monkeypatch), UnixSandbox("x = 1", "<test>", Limits(time_s=1, memory_mb=256)) as box:
            box.case(Case({}, {}, {}, ()))
            return [box.run(Run()).died for _ in range(5)]

    died = five_runs()
    assert died[0] is None and died[-1] == "time limit of 1 s reached (wall clock)"
    real_run = UnixSandbox.run

    def fresh_clock(self: UnixSandbox, request: Run, decide: Any = None) -> Any:
        self.deadline = time.monotonic() + self.limits.time_s
        return real_run(self, request, decide)

    monkeypatch.setattr(UnixSandbox, "run", fresh_clock)
    assert five_runs() == [None] * 5


def dies_on_run(number: int) -> Body:
    """A child that ends itself (past every guard) on its `number`th run."""
    runs = [0]

    def body(ns: dict[str, object]) -> dict[int, str]:
        runs[0] += 1
        if runs[0] == number:
            os._exit(3)
        return {}
    return body


def test_a_sandbox_ended_mid_grading_gives_no_point(monkeypatch: pytest.MonkeyPatch, course: Any,
                                                    dataset: Any) -> None:
    """Exercise 1: a child that dies in the middle of its runs (the isolated run of the first case) leaves
    every gradient error with the reason, never a pass on the runs before."""
    exercise = course.exercise("exercise1")
    replace_run(monkeypatch, dies_on_run(3))
    with forked_here(monkeypatch):
        report = grade(course, dataset, exercise, exercise.solution.read_text(), label="s.py", draw="fresh")
    assert report.score == 0
    assert {g.status.value for g in report.gradients} == {"error"}
    assert all("your code ended the sandbox early (exit code 3)" in g.message for g in report.gradients)


@pytest.mark.slow
def test_a_sandbox_ended_in_the_quick_check_gives_no_point(monkeypatch: pytest.MonkeyPatch, course: Any,
                                                           dataset: Any) -> None:
    """Exercise 4: a child that dies on a training step of the quick check stops the run there, and no
    gradient keeps a point from the steps before."""
    exercise = course.exercise("exercise4")
    real_execute = child_module.execute
    runs = [0]

    def dies_later(program: Any, ns: dict[str, object], at: Any = None, **kwargs: Any) -> Any:
        runs[0] += 1
        if runs[0] == 40:
            os._exit(3)
        return real_execute(program, ns, at, **kwargs)

    monkeypatch.setattr(child_module, "execute", dies_later)
    with forked_here(monkeypatch):
        report = grade(course, dataset, exercise, exercise.solution.read_text(), label="s.py", draw="fresh")
    assert report.score == 0 and report.training is not None
    assert "your code ended the sandbox early (exit code 3)" in (report.training.stopped or "")
    assert all(g.status.value == "error" for g in report.gradients)


def test_unix_report_says_what_held(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report graded by the unix sandbox says so in environment.sandbox, with what the kernel enforced
    on that child (as it said), and a note only when something could not be had."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NINJA_SANDBOX", "auto")
    result = cli(["--sandbox", "unix", "exercise2", str(ROOT / "solutions" / "exercise2.py"), "--format", "json"])
    report = json.loads(result.stdout)
    sandbox = report["environment"]["sandbox"]
    assert sandbox["sandbox"] == "unix" and sandbox["protocol"] == "commit before reveal"
    if kernel.landlock_abi():
        assert sandbox["landlock"].startswith(f"Landlock ABI {kernel.landlock_abi()}")
        assert not any("not available here" in n for n in report["notes"])
    assert sandbox["seccomp"].startswith("seccomp")


def test_report_says_in_one_line_what_could_not_be_had(monkeypatch: pytest.MonkeyPatch, course: Any, dataset: Any,
                                                      unprivileged: User) -> None:
    """Without Landlock (an older kernel) and without root, the report says so in one note, and what it
    means; the grading itself goes on."""
    exercise = course.exercise("exercise2")
    monkeypatch.setattr(kernel, "landlock_only", lambda folder: "")
    as_user = (unprivileged.uid, unprivileged.gid) if os.geteuid() == 0 else None
    with forked_here(monkeypatch, as_user=as_user):
        report = grade(course, dataset, exercise, exercise.solution.read_text(), label="s.py", draw="fresh")
    assert report.passed
    notes = [n for n in report.notes if "not available here" in n]
    assert len(notes) == 1 and notes[0].startswith("Landlock") and "what your user can" in notes[0]
    assert report.sandbox["landlock"] == ""


def meddle_body(target: int, uid: int) -> Body:
    """Change another process of the same user (its core-file limit, cores, scheduling, priority), and the
    same for itself."""
    def body(ns: dict[str, object]) -> dict[int, str]:
        cores = os.sched_getaffinity(0)
        nice = os.getpriority(os.PRIO_PROCESS, target)
        return {0: outcome(lambda: resource.prlimit(target, resource.RLIMIT_CORE, (0, 0))),
                1: outcome(lambda: os.sched_setaffinity(target, cores)),
                2: outcome(lambda: os.setpriority(os.PRIO_PROCESS, target, nice)),
                3: outcome(lambda: os.setpriority(os.PRIO_USER, uid, nice)),
                4: outcome(lambda: os.sched_setscheduler(target, os.SCHED_OTHER, os.sched_param(0))),
                10: outcome(lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0))),
                11: outcome(lambda: resource.prlimit(os.getpid(), resource.RLIMIT_CORE, (0, 0))),
                12: outcome(lambda: os.sched_setaffinity(0, cores)),
                13: outcome(lambda: os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0)))}
    return body


@pytest.fixture
def classmate() -> Iterator[int]:
    """A process of nobody's, as another student's sandbox child is when the grader runs as root."""
    nobody = pwd.getpwnam("nobody")
    proc = subprocess.Popen(User("nobody", nobody.pw_uid, nobody.pw_gid).command("sleep", "60"))
    time.sleep(0.2)
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a second process of the same user, made by root")
@pytest.mark.parametrize("as_root", [False, True], ids=["a user without rights", "root: children are nobody"])
def test_child_changes_no_limit_core_or_priority_but_its_own(monkeypatch: pytest.MonkeyPatch, unprivileged: User,
                                                             neighbour: int, classmate: int, as_root: bool) -> None:
    """A child cannot set its user's other processes' resource limits (a CPU limit of 0 would kill a
    classmate's sandbox), cores, scheduling or priority, nor the whole user's: as a user without rights
    (the user's other processes), nor as root, where every student's child is nobody. It still sets its
    own. With seccomp off, it can set them all."""
    body = meddle_body(classmate, pwd.getpwnam("nobody").pw_uid) if as_root else meddle_body(neighbour,
                                                                                            unprivileged.uid)
    as_user = None if as_root else unprivileged
    said, died, _ = in_child(monkeypatch, body, as_user=as_user)
    assert died is None
    assert all(said[i] == "refused: EPERM" for i in range(5)), said
    assert all(said[i] == "done" for i in range(10, 14)), said
    monkeypatch.setattr(kernel, "seccomp_filter", lambda: "")
    said, _, _ = in_child(monkeypatch, body, as_user=as_user)
    assert all(said[i] == "done" for i in (*range(5), *range(10, 14))), said


def ipc_body(key: int, queue: str) -> Body:
    """Make a System V shared memory segment, message queue and semaphore set, and a POSIX message queue,
    each open to everyone: a channel to any other child; each removed again where it was made."""
    def body(ns: dict[str, object]) -> dict[int, str]:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]

        def made(call: Callable[[], int], remove: Callable[[int], object]) -> None:
            found = call()
            if found < 0:
                raise OSError(ctypes.get_errno(), "ipc")
            remove(found)

        create = 0o1000 | 0o666  # IPC_CREAT, everyone may read and write
        return {0: outcome(lambda: made(lambda: libc.shmget(key, 4096, create), lambda i: libc.shmctl(i, 0, None))),
                1: outcome(lambda: made(lambda: libc.msgget(key, create), lambda i: libc.msgctl(i, 0, None))),
                2: outcome(lambda: made(lambda: libc.semget(key, 1, create), lambda i: libc.semctl(i, 0, 0))),
                3: outcome(lambda: made(lambda: libc.mq_open(queue.encode(), os.O_CREAT | os.O_RDWR, 0o666, None),
                                        lambda _fd: libc.mq_unlink(queue.encode())))}
    return body


def test_child_opens_no_channel_to_other_children(monkeypatch: pytest.MonkeyPatch, who: User | None) -> None:
    """No System V shared memory, message queue or semaphore set, and no POSIX message queue, which every
    other child of the same user (as root: nobody) could open. seccomp refuses all four; with it off, the
    System V ones are made, and the POSIX queue is still refused by Landlock (its file system is no part of
    the scratch folder); with both off, it is made too."""
    key, queue = 0x4E000000 | (os.getpid() & 0xFFFF), f"/ninja-test-{uuid.uuid4().hex[:12]}"
    said, died, _ = in_child(monkeypatch, ipc_body(key, queue), as_user=who)
    assert died is None and all(said[i] == "refused: EPERM" for i in range(4)), said
    monkeypatch.setattr(kernel, "seccomp_filter", lambda: "")
    said, _, _ = in_child(monkeypatch, ipc_body(key, queue), as_user=who)
    assert all(said[i] == "done" for i in range(3)) and said[3].startswith("refused"), said
    monkeypatch.setattr(kernel, "landlock_only", lambda folder: "")
    said, _, _ = in_child(monkeypatch, ipc_body(key, queue), as_user=who)
    assert said[3] == "done", said
