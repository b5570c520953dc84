"""The --feedback page: a student's notebook as HTML, with the grader's report on top.

The notebook is rebuilt from its text first (`inert_notebook`), so nothing of the student's is
markup on the page.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import nbformat

from grader.files import write_atomic

SHOWN_OUTPUTS = ("text/plain", "image/png", "image/jpeg")  # shown as text or as a picture, never as markup
BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")
NOT_SHOWN = "(an output this page does not show: HTML, SVG, Markdown or script)"


def inert_output(output: Any) -> Any:
    """One output as text or a picture: nothing in it can become markup or script on the page. None for
    one that is not an output at all (a notebook's outputs are never checked when it is graded)."""
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        return nbformat.v4.new_output("stream", name="stderr" if output.get("name") == "stderr" else "stdout",
                                      text=str(output.get("text", "")))
    if kind == "error":
        ename, evalue, traceback = str(output.get("ename", "")), str(output.get("evalue", "")), output.get("traceback")
        lines = [str(line) for line in traceback] if isinstance(traceback, list) else [f"{ename}: {evalue}"]
        return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=lines)
    data = output.get("data")
    data = data if isinstance(data, dict) else {}
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
            outputs = cell.get("outputs")
            shown = [inert_output(o) for o in outputs] if isinstance(outputs, list) else []
            cells.append(nbformat.v4.new_code_cell(source, execution_count=count if isinstance(count, int) else None,
                                                   outputs=[o for o in shown if o is not None]))
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
