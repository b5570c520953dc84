"""The zygote: a fresh interpreter that forks the unix sandbox's children, and nothing else.

    python -s -m grader.confined.zygote FD      (started by the grader; not a command for people)

A child forked from the grader would inherit the grader's memory: the environment it was
started with (CI secrets), and the freed bytes of every truth it computed for earlier
submissions (a batch, --watch), which `torch.empty` can hand back. So the grader never forks
a child itself. It starts this process once, with a minimal environment, before it needs a
sandbox; the zygote imports torch, loads what graded code commonly touches (warm_up), and
then forks one child per sandbox on request. It never sees a truth, a secret or a grade.

Requests come over a socket (the grader's end is `Zygote`): `world` (data graded code may
read, kept by key), `spawn` (with the child's socket passed along as a file descriptor;
the answer is the child's pid; what the child runs, its source and paths, the grader sends
the child itself, so that no child finds another's code in the zygote's freed memory), `reap`
(the child's wait status, once the grader has killed it) and `zygote` (with a socket passed
along: fork a zygote that serves it, for a process the grader is about to fork, a batch's
worker; torch is imported once for them all).
A zygote ends when the grader's end of its socket closes, or the process that started it dies.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 120.0  # importing torch in a fresh interpreter, on a slow laptop
SOCKET_BUFFER = 4 << 20  # bytes of a child's socket: about 80 training steps' gradients
GRADER_ROOT = str(Path(__file__).resolve().parents[2])


class ZygoteError(Exception):
    """The zygote could not be started, or stopped answering."""


def minimal_environment() -> dict[str, str]:
    """What a fresh interpreter of the grader's needs, and nothing of the grader's own environment."""
    env = {"PYTHONPATH": os.pathsep.join(filter(None, (GRADER_ROOT, os.environ.get("PYTHONPATH")))),
           "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PATH": os.environ.get("PATH", "")}
    for name in ("SYSTEMROOT", "NINJA_SANDBOX_DEBUG", "TMPDIR", "TEMP", "TMP"):  # Windows needs SYSTEMROOT
        if name in os.environ:
            env[name] = os.environ[name]
    return env


# --- the grader's end ----------------------------------------------------------------------


class Zygote:
    """The grader's handle on a zygote: one it started, a fresh interpreter (start it early with
    `start`; it is ready on first use), or one that zygote forked for another process (`fork`)."""

    proc: subprocess.Popen[bytes] | None  # None for a zygote forked by another

    def __init__(self) -> None:
        self.sock, theirs = socket.socketpair()
        debug = os.environ.get("NINJA_SANDBOX_DEBUG")
        self._stderr = open(debug, "ab") if debug else None  # noqa: SIM115 - closed in close()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-s", "-m", "grader.confined.zygote", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self._stderr or subprocess.DEVNULL, env=minimal_environment(), cwd="/")
        except OSError as exc:
            self.sock.close()
            raise ZygoteError(f"cannot start the sandbox's zygote: {exc.strerror or exc}") from None
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self.owner = os.getpid()
        self.ready = False
        self.worlds: dict[int, tuple[str, object]] = {}  # id(world) -> (key, the world, kept alive)

    @classmethod
    def _forked(cls, sock: socket.socket, pid: int) -> Zygote:
        zygote = cls.__new__(cls)
        zygote.sock, zygote.proc, zygote.pid, zygote._stderr = sock, None, pid, None
        zygote.owner, zygote.ready, zygote.worlds = os.getpid(), True, {}
        return zygote

    def alive(self) -> bool:
        if self.owner != os.getpid():
            return False
        if self.proc is not None:
            return self.proc.poll() is None
        return not _closed(self.sock)

    def fork(self) -> Zygote:
        """A zygote for a process this one is about to fork (a batch's worker), forked by this zygote, so
        with torch imported already. That process takes it with `adopt`; the copy here is closed once
        it has forked (`close`). It ends when every copy of its socket is closed, or this zygote ends."""
        self.wait_ready()
        ours, theirs = socket.socketpair()
        pid = self._hand_over(ours, theirs, {"type": "zygote"}, "forked", "the sandbox's zygote could not fork another")
        return Zygote._forked(ours, pid)

    def _hand_over(self, ours: socket.socket, theirs: socket.socket, request: dict[str, Any], answered: str,
                   failed: str) -> int:
        """Send `request` with the socket `theirs` passed along (closed here once sent), and the pid of
        the process the answer `answered` says serves it; else ZygoteError (`failed`, and the zygote's
        reason), and `ours` closed."""
        try:
            socket.send_fds(self.sock, [b"F"], [theirs.fileno()])
            self._send(request)
        except OSError as exc:
            ours.close()
            raise ZygoteError(f"the sandbox's zygote stopped answering ({exc.strerror})") from None
        finally:
            theirs.close()
        header = self._answer()
        if header.get("type") != answered or type(header.get("pid")) is not int:
            ours.close()
            raise ZygoteError(f"{failed} ({header.get('why', 'no reason')})")
        return int(header["pid"])

    def _send(self, header: dict[str, Any], tensors: dict[str, Any] | None = None) -> None:
        from grader.confined.wire import pack  # noqa: PLC0415 - torch, not needed to start the zygote

        self.sock.sendall(pack(header, tensors or {}))

    def _answer(self, timeout: float = 30.0) -> dict[str, Any]:
        from grader.confined.wire import WireError, exact_reader, unpack  # noqa: PLC0415

        self.sock.settimeout(timeout)
        try:
            header, _ = unpack(exact_reader(self.sock.recv))
        except (OSError, EOFError, WireError) as exc:
            raise ZygoteError(f"the sandbox's zygote stopped answering ({type(exc).__name__})") from None
        return header

    def wait_ready(self) -> None:
        if self.ready:
            return
        header = self._answer(START_TIMEOUT_S)
        if header.get("type") != "ready":
            raise ZygoteError("the sandbox's zygote did not start")
        self.ready = True

    def spawn(self, source: str, path: str, *, time_s: float, memory_mb: int, scratch: str,
              world: dict[str, object] | None) -> tuple[int, socket.socket]:
        """A confined child for one submission: its pid and the grader's end of its socket. What it runs
        (its source, its path, its scratch folder) goes to the child alone, over that socket: the zygote
        never holds it, so no child forked later finds it in the zygote's freed memory."""
        self.wait_ready()
        key = self._world_key(world)
        ours, theirs = socket.socketpair()
        with contextlib.suppress(OSError):  # room for a training run's child to run ahead (capped by the OS)
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        request = {"type": "spawn", "time_s": time_s, "memory_mb": memory_mb, "world": key}
        pid = self._hand_over(ours, theirs, request, "spawned", "the sandbox's zygote could not fork a child")
        import torch  # noqa: PLC0415 - not needed to start the zygote

        from grader.confined.wire import pack  # noqa: PLC0415

        try:  # the source as bytes, not JSON, whose escapes would make 2 MB of emoji 12 MB of header
            ours.settimeout(START_TIMEOUT_S)
            data = bytearray(source.encode("utf-8", "surrogatepass"))
            code = torch.frombuffer(data, dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
            ours.sendall(pack({"type": "start", "path": path, "scratch": scratch}, {"source": code}))
        except OSError:
            pass  # the child is gone already: the sandbox finds it has no Ready, and says so
        return pid, ours

    def _world_key(self, world: dict[str, object] | None) -> str | None:
        if not world:
            return None
        known = self.worlds.get(id(world))
        if known is not None and known[1] is world:
            return known[0]
        from grader.confined.world import encode_world  # noqa: PLC0415 - torch

        key = f"w{len(self.worlds)}"
        encoded, tensors = encode_world(world)
        self._send({"type": "world", "key": key, "world": encoded}, tensors)
        self.worlds[id(world)] = (key, world)
        return key

    def reap(self, pid: int) -> int | None:
        """The wait status of a child the grader has killed; None if the zygote cannot say."""
        try:
            self._send({"type": "reap", "pid": pid})
            header = self._answer()
        except (OSError, ZygoteError):
            return None
        status = header.get("status")
        return status if type(status) is int else None

    def close(self) -> None:
        """End the zygote (its end of the socket closing is its cue; one this process started is then
        killed); once."""
        if self.owner != os.getpid():
            return  # inherited through a fork: the process that started it ends it
        with contextlib.suppress(OSError):
            self.sock.close()
        if self.proc is not None:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


_zygote: Zygote | None = None


def start() -> Zygote:
    """The zygote of this process, started if it has none (or the one it has died, or was inherited
    through a fork): call it early, so that its import of torch overlaps the grader's own, and from a
    thread that lives as long as the grading (on Linux it ends with the thread that started it)."""
    global _zygote  # noqa: PLW0603 - one per process
    if _zygote is None or not _zygote.alive():
        if _zygote is not None and _zygote.owner == os.getpid():
            _zygote.close()
        _zygote = Zygote()
        atexit.register(_zygote.close)  # ended with this process, not left to the garbage collector
    return _zygote


def adopt(zygote: Zygote) -> None:
    """In a process just forked: `zygote` (forked for it, `Zygote.fork`) is its zygote from now on, and runs
    on the cores this process runs on (a batch's worker runs on one: the sandboxes that zygote forks answer
    the worker there). The copy of the parent's zygote socket that came with the fork is closed here; the
    parent's is its own."""
    global _zygote  # noqa: PLW0603 - one per process
    if _zygote is not None and _zygote.owner != os.getpid():
        with contextlib.suppress(OSError):
            _zygote.sock.close()
    zygote.owner = os.getpid()
    _zygote = zygote
    atexit.register(zygote.close)
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no affinity on this system
        os.sched_setaffinity(zygote.pid, os.sched_getaffinity(0))


def _closed(sock: socket.socket) -> bool:
    """Whether the other end of a socket has closed (it says nothing unasked, so anything to read is its end)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (OSError, ValueError):
        return True


def start_early() -> None:
    """Start the zygote now if this process will grade in the unix sandbox, without importing torch:
    its import of torch then overlaps the grader's own. Quiet: a problem is said when a sandbox opens."""
    kind = os.environ.get("NINJA_SANDBOX", "auto") or "auto"
    if kind == "unix" or (kind == "auto" and sys.platform.startswith("linux") and hasattr(os, "fork")):
        with contextlib.suppress(ZygoteError, OSError):
            start()


# --- the zygote itself -----------------------------------------------------------------------


def _fork_child(control: socket.socket, channel_fd: int, header: dict[str, Any],
                worlds: dict[str, dict[str, object]]) -> int:
    from grader.confined import kernel  # noqa: PLC0415
    from grader.confined.child import confine, serve  # noqa: PLC0415
    from grader.confined.wire import exact_reader, unpack  # noqa: PLC0415
    from grader.courseware.course import Limits  # noqa: PLC0415

    limits = Limits(float(header["time_s"]), int(header["memory_mb"]))
    world = worlds.get(header["world"]) if header.get("world") else None
    debug = os.environ.get("NINJA_SANDBOX_DEBUG")
    gc.freeze()  # the child's collections leave the zygote's objects alone: their pages stay shared, not copied
    pid = os.fork()
    if pid:
        return pid
    status = 0  # the child: never returns into the zygote's loop
    debug_file = open(debug, "a") if debug else None  # noqa: SIM115 - lives until os._exit
    try:
        control.close()
        kernel.name_process("ninja-sandbox")
        channel = socket.socket(fileno=channel_fd)
        keep = [channel_fd, *([debug_file.fileno()] if debug_file else [])]
        start, code = unpack(exact_reader(channel.recv))  # what to run: from the grader, to this child alone
        source = code["source"].numpy().tobytes().decode("utf-8", "surrogatepass")
        serve(channel, source, str(start["path"]), limits=limits, world=world,
              confine=lambda: confine(str(start["scratch"]), limits, keep, new_session=True))
    except BaseException:
        status = 70
        if debug_file:
            traceback.print_exc(file=debug_file)
            debug_file.flush()
    finally:
        os._exit(status)


def main(fd: int) -> None:
    from grader.confined import kernel  # noqa: PLC0415
    from grader.confined.child import warm_up  # noqa: PLC0415
    from grader.confined.wire import pack  # noqa: PLC0415

    kernel.die_with_parent()
    kernel.not_dumpable()
    kernel.name_process("ninja-zygote")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grader's to handle
    control = socket.socket(fileno=fd)
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    warm_up()
    control.sendall(pack({"type": "ready"}, {}))
    _serve(control)


def _fork_zygote(control: socket.socket, fd: int) -> int:
    """A zygote of its own for the socket `fd`: a fork of this one, which serves that socket alone."""
    from grader.confined import kernel  # noqa: PLC0415

    gc.freeze()
    pid = os.fork()
    if pid:
        return pid
    code = 0  # the new zygote: never returns into this one's loop
    try:
        control.close()
        kernel.die_with_parent()  # cleared by the fork: it ends with the zygote that forked it
        _serve(socket.socket(fileno=fd))
    except BaseException:
        code = 70
    finally:
        os._exit(code)


@dataclass
class _Held:
    """What one zygote keeps between requests."""

    worlds: dict[str, dict[str, object]] = field(default_factory=dict)
    children: set[int] = field(default_factory=set)  # the sandboxes' children, until reaped
    zygotes: set[int] = field(default_factory=set)  # the zygotes forked for others, until they end

    def reap_zygotes(self) -> None:
        for pid in list(self.zygotes):
            try:
                ended = os.waitpid(pid, os.WNOHANG)[0] != 0
            except ChildProcessError:
                ended = True
            if ended:
                self.zygotes.discard(pid)


def _serve(control: socket.socket) -> None:
    """Answer the requests on `control` until it closes; then kill every child still running."""
    from grader.confined.wire import exact_reader, unpack  # noqa: PLC0415

    held = _Held()
    try:
        while True:
            held.reap_zygotes()
            _, fds, _, _ = socket.recv_fds(control, 1, 1) if _peek_fd(control) else (b"", [], 0, None)
            header, tensors = unpack(exact_reader(control.recv))
            if not _answer(control, header, tensors, fds, held):
                return
    except EOFError:
        return
    finally:
        for pid in held.children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _answer(control: socket.socket, header: dict[str, Any], tensors: dict[str, Any], fds: list[int],
            held: _Held) -> bool:
    """Do one request and answer it; False for the last (or one this zygote does not know)."""
    from grader.confined.wire import pack  # noqa: PLC0415
    from grader.confined.world import decode_world  # noqa: PLC0415

    kind = header.get("type")
    if kind in ("zygote", "spawn") and fds:
        try:
            if kind == "zygote":
                pid = _fork_zygote(control, fds[0])
                held.zygotes.add(pid)
                answer = {"type": "forked", "pid": pid}
            else:
                pid = _fork_child(control, fds[0], header, held.worlds)
                held.children.add(pid)
                answer = {"type": "spawned", "pid": pid}
        except OSError as exc:
            answer = {"type": "failed", "why": exc.strerror or str(exc)}
        finally:
            os.close(fds[0])
        control.sendall(pack(answer, {}))
    elif kind == "world":
        held.worlds[str(header["key"])] = decode_world(header["world"], tensors)
    elif kind == "reap":
        pid = int(header["pid"])
        status = None
        if pid in held.children:
            held.children.discard(pid)
            with contextlib.suppress(ChildProcessError):
                status = _wait(pid)
        control.sendall(pack({"type": "reaped", "status": status}, {}))
    else:
        return False
    return True


def _peek_fd(control: socket.socket) -> bool:
    """Whether the next byte is the marker a spawn request sends its socket with."""
    first = control.recv(1, socket.MSG_PEEK)
    if not first:
        raise EOFError
    return first == b"F"


def _wait(pid: int) -> int:
    """The child's wait status; it has been killed, so this is quick, but never forever."""
    from grader.confined.kernel import wait_for_exit  # noqa: PLC0415 - beside the zygote's other imports

    deadline = time.monotonic() + 10
    wait_for_exit(pid, 10)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)


if __name__ == "__main__":
    code = 0
    try:
        main(int(sys.argv[1]))
    except BaseException:
        code = 70
        if os.environ.get("NINJA_SANDBOX_DEBUG"):
            traceback.print_exc()
    finally:
        os._exit(code)
