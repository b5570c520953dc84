"""A student's submission, as the top-level statements the grader runs one by one.

For each statement we know which names it (re)binds or changes in place, so the
grader can tell which statement last produced a gradient, and where.
"""

from __future__ import annotations

import ast
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

MAX_SUBMISSION_BYTES = 2 * 1024 * 1024


class SubmissionError(Exception):
    """The submission cannot be read at all (missing, a directory, not text)."""


@dataclass(frozen=True)
class Statement:
    index: int
    lineno: int  # 1-based, in the submission's own file
    end_lineno: int
    code: CodeType
    assigns: frozenset[str]  # names bound or changed in place by this statement
    rebinds: frozenset[str] = frozenset()  # names it binds afresh (`x = ...`), not in place
    loads: frozenset[str] = frozenset()  # names it reads, function bodies included
    touches: frozenset[str] = frozenset()  # names it reads, binds, changes or deletes in any way, `global` ones too

    @property
    def defers(self) -> bool:
        """Whether it leaves code that may run after it: a function, lambda, class or generator (and a
        comprehension, which is compiled as a function too: a conservative reading)."""
        return any(isinstance(c, CodeType) for c in self.code.co_consts)


@dataclass(frozen=True, order=True)
class Location:
    """Where a line of a submission is: its cell and its line there, for code taken from a notebook
    (or a script cut into cells), else its line in the file. Ordered as the student reads them."""

    cell: int  # as a person counts cells (1 for the first); 0 for a file of its own
    line: int  # 1-based, in the cell or in the file

    @property
    def described(self) -> str:
        """As a message names it: `cell 14, line 5`, or `line 12`."""
        return f"cell {self.cell}, line {self.line}" if self.cell else f"line {self.line}"


@dataclass(frozen=True)
class LeftOut:
    """A statement that is not run: it does not parse, or it breaks the rules. A gradient whose last
    assignment it is gets `error` with its reason; everything else is judged without it."""

    where: Location
    assigns: frozenset[str]
    reason: str  # "syntax error: invalid syntax", "not run: 'grad' is autograd; ..."


def line_origin(origins: tuple[Location, ...], lineno: int) -> Location:
    """Where a line of a program came from: its cell's line for code taken from a notebook, else itself."""
    return origins[lineno - 1] if origins and 1 <= lineno <= len(origins) else Location(0, lineno)


@dataclass(frozen=True)
class Program:
    """Compiled statements, or the syntax error that stopped compiling them."""

    path: str
    source: str
    statements: tuple[Statement, ...]
    syntax_error: str | None = None
    origins: tuple[Location, ...] = ()  # for code taken from a notebook: where each line came from
    notes: tuple[str, ...] = ()  # said to the student about how the code was read
    left_out: tuple[LeftOut, ...] = ()  # statements not run, each on its own

    def where(self, lineno: int) -> Location:
        """Where line `lineno` of the program came from: the student's own line, in its cell for code
        taken from a notebook."""
        return line_origin(self.origins, lineno)

    def gradient_inputs(self, gradients: frozenset[str]) -> dict[str, frozenset[str]]:
        """For each gradient, the gradients its statements read, directly or through the student's own
        variables and functions assigned before them (a static, conservative reading)."""
        through: dict[str, set[str]] = {}  # a variable or function of theirs -> gradients it was computed from
        inputs: dict[str, set[str]] = {g: set() for g in gradients}
        for stmt in self.statements:
            read = {n for n in stmt.loads if n in gradients}
            for name in stmt.loads - gradients:
                read |= through.get(name, set())
            for name in stmt.assigns:
                (inputs if name in gradients else through).setdefault(name, set()).update(read)
        return {g: frozenset(r - {g}) for g, r in inputs.items()}

    def lost(self, name: str) -> LeftOut | None:
        """The left-out statement that was `name`'s last assignment, if one was: the value the
        student meant is in a line that did not run."""
        kept = [self.where(s.lineno) for s in self.statements if name in s.assigns]
        later = [lo for lo in self.left_out if name in lo.assigns and all(lo.where > k for k in kept)]
        return later[-1] if later else None

    def last_assignment(self, name: str) -> Statement | None:
        """The last statement that binds or changes `name`, if any."""
        for stmt in reversed(self.statements):
            if name in stmt.assigns:
                return stmt
        return None


def _target_names(target: ast.AST) -> set[str]:
    """Names a target binds or changes: `x`, `x, y`, `x[i]`, `x.attr`, `*x`."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(_target_names(t) for t in target.elts)) if target.elts else set()
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    if isinstance(target, (ast.Subscript, ast.Attribute)):
        return _target_names(target.value)  # dC[ix] += ... changes dC
    return set()


class _AssignedNames(ast.NodeVisitor):
    """Collects the module-level names a statement binds or changes in place."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.names.add(node.name)  # its body runs later, in its own scope

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.names.add(node.name)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.names.add(node.name)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        pass

    def visit_Assign(self, node: ast.Assign) -> None:
        for t in node.targets:
            self.names |= _target_names(t)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.names |= _target_names(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.names |= _target_names(node.target)
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.names |= _target_names(node.target)
        self.generic_visit(node)

    def visit_For(self, node: ast.For) -> None:
        self.names |= _target_names(node.target)
        self.generic_visit(node)

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            if item.optional_vars is not None:
                self.names |= _target_names(item.optional_vars)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for t in node.targets:
            self.names |= _target_names(t)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.names.add((alias.asname or alias.name).split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.names.add(alias.asname or alias.name)

    def visit_Call(self, node: ast.Call) -> None:
        # dC.index_add_(0, ix, src) and dW1.zero_() change their tensor in place.
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr.endswith("_") and not func.attr.startswith("_"):
            self.names |= _target_names(func.value)
        self.generic_visit(node)


def rebound_names(node: ast.stmt) -> frozenset[str]:
    """Names a plain assignment binds afresh: `x = ...` and `x, y = ...`, not `x += ...`."""
    if not isinstance(node, ast.Assign):
        return frozenset()
    names: set[str] = set()
    for target in node.targets:
        for t in target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]:
            if isinstance(t, ast.Name):
                names.add(t.id)
    return frozenset(names)


def assigned_names(node: ast.stmt) -> frozenset[str]:
    visitor = _AssignedNames()
    visitor.visit(node)
    return frozenset(visitor.names)


MAX_STATEMENTS = 5000  # top-level statements a program may have: each is refused, compiled and run on its own
MAX_NESTING = 100  # levels of a syntax tree the grader reads: its walks over it (ast.unparse: 5 frames a level) recurse
TOO_DEEP = f"the code is nested too deeply to read (an expression more than {MAX_NESTING} levels deep)"


def too_many(statements: int) -> str:
    return f"the code has {statements:,} statements, over the {MAX_STATEMENTS:,} a submission may have"


def parse(source: str, path: str = "<unknown>") -> ast.Module:
    """ast.parse, and RecursionError for a tree more than MAX_NESTING levels deep, as for one Python
    cannot parse: Python parses code some hundreds of levels deeper than the grader's walks over it
    (the policy, the sandbox's rewrite, the diagnoses) can follow."""
    tree = ast.parse(source, filename=path)
    for node in tree.body:  # a level takes a character at least (bar its innermost one or two)
        if node.lineno == node.end_lineno and (node.end_col_offset or 0) - node.col_offset < MAX_NESTING:
            continue  # a one-line statement shorter than the limit: most are, and none is too deep
        level: list[ast.AST] = [node]
        for _ in range(MAX_NESTING):
            level = [child for parent in level for child in ast.iter_child_nodes(parent)]
            if not level:
                break
        else:
            raise RecursionError(TOO_DEEP)
    return tree
MAX_BROKEN_LINES = 10  # lines left out of one file or cell for not parsing; beyond, it is too broken to read
_ASSIGNED = re.compile(r"^\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*(?:[-+*/@%&|^]|//|\*\*|>>|<<)?=(?!=)")


def without_broken_lines(source: str) -> tuple[str, tuple[tuple[int, str, frozenset[str]], ...]] | None:
    """The source with each line that stops it parsing replaced by `pass` (indentation kept, so a
    block stays a block), and for each such line: its number, why, and what it meant to assign.
    None when that does not make it parse within MAX_BROKEN_LINES lines."""
    lines = source.split("\n")
    broken: list[tuple[int, str, frozenset[str]]] = []
    while len(broken) <= MAX_BROKEN_LINES:
        try:
            compile("\n".join(lines), "<recovering>", "exec")  # the compiler's errors too: `return` outside a def
            return "\n".join(lines), tuple(broken)
        except SyntaxError as exc:
            n = min(exc.lineno or len(lines), len(lines))
            while n > 1 and not lines[n - 1].strip():  # an error at the end of the file: its last line
                n -= 1
            text = lines[n - 1]
            if not text.strip() or text.strip() == "pass":
                return None
            found = _ASSIGNED.match(text)
            names = frozenset(x.strip() for x in found[1].split(",")) if found else frozenset()
            broken.append((n, f"syntax error: {exc.msg}", names))
            lines[n - 1] = text[: len(text) - len(text.lstrip())] + "pass"
        except (ValueError, RecursionError, MemoryError):
            return None
    return None


def named(node: ast.AST) -> tuple[frozenset[str], frozenset[str]]:
    """The names a statement reads, and every name it reads, binds, changes or deletes, in any scope within
    it, with those its functions declare `global` or `nonlocal` (`del x` and `x += 1` in a function fail
    where x is unbound)."""
    reads: set[str] = set()
    touches: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            touches.add(n.id)
            if isinstance(n.ctx, ast.Load):
                reads.add(n.id)
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            touches.update(n.names)
    return frozenset(reads), frozenset(touches)


def compile_program(source: str, path: str, *, origins: tuple[Location, ...] = (), notes: tuple[str, ...] = (),
                    left_out: tuple[LeftOut, ...] = (),
                    rewrite: Callable[[ast.Module], ast.Module] | None = None) -> Program:
    """Split source into top-level statements and compile each on its own. Lines that do not parse
    are left out one by one (LeftOut), so one unfinished line does not cost the whole file.
    `rewrite` transforms each statement before it is compiled (the sandbox's guards); the
    statements, their lines and what they assign are those of the source as written."""
    try:
        tree = parse(source, path)
        compile(tree, path, "exec")  # errors only the compiler sees: `return` outside a def
    except SyntaxError as exc:
        recovered = without_broken_lines(source)
        if recovered is not None and recovered[0] != source:
            fixed, broken = recovered
            more = tuple(LeftOut(line_origin(origins, n), names, why) for n, why, names in broken)
            return compile_program(fixed, path, origins=origins, notes=notes, left_out=(*left_out, *more),
                                   rewrite=rewrite)
        where = line_origin(origins, exc.lineno).described if exc.lineno else "the file"
        if exc.lineno and exc.offset:
            where += f", column {exc.offset}"
        error = f"syntax error at {where}: {exc.msg}"
        return Program(path, source, (), error, origins, notes, left_out)
    except ValueError as exc:  # null bytes in the source
        return Program(path, source, (), f"the file cannot be parsed: {exc}", origins, notes)
    except (RecursionError, MemoryError):  # the student's code, not the grader, is at fault
        return Program(path, source, (), TOO_DEEP, origins, notes)
    if len(tree.body) > MAX_STATEMENTS:  # the lecture's whole notebook has some 150
        return Program(path, source, (), too_many(len(tree.body)), origins, notes)
    statements = []
    for i, node in enumerate(tree.body):  # what a statement assigns and reads is read before `rewrite` changes it
        lineno, end, assigns, rebinds = node.lineno, node.end_lineno or node.lineno, assigned_names(node), \
            rebound_names(node)
        reads, touches = named(node)
        module = ast.Module(body=[node], type_ignores=[])
        code = compile(module if rewrite is None else rewrite(module), path, "exec")
        statements.append(Statement(i, lineno, end, code, assigns, rebinds, reads, touches))
    return Program(path, source, tuple(statements), None, origins, notes, left_out)


def compile_to_run(source: str, path: str, *, rewrite: Callable[[ast.Module], ast.Module]) -> Program:
    """In the sandbox's child: the statements of a source the grader has read already (it parses:
    compile_program's recovery and the refusals are behind it), each rewritten and compiled, the same
    statements as compile_program's, less what only the grader reads of them (what each assigns
    and reads). A source that does not parse after all goes through compile_program."""
    try:
        tree = parse(source, path)
        statements = tuple(
            Statement(i, node.lineno, node.end_lineno or node.lineno,
                      compile(rewrite(ast.Module(body=[node], type_ignores=[])), path, "exec"), frozenset())
            for i, node in enumerate(tree.body))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return compile_program(source, path, rewrite=rewrite)
    return Program(path, source, statements)


def file_size(path: Path) -> int:
    """The size of a submission that is a file of its own, or a SubmissionError: a symbolic link could
    name another student's work or the course's solution, and a device or a pipe never ends."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise SubmissionError(f"no submission at {path}") from None
    except OSError as exc:
        raise SubmissionError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SubmissionError(f"{path} is a directory; name the .py file to grade")
    if stat.S_ISLNK(info.st_mode):
        raise SubmissionError(f"{path} is a symbolic link; grade the file it names, not the link")
    if not stat.S_ISREG(info.st_mode):
        raise SubmissionError(f"{path} is not a file (a device or a pipe?); grade a .py or .ipynb file")
    return info.st_size


def read_source(path: Path) -> str:
    """The submission's text, or a SubmissionError that says why not."""
    size = file_size(path)
    if size > MAX_SUBMISSION_BYTES:
        raise SubmissionError(f"{path} is {size:,} bytes; a submission is at most {MAX_SUBMISSION_BYTES:,}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SubmissionError(f"cannot read {path}: {exc.strerror}") from None
