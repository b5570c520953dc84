"""A batch imports torch for its sandboxes once: each worker's zygote is forked by the batch's own.

The zygote a worker is handed is a fork of a fresh interpreter that never held a truth (the
batch's zygote), never of the batch or the worker; it forks that worker's children, and ends,
killing them, once the worker's end of its socket closes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from grader.ci.pool import Pool, usable_cores
from grader.confined import zygote as grader_zygote
from grader.confined.choice import prestart, zygote_for_worker
from grader.confined.protocol import Case, Run
from grader.confined.sandbox import SandboxError
from grader.confined.unix import UnixSandbox
from grader.courseware.course import Limits
from tests.conftest import ROOT, unix_only

pytestmark = unix_only

SMALL = Limits(time_s=10, memory_mb=256)


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def running(pid: int) -> bool:
    """Whether a process is there and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def zygote_facts(_job: int) -> tuple[int, int, int, bool]:
    """In a worker: its pid, its zygote's, that zygote's parent, and whether a sandbox opens through it."""
    zygote = grader_zygote.start()
    with UnixSandbox("x = 1", "<test>", SMALL) as box:
        box.case(Case({}, {}, {}, ("x",)))
        opened = box.run(Run()).died is None
    return os.getpid(), zygote.pid, parent_of(zygote.pid), opened


def workers_facts(hand: bool) -> dict[int, tuple[int, int, int, bool]]:
    answers: dict[int, tuple[int, int, int, bool]] = {}
    pool: Pool[int] = Pool(2, prestart, zygote_facts, 120.0, hand=zygote_for_worker if hand else None)
    pool.run([1, 2, 3, 4], answers.__setitem__)
    return answers


def test_each_worker_is_handed_a_zygote_forked_by_the_batchs_own() -> None:
    """Two workers, two zygotes, both children of this process's zygote (torch imported once), each
    grading; a worker not handed one starts its own, a fresh interpreter of its own."""
    root = grader_zygote.start()
    root.wait_ready()
    handed = workers_facts(hand=True)
    workers = {worker: (zygote, parent) for worker, zygote, parent, _ in handed.values()}
    assert len(workers) == 2
    assert all(opened for *_, opened in handed.values())
    assert len({zygote for zygote, _ in workers.values()}) == 2
    assert all(parent == root.pid and zygote != root.pid for zygote, parent in workers.values())

    own = workers_facts(hand=False)
    assert all(parent == worker and opened for worker, _, parent, opened in own.values())


def test_a_forked_zygote_ends_with_its_socket_and_kills_its_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the last copy of its socket closes (its worker died), the zygote forked for it kills the
    sandbox child it forked and ends; until then both run."""
    root = grader_zygote.start()
    forked = root.fork()
    monkeypatch.setattr(grader_zygote, "_zygote", root)
    grader_zygote.adopt(forked)
    assert grader_zygote.start() is forked
    with UnixSandbox("x = 1", "<test>", SMALL) as box:
        box.case(Case({}, {}, {}, ("x",)))
        assert box.run(Run()).died is None
        child = box.pid
        assert running(child) and running(forked.pid) and parent_of(child) == forked.pid
        forked.sock.close()  # as a worker's death closes it
        assert gone_within(child, 5)
        assert gone_within(forked.pid, 5)
    assert not forked.alive()
    assert root.alive()


def test_a_batch_whose_zygote_died_starts_another_for_its_workers() -> None:
    """The batch's zygote killed before its workers are forked: a new one is started, and the workers'
    zygotes are forked by it, and grade."""
    dead = grader_zygote.start()
    dead.wait_ready()
    os.kill(dead.pid, 9)
    assert gone_within(dead.pid, 5)
    handed = workers_facts(hand=True)
    fresh = grader_zygote.start()
    assert fresh is not dead and fresh.alive()
    assert all(opened and parent == fresh.pid for _, _, parent, opened in handed.values())


def sandboxes_under(pid: int) -> list[int]:
    """The sandbox children among a process's descendants."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and running(int(entry.name)):
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = parent_of(int(entry.name))
    below, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - below
        below |= frontier
    found = []
    for child in below:
        with contextlib.suppress(OSError):
            forked = Path(f"/proc/{child}/comm").read_text().strip() == "ninja-sandbox"
            if forked or b"grader.confined.spawned" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return sorted(found)


def confined(pid: int) -> bool:
    """Whether a process has no_new_privs (the sandbox's child sets it once it is set to die with its parent)."""
    return "NoNewPrivs:\t1" in Path(f"/proc/{pid}/status").read_text()


def cpu_ticks(pid: int) -> int:
    """The CPU time a process has used, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


HANGS = "dlogprobs = -1.0 / 32 / probs\nwhile True:\n    pass\n"


@pytest.mark.parametrize("sandbox,command,who", [("unix", "exercise1", "this user"), ("unix", "batch", "this user"),
                                                 ("portable", "exercise1", "this user"),
                                                 ("unix", "exercise1", "a user without rights")])
def test_a_grader_killed_outright_leaves_no_sandbox_running(tmp_path: Path, sandbox: str, command: str, who: str,
                                                            request: pytest.FixtureRequest) -> None:
    """SIGKILL to `ninja-grade`'s process group while a submission loops for ever (as a job scheduler stops a
    job): the grader and its zygotes end at once, with no chance to kill anything, and every sandbox's child,
    in a session of its own, ends with its zygote (the portable one's with the grader), not when its CPU limit
    comes. As root the child ends with its zygote though it has become nobody; as a user without rights, as
    that user."""
    folder = Path(tempfile.mkdtemp(prefix="ninja-killed-"))  # under /tmp, open to the user who grades
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    folder.chmod(0o755)
    submission = folder / "student.py"
    submission.write_text(HANGS)
    submission.chmod(0o644)
    args = [submission] if command == "exercise1" else ["exercise1", submission, "--out", tmp_path / "out"]
    command_line = [sys.executable, "-m", "grader.cli", "--sandbox", sandbox, command, *map(str, args)]
    if who != "this user":
        command_line = request.getfixturevalue("unprivileged").command(*command_line)
    grader = subprocess.Popen(command_line, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (children := sandboxes_under(grader.pid)):
            assert grader.poll() is None and time.monotonic() < deadline, "no sandbox started"
            time.sleep(0.05)
        for child in children:  # in the submission's loop: confined, then busy where a waiting child is idle
            while not confined(child):
                assert running(child) and time.monotonic() < deadline, "the sandbox was never confined"
                time.sleep(0.05)
            ticks = cpu_ticks(child)
            while cpu_ticks(child) < ticks + 100:  # a second of CPU: past its start (compile, the case) on any host
                assert running(child) and time.monotonic() < deadline, "the sandbox never ran the submission"
                time.sleep(0.05)
    finally:
        os.killpg(grader.pid, signal.SIGKILL)
        grader.wait()
    assert all(gone_within(child, 5) for child in children)


def test_a_zygote_killed_while_its_child_grades_is_the_graders_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The zygote killed from outside mid-run takes its child with it: a SandboxError (the grader failed; the
    batch grades that submission again), never the submission's own `error`."""
    monkeypatch.setattr(grader_zygote, "_zygote", None)
    zygote = grader_zygote.start()
    zygote.wait_ready()
    with UnixSandbox("x = 0\nfor i in range(10 ** 9):\n    x += 1\n", "<test>", SMALL) as box:
        box.case(Case({}, {}, {}, ("x",)))
        killer = threading.Timer(1.0, os.kill, (zygote.pid, signal.SIGKILL))
        killer.start()
        try:
            with pytest.raises(SandboxError, match="zygote ended while it graded"):
                box.run(Run())
        finally:
            killer.cancel()
        assert gone_within(box.pid, 5)
    assert grader_zygote.start() is not zygote  # the next sandbox gets a fresh one


def test_a_child_whose_parent_is_gone_before_it_is_set_to_die_with_it_ends() -> None:
    """The child sets itself to end with its parent only once it has changed user; a parent already gone
    by then (it has another) means it ends at once, before any code of the student's."""
    from grader.confined.child import _die_with  # noqa: PLC0415 - the one step under test

    pid = os.fork()
    if pid == 0:  # the forked test process: told its parent is one it does not have
        try:
            _die_with(os.getppid() + 1)
        finally:
            os._exit(5)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def cores_facts(_job: int) -> tuple[int, set[int], set[int], set[int]]:
    """In a worker: its pid, and the cores it, its zygote and a sandbox's child opened through it may run on."""
    zygote = grader_zygote.start()
    with UnixSandbox("x = 1", "<test>", SMALL) as box:
        box.case(Case({}, {}, {}, ("x",)))
        assert box.run(Run()).died is None
        child = os.sched_getaffinity(box.pid)
    return os.getpid(), os.sched_getaffinity(0), os.sched_getaffinity(zygote.pid), child


@pytest.mark.skipif(len(usable_cores()) < 2, reason="a worker is put on a core of its own where there are two")
@pytest.mark.parametrize("hand", [True, False], ids=["handed a zygote", "its own zygote"])
def test_each_worker_runs_on_a_core_of_its_own_with_its_sandboxes(hand: bool) -> None:
    """Two workers on the two cores the batch may use: each on one core, not the same one, and its zygote
    and the sandbox it opens on that core with it (whether the batch forked that zygote or the worker
    started it)."""
    answers: dict[int, tuple[int, set[int], set[int], set[int]]] = {}
    pool: Pool[int] = Pool(2, prestart, cores_facts, 120.0, hand=zygote_for_worker if hand else None,
                           cores=usable_cores()[:2])
    pool.run([1, 2, 3, 4], answers.__setitem__)
    cores = {worker: mine for worker, mine, _, _ in answers.values()}
    assert len(cores) == 2 and all(len(mine) == 1 for mine in cores.values())
    assert len(set.union(*cores.values())) == 2
    assert all(zygote == mine and child == mine for _, mine, zygote, child in answers.values())


def dies_once(job: int) -> tuple[int, set[int]]:
    """Job 1 kills the first worker that takes it; every job answers its worker's pid and cores, after a
    moment (so that the other worker cannot answer every job before the death is seen)."""
    marker = Path(os.environ["NINJA_TEST_MARKER"])
    if job == 1 and not marker.exists():
        marker.touch()
        os._exit(1)
    time.sleep(0.05)
    return os.getpid(), os.sched_getaffinity(0)


@pytest.mark.skipif(len(usable_cores()) < 2, reason="a worker is put on a core of its own where there are two")
def test_a_worker_started_in_place_of_a_dead_one_takes_its_core(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The first worker dies on its first job; the one started in its place runs on the core it left, not
    on the other worker's."""
    monkeypatch.setenv("NINJA_TEST_MARKER", str(tmp_path / "died"))
    answers: dict[int, tuple[int, set[int]]] = {}
    pool: Pool[int] = Pool(2, lambda _handed: None, dies_once, 120.0, cores=usable_cores()[:2])
    pool.run([1, 2, 3, 4, 5, 6], answers.__setitem__)
    assert (tmp_path / "died").exists() and set(answers) == {1, 2, 3, 4, 5, 6}
    cores = {pid: frozenset(mine) for pid, mine in answers.values()}
    assert len(cores) == 2 and len(set(cores.values())) == 2, cores


@pytest.mark.skipif(len(usable_cores()) < 2, reason="with one core there is nothing to choose")
def test_fewer_workers_than_cores_are_left_where_the_system_puts_them() -> None:
    """One worker for the batch's two cores or more: not pinned (the cores it leaves may be another
    batch's), so it and its sandboxes may run on every core the batch may."""
    answers: dict[int, tuple[int, set[int], set[int], set[int]]] = {}
    pool: Pool[int] = Pool(1, prestart, cores_facts, 120.0, hand=zygote_for_worker)
    pool.run([1, 2], answers.__setitem__)
    everywhere = set(usable_cores())
    assert all(mine == zygote == child == everywhere for _, mine, zygote, child in answers.values())
