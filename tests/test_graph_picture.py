"""The forward graph, drawn: read from each course's forward file, coloured by real gradings' verdicts,
the first wrong gradient and a left-out branch marked, and readable (no two labels overlap).

Every report here comes from the real grader, on the solution or on a one-edit change of it
(MISTAKES in tests/helpers.py), or on the fixtures half_finished.py and three_mistakes.py.
"""

from __future__ import annotations

import html
import itertools
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import nbformat
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from matplotlib.transforms import Bbox

from grader.courseware.cases import graph_with_shapes
from grader.courseware.course import Course, load_course
from grader.courseware.data import Dataset
from grader.courseware.graph import Graph
from grader.courseware.notebooks import build_notebook
from grader.inline import ReportView
from grader.judging.results import Report, Status
from grader.reporting.graph_layout import Layout, layout
from grader.reporting.graph_marks import GLYPHS, first_wrong, graph_marks, steps_from_loss
from grader.reporting.graph_picture import STYLES, graph_figure, measure, style_key
from grader.reporting.report import render_html, render_text
from tests.conftest import ROOT, SUBMISSIONS, Cli, grade
from tests.helpers import MISTAKES, with_mistake

Shapes = dict[str, tuple[int, ...]]
LAYERNORM = ROOT / "examples" / "layernorm"

# Every forward operation of the lecture's atomic graph: (input, result, the op as the line writes it).
LECTURE_EDGES = [
    ("C", "emb", "[Xb]"), ("Xb", "emb", "index"), ("emb", "embcat", "view(emb.shape[0], -1)"),
    ("embcat", "hprebn", "@"), ("W1", "hprebn", "@"), ("b1", "hprebn", "+"),
    ("hprebn", "bnmeani", "1/n * sum(0)"), ("hprebn", "bndiff", "-"), ("bnmeani", "bndiff", "-"),
    ("bndiff", "bndiff2", "**2"), ("bndiff2", "bnvar", "1/(n-1) * sum(0)"), ("bnvar", "bnvar_inv", "(+ 1e-5)**-0.5"),
    ("bndiff", "bnraw", "*"), ("bnvar_inv", "bnraw", "*"),
    ("bngain", "hpreact", "*"), ("bnraw", "hpreact", "*"), ("bnbias", "hpreact", "+"),
    ("hpreact", "h", "tanh"), ("h", "logits", "@"), ("W2", "logits", "@"), ("b2", "logits", "+"),
    ("logits", "logit_maxes", "max(1).values"), ("logits", "norm_logits", "-"), ("logit_maxes", "norm_logits", "-"),
    ("norm_logits", "counts", "exp()"), ("counts", "counts_sum", "sum(1)"), ("counts_sum", "counts_sum_inv", "**-1"),
    ("counts", "probs", "*"), ("counts_sum_inv", "probs", "*"), ("probs", "logprobs", "log()"),
    ("logprobs", "loss", "-[range(n), Yb].mean()"), ("Yb", "loss", "index"),
]
LAYERNORM_EDGES = [
    ("C", "emb", "[Xb]"), ("Xb", "emb", "index"), ("emb", "embcat", "view(emb.shape[0], -1)"),
    ("embcat", "hpreln", "@"), ("W1", "hpreln", "@"), ("b1", "hpreln", "+"),
    ("hpreln", "lnmeani", "mean(1)"), ("hpreln", "lndiff", "-"), ("lnmeani", "lndiff", "-"),
    ("lndiff", "lndiff2", "**2"), ("lndiff2", "lnvar", "mean(1)"), ("lnvar", "lnvar_inv", "(+ 1e-5)**-0.5"),
    ("lndiff", "lnraw", "*"), ("lnvar_inv", "lnraw", "*"),
    ("lngain", "hpreact", "*"), ("lnraw", "hpreact", "*"), ("lnbias", "hpreact", "+"),
    ("hpreact", "h", "tanh"), ("h", "logits", "@"), ("W2", "logits", "@"), ("b2", "logits", "+"),
    ("logits", "loss", "cross_entropy"), ("Yb", "loss", "cross_entropy"),
]
# One-edit mistakes of solutions/exercise1.py, and the gradient the picture must mark first.
FIRST_WRONG = {"sign_flipped": "dprobs", "missing_branch_of_bndiff": "dbndiff", "view_32_raises_elsewhere": "demb",
               "missing_max_branch_of_logits": "dlogits"}


@pytest.fixture(scope="module")
def lecture(course: Course, dataset: Dataset) -> tuple[Graph, Shapes]:
    return graph_with_shapes(course.exercise("exercise1"), dataset, course.cases)


@pytest.fixture(scope="module")
def layernorm(dataset: Dataset) -> tuple[Course, Graph, Shapes]:
    course = load_course(LAYERNORM / "course.yaml")
    return course, *graph_with_shapes(course.exercise("exercise1"), dataset, course.cases)


class Gradings(dict[str, Report]):
    """Real gradings of exercise 1, by name: the solution, a MISTAKES edit of it, or a file of
    tests/submissions/exercise1; each graded once, when first asked for."""

    def __init__(self, course: Course, dataset: Dataset) -> None:
        super().__init__()
        self.course, self.dataset = course, dataset
        self.solution = course.exercise("exercise1").solution.read_text()

    def __missing__(self, name: str) -> Report:
        if name == "solution":
            source = self.solution
        elif name in MISTAKES:
            source = with_mistake(self.solution, *MISTAKES[name][:2])
        else:
            source = (SUBMISSIONS / "exercise1" / f"{name}.py").read_text()
        self[name] = grade(self.course, self.dataset, "exercise1", source)
        return self[name]


@pytest.fixture(scope="module")
def graded(course: Course, dataset: Dataset) -> Gradings:
    return Gradings(course, dataset)


def test_graph_marks_read_the_lectures_nodes_edges_and_ops(graded: dict[str, Report],
                                                           lecture: tuple[Graph, Shapes]) -> None:
    """The lecture's picture has every tensor (the parameters, Xb and Yb, each forward line; not n) with
    its shape, and one edge per input of each line, labelled with the op the line applies to it."""
    graph, shapes = lecture
    marks = graph_marks(graded["solution"], graph, shapes)
    names = [t.name for t in marks.tensors]
    assert set(names) == set(graph.nodes) | {"C", "Xb", "W1", "b1", "bngain", "bnbias", "W2", "b2", "Yb"}
    assert len(graph.nodes) == 20 and "n" not in names
    assert marks.tensor("counts_sum_inv").shape == (32, 1) and marks.tensor("emb").shape == (32, 3, 10)
    assert sorted((e.source, e.target, e.op) for e in marks.edges) == sorted(LECTURE_EDGES)
    assert sum(t.gradient is not None for t in marks.tensors) == 26


def test_graph_marks_read_the_layernorm_course(layernorm: tuple[Course, Graph, Shapes], dataset: Dataset) -> None:
    """The LayerNorm course's forward file gives its own picture, through the same code."""
    course, graph, shapes = layernorm
    exercise = course.exercise("exercise1")
    report = grade(course, dataset, exercise, exercise.solution.read_text(), label="<solution>", draw="fresh")
    marks = graph_marks(report, graph, shapes)
    assert sorted((e.source, e.target, e.op) for e in marks.edges) == sorted(LAYERNORM_EDGES)
    assert {t.name for t in marks.tensors if t.gradient is None} == {"Xb", "Yb", "loss"}
    assert all(t.gradient.passed for t in marks.tensors if t.gradient is not None)
    assert_no_overlaps(graph_figure(marks), marks_layout=layout(marks, measure))


def drawn_styles(fig: Figure) -> dict[str, tuple[str, str]]:
    """Each tensor's first text line as drawn, and the fill of the box it sits in (the smallest one)."""
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch) and p.get_facecolor()[3] > 0]
    found = {}
    for text in ax.texts:
        x, y = text.get_position()
        inside = [p for p in boxes if p.get_x() <= x <= p.get_x() + p.get_width()
                  and p.get_y() <= y <= p.get_y() + p.get_height()]
        if inside and text.get_fontsize() == 8.0 and text.get_fontweight() == "bold":
            box = min(inside, key=lambda p: p.get_width() * p.get_height())
            found[text.get_text().split()[-1]] = (text.get_text(), to_hex(box.get_facecolor()))
    return found


def test_graph_picture_colours_follow_the_verdicts(graded: dict[str, Report], lecture: tuple[Graph, Shapes]) -> None:
    """In the picture of a file with three mistakes, each tensor's box has its verdict's fill and glyph,
    the untouched ones are neutral, and the marks are where the report says: the first wrong one, the
    ones right on their own but wrong chained, and the one branch left out."""
    graph, shapes = lecture
    report = graded["three_mistakes"]
    marks = graph_marks(report, graph, shapes)
    drawn = drawn_styles(graph_figure(marks))
    by_tensor = {g.tensor: g for g in report.gradients}
    assert set(drawn) == {t.name for t in marks.tensors}
    for name, (text, fill) in drawn.items():
        g = by_tensor.get(name)
        assert fill == STYLES[style_key(g.status if g else None)][0], name
        assert text == (f"{GLYPHS[g.status]} {name}" if g else name)
    assert {n for n, g in by_tensor.items() if g.status is Status.WRONG} == {"probs", "bndiff"}
    assert by_tensor["emb"].status is Status.ERROR and by_tensor["emb"].diagnosis == "hard-coded-batch"
    assert [t.name for t in marks.tensors if t.first_wrong] == ["probs"]
    assert [(e.source, e.target) for e in marks.edges if e.left_out] == [("bndiff", "bndiff2")]
    chained = {t.name for t in marks.tensors if t.chained_wrong}
    assert {"counts", "logits", "W1", "C"} <= chained and not chained & {"logprobs", "probs", "bndiff", "emb"}


def test_graph_picture_says_each_verdict_without_colour() -> None:
    """Each verdict has its own glyph and its own border (width and dash), so it reads in grey too."""
    verdicts = [s.value for s in Status]
    assert len({GLYPHS[s] for s in Status}) == len(verdicts)
    assert len({(STYLES[v][2], str(STYLES[v][3])) for v in verdicts if v != "approximate"}) == len(verdicts) - 1
    assert STYLES["exact"][2:] == STYLES["approximate"][2:]  # both pass: told apart by their glyphs, ✓ and ≈


@pytest.mark.parametrize("mistake", sorted(FIRST_WRONG))
def test_first_wrong_is_the_mistake_nearest_the_loss(graded: dict[str, Report], lecture: tuple[Graph, Shapes],
                                                     mistake: str) -> None:
    """For a real one-edit mistake, the first wrong gradient in backprop order is the broken one, the
    text report names it with its distance from the loss, and a missing branch marks its edge (found by
    the value check for dbndiff, by the vector-Jacobian check for dlogits' ~0 branch)."""
    graph, shapes = lecture
    report = graded[mistake]
    first = first_wrong(report, graph)
    assert first is not None and first.name == FIRST_WRONG[mistake]
    steps = {"dprobs": 2, "dbndiff": 9, "demb": 12, "dlogits": 5}[first.name]
    assert steps_from_loss(graph, first.tensor) == steps
    text = render_text(report, graph)
    assert (f"The first wrong gradient, going backwards from the loss, is {first.name}, {steps} steps from the "
            "loss: start there.") in text  # no line number: the submission is no .py file here
    assert "first wrong gradient" not in render_text(report)  # without the graph, nothing to say it by
    left_out = [(e.source, e.target) for e in graph_marks(report, graph, shapes).edges if e.left_out]
    branch = {"dbndiff": [("bndiff", "bndiff2")], "dlogits": [("logits", "logit_maxes")]}.get(first.name, [])
    assert left_out == branch
    assert report.to_dict()["gradients"][[g.name for g in report.gradients].index(first.name)][
        "missing_branches"] == [list(b) for b in branch]


def test_first_wrong_skips_a_later_mistake(graded: dict[str, Report], lecture: tuple[Graph, Shapes]) -> None:
    """With three mistakes, the one nearest the loss comes first; a right file has none, and a
    half-finished one (only missing gradients) has none either."""
    graph, _ = lecture
    first = first_wrong(graded["three_mistakes"], graph)
    assert first is not None and first.name == "dprobs"
    assert first_wrong(graded["solution"], graph) is None
    assert first_wrong(graded["half_finished"], graph) is None
    assert "first wrong gradient" not in render_text(graded["half_finished"], graph)


def text_boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    return [(t.get_text(), t.get_window_extent(renderer)) for t in fig.axes[0].texts]


def assert_no_overlaps(fig: Figure, *, marks_layout: Layout) -> None:
    """No two texts of the drawing overlap, each lies inside the picture, and no op label sits on a
    tensor's box."""
    boxes = text_boxes(fig)
    width, height = fig.bbox.width, fig.bbox.height
    clashes = [(a, b) for (a, ba), (b, bb) in itertools.combinations(boxes, 2)
               if ba.x0 < bb.x1 - 0.01 and bb.x0 < ba.x1 - 0.01 and ba.y0 < bb.y1 - 0.01 and bb.y0 < ba.y1 - 0.01]
    assert clashes == []
    assert all(b.x0 >= 0 and b.x1 <= width and b.y0 >= 0 and b.y1 <= height for _, b in boxes)
    for edge in marks_layout.edges:
        lb = edge.label_box
        for node in marks_layout.nodes:
            nb = node.box
            assert not (abs(lb.x - nb.x) < (lb.w + nb.w) / 2 and abs(lb.y - nb.y) < (lb.h + nb.h) / 2), \
                (edge.mark, node.mark.name)


@pytest.mark.parametrize("name", ["solution", "half_finished", "three_mistakes"])
def test_graph_picture_labels_never_overlap(graded: dict[str, Report], lecture: tuple[Graph, Shapes],
                                            name: str) -> None:
    """The lecture's picture, for a right, a half-finished and a three-mistake file: the boxes matplotlib
    measures for its texts (names, shapes, diagnoses, ops, badge, key) never intersect."""
    graph, shapes = lecture
    marks = graph_marks(graded[name], graph, shapes)
    fig = graph_figure(marks)
    assert len(text_boxes(fig)) > 2 * len(marks.tensors) + len(marks.edges)
    assert_no_overlaps(fig, marks_layout=layout(marks, measure))


def test_cli_graph_writes_svg_with_text_and_png(cli: Cli, tmp_path: Path) -> None:
    """`--graph x.svg` writes an SVG whose texts are text (every tensor's name is in it) and says where,
    and the text report names the first wrong gradient; `--graph x.png` writes a PNG."""
    svg = tmp_path / "graph.svg"
    submission = SUBMISSIONS / "exercise1" / "three_mistakes.py"
    result = cli(["exercise1", str(submission), "--graph", str(svg)])
    assert result.exit_code == 1, result.output
    line = next(i for i, s in enumerate(submission.read_text().splitlines(), 1) if s.startswith("dprobs ="))
    assert (f"The first wrong gradient, going backwards from the loss, is dprobs (line {line}), 2 steps from the "
            "loss: start there.") in result.stdout
    assert result.stderr.strip() == f"graph: {svg}"
    root = ET.fromstring(svg.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert {"✗ probs", "✗ bndiff", "! emb", "✓ counts", "loss", "◀ start here"} <= set(texts)
    png = tmp_path / "graph.png"
    result = cli(["exercise1", "--graph", str(png)])  # the stub: all missing
    assert result.exit_code == 1 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 2 * image.shape[1] > 600  # the graph, tall: 21 layers from the loss down


@pytest.mark.parametrize("where, words", [("graph.pdf", "is written as .svg or .png (by the file's suffix), not .pdf"),
                                          ("graph", "not a name without one"),
                                          ("pictures.svg", "is a folder"),
                                          ("afile/graph.svg", "cannot write")])
def test_cli_graph_bad_path_is_one_line_exit_2(cli: Cli, tmp_path: Path, where: str, words: str) -> None:
    """A --graph that is not .svg or .png, a folder, or a path that cannot be written: one line, exit 2."""
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "pictures.svg").mkdir()
    result = cli(["exercise1", "--graph", str(tmp_path / where)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr
    assert "Traceback" not in result.output


def test_html_report_draws_the_graph_and_escapes_student_text(course: Course, dataset: Dataset,
                                                              lecture: tuple[Graph, Shapes]) -> None:
    """The HTML report (the --feedback page, check()'s Jupyter view) holds the picture inline, above the
    table, and what the student's code printed stays text: no markup from it reaches the page."""
    graph, shapes = lecture
    source = with_mistake(course.exercise("exercise1").solution.read_text(), *MISTAKES["sign_flipped"][:2])
    report = grade(course, dataset, "exercise1", source + '\nprint("<script>alert(1)</script><svg onload=x>")\n')
    page = render_html(report, graph, shapes)
    assert page.index("<svg") < page.index("<table>")
    assert "<script" not in page and "onload" not in re.sub(r"&lt;svg onload=x&gt;", "", page)
    assert html.escape("<script>alert(1)</script>") in page
    assert ReportView(report, graph, shapes)._repr_html_() == page
    assert "<svg" not in render_html(report)  # without the graph: the table alone
    assert "The first wrong gradient, going backwards from the loss, is dprobs" in page


def test_feedback_page_has_the_graph_above_the_table(cli: Cli, course: Course, tmp_path: Path) -> None:
    """--feedback on a notebook writes the page with the graph first, then the table."""
    notebook = tmp_path / "half.ipynb"
    nbformat.write(build_notebook(course, course.exercise("exercise1"), SUBMISSIONS / "exercise1" / "half_finished.py"),
                   str(notebook))
    result = cli(["exercise1", str(notebook), "--feedback"])
    assert result.exit_code == 1
    page = (tmp_path / "half.feedback.html").read_text()
    assert page.count("<svg") >= 1 and page.index("ninja-graph") < page.index("<th>gradient</th>")
    assert "? bnraw" in page and "✓ logprobs" in page


def test_fixtures_are_the_solution_with_their_edits(course: Course) -> None:
    """three_mistakes.py is the solution with three of MISTAKES' edits; half_finished.py is the solution
    down to dhpreact and the stub after it (their headers aside)."""
    exercise = course.exercise("exercise1")
    solution, stub = exercise.solution.read_text(), exercise.stub.read_text()
    three = solution
    for mistake in ("sign_flipped", "missing_branch_of_bndiff", "view_32_raises_elsewhere"):
        three = with_mistake(three, *MISTAKES[mistake][:2])

    def body(text: str) -> str:
        return text[text.index("# Everything from the forward pass"):]

    assert body((SUBMISSIONS / "exercise1" / "three_mistakes.py").read_text()) == body(three)
    cut = "# hpreact = bngain * bnraw + bnbias"
    half = (SUBMISSIONS / "exercise1" / "half_finished.py").read_text()
    assert body(half) == body(solution[:solution.index(cut)] + stub[stub.index(cut):])
