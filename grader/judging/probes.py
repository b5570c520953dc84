"""Where the vector-Jacobian check (vjp.py) can hand its random values to the student's code.

A random gradient for a tensor is set right after the statement that leaves that tensor's
gradient in a variable: the variable the exercise names (`dhprebn`), or, for an intermediate the
exercise does not grade and the code does not assign under its name (exercise 4's are
optional), the student's own variable for it. That variable is found by what it holds: one that
a graded gradient's line reads (`g` in `dW1 = embcat.T @ g` and `db1 = g.sum(0)`), whose value,
as the plain run committed it after the statement that reaches those lines, is the tensor's true
gradient. The plain run commits before anything is handed to the code, so finding it reveals
nothing.

A check can run only where every random value would be set before the statement that computes
the gradient judged. Code that computes a gradient and the gradients it is computed from in one
statement (a backward pass inside one `with` block, loop or function) gives nowhere to set them:
there the graph alone says what it can (vjp.unrun_vjp).
"""

from __future__ import annotations

import torch

from grader.confined.protocol import BEFORE_ALL
from grader.confined.sandbox import RunResult
from grader.courseware.cases import Case
from grader.courseware.course import Exercise
from grader.intake.submission import Program
from grader.judging.diagnose import close
from grader.judging.runs import Plan, Slot
from grader.judging.vjp import VJPPlan


def own_names(exercise: Exercise, program: Program, case: Case) -> dict[str, tuple[Slot, ...]]:
    """For each intermediate the code does not assign under its own name, by tensor: the student's
    variables that the lines of the graded gradients computed from it read, each with the one statement
    whose value reaches every such line (a variable assigned again between them has none). Names the
    exercise or the forward pass gives are not the student's own."""
    graph = case.graph
    known = {g.name for g in (*exercise.gradients, *exercise.intermediates)} | set(case.namespace)
    found: dict[str, tuple[Slot, ...]] = {}
    for h in exercise.intermediates:
        if program.last_assignment(h.name) is not None:
            continue
        lines = [s for g in exercise.gradients if h.tensor in graph.consumers(g.tensor)
                 if (s := program.last_assignment(g.name)) is not None]
        reaching: dict[str, set[int | None]] = {}
        for line in lines:
            for name in sorted(line.loads - known):
                before = [s.index for s in program.statements[:line.index] if name in s.assigns]
                reaching.setdefault(name, set()).add(before[-1] if before else None)
        slots = tuple(Slot(name, index) for name, (index, *more) in sorted(reaching.items())
                      if not more and index is not None)
        if slots:
            found[h.tensor] = slots
    return found


def commit_points(candidates: dict[str, tuple[Slot, ...]]) -> dict[int, tuple[str, ...]]:
    """Where the plain run commits the candidates' values: by statement, the names to commit after it."""
    at: dict[int, set[str]] = {}
    for slots in candidates.values():
        for slot in slots:
            at.setdefault(slot.index, set()).add(slot.name)
    return {i: tuple(sorted(names)) for i, names in sorted(at.items())}


def held(candidates: dict[str, tuple[Slot, ...]], plain: RunResult, case: Case) -> dict[str, tuple[Slot, ...]]:
    """Of the candidates, by tensor, those whose value the plain run committed after their statement is
    that tensor's true gradient. A variable that would hold two tensors' after one statement is neither's
    (one reused for each in turn, `g = ...` before each layer, holds each in its own place)."""
    holding: dict[str, tuple[Slot, ...]] = {}
    for tensor, slots in candidates.items():
        truth = case.truth[tensor]
        holding[tensor] = tuple(
            s for s in slots if isinstance(got := plain.commits.get(s.index, {}).get(s.name), torch.Tensor)
            and got.is_floating_point() and got.shape == truth.shape and close(got.to(truth.dtype), truth))
    twice = {s for tensor, slots in holding.items() for s in slots
             if any(s in others for t, others in holding.items() if t != tensor)}
    return {t: kept for t, slots in holding.items() if (kept := tuple(s for s in slots if s not in twice))}


def slots_of(plan: Plan, aliases: dict[str, tuple[Slot, ...]]) -> dict[str, tuple[Slot, ...]]:
    """By tensor, where its random gradient is set: after its variable's last assignment (before the
    first statement for a graded gradient the code never assigns, as nothing then reads it but the code
    that fails on it), and in the student's own variables for it (`held`)."""
    slots: dict[str, tuple[Slot, ...]] = {}
    for g in plan.every:
        last = plan.last[g.name]
        if last is None and g.name in plan.graded:
            last = BEFORE_ALL
        own = (Slot(g.name, last),) if last is not None else ()
        slots[g.tensor] = (*own, *aliases.get(g.tensor, ()))
    return slots


def reachable(vjp_plan: VJPPlan, slots: dict[str, tuple[Slot, ...]], commit_index: int) -> bool:
    """Whether every consumer's random gradient can be set before the statement whose value is judged."""
    return all(slots.get(c) and all(s.index < commit_index for s in slots[c]) for c in vjp_plan.parts)
