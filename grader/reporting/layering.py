"""A layered drawing's order and positions (the classic method of Sugiyama et al.): slots in rows,
each linked to its neighbours in the rows above and below; no drawing, no text.

The order within each row comes from barycentre sweeps, keeping the ordering with the fewest
crossings. x positions then pull every slot towards its neighbours while keeping the order
and the gaps: per row, a weighted isotonic regression (pool adjacent violators), so slots can
touch but never overlap.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

NODE_GAP, SLOT_GAP = 12.0, 5.0  # between neighbours in a row: when one is a node; otherwise
SWEEPS, PLACEMENTS = 12, 40


@dataclass(eq=False)
class Slot:
    """One thing in one row: a node (`tensor`), or part of an edge: its label, or where it crosses a row."""

    row: int
    width: float
    height: float
    weight: float
    tensor: str | None = None
    edge: int | None = None
    up: list[Slot] = field(default_factory=list)
    down: list[Slot] = field(default_factory=list)
    x: float = 0.0
    order: float = 0.0


def rows_of(slots: list[Slot]) -> list[list[Slot]]:
    """The slots by row, each row in the order given."""
    rows: list[list[Slot]] = [[] for _ in range(max(s.row for s in slots) + 1)]
    for s in slots:
        rows[s.row].append(s)
    return rows


def crossings(rows: list[list[Slot]]) -> int:
    """How many pairs of links between neighbouring rows cross."""
    total = 0
    for row in rows[:-1]:
        pairs = [(a.order, b.order) for a in row for b in a.down]
        total += sum(1 for i, (a1, b1) in enumerate(pairs) for a2, b2 in pairs[i + 1:] if (a1 - a2) * (b1 - b2) < 0)
    return total


def order(rows: list[list[Slot]], start: Callable[[Slot], tuple[int, int]]) -> None:
    """Order each row by barycentre sweeps, down and up, from the order `start` gives; keep the
    ordering with the fewest crossings."""
    for row in rows:
        row.sort(key=start)
        _number(row)
    best, best_orders = crossings(rows), [list(r) for r in rows]
    for sweep in range(SWEEPS):
        downwards = sweep % 2 == 0
        sequence = range(1, len(rows)) if downwards else range(len(rows) - 2, -1, -1)
        for r in sequence:
            row = rows[r]
            centre = {id(s): _mean([n.order for n in (s.up if downwards else s.down)], s.order) for s in row}
            row.sort(key=lambda s: centre[id(s)])
            _number(row)
        now = crossings(rows)
        if now < best:
            best, best_orders = now, [list(r) for r in rows]
    for row, kept in zip(rows, best_orders, strict=True):
        row[:] = kept
        _number(row)


def _number(row: list[Slot]) -> None:
    for i, s in enumerate(row):
        s.order = float(i)


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def _gap(a: Slot, b: Slot) -> float:
    return a.width / 2 + b.width / 2 + (NODE_GAP if a.tensor or b.tensor else SLOT_GAP)


def place(rows: list[list[Slot]]) -> None:
    """x for every slot: each pulled towards its neighbours, in order, never closer than its gap."""
    for row in rows:
        x = 0.0
        for i, s in enumerate(row):
            x += _gap(row[i - 1], s) if i else 0.0
            s.x = x
        middle = (row[0].x + row[-1].x) / 2 if row else 0.0
        for s in row:
            s.x -= middle
    for sweep in range(PLACEMENTS):
        both = sweep >= PLACEMENTS // 2
        downwards = sweep % 2 == 0
        sequence = range(len(rows)) if downwards else range(len(rows) - 1, -1, -1)
        for r in sequence:
            row = rows[r]
            wanted = []
            for s in row:
                near = s.up + s.down if both else (s.up if downwards else s.down)
                wanted.append(_mean([n.x for n in near], s.x))
            for s, x in zip(row, isotonic(row, wanted), strict=True):
                s.x = x


def isotonic(row: list[Slot], wanted: list[float]) -> list[float]:
    """The x closest to `wanted` (weighted least squares) that keeps the row's order and gaps."""
    offsets = [0.0]
    for a, b in itertools.pairwise(row):
        offsets.append(offsets[-1] + _gap(a, b))
    blocks: list[list[float]] = []  # [value, weight, count], pooled adjacent violators
    for s, x, o in zip(row, wanted, offsets, strict=True):
        blocks.append([x - o, s.weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    out = []
    for value, _, count in blocks:
        out += [value] * int(count)
    return [v + o for v, o in zip(out, offsets, strict=True)]


