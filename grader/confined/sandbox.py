"""The sandbox: one child process the grader controls, spoken to in the protocol, read back as plain tensors.

`Sandbox` is what every sandbox shares: the protocol (grader/confined/protocol.py), the wall
clock, the checks of every answer, and why a child died. Its two implementations differ only in
how the child is started, spoken to and ended:

- UnixSandbox (grader/confined/unix.py): the child is forked by the zygote
  (grader/confined/zygote.py), a fresh interpreter that never holds a truth or a secret, and
  talks over a socket pair.
- PortableSandbox (grader/confined/portable.py): the child is a fresh interpreter of its own
  (grader/confined/spawned.py), over its stdin and stdout pipes; for systems without fork
  (Windows) or when asked for.

Either child confines itself (grader/confined/child.py, `confine`) and says what held. The
grader believes only frames that check out, enforces the wall clock, and kills the child's
whole process group when it is done. Every verdict is made here, in the grader. Which sandbox
grades is chosen in grader/confined/choice.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

try:  # Unix only (the user the child becomes, as root)
    import pwd
except ImportError:  # pragma: no cover - exercised in a subprocess that hides it
    pwd = None  # type: ignore[assignment]

import torch

from grader.confined import kernel
from grader.confined.protocol import (
    Case,
    Commit,
    Commits,
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
from grader.courseware.course import Limits

ENDING_GRACE_S = 0.5  # how long a child whose channel closed may take to end by itself before it is killed


class SandboxError(Exception):
    """The child process could not be started."""


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


Decide = Callable[[Commit], dict[str, torch.Tensor]]  # told every commit, in order: what to reveal where it waits


@dataclass(frozen=True)
class Ending:
    """How a child ended, as far as its sandbox can tell: the signal that ended it, or its exit code;
    `over_memory` when the grader killed it past its memory limit."""

    signal: int | None = None
    code: int | None = None
    over_memory: bool = False


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
    def _recv(self, n: int) -> bytes | bytearray:
        """Exactly n bytes, or TimeoutError past the deadline, or EOFError."""

    @abstractmethod
    def _kill(self) -> int | None:
        """Kill the child and everything it started, once; its wait status (or exit code)."""

    @abstractmethod
    def _starter_gone(self) -> bool:
        """Whether what started the child is gone (a zygote killed from outside): the child ends with it."""

    @abstractmethod
    def _ends_within(self, seconds: float) -> None:
        """Wait up to `seconds` for the child to end by itself (it closed its end of the channel)."""

    @abstractmethod
    def _ended(self, status: int | None) -> Ending:
        """How the child ended, from what _kill returned."""

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
        ending = self._ended(self._end())
        sig, code = ending.signal, ending.code
        if timed_out:
            return f"time limit of {self.limits.time_s:g} s reached (wall clock)"
        if self._starter_gone():  # no doing of the submission's: the grader failed
            raise SandboxError("the sandbox's zygote ended while it graded (killed from outside, or out of memory?), "
                               "and its child with it: nothing the submission did; grade it again")
        if ending.over_memory:
            return f"memory limit of {self.limits.memory_mb} MB reached"
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
        else:  # its channel closed: it ended, or is ending; its own way of ending is what it is told
            self._ends_within(max(0.0, min(ENDING_GRACE_S, self.deadline - time.monotonic())))
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
        point waits, `decide` is given the commit and says what to reveal before the run goes on; it is given
        the commits of the points that do not wait as well, in order, and reveals nothing there."""
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
                    if isinstance(message, Commits):
                        for i, commit in enumerate(message.commits):
                            if len(commits) >= len(points) or commit.index != points[len(commits)].index:
                                raise WireError("a commit where none was asked for")
                            point = points[len(commits)]
                            if set(commit.values) != set(point.names):
                                raise WireError("a commit of other variables than asked")
                            if point.waits and i != len(message.commits) - 1:
                                raise WireError("commits past a point that waits")
                            commits[commit.index] = self._bounded(commit.values)
                            given = decide(Commit(commit.index, commits[commit.index])) if decide is not None else {}
                            if point.waits:
                                self._send(Reveal(given))
                            elif given:
                                raise SandboxError("the grader decided to reveal at a point that does not wait")
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
