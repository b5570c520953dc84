"""What shapes explain: the truth's numbers in other places, and a matmul that raised on them.

- a rearrangement: the value holds the truth's numbers, in other places; which axes, when a
  view and a transpose of the truth explain it. Values that are nearly all equal say nothing.
- a matmul that raises on shapes: which operand needs .T, from the forward line's matmul.

Each returns the words to say (or None); grader/judging/diagnose.py gives them their labels.
"""

from __future__ import annotations

import ast
import itertools
import re

import torch

from grader.courseware.cases import Case
from grader.courseware.graph import Graph
from grader.judging.slips import REL, line_of, near

MOSTLY = 0.5  # values of which more than this share are one number are "nearly all equal"


def _mostly_one_value(truth: torch.Tensor) -> bool:
    step = REL * max(float(truth.abs().max()), 1e-30)
    _, counts = torch.unique(torch.round(truth / step), return_counts=True)
    return int(counts.max()) > MOSTLY * truth.numel()


def _dims(perm: tuple[int, ...]) -> str:
    moved = [d for d, p in enumerate(perm) if d != p]
    if len(moved) == 2:
        return f"dims {moved[0]} and {moved[1]} swapped"
    return f"its dims permuted as permute{perm}"


def shape_text(shape: tuple[int, ...]) -> str:
    return f"({shape[0]},)" if len(shape) == 1 else str(shape)


MOST_DIMS_PERMUTED = 4  # its orders are tried one by one: 4 dims are 24 of them, 12 would be 479 million


def rearranged(tensor: str, value: torch.Tensor, truth: torch.Tensor) -> str | None:
    """The truth's numbers in other places: a permute of the truth, or of the truth viewed in another
    order of its sizes (a view then a transpose for a plain view); or, failing those, the same sorted
    values. Nothing for values that are nearly all equal, whose sorted values say little."""
    if value.numel() != truth.numel() or value.numel() < 2 or _mostly_one_value(truth):
        return None
    if not near(value.flatten().sort().values, truth.flatten().sort().values):
        return None
    shape, want = tuple(value.shape), tuple(truth.shape)
    orders = itertools.permutations(range(len(shape))) if len(shape) <= MOST_DIMS_PERMUTED else iter(())
    for perm in orders:
        if perm == tuple(range(len(shape))):
            continue
        viewed = [0] * len(shape)
        for d, p in enumerate(perm):
            viewed[p] = shape[d]
        if not near(value, truth.reshape(viewed).permute(perm)):
            continue
        if tuple(viewed) == want:
            return f"it is the truth with {_dims(perm)}: {tensor} is {shape_text(want)}"
        return (f"it holds the truth's numbers viewed as {shape_text(tuple(viewed))}, then with {_dims(perm)}: a "
                f"view keeps the numbers in their order, so view straight to {shape_text(want)} ({tensor}'s shape) "
                "with no transpose")
    return "it holds the truth's numbers, but in other places (no transpose or permute of the truth puts them there)"


MATMUL_ERROR = re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")


def _matmul_of(expr: ast.expr) -> ast.BinOp | None:
    """The matmul a line computes, plus or minus other terms: `embcat @ W1 + b1`."""
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.MatMult):
        return expr
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Sub)):
        return _matmul_of(expr.left) or (_matmul_of(expr.right) if isinstance(expr.op, ast.Add) else None)
    return None


def matmul_fix(tensor: str, message: str, case: Case) -> str | None:
    """For a matmul that raised on shapes (torch's `mat1 and mat2 shapes cannot be multiplied (AxB and
    CxD)`): the forward line's matmul whose gradients have those shapes, and how its gradient is written."""
    found = MATMUL_ERROR.search(message)
    if found is None:
        return None
    a, b, c, d = (int(x) for x in found.groups())
    shapes = ((a, b), (c, d))
    graph, tensors = case.graph, case.tensors
    for mine in _nearest_first(graph, tensor):
        for out in graph.consumers(mine):
            mm = _matmul_of(graph.nodes[out].expression)
            if mm is None or not (isinstance(mm.left, ast.Name) and isinstance(mm.right, ast.Name)):
                continue
            left, right = mm.left.id, mm.right.id
            if mine not in (left, right) or left == right or not all(
                    n in tensors and tensors[n].ndim == 2 for n in (left, right)):
                continue
            other = right if mine == left else left
            names: dict[str, tuple[int, ...]] = {f"d{out}": (tensors[left].shape[0], tensors[right].shape[1]),
                                                 other: tuple(tensors[other].shape)}

            def called(shape: tuple[int, ...], names: dict[str, tuple[int, ...]] = names) -> list[str]:
                return [n + t for n, s in names.items() for t, s2 in (("", s), (".T", s[::-1])) if s2 == shape]

            first, second = called(shapes[0]), called(shapes[1])
            # the operands were the gradient of the matmul's result and its other factor, either transposed
            if not any({x.removesuffix(".T"), y.removesuffix(".T")} == set(names) for x in first for y in second):
                continue
            formula = f"d{out} @ {other}.T" if mine == left else f"{other}.T @ d{out}"
            wrote = f"you multiplied {first[0]} ({a}x{b}) by {second[0]} ({c}x{d}); " if len(first) == len(
                second) == 1 else ""
            return f"{wrote}from {line_of(graph, out)}, d{mine} = {formula}"
    return None


def _nearest_first(graph: Graph, tensor: str) -> list[str]:
    """`tensor`, then the tensors computed from it, nearest first."""
    order, todo = [tensor], [tensor]
    while todo:
        step = [c for t in todo for c in graph.consumers(t) if c not in order]
        step = list(dict.fromkeys(step))
        order += step
        todo = step
    return order
