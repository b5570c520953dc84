"""Run student code on one Case, statement by statement, and read its gradients back.

This is the one place student code executes. Everything crossing it is plain data:
in go a Program, a Case's tensors and, for each run, the true values to set after
given statements; out come tensors (or their absence) and per-statement errors.
"""

from __future__ import annotations

import contextlib
import io
import traceback
from dataclasses import dataclass, field

import torch

from grader.cases import Case, fresh_namespace
from grader.submission import Program

MAX_OUTPUT_CHARS = 4000  # what the student's prints may show in a report
BEFORE_ALL = -1


@dataclass(frozen=True)
class NotATensor:
    """A gradient variable that holds something other than a tensor."""

    type_name: str


Value = torch.Tensor | NotATensor | None  # None: not assigned, None, or the stub's `...`


@dataclass(frozen=True)
class Run:
    """One execution of the whole program; after statement i, set inject[i].

    inject[BEFORE_ALL] is set before the first statement runs.
    """

    inject: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    values: dict[str, Value]
    errors: dict[int, str]  # statement index -> "line 12: ZeroDivisionError: ..."
    output: str = ""
    halted_at: int | None = None  # the statement that ended the program (sys.exit)


class _CappedBuffer(io.StringIO):
    def write(self, s: str) -> int:
        room = MAX_OUTPUT_CHARS + 1 - self.tell()
        if room > 0:
            super().write(s[:room])
        return len(s)


def describe_exception(exc: BaseException, path: str) -> str:
    """`line 12: ZeroDivisionError: division by zero`, with the student's own line."""
    lineno = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == path:
            lineno = frame.lineno
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    where = f"line {lineno}: " if lineno else ""
    return f"{where}{type(exc).__name__}{': ' + text if text else ''}"[:500]


def read_value(ns: dict[str, object], name: str) -> Value:
    value = ns.get(name)
    if value is None or value is Ellipsis:
        return None
    if type(value) is torch.Tensor or isinstance(value, torch.nn.Parameter):
        return value.detach().clone()
    return NotATensor(type(value).__name__)


def execute(program: Program, case: Case, runs: list[Run], wanted: tuple[str, ...],
            given: dict[str, torch.Tensor] | None = None) -> list[RunResult]:
    """Run `program` once per Run on fresh copies of `case`, in this process.

    `given` holds extra true tensors the exercise hands the student (dhpreact).
    """
    results = []
    for run in runs:
        ns = fresh_namespace(case, given)
        errors: dict[int, str] = {}
        halted_at = None
        out = _CappedBuffer()
        for name, tensor in run.inject.get(BEFORE_ALL, {}).items():
            ns[name] = tensor.clone()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), torch.no_grad():
            for stmt in program.statements:
                try:
                    exec(stmt.code, ns)
                except SystemExit as exc:  # the program ends here; later statements never run
                    errors[stmt.index] = describe_exception(exc, program.path)
                    halted_at = stmt.index
                    break
                except Exception as exc:  # student code may raise anything
                    errors[stmt.index] = describe_exception(exc, program.path)
                for name, tensor in run.inject.get(stmt.index, {}).items():
                    ns[name] = tensor.clone()
        printed = out.getvalue()
        if len(printed) > MAX_OUTPUT_CHARS:
            printed = printed[:MAX_OUTPUT_CHARS] + "\n... (output cut)"
        values = {name: read_value(ns, name) for name in wanted}
        results.append(RunResult(values, errors, printed, halted_at))
    return results
