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

Data flows both ways as frames of a JSON header plus raw tensor bytes (grader/confined/wire.py),
which the grader checks before it believes any of it; nothing is unpickled. The child
sends back only values and error messages: every verdict is made in the grader.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # Unix only (the user the child becomes, as root)
    import pwd
except ImportError:  # pragma: no cover - exercised in a subprocess that hides it
    pwd = None  # type: ignore[assignment]

import torch

from grader.confined.child import HAS_LIMITS, confine_forked, portable_limits, serve, warm_up
from grader.confined.runner import NotATensor, Run, RunResult, Value
from grader.confined.wire import WireError, pack, unpack
from grader.courseware.course import Limits

SOCKET_BUFFER = 4 << 20  # bytes: about 80 training steps' gradients


class SandboxError(Exception):
    """The child process could not be started."""




_warmed = False


def _warm_once() -> None:
    global _warmed  # noqa: PLW0603 - one flag for the process
    if not _warmed:
        warm_up()
        _warmed = True



UNIX_NEEDED = ("the unix sandbox needs os.fork, process groups and resource limits, which this Python lacks; "
               "grade with --sandbox portable (or leave --sandbox out to choose by itself)")
SANDBOX_KINDS = ("auto", "unix", "portable")


@contextlib.contextmanager
def forking() -> Iterator[None]:
    """Around the grader's own forks (this sandbox's child, a batch's workers): Python 3.12+ warns
    at every fork of a process with threads, and a process that has imported torch always has
    some (one of torch's from the import, an idle OpenMP pool after the first parallel op). The
    children forked here take none of their locks: they run on one thread and start none (the
    sandbox's child cannot), so that warning would only be noise on the student's screen."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"This process \(pid=\d+\) is multi-threaded",
                                category=DeprecationWarning)
        yield


def unix_sandbox_available() -> bool:
    """Whether this Python has what the sandbox is built from: os.fork, process groups, resource limits."""
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


def open_sandbox(source: str, path: str, limits: Limits, world: dict[str, object] | None = None) -> Sandbox:
    """The sandbox chosen for this process (chosen_kind), not yet started: use it as a context manager."""
    kind = chosen_kind()
    return (PortableSandbox if kind == "portable" else Sandbox)(source, path, limits, world)


def protections(kind: str | None = None) -> dict[str, str]:
    """What confines graded code in a sandbox of `kind` (default: this process's), by protection; an
    empty value is a protection this system does not offer. Goes in every JSON report's environment."""
    kind = kind or chosen_kind()
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if kind == "unix":
        return {"sandbox": "unix", "time": "wall clock (grader) and RLIMIT_CPU", "memory": "RLIMIT_AS",
                "processes": "RLIMIT_NPROC 0; its process group is killed", "file size": "RLIMIT_FSIZE",
                "files": "chroot to an empty directory as nobody" if root else "an empty working directory",
                "autograd": "off", "code": "static policy and guarded builtins"}
    can = portable_limits()
    return {"sandbox": "portable", "time": "wall clock (grader)" + (" and RLIMIT_CPU" if can["cpu"] else ""),
            "memory": can["memory"] or "the grader watches its memory and kills it over the limit",
            "processes": ("RLIMIT_NPROC 0; " if can["processes"] else "")
            + ("its process group is killed" if hasattr(os, "killpg") else
               "its process tree is killed" if os.name == "nt" else "it is killed"),
            "file size": can["file size"], "files": "an empty working directory", "autograd": "off",
            "code": "static policy and guarded builtins"}


class Sandbox:
    """One child process for one submission. Use as a context manager.

    Send a case, then its runs one at a time; each answer is read and checked here.
    If the child dies, hangs or lies, every run from then on is `died` with the reason.
    """

    def __init__(self, source: str, path: str, limits: Limits, world: dict[str, object] | None = None) -> None:
        self.source, self.path, self.limits = source, path, limits
        self.world = world or {}  # the same for every case (the data set): the child inherits it at the fork
        self.pid = 0
        self.reaped = False
        self.died: str | None = None
        self.deadline = 0.0
        self.scratch = ""
        self.started = 0.0

    def __enter__(self) -> Sandbox:
        if not unix_sandbox_available():
            raise SandboxError(UNIX_NEEDED)
        _warm_once()
        self.scratch = tempfile.mkdtemp(prefix="ninja-scratch-")
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.scratch, nobody.pw_uid, nobody.pw_gid)
        parent_sock, child_sock = socket.socketpair()
        with contextlib.suppress(OSError):  # room for a training run's child to run ahead (capped by the OS)
            child_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            parent_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            with forking():
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
                keep = [child_sock.fileno(), *([debug_file.fileno()] if debug_file else [])]
                serve(child_sock, self.source, self.path, limits=self.limits, world=self.world,
                      confine=lambda: confine_forked(keep, self.scratch, self.limits))
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

    def _ended(self) -> tuple[int | None, int | None]:
        """How the (now killed and reaped) child ended: the signal that ended it, or its exit code."""
        status = self._end_child()
        if status is not None and os.WIFSIGNALED(status):
            return os.WTERMSIG(status), None
        if status is not None and os.WIFEXITED(status):
            return None, os.WEXITSTATUS(status)
        return None, None

    def _why_dead(self, timed_out: bool) -> str:
        sig, code = self._ended()
        if timed_out:
            return f"time limit of {self.limits.time_s:g} s reached"
        if sig is not None:
            if sig == getattr(signal, "SIGXCPU", None):
                return f"CPU time limit of {self.limits.time_s:g} s reached"
            if sig == signal.SIGKILL:
                return f"your code was killed (memory limit of {self.limits.memory_mb} MB?)"
            return f"your code crashed the sandbox ({signal.Signals(sig).name})"
        if code is not None:
            return f"your code ended the sandbox early (exit code {code})"
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
                    self._send({"type": "run", "wanted": None if run.wanted is None else list(run.wanted),
                                "snapshot": [list(s) for s in run.snapshot]}, truths)
                    results.append(self._read_result(run.read_back(wanted)))
                    continue
                except TimeoutError:
                    self.died = self._why_dead(timed_out=True)
                except (EOFError, OSError):
                    self.died = self._why_dead(timed_out=False)
                except WireError as exc:  # the child sent something malformed
                    self._end_child()
                    self.died = f"the sandbox sent an invalid answer ({exc})"
            results.append(RunResult({name: None for name in run.read_back(wanted)}, {}, died=self.died))
        return results

    def send_steps(self, Xb: torch.Tensor, Yb: torch.Tensor, lrs: list[float], *,
                   start: tuple[str, dict[str, torch.Tensor], dict[str, int]] | None = None) -> None:
        """Ask for the next steps of a real training run: their batches (Xb[i], Yb[i]) and learning
        rates. The first request carries `start`: the forward pass's code (grader/courseware/graph.py),
        the first parameters and the sizes. The child answers each step with one frame (`next_step`)."""
        if self.died is not None:
            return
        header: dict[str, Any] = {"type": "train", "lrs": lrs}
        tensors = {"Xb": Xb, "Yb": Yb}
        if start is not None:
            graph, params, sizes = start
            header.update(graph=graph, names=list(params), shapes=[list(p.shape) for p in params.values()],
                          sizes=sizes)
            tensors["params"] = torch.cat([p.reshape(-1) for p in params.values()]).to(torch.float32)
        try:
            self._send(header, tensors)
        except (TimeoutError, EOFError, OSError):
            self.died = self._why_dead(timed_out=time.monotonic() >= self.deadline)

    def next_step(self, size: int, wanted: tuple[str, ...]) -> torch.Tensor | RunResult | None:
        """One training step's answer: its gradients as one flat float32 tensor of `size` values;
        or, for a step whose gradients the child could not use, the run's result (`wanted` read back)
        for the grader to judge; or None when the sandbox died (`died` says why)."""
        if self.died is not None:
            return None
        try:
            header, tensors = unpack(self._recv)
            if header.get("step") is True:
                grads = tensors.get("grads")
                if set(tensors) != {"grads"} or grads is None or grads.dtype != torch.float32 \
                        or tuple(grads.shape) != (size,):
                    raise WireError("a training step without a flat float32 gradient of the parameters' size")
                return grads
            return self._checked_result(header, tensors, wanted)
        except TimeoutError:
            self.died = self._why_dead(timed_out=True)
        except (EOFError, OSError):
            self.died = self._why_dead(timed_out=False)
        except WireError as exc:
            self._end_child()
            self.died = f"the sandbox sent an invalid answer ({exc})"
        return None

    def _send_case(self, given: dict[str, object], extra: dict[str, torch.Tensor], wanted: tuple[str, ...]) -> None:
        tensors = {k: v for k, v in given.items() if isinstance(v, torch.Tensor)}
        tensors.update({f"extra:{k}": v for k, v in extra.items()})
        scalars = {k: v for k, v in given.items() if not isinstance(v, torch.Tensor)}
        self._send({"type": "case", "given": scalars, "wanted": list(wanted)}, tensors)

    def _read_result(self, wanted: tuple[str, ...]) -> RunResult:
        """Read one answer and believe only what checks out."""
        header, tensors = unpack(self._recv)
        return self._checked_result(header, tensors, wanted)

    @staticmethod
    def _checked_result(header: dict[str, Any], tensors: dict[str, torch.Tensor], wanted: tuple[str, ...]) -> RunResult:
        raw_values = header.get("values")
        errors = header.get("errors", {})
        output = header.get("output", "")
        halted = header.get("halted_at")
        seconds = header.get("seconds", 0.0)
        if not (isinstance(raw_values, dict) and isinstance(errors, dict)
                and all(isinstance(v, str) for v in errors.values()) and isinstance(output, str)
                and (halted is None or isinstance(halted, int)) and isinstance(seconds, (int, float))):
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
        return RunResult(values, error_map, output[:5000], halted, seconds=max(0.0, float(seconds)))


def encode_world(world: dict[str, object]) -> tuple[dict[str, list[Any]], dict[str, torch.Tensor]]:
    """The data graded code may read, as JSON and tensors for the portable child (spawned.decode_world);
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


class PortableSandbox(Sandbox):
    """The sandbox for systems without fork and resource limits (Windows), or when asked for.

    The child is a fresh interpreter (grader/confined/spawned.py) that imports torch itself (about a
    second, before the student's clock starts), talks over its stdin and stdout pipes in
    the same checked frames, and confines itself as far as the OS allows. From here: the
    wall-clock limit, killing its process group (its process tree on Windows), and, where
    the child cannot limit its own memory, watching its resident memory every 50 ms.
    """

    START_TIMEOUT_S = 120.0  # importing torch in a fresh interpreter, on a slow laptop

    def __enter__(self) -> PortableSandbox:
        self.scratch = tempfile.mkdtemp(prefix="ninja-scratch-")
        env = {"PYTHONPATH": os.pathsep.join(filter(None, (str(Path(__file__).resolve().parents[2]),
                                                             os.environ.get("PYTHONPATH")))),
               "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PATH": os.environ.get("PATH", "")}
        for name in ("SYSTEMROOT", "NINJA_SANDBOX_DEBUG", "TMPDIR", "TEMP", "TMP"):  # Windows needs SYSTEMROOT
            if name in os.environ:
                env[name] = os.environ[name]
        debug = os.environ.get("NINJA_SANDBOX_DEBUG")
        self._stderr = open(debug, "ab") if debug else None  # closed in _close
        posix = os.name == "posix"
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-s", "-m", "grader.confined.spawned"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr or subprocess.DEVNULL, cwd=self.scratch, env=env, start_new_session=posix,
                creationflags=0 if posix else subprocess.CREATE_NEW_PROCESS_GROUP)  # type: ignore[attr-defined]
        except OSError as exc:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise SandboxError(f"cannot start the sandbox: {exc.strerror or exc}") from None
        self.pid = self.proc.pid
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._pending = bytearray()
        self._outbox: queue.Queue[bytes | None] = queue.Queue()
        self._memory_killed = False
        threading.Thread(target=self._read_pipe, daemon=True).start()
        threading.Thread(target=self._write_pipe, daemon=True).start()
        self.started = time.monotonic()
        self.deadline = self.started + self.START_TIMEOUT_S
        encoded, tensors = encode_world(self.world)
        self._send({"source": self.source, "path": self.path, "time_s": self.limits.time_s,
                    "memory_mb": self.limits.memory_mb, "world": encoded}, tensors)
        try:
            header, _ = unpack(self._recv)
            if header.get("ready") is not True:
                raise WireError("no ready frame")
        except (TimeoutError, EOFError, OSError, WireError):
            timed_out = time.monotonic() >= self.deadline
            code = self._end_child()
            self._close()
            why = (f"it was not ready after {self.START_TIMEOUT_S:g} s" if timed_out
                   else f"its Python ended (exit code {code}) before it was ready")
            raise SandboxError(f"cannot start the portable sandbox: {why}; set NINJA_SANDBOX_DEBUG=FILE to see "
                               "why in FILE") from None
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.time_s
        if not portable_limits()["memory"]:  # the limit counts from what the child holds now: Python and torch
            threading.Thread(target=self._watch_memory, args=(resident_mb(self.pid) or 0,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError, EOFError):
            self._send({"type": "done"})
        self._close()

    def _close(self) -> None:
        self._end_child()
        self._outbox.put(None)
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

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
                self._end_child()
                return
            time.sleep(0.05)

    def _send(self, header: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> None:
        if self.proc.poll() is not None:
            raise EOFError
        self._outbox.put(pack(header, tensors or {}))

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

    def _end_child(self) -> int | None:
        """Kill the child and everything it started, once; its exit status."""
        if self.reaped:
            return None
        self.reaped = True
        if hasattr(os, "killpg"):  # its own session: the group is everything it started
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        elif os.name == "nt":  # pragma: no cover - Windows: the whole tree the child started
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.pid)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            self.proc.kill()
        return self.proc.wait()

    def _ended(self) -> tuple[int | None, int | None]:
        code = self._end_child() if not self.reaped else self.proc.returncode  # reaped by the memory watch
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
