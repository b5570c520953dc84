"""Run student code in a child process the grader controls, and read plain tensors back.

Two sandboxes share one protocol (grader/confined/protocol.py) and differ in how the child
is started and ended:

- UnixSandbox: the child is forked by the zygote (grader/confined/zygote.py), a fresh
  interpreter that never holds a truth or a secret, and talks over a socket pair.
- PortableSandbox: the child is a fresh interpreter of its own (grader/confined/spawned.py),
  over its stdin and stdout pipes; for systems without fork (Windows) or when asked for.

Either child confines itself (grader/confined/child.py, `confine`) and says what held. The
grader believes only frames that check out, enforces the wall clock, and kills the child's
whole process group when it is done. Every verdict is made here, in the grader.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

try:  # Unix only (the user the child becomes, as root)
    import pwd
except ImportError:  # pragma: no cover - exercised in a subprocess that hides it
    pwd = None  # type: ignore[assignment]

import torch

from grader.confined import kernel
from grader.confined.child import HAS_LIMITS, portable_limits
from grader.confined.protocol import (
    Case,
    Commit,
    Done,
    End,
    FromChild,
    NotATensor,
    Raised,
    Ready,
    Reveal,
    Run,
    Step,
    ToChild,
    Train,
    TrainStart,
    Value,
    encode,
    from_child,
)
from grader.confined.wire import WireError, unpack
from grader.confined.zygote import ZygoteError, minimal_environment
from grader.confined.zygote import start as start_zygote
from grader.courseware.course import Limits


class SandboxError(Exception):
    """The child process could not be started."""


UNIX_NEEDED = ("the unix sandbox needs os.fork, process groups and resource limits, which this Python lacks; "
               "grade with --sandbox portable (or leave --sandbox out to choose by itself)")
SANDBOX_KINDS = ("auto", "unix", "portable")


@dataclass(frozen=True)
class RunResult:
    """What one run left: the values read back at its end, what it committed at each point it
    reached, the errors by statement, what it printed, where it halted, why the sandbox died."""

    values: dict[str, Value]
    commits: dict[int, dict[str, Value]] = field(default_factory=dict)
    errors: dict[int, Raised] = field(default_factory=dict)
    output: str = ""
    halted_at: int | None = None
    died: str | None = None
    seconds: float = 0.0


Decide = Callable[[Commit], dict[str, torch.Tensor]]  # what to reveal after a commit that waits


@contextlib.contextmanager
def forking() -> Iterator[None]:
    """Around the grader's own forks (a batch's workers): Python 3.12+ warns at every fork of a
    process with threads, and a process that has imported torch always has some. The workers
    forked here take none of their locks, so that warning would only be noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"This process \(pid=\d+\) is multi-threaded",
                                category=DeprecationWarning)
        yield


def unix_sandbox_available() -> bool:
    """Whether this Python has what the unix sandbox is built from: fork, process groups, resource limits."""
    return all(hasattr(os, name) for name in ("fork", "setsid", "killpg")) and HAS_LIMITS


def chosen_kind() -> str:
    """The sandbox this process grades in: $NINJA_SANDBOX (set by `ninja-grade --sandbox`), where
    "auto" (the default) is the unix one on Linux and the portable one elsewhere: Windows has no
    fork, and on macOS RLIMIT_AS does not hold and forking a process with torch's threads running
    is fragile."""
    kind = os.environ.get("NINJA_SANDBOX", "auto") or "auto"
    if kind not in SANDBOX_KINDS:
        raise SandboxError(f"NINJA_SANDBOX={kind!r}: expected one of {', '.join(SANDBOX_KINDS)}")
    if kind == "auto":
        return "unix" if sys.platform.startswith("linux") and unix_sandbox_available() else "portable"
    return kind


def prestart() -> None:
    """Start what the chosen sandbox needs before it is needed (the zygote's import of torch then
    overlaps the grader's own). Quiet: a problem is said when a sandbox is opened."""
    with contextlib.suppress(SandboxError, ZygoteError, OSError):
        if chosen_kind() == "unix" and unix_sandbox_available():
            start_zygote()


def open_sandbox(source: str, path: str, limits: Limits, world: dict[str, object] | None = None) -> Sandbox:
    """The sandbox chosen for this process (chosen_kind), not yet started: use it as a context manager."""
    kind = chosen_kind()
    return (PortableSandbox if kind == "portable" else UnixSandbox)(source, path, limits, world)


def protections(kind: str | None = None, held: dict[str, str] | None = None) -> dict[str, str]:
    """What confines graded code in a sandbox of `kind`, by protection; an empty value is a protection
    this system does not offer. `held` is what a child said held (its Ready); without it, what this
    system would offer. Goes in every JSON report's environment."""
    kind = kind or chosen_kind()
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    offered = kernel.offered()
    held = held or {}
    can = portable_limits()
    if kind == "unix":
        out = {"sandbox": "unix", "time": "wall clock (grader) and RLIMIT_CPU", "memory": "RLIMIT_AS",
               "processes": "RLIMIT_NPROC 0; its process group is killed", "file size": "RLIMIT_FSIZE",
               "forked from": "a zygote that never holds a truth or the grader's environment"}
    else:
        out = {"sandbox": "portable", "time": "wall clock (grader)" + (" and RLIMIT_CPU" if can["cpu"] else ""),
               "memory": can["memory"] or "the grader watches its memory and kills it over the limit",
               "processes": ("RLIMIT_NPROC 0; " if can["processes"] else "")
               + ("its process group is killed" if hasattr(os, "killpg") else
                  "its process tree is killed" if os.name == "nt" else "it is killed"),
               "file size": can["file size"], "forked from": "a fresh Python of its own"}
    default_files = "chroot to the scratch folder as nobody, no groups" if root and pwd is not None else \
        "a scratch working folder"
    out["files"] = held.get("files", default_files)
    out["landlock"] = held.get("landlock", offered["landlock"])
    out["seccomp"] = held.get("seccomp", offered["seccomp"])
    out["no_new_privs"] = held.get("no_new_privs", "no_new_privs" if kernel.LINUX else "")
    out["protocol"] = "commit before reveal"
    out["autograd"] = "off"
    out["code"] = "static policy; allow-listed builtins, modules and tensor methods; audit hook"
    return out


def limits_note(held: dict[str, str]) -> str:
    """One line on what this system could not enforce, and what that means; "" when everything held."""
    missing = []
    if kernel.LINUX and not held.get("landlock"):
        missing.append("Landlock (Linux 5.13+)")
    if kernel.LINUX and not held.get("seccomp"):
        missing.append("seccomp")
    if not kernel.LINUX:
        missing.append("Landlock and seccomp (Linux only)")
    if not missing:
        return ""
    if "chroot" in held.get("files", ""):
        return f"{' and '.join(missing)} not available here; graded code still ran in an empty chroot as nobody"
    return (f"{' and '.join(missing)} not available here: graded code could read and write what your user can "
            "(grade as root, or on Linux 5.13+, to keep it to its scratch folder)")


class Sandbox(ABC):
    """One child process for one submission. Use as a context manager.

    Send a case, then its runs one at a time; every answer is read and checked here. If the
    child dies, hangs or lies, every run from then on is `died` with the reason.
    """

    kind = ""

    def __init__(self, source: str, path: str, limits: Limits, world: dict[str, object] | None = None) -> None:
        self.source, self.path, self.limits = source, path, limits
        self.world = world or {}  # the same for every case (the data set)
        self.pid = 0
        self.reaped = False
        self.died: str | None = None
        self.deadline = 0.0
        self.scratch = ""
        self.started = 0.0
        self.held: dict[str, str] = {}
        self._case: Case | None = None  # sent with the next run
        self._wanted: tuple[str, ...] = ()  # what a run reads back by default, on the current case
        self._largest: int | None = None  # elements of the case's largest tensor: no gradient of it is larger

    # --- what a transport does --------------------------------------------------------

    @abstractmethod
    def _start(self) -> None:
        """Start the child (pid set); it confines itself and sends Ready."""

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _recv(self, n: int) -> bytes:
        """Exactly n bytes, or TimeoutError past the deadline, or EOFError."""

    @abstractmethod
    def _kill(self) -> int | None:
        """Kill the child and everything it started, once; its wait status (or exit code)."""

    @abstractmethod
    def _ended(self, status: int | None) -> tuple[int | None, int | None]:
        """The signal that ended the child, or its exit code, from what _kill returned."""

    @abstractmethod
    def _close(self) -> None:
        """Release what the transport holds; the child is dead by now."""

    # --- the shared life of a sandbox ------------------------------------------------------

    def __enter__(self) -> Sandbox:
        kernel.not_dumpable()  # a child of the same user cannot read the grader's /proc, nor ptrace it
        self.scratch = tempfile.mkdtemp(prefix="ninja-scratch-")
        if hasattr(os, "geteuid") and os.geteuid() == 0 and pwd is not None:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.scratch, nobody.pw_uid, nobody.pw_gid)
        try:
            self._start()
        except BaseException:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.time_s
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, EOFError, TimeoutError):
            if self.died is None:
                self._write(encode(Done()))
        self._end()
        self._close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _end(self) -> int | None:
        if self.reaped:
            return None
        self.reaped = True
        return self._kill()

    def _ready(self, timeout_s: float) -> None:
        """Wait for the child's Ready, and keep what it says held."""
        self.deadline = time.monotonic() + timeout_s
        message = self._receive()
        if not isinstance(message, Ready):
            raise WireError("no ready message")
        self.held = message.held

    def _send(self, message: ToChild) -> None:
        self._write(encode(message))

    def _receive(self) -> FromChild:
        header, tensors = unpack(self._recv)
        return from_child(header, tensors)

    def _why_dead(self, timed_out: bool) -> str:
        sig, code = self._ended(self._end())
        if timed_out:
            return f"time limit of {self.limits.time_s:g} s reached (wall clock)"
        if sig is not None:
            if sig == getattr(signal, "SIGXCPU", None):
                return f"CPU time limit of {self.limits.time_s:g} s reached"
            if sig == signal.SIGKILL:
                return f"your code was killed (memory limit of {self.limits.memory_mb} MB?)"
            return f"your code crashed the sandbox ({signal.Signals(sig).name})"
        if code is not None:
            return f"your code ended the sandbox early (exit code {code})"
        return "the sandbox ended early"

    def _failed(self, exc: BaseException) -> None:
        """The child died, hung or lied: say why, once; nothing it sends from now on is read."""
        if self.died is not None:
            return
        if isinstance(exc, TimeoutError):
            self.died = self._why_dead(timed_out=True)
        elif isinstance(exc, WireError):
            self._end()
            self.died = f"the sandbox sent an invalid answer ({exc})"
        else:
            self.died = self._why_dead(timed_out=False)

    def case(self, case: Case) -> None:
        """The case the next runs are on (sent with the first of them)."""
        self._case = case
        self._wanted = case.wanted
        self._largest = max((t.numel() for t in (*case.tensors.values(), *case.given_gradients.values())),
                            default=None)

    def _bounded(self, values: dict[str, Value]) -> dict[str, Value]:
        """The values as the grader keeps them: a tensor larger than every tensor of the forward pass is no
        gradient of one, and is kept as its shape only (26 of them, each a frame of 200 MB, in every run,
        would fill the grader's memory)."""
        return {name: NotATensor(f"tensor of shape {tuple(v.shape)}, larger than any tensor of the forward pass")
                if isinstance(v, torch.Tensor) and self._largest is not None and v.numel() > self._largest else v
                for name, v in values.items()}

    def run(self, request: Run, decide: Decide | None = None) -> RunResult:
        """One run on the current case. At each of the request's points the child commits; where the
        point waits, `decide` is given the commit and says what to reveal before the run goes on."""
        wanted = request.read_back if request.read_back is not None else self._wanted
        commits: dict[int, dict[str, Value]] = {}
        if self.died is None:
            try:
                if self._case is not None:
                    self._send(self._case)
                    self._case = None
                self._send(request)
                points = list(request.points)
                while True:
                    message = self._receive()
                    if isinstance(message, Commit):
                        if len(commits) >= len(points) or message.index != points[len(commits)].index:
                            raise WireError("a commit where none was asked for")
                        point = points[len(commits)]
                        if set(message.values) != set(point.names):
                            raise WireError("a commit of other variables than asked")
                        commits[message.index] = self._bounded(message.values)
                        if point.waits:
                            commit = Commit(message.index, commits[message.index])
                            self._send(Reveal(decide(commit) if decide is not None else {}))
                    elif isinstance(message, End):
                        if set(message.values) != set(wanted):
                            raise WireError("values for other variables than asked")
                        return RunResult(self._bounded(message.values), commits, message.errors, message.output,
                                         message.halted_at, seconds=message.seconds)
                    else:
                        raise WireError("an answer the run did not ask for")
            except (TimeoutError, EOFError, OSError, WireError) as exc:
                self._failed(exc)
        return RunResult({name: None for name in wanted}, commits, died=self.died)

    def send_steps(self, Xb: torch.Tensor, Yb: torch.Tensor, lrs: list[float], *,
                   start: tuple[str, dict[str, torch.Tensor], dict[str, int]] | None = None) -> None:
        """Ask for the next steps of a real training run: their batches (Xb[i], Yb[i]) and learning
        rates. The first request carries `start`: the forward pass's code (grader/courseware/graph.py),
        the first parameters and the sizes. The child answers each step with one frame (`next_step`)."""
        if self.died is not None:
            return
        begin = None
        if start is not None:
            graph, params, sizes = start
            begin = TrainStart(graph, tuple(params), tuple(tuple(p.shape) for p in params.values()), dict(sizes),
                               torch.cat([p.reshape(-1) for p in params.values()]).to(torch.float32))
        try:
            self._send(Train(Xb, Yb, tuple(lrs), begin))
        except (TimeoutError, EOFError, OSError) as exc:
            self._failed(exc if time.monotonic() < self.deadline else TimeoutError())

    def next_step(self, size: int, wanted: tuple[str, ...]) -> torch.Tensor | RunResult | None:
        """One training step's answer: its gradients as one flat float32 tensor of `size` values;
        or, for a step whose gradients the child could not use, the run's result (`wanted` read back)
        for the grader to judge; or None when the sandbox died (`died` says why)."""
        if self.died is not None:
            return None
        try:
            message = self._receive()
            if isinstance(message, Step):
                grads = message.grads
                if grads.dtype != torch.float32 or tuple(grads.shape) != (size,):
                    raise WireError("a training step without a flat float32 gradient of the parameters' size")
                return grads
            if isinstance(message, End) and set(message.values) == set(wanted):
                return RunResult(message.values, {}, message.errors, message.output, message.halted_at,
                                 seconds=message.seconds)
            raise WireError("an answer the training run did not ask for")
        except (TimeoutError, EOFError, OSError, WireError) as exc:
            self._failed(exc)
        return None

    @property
    def protections(self) -> dict[str, str]:
        """What confined this sandbox's child, as it said (for the report)."""
        return protections(self.kind, self.held)


# --- the unix sandbox --------------------------------------------------------------------


class UnixSandbox(Sandbox):
    """A child forked by the zygote, over a socket pair; the grader kills its process group."""

    kind = "unix"
    _unread: bytearray

    def _start(self) -> None:
        self._unread = bytearray()
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
            sig, code = self._ended(status)
            why = f"signal {sig}" if sig else f"exit code {code}" if code is not None else "no answer"
            raise SandboxError(f"cannot start the sandbox: its child ended before it was ready ({why}); set "
                               "NINJA_SANDBOX_DEBUG=FILE to see why in FILE") from None

    def _write(self, data: bytes) -> None:
        self.sock.settimeout(max(0.01, self.deadline - time.monotonic()))
        self.sock.sendall(data)

    def _recv(self, n: int) -> bytes:
        buf = self._unread  # what one read brought past the bytes asked for: most often the whole next frame
        if n and self.deadline - time.monotonic() <= 0:
            raise TimeoutError
        while len(buf) < n:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = self.sock.recv(min(max(n - len(buf), 1 << 16), 1 << 20))
            if not chunk:
                raise EOFError
            buf += chunk
        data = bytes(buf[:n])
        del buf[:n]
        return data

    def _kill(self) -> int | None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)  # before it has its own session
        return self._zygote.reap(self.pid)

    def _ended(self, status: int | None) -> tuple[int | None, int | None]:
        if status is not None and os.WIFSIGNALED(status):
            return os.WTERMSIG(status), None
        if status is not None and os.WIFEXITED(status):
            return None, os.WEXITSTATUS(status)
        return None, None

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# --- the portable sandbox ------------------------------------------------------------------


def encode_world(world: dict[str, object]) -> tuple[dict[str, list[Any]], dict[str, torch.Tensor]]:
    """The data graded code may read, as JSON and tensors for a fresh child (spawned.decode_world);
    a dict goes as its pairs, so that itos keeps its int keys."""
    encoded: dict[str, list[Any]] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, value in world.items():
        if isinstance(value, torch.Tensor):
            tensors[name] = value
        elif isinstance(value, dict):
            encoded[name] = ["dict", [[k, v] for k, v in value.items()]]
        else:
            encoded[name] = ["value", value]
    return encoded, tensors


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
        self._pending = bytearray()
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._memory_killed = False
        threading.Thread(target=self._read_pipe, daemon=True).start()
        threading.Thread(target=self._write_pipe, daemon=True).start()
        self.deadline = time.monotonic() + self.START_TIMEOUT_S
        encoded, tensors = encode_world(self.world)
        from grader.confined.wire import pack  # noqa: PLC0415 - beside encode

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

    def _recv(self, n: int) -> bytes:
        while len(self._pending) < n:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                chunk = self._inbox.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError from None
            if chunk is None:
                self._inbox.put(None)  # the end stays the end for every later read
                raise EOFError
            self._pending += chunk
        data = bytes(self._pending[:n])
        del self._pending[:n]
        return data

    def _kill(self) -> int | None:
        if hasattr(os, "killpg"):  # its own session: the group is everything it started
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        elif os.name == "nt":  # pragma: no cover - Windows: the whole tree the child started
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.pid)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            self.proc.kill()
        return self.proc.wait()

    def _ended(self, status: int | None) -> tuple[int | None, int | None]:
        code = status if status is not None else self.proc.returncode  # reaped by the memory watch
        if code is None:
            return None, None
        return (-code, None) if code < 0 else (None, code)  # Popen: a negative code is the ending signal

    def _why_dead(self, timed_out: bool) -> str:
        if self._memory_killed and not timed_out:  # the memory watch has killed and reaped it
            return f"memory limit of {self.limits.memory_mb} MB reached"
        return super()._why_dead(timed_out)


def resident_mb(pid: int) -> int | None:
    """A process's resident memory in MB, where this system says: /proc (Linux), ps (macOS, BSD),
    the process's memory counters (Windows); None where it cannot be read."""
    try:
        if sys.platform.startswith("linux"):
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) // 1024
            return None
        if os.name == "posix":
            out = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True, timeout=5,
                                 check=False)
            return int(out.stdout.strip()) // 1024 if out.stdout.strip() else None
        return _windows_rss_mb(pid)  # pragma: no cover
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _windows_rss_mb(pid: int) -> int | None:  # pragma: no cover - Windows only
    import ctypes  # noqa: PLC0415
    from ctypes import wintypes  # noqa: PLC0415

    class Counters(ctypes.Structure):
        _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
            (name, ctypes.c_size_t) for name in ("PeakWorkingSetSize", "WorkingSetSize", "QuotaPeakPagedPoolUsage",
                                                 "QuotaPagedPoolUsage", "QuotaPeakNonPagedPoolUsage",
                                                 "QuotaNonPagedPoolUsage", "PagefileUsage", "PeakPagefileUsage")]

    kernel32 = ctypes.WinDLL("kernel32")  # type: ignore[attr-defined]
    psapi = ctypes.WinDLL("psapi")  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000 | 0x0010, False, pid)  # QUERY_LIMITED_INFORMATION | VM_READ
    if not handle:
        return None
    try:
        counters = Counters()
        counters.cb = ctypes.sizeof(Counters)
        if not psapi.GetProcessMemoryInfo(handle, ctypes.byref(counters), counters.cb):
            return None
        return int(counters.WorkingSetSize) >> 20
    finally:
        kernel32.CloseHandle(handle)
