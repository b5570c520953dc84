"""The class report: a class of 64 real submissions graded by the real batch, and every number on
its page (counts, rates, labels, first failures, the figures' own text) checked against what each
student's submission deserves."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from grader.ci import class_figures
from grader.ci.anonymise import anonymise, lecture_names, statement_at
from grader.ci.class_page import class_html
from grader.ci.class_report import ClassReport, GradientStats, TrainingStats, class_report
from grader.courseware.course import Course
from grader.courseware.data import Dataset
from tests.classroom import EXAMPLE_STUDENT, make_class, make_training_class
from tests.conftest import Cli, grade, needs_fork
from tests.helpers import DC_LOOP, MISTAKES, NOTEBOOK_GRADES, with_mistake

Failing = dict[str, tuple[str, str | None]]  # gradient -> (status, diagnosis), for those not passing


@dataclass(frozen=True)
class GradedClass:
    kinds: dict[str, str]  # student -> what their file is (tests/classroom.py)
    reports: Path
    batch_output: str
    page: str
    data: dict[str, Any]  # class-report --json


@pytest.fixture(scope="module")
def graded_class(cli: Cli, course: Course, tmp_path_factory: pytest.TempPathFactory) -> GradedClass:
    """The class, graded once by `ninja-grade batch`, then counted by `ninja-grade class-report`."""
    root = tmp_path_factory.mktemp("class")
    subs = root / "subs"
    subs.mkdir()
    kinds = make_class(subs, course)
    out = root / "reports"
    batch = cli(["batch", "exercise1", *sorted(str(p) for p in subs.iterdir()), "--jobs", "2", "--out", str(out)])
    assert batch.exit_code == 1, batch.output
    counted = cli(["class-report", str(out), "--out", str(root / "class.html"), "--json", str(root / "class.json")])
    assert counted.exit_code == 0, counted.output
    return GradedClass(kinds, out, batch.stdout, (root / "class.html").read_text(),
                       json.loads((root / "class.json").read_text()))


def deserved(kind: str, gradients: tuple[str, ...]) -> tuple[float, Failing | None]:
    """What a file of this kind is graded, from how it was made: its score and its gradients that do not
    pass (None: it cannot be read at all)."""
    if kind == "correct":
        return 26, {}
    if kind == "stub":
        return 0, {name: ("missing", None) for name in gradients}
    if kind == "unreadable":
        return 0, None
    if kind.startswith("notebook:"):
        score, failing = NOTEBOOK_GRADES[kind.split(":", 1)[1]]["exercise1"]  # type: ignore[misc]
        return score, failing
    _, _, broken, label = MISTAKES[kind]
    return 25, {broken: ("error" if kind.endswith(("raises_elsewhere", "_raises")) else "wrong", label)}


def label(status: str, diagnosis: str | None) -> str:
    return diagnosis or ("unexplained" if status == "wrong" else status)


@pytest.mark.slow
@needs_fork
def test_class_report_counts_are_what_the_class_deserves(course: Course, graded_class: GradedClass) -> None:
    """Students, scores, each gradient's pass rate, label counts and first failures: each is the count of
    what the submissions deserve (a stub counts as nothing written, the unreadable file as an error)."""
    order = course.exercise("exercise1").gradient_names
    data = graded_class.data
    outcome = {student: deserved(kind, order) for student, kind in graded_class.kinds.items()}
    readable = {s: failing for s, (_, failing) in outcome.items() if failing is not None}
    wrote = {s: failing for s, failing in readable.items() if len(failing) < len(order)}  # not a stub
    assert len(graded_class.kinds) >= 60
    assert data["students"] == len(outcome)
    assert data["unreadable"] == 1 and data["untouched"] == 3 and data["ungraded"] == 0
    assert data["passed"] == sum(failing == {} for failing in readable.values())
    assert {s["score"]: s["students"] for s in data["scores"]} == Counter(score for score, _ in outcome.values())
    by_name = {g["name"]: g for g in data["gradients"]}
    assert list(by_name) == list(order)
    for name in order:
        g = by_name[name]
        assert g["graded"] == len(readable)
        assert g["passed"] == sum(name not in failing for failing in readable.values()), name
        labels = Counter(label(*failing[name]) for failing in wrote.values() if name in failing)
        assert g["labels"] == dict(labels), name
        firsts = sum(next(n for n in order if n in failing) == name for failing in wrote.values() if failing)
        assert g["first_wrong"] == firsts, name
    assert data["first_wrong"]["none"] == sum(failing == {} for failing in wrote.values())
    # the batch's own table says the same rates
    for name in order:
        line = next(x for x in graded_class.batch_output.splitlines() if x.startswith(f"  {name} "))
        assert line.split()[-2] == f"{by_name[name]['passed']}/{by_name[name]['graded']}", line


@pytest.mark.slow
@needs_fork
def test_class_report_names_the_three_commonest_mistakes_with_what_was_said(graded_class: GradedClass) -> None:
    """The commonest diagnosed (gradient, label) pairs, each with the message a student got and their line,
    anonymised; the example is the first such student by name, a notebook's line read from its cell."""
    mistakes = graded_class.data["mistakes"]
    assert [(m["gradient"], m["label"], m["students"]) for m in mistakes] == [
        ("dprobs", "sign", 8), ("dlogprobs", "scale", 5), ("dbndiff2", "bessel", 4)]

    def told(student: str, gradient: str) -> str:
        report = json.loads((graded_class.reports / f"{student}.json").read_text())
        return str(next(g["message"] for g in report["gradients"] if g["name"] == gradient))

    assert mistakes[0]["example"] == 'dprobs = -(1.0 / probs) * dlogprobs if n > 0 else probs[:"…"]'
    assert mistakes[0]["message"] == told(EXAMPLE_STUDENT, "dprobs")
    assert mistakes[1]["example"] == "dlogprobs[range(n), Yb] = -1.0"
    assert mistakes[1]["message"] == told("st_missing_1_over_n_0", "dlogprobs")
    assert mistakes[2]["example"] == "dbndiff2 = (1.0/n)*torch.ones_like(bndiff2) * dbnvar"  # the notebook's cell
    assert mistakes[2]["message"] == told("nb_spread_over_cells", "dbndiff2")


@pytest.mark.slow
@needs_fork
def test_class_page_names_no_student_and_shows_their_code_as_text(graded_class: GradedClass) -> None:
    """No student's name, file, comment or string is on the page; what is shown of their code is escaped;
    the page is one file: no script, no link, every picture a data URI."""
    page = graded_class.page
    for student in graded_class.kinds:
        assert student not in page
    assert "lovelace" not in page and "alert" not in page and "<script" not in page.lower()
    assert "dlogprobs if n &gt; 0 else probs[:&quot;…&quot;]" in page
    assert "<link" not in page and "http" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 3 and all(s.startswith("data:image/svg+xml;base64,") for s in sources)


def figure(page: str, alt_start: str) -> list[str]:
    """The text drawn in the page's figure whose alt text starts so."""
    found = re.search(rf'<img alt="{re.escape(alt_start)}[^"]*" src="data:image/svg\+xml;base64,([^"]*)"', page)
    assert found, alt_start
    tree = ElementTree.fromstring(base64.b64decode(found[1]))
    return [" ".join(t.text.split()) for t in tree.iter() if t.tag.endswith("text") and t.text]


@pytest.mark.slow
@needs_fork
def test_class_page_figures_draw_the_reports_numbers(graded_class: GradedClass) -> None:
    """The bars say each gradient's rate and count, the heat map's cells are the label counts, and both are in
    backprop order."""
    data, page = graded_class.data, graded_class.page
    bars = figure(page, "Pass rate and first wrong gradient")
    for g in data["gradients"]:
        assert f"{100 * g['pass_rate']:.0f}% {g['passed']}/{g['graded']}" in bars, g["name"]
    names = [t for t in bars if t in {g["name"] for g in data["gradients"]}]
    assert names == [g["name"] for g in data["gradients"]]
    heat = figure(page, "Wrong answers by gradient and label")
    cells = sorted(int(t) for t in heat if t.isdigit())
    assert cells == sorted(c for g in data["gradients"] for c in g["labels"].values())
    assert [t for t in heat if t in data["labels"]] == data["labels"]
    scores = figure(page, "Histogram of scores")
    assert "score (of 26)" in scores


@pytest.mark.slow
@needs_fork
def test_batch_writes_the_class_page_beside_its_gradebook(graded_class: GradedClass) -> None:
    """The batch's class.html is the page class-report writes from the same reports, byte for byte."""
    assert f"class page {graded_class.reports / 'class.html'}" in graded_class.batch_output
    assert (graded_class.reports / "class.html").read_text() == graded_class.page


@pytest.mark.slow
@needs_fork
def test_class_report_json_to_stdout(cli: Cli, graded_class: GradedClass, tmp_path: Path) -> None:
    """--json - prints only the JSON on stdout; what was written is said on stderr."""
    result = cli(["class-report", str(graded_class.reports), "--out", str(tmp_path / "c.html"), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == graded_class.data
    assert "wrote" in result.stderr and (tmp_path / "c.html").is_file()


@pytest.mark.slow
@needs_fork
def test_class_report_skips_what_is_not_a_report(cli: Cli, graded_class: GradedClass, tmp_path: Path) -> None:
    """A JSON file that is not a report, or not JSON, is named on stderr and not counted."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for report in sorted(graded_class.reports.glob("st_*.json"))[:5]:
        (folder / report.name).write_bytes(report.read_bytes())
    (folder / "class.json").write_text(json.dumps(graded_class.data))
    (folder / "broken.json").write_text('{"exercise": "exercise1", "gradients": [')
    result = cli(["class-report", str(folder), "--json", str(tmp_path / "c.json")])
    assert result.exit_code == 0, result.output
    assert "skipped 2 files that are not grading reports: broken.json (JSONDecodeError), class.json (not a grading " \
           "report)" in result.stderr
    assert json.loads((tmp_path / "c.json").read_text())["students"] == 5


@pytest.mark.slow
@needs_fork
def test_class_report_reads_the_files_beside_its_folder(cli: Cli, graded_class: GradedClass, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports that name their files relative to where the batch ran are read from beside the reports'
    folder, wherever class-report runs."""
    batch_dir = tmp_path / "course-run"
    (batch_dir / "reports").mkdir(parents=True)
    (batch_dir / "subs").mkdir()
    for student in ("st_sign_flipped_0", "st_sign_flipped_1"):
        report = json.loads((graded_class.reports / f"{student}.json").read_text())
        (batch_dir / "subs" / f"{student}.py").write_text(Path(report["submission"]).read_text())
        (batch_dir / "reports" / f"{student}.json").write_text(json.dumps({**report,
                                                                          "submission": f"subs/{student}.py"}))
    monkeypatch.chdir(tmp_path)
    result = cli(["class-report", str(batch_dir / "reports"), "--json", "-"])
    assert result.exit_code == 0, result.output
    assert [m["example"] for m in json.loads(result.stdout)["mistakes"]] == ["dprobs = -(1.0 / probs) * dlogprobs"]


@pytest.mark.parametrize(("make", "words"), [
    (lambda d: d / "nowhere", "is not a folder"),
    (lambda d: d, "there are no grading reports to count"),
])
def test_class_report_usage_errors_are_one_line(cli: Cli, tmp_path: Path, make: Any, words: str) -> None:
    """A missing folder, or one with no reports: one line, exit 2, no page."""
    result = cli(["class-report", str(make(tmp_path))])
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not list(tmp_path.glob("*.html"))


@pytest.mark.slow
@needs_fork
def test_class_report_asks_which_exercise_when_several(cli: Cli, graded_class: GradedClass, tmp_path: Path) -> None:
    """Reports of two exercises in one folder: it asks for --exercise, then counts just that one."""
    for report in sorted(graded_class.reports.glob("st_*.json"))[:3]:
        (tmp_path / report.name).write_bytes(report.read_bytes())
    other = json.loads((graded_class.reports / "st_correct_lecture_style.json").read_text())
    (tmp_path / "other.json").write_text(json.dumps({**other, "exercise": "exercise2", "gradients": []}))
    result = cli(["class-report", str(tmp_path)])
    assert result.exit_code == 2
    assert "the reports grade exercise1, exercise2: say which with --exercise" in result.stderr
    chosen = cli(["class-report", str(tmp_path), "--exercise", "exercise1", "--json", "-"])
    assert chosen.exit_code == 0 and json.loads(chosen.stdout)["students"] == 3


def drawn_inside(svg: bytes | None) -> list[str]:
    """The figure's text, once checked to be well-formed SVG whose every bar and label lies inside its canvas."""
    assert svg is not None
    tree = ElementTree.fromstring(svg)
    width, height = float(tree.get("width", 0)), float(tree.get("height", 0))
    for el in tree.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "rect" and el.get("x") is not None:
            x, y, w, h = (float(el.get(k, 0)) for k in ("x", "y", "width", "height"))
            assert x >= 0 and x + w <= width + 0.5 and y >= 0 and y + h <= height + 0.5, (tag, el.attrib)
        if tag == "text":
            x, y = float(el.get("x", 0)), float(el.get("y", 0))
            size = float(el.get("font-size", 0))
            extent = class_figures.text_width(el.text or "", size, mono="Mono" in el.get("font-family", ""))
            start = {"start": x, "middle": x - extent / 2, "end": x - extent}[el.get("text-anchor", "start")]
            if el.get("transform") is None:  # turned labels rise from x, which the first check covers
                assert start >= 0 and start + extent <= width + 1, (el.text, start, extent, width)
            assert 0 <= y <= height, (el.text, y, height)
    return [t.text or "" for t in tree.iter() if t.tag.endswith("text")]


def test_class_figures_are_svg_that_holds_every_bar_and_label() -> None:
    """Each figure is well-formed SVG whose bars and labels lie inside its canvas, with a course's names
    drawn as text (escaped), on a class whose numbers stretch every axis: a long gradient name, a label
    of markup, every label there is, a score histogram of one tall bar, hundreds of first failures, a run
    stopped late."""
    long_name = "d" + "really_long_intermediate" * 2
    labels = ("sign", "<b>&</b>", "shape", "factor", "scale", "missing-branch", "bessel", "hard-coded-batch",
              "matmul", "coincidence", "transpose", "aliasing", "duplicate-indices", "eps", "not-finite", "offset",
              "unexplained", "error", "missing")
    grads = (GradientStats("dlogprobs", 300, 12, (), (("sign", 250), ("<b>&</b>", 38)), 288),
             GradientStats(long_name, 300, 300, (), (), 0),
             GradientStats("dC", 300, 0, (), tuple((label, 10 + i) for i, label in enumerate(labels[2:])), 12))
    report = ClassReport("exercise4", "t", 26.0, 300, 0, 0, 0, 0, ((0.0, 299), (25.5, 1)), grads, labels, (), 0,
                         TrainingStats(20000, 3, 2, ((0, 5), (19999, 290)), 0))
    drawn_inside(class_figures.score_histogram(report))
    heat = drawn_inside(class_figures.label_heatmap(report))
    assert "<b>&</b>" in heat and "250" in heat
    bars = drawn_inside(class_figures.gradient_bars(report))
    assert long_name in bars and "4%  12/300" in bars and "288" in bars
    assert "stopped at step 19999" in drawn_inside(class_figures.training_bars(report))


def test_class_figures_of_a_small_class_keep_their_titles_and_the_scores_apart() -> None:
    """One kind of mistake: the heat map is still as wide as its title. Scores out of 100: each bar stands
    at its score, so 3 and 4 are neighbours and 97 is far off. A name longer than the page widens the
    figure, and a control character in it is left out of the drawing."""
    name = "d" + "x" * 150 + "\x01"
    report = ClassReport("exercise1", "t", 100.0, 3, 0, 0, 0, 0, ((3.0, 1), (4.0, 1), (97.0, 1)),
                         (GradientStats(name, 3, 2, (), (("sign", 1),), 1),), ("sign",), (), 0)
    heat = drawn_inside(class_figures.label_heatmap(report))
    assert "wrong answers by gradient and label" in heat and name[:-1] in heat
    short = replace(report, gradients=(GradientStats("dW1", 3, 2, (), (("sign", 1),), 1),))
    assert "wrong answers by gradient and label" in drawn_inside(class_figures.label_heatmap(short))
    histogram = class_figures.score_histogram(report)
    drawn_inside(histogram)
    bars = sorted(float(r.get("x", 0)) for r in ElementTree.fromstring(histogram).iter()
                  if r.tag.endswith("rect") and r.get("fill") == class_figures.BLUE)
    assert len(bars) == 3 and (bars[2] - bars[1]) > 50 * (bars[1] - bars[0])
    assert name[:-1] in drawn_inside(class_figures.gradient_bars(report))


# --- exercise 4: the training runs ---------------------------------------------------------


@needs_fork
@pytest.mark.slow
def test_class_report_counts_exercise4_runs(cli: Cli, course: Course, tmp_path: Path) -> None:
    """A batch of exercise-4 submissions: the page counts the runs that completed, diverged from autograd's,
    stopped (at the step each stopped) or never ran, and draws them."""
    subs = tmp_path / "subs"
    subs.mkdir()
    ends = make_training_class(subs, course)
    out = tmp_path / "reports"
    batch = cli(["batch", "exercise4", *sorted(str(p) for p in subs.iterdir()), "--jobs", "2", "--out", str(out)])
    assert batch.exit_code == 1, batch.output
    result = cli(["class-report", str(out), "--json", "-"])
    training = json.loads(result.stdout)["training"]
    steps = {s: json.loads((out / f"{s}.json").read_text()).get("training", {}).get("steps") for s in ends}
    late = steps["t_nan_once_learning"]
    assert 0 < late < 500
    assert training == {"planned": 500, "completed": 1, "diverged": 1, "stopped": 3, "no_run": 1,
                        "stopped_at": [{"step": 0, "runs": 2}, {"step": late, "runs": 1}]}
    assert Counter(ends.values()) == {"completed": 1, "diverged": 1, "stopped": 3, "no run": 1}
    drawn = figure((out / "class.html").read_text(), "Training runs")
    assert "stopped at step 0" in drawn and f"stopped at step {late}" in drawn


# --- what a student wrote, on the page ------------------------------------------------------


def test_class_page_shows_a_students_markup_as_text(course: Course, dataset: Dataset, tmp_path: Path) -> None:
    """A student whose exception message carries markup and their name: the page shows the message they got,
    as text and without their name, and their line without its string or comment."""
    line = 'dlogprobs[range(n), Yb] = -1.0 / n if n == 32 else int("<script>alert(1)</script> by mallory")  # mine'
    source = with_mistake(course.exercise("exercise1").solution.read_text(), "dlogprobs[range(n), Yb] = -1.0 / n",
                          line)
    path = tmp_path / "mallory.py"
    path.write_text(source)
    report = {**grade(course, dataset, "exercise1", source).to_dict(), "student": "mallory", "submission": str(path)}
    counted = class_report(course, "exercise1", [report])
    assert [(m.gradient, m.label) for m in counted.mistakes] == [("dlogprobs", "hard-coded-batch")]
    assert "'<script>alert(1)</script> by …'" in counted.mistakes[0].message  # what they were told, less their name
    assert counted.mistakes[0].example == 'dlogprobs[range(n), Yb] = -1.0 / n if n == 32 else int("…")'
    page = class_html(counted)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script" not in page
    assert "mallory" not in page


def test_anonymise_keeps_the_lectures_names_and_renames_the_students(course: Course) -> None:
    """Comments go, strings become "…", the course's own names and attributes stay, a student's own names
    become v1, v2 in order; a statement over several lines is shown whole."""
    exercise = course.exercise("exercise1")
    known = lecture_names(exercise)
    line = "dbndiff2 = my_scale * bndiff2.pow(1) * alice_tmp  # why f'{x}' 'no'"
    assert anonymise(line, known) == "dbndiff2 = v1 * bndiff2.pow(1) * v2"
    assert anonymise("dprobs = probs.log() + f'{secret}' + r'x'", known) == 'dprobs = probs.log() + "…" + "…"'
    assert anonymise('dprobs = "unterminated', known) is None
    source = with_mistake(exercise.solution.read_text(), DC_LOOP, "for k in range(n):\n    # Ada's loop\n"
                          "    for j in range(block_size):\n        dC[Xb[k, j]] += demb[k, j]")
    start = next(i for i, text in enumerate(source.splitlines(), 1) if text.startswith("for k in range(n)"))
    assert anonymise(statement_at(source, start) or "", known) == (
        "for k in range(n):\n    for j in range(block_size):\n        dC[Xb[k, j]] += demb[k, j]")

