"""Inside the sandbox: run student code on one case, statement by statement.

This module runs in the child process only (grader/confined/child.py). Everything crossing
into it is plain data: a Program, a case's tensors and, for each run, where to commit values
and wait (grader/confined/protocol.py); out go the committed values and what the run left,
which the child sends to the grader as raw bytes.
"""

from __future__ import annotations

import contextlib
import gc
import io
import time
import traceback
from collections.abc import Callable
from types import CodeType

import torch
import torch.nn.functional as F

from grader.confined.jail import graded_code, guarded_names, safe_builtins, type_name, view_of
from grader.confined.policy import PolicyError
from grader.confined.protocol import BEFORE_ALL, NotATensor, Raised, Value
from grader.intake.submission import Program

MAX_OUTPUT_CHARS = 4000  # what the student's prints may show in a report

# Bound once, here: what reads a value back never looks anything up on a class graded code sees.
_TENSOR = torch.Tensor
_detach = torch.Tensor.detach
_clone = torch.Tensor.clone
_contiguous = torch.Tensor.contiguous


class _CappedBuffer(io.StringIO):
    def write(self, s: str) -> int:
        if type(s) is not str:  # print() only hands str; anything else came from graded code
            return 0
        room = MAX_OUTPUT_CHARS + 1 - self.tell()
        if room > 0:
            super().write(s[:room])
        return len(s)


def out_of_memory(exc: BaseException) -> bool:
    """Whether an allocation failed: Python's MemoryError, or torch's CPU allocator giving up
    (a plain RuntimeError from C++). Decided by the exception's type, never by what a
    student's own `raise ValueError("memory limit")` says."""
    if isinstance(exc, MemoryError):
        return True
    if type(exc) is not RuntimeError or not exc.args or type(exc.args[0]) is not str:
        return False
    text = exc.args[0]
    return any(words in text for words in ("DefaultCPUAllocator: can't allocate memory",
                                           "DefaultCPUAllocator: not enough memory"))


def _text_of(exc: BaseException) -> str:
    """An exception's message without running any code graded code may have written: its first
    argument when that is a plain str (what every built-in and torch error carries)."""
    first = exc.args[0] if exc.args else ""
    if type(first) in (int, float, bool):  # SystemExit(0): a plain number prints as itself
        return str(first)
    return first.strip().splitlines()[0] if type(first) is str and first.strip() else ""


def describe_exception(exc: BaseException, path: str, memory_mb: int | None = None) -> Raised:
    """What stopped a statement: the student's own line it was raised in, apart from what it says
    (`ZeroDivisionError: division by zero`), which is never read for a line number."""
    lineno = None
    with contextlib.suppress(Exception):
        for frame in traceback.extract_tb(exc.__traceback__, limit=200):
            if frame.filename == path:
                lineno = frame.lineno
    line = lineno or None
    text = _text_of(exc)
    name = exc.name if type(exc) is NameError else None  # exactly NameError: a subclass could make .name a property
    unbound = name if type(name) is str else None
    if out_of_memory(exc):
        limit = f" of {memory_mb} MB" if memory_mb else ""
        return Raised(line, f"memory limit{limit} reached")
    if isinstance(exc, PolicyError):
        return Raised(line, text)
    return Raised(line, f"{type_name(type(exc))}{': ' + text if text else ''}", unbound)


def read_value(ns: dict[str, object], name: str, *, copy: bool = True) -> Value:
    """A variable's value: a plain tensor (a copy unless copy=False), None, or NotATensor."""
    value = ns.get(name)
    if value is None or value is Ellipsis:
        return None
    if type(value) is _TENSOR:  # not a subclass: its methods would be the student's
        plain = _detach(value)  # type: ignore[arg-type]
        odd = _odd_kind(plain)
        if odd is not None:
            return NotATensor(odd)
        return _clone(plain) if copy else _contiguous(plain)
    return NotATensor(type_name(type(value)))


def _odd_kind(t: torch.Tensor) -> str | None:
    """What a tensor is when it holds no values in the CPU's memory to read: on another device (meta
    has none at all), sparse, nested or quantized; None for a plain tensor."""
    if t.is_nested:
        return "nested tensor"
    if t.layout != torch.strided:
        return f"{str(t.layout).removeprefix('torch.').replace('_', ' ')} tensor"
    if t.device.type != "cpu":
        return f"tensor on the {t.device.type} device"
    if t.is_quantized:
        return "quantized tensor"
    return None


def names_in(program: Program) -> frozenset[str]:
    """Every name the program's code can look up or store, in every statement and every function,
    class or comprehension within: the names of its code objects (attribute names among them).
    Graded code has no other way to reach a variable: globals(), vars(), eval and frames are refused."""
    names: set[str] = set()
    pending: list[CodeType] = [stmt.code for stmt in program.statements]
    while pending:
        code = pending.pop()
        names.update(code.co_names, code.co_varnames, code.co_cellvars, code.co_freevars)
        pending.extend(c for c in code.co_consts if isinstance(c, CodeType))
    return frozenset(names)


def _fresh_copy(value: object) -> object:
    """A run's own copy of a value it starts from: a tensor cloned; a plain dict or list (the data
    set's `stoi`, `itos`, `words`, `chars`) copied, its items being immutable; anything else as it is."""
    if type(value) is _TENSOR:
        return _clone(value)  # type: ignore[arg-type]
    if type(value) in (dict, list):
        return value.copy()  # type: ignore[attr-defined]
    return value


def namespace(start: dict[str, object], extra: dict[str, torch.Tensor], path: str,
              fresh: frozenset[str] = frozenset(), named: frozenset[str] | None = None) -> dict[str, object]:
    """What one run starts from: copies, so no run can spoil the next; guarded modules and
    builtins. Tensors named in `fresh` were made for this run alone, and tensors whose name the
    code never says (`named`, from names_in: the data set's splits, most often) cannot be reached
    by it: both go in as they are."""
    ns: dict[str, object] = {k: _fresh_copy(v) if k not in fresh and (named is None or k in named) else v
                             for k, v in start.items()}
    ns.update({k: _clone(v) for k, v in extra.items()})
    ns["torch"] = view_of(torch)
    ns["F"] = view_of(F)
    ns["__builtins__"] = safe_builtins(path)
    ns["__name__"] = "__main__"
    ns.update(guarded_names(path))
    return ns


At = Callable[[int, dict[str, object]], None]  # called after each statement (and BEFORE_ALL) with the namespace


def let_go(*owned: dict[str, object] | list[object], collect: bool = True) -> None:
    """Drop what graded code made, emptying each of `owned`, as graded code: the finalisers that sets
    off (a `__del__`, a generator's `finally` or open `with`, a cycle only the collector frees) run
    here, under the audit hook, their output thrown away, until nothing of the run is left. None runs
    later, in the child's own code or in the next run, where it could change what ProcessState has
    put back. The caller does this before the run's last frame, so the run's time limit bounds it.
    Without `collect` (between the steps of one training run, each of which costs ten times more with
    it), what only the collector frees is left to it: it runs finalisers as graded code wherever it starts
    (jail._collecting), and the next step starts from the process put back all the same."""
    sink = _CappedBuffer()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), graded_code():
        for each in owned:
            each.clear()
        while collect and gc.collect():  # a finaliser may leave new garbage of its own
            pass


def execute(program: Program, ns: dict[str, object], at: At | None = None, *,
            memory_mb: int | None = None,
            caught: list[object] | None = None) -> tuple[dict[int, Raised], str, int | None, float]:
    """Run the program's statements in `ns`, calling `at` after each one (and once before the
    first): the errors by statement, what it printed, where it halted, and how long it took. The
    exceptions graded code raised go in `caught`, for `let_go` to drop with the rest of the run."""
    errors: dict[int, Raised] = {}
    halted_at = None
    out = _CappedBuffer()
    if at is not None:
        at(BEFORE_ALL, ns)
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):  # grad is off process-wide
        for stmt in program.statements:
            try:
                with graded_code():
                    exec(stmt.code, ns)
            except BaseException as exc:  # student code may raise anything, KeyboardInterrupt too
                errors[stmt.index] = describe_exception(exc, program.path, memory_mb)
                if caught is not None:
                    caught.append(exc)
                if isinstance(exc, SystemExit) or out_of_memory(exc):
                    halted_at = stmt.index  # the program ends here; later statements never run
                    break
            if at is not None:
                at(stmt.index, ns)
    seconds = time.perf_counter() - started
    printed = out.getvalue()
    if len(printed) > MAX_OUTPUT_CHARS:
        printed = printed[:MAX_OUTPUT_CHARS] + "\n... (output cut)"
    return errors, printed, halted_at, seconds
