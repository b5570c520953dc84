"""What a picture of the forward graph says: each tensor with its gradient's verdict, each forward
operation with the op its line writes, and where to look first. A Report and the course's Graph
in, plain values out; no drawing, no grading (grader/reporting/graph_layout.py places them,
grader/reporting/graph_picture.py draws them).

The op on an edge is read from the forward line's code: what the line does to that input on its
way to the result (`@`, `+`, `tanh`, `sum(1)`, `[Xb]`, `**-1`, `exp()`), up to where another
tensor joins it.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grader.judging.results import GradientResult, Report, Status

if TYPE_CHECKING:
    from grader.courseware.graph import Graph

MAX_OP = 26  # characters of an op label; a longer one ends in "…"
OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.MatMult: "@", ast.Pow: "**",
             ast.FloorDiv: "//", ast.Mod: "%"}
PRECEDENCE = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2, ast.MatMult: 2, ast.FloorDiv: 2, ast.Mod: 2,
              ast.Pow: 3}
FAILED = (Status.WRONG, Status.ERROR)  # what "the first wrong gradient" looks for


@dataclass(frozen=True)
class TensorMark:
    """One tensor of the forward pass and what its gradient's verdict says about it."""

    name: str
    shape: tuple[int, ...]
    gradient: GradientResult | None  # None: the exercise grades no gradient of it
    first_wrong: bool = False  # the first wrong gradient in backprop order: where to look first

    @property
    def chained_wrong(self) -> bool:
        """Right on its own, wrong as written: a gradient it is computed from is wrong."""
        g = self.gradient
        return g is not None and g.passed and not g.chained.passed


@dataclass(frozen=True)
class EdgeMark:
    """One forward operation: `source` is read by the line that computes `target`."""

    source: str
    target: str
    op: str
    left_out: bool = False  # a [missing-branch] diagnosis found this branch's contribution left out


@dataclass(frozen=True)
class GraphMarks:
    exercise: str
    title: str
    tensors: tuple[TensorMark, ...]  # the leaves (parameters, the batch), then the nodes, in the file's order
    edges: tuple[EdgeMark, ...]
    passed: int  # gradients right
    graded: int  # gradients graded
    first_wrong: GradientResult | None
    first_steps: int = 0  # how far the first wrong gradient's tensor is from the loss

    def tensor(self, name: str) -> TensorMark:
        return next(t for t in self.tensors if t.name == name)


GLYPHS = {Status.EXACT: "✓", Status.APPROXIMATE: "≈", Status.WRONG: "✗", Status.MISSING: "?", Status.ERROR: "!"}
# The picture's key: (what the swatch is drawn as, what it says).
LEGEND = (("exact", "✓ exact"), ("approximate", "≈ approximate"), ("wrong", "✗ wrong"),
          ("missing", "? missing"), ("error", "! error"), ("neutral", "no graded gradient"),
          ("first", "first wrong from the loss"), ("chained", "right alone, wrong chained"),
          ("left-out", "branch left out [missing-branch]"))
START_HERE = "◀ start here"
LEFT_OUT = "✗ left out"


def node_text(mark: TensorMark) -> tuple[str, str]:
    """A tensor's two lines: its verdict's glyph and name; its shape, diagnosis and chained mark."""
    g = mark.gradient
    dims = [str(d) for d in mark.shape]
    shape = "scalar" if not dims else f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"
    if g is None:
        return mark.name, shape
    extra = f" [{g.diagnosis}]" if g.diagnosis else ""
    extra += " · chained ✗" if mark.chained_wrong else ""
    return f"{GLYPHS[g.status]} {mark.name}", shape + extra


def edge_text(edge: EdgeMark) -> str:
    return f"{edge.op}  {LEFT_OUT}" if edge.left_out else edge.op


def summary(marks: GraphMarks) -> str:
    """The line under the picture's title."""
    said = f"{marks.passed}/{marks.graded} gradients right"
    if marks.first_wrong is not None:
        steps = f", {marks.first_steps} step{'s' if marks.first_steps != 1 else ''} from it"
        said += f" · the first wrong, going back from the loss: {marks.first_wrong.name}{steps}"
    return said


def steps_from_loss(graph: Graph, tensor: str) -> int:
    """How many forward operations lie between `tensor` and the loss, on the shortest way."""
    steps, frontier, seen = 0, {tensor}, {tensor}
    while frontier and "loss" not in frontier:
        frontier = {c for t in frontier for c in graph.consumers(t)} - seen
        seen |= frontier
        steps += 1
    return steps


def first_wrong(report: Report, graph: Graph) -> GradientResult | None:
    """The wrong (or failing) gradient the backward pass reaches first, going from the loss: no
    other failing gradient lies between it and the loss. Ties go to the report's order."""
    failing = [(len(graph.descendants(g.tensor)), i, g) for i, g in enumerate(report.gradients) if g.status in FAILED]
    return min(failing, key=lambda t: (t[0], t[1]))[2] if failing else None


def first_wrong_line(report: Report, graph: Graph) -> str | None:
    """`the first wrong gradient, going backwards from the loss, is dprobs (line 15), 2 steps from the
    loss: start there`; None when nothing is wrong."""
    g = first_wrong(report, graph)
    if g is None:
        return None
    steps = steps_from_loss(graph, g.tensor)
    # A line number says where only in a .py; a notebook's cells say it in the gradient's message.
    where = f" (line {g.line})" if g.line is not None and report.submission.endswith(".py") else ""
    return (f"the first wrong gradient, going backwards from the loss, is {g.name}{where}, {steps} "
            f"step{'s' if steps != 1 else ''} from the loss: start there")


def graph_marks(report: Report, graph: Graph, shapes: Mapping[str, tuple[int, ...]]) -> GraphMarks:
    """The tensors (every node, and each leaf that is a tensor in `shapes`: not n or a size) and the
    edges between them, marked with the report's verdicts."""
    by_tensor = {g.tensor: g for g in report.gradients}
    first = first_wrong(report, graph)
    names = [leaf for leaf in graph.leaves if leaf in shapes] + list(graph.nodes)
    tensors = tuple(TensorMark(name, tuple(shapes.get(name, ())), by_tensor.get(name),
                               first is not None and first.tensor == name) for name in names)
    left_out = {edge for g in report.gradients if g.diagnosis == "missing-branch" for edge in g.missing_branches}
    edges = tuple(EdgeMark(source, name, op_label(graph, name, source, set(names)), (source, name) in left_out)
                  for name, node in graph.nodes.items() for source in node.inputs if source in names)
    return GraphMarks(report.exercise, report.title, tensors, edges, sum(g.passed for g in report.gradients),
                      len(report.gradients), first, steps_from_loss(graph, first.tensor) if first else 0)


def op_label(graph: Graph, target: str, source: str, tensors: set[str]) -> str:
    """What the line computing `target` does to `source`: its operations on `source` alone, then the one
    where another of `tensors` joins (`@` for `embcat` in `embcat @ W1 + b1`), written as the line
    writes them, keyword arguments left out; `index` when `source` only picks entries (`Xb` in `C[Xb]`)."""
    expression = graph.nodes[target].expression
    if source not in _names_outside_indexes(expression):
        return "index"
    text, _ = _render(expression, source, tensors, graph.source)
    text = text or "="
    return text if len(text) <= MAX_OP else text[:MAX_OP - 1] + "…"


def _names(e: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(e) if isinstance(n, ast.Name)}


def _names_outside_indexes(e: ast.AST) -> set[str]:
    """The names `e` reads other than inside a subscript's index (`Xb` in `C[Xb]` is one there)."""
    if isinstance(e, ast.Name):
        return {e.id}
    children = [e.value] if isinstance(e, ast.Subscript) else list(ast.iter_child_nodes(e))
    return set().union(*(_names_outside_indexes(c) for c in children))


def _code(e: ast.AST, source: str) -> str:
    return ast.get_source_segment(source, e) or ast.unparse(e)


def _render(e: ast.expr, x: str, tensors: set[str], source: str) -> tuple[str, bool]:
    """`e` as it acts on `x`, with `x` itself left out; and whether another tensor has joined it yet."""
    if isinstance(e, ast.Name) and e.id == x:
        return "", False
    if isinstance(e, ast.Subscript) and x in _names(e.value):
        inner, joined = _render(e.value, x, tensors, source)
        return f"{inner}[{_code(e.slice, source)}]", joined or bool(_names(e.slice) & tensors)
    if isinstance(e, ast.Attribute):
        inner, joined = _render(e.value, x, tensors, source)
        return f"{inner}.{e.attr}" if inner else e.attr, joined
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and x in _names(e.func.value):
        inner, joined = _render(e.func.value, x, tensors, source)
        call = f"{e.func.attr}({', '.join(_code(a, source) for a in e.args)})"
        return f"{inner}.{call}" if inner else call, joined
    if isinstance(e, ast.Call):  # a function of x: torch.tanh(hpreact), F.cross_entropy(logits, Yb)
        name = e.func.attr if isinstance(e.func, ast.Attribute) else _code(e.func, source)
        mine = [a for a in e.args if x in _names(a)]
        inner, joined = _render(mine[0], x, tensors, source) if mine else ("", False)
        others = any(_names(a) & (tensors - {x}) for a in e.args if a not in mine)
        return (f"{name}({inner})" if inner else name), joined or others
    if isinstance(e, ast.BinOp) and type(e.op) in OPERATORS:
        return _render_binop(e, x, tensors, source)
    if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
        inner, joined = _render(e.operand, x, tensors, source)
        return f"-{inner}", joined
    return _code(e, source), True


def _render_binop(e: ast.BinOp, x: str, tensors: set[str], source: str) -> tuple[str, bool]:
    sym, prec = OPERATORS[type(e.op)], PRECEDENCE[type(e.op)]
    parts, joined, combines = [], False, False
    for side in (e.left, e.right):
        if x in _names(side):
            text, side_joined = _render(side, x, tensors, source)
            joined = joined or side_joined
            if isinstance(side, ast.BinOp) and PRECEDENCE.get(type(side.op), 9) < prec and text and not side_joined:
                text = f"({text})"
            parts.append(text)
        elif _names(side) & tensors:
            parts.append("")  # another tensor joins here: the op says how
            combines = True
        else:
            parts.append(_code(side, source))
    if joined and combines:
        return next(p for p, s in zip(parts, (e.left, e.right), strict=True) if x in _names(s)), True
    if sym == "**":
        return f"{parts[0]}**{parts[1]}", joined or combines
    return " ".join(p for p in (parts[0], sym, parts[1]) if p), joined or combines
