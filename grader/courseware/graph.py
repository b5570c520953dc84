"""A forward pass as a graph of named nodes, read from the course's own code, and the backward
pieces it implies.

A course writes each forward pass as plain lines of code, `name = expression`, the way a
lecture writes it (the course's forward file, grader/courseware/forward.py). Each line is
one node: its name, the names it reads, and its expression compiled once. The grader uses
a graph three ways: to run the forward pass, to know which gradients are upstream of
which (for isolated verdicts), and to compute one consumer's contribution to a gradient
(for diagnoses and vector-Jacobian checks).
"""

from __future__ import annotations

import ast
import builtins
import math
from collections.abc import Mapping
from types import CodeType
from typing import Any

import torch
import torch.nn.functional as F

from grader.courseware.course import CourseError

Tensors = dict[str, torch.Tensor]
# What a forward line may use besides the values: the modules a lecture's code uses, and Python's builtins.
GLOBALS: dict[str, object] = {"torch": torch, "F": F, "math": math}
_NOT_VALUES = frozenset(GLOBALS) | frozenset(dir(builtins))


class GraphError(CourseError):
    """A forward pass's code is not a list of `name = expression` lines, or one of them fails."""


class Node:
    """One line of a forward pass: `name = expression`."""

    __slots__ = ("code", "expression", "inputs", "line", "name")

    def __init__(self, name: str, inputs: tuple[str, ...], code: CodeType, line: int, expression: ast.expr) -> None:
        self.name, self.inputs, self.code, self.line, self.expression = name, inputs, code, line, expression

    def __call__(self, values: dict[str, Any]) -> torch.Tensor:
        """The line's value; `values` (with GLOBALS in it) is the line's global namespace, so that a
        comprehension or lambda inside the expression sees the values too."""
        result: torch.Tensor = eval(self.code, values)  # the course's own forward line
        return result


def parse_nodes(source: str, where: str, first_line: int = 1) -> dict[str, Node]:
    """The nodes of a forward pass written as code, in order; GraphError (one sentence) if it is not
    a list of single assignments, each to a new name, the last one `loss`. `first_line` is the line of
    the file the code starts on, for messages."""
    def at(lineno: int | None) -> str:
        return f"{where}, line {first_line + (lineno or 1) - 1}"

    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise GraphError(f"{at(exc.lineno)}: {exc.msg}") from None
    nodes: dict[str, Node] = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            raise GraphError(f"{at(stmt.lineno)}: each line of a forward pass is `name = expression`")
        name = stmt.targets[0].id
        if name in nodes:
            raise GraphError(f"{at(stmt.lineno)}: {name} is computed twice; each node has one line")
        names = sorted((n for n in ast.walk(stmt.value) if isinstance(n, ast.Name)),
                       key=lambda n: (n.lineno, n.col_offset))  # in the order the line reads them
        bound = {n.id for n in names if isinstance(n.ctx, ast.Store)}  # a comprehension's own variables
        bound |= {a.arg for f in ast.walk(stmt.value) if isinstance(f, ast.Lambda)
                  for a in (*f.args.posonlyargs, *f.args.args, *f.args.kwonlyargs)}
        reads = dict.fromkeys(n.id for n in names if n.id not in bound)  # once each
        inputs = tuple(r for r in reads if r not in _NOT_VALUES or r in nodes)
        code = compile(ast.Expression(stmt.value), f"<{where}: {name}>", "eval")
        nodes[name] = Node(name, inputs, code, first_line + stmt.lineno - 1, stmt.value)
    if not nodes or "loss" not in nodes or list(nodes)[-1] != "loss":
        raise GraphError(f"{where}: the last line of a forward pass computes `loss`")
    return nodes


class Graph:
    """A forward pass as named nodes, in order; what the backward pass walks through.

    `source` is the code it was read from, as the course wrote it (the notebooks show it).
    """

    def __init__(self, source: str, where: str = "forward pass", first_line: int = 1) -> None:
        self.source = source.strip("\n")
        self.where = where
        self.nodes = parse_nodes(self.source, where, first_line)
        self.inputs: dict[str, tuple[str, ...]] = {name: node.inputs for name, node in self.nodes.items()}
        computed = set(self.nodes)
        # The names the lines read that no line computes: the parameters, the batch, n, the sizes.
        self.leaves = tuple(dict.fromkeys(i for ins in self.inputs.values() for i in ins if i not in computed))
        consumers: dict[str, list[str]] = {}
        for out, ins in self.inputs.items():
            for name in ins:
                consumers.setdefault(name, []).append(out)
        self._consumers = {name: tuple(outs) for name, outs in consumers.items()}
        self._descendants: dict[str, frozenset[str]] = {}

    def forward(self, params: Tensors, Xb: torch.Tensor, Yb: torch.Tensor,
                sizes: Mapping[str, int] | None = None) -> Tensors:
        """Every intermediate of the forward pass, by name."""
        n = int(Xb.shape[0])
        v: dict[str, Any] = {**GLOBALS, **(sizes or {}), "n": n, "batch_size": n, **params, "Xb": Xb, "Yb": Yb}
        out: Tensors = {}
        for name, node in self.nodes.items():
            try:
                v[name] = out[name] = node(v)
            except Exception as exc:  # the course's own line: its author needs to know which, and why
                raise GraphError(f"the forward pass failed at {name} ({self.where}, line {node.line}): "
                                 f"{type(exc).__name__}: {exc}") from None
        return out

    def consumers(self, tensor: str) -> tuple[str, ...]:
        """The tensors computed directly from `tensor`."""
        return self._consumers.get(tensor, ())

    def descendants(self, tensor: str) -> frozenset[str]:
        """Every tensor that depends on `tensor`: its gradient flows back through these."""
        found = self._descendants.get(tensor)
        if found is None:
            seen: set[str] = set()
            todo = list(self.consumers(tensor))
            while todo:
                t = todo.pop()
                if t not in seen:
                    seen.add(t)
                    todo.extend(self.consumers(t))
            found = self._descendants[tensor] = frozenset(seen)  # asked per gradient, per case, per grading
        return found

    def indexes(self, tensor: str, consumer: str) -> str | None:
        """The index tensor's name when `consumer` is `tensor[index]` (an embedding lookup), else None."""
        expr = self.nodes[consumer].expression
        if (isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Name) and expr.value.id == tensor
                and isinstance(expr.slice, ast.Name)):
            return expr.slice.id
        return None

    def _line_inputs(self, values: Mapping[str, object], consumer: str) -> dict[str, Any]:
        """What `consumer`'s line reads, out of `values`, detached, with GLOBALS: its namespace."""
        return {**GLOBALS, **{k: (v.detach() if isinstance(v, torch.Tensor) else v)
                              for k, v in ((k, values[k]) for k in self.inputs[consumer])}}

    def contributions(self, values: Mapping[str, object], edges: Mapping[str, tuple[str, ...]],
                      upstream: Mapping[str, torch.Tensor]) -> dict[tuple[str, str], torch.Tensor]:
        """`contribution` for many edges at once: for each consumer in `edges`, what flows back into each
        of the tensors listed for it, given `upstream[consumer]` as d loss / d consumer; keyed (tensor,
        consumer). Each consumer's line runs once, and one backward pass serves every edge. Every edge
        has a leaf of its own, so each result is the one `contribution` gives for that edge alone."""
        leaves: dict[tuple[str, str], torch.Tensor] = {}
        total: torch.Tensor | None = None
        with torch.enable_grad():
            for consumer, tensors in edges.items():
                inputs = self._line_inputs(values, consumer)
                for tensor in tensors:
                    leaf = inputs[tensor]
                    assert isinstance(leaf, torch.Tensor)
                    inputs[tensor] = leaves[(tensor, consumer)] = leaf.clone().requires_grad_(True)
                share = (self.nodes[consumer](inputs) * upstream[consumer]).sum()
                total = share if total is None else total + share
            if total is not None:
                total.backward()  # type: ignore[no-untyped-call]
        out = {}
        for edge, leaf in leaves.items():
            assert leaf.grad is not None
            out[edge] = leaf.grad
        return out

    def contribution(self, values: Mapping[str, object], tensor: str, consumer: str, upstream: torch.Tensor,
                     *, broadcast: bool = False) -> torch.Tensor:
        """What flows back into `tensor` through `consumer` alone, given d loss / d consumer.

        `values` holds what the consumer's line reads (a case's `namespace`). With broadcast=True,
        `tensor` is first expanded to the consumer's shape, so the result is the gradient
        before the sum over broadcast dimensions.
        """
        inputs = self._line_inputs(values, consumer)
        leaf = inputs[tensor]
        assert isinstance(leaf, torch.Tensor)
        leaf = leaf.clone()
        if broadcast:
            leaf = leaf.expand(upstream.shape).clone()
        leaf.requires_grad_(True)
        inputs[tensor] = leaf
        with torch.enable_grad():
            out = self.nodes[consumer](inputs)
            # <out, upstream> backpropagated from a scalar: handing torch a gradient tensor
            # (backward(upstream), autograd.grad) imports sympy on first use, ~0.4 s.
            (out * upstream).sum().backward()  # type: ignore[no-untyped-call]
        assert leaf.grad is not None
        return leaf.grad
