"""Say *why* a gradient is wrong: compare it with transformations of the truth.

Every label is a claim that can be checked: the student's value equals the truth
negated, scaled, transposed, shifted, summed over the wrong dimension, missing a
consumer's contribution (worked out from the forward graph with autograd, one consumer
at a time), or with repeated indices overwritten; or, read from the forward lines
(grader/judging/slips.py and shapes.py), times a forward tensor too many or too few,
without the forward pass's epsilon, or rearranged; and a matmul that raised names the
operand that needs .T. When no transformation explains the value to within float error, there is no
label: the grader never guesses.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from grader.courseware.cases import Case
from grader.judging.shapes import matmul_fix, rearranged
from grader.judging.slips import dropped_eps, factor

# Every label the grader can give; docs/students.md explains each (tests/test_docs.py holds the tables to it).
LABELS = ("sign", "scale", "bessel", "transpose", "shape", "missing-branch", "duplicate-indices",
          "aliasing", "hard-coded-batch", "offset", "not-finite", "coincidence", "factor", "eps", "permutation",
          "matmul")
# Labels given only where every case that is wrong (or raises) gets the same one.
ON_EVERY_CASE = frozenset({"factor", "eps", "permutation", "matmul"})
# Labels that explain the value on any batch size: where the first case passes and another fails, they say
# more than "hard-coded-batch". The forward pass's own values explain a factor, an eps, a permutation; a sign
# that is right on one case was right only because the truth there is ~0 (db1), and no batch size
# written as a number negates a gradient.
ANY_BATCH = frozenset({"factor", "eps", "permutation", "sign"})

# What to try, per label: said after the diagnosis.
ADVICE = {
    "sign": "check the sign of the local derivative (a minus sign in the forward pass flips it)",
    "scale": "look for a factor you dropped or added: a 1/n from a mean, a 2 from a square",
    "bessel": "divide by the count the forward pass divides by: n-1 where it applies Bessel's correction, n where not",
    "transpose": "match the shapes: the gradient of A @ B is dOut @ B.T for A and A.T @ dOut for B",
    "shape": "a tensor broadcast in the forward pass needs its gradient summed over that dimension",
    "missing-branch": "a tensor used twice gets a gradient from each use: add them up",
    "duplicate-indices": "table[ix] += x does not add up repeated indices; use a loop or index_add_",
    "aliasing": "take a .clone() before changing a gradient in place, or build a new tensor",
    "hard-coded-batch": "use n (or Xb.shape[0]) wherever the batch size appears",
    "offset": "an accumulator must start from zeros (torch.zeros_like), not ones or the input",
    "not-finite": "look for a division by zero or a log of 0; compute the local derivative directly",
    "coincidence": "compute it from the gradient flowing into its consumer, not from what you expect it to be",
    "factor": "write out the local derivative of that forward line: the power rule d/dx x**p = p * x**(p-1) "
              "takes one power off, and a product keeps every other factor",
    "eps": "write the forward line's epsilon wherever its expression appears in your formula: (x + eps), not x",
    "permutation": "undo the forward line's rearrangement exactly: view back to the tensor's shape (a view keeps "
                   "the numbers in their order), and transpose only what the forward pass transposed",
    "matmul": "match the shapes: for out = A @ B, the gradient of A is dout @ B.T and the gradient of B is "
              "A.T @ dout",
}


@dataclass(frozen=True)
class Diagnosis:
    label: str
    message: str
    # [missing-branch] on a tensor used twice: the forward edges (tensor, consumer) whose contribution is left out
    branches: tuple[tuple[str, str], ...] = ()


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 0.0) -> bool:
    """Equal up to float error, relative to the larger of the two."""
    if a.shape != b.shape:
        return False
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-30) if a.numel() else 1.0
    return float((a - b).abs().max()) <= 1e-4 * scale + atol if a.numel() else True


def fmt_shape(shape: torch.Size | tuple[int, ...]) -> str:
    dims = tuple(shape)
    return f"({dims[0]},)" if len(dims) == 1 else str(dims)


def same_but_size1(got: torch.Size | tuple[int, ...], want: torch.Size | tuple[int, ...]) -> bool:
    """Shapes that differ only by size-1 dimensions at the front or at the back: (64,) for (1, 64) (the
    lecture's own dbnmeani), (32,) for (32, 1). Never by where the others stand: (1, 27) is not (27, 1)."""
    def front(s: tuple[int, ...]) -> tuple[int, ...]:
        return s[next((i for i, d in enumerate(s) if d != 1), len(s)):]

    def back(s: tuple[int, ...]) -> tuple[int, ...]:
        return s[:len(s) - next((i for i, d in enumerate(reversed(s)) if d != 1), len(s))]

    g, w = tuple(got), tuple(want)
    return front(g) == front(w) or back(g) == back(w)


def broadcast_dims(full: torch.Size | tuple[int, ...], shape: torch.Size | tuple[int, ...]) -> list[int]:
    """The dimensions of `full` along which a tensor of `shape` is broadcast (from the right,
    as torch aligns them): where its gradient must be summed."""
    padded = (1,) * (len(full) - len(shape)) + tuple(shape)
    return [d for d in range(len(full)) if padded[d] == 1 and full[d] != 1]


def branch_contributions(case: Case, tensor: str) -> dict[str, torch.Tensor]:
    """What flows back into `tensor` through each of its consumers, from the truth."""
    graph = case.graph
    return {c: graph.contribution(case.namespace, tensor, c, case.truth[c]) for c in graph.consumers(tensor)
            if c in case.truth}


def name_factor(k: float, n: int) -> str | None:
    """A constant factor, named if it is one students produce: n, 1/n, 2, 1/2, ..."""
    named = {f"n = {n}": n, f"1/n = 1/{n}": 1 / n, "2": 2.0, "1/2": 0.5, f"n-1 = {n - 1}": n - 1,
             f"1/(n-1) = 1/{n - 1}": 1 / (n - 1), "-2": -2.0, "-1/2": -0.5, f"-n = -{n}": -n,
             f"-1/n = -1/{n}": -1 / n}
    for label, value in named.items():
        if abs(k - value) <= 1e-3 * abs(value):
            return label
    return None


def _broadcasts_to(got: torch.Size, want: torch.Size) -> bool:
    """Whether a tensor of shape `got` broadcasts, unchanged, to `want` (aligned from the right)."""
    return len(got) <= len(want) and all(g in (1, w) for g, w in zip(reversed(got), reversed(want), strict=False))


def diagnose_shape(tensor: str, value: torch.Tensor, truth: torch.Tensor, case: Case) -> Diagnosis | None:
    """A sum over a broadcast dimension that is missing, or done over the wrong dimension."""
    head = f"d{tensor} has shape {fmt_shape(value.shape)}; {tensor} is {fmt_shape(truth.shape)}"
    if _broadcasts_to(value.shape, truth.shape) and close(value.expand(truth.shape), truth):
        along = " and ".join(str(d) for d in broadcast_dims(truth.shape, value.shape))
        return Diagnosis("shape", f"{head}: its values are right, repeated along dim {along}, which is why the "
                         f"lecture's cmp passes it (it broadcasts); but a gradient has its tensor's shape: make it "
                         f"full-size, e.g. multiply by torch.ones_like({tensor})")
    if value.ndim == truth.ndim == 2 and value.shape == truth.T.shape and close(value.T, truth):
        return Diagnosis("transpose", f"{head}: it is the truth transposed; check the order of the matmul")
    if value.numel() == truth.numel() and close(value.reshape(truth.shape), truth):
        return Diagnosis("shape", f"{head}: its numbers are right and in the right order, so view it as "
                         f"{fmt_shape(truth.shape)}, {tensor}'s shape")
    uses = [c for c in case.graph.consumers(tensor) if c in case.truth]
    if len(uses) != 1 or case.truth[uses[0]].shape == truth.shape:
        return said("permutation", rearranged(tensor, value, truth))
    try:  # the gradient before the sum over broadcast dimensions
        full = case.graph.contribution(case.namespace, tensor, uses[0], case.truth[uses[0]], broadcast=True)
    except RuntimeError:
        return said("permutation", rearranged(tensor, value, truth))
    right = broadcast_dims(full.shape, truth.shape)
    where = " and ".join(str(d) for d in right)
    if close(value, full):
        return Diagnosis("shape", f"{head}: the sum over dim {where} is missing: {tensor} was broadcast along "
                         f"dim {where} in the forward pass, so sum the gradient over dim {where}"
                         + (" with keepdim=True" if truth.ndim == full.ndim else ""))
    for d in range(full.ndim):
        if d in right:
            continue
        for keep in (True, False):
            if close(value, full.sum(d, keepdim=keep)):
                return Diagnosis("shape", f"{head}: summed over dim {d}{' with keepdim=True' if keep else ''}; "
                                 f"{tensor} was broadcast along dim {where}, so sum over dim {where}"
                                 + (" with keepdim=True" if truth.ndim == full.ndim else ""))
    return said("permutation", rearranged(tensor, value, truth))


def said(label: str, words: str | None) -> Diagnosis | None:
    """A label for what a check of grader/judging/slips.py or shapes.py said, if it said anything."""
    return Diagnosis(label, words) if words is not None else None


def diagnose_error(tensor: str, error: str, case: Case) -> Diagnosis | None:
    """What the error of the line that computes d`tensor` says about its formula: for a matmul that
    raised on shapes, the operand that needs .T, from the forward line's matmul."""
    return said("matmul", matmul_fix(tensor, error, case))


def on_every_case(found: Diagnosis | None, others: list[Diagnosis | None]) -> Diagnosis | None:
    """`found`, unless its label is one given only on every case (ON_EVERY_CASE) and some case that
    failed the same way (`others`) did not get it."""
    if found is None or found.label not in ON_EVERY_CASE:
        return found
    return found if all(d is not None and d.label == found.label for d in others) else None


def diagnose_indices(tensor: str, value: torch.Tensor, truth: torch.Tensor, case: Case) -> Diagnosis | None:
    """An embedding table's gradient (dC, for emb = C[Xb]) with repeated indices overwritten: each row
    is one of its contributions, not their sum."""
    lookups = [(c, case.graph.indexes(tensor, c)) for c in case.graph.consumers(tensor)]
    lookup = [(c, index) for c, index in lookups if index is not None and c in case.truth]
    if len(lookups) != 1 or len(lookup) != 1 or truth.ndim != 2:
        return None
    consumer, index = lookup[0]
    indices = case.tensors[index]
    if indices.dtype not in (torch.int64, torch.int32):
        return None
    Xb, dlookup = indices.reshape(-1), case.truth[consumer].reshape(-1, truth.shape[1])
    counts = torch.bincount(Xb, minlength=truth.shape[0])
    repeated = (counts > 1).nonzero().flatten().tolist()
    once = counts <= 1
    if not repeated or not close(value[once], truth[once]):
        return None
    for row in repeated:
        candidates = dlookup[Xb == row]
        if not any(close(value[row], c) for c in candidates):
            return None
    return Diagnosis("duplicate-indices", f"rows of {tensor} picked more than once (like row {repeated[0]}, "
                     f"{int(counts[repeated[0]])} times in this batch) hold one contribution instead of their sum")


def fused_terms(tensor: str, case: Case) -> dict[str, tuple[torch.Tensor, str]] | None:
    """The terms of a fused gradient formula (the course's forward file says them: the lecture's
    exercises 2 and 3, and exercise 4's step), each with the fix to say when it is missing. Used
    only when they add up to autograd's truth here, so they are a checked decomposition, not a guess."""
    terms = case.forward.fused_terms(tensor, case.tensors, case.truth, int(case.tensors["Xb"].shape[0]))
    if not terms or tensor not in case.truth:
        return None
    total = sum((term for term, _ in terms.values()), torch.zeros_like(case.truth[tensor]))
    return terms if close(total, case.truth[tensor]) else None


def _explains(residual: torch.Tensor, candidate: torch.Tensor) -> bool:
    """The difference from the truth is this candidate, to 0.1% of it."""
    size = float(candidate.abs().max())
    return size > 0 and float((residual - candidate).abs().max()) <= 1e-3 * size


def diagnose_terms(value: torch.Tensor, truth: torch.Tensor, terms: dict[str, tuple[torch.Tensor, str]],
                   counts: dict[str, int]) -> Diagnosis | None:
    """A fused formula with one of its terms missing, of the wrong sign, or weighted with a count for the
    count minus one (Bessel's correction: n for n-1 in batchnorm; `counts` names the sizes to try, n first)."""
    residual = value - truth
    if float(residual.abs().max()) <= 1e-6 * max(float(truth.abs().max()), 1e-30):
        return None  # float noise
    for name, (term, fix) in terms.items():
        if _explains(residual, -term):
            return Diagnosis("missing-branch", f"{name} is missing from the formula{': ' + fix if fix else ''}")
        if _explains(residual, -2 * term):
            return Diagnosis("sign", f"{name} of the formula has the wrong sign")
        for m, c in counts.items():
            if c < 2:
                continue
            for k, which in (((c - 1) / c, f"({m}-1)/{m}"), (c / (c - 1), f"{m}/({m}-1)")):
                if _explains(residual, (k - 1) * term):
                    return Diagnosis("bessel", f"{name} carries {which} = {k:.4f} of its weight: {m} where the "
                                     f"forward pass has {m}-1 (Bessel's correction in the variance), or the other "
                                     "way round")
    return None


def diagnose(tensor: str, value: torch.Tensor, truth: torch.Tensor, case: Case, *,
             snapshot: torch.Tensor | None = None, assigned_line: int | None = None) -> Diagnosis | None:
    """The transformation of the truth that explains a wrong value, or None."""
    value = value.to(truth.dtype)
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        kind = "NaN" if bool(torch.isnan(value).any()) else "inf"
        return Diagnosis("not-finite", f"d{tensor} contains {kind} ({int((~finite).sum())} of {value.numel()} entries)")
    if value.shape != truth.shape:
        if same_but_size1(value.shape, truth.shape):
            value = value.reshape(truth.shape)
        else:
            return diagnose_shape(tensor, value, truth, case)
    n = int(case.tensors["Xb"].shape[0])

    def by_terms() -> Diagnosis | None:  # for a fused gradient, the last word; computed only when asked
        terms = fused_terms(tensor, case)
        if terms is None:
            return None
        sizes = {k: v for k, v in case.namespace.items() if type(v) is int and k not in ("n", "batch_size")}
        return diagnose_terms(value, truth, terms, {"n": n, **sizes})

    if close(value, truth):
        # Off by less than a whole-tensor label resolves; only a fused formula's term can explain it
        # (the Bessel factor on its variance term is a few hundredths of a small term), or a dropped epsilon.
        return by_terms() or said("eps", dropped_eps(tensor, value, truth, case))
    # Aliasing: right when last assigned, changed in place since (so the snapshot differs from the end value).
    if (snapshot is not None and snapshot.shape == truth.shape == value.shape
            and not torch.equal(snapshot.to(truth.dtype), value) and close(snapshot.to(truth.dtype), truth)):
        at = f" at line {assigned_line}" if assigned_line else ""
        return Diagnosis("aliasing", f"it was right when assigned{at}, then a later line changed it in place "
                         "(through another name that shares its memory?)")
    if truth.ndim == 2 and truth.shape[0] == truth.shape[1] and close(value, truth.T) and not close(truth, truth.T):
        return Diagnosis("transpose", "it is the truth transposed")
    if close(value, -truth):
        return Diagnosis("sign", "it is the truth with the opposite sign")
    norm2 = float((truth * truth).sum())
    if norm2 > 0:
        k = float((value * truth).sum()) / norm2
        if abs(k - 1) > 1e-3 and abs(k) > 1e-3 and close(value, k * truth):
            if abs(k - n / (n - 1)) <= 1e-3 * k or abs(k - (n - 1) / n) <= 1e-3 * k:
                which = "n/(n-1)" if k > 1 else "(n-1)/n"
                return Diagnosis("bessel", f"it is {which} = {k:.4f} times the truth: n where the forward "
                                 "pass has n-1, or the other way round")
            named = name_factor(k, n)
            return Diagnosis("scale", f"it is {named or format(k, '.4g')} times the truth")
    offset = float((value - truth).mean())
    # the constant must explain the miss, not just sit within float error of a value that is nearly right
    if (abs(offset) > 1e-6 * max(float(truth.abs().max()), 1e-30) and close(value, truth + offset)
            and float((value - truth - offset).abs().max()) <= 0.1 * float((value - truth).abs().max())):
        return Diagnosis("offset", f"it is the truth plus {offset:.4g} everywhere")
    branches = branch_contributions(case, tensor)
    if len(branches) >= 2:
        for size in range(1, len(branches)):
            for subset in itertools.combinations(branches, size):
                partial = sum((branches[c] for c in subset), torch.zeros_like(truth))
                if float(partial.norm()) > 1e-3 * float(truth.norm()) and close(value, partial):
                    missing = [c for c in branches if c not in subset]
                    return Diagnosis("missing-branch", f"{tensor} feeds {' and '.join(branches)}, but only "
                                     f"the path through {' and '.join(subset)} is counted: the contribution "
                                     f"through {' and '.join(missing)} is missing",
                                     tuple((tensor, c) for c in missing))
    return (diagnose_indices(tensor, value, truth, case) or by_terms()
            or said("eps", dropped_eps(tensor, value, truth, case))
            or said("factor", factor(tensor, value, truth, case))
            or said("permutation", rearranged(tensor, value, truth)))
