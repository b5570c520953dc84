"""course.yaml: the exercises, their gradients, tolerances, points and cases, and which forward
file and graph each exercise is judged on."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

COURSE_FILE = "course.yaml"
SHIPPED_WITH = Path(__file__).resolve().parents[2]  # the folder the grader ships in, beside its course


class CourseError(Exception):
    """course.yaml is missing, malformed, or names a file that does not exist."""


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


@dataclass(frozen=True)
class Limits:
    """What one submission's code may use, for all its runs together."""

    time_s: float = 30.0  # wall clock
    memory_mb: int = 1024  # on top of what the grader's own process already maps


@dataclass(frozen=True)
class Gradient:
    """One gradient the student writes: `name` is d<tensor>."""

    name: str
    tensor: str
    points: float
    tolerance: Tolerance
    hints: tuple[str, ...] = ()  # level 1, 2, 3


@dataclass(frozen=True)
class Handed:
    """A true gradient handed to the student's code (the lecture's exercise 3 is handed dhpreact)."""

    name: str  # d<tensor>
    tensor: str


@dataclass(frozen=True)
class CaseSpec:
    """One forward pass to judge on: a generator seed and a batch size; pinned by course.yaml, or
    drawn fresh for one grading (grader/courseware/draw.py)."""

    name: str
    seed: int
    batch_size: int
    dtype: str = "float32"
    fresh: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "batch_size": self.batch_size, "dtype": self.dtype,
                "fresh": self.fresh}

    @property
    def described(self) -> str:
        """As a message names it: `'lecture' (batch of 32)`, or `a fresh batch of 41 (seed 81...)`."""
        if self.fresh:
            return f"a fresh batch of {self.batch_size} (seed {self.seed})"
        return f"{self.name!r} (batch of {self.batch_size})"


@dataclass(frozen=True)
class FreshCases:
    """The cases each grading draws anew, so that no table of answers made from the public course can
    match them: how many, their batch sizes (never one of a pinned case), and where a secret that
    derives them from the graded code may be (a file kept off the students' copy, or $NINJA_CASE_SECRET)."""

    count: int = 2
    batch_sizes: tuple[int, int] = (20, 64)  # inclusive
    secret_file: Path | None = None


@dataclass(frozen=True)
class TrainingSpec:
    """Exercise 4: a real training run driven by the student's backward pass."""

    seed: int = 2147483647
    batch_size: int = 32
    lr: float = 0.1
    lr_late: float = 0.01  # from half the steps on
    check_steps: int = 500  # the quick check's run
    checkpoints: tuple[int, ...] = (0, 250, 499)  # steps where every gradient is judged in full
    loss_atol: float = 1e-4  # how far the two runs' losses may drift apart
    full_steps: int = 200_000
    full_time_s: float = 4 * 3600.0
    lecture_train: float = 2.0719  # the losses the lecture reports after its run, shown beside the student's
    lecture_val: float = 2.1162
    sample_seed: int = 2147483647 + 10
    samples: int = 20


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    stub: Path
    solution: Path
    start: str
    gradients: tuple[Gradient, ...]
    given_gradients: tuple[Handed, ...] = ()  # true gradients handed to the student's code
    forbid: frozenset[str] = frozenset()  # library calls that would do the exercise for you
    limits: Limits = Limits()
    intermediates: tuple[Gradient, ...] = ()  # intermediate gradients, not graded, used to isolate
    training: TrainingSpec | None = None
    forward: Path = Path()  # the course's forward file (grader/courseware/forward.py)
    graph: str = ""  # the forward pass in it this exercise is judged on
    sizes: tuple[tuple[str, int], ...] = ()  # sizes this exercise sets over the forward file's
    marks: tuple[str, ...] = ()  # names that mark a notebook cell as this exercise's (loss_fast)

    @property
    def gradient_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.gradients)

    @property
    def max_score(self) -> float:
        return sum(g.points for g in self.gradients)

    def gradient(self, name: str) -> Gradient:
        for grad in self.gradients:
            if grad.name == name:
                return grad
        raise CourseError(f"{self.id} has no gradient {name!r}; it has {', '.join(self.gradient_names)}")


@dataclass(frozen=True)
class Course:
    root: Path
    cases: tuple[CaseSpec, ...]  # pinned: the first is the lecture's, which every grading judges on
    exercises: tuple[Exercise, ...]
    path: Path | None = None  # the course.yaml it was read from
    fresh: FreshCases = FreshCases()

    def relative_path(self) -> str | None:
        """How a notebook names this course: None for the shipped one (the default), else its path
        relative to the folder the grader ships in (examples/layernorm/course.yaml), else absolute."""
        if self.path is None or self.path == default_course_path().resolve():
            return None
        if self.path.is_relative_to(SHIPPED_WITH):
            return self.path.relative_to(SHIPPED_WITH).as_posix()
        return str(self.path)

    @property
    def exercise_ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.exercises)

    def exercise(self, exercise_id: str) -> Exercise:
        for exercise in self.exercises:
            if exercise.id == exercise_id:
                return exercise
        raise CourseError(
            f"no exercise {exercise_id!r}; the course has {', '.join(self.exercise_ids)}"
        )


def default_course_path() -> Path:
    """$NINJA_COURSE, else the course.yaml that ships beside the grader package."""
    env = os.environ.get("NINJA_COURSE")
    if env:
        return Path(env)
    return SHIPPED_WITH / COURSE_FILE


def _field(mapping: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in mapping:
        raise CourseError(f"{where}: missing '{key}'")
    value = mapping[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise CourseError(f"{where}: '{key}' must be a {kind.__name__}, not {value!r}")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CourseError(f"{where} must be a mapping, not {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise CourseError(f"{where} must be a non-empty list")
    return value


def _tolerance(spec: Mapping[str, Any], default: Tolerance, where: str) -> Tolerance:
    rtol = _field(spec, "rtol", float, where) if "rtol" in spec else default.rtol
    atol = _field(spec, "atol", float, where) if "atol" in spec else default.atol
    if rtol < 0 or atol < 0:
        raise CourseError(f"{where}: tolerances must not be negative")
    return Tolerance(rtol, atol)


def _given(spec: Mapping[str, Any], where: str) -> tuple[Handed, ...]:
    given = spec.get("given", [])
    if not isinstance(given, list) or not all(isinstance(g, str) and g.startswith("d") and g[1:] for g in given):
        raise CourseError(f"{where}: 'given' must be a list of gradient names (d and a tensor's name)")
    return tuple(Handed(name, name.removeprefix("d")) for name in given)


def _gradients(raw: list[Any], where: str, default_tol: Tolerance, default_points: float) -> list[Gradient]:
    gradients = []
    for j, graw in enumerate(raw):
        gwhere = f"{where}[{j}]"
        gspec = _mapping(graw, gwhere)
        name = _field(gspec, "name", str, gwhere)
        tensor = _field(gspec, "tensor", str, gwhere)
        if name != "d" + tensor:
            raise CourseError(f"{gwhere}: gradient of {tensor} must be named d{tensor}, not {name}")
        points = _field(gspec, "points", float, gwhere) if "points" in gspec else default_points
        hints = gspec.get("hints", [])
        if not isinstance(hints, list) or not all(isinstance(h, str) and h.strip() for h in hints):
            raise CourseError(f"{gwhere}: 'hints' must be a list of sentences")
        gradients.append(Gradient(name, tensor, points, _tolerance(gspec, default_tol, gwhere),
                                  tuple(h.strip() for h in hints)))
    return gradients


def _training(raw: Any, where: str) -> TrainingSpec:
    spec = _mapping(raw, f"{where}: training")
    default = TrainingSpec()
    values: dict[str, Any] = {}
    for key, value in default.__dict__.items():
        if key in spec:
            kind = type(value) if not isinstance(value, tuple) else list
            values[key] = _field(spec, key, kind, f"{where}: training")
    if "checkpoints" in values:
        values["checkpoints"] = tuple(int(c) for c in values["checkpoints"])
    unknown = set(spec) - set(default.__dict__)
    if unknown:
        raise CourseError(f"{where}: training: unknown setting {sorted(unknown)[0]!r}")
    training = TrainingSpec(**values)
    if 0 not in training.checkpoints or max(training.checkpoints) >= training.check_steps:
        raise CourseError(f"{where}: training: checkpoints must include 0 and lie below check_steps")
    if training.batch_size < 2 or training.check_steps < 1 or training.full_steps < 1:
        raise CourseError(f"{where}: training: batch_size >= 2 and steps >= 1 are needed")
    return training


def _names(spec: Mapping[str, Any], key: str, where: str) -> list[str]:
    names = spec.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n.isidentifier() for n in names):
        raise CourseError(f"{where}: '{key}' must be a list of names")
    return names


def _limits(spec: Any, default: Limits, where: str) -> Limits:
    spec = _mapping(spec, f"{where}: limits")
    time_s = _field(spec, "time_s", float, f"{where}: limits") if "time_s" in spec else default.time_s
    memory_mb = _field(spec, "memory_mb", int, f"{where}: limits") if "memory_mb" in spec else default.memory_mb
    if time_s <= 0 or memory_mb < 64:
        raise CourseError(f"{where}: limits need time_s > 0 and memory_mb >= 64")
    return Limits(time_s, memory_mb)


def _existing(root: Path, relative: str, where: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_file():
        raise CourseError(f"{where}: {relative} does not exist")
    return path


def _sizes(raw: Any, where: str) -> tuple[tuple[str, int], ...]:
    spec = _mapping(raw, f"{where}: sizes")
    for key, value in spec.items():
        if not (isinstance(key, str) and key.isidentifier()) or type(value) is not int or value < 1:
            raise CourseError(f"{where}: sizes must map names to positive ints, not {key}: {value!r}")
    return tuple(spec.items())


def parse_course(data: Any, root: Path) -> Course:
    top = _mapping(data, "course.yaml")
    default_forward = _existing(root, _field(top, "forward", str, "course.yaml"), "forward") \
        if "forward" in top else None
    defaults = _mapping(top.get("defaults", {}), "defaults")
    default_tol = _tolerance(defaults, Tolerance(1e-5, 1e-8), "defaults")
    default_points = _field(defaults, "points", float, "defaults") if "points" in defaults else 1.0
    default_forbid = frozenset(_names(defaults, "forbid", "defaults"))
    default_limits = _limits(defaults.get("limits", {}), Limits(), "defaults")

    cases = []
    for i, raw in enumerate(_list(top.get("cases"), "cases")):
        where = f"cases[{i}]"
        spec = _mapping(raw, where)
        batch = _field(spec, "batch_size", int, where)
        if batch < 2:
            raise CourseError(f"{where}: batch_size must be at least 2 (batchnorm divides by n-1)")
        dtype = spec.get("dtype", "float32")
        if dtype not in ("float32", "float64"):
            raise CourseError(f"{where}: dtype must be float32 or float64, not {dtype!r}")
        cases.append(CaseSpec(_field(spec, "name", str, where), _field(spec, "seed", int, where), batch, dtype))
    if not cases:
        raise CourseError("course.yaml: 'cases' must name at least one case (the lecture's batch)")
    fresh = _fresh(top.get("fresh_cases", {}), root, {c.batch_size for c in cases})

    exercises = []
    for i, raw in enumerate(_list(top.get("exercises"), "exercises")):
        spec = _mapping(raw, f"exercises[{i}]")
        ex_id = _field(spec, "id", str, f"exercises[{i}]")
        where = f"exercise {ex_id}"
        gradients = _gradients(_list(spec.get("gradients"), f"{where}: gradients"), f"{where}: gradients",
                               default_tol, default_points)
        if "intermediates" in spec and "helpers" in spec:
            raise CourseError(f"{where}: 'intermediates' and 'helpers' name the same list; keep 'intermediates'")
        key = "helpers" if "helpers" in spec else "intermediates"  # `helpers:` is read too, as courses wrote it
        intermediates = _gradients(spec.get(key) or [], f"{where}: {key}", default_tol, 0.0)
        if "forward" in spec:
            forward = _existing(root, _field(spec, "forward", str, where), where)
        elif default_forward is not None:
            forward = default_forward
        else:
            raise CourseError(f"{where}: no forward file: name one with 'forward:', here or at the top")
        names = [g.name for g in (*gradients, *intermediates)]
        if len(set(names)) != len(names):
            raise CourseError(f"{where}: a gradient is listed twice")
        exercises.append(
            Exercise(
                id=ex_id,
                title=_field(spec, "title", str, where),
                stub=_existing(root, _field(spec, "stub", str, where), where),
                # only check-course reads it: a platform's bundle of the course carries no solutions
                solution=(root / _field(spec, "solution", str, where)).resolve(),
                start=_field(spec, "start", str, where).strip(),
                gradients=tuple(gradients),
                given_gradients=_given(spec, where),
                forbid=frozenset(_names(spec, "forbid", where)) | default_forbid,
                limits=_limits(spec.get("limits", {}), default_limits, where),
                intermediates=tuple(intermediates),
                training=_training(spec["training"], where) if "training" in spec else None,
                forward=forward,
                graph=_field(spec, "graph", str, where),
                sizes=_sizes(spec.get("sizes", {}), where),
                marks=tuple(_names(spec, "marks", where)),
            )
        )
    ids = [e.id for e in exercises]
    if len(set(ids)) != len(ids):
        raise CourseError("course.yaml: an exercise id is listed twice")
    return Course(root, tuple(cases), tuple(exercises), fresh=fresh)


def _fresh(raw: Any, root: Path, pinned_sizes: set[int]) -> FreshCases:
    where = "fresh_cases"
    spec = _mapping(raw, where)
    unknown = set(spec) - {"count", "batch_size", "secret_file"}
    if unknown:
        raise CourseError(f"{where}: unknown setting {sorted(unknown)[0]!r} (count, batch_size, secret_file)")
    count = _field(spec, "count", int, where) if "count" in spec else FreshCases.count
    sizes = spec.get("batch_size", list(FreshCases.batch_sizes))
    if not (isinstance(sizes, list) and len(sizes) == 2 and all(type(s) is int for s in sizes)
            and 2 <= sizes[0] <= sizes[1]):
        raise CourseError(f"{where}: batch_size must be [smallest, largest], both at least 2")
    if not set(range(sizes[0], sizes[1] + 1)) - pinned_sizes:
        raise CourseError(f"{where}: batch_size {sizes} holds only the pinned cases' batch sizes")
    if not 0 <= count <= 16:
        raise CourseError(f"{where}: count must be between 0 and 16")
    secret = root / _field(spec, "secret_file", str, where) if "secret_file" in spec else None
    return FreshCases(count, (sizes[0], sizes[1]), secret)


SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, the faster, where PyYAML was built with it


def load_course(path: str | os.PathLike[str] | None = None) -> Course:
    """Read and check course.yaml; every problem is one CourseError sentence. A relative path that is
    not below the working directory is looked up in the folder the grader ships in (a notebook's
    `course="examples/layernorm/course.yaml"` works from anywhere)."""
    course_path = Path(path) if path is not None else default_course_path()
    shipped = SHIPPED_WITH / course_path
    if not course_path.is_absolute() and not course_path.exists() and shipped.exists():
        course_path = shipped
    try:
        text = course_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CourseError(f"no course file at {course_path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseError(f"cannot read {course_path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)  # a safe loader (libyaml's where installed)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise CourseError(f"{course_path} is not valid YAML{at}") from None
    try:
        return replace(parse_course(data, course_path.resolve().parent), path=course_path.resolve())
    except CourseError as exc:
        raise CourseError(f"{course_path}: {exc}") from None
