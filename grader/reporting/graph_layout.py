"""Where each part of a graph picture goes: plain geometry, in points, no drawing.

The loss is at the top and the graph grows down from it, the way the backward pass reads it:
each tensor sits in the layer of its longest way to the loss, so every forward edge points up.
Every edge's op label gets a slot of its own in the half-layer just below the tensor it
computes, and an edge that spans several layers a thin slot in each layer it crosses;
grader/reporting/layering.py orders and places the slots, so none overlaps another. Text
sizes come from `measure`, the drawing's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from grader.reporting.graph_marks import (
    LEGEND,
    START_HERE,
    EdgeMark,
    GraphMarks,
    TensorMark,
    edge_text,
    node_text,
    summary,
)
from grader.reporting.layering import Slot, order, place, rows_of

Measure = Callable[[str, float, bool], tuple[float, float]]  # text, size (pt), bold -> width, height (pt)

NAME_PT, DETAIL_PT, OP_PT, TITLE_PT, SUMMARY_PT, LEGEND_PT = 8.0, 6.5, 7.0, 9.5, 7.5, 6.5
PAD_X, PAD_Y = 6.0, 3.0  # inside a node's box
RING = 3.5  # room around a box for its marks
ROW_GAP = 4.0  # between layers and half-layers
MARGIN = 10.0
THROUGH_W = 3.0  # the width of a long edge's slot in a layer it crosses


@dataclass(frozen=True)
class Text:
    text: str
    x: float
    y: float
    size: float
    bold: bool = False
    left: bool = False  # x is where the text starts, not its centre


@dataclass(frozen=True)
class Box:
    x: float  # centre
    y: float
    w: float
    h: float

    @property
    def top(self) -> float:
        return self.y - self.h / 2

    @property
    def bottom(self) -> float:
        return self.y + self.h / 2


@dataclass(frozen=True)
class PlacedNode:
    mark: TensorMark
    box: Box
    lines: tuple[Text, ...]
    badge: Text | None  # START_HERE, beside the first wrong one


@dataclass(frozen=True)
class PlacedEdge:
    mark: EdgeMark
    points: tuple[tuple[float, float], ...]  # from the source's top up to the target's bottom
    label: Text
    label_box: Box


@dataclass(frozen=True)
class LegendEntry:
    key: str
    swatch: Box
    text: Text


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    title: tuple[Text, ...]
    legend: tuple[LegendEntry, ...]
    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]


def layers(marks: GraphMarks) -> dict[str, int]:
    """Each tensor's layer: its longest way to the loss, in forward operations (the loss is 0)."""
    consumers: dict[str, list[str]] = {t.name: [] for t in marks.tensors}
    for e in marks.edges:
        consumers[e.source].append(e.target)
    rank: dict[str, int] = {}

    def of(name: str) -> int:
        if name not in rank:
            rank[name] = max((of(c) + 1 for c in consumers[name]), default=0)
        return rank[name]

    for t in marks.tensors:
        of(t.name)
    return rank


def layout(marks: GraphMarks, measure: Measure, *, titled: bool = True) -> Layout:
    """The picture's geometry: title (unless a page around it has one), summary and key on top, then
    the graph, loss first."""
    rank = layers(marks)
    slots, chains = _slots(marks, rank, measure)
    rows = rows_of(slots)
    seen = _first_seen(marks)

    def start(s: Slot) -> tuple[int, int]:  # tensors as a walk from the loss meets them; edges by their ends
        if s.tensor is not None:
            return seen[s.tensor], 0
        assert s.edge is not None
        return seen[marks.edges[s.edge].source], seen[marks.edges[s.edge].target]

    order(rows, start)
    place(rows)
    graph_left = min(s.x - s.width / 2 for s in slots)
    graph_width = max(s.x + s.width / 2 for s in slots) - graph_left
    title = [(f"{marks.exercise}: {marks.title}", TITLE_PT, True)] if titled else []
    title.append((summary(marks), SUMMARY_PT, False))
    title_width = max(measure(t, size, bold)[0] for t, size, bold in title)
    width = max(graph_width, title_width, 360.0) + 2 * MARGIN
    shift = MARGIN + (width - 2 * MARGIN - graph_width) / 2 - graph_left
    for s in slots:
        s.x += shift
    top = MARGIN
    placed_title = []
    for text, size, bold in title:
        h = measure(text, size, bold)[1]
        placed_title.append(Text(text, MARGIN, top + h / 2, size, bold, left=True))
        top += h + 2
    legend, top = _legend(marks, measure, width, top + 4)
    centres = _row_centres(rows, top + ROW_GAP + 4)
    nodes = tuple(_node(marks.tensor(s.tensor), s, centres[s.row], measure) for s in slots if s.tensor is not None)
    by_name = {n.mark.name: n for n in nodes}
    edges = _edges(marks, chains, by_name, centres, measure)
    height = max(centres[r] + max((s.height for s in row), default=0) / 2 for r, row in enumerate(rows)) + MARGIN
    return Layout(width, height, tuple(placed_title), legend, nodes, edges)


def _node_size(mark: TensorMark, measure: Measure) -> tuple[float, float, float]:
    """The box's width and height, and the width of the slot (the box, its marks and its badge)."""
    first, second = node_text(mark)
    w1, h1 = measure(first, NAME_PT, True)
    w2, h2 = measure(second, DETAIL_PT, False)
    box_w, box_h = max(w1, w2) + 2 * PAD_X, h1 + h2 + 2 * PAD_Y
    slot_w = box_w + 2 * RING
    if mark.first_wrong:
        slot_w += measure(START_HERE, NAME_PT, True)[0] + RING
    return box_w, box_h, slot_w


def _slots(marks: GraphMarks, rank: dict[str, int],
           measure: Measure) -> tuple[list[Slot], list[list[Slot]]]:
    """A slot per tensor and, per edge, its label's slot and one per layer it crosses (bottom up)."""
    slots: list[Slot] = []
    by_name: dict[str, Slot] = {}
    for t in marks.tensors:
        _, box_h, slot_w = _node_size(t, measure)
        by_name[t.name] = Slot(2 * rank[t.name], slot_w, box_h + 2 * RING, 1.0, tensor=t.name)
        slots.append(by_name[t.name])
    chains = []
    for i, e in enumerate(marks.edges):
        source, target = by_name[e.source], by_name[e.target]
        label_w, label_h = measure(edge_text(e), OP_PT, False)
        chain = [Slot(r, THROUGH_W, 0.0, 4.0, edge=i) for r in range(source.row - 1, target.row + 1, -1)]
        chain.append(Slot(target.row + 1, label_w + 4, label_h + 2, 2.0, edge=i))
        below = source
        for slot in chain:
            below.up.append(slot)
            slot.down.append(below)
            below = slot
        below.up.append(target)
        target.down.append(below)
        slots += chain
        chains.append(chain)
    return slots, chains


def _first_seen(marks: GraphMarks) -> dict[str, int]:
    """Tensors in the order a walk from the loss through each line's inputs meets them."""
    inputs: dict[str, list[str]] = {t.name: [] for t in marks.tensors}
    for e in marks.edges:
        inputs[e.target].append(e.source)
    seen: dict[str, int] = {}
    todo = ["loss"] if "loss" in inputs else []
    todo += [t.name for t in marks.tensors]
    while todo:
        name = todo.pop(0)
        if name not in seen:
            seen[name] = len(seen)
            todo[:0] = inputs[name]
    return seen


def _row_centres(rows: list[list[Slot]], top: float) -> list[float]:
    centres = []
    for row in rows:
        h = max((s.height for s in row), default=0.0)
        centres.append(top + h / 2)
        top += h + ROW_GAP
    return centres


def _node(mark: TensorMark, slot: Slot, y: float, measure: Measure) -> PlacedNode:
    box_w, box_h, slot_w = _node_size(mark, measure)
    x = slot.x - slot_w / 2 + RING + box_w / 2  # the box at the slot's left, the badge after it
    first, second = node_text(mark)
    h1 = measure(first, NAME_PT, True)[1]
    h2 = measure(second, DETAIL_PT, False)[1]
    top = y - box_h / 2 + PAD_Y
    lines = (Text(first, x, top + h1 / 2, NAME_PT, True), Text(second, x, top + h1 + h2 / 2, DETAIL_PT))
    badge = None
    if mark.first_wrong:
        badge_w = measure(START_HERE, NAME_PT, True)[0]
        badge = Text(START_HERE, x + box_w / 2 + 2 * RING + badge_w / 2, y, NAME_PT, True)
    return PlacedNode(mark, Box(x, y, box_w, box_h), lines, badge)


def _spread(centre: float, width: float, count: int) -> list[float]:
    """Where `count` edges meet a box's side of `width`, around its centre."""
    if count <= 1:
        return [centre] * count
    step = min(10.0, (width - 8) / (count - 1))
    return [centre + (i - (count - 1) / 2) * step for i in range(count)]


def _edges(marks: GraphMarks, chains: list[list[Slot]], nodes: dict[str, PlacedNode], centres: list[float],
           measure: Measure) -> tuple[PlacedEdge, ...]:
    ends: dict[int, float] = {}
    starts: dict[int, float] = {}
    for name, node in nodes.items():
        into = sorted((i for i, e in enumerate(marks.edges) if e.target == name), key=lambda i: chains[i][-1].x)
        for i, x in zip(into, _spread(node.box.x, node.box.w, len(into)), strict=True):
            ends[i] = x
        out = sorted((i for i, e in enumerate(marks.edges) if e.source == name), key=lambda i: chains[i][0].x)
        for i, x in zip(out, _spread(node.box.x, node.box.w, len(out)), strict=True):
            starts[i] = x
    placed = []
    for i, (e, chain) in enumerate(zip(marks.edges, chains, strict=True)):
        source, target = nodes[e.source].box, nodes[e.target].box
        points = [(starts[i], source.top)]
        for slot in chain:
            y = centres[slot.row]
            points += [(slot.x, y + slot.height / 2), (slot.x, y - slot.height / 2)] if slot.height else [(slot.x, y)]
        points.append((ends[i], target.bottom))
        label = chain[-1]
        w, h = measure(edge_text(e), OP_PT, False)
        y = centres[label.row]
        placed.append(PlacedEdge(e, tuple(points), Text(edge_text(e), label.x, y, OP_PT),
                                 Box(label.x, y, w + 4, h + 2)))
    return tuple(placed)


def _legend(marks: GraphMarks, measure: Measure, width: float, top: float) -> tuple[tuple[LegendEntry, ...], float]:
    """The key (every verdict; a mark only where the picture has one), flowed into rows across the
    picture's width; and where the rows end."""
    present = {"first": marks.first_wrong is not None, "chained": any(t.chained_wrong for t in marks.tensors),
               "left-out": any(e.left_out for e in marks.edges)}
    swatch_w, swatch_h, gap = 14.0, 9.0, 12.0
    entries, x, row_h = [], MARGIN, 0.0
    for key, said in LEGEND:
        if not present.get(key, True):
            continue
        w, h = measure(said, LEGEND_PT, False)
        item_w = swatch_w + 4 + w
        if x > MARGIN and x + item_w > width - MARGIN:
            x, top = MARGIN, top + row_h + 4
            row_h = 0.0
        row_h = max(row_h, h, swatch_h)
        y = top + max(h, swatch_h) / 2
        entries.append(LegendEntry(key, Box(x + swatch_w / 2, y, swatch_w, swatch_h),
                                   Text(said, x + swatch_w + 4, y, LEGEND_PT, left=True)))
        x += item_w + gap
    return tuple(entries), top + row_h
