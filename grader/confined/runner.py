"""Inside the sandbox: run student code on one case, statement by statement.

This module runs in the child process only (grader/confined/sandbox.py forks it). Everything
crossing into it is plain data: a Program, a case's tensors and, for each run, the true
values to set after given statements; out come tensors (or their absence) and
per-statement errors, which the sandbox sends back to the grader as raw bytes.
"""

from __future__ import annotations

import contextlib
import io
import time
import traceback
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from grader.confined.policy import PolicyError, safe_builtins, view_of
from grader.intake.submission import Program, Statement

MAX_OUTPUT_CHARS = 4000  # what the student's prints may show in a report
BEFORE_ALL = -1


@dataclass(frozen=True)
class NotATensor:
    """A gradient variable that holds something other than a plain tensor."""

    type_name: str


Value = torch.Tensor | NotATensor | None  # None: not assigned, None, or the stub's `...`


@dataclass(frozen=True)
class Run:
    """One execution of the whole program; after statement i, set inject[i].

    inject[BEFORE_ALL] is set before the first statement runs.
    """

    inject: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    wanted: tuple[str, ...] | None = None  # the variables to read back; None: all of the case's
    snapshot: tuple[tuple[int, str], ...] = ()  # (i, name): also read `name` right after statement i

    def read_back(self, default: tuple[str, ...]) -> tuple[str, ...]:
        """Every value this run returns: the wanted names, then `name@i` per snapshot."""
        names = self.wanted if self.wanted is not None else default
        return (*names, *(f"{name}@{i}" for i, name in self.snapshot))


@dataclass(frozen=True)
class RunResult:
    values: dict[str, Value]
    errors: dict[int, str]  # statement index -> "line 12: ZeroDivisionError: ..."
    output: str = ""
    halted_at: int | None = None  # the statement that ended the program (sys.exit)
    died: str | None = None  # why the sandbox ended before this run finished
    seconds: float = 0.0  # how long the statements took to run


class _CappedBuffer(io.StringIO):
    def write(self, s: str) -> int:
        room = MAX_OUTPUT_CHARS + 1 - self.tell()
        if room > 0:
            super().write(s[:room])
        return len(s)


def out_of_memory(exc: BaseException) -> bool:
    """Whether an allocation failed: Python's MemoryError, or torch's CPU allocator giving up
    (a plain RuntimeError from C++). Decided by the exception's type, never by what a
    student's own `raise ValueError("memory limit")` says."""
    allocator = type(exc) is RuntimeError and any(
        words in str(exc) for words in ("DefaultCPUAllocator: can't allocate memory",
                                        "DefaultCPUAllocator: not enough memory"))
    return isinstance(exc, MemoryError) or allocator


def describe_exception(exc: BaseException, path: str, memory_mb: int | None = None) -> str:
    """`line 12: ZeroDivisionError: division by zero`, with the student's own line."""
    lineno = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == path:
            lineno = frame.lineno
    where = f"line {lineno}: " if lineno else ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if out_of_memory(exc):
        limit = f" of {memory_mb} MB" if memory_mb else ""
        return f"{where}memory limit{limit} reached"
    if isinstance(exc, PolicyError):
        return f"{where}{text}"
    return f"{where}{type(exc).__name__}{': ' + text if text else ''}"[:500]


def used_before_assigned(exc: BaseException, program: Program, stmt: Statement) -> str | None:
    """A NameError for a name a later line assigns: in a notebook it ran only because the kernel
    still held a value from an earlier run. Names both lines (the parent maps them to cells)."""
    name = getattr(exc, "name", None) if type(exc) is NameError else None
    later = next((s for s in program.statements if s.index > stmt.index and name in s.assigns), None)
    if name is None or later is None:
        return None
    return (f"line {stmt.lineno}: {name} is used before line {later.lineno} assigns it (in a notebook this runs "
            "only while the kernel still holds an older value; restart and run all to see it). Move the line "
            f"that assigns {name} above this one")


def read_value(ns: dict[str, object], name: str, *, copy: bool = True) -> Value:
    """A variable's value after a run: a plain tensor (a copy unless copy=False), None, or NotATensor."""
    value = ns.get(name)
    if value is None or value is Ellipsis:
        return None
    if type(value) is torch.Tensor:  # not a subclass: its methods are the student's
        return value.detach().clone() if copy else value.detach()
    return NotATensor(type(value).__name__)


def namespace(given: dict[str, object], extra: dict[str, torch.Tensor],
              fresh: frozenset[str] = frozenset()) -> dict[str, object]:
    """What one run starts from: clones, so no run can spoil the next; guarded modules. Tensors
    named in `fresh` were made for this run alone and go in as they are."""
    ns: dict[str, object] = {k: (v.clone() if isinstance(v, torch.Tensor) and k not in fresh else v)
                             for k, v in given.items()}
    ns.update({k: v.clone() for k, v in extra.items()})
    ns["torch"] = view_of(torch)
    ns["F"] = view_of(F)
    ns["__builtins__"] = safe_builtins()
    ns["__name__"] = "__main__"
    return ns


def run_once(program: Program, given: dict[str, object], extra: dict[str, torch.Tensor], run: Run, *,
             wanted: tuple[str, ...], memory_mb: int | None = None, fresh: frozenset[str] = frozenset(),
             copy_out: bool = True) -> RunResult:
    """Run the whole program once on fresh copies of a case, setting run.inject as it goes.

    A training step (grader/confined/child.py) saves copies it does not need: its activations are made
    for this run alone (`fresh`), and it copies the wanted values itself (copy_out=False)."""
    ns = namespace(given, extra, fresh)
    errors: dict[int, str] = {}
    snapshots: dict[str, Value] = {}
    halted_at = None
    out = _CappedBuffer()
    for name, tensor in run.inject.get(BEFORE_ALL, {}).items():
        ns[name] = tensor.clone()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):  # grad is off process-wide
        for stmt in program.statements:
            try:
                exec(stmt.code, ns)
            except BaseException as exc:  # student code may raise anything, KeyboardInterrupt too
                errors[stmt.index] = used_before_assigned(exc, program, stmt) or describe_exception(
                    exc, program.path, memory_mb)
                if isinstance(exc, SystemExit) or out_of_memory(exc):
                    halted_at = stmt.index  # the program ends here; later statements never run
                    break
            for i, name in run.snapshot:
                if i == stmt.index:
                    snapshots[f"{name}@{i}"] = read_value(ns, name)
            for name, tensor in run.inject.get(stmt.index, {}).items():
                ns[name] = tensor.clone()
    seconds = time.perf_counter() - started
    printed = out.getvalue()
    if len(printed) > MAX_OUTPUT_CHARS:
        printed = printed[:MAX_OUTPUT_CHARS] + "\n... (output cut)"
    values = {name: read_value(ns, name, copy=copy_out) for name in wanted}
    values.update({key: snapshots.get(key) for key in run.read_back(wanted)[len(wanted):]})
    return RunResult(values, errors, printed, halted_at, seconds=seconds)
