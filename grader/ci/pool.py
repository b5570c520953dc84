"""A batch's workers: forked once, one submission at a time each, every answer awaited in bounded time.

Where the batch runs one worker per core it may use (as it does by default), each worker runs on
a core of its own, and its zygote and every sandbox it opens run there with it: a worker and its
sandbox's child take turns (commit, reveal), and a turn handed over on the same core is cheaper
than one handed to another. With fewer workers than cores, or more, the system places them: the
cores left over may be another batch's, and a core with two pinned workers could not hand one off.

The batch hands each worker one job and waits for its answer with a deadline. So the batch
always knows which job a worker is on: a worker that dies is the death of that job alone (it
is tried again in a fresh worker, and a job that kills its worker every time is said to),
and a worker that does not answer by the deadline is killed and its job said to hang. The
other jobs are graded as usual, by the workers left and the fresh ones started in place of
those lost. Jobs and answers cross a pipe between the batch and its own workers (no student
code runs in a worker: it runs in the sandbox the worker opens).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
import warnings
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Generic, Protocol, TypeVar

Job = TypeVar("Job", bound=Hashable)
ATTEMPTS = 2  # a job that kills a fresh worker this many times is its own doing


@contextlib.contextmanager
def forking() -> Iterator[None]:
    """Around the grader's own forks (a batch's workers): Python 3.12+ warns at every fork of a
    process with threads, and a process that has imported torch always has some. The workers
    forked here take none of their locks, so that warning would only be noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"This process \(pid=\d+\) is multi-threaded",
                                category=DeprecationWarning)
        yield


@dataclass(frozen=True)
class Died:
    """Every worker that took the job died before it answered; how the last one did."""

    how: str
    times: int


@dataclass(frozen=True)
class Hung:
    """The worker gave no answer in `seconds` and was killed."""

    seconds: float


class Handed(Protocol):
    """What the batch makes for a worker just before it forks it (its zygote): the worker's copy is the
    worker's, and the batch closes its own once the worker is forked."""

    def close(self) -> None: ...


def usable_cores() -> list[int]:
    """The cores this process may run on, in order; [] where the system cannot say or set them (not Linux)."""
    if not (hasattr(os, "sched_getaffinity") and hasattr(os, "sched_setaffinity")):
        return []
    try:
        return sorted(os.sched_getaffinity(0))
    except OSError:
        return []


def _serve(conn: Connection, start: Callable[[Any], None], work: Callable[[Any], Any], handed: Handed | None,
           core: int | None) -> None:
    """A worker: on its core (and what it starts with it), set up once, then answer one job at a time until
    told to stop or the batch goes."""
    if core is not None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {core})
    start(handed)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(work(job))


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    job: Any = None
    deadline: float = 0.0
    stopping: bool = False  # told there is nothing left for it
    core: int | None = None  # the core it runs on


@dataclass
class Pool(Generic[Job]):
    """`size` workers, each running `start(handed)` once and then `work(job)` for the jobs it is given;
    `handed` is what `hand()` made for that worker just before it was forked (None without `hand`)."""

    size: int
    start: Callable[[Any], None]
    work: Callable[[Job], Any]
    within: float  # seconds a worker may take to answer one job, its start included for its first
    hand: Callable[[], Handed | None] | None = None
    workers: list[_Worker] = field(default_factory=list)
    cores: list[int] = field(default_factory=usable_cores)  # where workers run; one core or none: anywhere

    def _core(self) -> int | None:
        """The core for a new worker, where there is one worker per core: the one fewest workers run on
        (the core a dead worker left), the first of those."""
        if len(self.cores) < 2 or self.size != len(self.cores):
            return None
        taken = [w.core for w in self.workers]
        return min(self.cores, key=taken.count)

    def _spawn(self) -> _Worker:
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe()
        handed = self.hand() if self.hand is not None else None
        core = self._core()
        process = context.Process(target=_serve, args=(theirs, self.start, self.work, handed, core), daemon=True)
        try:
            with forking():
                process.start()
        finally:
            theirs.close()
            if handed is not None:
                handed.close()
        worker = _Worker(process, ours, core=core)
        self.workers.append(worker)
        return worker

    def _give(self, worker: _Worker, job: Job) -> None:
        worker.job, worker.deadline = job, time.monotonic() + self.within
        worker.conn.send(job)

    def _drop(self, worker: _Worker, *, wait_s: float = 0.0) -> str:
        """Take a worker out, killed unless it ends within `wait_s`. How it ended."""
        self.workers.remove(worker)
        worker.process.join(wait_s)
        if worker.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid or 0, signal.SIGKILL)
            worker.process.join()
        worker.conn.close()
        code = worker.process.exitcode
        if code is None:
            return "no exit status"
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"

    def run(self, jobs: list[Job], done: Callable[[Job, Any], None]) -> None:
        """Every job's answer, a Died or a Hung given to `done` as it comes; the workers are ended after."""
        pending = deque(jobs)
        deaths: dict[Job, int] = {}
        try:
            while pending or any(w.job is not None for w in self.workers):
                for worker in self.workers:
                    if worker.job is None and not worker.stopping and pending:
                        self._give(worker, pending.popleft())
                while pending and len([w for w in self.workers if not w.stopping]) < self.size:
                    self._give(self._spawn(), pending.popleft())
                busy = [w for w in self.workers if w.job is not None]
                timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
                ready = wait([w.conn for w in busy], timeout)
                now = time.monotonic()
                for worker in busy:
                    job = worker.job
                    if worker.conn in ready:
                        try:
                            answer = worker.conn.recv()
                        except (EOFError, OSError):
                            how = self._drop(worker, wait_s=1.0)  # dead, or about to be: its exit status
                            deaths[job] = deaths.get(job, 0) + 1
                            if deaths[job] < ATTEMPTS:
                                pending.appendleft(job)
                            else:
                                done(job, Died(how, deaths[job]))
                            continue
                        worker.job = None
                        done(job, answer)
                    elif now >= worker.deadline:
                        self._drop(worker)
                        done(job, Hung(self.within))
                if not pending:
                    for worker in [w for w in self.workers if w.job is None and not w.stopping]:
                        worker.stopping = True
                        with contextlib.suppress(OSError):
                            worker.conn.send(None)  # nothing left for it: it ends, and its zygote with it
        finally:
            for worker in list(self.workers):
                self._drop(worker, wait_s=5.0 if worker.stopping else 0.0)
