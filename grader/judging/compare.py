"""One gradient against its truth: the lecture's cmp, plus a verdict and what to do."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grader.confined.protocol import NotATensor, Value
from grader.courseware.course import Gradient
from grader.judging.diagnose import Diagnosis, broadcast_dims, fmt_shape, same_but_size1
from grader.judging.results import Status


@dataclass(frozen=True)
class Check:
    """One gradient on one case, in one run."""

    status: Status
    message: str = ""
    maxdiff: float | None = None
    exact: bool = False
    approximate: bool = False
    note: str = ""  # said even when the gradient passes (a squeezed shape, a dtype)
    diagnosis: Diagnosis | None = None  # why a wrong value is wrong, when that can be shown
    picture: tuple[torch.Tensor, torch.Tensor] | None = None  # a wrong value: (truth, yours - truth), to draw


def shape_advice(grad: Gradient, got: torch.Size, want: torch.Size) -> str:
    """What to do about a gradient of the wrong shape."""
    head = f"{grad.name} has shape {fmt_shape(got)}; {grad.tensor} is {fmt_shape(want)}"
    if len(got) == len(want) and all(w in (1, g) for g, w in zip(got, want, strict=True)):
        which = " and ".join(str(d) for d in broadcast_dims(got, want))
        return (f"{head}: {grad.tensor} was broadcast along dim {which} in the forward pass, "
                f"so sum the gradient over dim {which} with keepdim=True")
    if len(got) == len(want) - 1 and all(w in (1, g) for g, w in zip(got, want[1:], strict=True)) and want[0] == 1:
        return f"{head}: keep the summed dimension (keepdim=True)"
    if len(got) == 2 and tuple(got) == tuple(want)[::-1]:
        return f"{head}: it looks transposed; check the order of the matmul"
    return f"{head}: a gradient always has the shape of its tensor"


def compare(grad: Gradient, value: Value, truth: torch.Tensor, error: str | None, *,
            through_chain: bool = False) -> Check:
    """The cmp line for one gradient, plus a verdict and what to do.

    through_chain: the value was computed from the student's own upstream gradients, through
    a chain of float32 operations, so its rounding error grows with the gradient's size:
    atol is raised to rtol times the truth's largest entry (the correct solution's values
    drift up to ~1e-7 from autograd's on entries near 0, over plain allclose's atol 1e-8).
    """
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
    if torch.equal(value, truth) and bool(torch.isfinite(truth).all()):  # the commonest answer, in two ops
        return Check(Status.EXACT, "", 0.0, True, True, note)
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        kind = "NaN" if bool(torch.isnan(value).any()) else "inf"
        return Check(Status.WRONG, f"{grad.name} contains {kind} ({int((~finite).sum())} of "
                     f"{value.numel()} entries); look for a division by zero or a log of 0", note=note)
    difference = value - truth
    maxdiff = difference.abs().max().item()
    rtol, atol = grad.tolerance.rtol, grad.tolerance.atol
    if through_chain and truth.numel():
        atol = max(atol, rtol * float(truth.abs().max()))
    approx = bool(torch.allclose(value, truth, rtol=rtol, atol=atol))
    if approx:
        return Check(Status.APPROXIMATE, "", maxdiff, False, True, note)
    return Check(Status.WRONG, f"maxdiff {maxdiff:.1e} is over the tolerance "
                 f"(rtol {rtol:g}, atol {atol:.2g})", maxdiff, False, False, note, picture=(truth, difference))
