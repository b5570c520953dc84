"""A course's forward file: its forward passes, parameters, data and batches, loaded by path.

course.yaml names the file (`forward:`, at the top or per exercise) and each exercise one of
its graphs (`graph:`). The file is course content, trusted like course.yaml: the grader
imports it, in its own process only; the student's sandbox receives the graph's code
(grader/courseware/graph.py evaluates it), never the file. What a file defines:

    GRAPHS      {name: code}   each forward pass, one `name = expression` per line, last `loss`
    SIZES       {name: int}    sizes every exercise shares (optional; course.yaml `sizes:` overrides)
    ALPHABET    str            the letters names.txt's names are written in (optional; default a-z)
    world(words)               the data graded code may read, from names.txt's words; its ints are sizes
    parameters(g, sizes, dtype)        the parameters, drawn from the generator g
    batch(g, world, batch_size)        one minibatch (Xb, Yb), drawn from the same generator
    evaluate(params, world, sizes)     {"train": loss, "val": loss} after a training run (training only)
    sample(params, world, sizes, g, count)   words from the trained net (optional)
    fused_terms(tensor, values, truth, n)    a fused formula's terms, for diagnoses (optional)
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from grader.courseware.course import Course, CourseError, Exercise
from grader.courseware.data import LETTERS, Dataset, find_names, synthetic_words
from grader.courseware.graph import Graph

REQUIRED = ("GRAPHS", "world", "parameters", "batch")


@dataclass
class ForwardFile:
    """One forward file, loaded."""

    path: Path
    module: ModuleType
    graphs: dict[str, Graph]
    sizes: dict[str, int]
    alphabet: str = LETTERS  # the letters of the data set's names
    _worlds: dict[tuple[str, int], dict[str, object]] = field(default_factory=dict, repr=False)

    def graph(self, name: str) -> Graph:
        if name not in self.graphs:
            raise CourseError(f"{self.path.name} has no graph {name!r}; it has {', '.join(self.graphs)}")
        return self.graphs[name]

    def world(self, dataset: Dataset) -> dict[str, object]:
        """The data graded code may read, built once per data set per process."""
        key = (dataset.source, len(dataset.words))
        if key not in self._worlds:
            data = self._call("world", tuple(dataset.words))
            if not isinstance(data, dict) or not all(isinstance(k, str) and k.isidentifier() for k in data):
                raise CourseError(f"{self.path.name}: world() must return a dict of names")
            self._worlds[key] = data
        return self._worlds[key]

    @functools.cached_property
    def data_names(self) -> frozenset[str]:
        """The names world() gives, whatever the words (read once, from a few stand-in words)."""
        return frozenset(self.world(Dataset(synthetic_words(self.alphabet), "synthetic")))

    def sizes_for(self, exercise: Exercise, world: dict[str, object]) -> dict[str, int]:
        """The sizes an exercise's code is given: the data's, the file's, the exercise's own."""
        from_data = {k: v for k, v in world.items() if isinstance(v, int) and not isinstance(v, bool)}
        return {**from_data, **self.sizes, **dict(exercise.sizes)}

    def parameters(self, g: torch.Generator, sizes: dict[str, int], dtype: torch.dtype) -> dict[str, torch.Tensor]:
        params = self._call("parameters", g, sizes, dtype)
        if not isinstance(params, dict) or not all(isinstance(p, torch.Tensor) for p in params.values()):
            raise CourseError(f"{self.path.name}: parameters() must return a dict of tensors")
        return params

    def batch(self, g: torch.Generator, world: dict[str, object], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        Xb, Yb = self._call("batch", g, world, batch_size)
        return Xb, Yb

    def has(self, name: str) -> bool:
        return callable(getattr(self.module, name, None))

    def evaluate(self, params: dict[str, torch.Tensor], world: dict[str, object],
                 sizes: dict[str, int]) -> dict[str, float]:
        losses = self._call("evaluate", params, world, sizes)
        return {str(k): float(v) for k, v in losses.items()}

    def sample(self, params: dict[str, torch.Tensor], world: dict[str, object], sizes: dict[str, int],
               g: torch.Generator, count: int) -> tuple[str, ...]:
        if not self.has("sample"):
            return ()
        return tuple(str(s) for s in self._call("sample", params, world, sizes, g, count))

    def fused_terms(self, tensor: str, values: dict[str, torch.Tensor], truth: dict[str, torch.Tensor],
                    n: int) -> dict[str, tuple[torch.Tensor, str]] | None:
        """A fused formula's terms by name, each with the fix to say when it is missing ("" for none)."""
        if not self.has("fused_terms"):
            return None
        terms = self._call("fused_terms", tensor, values, truth, n)
        if terms is None:
            return None
        return {name: term if isinstance(term, tuple) else (term, "") for name, term in terms.items()}

    def _call(self, name: str, *args: Any) -> Any:
        function: Callable[..., Any] | None = getattr(self.module, name, None)
        if not callable(function):
            raise CourseError(f"{self.path.name} defines no {name}(), which this exercise needs")
        try:
            return function(*args)
        except CourseError:
            raise
        except Exception as exc:
            raise CourseError(f"{self.path.name}: {name}() failed{_where(exc, self.path)}: "
                              f"{type(exc).__name__}: {exc}") from None


def _where(exc: BaseException, path: Path) -> str:
    """` at line N` for the deepest frame of the forward file in the exception's traceback."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f" at line {lines[-1]}" if lines else ""


def _line_of(text: str, code: str) -> int:
    """The line of the file a graph's code starts on (1 when it was built, not written out)."""
    at = text.find(code.strip("\n"))
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


_loaded: dict[tuple[Path, int], ForwardFile] = {}


def load_forward(path: Path) -> ForwardFile:
    """Import a forward file (once per process and version of the file) and read its graphs;
    every problem is one CourseError sentence."""
    path = path.resolve()
    try:
        key = (path, path.stat().st_mtime_ns)
    except OSError:
        raise CourseError(f"no forward file at {path}") from None
    if key in _loaded:
        return _loaded[key]
    name = f"_ninja_forward_{len(_loaded)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CourseError(f"{path.name} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise CourseError(f"{path.name}, line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:
        raise CourseError(f"{path.name} failed to load{_where(exc, path)}: {type(exc).__name__}: {exc}") from None
    missing = [n for n in REQUIRED if not hasattr(module, n)]
    if missing:
        raise CourseError(f"{path.name} defines no {', '.join(missing)}; a forward file needs {', '.join(REQUIRED)}")
    raw = module.GRAPHS
    if not (isinstance(raw, dict) and raw and all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items())):
        raise CourseError(f"{path.name}: GRAPHS must map each graph's name to its code")
    text = path.read_text(encoding="utf-8")
    graphs = {gname: Graph(code, f"{path.name}, graph {gname}", first_line=_line_of(text, code))
              for gname, code in raw.items()}
    sizes = getattr(module, "SIZES", {})
    if not isinstance(sizes, dict) or not all(isinstance(k, str) and type(v) is int for k, v in sizes.items()):
        raise CourseError(f"{path.name}: SIZES must map names to ints")
    alphabet = getattr(module, "ALPHABET", LETTERS)
    if not (isinstance(alphabet, str) and alphabet and len(set(alphabet)) == len(alphabet)
            and not any(c.isspace() or c == "." for c in alphabet)):
        raise CourseError(f"{path.name}: ALPHABET must be a string of distinct letters (no spaces, no '.')")
    forward = ForwardFile(path, module, graphs, dict(sizes), alphabet)
    _loaded[key] = forward
    return forward


def alphabet_of(course: Course) -> str:
    """The letters of the course's data set, as its forward files say (one data set serves the course)."""
    found = {load_forward(e.forward).alphabet for e in course.exercises}
    if len(found) > 1:
        raise CourseError("the course's forward files name different ALPHABETs; one names.txt serves the course")
    return found.pop() if found else LETTERS


def dataset_of(course: Course, explicit: str | os.PathLike[str] | None = None) -> Dataset:
    """The course's data set: names.txt where data.find_names looks (`explicit`: --data), its names
    written in the course's alphabet."""
    return find_names(explicit, alphabet=alphabet_of(course))


def forward_of(exercise: Exercise) -> tuple[ForwardFile, Graph]:
    """The exercise's forward file and its graph."""
    forward = load_forward(exercise.forward)
    return forward, forward.graph(exercise.graph)
