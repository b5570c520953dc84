"""The sandbox's in-process second line: allow-lists, checked at run time (grader/confined/jail.py).

Each attack runs twice here, in this process: through the jail, as the sandbox's child runs
graded code, where it must be refused; and with the jail switched off (plain compile, real
builtins and modules), where it must reach what it was after. So every test fails if its
protection is taken away. The kernel and the protocol, the first line, are proved in
tests/test_confinement.py and tests/test_protocol.py.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pytest
import torch
import torch.nn.functional as F

from grader.confined import allowed
from grader.confined.jail import guard
from grader.confined.policy import AUTOGRAD_NAMES
from grader.confined.runner import execute, namespace
from grader.intake.submission import compile_program

PATH = "<jail-test>"


def run(source: str, given: dict[str, Any] | None = None, *, jailed: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Run source as the child runs graded code (jailed), or plainly; the namespace after, and the errors."""
    program = compile_program(source, PATH, rewrite=guard if jailed else None)
    if jailed:
        ns = namespace(dict(given or {}), {}, PATH)
    else:
        ns = {**(given or {}), "torch": torch, "F": F, "__builtins__": builtins, "__name__": "__main__"}
    errors, _output, _halted, _seconds = execute(program, ns)
    return ns, [error.text for error in errors.values()]


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("the answer is 42\n")
    return path


@pytest.fixture
def marker() -> Iterator[None]:
    """Removes what an unjailed run adds to torch.Tensor."""
    yield
    if hasattr(torch.Tensor, "ninja_marker"):
        del torch.Tensor.ninja_marker


ESCAPES = [
    # (name, source, what the jailed run's error says, what proves the plain run got there)
    ("class-attribute-store", "torch.Tensor.ninja_marker = 1\nok = hasattr(torch.Tensor, 'ninja_marker')",
     "may not change Tensor's .ninja_marker", lambda ns: ns.get("ok") is True),
    ("format-walks-attributes", "found = '{0.__class__.__mro__}'.format(1)",
     "a format string may not read attributes", lambda ns: "object" in ns.get("found", "")),
    ("format-map-walks-attributes", "found = '{x.__class__}'.format_map({'x': 1})",
     "a format string may not read attributes", lambda ns: "int" in ns.get("found", "")),
    ("unbound-str-format", "found = str.format('{0.real.__class__}', 1)",
     "a format string may not read attributes", lambda ns: "int" in ns.get("found", "")),
    ("userstring-format", "import collections\nfound = collections.UserString('{0.__class__}').format(1)",
     "collections.UserString is not available", lambda ns: "int" in ns.get("found", "")),
    ("error-carries-its-object", "try:\n    torch.no_such_name\nexcept Exception as e:\n    real = e.obj",
     "an error's .obj is not available", lambda ns: ns.get("real") is torch),
    ("site-printer-reads-files", "found = type(license)",
     "NameError", lambda ns: ns.get("found") is not None),
    ("numpy-fromregex", "import numpy as np\nfound = np.fromregex(SECRET, r'(.*)', [('line', 'S40')])",
     "numpy.fromregex is not available", lambda ns: "found" in ns and b"42" in bytes(ns["found"][0][0])),
    ("numpy-imported-by-name", "from numpy import fromregex\nfound = fromregex(SECRET, r'(.*)', [('line', 'S40')])",
     "numpy.fromregex is not available", lambda ns: "found" in ns and b"42" in bytes(ns["found"][0][0])),
    ("ndarray-tofile", "written = logits.numpy().tofile(OUT) is None",
     "array.tofile is not available", lambda ns: ns.get("written") is True),
    ("tensor-storage", "found = logits.untyped_storage()",
     "Tensor.untyped_storage is not available", lambda ns: ns.get("found") is not None),
    ("torch-from-file", "found = torch.from_file(SECRET, size=4, dtype=torch.uint8)",
     "torch.from_file is not available", lambda ns: ns.get("found") is not None),
    ("with-block-traceback",
     "class Catch:\n    def __enter__(self):\n        return self\n    def __exit__(self, kind, value, tb):\n"
     "        self.frame = tb.tb_frame\n        return True\nc = Catch()\nwith c:\n    1 / 0\nfound = c.frame",
     "traceback.tb_frame is not available", lambda ns: ns.get("found") is not None),
    ("generator-frame", "def g():\n    yield 1\nit = g()\nfound = it.gi_frame",
     "generator.gi_frame is not available", lambda ns: ns.get("found") is not None),
    ("metaclass", "class Meta(type):\n    pass\nclass Odd(metaclass=Meta):\n    pass\nfound = Odd",
     "may derive from object, its own classes and Python's errors, not from type", lambda ns: "found" in ns),
    ("tensor-subclass", "class Agreeable(torch.Tensor):\n    pass\nfound = Agreeable",
     "not from Tensor", lambda ns: "found" in ns),
    ("builtin-open", "found = open(SECRET).read()", "NameError", lambda ns: "42" in ns.get("found", "")),
    ("builtin-breakpoint", "found = breakpoint", "NameError", lambda ns: ns.get("found") is not None),
    ("tensor-attribute-store", "logits.ninja_marker = 1", "may not change a Tensor's .ninja_marker",
     lambda ns: hasattr(ns["logits"], "ninja_marker")),
    ("type-makes-a-metaclass",
     "Meta = type('Meta', (type,), {'__instancecheck__': lambda cls, obj: True})\n"
     "Reads = Meta('Reads', (), {'__match_args__': ('__globals__',)})\n"
     "match torch.einsum:\n    case Reads(g):\n        found = g['__builtins__']",
     "type() with three arguments is not available", lambda ns: "found" in ns),
    ("type-of-a-class-is-its-metaclass", "found = type(int)('Made', (), {})",
     "type() with three arguments is not available", lambda ns: "found" in ns),
    ("abc-register-changes-a-class-for-good", "import collections\nclass Mine:\n    pass\n"
     "collections.UserList.register(Mine)\nfound = issubclass(Mine, collections.UserList)",
     "UserList.register is not available", lambda ns: ns.get("found") is True),
    ("super-skips-the-tensor-allow-list", "found = super(torch.Tensor, logits).untyped_storage()",
     "Tensor.untyped_storage is not available", lambda ns: ns.get("found") is not None),
]


@pytest.mark.parametrize(("name", "source", "refusal", "reached"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_jail_refuses_each_escape_that_works_without_it(name: str, source: str, refusal: str, reached: Any, *,
                                                         secret_file: Path, tmp_path: Path, marker: None) -> None:
    """Each escape is refused by the jail, with a sentence; without the jail the same code gets there."""
    given = {"logits": torch.randn(4, 3), "SECRET": str(secret_file), "OUT": str(tmp_path / "out.bin")}
    ns, errors = run(source, given)
    assert any(refusal in e for e in errors), errors
    assert not reached(ns)
    assert not (tmp_path / "out.bin").exists()
    plain, plain_errors = run(source, given, jailed=False)
    assert reached(plain), plain_errors


def test_jail_runs_ordinary_student_code() -> None:
    """What a student of the lecture writes runs unchanged: tensors, methods, f-strings and formats,
    own classes and functions with attributes, in-place updates of a parameter's .data, exceptions."""
    source = (
        "class Linear:\n    def __init__(self, w):\n        self.w = w\n        self.calls = 0\n"
        "    def __call__(self, x):\n        self.calls += 1\n        return x @ self.w\n"
        "layer = Linear(W)\nout = layer(x)\nLinear.kind = 'dense'\n"
        "def helper(t):\n    return t.sum(0, keepdim=True)\nhelper.note = 'sums'\n"
        "W.data += -0.1 * torch.ones_like(W)\n"
        "text = f'{out.shape} {out.sum().item():.3f}' + ' {:.2f} {} {x[0]}'.format(1.0, 'a', x=[5])\n"
        "try:\n    x.no_such_method()\nexcept AttributeError as e:\n    said = str(e)\n"
        "import numpy as np, math, itertools, collections\n"
        "a = np.exp(x.numpy()).sum() + math.sqrt(4) + len(list(itertools.chain([1], [2])))\n"
        "c = collections.Counter('aab').most_common(1)\n"
        "dx = (F.softmax(out, 1) - F.one_hot(torch.tensor([0, 1]), 2)).T @ x\n"
    )
    W = torch.ones(3, 2)
    ns, errors = run(source, {"W": W, "x": torch.ones(2, 3)})
    assert errors == []
    assert ns["layer"].calls == 1 and ns["Linear"].kind == "dense" and ns["helper"].note == "sums"
    assert torch.allclose(ns["W"], torch.full((3, 2), 0.9))
    assert ns["text"] == "torch.Size([2, 2]) 12.000 1.00 a 5"
    assert "has no attribute 'no_such_method'" in ns["said"]
    assert ns["c"] == [("a", 2)] and ns["dx"].shape == (2, 3)


def test_jail_gives_errors_with_plain_values_only() -> None:
    """An exception graded code catches is a copy with plain arguments: no traceback, no context,
    and the value that was not plain said as its type."""
    ns, errors = run("try:\n    {}[torch]\nexcept KeyError as e:\n    caught = e\n")
    assert errors == []
    caught = ns["caught"]
    assert type(caught) is KeyError and caught.args == ("<SafeModule>",)
    assert caught.__traceback__ is None and caught.__context__ is None


def test_jail_module_views_answer_only_their_allow_list() -> None:
    """A module view gives the names of its allow-list and refuses the rest, however it is asked."""
    ns, errors = run("a = torch.zeros(2)\nb = torch.load\n")
    assert torch.equal(ns["a"], torch.zeros(2))
    assert any("torch.load is not available" in e for e in errors)
    _, errors = run("import torch.nn\nm = torch.nn.Module\n")
    assert any("torch.nn.Module is not available" in e for e in errors)
    _, errors = run("from torch import save\n")
    assert any("torch.save is not available" in e for e in errors)


def test_allow_lists_hold_no_way_into_autograd_files_or_processes() -> None:
    """No allow-list names autograd, a file or process function, or a storage."""
    dangerous = AUTOGRAD_NAMES | {"save", "load", "from_file", "fromfile", "tofile", "dump", "dumps", "fromregex",
                                  "savez", "savetxt", "loadtxt", "genfromtxt", "memmap", "storage", "untyped_storage",
                                  "share_memory_", "compile", "jit", "hub", "utils", "ops", "library", "os", "sys",
                                  "subprocess", "ctypes", "DataSource", "lib", "testing", "set_", "new"}
    lists = [allowed.TENSOR_ATTRIBUTES, allowed.TORCH_NAMES, allowed.FUNCTIONAL_NAMES, allowed.NUMPY_NAMES,
             allowed.NDARRAY_ATTRIBUTES, allowed.BUILTINS, allowed.RANDOM_NAMES, allowed.MATH_NAMES]
    for names in lists:
        assert not names & dangerous, names & dangerous
    assert not {"open", "eval", "exec", "compile", "getattr", "setattr", "vars", "globals", "locals", "input",
                "breakpoint", "help", "license", "credits", "copyright", "exit", "quit", "memoryview",
                "__import__"} & allowed.BUILTINS


def test_allow_lists_name_what_exists() -> None:
    """Nearly every allowed name exists in the installed torch and numpy (a typo would silently refuse)."""
    for names, where in ((allowed.TENSOR_ATTRIBUTES, torch.Tensor), (allowed.TORCH_NAMES, torch),
                         (allowed.FUNCTIONAL_NAMES, F), (allowed.NUMPY_NAMES, numpy),
                         (allowed.NDARRAY_ATTRIBUTES, numpy.ndarray)):
        missing = {n for n in names if not hasattr(where, n)}
        assert len(missing) <= len(names) // 20, missing  # a few come and go between releases


def test_a_store_target_held_by_graded_code_does_not_give_up_its_jail() -> None:
    """The object an attribute store goes through (its name is refused before the code runs; here it is
    called at run time, as code past that check would) does not lead to the jail that records graded
    code's classes: adding Tensor there would make Tensor graded code's own."""
    ns, errors = run("t = __ninja_target__(torch.ones(1))\nj = t.jail\nk = t._jail\nm = t._obj\n")
    assert "t" in ns and "j" not in ns and "k" not in ns and "m" not in ns
    assert errors[0] == "AttributeError: '_Target' object has no attribute 'jail'"
    assert all("is private" in e for e in errors[1:]) and len(errors) == 3
