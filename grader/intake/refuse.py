"""Statements refused one at a time: each top-level statement a rule refuses is left out on its own
(LeftOut) and its lines blanked, so one bad line costs only what it touches and the child compiles
the same program the parent judges. Which statements break the rules is the caller's to say (the
policy: grader/confined/policy.py).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence

from grader.intake.submission import LeftOut, Program, assigned_names, compile_program

Refusals = Callable[[ast.stmt], Sequence[str]]  # why a top-level statement is refused, the first said; none: it runs


def refuse_by_statement(program: Program, refusals: Refusals) -> Program:
    """The program without the top-level statements that `refusals` has a reason against, each left out
    on its own (LeftOut): one autograd read does not cost the other gradients."""
    if program.syntax_error is not None:
        return program
    lines = program.source.split("\n")
    nodes = ast.parse(program.source).body
    refused: list[LeftOut] = []
    blanked: set[int] = set()
    refused_nodes: set[int] = set()
    for i, node in enumerate(nodes):
        reasons = refusals(node)
        if reasons:
            refused_nodes.add(i)
            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            refused.append(LeftOut(program.where(node.lineno), assigned_names(node),
                                   f"not run: {reasons[0]}{more}"))
            blanked |= set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    if not refused:
        return program
    for i, node in enumerate(nodes):  # a statement sharing a line with a refused one goes with it, and is said to
        span = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        if span & blanked and i not in refused_nodes:
            refused.append(LeftOut(program.where(node.lineno), assigned_names(node),
                                   "not run: it shares its line with a statement that was refused"))
    for lineno in blanked:
        lines[lineno - 1] = ""
    return compile_program("\n".join(lines), program.path, origins=program.origins, notes=program.notes,
                           left_out=(*program.left_out, *refused))


def left_out_note(program: Program) -> tuple[str, ...]:
    """Said once: which lines were left out, and why."""
    if not program.left_out:
        return ()
    lines = "; ".join(f"{lo.where.described} ({lo.reason})" for lo in program.left_out)
    them = "them" if len(program.left_out) > 1 else "it"
    return (f"left out, each on its own, and everything else graded without {them}: {lines}",)
