"""Slips the forward pass's own lines explain.

Each check is a claim about the whole value, made only where it holds to float error, and
each returns the words to say (or None); grader/judging/diagnose.py gives them their labels
(grader/judging/shapes.py holds the two that shapes explain: a rearrangement, a matmul).

- a factor: the value is the truth times (or divided by) a tensor of the forward pass, or a
  small power of one, broadcast and summed as the forward line broadcasts it. A tensor that
  is ~constant where it matters says nothing: no value could tell it from a constant.
- a dropped eps: the value is the truth with the forward lines' epsilon (a tiny literal added
  in a line, `var + 1e-5`, or an `eps=` argument) left out of the local derivative.
"""

from __future__ import annotations

import ast
import copy
import functools
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import CodeType

import torch

from grader.courseware.cases import Case
from grader.courseware.graph import GLOBALS, Graph

REL = 1e-4  # a claim holds to this share of the larger of the two values (as diagnose.close)
FLAT = 1e-2  # a factor varying by less than this share of itself is ~constant: it names nothing
POWERS = (1.0, -1.0, 2.0, -2.0, 0.5, -0.5)
EPS_MAX = 1e-3  # a literal at most this small, added in a forward line, is an epsilon
NOISE_SHARE = 0.1  # the eps-free truth explains the value when it is off by under this share of the truth's miss


def near(a: torch.Tensor, b: torch.Tensor, rel: float = REL) -> bool:
    """Equal to `rel` of the larger of the two, shapes and all."""
    if a.shape != b.shape:
        return False
    if not a.numel():
        return True
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-30)
    return float((a - b).abs().max()) <= rel * scale


def _segment(graph: Graph, expr: ast.expr) -> str:
    text = ast.get_source_segment(graph.source, expr) or ast.unparse(expr)
    return " ".join(text.split())


@functools.cache
def line_of(graph: Graph, name: str) -> str:
    """A forward line as the course wrote it, without its comment: `counts_sum_inv = counts_sum**-1`."""
    return f"{name} = {_segment(graph, graph.nodes[name].expression)}"


@dataclass(frozen=True)
class Piece:
    """A value a forward line reads or computes on the way: a name or a sub-expression."""

    text: str  # as the line writes it: counts_sum, bnvar + 1e-5
    node: str  # the node whose line it is in
    code: CodeType


@functools.cache
def pieces(graph: Graph, name: str) -> tuple[Piece, ...]:
    """The names a forward line reads, its node's own name, and its sub-expressions, each once."""
    node = graph.nodes[name]
    found: dict[str, CodeType] = {}
    for read in (*node.inputs, name):
        found.setdefault(read, compile(read, f"<{graph.where}: {name}>", "eval"))
    for sub in ast.walk(node.expression):
        if not isinstance(sub, ast.expr) or sub is node.expression or isinstance(sub, (ast.Name, ast.Constant,
                                                                                        ast.Slice)):
            continue
        text = _segment(graph, sub)
        if text in found:
            continue
        try:
            found[text] = compile(ast.Expression(sub), f"<{graph.where}: {name}>", "eval")
        except (SyntaxError, TypeError, ValueError):
            continue
    return tuple(Piece(text, name, code) for text, code in found.items())


# The pieces' values on the last few cases: every wrong gradient of a case asks for the same ones.
_VALUES: dict[int, tuple[Mapping[str, object], dict[Piece, torch.Tensor | None]]] = {}


def evaluated(found: tuple[Piece, ...], namespace: Mapping[str, object]) -> Iterator[tuple[Piece, torch.Tensor]]:
    """Each piece's value on a case (its namespace), where it is a finite float tensor."""
    held = _VALUES.get(id(namespace))
    if held is None or held[0] is not namespace:
        if len(_VALUES) >= 8:
            _VALUES.pop(next(iter(_VALUES)))
        held = _VALUES[id(namespace)] = (namespace, {})
    known = held[1]
    for piece in found:
        if piece not in known:
            known[piece] = _value_of(piece, namespace)
        value = known[piece]
        if value is not None:
            yield piece, value


def _value_of(piece: Piece, namespace: Mapping[str, object]) -> torch.Tensor | None:
    try:
        value = eval(piece.code, {**GLOBALS, **namespace})  # the course's own forward code
    except Exception:  # a comprehension's variable, a slice: not a value on its own
        return None
    if isinstance(value, torch.Tensor) and value.is_floating_point() and bool(torch.isfinite(value).all()):
        return value
    return None


def _power(t: torch.Tensor, k: float) -> torch.Tensor | None:
    if (k < 0 and bool((t == 0).any())) or (k != int(k) and bool((t <= 0).any())):
        return None
    return t**k


def _powers(t: torch.Tensor) -> Iterator[tuple[float, torch.Tensor]]:
    """t**k for each power k that is defined everywhere on t."""
    zero, positive = bool((t == 0).any()), bool((t > 0).all())
    for k in POWERS:
        if not ((k < 0 and zero) or (k != int(k) and not positive)):
            yield k, t**k


def _broadcasts(shape: torch.Size, to: torch.Size) -> bool:
    """Whether a tensor of `shape` broadcasts to `to` unchanged (aligned from the right, as torch does)."""
    return len(shape) <= len(to) and all(s in (1, t) for s, t in zip(reversed(shape), reversed(to), strict=False))


def _flat(factor: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether `factor` is ~constant on the entries where `weight` (the gradient it multiplies) matters."""
    big = weight.abs() > 1e-3 * float(weight.abs().max())
    entries = factor.expand(weight.shape)[big]
    if not entries.numel():
        return True
    return float(entries.max() - entries.min()) <= FLAT * float(entries.abs().max())


def _named(text: str) -> str:
    return text if text.isidentifier() else f"({text})"


def _factor_words(piece: Piece, k: float, sign: float, graph: Graph, *, through: str | None,
                  summed: list[int], branch: str | None) -> str:
    t = _named(piece.text)
    power = t if abs(k) == 1 else f"{t}**{abs(k):g}"
    how = f"{'times' if k > 0 else 'divided by'} {power}"
    if branch is not None:
        value = f"it is the truth with its contribution through {branch} {how}"
    elif summed:
        value = f"it is the truth with each term of its sum over dim {' and '.join(map(str, summed))} {how}"
    else:
        value = f"it is {'minus ' if sign < 0 else ''}the truth {how}"
    amount = {1.0: f"a factor {t}", 2.0: f"two factors {t}"}.get(abs(k), f"a factor {power}")
    wrong = "too many" if k > 0 else "missing"
    if through is not None:
        return f"{value}: the local derivative through {line_of(graph, through)} has {amount} {wrong}"
    where = line_of(graph, piece.node) if piece.text == piece.node else f"{t} comes in at {line_of(graph, piece.node)}"
    return f"{value}: your formula has {amount} {wrong} ({where})"


def factor(tensor: str, value: torch.Tensor, truth: torch.Tensor, case: Case) -> str | None:
    """The truth times (or divided by) a power of a forward tensor: on one consumer's contribution,
    before the sum over what that line broadcasts, with a tensor of that line; or on the whole
    gradient, with a tensor of its own line or of any line it flows back from."""
    graph, namespace = case.graph, case.namespace
    uses = [c for c in graph.consumers(tensor) if c in case.truth]
    best: tuple[float, str] | None = None

    def consider(candidate: torch.Tensor, f: torch.Tensor, weight: torch.Tensor, words: Callable[[], str]) -> None:
        nonlocal best
        if not bool(candidate.any()) or not near(value, candidate) or _flat(f, weight):
            return
        miss = float((value - candidate).abs().max())
        if best is None or miss < best[0]:
            best = (miss, words())

    parts = {c: graph.contribution(namespace, tensor, c, case.truth[c]) for c in uses}
    for c in uses:
        try:  # the contribution before the sum over the dimensions this line broadcasts the tensor along
            full = graph.contribution(namespace, tensor, c, case.truth[c], broadcast=True)
        except RuntimeError:
            full = parts[c]
        padded = (1,) * (full.ndim - truth.ndim) + tuple(truth.shape)
        summed = [d for d in range(full.ndim) if padded[d] == 1 and full.shape[d] != 1]
        rest = sum((parts[o] for o in uses if o != c), torch.zeros_like(truth))
        branch = c if len(uses) > 1 else None
        for piece, t in evaluated(pieces(graph, c), namespace):
            if not _broadcasts(t.shape, full.shape):
                continue
            for k, f in _powers(t):
                for sign in ((1.0,) if branch else (1.0, -1.0)):
                    consider(rest + sign * (full * f).sum_to_size(truth.shape), f, full,
                             functools.partial(_factor_words, piece, k, sign, graph, through=c, summed=summed,
                                               branch=branch))
    if best is not None:
        return best[1]
    # The whole gradient times a tensor of a line further on (a fused formula's common factor) or its own line.
    far = [n for n in sorted(graph.descendants(tensor), key=list(graph.nodes).index) if n not in uses]
    own = [tensor] if tensor in graph.nodes else []
    at = int(truth.abs().argmax())
    ratio = float(value.flatten()[at]) / float(truth.flatten()[at]) if float(truth.flatten()[at]) else 0.0
    for node in (*own, *far):
        for piece, t in evaluated(pieces(graph, node), namespace):
            if not _broadcasts(t.shape, truth.shape):
                continue
            probe = float(t.expand(truth.shape).flatten()[at])
            for k, sign in itertools.product(POWERS, (1.0, -1.0)):
                if probe == 0 or (probe < 0 and k != int(k)) or abs(sign * probe**k - ratio) > 1e-3 * abs(ratio):
                    continue  # off at the gradient's largest entry: no need to look further
                power = _power(t, k)
                if power is not None:
                    consider(sign * truth * power, power, truth, functools.partial(
                        _factor_words, piece, k, sign, graph, through=None, summed=[], branch=None))
    return best[1] if best is not None else None


@dataclass(frozen=True)
class Epsilon:
    """An epsilon a forward line adds: `bnvar_inv = (bnvar + 1e-5)**-0.5` adds 1e-5 to bnvar."""

    node: str
    text: str  # as written: 1e-5
    to: str  # what it is added to: bnvar


class _DropEps(ast.NodeTransformer):
    def __init__(self, graph: Graph, node: str) -> None:
        self.graph, self.node = graph, node
        self.found: list[Epsilon] = []

    def _tiny(self, expr: ast.expr) -> bool:
        return (isinstance(expr, ast.Constant) and type(expr.value) is float and 0 < abs(expr.value) <= EPS_MAX)

    def visit_BinOp(self, op: ast.BinOp) -> ast.expr:
        self.generic_visit(op)
        if isinstance(op.op, (ast.Add, ast.Sub)):
            for eps, other in ((op.right, op.left), (op.left, op.right)):
                if self._tiny(eps):
                    self.found.append(Epsilon(self.node, _segment(self.graph, eps), _segment(self.graph, other)))
                    assert isinstance(eps, ast.Constant)
                    eps.value = 0.0
        return op

    def visit_keyword(self, keyword: ast.keyword) -> ast.keyword:
        if keyword.arg == "eps" and self._tiny(keyword.value):
            self.found.append(Epsilon(self.node, _segment(self.graph, keyword.value), "its variance"))
            assert isinstance(keyword.value, ast.Constant)
            keyword.value.value = 0.0
        return keyword


@functools.cache
def without_eps(graph: Graph) -> tuple[Graph, dict[str, Epsilon]] | None:
    """The forward pass with every epsilon set to 0, and the epsilon of each line that has one."""
    lines, found = [], {}
    for name, node in graph.nodes.items():
        dropper = _DropEps(graph, name)
        expr = dropper.visit(copy.deepcopy(node.expression))
        lines.append(f"{name} = {ast.unparse(expr)}")
        if dropper.found:
            found[name] = dropper.found[0]
    if not found:
        return None
    return Graph("\n".join(lines), f"{graph.where}, without its epsilon"), found


def dropped_eps(tensor: str, value: torch.Tensor, truth: torch.Tensor, case: Case) -> str | None:
    """The truth with the epsilon left out of the local derivative: through a line that adds it, or
    with the value of such a line recomputed without it (`bnvar**-0.5` for bnvar_inv)."""
    plain = without_eps(case.graph)
    uses = [c for c in case.graph.consumers(tensor) if c in case.truth]
    if plain is None or not uses:
        return None
    graph0, found = plain
    involved = [e for e in found if e in uses or any(e in case.graph.inputs[c] for c in uses)]
    if not involved:
        return None
    namespace = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
             for k, v in case.namespace.items()}
    free = dict(namespace)
    for name in found:  # each line's value with its epsilon left out, from the true inputs
        free[name] = graph0.nodes[name]({**GLOBALS, **namespace})
    truth0 = sum(((graph0 if c in found else case.graph).contribution(free, tensor, c, case.truth[c].double())
                  for c in uses), torch.zeros_like(truth, dtype=torch.float64))
    mine = value.double()
    miss, miss0 = float((mine - truth.double()).abs().max()), float((mine - truth0).abs().max())
    if not (miss > 0 and miss0 <= NOISE_SHARE * miss and near(mine, truth0)):
        return None
    eps = found[involved[0]]
    return (f"it is the truth without the forward pass's epsilon: {line_of(case.graph, eps.node)} adds {eps.text} "
            f"to {eps.to}, and your formula leaves it out")
