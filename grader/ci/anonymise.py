"""A student's line of code and message, made safe to show the class: no comment, no string, no name
of theirs.

In a line, comments and string literals are dropped (a string becomes "…"), and every identifier
that is not the lecture's (lecture_names: the exercise's stub and solution, its gradients and
forward pass, Python's keywords and builtins; or an attribute after a dot) becomes v1, v2, ... in
order of appearance. What is left is the shape of the mistake, which is what the class needs to
see. In a message, the student's name and file are taken out.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import tokenize
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from grader.courseware.course import Course, CourseError, Exercise

ExampleReader = Callable[[dict[str, Any], int], str | None]  # a report, a line -> that code, anonymised
MAX_LINES = 6  # a longer statement is cut, with a last line saying how much was left out
STRING = '"…"'


def vocabulary(sources: Iterable[str]) -> frozenset[str]:
    """The names a course's own files use: identifiers of the stub and solution, and Python's own."""
    names = set(keyword.kwlist) | set(dir(builtins))
    for source in sources:
        try:
            names |= {t.string for t in _tokens(source) if t.type == tokenize.NAME}
        except (tokenize.TokenError, SyntaxError, ValueError):
            continue
    return frozenset(names)


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(source).readline))


def statement_at(source: str, line: int) -> str | None:
    """The text of the top-level statement that starts on `line` (1-based), else that line alone."""
    lines = source.splitlines()
    if not 1 <= line <= len(lines):
        return None
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return lines[line - 1]
    for node in tree.body:
        if node.lineno == line:
            return "\n".join(lines[line - 1:(node.end_lineno or line)])
    return lines[line - 1]


def anonymise(code: str, known: frozenset[str]) -> str | None:
    """`code` without comments or strings, with the names not in `known` renamed; None when it does
    not tokenize cleanly (then nothing of it is shown)."""
    code = _dedent(code)
    try:
        tokens = _tokens(code + "\n")
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None
    if any(t.type == tokenize.ERRORTOKEN and not t.string.isspace() for t in tokens):
        return None  # an unterminated string, a stray character: not safe to take apart
    lines = code.split("\n")
    offsets = [0]
    for text in lines:
        offsets.append(offsets[-1] + len(text) + 1)

    def at(position: tuple[int, int]) -> int:
        return offsets[position[0] - 1] + position[1]

    edits: list[tuple[int, int, str]] = []  # (start, end, replacement) in `code`
    renamed: dict[str, str] = {}
    fstring_start: tuple[int, int] | None = None
    depth = 0
    previous = ""
    for token in tokens:
        kind = tokenize.tok_name.get(token.type, "")
        if kind == "FSTRING_START":  # Python 3.12+: an f-string is many tokens; drop them all
            depth += 1
            if depth == 1:
                fstring_start = token.start
        elif kind == "FSTRING_END":
            depth -= 1
            if depth == 0 and fstring_start is not None:
                edits.append((at(fstring_start), at(token.end), STRING))
        elif depth:
            pass
        elif token.type == tokenize.COMMENT:
            edits.append((at(token.start), at(token.end), ""))
        elif token.type == tokenize.STRING:
            edits.append((at(token.start), at(token.end), STRING))
        elif token.type == tokenize.NAME and token.string not in known and previous != ".":
            name = renamed.setdefault(token.string, f"v{len(renamed) + 1}")
            edits.append((at(token.start), at(token.end), name))
        if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            previous = token.string
    for start, end, replacement in sorted(edits, reverse=True):
        code = code[:start] + replacement + code[end:]
    kept = [text.rstrip() for text in code.split("\n")]
    kept = [text for text in kept if text.strip()]
    if len(kept) > MAX_LINES:
        kept = [*kept[:MAX_LINES - 1], f"... ({len(kept) - MAX_LINES + 1} more lines)"]
    return "\n".join(kept) or None


def _dedent(code: str) -> str:
    """Lines as a block: the first line's indentation taken off every line that has it."""
    lines = code.split("\n")
    indent = len(lines[0]) - len(lines[0].lstrip())
    return "\n".join(text[indent:] if text[:indent].isspace() else text for text in lines) if indent else code


def without_student(message: str, report: dict[str, Any]) -> str:
    """A message with the student's file and name taken out."""
    for own in sorted({str(report.get("submission") or ""), Path(str(report.get("submission") or "")).name,
                       str(report.get("student") or "")}, key=len, reverse=True):
        if len(own) >= 3:
            message = message.replace(own, "…")
    return message


def submission_reader(course: Course, exercise: Exercise, base: Path | None = None) -> ExampleReader:
    """Read a report's submission again, as the grader read it (a notebook's cells included), and
    return the statement at a line, anonymised; None when the file is gone or unreadable."""
    known: list[frozenset[str]] = []

    def read(report: dict[str, Any], line: int) -> str | None:
        path = Path(str(report.get("submission") or ""))
        if not path.is_file() and base is not None and not path.is_absolute():
            path = base / path
        if path.suffix not in (".py", ".ipynb") or not path.is_file():
            return None
        from grader.intake.submission import SubmissionError  # noqa: PLC0415
        from grader.pipeline import load_submission  # noqa: PLC0415 - torch, only for an example

        try:
            source = load_submission(course, exercise, path).source
        except (SubmissionError, CourseError, OSError):
            return None
        if not known:
            known.append(lecture_names(exercise))
        statement = statement_at(source, line)
        return anonymise(statement, known[0]) if statement else None

    return read


def lecture_names(exercise: Exercise) -> frozenset[str]:
    """The names that are the lecture's, not a student's: those of the exercise's stub and solution, its
    gradients, and its forward pass (tensors, parameters, sizes, data)."""
    names = set(vocabulary(path.read_text(encoding="utf-8", errors="replace")
                           for path in (exercise.stub, exercise.solution) if path.is_file()))
    names |= {g.name for g in exercise.gradients} | {g.tensor for g in exercise.gradients}
    try:
        from grader.courseware.forward import load_forward  # noqa: PLC0415 - torch

        forward = load_forward(exercise.forward)
        graph = forward.graph(exercise.graph)
        names |= {*graph.nodes, *graph.leaves, *forward.sizes, *forward.data_names, *(k for k, _ in exercise.sizes)}
    except CourseError:
        pass  # a broken forward file was said when grading; the stub's and solution's names still count
    return frozenset(names)
