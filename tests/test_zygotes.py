"""A batch imports torch for its sandboxes once: each worker's zygote is forked by the batch's own.

The zygote a worker is handed is a fork of a fresh interpreter that never held a truth (the
batch's zygote), never of the batch or the worker; it forks that worker's children, and ends,
killing them, once the worker's end of its socket closes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from grader.ci.pool import Pool
from grader.confined import zygote as grader_zygote
from grader.confined.choice import prestart, zygote_for_worker
from grader.confined.protocol import Case, Run
from grader.confined.unix import UnixSandbox
from grader.courseware.course import Limits
from tests.conftest import unix_only

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
