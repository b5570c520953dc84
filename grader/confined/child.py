"""The sandbox's child process: confine itself, then run student code on request.

The unix sandbox (grader/confined/sandbox.py) forks this from the grader; the portable one
starts it in a fresh Python (grader/confined/spawned.py). Nothing here runs in the grader's
own process except `warm_up`, which loads before the fork what the child may need.
"""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Callable
from typing import Protocol

try:  # Unix only; where they are missing (Windows), the portable sandbox grades and sets no rlimits
    import pwd
    import resource
except ImportError:  # pragma: no cover - exercised in a subprocess that hides them
    pwd = resource = None  # type: ignore[assignment]

import torch

from grader.confined.runner import NotATensor, Run, RunResult, run_once
from grader.confined.wire import pack, sendable, unpack
from grader.courseware.cases import namespace_for
from grader.courseware.course import Limits
from grader.courseware.graph import Graph
from grader.intake.submission import compile_program

HAS_LIMITS = resource is not None and pwd is not None  # what confining the child needs
FILE_SIZE_LIMIT = 16 << 20
SANDBOX_THREADS = 1  # torch's threads in the child: no thread pool to fork into, fair timing, no fight for cores


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


class Channel(Protocol):
    """How the child talks to the grader: a socket (the forked sandbox) or a pair of pipes (the
    portable one, grader/confined/spawned.py). Both send all of `data`, and return up to n bytes (b"" at the end)."""

    def sendall(self, data: bytes | memoryview, /) -> None: ...

    def recv(self, n: int, /) -> bytes: ...


def _send_result(sock: Channel, result: RunResult) -> None:
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
    header = {"values": values, "errors": result.errors, "output": result.output, "halted_at": result.halted_at,
              "seconds": result.seconds}
    sock.sendall(pack(header, tensors))


def _recv_exact(sock: Channel, n: int) -> bytes:
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
    # graded code cannot name them (grader/confined/policy.py).


def _vm_size_mb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) // 1024
    return 0


def _only_these_files(keep: list[int]) -> None:
    """Signals as a new process has them (a too-large write fails instead of killing), 0-2 on the
    null device, and every other descriptor but `keep` closed (where this OS numbers them so)."""
    for name in ("SIGINT", "SIGTERM", "SIGPIPE", "SIGCHLD"):  # not all of them exist on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if os.name != "posix":
        return
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0] if resource is not None else 4096)


def _set_limits(limits: Limits, *, address_space_mb: int | None, processes: bool) -> None:
    """CPU time, file size, no core files; the address space and no new processes where asked.

    The CPU limit counts from what this process has used so far: nothing for a forked child,
    its import of torch for a spawned one, which is no part of the student's time."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = max(1, int(used.ru_utime + used.ru_stime + limits.time_s + 1))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if address_space_mb is not None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space_mb << 20, address_space_mb << 20))
    if processes:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new processes or threads


def confine_forked(keep: list[int], scratch: str, limits: Limits) -> None:
    """Everything the forked child (grader/confined/sandbox.py) does to itself before it runs a line of
    student code."""
    os.setsid()
    _only_these_files(keep)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8"})
    torch.set_num_threads(SANDBOX_THREADS)
    _autograd_off()
    address_space_mb = _vm_size_mb() + limits.memory_mb  # read before a chroot hides /proc
    os.chdir(scratch)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chroot(scratch)
        os.chdir("/")
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    _set_limits(limits, address_space_mb=address_space_mb, processes=True)


class _Training:
    """The child's side of a real training run (grader/judging/training.py, `full_run`).

    It keeps its own copy of the parameters, runs the course's forward pass and the
    student's backward pass, updates, and streams each step's gradients back as one flat
    float32 tensor, without waiting for the grader. The grader applies the same update to
    its own copy and computes every loss from it; nothing this side says is believed
    beyond "these are the gradients of step i". A step whose gradients cannot be used
    (missing, not a tensor, the wrong size) is sent back as an ordinary run result for
    the grader to judge, and ends the run.
    """

    def __init__(self, header: dict[str, object], tensors: dict[str, torch.Tensor]) -> None:
        self.names = [str(n) for n in header["names"]]  # type: ignore[attr-defined]
        self.shapes = [tuple(int(d) for d in s) for s in header["shapes"]]  # type: ignore[attr-defined]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.graph = Graph(str(header["graph"]))  # the course's forward pass, as its code (never its file)
        self.dims = {str(k): int(v) for k, v in header["sizes"].items()}  # type: ignore[attr-defined]
        self.flat = tensors["params"]
        parts = torch.split(self.flat, self.sizes)
        self.params = {name: part.view(shape) for name, part, shape in zip(self.names, parts, self.shapes, strict=True)}
        self.wanted = tuple(f"d{name}" for name in self.names)
        self.fresh: frozenset[str] | None = None  # what each step makes anew (run_once need not copy it)
        size = sum(self.sizes)  # every step's answer is one frame of the same layout: its header is made once
        self.frame_head = pack({"step": True}, {"grads": torch.zeros(size)})[:-4 * size]
        self.stopped = False

    def _flat_grads(self, result: RunResult) -> torch.Tensor | None:
        parts = []
        for name, size in zip(self.wanted, self.sizes, strict=True):
            g = result.values.get(name)
            if not isinstance(g, torch.Tensor) or not g.is_floating_point() or g.numel() != size:
                return None
            parts.append(g.reshape(-1))
        return torch.cat(parts).to(torch.float32)

    def steps(self, sock: Channel, program: object, header: dict[str, object],
              tensors: dict[str, torch.Tensor], memory_mb: int) -> None:
        Xb, Yb = tensors["Xb"], tensors["Yb"]
        lrs: list[float] = header["lrs"]  # type: ignore[assignment]
        for i, lr in enumerate(lrs):
            if self.stopped:
                return
            acts = self.graph.forward(self.params, Xb[i], Yb[i], self.dims)
            given = namespace_for(self.params, acts, Xb[i], Yb[i], self.dims, copy=False)  # run_once copies
            if self.fresh is None:  # the activations, and the batch, unless one shares the parameters' memory
                ours = self.flat.untyped_storage().data_ptr()
                self.fresh = frozenset(name for name, t in given.items()
                                       if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() != ours)
            result = run_once(program, given, {}, Run(), wanted=self.wanted, memory_mb=memory_mb,  # type: ignore[arg-type]
                              fresh=self.fresh, copy_out=False)  # _flat_grads copies
            grads = self._flat_grads(result)
            if grads is None:
                self.stopped = True
                _send_result(sock, result)
                return
            sock.sendall(self.frame_head)
            sock.sendall(grads.numpy().data)
            self.flat -= lr * grads  # in place (self.params are views); the grader's copy takes the same update


class Pipes:
    """The portable child's channel: the grader's pipes, on file descriptors of their own."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd

    def sendall(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(self.write_fd, view):]

    def recv(self, n: int, /) -> bytes:
        return os.read(self.read_fd, n)


def portable_limits() -> dict[str, str]:
    """What the portable child (grader/confined/spawned.py) can do to itself on this OS, by protection;
    the grader adds what it does from outside (the wall clock, the kill, watching memory)."""
    linux = sys.platform.startswith("linux")
    return {
        "cpu": "RLIMIT_CPU" if resource is not None else "",
        "memory": "RLIMIT_AS" if resource is not None and linux else "",
        "processes": "RLIMIT_NPROC 0" if resource is not None and linux else "",
        "file size": "RLIMIT_FSIZE" if resource is not None else "",
    }


def confine_portable(limits: Limits, keep: list[int]) -> None:
    """What the spawned child does to itself before it runs a line of student code: as much of
    confine_forked as this OS offers. Its own session or process group, the wall-clock limit and
    (where no memory limit can be set here) watching its memory are the grader's side."""
    _only_these_files(keep)
    os.environ.clear()
    os.environ.update({"HOME": os.getcwd(), "LANG": "C.UTF-8"})
    torch.set_num_threads(SANDBOX_THREADS)
    _autograd_off()
    can = portable_limits()
    if resource is not None:
        _set_limits(limits, address_space_mb=_vm_size_mb() + limits.memory_mb if can["memory"] else None,
                    processes=bool(can["processes"]))


def serve(sock: Channel, source: str, path: str, *, limits: Limits, confine: Callable[[], None],
          world: dict[str, object] | None = None) -> None:
    """Confine this process, then answer the grader's requests until it says done."""
    confine()
    program = compile_program(source, path)
    training: _Training | None = None
    given: dict[str, object] = {}
    extra: dict[str, torch.Tensor] = {}
    wanted: tuple[str, ...] = ()
    while True:
        header, tensors = unpack(lambda n: _recv_exact(sock, n))
        if header["type"] == "case":
            given = {**(world or {}), **header["given"],
                     **{k: v for k, v in tensors.items() if not k.startswith("extra:")}}
            extra = {k[6:]: v for k, v in tensors.items() if k.startswith("extra:")}
            wanted = tuple(header["wanted"])
        elif header["type"] == "run":
            inject: dict[int, dict[str, torch.Tensor]] = {}
            for key, t in tensors.items():
                index, name = key.split(":", 1)
                inject.setdefault(int(index), {})[name] = t
            names = tuple(header["wanted"]) if header["wanted"] is not None else wanted
            snapshot = tuple((int(i), str(name)) for i, name in header["snapshot"])
            result = run_once(program, given, extra, Run(inject, snapshot=snapshot), wanted=names,
                              memory_mb=limits.memory_mb)
            _send_result(sock, result)
        elif header["type"] == "train":
            if "params" in tensors:
                training = _Training(header, tensors)
            assert training is not None
            training.steps(sock, program, header, tensors, limits.memory_mb)
        else:
            return
