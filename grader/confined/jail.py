"""Graded code's view of Python, in the sandbox's child: allow-lists, checked at run time.

The second line of the trust boundary, behind the protocol (nothing that could be an answer
is in the child before it has committed its own, grader/confined/protocol.py) and the kernel
(grader/confined/kernel.py). The child compiles graded code through `guard`, which rewrites:

- every attribute read `x.name` into `__ninja_get__(x, "name")`: module views answer only the
  names their allow-list holds (grader/confined/allowed.py), tensors and arrays only their
  allowed methods, frames, tracebacks and code objects nothing, and `str.format` checks its
  fields (no `{0.attr}` walks);
- every attribute store or delete into `__ninja_target__(x)["name"]`: allowed only on objects
  graded code made (its classes, their instances, its functions) and on a tensor's `.data`;
- every `except ... as e:` so that `e` is a copy of the exception carrying plain values only
  (no traceback, no `.obj`, no context).

Builtins are an allow-list too, with a guarded `__import__`, a `__build_class__` that
records the classes graded code defines (and refuses bases outside its own classes, object
and the built-in exceptions), and a `type` that makes no class and hands out no metaclass.
An audit hook refuses files, processes, sockets, ctypes and frame walks for whatever slips
past all of this.
"""

from __future__ import annotations

import abc
import ast
import builtins
import gc
import importlib
import string
import sys
import types
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import numpy
import torch

from grader.confined import allowed
from grader.confined.policy import ALLOWED_MODULES, AUTOGRAD_NAMES, PolicyError

GET, TARGET, CLEAN = "__ninja_get__", "__ninja_target__", "__ninja_clean__"
INTERNAL_ROOTS = frozenset({"numpy", "torch", "einops"})  # packages whose C code may import their own parts lazily


def _public(module_name: str) -> frozenset[str]:
    """Every public function (and class) of a module of pure math (torch.linalg, torch.special, ...):
    not its submodules, nor its module-level data (torch.linalg.common_notes, a dict a run could
    write into and the next one read)."""
    module = importlib.import_module(module_name)
    public = ((n, getattr(module, n)) for n in dir(module) if not n.startswith("_"))
    return frozenset(n for n, value in public if callable(value) and not isinstance(value, types.ModuleType))


MODULE_NAMES: dict[str, Callable[[], frozenset[str]]] = {
    "torch": lambda: allowed.TORCH_NAMES,
    "torch.nn": lambda: frozenset({"functional"}),
    "torch.nn.functional": lambda: allowed.FUNCTIONAL_NAMES,
    "torch.linalg": lambda: _public("torch.linalg"),
    "torch.special": lambda: _public("torch.special"),
    "torch.fft": lambda: _public("torch.fft"),
    "numpy": lambda: allowed.NUMPY_NAMES,
    "numpy.linalg": lambda: _public("numpy.linalg"),
    "math": lambda: allowed.MATH_NAMES,
    "itertools": lambda: allowed.ITERTOOLS_NAMES,
    "collections": lambda: allowed.COLLECTIONS_NAMES,
    "random": lambda: allowed.RANDOM_NAMES,
    "einops": lambda: allowed.EINOPS_NAMES,
}
_names_of: dict[str, frozenset[str]] = {}


def module_names(module_name: str) -> frozenset[str]:
    """The names graded code may read of an allowed module."""
    if module_name not in _names_of:
        _names_of[module_name] = MODULE_NAMES.get(module_name, frozenset)() - AUTOGRAD_NAMES
    return _names_of[module_name]


def type_name(kind: type) -> str:
    """A class's own name, read past any metaclass graded code may have given it."""
    name = type.__dict__["__name__"].__get__(kind, type)
    return str.__str__(name) if isinstance(name, str) else "object"


def refusal(what: str) -> PolicyError:
    return PolicyError(f"{what} is not available in graded code")


# --- modules ---------------------------------------------------------------------------

_REAL: dict[int, types.ModuleType] = {}  # id(view) -> the module it shows; not reachable from the view
_VIEWS: dict[str, SafeModule] = {}


class SafeModule(types.ModuleType):
    """A read-only view of an allowed module: its allow-listed names, nothing else."""

    def __getattr__(self, name: str) -> Any:
        return _module_attribute(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise PolicyError(f"graded code may not change {self.__name__}.{name}")

    def __delattr__(self, name: str) -> None:
        raise PolicyError(f"graded code may not change {self.__name__}.{name}")

    def __dir__(self) -> list[str]:
        return sorted(module_names(self.__name__))


def _module_attribute(view: SafeModule, name: str) -> Any:
    real = _REAL[id(view)]
    full = f"{real.__name__}.{name}"
    if name.startswith("_") or name not in module_names(real.__name__) or "backward" in name:
        if not name.startswith("_") and not hasattr(real, name):  # a slip of the keyboard, said as Python says it
            raise AttributeError(f"module '{real.__name__}' has no attribute '{name}'")
        raise refusal(full)
    try:
        value = getattr(real, name)
    except AttributeError:  # a name of a newer or older release: said plainly, with no object attached
        raise AttributeError(f"module '{real.__name__}' has no attribute '{name}'") from None
    if isinstance(value, types.ModuleType):
        if full in ALLOWED_MODULES or value.__name__ in ALLOWED_MODULES:
            return view_of(value)
        raise refusal(full)
    return value


def view_of(module: types.ModuleType) -> SafeModule:
    """The one SafeModule view of `module`."""
    view = _VIEWS.get(module.__name__)
    if view is None:
        view = SafeModule(module.__name__)
        _REAL[id(view)] = module
        _VIEWS[module.__name__] = view
    return view


def safe_import(name: str, globals: Any = None, locals: Any = None,
                fromlist: Any = (), level: int = 0) -> types.ModuleType:
    """__import__ for graded code: allowed modules only, as SafeModule views.

    C code calls it too, from graded code's frame, for what numpy and torch load lazily
    (`numpy._core._methods` when an array is summed); it passes a list as fromlist, which no
    import statement does. Such an import of a module already loaded by an allowed package
    gets the module itself: it goes back to the C code that asked, not to graded code."""
    if type(fromlist) is list and type(name) is str and name in sys.modules and \
            name.split(".", 1)[0] in INTERNAL_ROOTS:
        return sys.modules[name]
    if type(name) is not str or level != 0 or name not in ALLOWED_MODULES:
        raise PolicyError(f"import of '{name}' is not allowed in graded code")
    module = importlib.import_module(name)
    for item in fromlist or ():
        if type(item) is not str:
            raise PolicyError(f"import from '{name}' of something that is not a name")
        value = getattr(module, item, None)
        if isinstance(value, types.ModuleType) and f"{name}.{item}" not in ALLOWED_MODULES:
            raise PolicyError(f"import of '{name}.{item}' is not allowed in graded code")
        if not isinstance(value, types.ModuleType) and item not in module_names(name):
            raise refusal(f"{name}.{item}")
    if fromlist:
        return view_of(module)
    return view_of(importlib.import_module(name.split(".", maxsplit=1)[0]))


def safe_type(*args: Any, **kwargs: Any) -> Any:
    """type() for graded code: an object's class. Never a metaclass (for a class, this function
    stands in for it), and no three-argument form: a class is made by a class statement only,
    through Jail.build_class and its checks."""
    if len(args) != 1 or kwargs:
        raise PolicyError("type() with three arguments is not available in graded code; write a class statement")
    kind = type(args[0])
    return safe_type if issubclass(kind, type) else kind


# --- what attribute reads may reach ------------------------------------------------------

CLOSED = (types.FrameType, types.TracebackType, types.CodeType, types.CellType)
GENERATORS = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
GENERATOR_NAMES = frozenset({"send", "throw", "close", "asend", "athrow", "aclose"})
_formatter = string.Formatter()


def _check_format(fmt: str, depth: int = 0) -> None:
    """A format string that reads no attributes (`{0.x}`): indexing (`{0[1]}`) is fine."""
    try:
        fields = list(_formatter.parse(fmt))
    except ValueError:
        return  # str.format itself will say what is wrong with it
    for _literal, field, spec, _conversion in fields:
        if field is not None and "." in field:
            raise PolicyError(f"a format string may not read attributes ('{{{field}}}'); use an f-string instead")
        if spec and depth < 4:
            _check_format(spec, depth + 1)


def _safe_format(fmt: str, /, *args: Any, **kwargs: Any) -> str:
    if not isinstance(fmt, str):
        raise TypeError("format() needs a str")
    _check_format(fmt)
    return str.format(fmt, *args, **kwargs)


def _safe_format_map(fmt: str, mapping: Any, /) -> str:
    if not isinstance(fmt, str):
        raise TypeError("format_map() needs a str")
    _check_format(fmt)
    return str.format_map(fmt, mapping)


_SUPER_SELF_CLASS = vars(super)["__self_class__"]  # read past any attribute graded code's classes define


def _allowed_for(obj: object, kind: type) -> frozenset[str] | None:
    """The allow-list of attributes for a tensor or an array (or their classes); None for anything else.
    `super(torch.Tensor, t)` answers for t, so the list of t's class holds for it too."""
    if kind is super:
        bound = _SUPER_SELF_CLASS.__get__(obj, super)
        return _allowed_for(bound, bound) if isinstance(bound, type) else None
    target = obj if isinstance(obj, type) else kind
    if issubclass(target, torch.Tensor):
        return allowed.TENSOR_ATTRIBUTES
    if issubclass(target, (numpy.ndarray, numpy.generic)):
        return allowed.NDARRAY_ATTRIBUTES
    return None


class Jail:
    """The runtime guards of one program (its path names its own functions)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.classes: weakref.WeakSet[type] = weakref.WeakSet()  # the classes graded code defined

    # reading

    def get(self, obj: object, name: str) -> Any:
        if name.startswith("_"):
            raise PolicyError(f"'.{name}' is private; graded code may not use attributes that start with _")
        kind = type(obj)
        if kind is SafeModule:
            return _module_attribute(obj, name)  # type: ignore[arg-type]
        if kind in CLOSED or (kind in GENERATORS and name not in GENERATOR_NAMES):
            raise refusal(f"{type_name(kind)}.{name}")
        if isinstance(obj, BaseException) and name == "obj":
            raise refusal("an error's .obj")
        if name == "register" and isinstance(obj, abc.ABCMeta) and not self.owns(obj):
            raise refusal(f"{type_name(obj)}.register")  # it would change the class for every later run
        names = _allowed_for(obj, kind)
        if names is not None and (name not in names or "backward" in name):
            if not hasattr(obj, name):  # a slip of the keyboard, said as Python says it
                raise AttributeError(f"'{type_name(kind)}' object has no attribute '{name}'")
            raise refusal(f"{'Tensor' if names is allowed.TENSOR_ATTRIBUTES else 'array'}.{name}")
        if name in ("format", "format_map") and (obj is str or isinstance(obj, str)):
            method = _safe_format if name == "format" else _safe_format_map
            return method if obj is str else types.MethodType(method, obj)
        try:
            return getattr(obj, name)
        except AttributeError:  # said as Python says it, without the object Python would attach
            raise AttributeError(f"'{type_name(kind)}' object has no attribute '{name}'") from None

    # writing

    def owns(self, obj: object) -> bool:
        """Whether graded code made `obj`: one of its classes, an instance of one, or its function."""
        if isinstance(obj, types.FunctionType):
            return obj.__code__.co_filename == self.path
        kind = obj if isinstance(obj, type) else type(obj)
        return any(c in self.classes for c in type.__dict__["__mro__"].__get__(kind, type))

    def check_store(self, obj: object, name: str) -> None:
        if type(name) is not str or name.startswith("_"):
            raise PolicyError("graded code may not change attributes that start with _")
        if self.owns(obj) or (isinstance(obj, torch.Tensor) and not isinstance(obj, type) and name == "data"):
            return
        what = type_name(obj) if isinstance(obj, type) else f"a {type_name(type(obj))}"
        raise PolicyError(f"graded code may not change {what}'s .{name}: only what it creates itself")

    def target(self, obj: object) -> _Target:
        return _Target(self, obj)

    # classes

    def build_class(self, func: Any, name: Any, *bases: Any, **kwargs: Any) -> Any:
        if "metaclass" in kwargs:
            raise PolicyError("graded code may not give a class a metaclass")
        for named in bases:
            base = type if named is safe_type else named  # `class Meta(type)` names the builtin graded code sees
            if not isinstance(base, type):
                raise PolicyError("a class of graded code must derive from classes")
            builtin_error = issubclass(base, BaseException) and base.__module__ == "builtins"
            if not (base is object or builtin_error or self.owns(base)):
                raise PolicyError(f"a class of graded code may derive from object, its own classes and Python's "
                                  f"errors, not from {type_name(base)}")
        cls = builtins.__build_class__(func, name, *bases, **kwargs)
        self.classes.add(cls)
        return cls

    # errors

    def clean(self, exc: BaseException) -> BaseException:
        """The exception as graded code may hold it: its own kind with plain arguments only."""
        kind = type(exc)
        if self.owns(kind):
            return exc
        plain = tuple(a if type(a) in (str, int, float, bool, bytes, type(None)) else f"<{type_name(type(a))}>"
                      for a in exc.args)
        try:
            copy = kind(*plain)
        except Exception:
            copy = RuntimeError(*plain)
        return copy

    # the namespace

    def builtins(self) -> dict[str, Any]:
        """The builtins graded code sees: the allow-list, a guarded import, the class builder."""
        names = {k: v for k, v in vars(builtins).items() if k in allowed.BUILTINS}
        names.update(__import__=safe_import, __build_class__=self.build_class, __name__="__main__", type=safe_type)
        return names

    def names(self) -> dict[str, Any]:
        return {GET: self.get, TARGET: self.target, CLEAN: self.clean}


class _Target:
    """Where `x.name = value`, `x.name += value` and `del x.name` of graded code go."""

    __slots__ = ("_jail", "_obj")  # private: graded code that held a target could not read its jail

    def __init__(self, jail: Jail, obj: object) -> None:
        self._jail, self._obj = jail, obj

    def __getitem__(self, name: str) -> Any:
        return self._jail.get(self._obj, name)

    def __setitem__(self, name: str, value: Any) -> None:
        self._jail.check_store(self._obj, name)
        setattr(self._obj, name, value)

    def __delitem__(self, name: str) -> None:
        self._jail.check_store(self._obj, name)
        delattr(self._obj, name)


_jails: dict[str, Jail] = {}


def jail_for(path: str) -> Jail:
    """The one Jail of a program (its classes are remembered across runs)."""
    if path not in _jails:
        _jails[path] = Jail(path)
    return _jails[path]


def safe_builtins(path: str) -> dict[str, Any]:
    return jail_for(path).builtins()


def guarded_names(path: str) -> dict[str, Any]:
    return jail_for(path).names()


# --- the rewrite -----------------------------------------------------------------------


class _Guard(ast.NodeTransformer):
    """Rewrites attribute access and exception handlers to go through the Jail (module docstring)."""

    # Every node made here takes the location of the node it stands for, so no walk of the whole tree
    # is needed afterwards to fill locations in.

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        value = self.visit(node.value)
        attr = _at(ast.Constant(node.attr), node)
        if isinstance(node.ctx, ast.Load):
            return _at(ast.Call(_at(ast.Name(GET, ast.Load()), node), [value, attr], []), node)
        target = _at(ast.Call(_at(ast.Name(TARGET, ast.Load()), node), [value], []), node)
        return _at(ast.Subscript(target, attr, node.ctx), node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        self.generic_visit(node)
        if node.name:
            call = ast.Call(_at(ast.Name(CLEAN, ast.Load()), node), [_at(ast.Name(node.name, ast.Load()), node)], [])
            clean = ast.Assign([_at(ast.Name(node.name, ast.Store()), node)], _at(call, node))
            node.body.insert(0, _at(clean, node))
        return node

    def visit_match_case(self, node: ast.match_case) -> ast.AST:
        # A pattern's dotted names (`case torch.float32:`) must stay as they are to compile; they read
        # modules through their views, and class patterns with sub-patterns are refused by the static check.
        if node.guard is not None:
            node.guard = self.visit(node.guard)
        node.body = [self.visit(stmt) for stmt in node.body]
        return node


_Node = TypeVar("_Node", bound=ast.AST)


def _at(new: _Node, node: ast.AST) -> _Node:
    """`new`, at the place in the source of `node`."""
    return ast.copy_location(new, node)


def guard(tree: ast.Module) -> ast.Module:
    """The module with every attribute access and exception handler going through the Jail."""
    guarded = _Guard().visit(tree)
    assert isinstance(guarded, ast.Module)
    return guarded


# --- the audit hook ------------------------------------------------------------------------

REFUSED_EVENTS = ("open", "os.", "subprocess.", "socket.", "ctypes.", "shutil.", "tempfile.", "pickle.", "marshal.",
                  "code.__new__", "function.__new__", "sys.addaudithook", "sys.setprofile", "sys.settrace",
                  "webbrowser.", "urllib.", "http.", "ftplib.", "smtplib.", "sqlite3.", "glob.", "winreg.", "msvcrt.")
FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "gi_code", "cr_code", "ag_code"})


_graded = [False]  # whether graded code is running now; out of its reach (it cannot name this module)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _graded[0] and (event.startswith(REFUSED_EVENTS) or (
            event == "object.__getattr__" and len(args) > 1 and args[1] in FRAME_ATTRIBUTES)):
        raise PermissionError(f"{event.split('.', maxsplit=1)[0]} is not available in graded code")


class graded_code:  # noqa: N801 - used as a statement: `with graded_code():`
    """While graded code runs, the audit hook refuses what it refuses."""

    def __enter__(self) -> None:
        _graded[0] = True

    def __exit__(self, *exc: object) -> None:
        _graded[0] = False


_before_collection: list[bool] = []


def _collecting(phase: str, info: dict[str, int]) -> None:
    """The collector may start anywhere, the child's own code included, and runs the finalisers of
    what it frees, graded code's among them: while it runs, the audit hook holds as for graded code."""
    if phase == "start":
        _before_collection.append(_graded[0])
        _graded[0] = True
    elif _before_collection:
        _graded[0] = _before_collection.pop()


def audit_from_now_on() -> str:
    """Refuse files, processes, sockets, ctypes, deserialising and frame walks to graded code in
    this process for good, the finalisers the collector runs included (the child calls it once it
    is confined)."""
    sys.addaudithook(_audit)
    gc.callbacks.append(_collecting)
    return "audit hook (no files, processes, sockets or frame walks)"
