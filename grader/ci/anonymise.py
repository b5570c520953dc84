"""A student's line of code, made safe to show the class: no comment, no string, no name of theirs.

Comments and string literals are dropped (a string becomes "…"); every identifier that is not
the lecture's (a name in the exercise's stub or solution, a Python keyword or builtin, or an
attribute after a dot) becomes v1, v2, ... in order of appearance. What is left is the shape of
the mistake, which is what the class needs to see.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import tokenize
from collections.abc import Iterable

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
