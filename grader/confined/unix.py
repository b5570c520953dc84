"""The unix sandbox: a child forked by the zygote (grader/confined/zygote.py), over a socket pair.

The zygote is a fresh Python with torch already imported that never holds a truth or the
grader's environment; it forks each child, passes the grader its socket, and reaps it once the
grader has killed its process group.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time

from grader.confined import kernel
from grader.confined.child import HAS_LIMITS
from grader.confined.sandbox import Ending, Sandbox, SandboxError
from grader.confined.wire import BufferedReader, WireError
from grader.confined.zygote import ZygoteError
from grader.confined.zygote import start as start_zygote

UNIX_NEEDED = ("the unix sandbox needs os.fork, process groups and resource limits, which this Python lacks; "
               "grade with --sandbox portable (or leave --sandbox out to choose by itself)")


def unix_sandbox_available() -> bool:
    """Whether this Python has what the unix sandbox is built from: fork, process groups, resource limits."""
    return all(hasattr(os, name) for name in ("fork", "setsid", "killpg")) and HAS_LIMITS


class UnixSandbox(Sandbox):
    """A child forked by the zygote, over a socket pair; the grader kills its process group."""

    kind = "unix"
    _unread: BufferedReader

    def _start(self) -> None:
        self._unread = BufferedReader(self._recv_some)
        if not unix_sandbox_available():
            raise SandboxError(UNIX_NEEDED)
        try:
            zygote = start_zygote()
            self.pid, self.sock = zygote.spawn(self.source, self.path, time_s=self.limits.time_s,
                                               memory_mb=self.limits.memory_mb, scratch=self.scratch,
                                               world=self.world)
        except ZygoteError as exc:
            raise SandboxError(str(exc)) from None
        self._zygote = zygote
        try:
            self._ready(timeout_s=30.0)
        except (TimeoutError, EOFError, OSError, WireError):
            status = self._end()
            self.sock.close()
            ending = self._ended(status)
            why = (f"signal {ending.signal}" if ending.signal else
                   f"exit code {ending.code}" if ending.code is not None else "no answer")
            raise SandboxError(f"cannot start the sandbox: its child ended before it was ready ({why}); set "
                               "NINJA_SANDBOX_DEBUG=FILE to see why in FILE") from None

    def _write(self, data: bytes) -> None:
        self.sock.settimeout(max(0.01, self.deadline - time.monotonic()))
        self.sock.sendall(data)

    def _recv(self, n: int) -> bytearray:
        if n and self.deadline - time.monotonic() <= 0:
            raise TimeoutError
        return self._unread(n)  # what one read brought past the bytes asked for: most often the next frames too

    def _recv_some(self, n: int) -> bytes:
        """Up to n bytes from the child, once some are there before the deadline."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        ready, _, _ = select.select([self.sock], [], [], remaining)
        if not ready:
            raise TimeoutError
        return self.sock.recv(n)

    def _kill(self) -> int | None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)  # before it has its own session
        return self._zygote.reap(self.pid)

    def _starter_gone(self) -> bool:
        return not self._zygote.alive()

    def _ends_within(self, seconds: float) -> None:
        kernel.wait_for_exit(self.pid, seconds)

    def _ended(self, status: int | None) -> Ending:
        if status is not None and os.WIFSIGNALED(status):
            return Ending(signal=os.WTERMSIG(status))
        if status is not None and os.WIFEXITED(status):
            return Ending(code=os.WEXITSTATUS(status))
        return Ending()

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
