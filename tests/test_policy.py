"""The policy's rules one by one: what the static check refuses and lets through, and the guards that
hold the same names at run time (grader/confined/policy.py)."""

from __future__ import annotations

import ast
import math
import re
import types

import pytest
import torch

from grader.confined.jail import safe_builtins, safe_import, view_of
from grader.confined.policy import PolicyError, Violation, check_policy, module_attribute_names


def refusals(source: str, forbidden: frozenset[str] = frozenset()) -> list[str]:
    return [str(v) for v in check_policy(ast.parse(source), forbidden)]


@pytest.mark.parametrize("source", [
    "grad = dlogits * 2",  # a variable may be called grad
    "import torch\nimport torch.nn.functional as F\nimport math, numpy, itertools, collections, random, einops",
    "from torch.nn import functional\nfrom torch import linalg\nfrom torch.special import expit",
    "import torch.linalg\nimport torch.fft\nimport numpy.linalg",
    "x = torch.zeros(3).sum(0, keepdim=True)\ny = x.T @ x",
    "match d:\n    case Point() as p:\n        pass",
    "class Helper:\n    pass",
    "def g():\n    with (yield) as x:\n        pass",  # paused before the block opens
    "with torch.no_grad():\n    x = 1\ndef batches(n):\n    for i in range(n):\n        yield i",
    "def g():\n    with torch.no_grad():\n        def h():\n            yield 1\n"
    "        f = lambda: (yield)\n    yield 2",
])
def test_policy_lets_plain_backward_code_through(source: str) -> None:
    """Tensor arithmetic, the allowed modules, a variable named grad, classes and match: no refusal."""
    assert refusals(source) == []


@pytest.mark.parametrize(("source", "said"), [
    ("x = logits.grad", "line 1: 'grad' is autograd; the grader checks the backward pass you write by hand, so "
                        "autograd is off (no .grad, .backward(), requires_grad)"),
    ("loss.backward()", "line 1: 'backward' is autograd"),
    ("x = t.my_backward_pass()", "line 1: 'my_backward_pass' is autograd"),
    ("torch.autograd.grad(loss, [W1])", "line 1: 'autograd' is autograd"),
    ("dlogits = F.cross_entropy(logits, Yb)", "line 1: 'cross_entropy' does the whole computation for you; this "
                                              "exercise asks you to write it"),
    ("f = cross_entropy", "line 1: 'cross_entropy' does the whole computation for you"),
    ("x = t.__class__", "line 1: '__class__' reaches Python's internals, which graded code may not use"),
    ("x = __builtins__", "line 1: '__builtins__' reaches Python's internals"),
    ("x = t._base", "line 1: '._base' is private; graded code may not use attributes that start with _"),
    ("x = torch.load('w.pt')", "line 1: 'load' is not available in graded code (no files, processes or dynamic "
                               "lookups)"),
    ("f = getattr(torch, 'zeros')", "line 1: 'getattr' is not available in graded code"),
    ("open('x')", "line 1: 'open' is not available in graded code"),
    ("x = torch.os", "line 1: '.os' is a module graded code may not use"),
    ("import os", "line 1: import of 'os' is not allowed in graded code (allowed: collections, einops, itertools, "
                  "math, numpy, random, torch)"),
    ("import torch, subprocess", "line 1: import of 'subprocess' is not allowed in graded code"),
    ("from os import path", "line 1: import of 'os' is not allowed in graded code"),
    ("from . import secrets", "line 1: import of '.' is not allowed in graded code"),
    ("from torch import autograd", "line 1: 'autograd' is autograd"),
    ("from torch import linalg, autograd", "line 1: 'autograd' is autograd"),  # hidden behind an allowed one
    ("match t:\n    case Tensor(grad=g):\n        pass", "line 2: 'grad' is autograd"),
    ("match t:\n    case Tensor(_base=b):\n        pass",
     "line 2: a class pattern that reads '_base' is not available"),
    ("match d:\n    case Point(x=a):\n        pass", "line 2: a class pattern that reads 'x' is not available"),
    ("match f:\n    case Reads(g):\n        pass", "line 2: a class pattern with positional parts (`case C(x)`) reads "
                                                 "attributes the class names"),
    ("def g():\n    with torch.inference_mode():\n        yield 1",
     "line 3: a generator or coroutine may not pause (yield or await) inside a `with` block"),
    ("def g():\n    with numpy.errstate(divide='ignore'):\n        x = yield from other()",
     "line 3: a generator or coroutine may not pause"),
    ("async def c():\n    with torch.no_grad():\n        await other()", "line 3: a generator or coroutine may not"),
    ("def g():\n    with a, b:\n        def h(x=(yield)):\n            pass", "line 3: a generator or coroutine"),
    ("def g():\n    with torch.inference_mode(), (yield):\n        pass", "line 2: a generator or coroutine"),
])
def test_policy_refuses_each_rule_with_its_reason(source: str, said: str) -> None:
    """Each rule's refusal names the line and says why, as the student reads it."""
    found = refusals(source, frozenset({"cross_entropy"}))
    assert found and found[0].startswith(said), found


def test_policy_names_every_violation_in_source_order() -> None:
    """Several violations: all of them, by line and then by where on the line, inner ones first."""
    source = "a = 1\nx = t.grad.backward()\nimport os\n"
    assert [v.lineno for v in check_policy(ast.parse(source))] == [2, 2, 3]
    first, second = check_policy(ast.parse(source))[:2]
    assert "'grad'" in first.message and "'backward'" in second.message and first.end < second.end
    assert str(Violation(4, "why")) == "line 4: why"


def test_policy_module_attributes_are_the_modules_not_allowed() -> None:
    """The modules reachable from an allowed one (torch.os) are refused; the allowed submodules are not;
    a caller's own list of module attributes is the one used."""
    names = module_attribute_names()
    assert "os" in names and "sys" in names
    assert not {"functional", "linalg", "special", "fft", "nn"} & names
    tree = ast.parse("x = torch.os\ny = torch.mine")
    assert [v.lineno for v in check_policy(tree, module_attrs=frozenset({"mine"}))] == [2]


def test_policy_safe_import_allows_only_the_allowed_modules() -> None:
    """At run time: allowed modules come as read-only views; others, relative imports and disallowed
    submodules raise PolicyError."""
    F = safe_import("torch.nn.functional", fromlist=("softmax",))
    assert F.softmax is torch.nn.functional.softmax
    top = safe_import("torch.nn.functional")
    assert top.__name__ == "torch" and top.zeros is torch.zeros  # `import torch.nn.functional` binds torch
    assert safe_import("math").sqrt is math.sqrt
    for name, options in (("os", {}), ("torch", {"level": 1}), ("torch", {"fromlist": ("autograd",)})):
        with pytest.raises(PolicyError, match="is not allowed in graded code"):
            safe_import(name, **options)  # type: ignore[arg-type]


def test_policy_safe_module_hides_what_the_static_check_refuses() -> None:
    """A view of torch: no private, autograd or escape names, no other modules, no writes; allowed
    submodules come as views too; dir() shows no private names."""
    view = view_of(torch)
    assert view is view_of(torch) and view.zeros is torch.zeros
    assert isinstance(view.nn, types.ModuleType) and view.nn.functional.softmax is torch.nn.functional.softmax
    for name in ("_C", "_assert", "__version__", "autograd", "load", "os"):
        with pytest.raises(PolicyError, match=re.escape(f"torch.{name} is not available in graded code")):
            getattr(view, name)
    with pytest.raises(AttributeError, match="module 'torch' has no attribute 'my_backward'"):
        view.my_backward  # a name torch does not have: said as Python says it  # noqa: B018
    with pytest.raises(PolicyError, match=re.escape("graded code may not change torch.allclose")):
        view.allclose = lambda *a: True
    assert "zeros" in dir(view) and not [n for n in dir(view) if n.startswith("_")]


def test_policy_safe_builtins_have_no_escape_and_a_guarded_import() -> None:
    """The builtins graded code sees: no open, getattr, eval or exec; __import__ is the guarded one;
    classes still work; each call gives a fresh dict."""
    builtins = safe_builtins("<policy-test>")
    assert not {"open", "getattr", "eval", "exec", "compile", "vars", "breakpoint", "__loader__"} & set(builtins)
    assert builtins["__import__"] is safe_import and builtins["__name__"] == "__main__"
    assert "__build_class__" in builtins and builtins["len"] is len
    builtins["len"] = None
    assert safe_builtins("<policy-test>")["len"] is len
