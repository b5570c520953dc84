"""Run student code in a child process the grader controls, and read plain tensors back.

The child is forked from the grader, so torch is already imported (no second import
cost), and it is forked *before* any true gradient exists in the grader's memory.
The child then:

- starts its own session and process group, which the grader kills when it is done;
- has stdin, stdout and stderr on /dev/null (prints are captured per run, capped),
  every other file descriptor closed, an empty environment, a fresh scratch directory
  as its working directory (and, when the grader runs as root, as its root directory,
  under the unprivileged user `nobody`);
- runs under CPU-time, memory, file-size and process limits, with autograd off.

Data flows both ways as frames of a JSON header plus raw tensor bytes (grader/wire.py),
which the grader checks before it believes any of it; nothing is unpickled. The child
sends back only values and error messages: every verdict is made in the grader.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from typing import Any

import torch

from grader.course import Limits
from grader.runner import NotATensor, Run, RunResult, Value, run_once
from grader.submission import compile_program
from grader.wire import WireError, pack, sendable, unpack

FILE_SIZE_LIMIT = 16 << 20


class SandboxError(Exception):
    """The child process could not be started."""


# --- the child -------------------------------------------------------------------


def warm_up() -> None:
    """Load, in the grader, the modules torch imports lazily on first use.

    The child is forked from the grader and may run chrooted into an empty directory,
    where no new module can be imported: whatever student code commonly touches must be
    loaded before the fork. Runs once per grader process.
    """
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    ix = torch.tensor([0, 2, 0])
    torch.einsum("ij,kj->ik", x, x)
    torch.nn.functional.one_hot(ix, 4)
    torch.nn.functional.softmax(x, 1), torch.nn.functional.log_softmax(x, 1)
    torch.zeros(3, 4).index_add_(0, ix, x).scatter_(1, ix.view(-1, 1), 1.0)
    torch.zeros(3, 4).scatter_add_(0, ix.view(-1, 1).expand(3, 4), x)
    x.numpy().tobytes(), str(x), repr(x), format(x[0, 0].item(), ".4f")
    torch.allclose(x, x), torch.equal(x, x), x.max(1), x.logsumexp(1), torch.linalg.norm(x)
    torch.tensor([[1, 2]]).repeat_interleave(2, dim=0), torch.frombuffer(bytearray(8), dtype=torch.float32)


def _send_result(sock: socket.socket, result: RunResult) -> None:
    values: dict[str, list[str]] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, value in result.values.items():
        if value is None:
            values[name] = ["missing"]
        elif isinstance(value, NotATensor):
            values[name] = ["other", value.type_name[:80]]
        elif not sendable(value):
            values[name] = ["other", f"tensor of dtype {value.dtype}"]
        else:
            values[name] = ["tensor"]
            tensors[name] = value
    header = {"values": values, "errors": result.errors, "output": result.output, "halted_at": result.halted_at}
    sock.sendall(pack(header, tensors))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def _autograd_off() -> None:
    """No graph, and the ways into autograd raise, in this process only."""
    torch.set_grad_enabled(False)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("autograd is off in the grader: write the backward pass yourself")

    torch.Tensor.backward = refuse  # type: ignore[method-assign,assignment]
    torch.Tensor.retain_grad = refuse  # type: ignore[method-assign,assignment]
    torch.Tensor.requires_grad_ = refuse  # type: ignore[method-assign,assignment]
    torch.autograd.backward = refuse  # type: ignore[assignment]
    torch.autograd.grad = refuse  # type: ignore[assignment]
    # torch.set_grad_enabled and torch.enable_grad stay (no_grad uses them inside torch);
    # graded code cannot name them (grader/policy.py).


def _vm_size_mb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) // 1024
    return 0


def _confine(keep: list[int], scratch: str, limits: Limits) -> None:
    """Everything the child does to itself before it runs a line of student code."""
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large write fails instead
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8"})
    torch.set_num_threads(1)  # no thread pool to fork into, and fair timing
    _autograd_off()
    address_space = (_vm_size_mb() + limits.memory_mb) << 20
    os.chdir(scratch)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chroot(scratch)
        os.chdir("/")
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    cpu = max(1, int(limits.time_s + 1))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new processes or threads


def _child(sock: socket.socket, source: str, path: str, *, scratch: str, limits: Limits, keep: list[int]) -> None:
    _confine([sock.fileno(), *keep], scratch, limits)
    program = compile_program(source, path)
    given: dict[str, object] = {}
    extra: dict[str, torch.Tensor] = {}
    wanted: tuple[str, ...] = ()
    while True:
        header, tensors = unpack(lambda n: _recv_exact(sock, n))
        if header["type"] == "case":
            given = {**header["given"], **{k: v for k, v in tensors.items() if not k.startswith("extra:")}}
            extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra:")}
            wanted = tuple(header["wanted"])
        elif header["type"] == "run":
            inject: dict[int, dict[str, torch.Tensor]] = {}
            for key, t in tensors.items():
                index, name = key.split(":", 1)
                inject.setdefault(int(index), {})[name] = t
            names = tuple(header["wanted"] or wanted)
            result = run_once(program, given, extra, Run(inject), wanted=names, memory_mb=limits.memory_mb)
            _send_result(sock, result)
        else:
            return


# --- the grader's side -------------------------------------------------------------

_warmed = False


def _warm_once() -> None:
    global _warmed  # noqa: PLW0603 - one flag for the process
    if not _warmed:
        warm_up()
        _warmed = True



class Sandbox:
    """One child process for one submission. Use as a context manager.

    Send a case, then its runs one at a time; each answer is read and checked here.
    If the child dies, hangs or lies, every run from then on is `died` with the reason.
    """

    def __init__(self, source: str, path: str, limits: Limits) -> None:
        self.source, self.path, self.limits = source, path, limits
        self.pid = 0
        self.reaped = False
        self.died: str | None = None
        self.deadline = 0.0
        self.scratch = ""
        self.started = 0.0

    def __enter__(self) -> Sandbox:
        _warm_once()
        self.scratch = tempfile.mkdtemp(prefix="ninja-scratch-")
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.scratch, nobody.pw_uid, nobody.pw_gid)
        parent_sock, child_sock = socket.socketpair()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as exc:
            parent_sock.close()
            child_sock.close()
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise SandboxError(f"cannot start the sandbox: {exc.strerror}") from None
        if pid == 0:  # the child: never returns into the grader's code
            status = 0
            debug = os.environ.get("NINJA_SANDBOX_DEBUG")  # a file for the child's own failures
            debug_file = open(debug, "a") if debug else None  # lives until os._exit
            try:
                parent_sock.close()
                _child(child_sock, self.source, self.path, scratch=self.scratch, limits=self.limits,
                       keep=[debug_file.fileno()] if debug_file else [])
            except BaseException:
                status = 70
                if debug_file:
                    traceback.print_exc(file=debug_file)
                    debug_file.flush()
            finally:
                os._exit(status)
        child_sock.close()
        self.pid, self.sock = pid, parent_sock
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.time_s
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._send({"type": "done"})
        self.sock.close()
        self._end_child()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _end_child(self) -> int | None:
        """Kill the child's whole process group and reap the child, once; its wait status."""
        if self.reaped:
            return None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.reaped = True
        with contextlib.suppress(ChildProcessError):
            _, status = os.waitpid(self.pid, 0)
            return status
        return None

    def _send(self, header: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> None:
        self.sock.settimeout(max(0.01, self.deadline - time.monotonic()))
        self.sock.sendall(pack(header, tensors or {}))

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def _why_dead(self, timed_out: bool) -> str:
        status = self._end_child()
        if timed_out:
            return f"time limit of {self.limits.time_s:g} s reached"
        if status is not None and os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            if sig == signal.SIGXCPU:
                return f"CPU time limit of {self.limits.time_s:g} s reached"
            if sig == signal.SIGKILL:
                return f"your code was killed (memory limit of {self.limits.memory_mb} MB?)"
            return f"your code crashed the sandbox ({signal.Signals(sig).name})"
        if status is not None and os.WIFEXITED(status):
            return f"your code ended the sandbox early (exit code {os.WEXITSTATUS(status)})"
        return "the sandbox ended early"

    def run_case(self, given: dict[str, object], extra: dict[str, torch.Tensor], runs: list[Run],
                 wanted: tuple[str, ...]) -> list[RunResult]:
        """Send one case and its runs, one at a time (so no run sees a later run's truths)."""
        results: list[RunResult] = []
        for i, run in enumerate(runs):
            if self.died is None:
                try:
                    if i == 0:
                        self._send_case(given, extra, wanted)
                    truths = {f"{index}:{name}": t for index, names in run.inject.items() for name, t in names.items()}
                    self._send({"type": "run", "wanted": list(run.wanted or ())}, truths)
                    results.append(self._read_result(run.wanted or wanted))
                    continue
                except TimeoutError:
                    self.died = self._why_dead(timed_out=True)
                except (EOFError, OSError):
                    self.died = self._why_dead(timed_out=False)
                except WireError as exc:  # the child sent something malformed
                    self._end_child()
                    self.died = f"the sandbox sent an invalid answer ({exc})"
            results.append(RunResult({name: None for name in run.wanted or wanted}, {}, died=self.died))
        return results

    def _send_case(self, given: dict[str, object], extra: dict[str, torch.Tensor], wanted: tuple[str, ...]) -> None:
        tensors = {k: v for k, v in given.items() if isinstance(v, torch.Tensor)}
        tensors.update({f"extra:{k}": v for k, v in extra.items()})
        scalars = {k: v for k, v in given.items() if not isinstance(v, torch.Tensor)}
        self._send({"type": "case", "given": scalars, "wanted": list(wanted)}, tensors)

    def _read_result(self, wanted: tuple[str, ...]) -> RunResult:
        """Read one answer and believe only what checks out."""
        header, tensors = unpack(self._recv)
        raw_values = header.get("values")
        errors = header.get("errors", {})
        output = header.get("output", "")
        halted = header.get("halted_at")
        if not (isinstance(raw_values, dict) and isinstance(errors, dict)
                and all(isinstance(v, str) for v in errors.values()) and isinstance(output, str)
                and (halted is None or isinstance(halted, int))):
            raise WireError("malformed header")
        values: dict[str, Value] = {}
        for name in wanted:
            spec = raw_values.get(name)
            if spec == ["tensor"] and name in tensors:
                values[name] = tensors[name]
            elif spec == ["missing"]:
                values[name] = None
            elif isinstance(spec, list) and len(spec) == 2 and spec[0] == "other" and isinstance(spec[1], str):
                values[name] = NotATensor(spec[1][:80])
            else:
                raise WireError(f"no valid entry for {name}")
        try:
            error_map = {int(k): v[:500] for k, v in errors.items()}
        except ValueError as exc:
            raise WireError("malformed errors") from exc
        return RunResult(values, error_map, output[:5000], halted)
