"""What graded code may import and call, read from its code before it runs.

The grader checks a backward pass written by hand, so student code must not reach
autograd, the fused library calls an exercise forbids, the file system, processes or
the interpreter's internals. `check_policy` reads each statement and names the line that
breaks the rules; such a statement is left out on its own (grader/intake/refuse.py), so
the student learns why before anything runs. This is a courtesy and the first filter, not
the boundary: at run time the sandbox's child holds allow-lists of its own
(grader/confined/jail.py), and the kernel and the protocol hold the rest.
"""

from __future__ import annotations

import ast
import functools
import importlib
from dataclasses import dataclass
from types import ModuleType

# Modules graded code may import, and the submodules reachable as attributes.
# (Not typing, functools or dataclasses: they evaluate strings as code.)
ALLOWED_MODULES = frozenset({
    "torch", "torch.nn", "torch.nn.functional", "torch.linalg", "torch.special", "torch.fft",
    "math", "numpy", "numpy.linalg", "itertools", "collections", "random", "einops",
})
# Builtins graded code does not get; used as bare names, the static check names them.
BLOCKED_BUILTINS = frozenset({
    "getattr", "setattr", "delattr", "eval", "exec", "compile", "globals", "locals", "vars",
    "open", "input", "breakpoint", "help", "memoryview", "exit", "quit",
})

AUTOGRAD_NAMES = frozenset({
    "grad", "grad_fn", "backward", "autograd", "retain_grad", "retains_grad", "requires_grad",
    "requires_grad_", "enable_grad", "set_grad_enabled", "func", "functorch", "vjp", "jvp",
    "jacrev", "jacfwd", "hessian", "jacobian", "detect_anomaly",
})
# Names that reach files, processes, other modules or attributes chosen at run time.
ESCAPE_NAMES = BLOCKED_BUILTINS | frozenset({
    "attrgetter",
    "methodcaller", "load", "save", "from_file", "fromfile", "tofile", "loadtxt", "savetxt",
    "genfromtxt", "memmap", "ops", "jit", "library", "compiler", "hub", "utils", "serialization",
    "lib", "ctypeslib", "Formatter", "gi_frame", "gi_code", "cr_frame", "ag_frame", "f_back",
    "f_locals", "f_globals", "f_builtins", "tb_frame", "tb_next", "co_code",
})


class PolicyError(Exception):
    """Raised at run time when graded code reaches something it may not."""


@dataclass(frozen=True)
class Violation:
    lineno: int
    message: str
    end: int = 0  # where the offending expression ends on its line: inner ones first

    def __str__(self) -> str:
        return f"line {self.lineno}: {self.message}"


def _why(name: str, forbidden_calls: frozenset[str]) -> str | None:
    """Why `name` may not be used, or None if it may."""
    if name in AUTOGRAD_NAMES or "backward" in name:
        return (f"'{name}' is autograd; the grader checks the backward pass you write by hand, "
                "so autograd is off (no .grad, .backward(), requires_grad)")
    if name in forbidden_calls:
        return f"'{name}' does the whole computation for you; this exercise asks you to write it"
    if name.startswith("__"):
        return f"'{name}' reaches Python's internals, which graded code may not use"
    if name in ESCAPE_NAMES:
        return f"'{name}' is not available in graded code (no files, processes or dynamic lookups)"
    return None


PAUSED_IN_WITH = ("a generator or coroutine may not pause (yield or await) inside a `with` block: what the "
                  "`with` set up (inference mode, numpy's error handling) would outlive the run; leave the "
                  "block before it pauses")


class _Checker(ast.NodeVisitor):
    def __init__(self, forbidden_calls: frozenset[str], module_attrs: frozenset[str]) -> None:
        self.forbidden_calls = forbidden_calls
        self.module_attrs = module_attrs
        self.violations: list[Violation] = []
        self.in_with = 0  # `with` blocks open around this point, in this function

    def _with(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:  # each item is entered before the next is evaluated: `with a, (yield):` pauses in a
            self.visit(item)
            self.in_with += 1
        for stmt in node.body:
            self.visit(stmt)
        self.in_with -= len(node.items)

    def visit_With(self, node: ast.With) -> None:
        self._with(node)

    def visit_AsyncWith(self, node: ast.AsyncWith) -> None:
        self._with(node)

    def _scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef) -> None:
        """A function's, lambda's or class's body runs in a frame of its own, which no `with` around the
        definition is open in; its decorators, defaults and bases run where it is defined."""
        for field, value in ast.iter_fields(node):
            if field != "body":
                for part in value if isinstance(value, list) else [value]:
                    if isinstance(part, ast.AST):
                        self.visit(part)
        outer, self.in_with = self.in_with, 0
        for part in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(part)
        self.in_with = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scope(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scope(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scope(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scope(node)

    def _pauses(self, node: ast.Yield | ast.YieldFrom | ast.Await) -> None:
        if self.in_with:
            self.flag(node, PAUSED_IN_WITH)
        self.generic_visit(node)

    def visit_Yield(self, node: ast.Yield) -> None:
        self._pauses(node)

    def visit_YieldFrom(self, node: ast.YieldFrom) -> None:
        self._pauses(node)

    def visit_Await(self, node: ast.Await) -> None:
        self._pauses(node)

    def flag(self, node: ast.AST, message: str) -> None:
        self.violations.append(Violation(getattr(node, "lineno", 0), message, getattr(node, "end_col_offset", 0)))

    def visit_Name(self, node: ast.Name) -> None:
        # A variable may be called `grad`; only blocked builtins and dunders are flagged.
        if node.id in BLOCKED_BUILTINS or node.id in self.forbidden_calls or node.id.startswith("__"):
            self.flag(node, _why(node.id, self.forbidden_calls) or f"'{node.id}' is not available")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        why = _why(node.attr, self.forbidden_calls)
        if why is None and node.attr.startswith("_"):
            why = f"'.{node.attr}' is private; graded code may not use attributes that start with _"
        if why is None and node.attr in self.module_attrs:
            why = f"'.{node.attr}' is a module graded code may not use"
        if why:
            self.flag(node, why)
        self.generic_visit(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:  # `case Tensor(grad=g)` reads an attribute, past the sandbox's guards
            self.flag(node, _why(attr, self.forbidden_calls) or (
                f"a class pattern that reads '{attr}' is not available in graded code; read it after the match"))
        if node.patterns:  # `case C(x)` reads the attributes C's __match_args__ names, past them too
            self.flag(node, "a class pattern with positional parts (`case C(x)`) reads attributes the class names, "
                            "which graded code may not do; write `case C() as x` and read what you need after it")
        self.generic_visit(node)

    def _check_import(self, node: ast.AST, module: str) -> None:
        if module not in ALLOWED_MODULES:
            allowed = ", ".join(sorted(m for m in ALLOWED_MODULES if "." not in m))
            self.flag(node, f"import of '{module}' is not allowed in graded code (allowed: {allowed})")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_import(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            full = f"{module}.{alias.name}"
            if full in ALLOWED_MODULES:
                continue
            self._check_import(node, module)
            why = _why(alias.name, self.forbidden_calls)
            if why:
                self.flag(node, why)



@functools.cache
def module_attribute_names() -> frozenset[str]:
    """Attributes of the allowed modules that are modules graded code may not reach."""
    names: set[str] = set()
    allowed_attrs = {m.rsplit(".", 1)[1] for m in ALLOWED_MODULES if "." in m}
    for mod_name in ALLOWED_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        for attr, value in vars(mod).items():
            if isinstance(value, ModuleType) and attr not in allowed_attrs and value.__name__ not in ALLOWED_MODULES:
                names.add(attr)
    return frozenset(names)


def check_policy(tree: ast.Module, forbidden_calls: frozenset[str] = frozenset(),
                 module_attrs: frozenset[str] | None = None) -> list[Violation]:
    """Every place the code breaks the rules, in source order."""
    checker = _Checker(forbidden_calls, module_attribute_names() if module_attrs is None else module_attrs)
    checker.visit(tree)
    return sorted(checker.violations, key=lambda v: (v.lineno, v.end))
