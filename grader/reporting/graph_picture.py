"""The forward graph, drawn: every tensor coloured by its gradient's verdict. A renderer: a Report and
the course's Graph (with the tensors' shapes) in, SVG or PNG out, no grading logic.

Drawn with matplotlib alone (a dependency already, with wheels everywhere the grader runs), laid
out by grader/reporting/graph_layout.py. Colours are Okabe and Ito's, safe for colour-blind
readers, and every verdict is said twice more: by a glyph before the name (✓ ≈ ✗ ? !) and by
the box's border (thin, thick, dashed, dotted), so the picture reads in grey too. SVG keeps its
text as text, so a browser can search it.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from grader.judging.results import Report, Status
from grader.reporting.graph_layout import Box, Layout, PlacedEdge, PlacedNode, Text, layout
from grader.reporting.graph_marks import GraphMarks, graph_marks

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from grader.courseware.graph import Graph

SUFFIXES = {".svg": "svg", ".png": "png"}
PNG_DPI = 110

# Okabe-Ito: bluish green, sky blue, blue, vermillion, orange, reddish purple; light fills keep text legible.
VERMILLION, GREEN, BLUE, ORANGE, PURPLE, GREY = "#D55E00", "#009E73", "#0072B2", "#E69F00", "#CC79A7", "#8c8c8c"
# key -> fill, border colour, border width, border style, rounded
STYLES: dict[str, tuple[str, str, float, Any, bool]] = {
    "exact": ("#c9ecdf", GREEN, 1.0, "solid", True),
    "approximate": ("#d5ebf8", BLUE, 1.0, "solid", True),
    "wrong": ("#f7c6a5", VERMILLION, 2.6, "solid", True),
    "missing": ("#ffffff", ORANGE, 1.4, (0, (3.0, 2.0)), True),
    "error": ("#f1d4e5", PURPLE, 2.6, (0, (1.0, 1.2)), True),
    "neutral": ("#eeeeee", GREY, 0.8, "solid", False),
}
EDGE, EDGE_LEFT_OUT = "#4d4d4d", VERMILLION


def style_key(status: Status | None) -> str:
    """Which of STYLES a tensor is drawn in: its gradient's verdict, or neutral without one."""
    return "neutral" if status is None else status.value


@functools.cache
def _renderer() -> Any:
    from matplotlib.backends.backend_agg import RendererAgg  # noqa: PLC0415 - matplotlib only when drawing

    return RendererAgg(1, 1, 72)  # type: ignore[no-untyped-call]  # 72 dpi: a pixel is a point


@functools.lru_cache(maxsize=4096)
def measure(text: str, size: float, bold: bool) -> tuple[float, float]:
    """A line's width and height in points, as matplotlib will draw it (height as for "lp": a full line)."""
    from matplotlib.font_manager import FontProperties  # noqa: PLC0415

    prop = FontProperties(size=size, weight="bold" if bold else "normal")
    w, h, _ = _renderer().get_text_width_height_descent(text, prop, ismath=False)
    _, lp, _ = _renderer().get_text_width_height_descent("lp", prop, ismath=False)
    return float(w), float(max(h, lp)) * 1.15


def graph_figure(marks: GraphMarks, *, titled: bool = True) -> Figure:
    """The picture as a matplotlib Figure (one point per unit), laid out and drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    placed = layout(marks, measure, titled=titled)
    fig = Figure(figsize=(placed.width / 72, placed.height / 72), dpi=72)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, placed.width)
    ax.set_ylim(placed.height, 0)
    ax.set_axis_off()
    for edge in placed.edges:
        _draw_edge(ax, edge)
    for node in placed.nodes:
        _draw_node(ax, node)
    _draw_key(ax, placed)
    return fig


def graph_picture(report: Report, graph: Graph, shapes: Mapping[str, tuple[int, ...]], fmt: str = "svg", *,
                  titled: bool = True) -> bytes:
    """The report's verdicts on the graph, as SVG or PNG bytes; `titled`: with the exercise's title on top."""
    import matplotlib  # noqa: PLC0415

    fig = graph_figure(graph_marks(report, graph, shapes), titled=titled)
    buffer = io.BytesIO()
    # Text stays text; ids are the same on every run of one exercise (and differ between exercises).
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"ninja-{report.exercise}"}):
        fig.savefig(buffer, format=fmt, dpi=PNG_DPI, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def graph_html(report: Report, graph: Graph, shapes: Mapping[str, tuple[int, ...]]) -> str:
    """The picture as inline SVG for an HTML page, under the page's own title: it needs no side file, its
    text can be searched, and it folds away (a <details> block) to get to the table."""
    svg = graph_picture(report, graph, shapes, "svg", titled=False).decode()
    svg = svg[svg.index("<svg"):]  # without the XML prolog and doctype, which HTML does not take
    return ("<details open class='ninja-graph' style='margin:0 0 1em 0'><summary>The forward graph, the loss "
            "at the top: each tensor coloured by its gradient's verdict (click to fold)</summary>"
            f"<div style='max-width:100%;overflow-x:auto'>{svg}</div></details>")


def _patch(ax: Any, box: Box, key: str, *, grow: float = 0.0, **overrides: Any) -> None:
    from matplotlib.patches import FancyBboxPatch  # noqa: PLC0415

    fill, colour, width, style, rounded = STYLES[key]
    options = {"facecolor": fill, "edgecolor": colour, "linewidth": width, "linestyle": style, **overrides}
    ax.add_patch(FancyBboxPatch((box.x - box.w / 2 - grow, box.y - box.h / 2 - grow), box.w + 2 * grow,
                                box.h + 2 * grow, boxstyle="round,pad=0,rounding_size=4" if rounded else
                                "square,pad=0", clip_on=False, **options))


def _text(ax: Any, t: Text, **options: Any) -> None:
    ax.text(t.x, t.y, t.text, fontsize=t.size, fontweight="bold" if t.bold else "normal",
            ha="left" if t.left else "center",
            va="center", clip_on=False, parse_math=False, **options)


def _draw_node(ax: Any, node: PlacedNode) -> None:
    g = node.mark.gradient
    key = style_key(g.status if g else None)
    if node.mark.first_wrong:
        _patch(ax, node.box, key, grow=3.2, facecolor="none", edgecolor="black", linewidth=1.6, linestyle="solid")
    elif node.mark.chained_wrong:
        _patch(ax, node.box, key, grow=3.0, facecolor="none", edgecolor=VERMILLION, linewidth=1.1,
               linestyle=(0, (2.5, 1.5)))
    _patch(ax, node.box, key)
    for line in node.lines:
        _text(ax, line, color="black")
    if node.badge is not None:
        _text(ax, node.badge, color="black")


def _draw_edge(ax: Any, edge: PlacedEdge) -> None:
    from matplotlib.patches import FancyArrowPatch  # noqa: PLC0415
    from matplotlib.path import Path  # noqa: PLC0415

    vertices, codes = [edge.points[0]], [Path.MOVETO]
    for (x0, y0), (x1, y1) in zip(edge.points, edge.points[1:], strict=False):
        half = (y1 - y0) / 2  # vertical at both ends: a smooth bend between slots
        vertices += [(x0, y0 + half), (x1, y1 - half), (x1, y1)]
        codes += [Path.CURVE4] * 3
    left_out = edge.mark.left_out
    ax.add_patch(FancyArrowPatch(path=Path(vertices, codes), arrowstyle="-|>", mutation_scale=7,
                                 color=EDGE_LEFT_OUT if left_out else EDGE, linewidth=1.8 if left_out else 0.8,
                                 linestyle=(0, (4.0, 2.0)) if left_out else "solid", shrinkA=0, shrinkB=0,
                                 clip_on=False))
    _patch(ax, edge.label_box, "neutral", facecolor="white", edgecolor=EDGE_LEFT_OUT if left_out else "none",
           linewidth=0.8)
    _text(ax, edge.label, color=EDGE_LEFT_OUT if left_out else "#222222")


def _draw_key(ax: Any, placed: Layout) -> None:
    for line in placed.title:
        _text(ax, line, color="black")
    for entry in placed.legend:
        if entry.key in STYLES:
            _patch(ax, entry.swatch, entry.key)
        elif entry.key == "first":
            _patch(ax, entry.swatch, "neutral", facecolor="white", edgecolor="black", linewidth=1.6)
        elif entry.key == "chained":
            _patch(ax, entry.swatch, "exact", grow=0, edgecolor=VERMILLION, linestyle=(0, (2.5, 1.5)))
        else:  # an edge left out
            s = entry.swatch
            ax.plot([s.x - s.w / 2, s.x + s.w / 2], [s.y, s.y], color=EDGE_LEFT_OUT, linewidth=1.8,
                    linestyle=(0, (4.0, 2.0)), clip_on=False)
        _text(ax, entry.text, color="black")
