"""Notebooks both ways: read a student's .ipynb into cells, and write the course's notebooks.

Reading never runs a kernel: only the cells' text is read, outputs are ignored.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import nbformat

from grader.courseware.course import Course, Exercise
from grader.files import write_atomic
from grader.intake.extract import Cell, clean_code
from grader.intake.submission import SubmissionError, file_size

MAX_NOTEBOOK_BYTES = 100 * 1024 * 1024  # outputs can be large; beyond this it is not a course notebook
# Where the Colab cell fetches the course when the grader is missing: the course's files live
# beside the grader, so it is cloned, not pip-installed from a wheel.


def read_cells(path: Path) -> list[Cell]:
    """The notebook's cells, with magics neutralised; SubmissionError (one line) if it is not one."""
    size = file_size(path)
    try:
        if size > MAX_NOTEBOOK_BYTES:
            raise SubmissionError(f"{path} is {size:,} bytes, over the {MAX_NOTEBOOK_BYTES // 2**20} MB a notebook "
                                  "to grade may have: clear its outputs and save it again")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{path} is not UTF-8 text (byte {exc.start}), so not a notebook") from None
    except OSError as exc:
        raise SubmissionError(f"cannot read {path}: {exc.strerror}") from None
    if not text.strip():
        raise SubmissionError(f"{path} is empty, not a notebook")
    try:
        nb = nbformat.reads(text, as_version=4)
        cells = [(c["cell_type"], c.get("source", ""), c.get("execution_count")) for c in nb.cells]
    except Exception as exc:  # nbformat raises many kinds; all mean "not a notebook we can read"
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise SubmissionError(f"{path} is not a Jupyter notebook: {reason}") from None
    result = []
    for number, (kind, source, count) in enumerate(cells, start=1):
        if kind == "code":
            code = clean_code(source)
            if code is not None:
                result.append(Cell(number, "code", code, count if isinstance(count, int) else None))
        elif kind == "markdown":
            result.append(Cell(number, "markdown", source))
    return result


# --- writing the course's notebooks ------------------------------------------------

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


SHOWN_OUTPUTS = ("text/plain", "image/png", "image/jpeg")  # shown as text or as a picture, never as markup
BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
NOT_SHOWN = "(an output this page does not show: HTML, SVG, Markdown or script)"


def inert_output(output: Any) -> Any:
    """One output as text or a picture: nothing in it can become markup or script on the page."""
    kind = output.get("output_type")
    if kind == "stream":
        return nbformat.v4.new_output("stream", name="stderr" if output.get("name") == "stderr" else "stdout",
                                      text=str(output.get("text", "")))
    if kind == "error":
        return nbformat.v4.new_output("error", ename=str(output.get("ename", "")), evalue=str(output.get("evalue", "")),
                                      traceback=[str(line) for line in output.get("traceback", [])])
    data = output.get("data", {})
    shown = {mime: data[mime] for mime in SHOWN_OUTPUTS if isinstance(data.get(mime), str)
             and (mime == "text/plain" or BASE64.fullmatch(data[mime]))}
    return nbformat.v4.new_output("display_data", data=shown or {"text/plain": NOT_SHOWN})


def inert_notebook(nb: Any) -> Any:
    """The student's notebook rebuilt from what is safe to show others (a TA opens this page too): each
    code cell's source, run count and outputs as text or pictures; each Markdown or raw cell as its
    source, shown as text, since its HTML and links are the student's. Metadata is left behind."""
    cells = []
    for cell in nb.cells:
        source = str(cell.get("source", ""))
        if cell.get("cell_type") == "code":
            count = cell.get("execution_count")
            cells.append(nbformat.v4.new_code_cell(source, execution_count=count if isinstance(count, int) else None,
                                                   outputs=[inert_output(o) for o in cell.get("outputs", [])]))
        else:  # an indented block: Markdown shows it as it was written, escaped
            cells.append(nbformat.v4.new_markdown_cell("\n".join(f"    {line}" for line in source.splitlines())))
    clean = nbformat.v4.new_notebook(cells=cells)
    clean.metadata["language_info"] = {"name": "python"}
    return clean


def write_feedback(notebook: Path, reports_html: str, out: Path) -> Path:
    """The student's notebook as HTML (nbconvert), with the grader's report on top, written
    atomically beside it: what a student or a TA opens to see verdicts next to the code."""
    from nbconvert import HTMLExporter  # noqa: PLC0415 - only this command renders HTML

    nb = inert_notebook(nbformat.read(str(notebook), as_version=4))
    report_cell = nbformat.v4.new_markdown_cell(reports_html)
    nb.cells.insert(0, report_cell)
    with warnings.catch_warnings():  # without IPython installed, nbconvert says so once per cell
        warnings.filterwarnings("ignore", message="IPython3 lexer unavailable", category=UserWarning)
        body, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)
    write_atomic(out, body)
    return out
