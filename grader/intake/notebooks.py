"""A student's .ipynb read into cells.

Reading never runs a kernel: only the cells' text is read, outputs are ignored.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from traitlets.log import get_logger

from grader.intake.extract import Cell, clean_code
from grader.intake.submission import SubmissionError, file_size

LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a pair no text can hold: read as U+FFFD, as editors show it
MAX_NOTEBOOK_BYTES = 100 * 1024 * 1024  # outputs can be large; beyond this it is not a course notebook


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
        with warnings.catch_warnings():  # nbformat's advice to the notebook's author (a missing cell id)
            warnings.simplefilter("ignore")
            nb = _as_v4(nbformat.reader.reads(text), path)
        cells = [(c["cell_type"], c.get("source", ""), c.get("execution_count")) for c in nb.cells]
    except SubmissionError:
        raise
    except Exception as exc:  # nbformat raises many kinds; all mean "not a notebook we can read"
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise SubmissionError(f"{path} is not a Jupyter notebook: {reason}") from None
    result = []
    for number, (kind, written, count) in enumerate(cells, start=1):
        if not isinstance(written, str):  # nbformat reads a source of 5 or null as it is
            raise SubmissionError(f"{path} is not a Jupyter notebook: cell {number}'s source is "
                                  f"{json_kind(written)}, not text")
        source = LONE_SURROGATE.sub("\ufffd", written)  # JSON's "\ud800" is a str that Python cannot parse
        if kind == "code":
            code = clean_code(source)
            if code is not None:
                result.append(Cell(number, "code", code, count if isinstance(count, int) else None))
        elif kind == "markdown":
            result.append(Cell(number, "markdown", source))
    return result


def _as_v4(nb: NotebookNode, path: Path) -> NotebookNode:
    """What nbformat.reads(..., as_version=4) makes of the notebook read as written, once an older
    format's heading cells are checked: their conversion writes `level` hashes, so a level of 10**9 in a
    3 KB file would have the grader allocate gigabytes."""
    if nb.get("nbformat", 4) < 4:
        nb = nbformat.convert(nb, 3)
        for number, cell in enumerate((c for sheet in nb.get("worksheets", []) for c in sheet.get("cells", [])),
                                      start=1):
            level = cell.get("level", 1)
            if cell.get("cell_type") == "heading" and not (type(level) is int and 1 <= level <= 6):
                raise SubmissionError(f"{path} is not a Jupyter notebook: cell {number} is a heading of level "
                                      f"{_short(level)}, where a heading's level is 1 to 6")
    nb = nbformat.convert(nb, 4)
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:  # logged, as nbformat.reads does; the cells are checked below
        get_logger().error("Notebook JSON is invalid: %s", exc)
    return nb


def _short(value: object) -> str:
    said = repr(value)
    return said if len(said) <= 20 else said[:20] + "..."


def json_kind(value: object) -> str:
    """What a JSON value is, in words."""
    kinds = ((bool, "true or false"), ((int, float), "a number"), (dict, "an object"), (list, "a list"))
    return "null" if value is None else next((said for kind, said in kinds if isinstance(value, kind)), "a value")
