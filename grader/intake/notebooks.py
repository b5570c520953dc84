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

from grader.intake.extract import MAX_CELLS, Cell, clean_code
from grader.intake.submission import MAX_SUBMISSION_BYTES, SubmissionError, file_size

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
            raw = nbformat.reader.parse_json(text)
            refuse_too_much_code(raw, path)  # before the cells are read, checked or parsed: each costs per cell
            nb = _as_v4(_notebook_of(raw), path)
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


def _notebook_of(raw: object) -> NotebookNode:
    """What nbformat.reader.reads makes of the notebook's JSON, once parsed."""
    major, minor = nbformat.reader.get_version(raw)
    if major not in nbformat.versions:
        raise nbformat.NBFormatError(f"Unsupported nbformat version {major}")
    try:
        nb: NotebookNode = nbformat.versions[major].to_notebook_json(raw, minor=minor)
    except AttributeError as exc:
        raise nbformat.ValidationError(f"The notebook is invalid and is missing an expected key: {exc}") from None
    return nb


def refuse_too_much_code(raw: object, path: Path) -> None:
    """A SubmissionError when the notebook as read from its JSON has more cells, or more code in its code
    cells, than a submission may: the same MAX_SUBMISSION_BYTES as a .py, however the notebook spreads it."""
    if not isinstance(raw, dict):
        return
    worksheets = raw.get("worksheets")
    sheets = worksheets if isinstance(worksheets, list) else [raw]  # nbformat 3's, or 4's cells
    cells = [c for sheet in sheets if isinstance(sheet, dict) and isinstance(sheet.get("cells"), list)
             for c in sheet["cells"]]
    if len(cells) > MAX_CELLS:
        raise SubmissionError(f"{path} has {len(cells):,} cells; a notebook to grade has at most {MAX_CELLS:,}")
    size = 0
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", cell.get("input", ""))  # nbformat 3 calls a code cell's source `input`
            lines = source if isinstance(source, list) else [source]
            size += sum(len(line.encode("utf-8", "surrogatepass")) for line in lines if isinstance(line, str))
    if size > MAX_SUBMISSION_BYTES:
        raise SubmissionError(f"{path} holds {size:,} bytes of code; a submission is at most "
                              f"{MAX_SUBMISSION_BYTES:,}")


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
