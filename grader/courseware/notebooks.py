"""The course's notebooks: each exercise as a Jupyter or Colab notebook, from its stub or solution.

A set-up cell (the grader's `setup`), the forward pass the grader runs, one cell per block of
the stub, and a check cell (the grader's `check`). Where the grader is missing (Colab), the
set-up cell fetches the course: its files live beside the grader, so it is cloned, not
pip-installed from a wheel.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat

from grader.courseware.course import Course, Exercise


def _paragraphs(source: str) -> tuple[str, list[str]]:
    """A stub's header comment, and its blocks separated by blank lines."""
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", source) if b.strip()]
    header = blocks[0] if blocks and all(line.startswith("#") for line in blocks[0].splitlines()) else ""
    return header, blocks[1:] if header else blocks


def build_notebook(course: Course, exercise: Exercise, source: Path | None = None, *,
                   course_repo: str | None = None) -> Any:
    """The exercise as a notebook: set-up, the forward pass, one cell per block, a check.

    `source` defaults to the stub; pass the solution to get the notebook filled in. With
    `course_repo` (a git URL), the set-up cell fetches the course where the grader is not
    installed (Colab); without it, it says to install the course.
    """
    header, blocks = _paragraphs((source or exercise.stub).read_text(encoding="utf-8"))
    number = course.exercises.index(exercise) + 1
    intro = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in header.splitlines())
    named = course.relative_path()
    which = f", course={named!r}" if named is not None else ""  # another course than the shipped one
    setup = (
        "# Set-up: fetches the course when the grader is missing (Colab), then defines the forward pass.\n"
        "try:\n"
        "    import grader\n"
        "except ImportError:\n"
        + (f"    !git clone -q --depth 1 {course_repo} backprop-ninja\n"
           "    %pip install -q -e backprop-ninja\n"
           "    import sys; sys.path.insert(0, 'backprop-ninja')  # usable before a kernel restart\n"
           if course_repo else
           "    raise ImportError('the course is not installed here: pip install -e <your copy of the course>')\n")
        + "from grader.inline import check, setup\n\n"
        f'setup("{exercise.id}", globals(){which})'
    )
    from grader.courseware.forward import load_forward  # noqa: PLC0415 - torch, only to write notebooks

    code = load_forward(exercise.forward).graph(exercise.graph).source
    batch = "the first step of the run" if exercise.training else "the course's first batch"
    forward = (
        f"## The forward pass\n\nThe set-up cell ran this, under these names, on {batch} "
        "(the grader's own forward pass: changing the seed or the batch here changes nothing it checks):\n\n"
        f"```python\n{code}\n```"
    )
    cells = [
        nbformat.v4.new_markdown_cell(f"# {exercise.title}\n\n{intro.strip()}"),
        nbformat.v4.new_code_cell(setup),
        nbformat.v4.new_markdown_cell(forward),
    ]
    for i, block in enumerate(blocks):
        marker = f"# Exercise {number}\n" if i == 0 else ""
        cells.append(nbformat.v4.new_code_cell(marker + block))
    cells += [
        nbformat.v4.new_markdown_cell("## Check your work\n\nThe same checks, verdicts and hints as "
                                      f"`ninja-grade {exercise.id}`, on the code you ran above."),
        nbformat.v4.new_code_cell(f'check("{exercise.id}"{which})'),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write_notebooks(course: Course, exercise_ids: list[str], out: Path, *, course_repo: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for exercise_id in exercise_ids:
        path = out / f"{exercise_id}.ipynb"
        nbformat.write(build_notebook(course, course.exercise(exercise_id), course_repo=course_repo), str(path))
        written.append(path)
    return written
