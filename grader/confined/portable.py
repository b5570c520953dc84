"""The portable sandbox: a fresh interpreter per submission (grader/confined/spawned.py), over its
stdin and stdout pipes, for systems without fork (Windows) or when asked for.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

from grader.confined.child import portable_limits
from grader.confined.memory import resident_mb
from grader.confined.sandbox import Ending, Sandbox, SandboxError
from grader.confined.wire import BufferedReader, WireError, pack
from grader.confined.world import encode_world
from grader.confined.zygote import minimal_environment


def sandbox_exec_profile(scratch: str) -> str:
    """macOS: a sandbox-exec profile for the portable child (no network, no writes outside the
    scratch folder, no reads of the user's home but for what Python needs)."""
    readable = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if p})
    reads = " ".join(f'(subpath "{p}")' for p in readable)
    return ("(version 1)(allow default)(deny network*)"
            f'(deny file-write* (require-not (require-any (subpath "{os.path.realpath(scratch)}") '
            '(literal "/dev/null"))))'
            f'(deny file-read* (require-all (subpath "/Users") (require-not (require-any {reads} '
            f'(subpath "{os.path.realpath(scratch)}")))))')


class PortableSandbox(Sandbox):
    """A fresh interpreter per submission, over its stdin and stdout pipes.

    It imports torch itself (about a second, before the student's clock starts), confines
    itself as far as the OS allows (as root: a chroot as nobody; on Linux: Landlock and seccomp;
    on macOS: a sandbox-exec profile), and the grader adds the wall clock, the kill of its
    process group (its process tree on Windows) and, where the child cannot limit its own
    memory, a watch on its resident memory every 50 ms.
    """

    kind = "portable"
    START_TIMEOUT_S = 120.0  # importing torch in a fresh interpreter, on a slow laptop

    def _start(self) -> None:
        debug = os.environ.get("NINJA_SANDBOX_DEBUG")
        self._stderr = open(debug, "ab") if debug else None  # noqa: SIM115 - closed in _close
        posix = os.name == "posix"
        command = [sys.executable, "-s", "-m", "grader.confined.spawned"]
        if sys.platform == "darwin" and shutil.which("sandbox-exec"):
            command = ["sandbox-exec", "-p", sandbox_exec_profile(self.scratch), *command]
        try:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr or subprocess.DEVNULL, cwd=self.scratch, env=minimal_environment(),
                start_new_session=posix,
                creationflags=0 if posix else subprocess.CREATE_NEW_PROCESS_GROUP)  # type: ignore[attr-defined]
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox: {exc.strerror or exc}") from None
        self.pid = self.proc.pid
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._unread = BufferedReader(self._next_chunk)
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._memory_killed = False
        threading.Thread(target=self._read_pipe, daemon=True).start()
        threading.Thread(target=self._write_pipe, daemon=True).start()
        self.deadline = time.monotonic() + self.START_TIMEOUT_S
        encoded, tensors = encode_world(self.world)
        try:  # a child that dies at once may be gone before this first write
            self._write(pack({"source": self.source, "path": self.path, "time_s": self.limits.time_s,
                              "memory_mb": self.limits.memory_mb, "world": encoded, "scratch": self.scratch},
                             tensors))
            self._ready(self.START_TIMEOUT_S)
        except (TimeoutError, EOFError, OSError, WireError):
            timed_out = time.monotonic() >= self.deadline
            status = self._end()
            self._close()
            why = (f"it was not ready after {self.START_TIMEOUT_S:g} s" if timed_out
                   else f"its Python ended (exit code {status}) before it was ready")
            raise SandboxError(f"cannot start the portable sandbox: {why}; set NINJA_SANDBOX_DEBUG=FILE to see "
                               "why in FILE") from None
        if not portable_limits()["memory"]:  # the limit counts from what the child holds now: Python and torch
            threading.Thread(target=self._watch_memory, args=(resident_mb(self.pid) or 0,), daemon=True).start()

    def _close(self) -> None:
        self._outbox.put(None)
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()

    def _read_pipe(self) -> None:
        """Move whatever the child writes into the inbox, so that reading can time out on any OS."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(fd, 1 << 20):
                self._inbox.put(chunk)
        self._inbox.put(None)

    def _write_pipe(self) -> None:
        """Write frames to the child; a child that stops reading blocks only this thread."""
        assert self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        with contextlib.suppress(OSError, ValueError):
            while (data := self._outbox.get()) is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]

    def _watch_memory(self, baseline_mb: int) -> None:
        while self.proc.poll() is None and not self.reaped:
            rss = resident_mb(self.pid)
            if rss is not None and rss > baseline_mb + self.limits.memory_mb:
                self._memory_killed = True
                self._end()
                return
            time.sleep(0.05)

    def _write(self, data: bytes) -> None:
        if self.proc.poll() is not None:
            raise EOFError
        self._outbox.put(data)

    def _starter_gone(self) -> bool:
        return False  # the grader started it: this process

    def _recv(self, n: int) -> bytearray:
        return self._unread(n)

    def _next_chunk(self, _most: int) -> bytes:
        """What the reader thread brought next (at most 1 MiB), once it is there before the deadline; b"" at the end."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        try:
            chunk = self._inbox.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError from None
        if chunk is None:
            self._inbox.put(None)  # the end stays the end for every later read
            return b""
        return chunk

    def _kill(self) -> int | None:
        if hasattr(os, "killpg"):  # its own session: the group is everything it started
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        elif os.name == "nt":  # pragma: no cover - Windows: the whole tree the child started
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.pid)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            self.proc.kill()
        return self.proc.wait()

    def _ends_within(self, seconds: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(seconds)

    def _ended(self, status: int | None) -> Ending:
        if self._memory_killed:  # the memory watch has killed and reaped it
            return Ending(over_memory=True)
        code = status if status is not None else self.proc.returncode  # reaped already: its code is kept
        if code is None:
            return Ending()
        return Ending(signal=-code) if code < 0 else Ending(code=code)  # Popen: a negative code is the ending signal
