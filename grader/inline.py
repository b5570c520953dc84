"""Checking from a notebook: `from grader.inline import setup, check`.

`setup("exercise1", globals())` defines the forward pass's tensors in the notebook, as
the grader computes them. `check("exercise1")` grades the code you ran in this notebook
(the cells, in the order you ran them) with the same extraction and judge as
`ninja-grade exercise1 notebook.ipynb`, and shows the report: as HTML in Jupyter, as text
elsewhere.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import torch

from grader.courseware.cases import first_case, graph_with_shapes, setting_of
from grader.courseware.course import Course, load_course
from grader.courseware.forward import dataset_of
from grader.courseware.graph import Graph
from grader.intake.extract import Cell, clean_code
from grader.judging.results import Report
from grader.pipeline import grade_program, load_submission, program_from_cells
from grader.reporting.report import render_html, render_text


def _ipython() -> Any:
    try:
        from IPython import get_ipython  # noqa: PLC0415 - only inside a notebook

        return get_ipython()
    except ImportError:
        return None


def setup(exercise_id: str, namespace: dict[str, Any], *, course: Course | str | None = None) -> None:
    """Put the course's forward pass for this exercise into `namespace` (say, globals()): on the
    course's first case, or a training exercise's first step."""
    course = course if isinstance(course, Course) else load_course(course)
    exercise = course.exercise(exercise_id)
    dataset = dataset_of(course)
    setting = setting_of(exercise, dataset)
    case = first_case(exercise, setting, course.cases)
    namespace.update(setting.world)
    namespace.update(case.namespace)
    namespace.update({h.name: case.truth[h.tensor].clone() for h in exercise.given_gradients})
    namespace.update(torch=torch, F=torch.nn.functional)
    if dataset.note:
        print(f"note: {dataset.note}")
    print(f"{exercise.id}: the forward pass is defined (loss {float(case.namespace['loss']):.4f}); "  # type: ignore[arg-type]
          f"write your gradients below, then check(\"{exercise.id}\").")


class ReportView:
    """A report that shows itself as HTML in Jupyter (the graph drawn above the table) and as text
    anywhere else."""

    def __init__(self, report: Report, graph: Graph | None = None,
                 shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        self.report, self.graph, self.shapes = report, graph, shapes

    def __repr__(self) -> str:
        return click.unstyle(render_text(self.report, self.graph))

    def _repr_html_(self) -> str:
        return render_html(self.report, self.graph, self.shapes)


def check(exercise_id: str, *, source: str | None = None, course: Course | str | None = None) -> Report | None:
    """Grade the code run in this notebook (or `source`, or the running script) for one exercise.

    In Jupyter the report is displayed (HTML, with a text fallback) and None returned, so it
    shows once; elsewhere it is printed and returned.
    """
    course = course if isinstance(course, Course) else load_course(course)
    exercise = course.exercise(exercise_id)
    ip = _ipython()
    if source is not None:
        cells = [Cell(1, "code", source)]
        program = program_from_cells(course, exercise, cells, "<source>")
    elif ip is not None and "In" in ip.user_ns:
        history = [s for s in ip.user_ns["In"][1:-1] if s and s.strip()]  # the cells run before this one
        cells = [Cell(i + 1, "code", code) for i, s in enumerate(history) if (code := clean_code(s)) is not None]
        program = program_from_cells(course, exercise, cells, "this notebook")
    else:
        program = load_submission(course, exercise, Path(sys.argv[0]))
    dataset = dataset_of(course)
    report = grade_program(course, exercise, program, dataset, submission_label=program.path)
    graph, shapes = graph_with_shapes(exercise, dataset, course.cases)
    if ip is not None:
        from IPython.display import display  # noqa: PLC0415

        display(ReportView(report, graph, shapes))
        return None
    print(render_text(report, graph))
    return report
