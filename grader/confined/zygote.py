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
the answer is the child's pid) and `reap` (the child's wait status, once the grader has
killed it). The zygote ends when the grader's end closes, or the grader dies.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
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
    """The grader's handle on its zygote. Start it early (`start`); it is ready on first use."""

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
        self.owner = os.getpid()
        self.ready = False
        self.worlds: dict[int, tuple[str, object]] = {}  # id(world) -> (key, the world, kept alive)

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

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
        """A confined child for one submission: its pid and the grader's end of its socket."""
        self.wait_ready()
        key = self._world_key(world)
        ours, theirs = socket.socketpair()
        with contextlib.suppress(OSError):  # room for a training run's child to run ahead (capped by the OS)
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        try:
            socket.send_fds(self.sock, [b"F"], [theirs.fileno()])
            self._send({"type": "spawn", "source": source, "path": path, "time_s": time_s, "memory_mb": memory_mb,
                        "scratch": scratch, "world": key})
        except OSError as exc:
            ours.close()
            raise ZygoteError(f"the sandbox's zygote stopped answering ({exc.strerror})") from None
        finally:
            theirs.close()
        header = self._answer()
        if header.get("type") != "spawned" or type(header.get("pid")) is not int:
            ours.close()
            raise ZygoteError(f"the sandbox's zygote could not fork a child ({header.get('why', 'no reason')})")
        return header["pid"], ours

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
        """End the zygote (its end of the socket closing is its cue; then it is killed); once."""
        if self.owner != os.getpid():
            return  # inherited through a fork: the process that started it ends it
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


_zygote: Zygote | None = None


def start() -> Zygote:
    """The zygote of this process, started if it has none (or the one it has died, or was inherited
    through a fork): call it early, so that its import of torch overlaps the grader's own."""
    global _zygote  # noqa: PLW0603 - one per process
    if _zygote is None or not _zygote.alive():
        if _zygote is not None and _zygote.owner == os.getpid():
            _zygote.close()
        _zygote = Zygote()
        atexit.register(_zygote.close)  # ended with this process, not left to the garbage collector
    return _zygote


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
    from grader.confined.child import confine, serve  # noqa: PLC0415
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
        channel = socket.socket(fileno=channel_fd)
        keep = [channel_fd, *([debug_file.fileno()] if debug_file else [])]
        serve(channel, str(header["source"]), str(header["path"]), limits=limits, world=world,
              confine=lambda: confine(str(header["scratch"]), limits, keep, new_session=True))
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
    from grader.confined.wire import exact_reader, pack, unpack  # noqa: PLC0415
    from grader.confined.world import decode_world  # noqa: PLC0415

    kernel.die_with_parent()
    kernel.not_dumpable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grader's to handle
    control = socket.socket(fileno=fd)
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    warm_up()
    control.sendall(pack({"type": "ready"}, {}))
    worlds: dict[str, dict[str, object]] = {}
    children: set[int] = set()
    try:
        while True:
            _, fds, _, _ = socket.recv_fds(control, 1, 1) if _peek_fd(control) else (b"", [], 0, None)
            header, tensors = unpack(exact_reader(control.recv))
            kind = header.get("type")
            if kind == "world":
                worlds[str(header["key"])] = decode_world(header["world"], tensors)
            elif kind == "spawn" and fds:
                try:
                    pid = _fork_child(control, fds[0], header, worlds)
                except OSError as exc:
                    control.sendall(pack({"type": "failed", "why": exc.strerror or str(exc)}, {}))
                else:
                    children.add(pid)
                    control.sendall(pack({"type": "spawned", "pid": pid}, {}))
                finally:
                    os.close(fds[0])
            elif kind == "reap":
                pid = int(header["pid"])
                status = None
                if pid in children:
                    children.discard(pid)
                    with contextlib.suppress(ChildProcessError):
                        status = _wait(pid)
                control.sendall(pack({"type": "reaped", "status": status}, {}))
            else:
                return
    except EOFError:
        return
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


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
