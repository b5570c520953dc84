"""Judge a program's gradients against autograd: isolated and chained, on every case.

Isolated (the verdict points go by): for each gradient X, one run of the program in
which every *upstream* gradient Y (the gradient of a tensor computed from X's tensor)
is replaced by its true value right after the last statement that assigns it. X is
then computed from true inputs, so a slip earlier in the chain does not count twice.
Chained: one plain run, what the lecture's `cmp` would print for the code as written.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grader.cases import Case
from grader.course import Exercise, Gradient
from grader.graph import downstream
from grader.results import GradientResult, Status, worst
from grader.runner import BEFORE_ALL, NotATensor, Run, RunResult, Value
from grader.sandbox import Sandbox
from grader.submission import Program


@dataclass(frozen=True)
class Check:
    """One gradient on one case, in one run."""

    status: Status
    message: str = ""
    maxdiff: float | None = None
    exact: bool = False
    approximate: bool = False
    note: str = ""  # said even when the gradient passes (a squeezed shape, a dtype)


def fmt_shape(shape: torch.Size | tuple[int, ...]) -> str:
    dims = tuple(shape)
    return f"({dims[0]},)" if len(dims) == 1 else str(dims)


def shape_advice(grad: Gradient, got: torch.Size, want: torch.Size) -> str:
    """What to do about a gradient of the wrong shape."""
    head = f"{grad.name} has shape {fmt_shape(got)}; {grad.tensor} is {fmt_shape(want)}"
    if len(got) == len(want) and all(w in (1, g) for g, w in zip(got, want, strict=True)):
        dims = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if w == 1 and g != 1]
        which = " and ".join(str(d) for d in dims)
        return (f"{head}: {grad.tensor} was broadcast along dim {which} in the forward pass, "
                f"so sum the gradient over dim {which} with keepdim=True")
    if len(got) == len(want) - 1 and all(w in (1, g) for g, w in zip(got, want[1:], strict=True)) and want[0] == 1:
        return f"{head}: keep the summed dimension (keepdim=True)"
    if len(got) == 2 and tuple(got) == tuple(want)[::-1]:
        return f"{head}: it looks transposed; check the order of the matmul"
    return f"{head}: a gradient always has the shape of its tensor"


def same_but_size1(got: torch.Size, want: torch.Size) -> bool:
    return [d for d in got if d != 1] == [d for d in want if d != 1]


def compare(grad: Gradient, value: Value, truth: torch.Tensor, error: str | None) -> Check:
    """The cmp line for one gradient, plus a verdict and what to do."""
    if error is not None:
        return Check(Status.ERROR, error)
    if value is None:
        return Check(Status.MISSING, f"{grad.name} is not written yet (still None or never assigned)")
    if isinstance(value, NotATensor):
        return Check(Status.ERROR, f"{grad.name} is a {value.type_name}, not a torch.Tensor of shape "
                     f"{fmt_shape(truth.shape)}")
    if not value.is_floating_point():
        return Check(Status.WRONG, f"{grad.name} has dtype {value.dtype}; gradients are {truth.dtype} "
                     "(an integer tensor cannot hold them: start from torch.zeros_like)")
    notes = []
    if value.shape != truth.shape:
        if not same_but_size1(value.shape, truth.shape):
            return Check(Status.WRONG, shape_advice(grad, value.shape, truth.shape))
        notes.append(f"shape {fmt_shape(value.shape)} judged as {fmt_shape(truth.shape)}, "
                     f"the shape of {grad.tensor}")
        value = value.reshape(truth.shape)
    if value.dtype != truth.dtype:
        notes.append(f"dtype {value.dtype} judged as {truth.dtype}")
        value = value.to(truth.dtype)
    note = "; ".join(notes)
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        kind = "NaN" if bool(torch.isnan(value).any()) else "inf"
        return Check(Status.WRONG, f"{grad.name} contains {kind} ({int((~finite).sum())} of "
                     f"{value.numel()} entries); look for a division by zero or a log of 0", note=note)
    maxdiff = (value - truth).abs().max().item()
    exact = bool(torch.equal(value, truth))
    approx = bool(torch.allclose(value, truth, rtol=grad.tolerance.rtol, atol=grad.tolerance.atol))
    if exact:
        return Check(Status.EXACT, "", maxdiff, True, True, note)
    if approx:
        return Check(Status.APPROXIMATE, "", maxdiff, False, True, note)
    return Check(Status.WRONG, f"maxdiff {maxdiff:.1e} is over the tolerance "
                 f"(rtol {grad.tolerance.rtol:g}, atol {grad.tolerance.atol:g})", maxdiff, False, False, note)


def isolating_run(exercise: Exercise, program: Program, grad: Gradient, case: Case) -> Run:
    """The run in which every gradient upstream of `grad` is set to its true value."""
    after = downstream(grad.tensor)
    inject: dict[int, dict[str, torch.Tensor]] = {}
    for other in exercise.gradients:
        if other.tensor in after:
            stmt = program.last_assignment(other.name)
            at = stmt.index if stmt is not None else BEFORE_ALL
            inject.setdefault(at, {})[other.name] = case.truth[other.tensor]
    return Run(inject, wanted=(grad.name,))


def error_for(program: Program, name: str, result: RunResult) -> str | None:
    """The exception of a statement that assigns `name`, or the exit that cut it off."""
    if result.died is not None:
        return result.died
    if result.halted_at is not None:
        last = program.last_assignment(name)
        if last is None or last.index >= result.halted_at:
            stopper = result.errors[result.halted_at]
            return f"your code ended early ({stopper}) before {name} was written"
    for stmt in program.statements:
        if name in stmt.assigns and stmt.index in result.errors:
            return result.errors[stmt.index]
    return None


def backprop_order(exercise: Exercise) -> list[Gradient]:
    """Gradients ordered so that each comes before every gradient computed from it.

    A gradient's isolated run is given the true values of gradients *downstream* of it;
    running them in this order means no run ever sees the truth it is judged against.
    """
    return sorted(exercise.gradients, key=lambda g: len(downstream(g.tensor)))


def check_case(exercise: Exercise, program: Program, case: Case,
               sandbox: Sandbox) -> tuple[dict[str, Check], dict[str, Check], str]:
    """Isolated and chained checks of every gradient on one case, and what it printed."""
    runs = [Run()]  # the chained run
    run_of: dict[str, int] = {}
    for grad in backprop_order(exercise):
        run = isolating_run(exercise, program, grad, case)
        run_of[grad.name] = 0 if not run.inject else len(runs)
        if run.inject:
            runs.append(run)
    given = {name: case.truth[name[1:]] for name in exercise.given}
    results = sandbox.run_case(case.given, given, runs, exercise.gradient_names)
    isolated, chained = {}, {}
    for grad in exercise.gradients:
        truth = case.truth[grad.tensor]
        mine = results[run_of[grad.name]]
        isolated[grad.name] = compare(grad, mine.values[grad.name], truth, error_for(program, grad.name, mine))
        plain = results[0]
        chained[grad.name] = compare(grad, plain.values[grad.name], truth, error_for(program, grad.name, plain))
    return isolated, chained, results[0].output


def summarize(grad: Gradient, program: Program, cases: list[Case],
              isolated: list[Check], chained: list[Check]) -> GradientResult:
    """Fold one gradient's checks over the cases into its verdict and message."""
    status = worst([c.status for c in isolated])
    chained_status = worst([c.status for c in chained])
    # The case that decides: the worst status, and of those the largest difference.
    at = max((i for i, c in enumerate(isolated) if c.status is status),
             key=lambda i: isolated[i].maxdiff or 0.0)
    decisive = isolated[at]
    message = decisive.message
    case_label = None
    if not status.passed and len(cases) > 1 and status is not Status.MISSING:
        case_label = cases[at].label
        passing = [cases[i].label for i, c in enumerate(isolated) if c.status.passed]
        if passing:
            n = cases[at].spec.batch_size
            message = (f"right on {', '.join(repr(p) for p in passing)} but wrong on {case_label!r} "
                       f"(batch of {n}): {message}. Is a batch size or 1/n hard-coded?")
    notes = sorted({c.note for c in isolated if c.note})
    if notes:
        message = "; ".join(filter(None, [message, *notes]))
    diffs = [c.maxdiff for c in isolated if c.maxdiff is not None]
    stmt = program.last_assignment(grad.name)
    return GradientResult(
        name=grad.name,
        tensor=grad.tensor,
        status=status,
        chained=chained_status,
        exact=all(c.exact for c in isolated),
        approximate=all(c.approximate for c in isolated),
        maxdiff=max(diffs) if len(diffs) == len(isolated) else None,
        message=message,
        points=grad.points,
        line=stmt.lineno if stmt is not None else None,
        case=case_label,
    )


def all_error(exercise: Exercise, reason: str) -> tuple[GradientResult, ...]:
    """Every gradient `error` for one reason: the code did not parse, or broke the rules."""
    return tuple(
        GradientResult(g.name, g.tensor, Status.ERROR, Status.ERROR, False, False, None, reason, g.points)
        for g in exercise.gradients
    )


def judge(exercise: Exercise, program: Program, cases: list[Case],
          sandbox: Sandbox) -> tuple[tuple[GradientResult, ...], str]:
    """Every gradient of the exercise, judged on every case; and what the code printed."""
    per_case = [check_case(exercise, program, case, sandbox) for case in cases]
    results = tuple(
        summarize(g, program, cases, [iso[g.name] for iso, _, _ in per_case],
                  [ch[g.name] for _, ch, _ in per_case])
        for g in exercise.gradients
    )
    return results, per_case[0][2]
