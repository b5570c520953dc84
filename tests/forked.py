"""A unix sandbox whose child is forked from the test process instead of the zygote.

The real child is forked by the zygote, a fresh interpreter, so nothing a test changes in
its own process reaches it. To prove what the child's confinement holds past every Python
guard, a test replaces what the child runs (`grader.confined.child.execute`) or switches a
protection off (say, `grader.confined.kernel.landlock_only`) with monkeypatch, and opens its
sandbox through `forked_here`: the child is then this process, forked, with the test's
changes, confining itself with the real `confine` and speaking the real protocol.

`as_user` makes the child drop to that user before it confines itself, so that a root test
run also proves what holds for a grader that is not root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from grader.confined import child as child_module
from grader.confined import unix as unix_module
from grader.confined.protocol import Raised
from grader.courseware.course import Limits

_setgroups = getattr(os, "setgroups", None)  # kept, so that a test switching setgroups off still sets these


class ForkHere:
    """Stands in for the zygote: forks this process for each sandbox, and reaps what it forked."""

    def __init__(self, as_user: tuple[int, int] | None = None, groups: list[int] | None = None) -> None:
        self.as_user, self.groups = as_user, groups

    def alive(self) -> bool:
        return True  # this process: it runs the test

    def spawn(self, source: str, path: str, *, time_s: float, memory_mb: int, scratch: str,
              world: dict[str, object] | None) -> tuple[int, socket.socket]:
        ours, theirs = socket.socketpair()
        limits = Limits(time_s, memory_mb)
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                ours.close()
                if self.groups is not None:  # a grader with supplementary groups (root only)
                    _setgroups(self.groups)
                if self.as_user is not None:
                    uid, gid = self.as_user
                    os.chown(scratch, uid, gid)
                    _setgroups([])
                    os.setgid(gid)
                    os.setuid(uid)
                child_module.serve(theirs, source, path, limits=limits, world=world,
                                   confine=lambda: child_module.confine(scratch, limits, [theirs.fileno()],
                                                                        new_session=True))
            except BaseException:
                status = 70
                if os.environ.get("NINJA_SANDBOX_DEBUG"):
                    with open(os.environ["NINJA_SANDBOX_DEBUG"], "a") as f:
                        traceback.print_exc(file=f)
            finally:
                os._exit(status)
        theirs.close()
        return pid, ours

    def reap(self, pid: int) -> int | None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return None


@contextlib.contextmanager
def forked_here(monkeypatch: pytest.MonkeyPatch, *, as_user: tuple[int, int] | None = None,
                groups: list[int] | None = None) -> Iterator[ForkHere]:
    """Every unix sandbox opened inside forks its child from this process."""
    fork = ForkHere(as_user, groups)
    monkeypatch.setattr(unix_module, "start_zygote", lambda: fork)
    yield fork


def replace_run(monkeypatch: pytest.MonkeyPatch, body: Any) -> None:
    """What the child runs for each run: `body(ns)` instead of the program, in the child (after it is
    confined); what it returns is the run's errors (statement index -> text)."""
    def execute(program: Any, ns: dict[str, object], at: Any = None, **_kwargs: Any) -> tuple[dict[int, Raised], str,
                                                                                               None, float]:
        return {i: Raised(None, text) for i, text in (body(ns) or {}).items()}, "", None, 0.0

    monkeypatch.setattr("grader.confined.child.execute", execute)
