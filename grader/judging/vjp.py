"""The vector-Jacobian check: a gradient computed from random gradients of its consumers.

Value comparisons cannot tell a right formula from one that only matches because the
truth is ~0 (db1, dlogit_maxes), nor see a dropped branch whose share happens to be ~0
(the logit_maxes path of dlogits). Feeding unit-scale random values for the consumers'
gradients and comparing with autograd's product for the same values can.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from grader.courseware.cases import Case
from grader.courseware.course import Exercise, Gradient
from grader.judging.compare import Check
from grader.judging.diagnose import Diagnosis, close
from grader.judging.results import Status

DEGENERATE_RATIO = 1e-3  # |truth| under this share of what random upstream gives: ~0 by structure
NOISE_SHARE = 1e-3  # a value off by less than this share of a typical gradient is off by float noise


@dataclass(frozen=True)
class VJPCheck:
    """X computed from random consumer gradients, against autograd's product."""

    agrees: bool | None  # None: the run gave no usable tensor
    degenerate: bool  # the true gradient is ~0 whatever the formula
    typical: float  # the size a gradient of this tensor has for upstream gradients of their true size
    consumers: tuple[str, ...]  # the tensors its gradient flows back from
    counted: tuple[str, ...] | None = None  # when it disagrees: the consumers it did count, if that explains it
    ignores_consumers: bool = False  # when it disagrees: it came out as the truth anyway (a shortcut)
    negated: bool = False  # when it disagrees: it is autograd's product with the opposite sign
    ran: bool = True  # False: the code names no gradient of the consumers, so there was nothing to run


@dataclass(frozen=True)
class VJPPlan:
    """Random unit-scale gradients for a tensor's consumers, and what autograd makes of them."""

    random_consumers: dict[str, torch.Tensor]
    parts: dict[str, torch.Tensor]  # consumer -> its contribution for the random gradient
    typical: torch.Tensor  # the same, each consumer scaled to its true gradient's size: the reference
    # against which "the truth is ~0" is measured


def vjp_plans(exercise: Exercise, gradients: Sequence[Gradient], case: Case,
              randoms: dict[str, torch.Tensor]) -> dict[str, VJPPlan | None]:
    """For each gradient, by name: the random gradients of its consumers (from `randoms`, one per tensor
    of the case) and autograd's product for each (one backward pass for all); None for a gradient one
    of whose consumers the exercise gives no gradient."""
    graph = case.graph
    names = {g.tensor for g in (*exercise.gradients, *exercise.intermediates)}
    planned = [g for g in gradients if graph.consumers(g.tensor) and all(c in names for c in graph.consumers(g.tensor))]
    edges: dict[str, tuple[str, ...]] = {}
    for g in planned:
        for c in graph.consumers(g.tensor):
            edges[c] = (*edges.get(c, ()), g.tensor)
    parts_of = graph.contributions(case.namespace, edges, randoms)
    scale = {c: float(case.truth[c].pow(2).mean().sqrt()) for c in edges}  # each consumer's true gradient's size
    plans: dict[str, VJPPlan | None] = {g.name: None for g in gradients}
    for g in planned:
        uses = graph.consumers(g.tensor)
        parts = {c: parts_of[(g.tensor, c)] for c in uses}
        typical = sum((scale[c] * p for c, p in parts.items()), torch.zeros_like(case.truth[g.tensor]))
        plans[g.name] = VJPPlan({c: randoms[c] for c in uses}, parts, typical)
    return plans


def unit_randoms(exercise: Exercise, case: Case, seed: int) -> dict[str, torch.Tensor]:
    """One unit-scale random tensor per gradient of the exercise, from the grading's probe seed (drawn
    anew for each grading: grader/courseware/draw.py), so no table made in advance holds its answers."""
    g = torch.Generator().manual_seed(seed)
    return {grad.tensor: torch.randn(case.truth[grad.tensor].shape, generator=g, dtype=case.truth[grad.tensor].dtype)
            for grad in (*exercise.gradients, *exercise.intermediates)}


def unrun_vjp(plan: VJPPlan, truth: torch.Tensor) -> VJPCheck:
    """What the graph alone says: whether the truth is ~0 by structure, and the size a gradient of
    this tensor typically has. For code that does not name its consumers' gradients, which
    therefore cannot be handed random ones (agrees is None)."""
    degenerate = float(truth.norm()) < DEGENERATE_RATIO * float(plan.typical.norm())
    return VJPCheck(None, degenerate, float(plan.typical.abs().max()), tuple(plan.parts), ran=False)


def judge_vjp(got: object, plan: VJPPlan, truth: torch.Tensor) -> VJPCheck:
    """Compare X from random consumer gradients with autograd's product for them."""
    parts = plan.parts
    unrun = unrun_vjp(plan, truth)
    uses, degenerate, typical = unrun.consumers, unrun.degenerate, unrun.typical
    expected = sum(parts.values(), torch.zeros_like(truth))
    if not (isinstance(got, torch.Tensor) and got.is_floating_point() and got.numel() == expected.numel()):
        return replace(unrun, ran=True)  # it ran and gave nothing usable: no verdict either way
    got = got.reshape(expected.shape).to(expected.dtype)
    if close(got, expected):
        return VJPCheck(True, degenerate, typical, uses)
    for size in range(1, len(parts)):
        for subset in itertools.combinations(parts, size):
            if close(got, sum((parts[c] for c in subset), torch.zeros_like(truth))):
                return VJPCheck(False, degenerate, typical, uses, counted=subset)
    return VJPCheck(False, degenerate, typical, uses, ignores_consumers=close(got, truth),
                    negated=close(got, -expected))


def settle_with_vjp(grad: Gradient, checks: list[Check], vjp: VJPCheck | None) -> tuple[list[Check], str]:
    """Let the vector-Jacobian check overrule value checks that cannot tell: where the true
    gradient is ~0, or a branch's share of it is. Returns the checks to judge by and a note."""
    if vjp is None:
        return checks, ""
    uses = vjp.consumers
    from_text = " and ".join(f"d{c}" for c in uses)
    # Value checks that fail only by a hair: over the tolerance, but by far less than a
    # gradient of this tensor typically measures, and nothing else to say.
    only_noise = all(c.status.passed or (c.status is Status.WRONG and c.maxdiff is not None and c.diagnosis is None
                                         and c.maxdiff <= NOISE_SHARE * vjp.typical) for c in checks)
    if vjp.agrees is None and vjp.ran:  # code that gives an answer only for the values it expects cannot pass
        if all(not c.status.passed for c in checks):
            return checks, ""  # wrong anyway: its own verdict says more
        why = (f"given other values of {from_text} (random ones, as a check of how it is computed), your code "
               f"gave no usable {grad.name} (not a tensor of its shape)")
        return [c if not c.status.passed else Check(Status.WRONG, why) for c in checks], ""
    if vjp.agrees is not False:  # right given random consumer gradients, or nowhere to hand them to
        if not vjp.degenerate or not only_noise:
            return checks, ""
        if not vjp.ran:
            note = (f"the true {grad.name} is ~0, so its values cannot show how it is computed: the grader checks that "
                    f"by giving your code other values of {from_text}, which it can only where a variable of yours "
                    f"holds {from_text}, set in a statement before {grad.name}'s (not in one block, loop or function "
                    "with it); judged on its values alone")
        elif all(c.status.passed for c in checks):
            return checks, ""
        else:
            note = (f"the true {grad.name} is ~0, so float noise decides its raw value; judged as the product of "
                    f"{from_text} with the local derivative, which is right")
        return [c if c.status.passed else replace(c, status=Status.APPROXIMATE, message="") for c in checks], note
    if not only_noise:
        return checks, ""  # wrong on its values too: the value diagnosis says more
    if vjp.counted is not None:
        missing = [c for c in uses if c not in vjp.counted]
        why = (f"{grad.tensor} feeds {' and '.join(uses)}, but only the path through {' and '.join(vjp.counted)} "
               f"is counted: the contribution through {' and '.join(missing)} is missing (it is ~0 for this "
               "batch, which is why the values look right)")
        left_out = tuple((grad.tensor, c) for c in missing)
        return [Check(Status.WRONG, why, diagnosis=Diagnosis("missing-branch", why, left_out))] * len(checks), ""
    if vjp.negated:
        why = (f"it is the truth with the opposite sign (the true {grad.name} is ~0, so only other values of "
               f"{from_text} show it)")
        return [Check(Status.WRONG, why, diagnosis=Diagnosis("sign", why))] * len(checks), ""
    if vjp.degenerate:
        why = (f"right only because the true {grad.name} is ~0: given other values of {from_text}, "
               "it does not change as the true gradient would")
        return [Check(Status.WRONG, why, diagnosis=Diagnosis("coincidence", why))] * len(checks), ""
    if all(c.status.passed for c in checks):
        return checks, (f"not computed from {from_text} alone (a shortcut through later gradients "
                        "or the forward pass): right for this loss, so it passes")
    return checks, ""
