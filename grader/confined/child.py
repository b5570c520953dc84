"""The sandbox's child process: confine itself, then run student code on request.

The unix sandbox's child is forked by the zygote (grader/confined/zygote.py), a fresh
interpreter that has never held a truth or a secret; the portable sandbox's child is a fresh
interpreter of its own (grader/confined/spawned.py). Either way the child confines itself
(`confine`) before it compiles a line of graded code, says what held (Ready), and then
answers the grader's messages (grader/confined/protocol.py) until Done.
"""

from __future__ import annotations

import gc
import math
import os
import random
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

from grader.confined import kernel
from grader.confined.jail import audit_from_now_on, guard
from grader.confined.protocol import (
    Case,
    Commit,
    End,
    FromChild,
    HeldCommits,
    Ready,
    Reveal,
    Run,
    Step,
    ToChild,
    Train,
    Value,
    encode,
    for_child,
)
from grader.confined.runner import execute, let_go, names_in, namespace, read_value
from grader.confined.wire import BufferedReader, unpack
from grader.courseware.cases import namespace_for
from grader.courseware.course import Limits
from grader.courseware.graph import Graph
from grader.intake.submission import Program, compile_to_run

HAS_LIMITS = resource is not None and pwd is not None  # what confining the child needs
FILE_SIZE_LIMIT = 16 << 20
UNSENT_BYTES = 1 << 20  # commits held back to go in one write are sent once they are this large
SANDBOX_THREADS = 1  # torch's threads in the child: no thread pool to fork into, fair timing, no fight for cores


def warm_up() -> None:
    """Load the modules torch imports lazily on first use.

    The child runs where no new module can be imported (a chroot, Landlock, the audit hook):
    whatever student code commonly touches must be loaded before it is confined.
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
    portable one). Both send all of `data`, and return up to n bytes (b"" at the end)."""

    def sendall(self, data: bytes | memoryview, /) -> None: ...

    def recv(self, n: int, /) -> bytes: ...


def send(channel: Channel, message: FromChild) -> None:
    channel.sendall(encode(message))


def receive(read: BufferedReader) -> ToChild:
    """The grader's next message, read through the channel's one reader."""
    header, tensors = unpack(read)
    return for_child(header, tensors)


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


def _vm_size_mb() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
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


def _drop_root(scratch: str) -> str:
    """As root: the scratch folder becomes the root directory, and the process becomes nobody,
    with no supplementary groups. Says what held."""
    nobody = pwd.getpwnam("nobody")
    os.chroot(scratch)
    os.chdir("/")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    return "chroot to the scratch folder as nobody, no groups"


def _die_with(parent: int) -> None:
    """End with the process that started this one (Linux): a grader killed outright, or a zygote, leaves no
    child running until its CPU limit. Set after the change of user, which clears it; a parent gone before
    then has left this process to another, and it ends now."""
    if kernel.die_with_parent() and os.getppid() != parent:
        os._exit(0)


def portable_limits() -> dict[str, str]:
    """What the portable child can do to itself on this OS, by protection; the grader adds what it
    does from outside (the wall clock, the kill, watching memory)."""
    linux = sys.platform.startswith("linux")
    return {
        "cpu": "RLIMIT_CPU" if resource is not None else "",
        "memory": "RLIMIT_AS" if resource is not None and linux else "",
        "processes": "RLIMIT_NPROC 0" if resource is not None and linux else "",
        "file size": "RLIMIT_FSIZE" if resource is not None else "",
    }


def confine(scratch: str, limits: Limits, keep: list[int], *, new_session: bool) -> dict[str, str]:
    """Everything the child does to itself before it compiles a line of graded code, in the order
    each step needs; what held, by protection ("" for what this system does not offer)."""
    parent = os.getppid()
    if new_session and hasattr(os, "setsid"):
        os.setsid()
    _only_these_files(keep)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8"})
    torch.set_num_threads(SANDBOX_THREADS)
    _autograd_off()
    kernel.not_dumpable()
    can = portable_limits()
    address_space_mb = _vm_size_mb() + limits.memory_mb if can["memory"] else None  # before a chroot hides /proc
    os.chdir(scratch)
    held: dict[str, str] = {"files": "a scratch working folder"}
    inside = scratch
    if hasattr(os, "geteuid") and os.geteuid() == 0 and pwd is not None:
        held["files"] = _drop_root(scratch)
        inside = "/"
    _die_with(parent)
    held.update(kernel.confine(inside))
    if resource is not None:
        _set_limits(limits, address_space_mb=address_space_mb, processes=bool(can["processes"]))
    held["audit"] = audit_from_now_on()
    return held


class _Training:
    """The child's side of a real training run (grader/judging/training.py, `full_run`).

    It keeps its own copy of the parameters, runs the course's forward pass and the
    student's backward pass, updates, and streams each step's gradients back as one flat
    float32 tensor, without waiting for the grader. The grader applies the same update to
    its own copy and computes every loss from it; nothing this side says is believed
    beyond "these are the gradients of step i". A step whose gradients cannot be used
    (missing, not a tensor, the wrong size) is sent back as an ordinary run's End for
    the grader to judge, and ends the run.
    """

    def __init__(self, request: Train) -> None:
        start = request.start
        assert start is not None
        self.names = list(start.names)
        self.shapes = [tuple(s) for s in start.shapes]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.graph = Graph(start.graph)  # the course's forward pass, as its code (never its file)
        self.dims = dict(start.sizes)
        self.flat = start.params
        parts = torch.split(self.flat, self.sizes)
        self.params = {name: part.view(shape) for name, part, shape in zip(self.names, parts, self.shapes, strict=True)}
        self.wanted = tuple(f"d{name}" for name in self.names)
        self.fresh: frozenset[str] | None = None  # what each step makes anew (namespace need not copy it)
        size = sum(self.sizes)  # every step's answer is one frame of the same layout: its header is made once
        self.frame_head = encode(Step(torch.zeros(size)))[:-4 * size]
        self.stopped = False

    def _flat_grads(self, values: dict[str, Value]) -> torch.Tensor | None:
        parts = []
        for name, size in zip(self.wanted, self.sizes, strict=True):
            g = values.get(name)
            if not isinstance(g, torch.Tensor) or not g.is_floating_point() or g.numel() != size:
                return None
            parts.append(g.reshape(-1))
        return torch.cat(parts).to(torch.float32)

    def steps(self, channel: Channel, program: Program, request: Train, memory_mb: int, state: ProcessState) -> None:
        for i, lr in enumerate(request.lrs):
            if self.stopped:
                return
            fresh_start(state, collect=False)  # each step is a run of its own: none sees what the last one left
            Xb, Yb = request.Xb[i], request.Yb[i]
            acts = self.graph.forward(self.params, Xb, Yb, self.dims)
            start = namespace_for(self.params, acts, Xb, Yb, self.dims, copy=False)  # namespace copies
            if self.fresh is None:  # the activations, and the batch, unless one shares the parameters' memory
                ours = self.flat.untyped_storage().data_ptr()
                self.fresh = frozenset(name for name, t in start.items()
                                       if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() != ours)
            ns = namespace(start, {}, program.path, self.fresh)
            caught: list[object] = []
            errors, printed, halted, seconds = execute(program, ns, memory_mb=memory_mb, caught=caught)
            values = {name: read_value(ns, name, copy=False) for name in self.wanted}
            grads = self._flat_grads(values)
            if grads is None:
                self.stopped = True
                end = encode(End(values, errors, printed, halted, seconds))
                let_go(ns, caught)
                channel.sendall(end)
                return
            let_go(ns, caught, collect=False)  # the collector frees the rest, at the latest before the next run
            channel.sendall(self.frame_head)
            channel.sendall(grads.numpy().data)
            self.flat -= lr * grads  # in place (self.params are views); the grader's copy takes the same update


class ProcessState:
    """What graded code may change for the whole process through the modules it is given, kept as it
    is before the first run and put back before each run: the random generators (random, torch), torch's
    default dtype, grad mode, and torch's and numpy's print options and numpy's error handling. No run
    can leave in them anything for the next (a count of its runs, a value it was shown). Nothing of a
    run outlives it to change them afterwards (runner.let_go); inference mode, which only the `with`
    that set it can end, is checked: `restore` says False when a run has left it on."""

    def __init__(self) -> None:
        import numpy  # noqa: PLC0415 - loaded by warm_up already

        self.numpy = numpy
        self.random = random.getstate()
        self.torch_rng = torch.get_rng_state()
        self.dtype = torch.get_default_dtype()
        self.torch_print = dict(vars(torch._tensor_str.PRINT_OPTS))
        self.numpy_print = numpy.get_printoptions()
        self.numpy_errors = numpy.geterr()
        self.numpy_call = numpy.geterrcall()
        self.grad = torch.is_grad_enabled()
        self.inference = torch.is_inference_mode_enabled()
        self.modes = torch._C._len_torch_function_stack()

    def restore(self) -> bool:
        if torch.is_inference_mode_enabled() != self.inference or torch._C._len_torch_function_stack() != self.modes:
            return False  # a `with` left open (a default device, inference mode): only its own exit ends it
        torch.set_grad_enabled(self.grad)
        random.setstate(self.random)
        torch.set_rng_state(self.torch_rng)
        torch.set_default_dtype(self.dtype)
        torch.set_printoptions(**self.torch_print)  # type: ignore[no-untyped-call]
        self.numpy.set_printoptions(**self.numpy_print)
        self.numpy.seterr(**self.numpy_errors)
        self.numpy.seterrcall(self.numpy_call)
        return True


def fresh_start(state: ProcessState, *, collect: bool = True) -> None:
    """Put the process back as it was before the first run, once the collector has freed what a training
    run's steps left to it (their finalisers run first, as graded code); where that cannot be done, end
    the child as a run that died, for the grader to report as the submission's (never the sandbox's)."""
    if collect:
        let_go()
    if not state.restore():
        os.kill(os.getpid(), signal.SIGKILL)


def _run(channel: Channel, program: Program, case: Case, world: dict[str, object], request: Run, *,
         read: BufferedReader, memory_mb: int, named: frozenset[str]) -> None:
    """One run: commit at each point, wait where it says so, set the presets; then its End."""
    ns = namespace({**world, **case.scalars, **case.tensors}, case.given_gradients, program.path, named=named)
    points = {p.index: p for p in request.points}
    held = HeldCommits()  # commits that wait for nothing: one frame with the next one that waits, or before the End
    replaced: list[object] = []  # what graded code had bound to a name the grader then set: dropped by let_go
    caught: list[object] = []

    def at(index: int, names: dict[str, object]) -> None:
        point = points.get(index)
        if point is not None:
            # no copy: the values are turned into bytes right here, before another line of graded code runs
            held.add(Commit(index, {n: read_value(names, n, copy=False) for n in point.names}))
            if point.waits or held.size > UNSENT_BYTES:
                channel.sendall(held.take())
            if point.waits:
                reveal = receive(read)
                if not isinstance(reveal, Reveal):
                    raise EOFError("the grader broke the protocol")  # pragma: no cover - the grader is ours
                replaced.extend(names.get(n) for n in reveal.values)
                names.update(reveal.values)
        for name, tensor in request.preset.get(index, {}).items():
            replaced.append(names.get(name))
            names[name] = tensor.clone()

    errors, printed, halted, seconds = execute(program, ns, at, memory_mb=memory_mb, caught=caught)
    wanted = request.read_back if request.read_back is not None else case.wanted
    end = encode(End({n: read_value(ns, n, copy=False) for n in wanted}, errors, printed, halted, seconds))
    let_go(ns, replaced, caught)
    channel.sendall(held.take() + end if len(held) else end)


def serve(channel: Channel, source: str, path: str, *, limits: Limits, confine: Callable[[], dict[str, str]],
          world: dict[str, object] | None = None) -> None:
    """Confine this process, say what held, then answer the grader's messages until Done. The code is
    compiled after Ready, under its own limits: a file that cannot be compiled within them is the
    submission's doing, said as its first run's end, never the sandbox's failure to start."""
    held = confine()
    send(channel, Ready(held))
    program = compile_to_run(source, path, rewrite=guard)
    if program.syntax_error is not None:  # the grader compiled it: only these limits (memory) stop it here
        os.kill(os.getpid(), signal.SIGKILL)
    named = names_in(program)
    state = ProcessState()
    gc.freeze()  # what the child holds for good is never scanned: let_go's collections see one run's objects
    read = BufferedReader(channel.recv)  # nothing but the grader's frames comes this way
    case: Case | None = None
    training: _Training | None = None
    while True:
        message = receive(read)
        if isinstance(message, Case):
            case = message
        elif isinstance(message, Run) and case is not None:
            fresh_start(state)
            _run(channel, program, case, world or {}, message, read=read, memory_mb=limits.memory_mb, named=named)
        elif isinstance(message, Train):
            if message.start is not None:
                fresh_start(state)  # what the last run left must not reach the training's own set-up either
                training = _Training(message)
            if training is not None:
                training.steps(channel, program, message, limits.memory_mb, state)
        else:
            return


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
