"""The cases and probes of one grading: the course's pinned cases, and cases no one has seen.

Every grading judges on the course's pinned cases (the first is the lecture's batch, whose
numbers students recognise) and on `fresh_cases.count` more, drawn for that grading alone:
random seeds, and batch sizes drawn from the course's range, never a pinned case's size. The
vector-Jacobian check's random gradients come from a seed drawn the same way, and so does a
training exercise's quick run. Nothing in the public course predicts them, so a table of
answers made at home with the grader's own code matches none of them.

Where the randomness comes from:
- fresh (the default): the operating system's randomness, anew each grading;
- a course secret ($NINJA_CASE_SECRET, or the file `fresh_cases.secret_file` that the course
  keeps off the students' copy): derived by HMAC from it and from the graded code, so the same
  code draws the same cases at every grading (a rerun, a regrade) and any other code draws
  others, unknown to anyone without the secret. A report names its cases, never the secret, and
  a table of answers built for them is other code: it is judged on other cases;
- a replay (`--replay REPORT.json`): the cases, probe seed and training seed a report names,
  so that an appeal or a bug report grades exactly as it was graded.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from typing import Any

from grader.courseware.course import CaseSpec, Course, CourseError, Exercise

SECRET_ENV = "NINJA_CASE_SECRET"
MAX_SEED = (1 << 31) - 1


@dataclass(frozen=True)
class Draw:
    """What one grading is judged on, and where it came from (fresh, secret, replay, pinned)."""

    cases: tuple[CaseSpec, ...]
    probe_seed: int
    training_seed: int | None = None  # a training exercise's quick run
    drawn: str = "fresh"

    def to_dict(self) -> dict[str, Any]:
        return {"drawn": self.drawn, "probe_seed": self.probe_seed, "training_seed": self.training_seed}


def course_secret(course: Course) -> str | None:
    """The class's secret, if this copy of the course has one: $NINJA_CASE_SECRET, else its secret file."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    path = course.fresh.secret_file
    if path is not None and path.is_file():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CourseError(f"cannot read the course's case secret {path}: {exc}") from None
        return text or None
    return None


class _Numbers:
    """Integers below a bound: from the OS, or derived from a secret and a name (never the secret itself)."""

    def __init__(self, secret: str | None, exercise: Exercise, source: str) -> None:
        self.key = secret.encode() if secret is not None else None
        self.name = f"{exercise.id}/{code_key(source)}" if secret is not None else exercise.id
        self.system = secrets.SystemRandom()

    def below(self, bound: int, what: str) -> int:
        if self.key is None:
            return self.system.randrange(bound)
        digest = hmac.new(self.key, f"{self.name}/{what}".encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") % bound


def code_key(source: str) -> str:
    """What names the graded code in a secret's draw: the sha256 of its text."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def draw(course: Course, exercise: Exercise, *, secret: str | None = None, source: str = "") -> Draw:
    """The cases of one grading of `source` (the graded code): the pinned ones, then `count` fresh
    ones; the probe and training seeds."""
    secret = secret if secret is not None else course_secret(course)
    numbers = _Numbers(secret, exercise, source)
    lo, hi = course.fresh.batch_sizes
    pinned = {c.batch_size for c in course.cases}
    sizes = [n for n in range(lo, hi + 1) if n not in pinned]
    fresh = []
    for i in range(course.fresh.count):
        seed = 1 + numbers.below(MAX_SEED, f"case {i} seed")
        n = sizes[numbers.below(len(sizes), f"case {i} batch size")]
        fresh.append(CaseSpec(f"fresh batch of {n} (seed {seed})", seed, n, fresh=True))
    training = 1 + numbers.below(MAX_SEED, "training seed") if exercise.training is not None else None
    return Draw((*course.cases, *fresh), 1 + numbers.below(MAX_SEED, "probe seed"), training,
                "secret" if secret is not None else "fresh")


def pinned(course: Course, cases: tuple[CaseSpec, ...] | None = None, *, probe_seed: int | None = None,
           training_seed: int | None = None) -> Draw:
    """A draw fixed in advance (tests, and the course author checking a case by hand): the course's
    pinned cases unless others are given, the probes seeded by the first case's seed + 1."""
    chosen = cases if cases is not None else course.cases
    return Draw(chosen, probe_seed if probe_seed is not None else chosen[0].seed + 1, training_seed, "pinned")


def replay(report: Any, course: Course, exercise: Exercise) -> Draw:
    """The draw a report was graded on (its JSON), to grade again exactly; a CourseError says what is off.
    Only a draw this course could have made is taken: its pinned cases as course.yaml has them, then at
    most `count` fresh ones, each of a batch size the course draws and a seed of its own (a training
    exercise's: the steps of its quick run). A report says
    nothing of where its fresh seeds came from, so a replay is only as trustworthy as the report (the
    instructor's own, from --out); the names are made anew from the seeds, never taken from the file."""
    if not isinstance(report, dict):
        raise CourseError("the report to replay is not a JSON object")
    if report.get("exercise") not in (None, exercise.id):
        raise CourseError(f"the report to replay is not of {exercise.id}")
    raw_cases, draw_info = report.get("cases"), report.get("draw")
    if not isinstance(raw_cases, list) or not raw_cases or not isinstance(draw_info, dict):
        raise CourseError("the report to replay names no cases and no draw: is it a JSON report of ninja-grade?")
    cases = _training_cases(raw_cases, course, exercise) if exercise.training is not None else \
        _drawn_cases(raw_cases, course)
    probe, training = draw_info.get("probe_seed"), draw_info.get("training_seed")
    if type(probe) is not int or not _seed(probe) or (training is not None and not _seed(training)):
        raise CourseError("the report to replay has no usable probe or training seed")
    return Draw(cases, probe, training, "replay")


def _plain_case(raw: Any, i: int) -> tuple[int, int, str]:
    """A report's case as (seed, batch size, dtype), each of its type; a CourseError for anything else."""
    if not (isinstance(raw, dict) and _seed(raw.get("seed")) and type(raw.get("batch_size")) is int
            and raw.get("dtype", "float32") in ("float32", "float64")):
        raise CourseError(f"the report to replay has a malformed case (cases[{i}])")
    return raw["seed"], raw["batch_size"], raw.get("dtype", "float32")


def _drawn_cases(raw_cases: list[Any], course: Course) -> tuple[CaseSpec, ...]:
    """A graded exercise's cases: the course's pinned ones as course.yaml has them, then at most `count`
    fresh ones of sizes the course draws, each of a seed of its own (a file that named more, or larger,
    would have the grader build them all)."""
    if len(raw_cases) > len(course.cases) + course.fresh.count:
        raise CourseError(f"the report to replay names {len(raw_cases)} cases; this course grades on "
                          f"{len(course.cases) + course.fresh.count}")
    if len(raw_cases) < len(course.cases):
        raise CourseError("the report to replay leaves out cases this course pins")
    lo, hi = course.fresh.batch_sizes
    pinned_sizes = {c.batch_size for c in course.cases}
    seen_seeds = {c.seed for c in course.cases}
    cases = list(course.cases)
    for i, raw in enumerate(raw_cases):
        seed, size, dtype = _plain_case(raw, i)
        if i < len(course.cases):
            own = course.cases[i]
            if (seed, size, dtype) != (own.seed, own.batch_size, own.dtype):
                raise CourseError(f"the report to replay has a case this course does not pin as cases[{i}]")
            continue
        if not (lo <= size <= hi and size not in pinned_sizes and 1 <= seed <= MAX_SEED and seed not in seen_seeds
                and dtype == "float32"):
            raise CourseError(f"the report to replay has a fresh case this course could not draw (cases[{i}])")
        seen_seeds.add(seed)
        cases.append(CaseSpec(f"fresh batch of {size} (seed {seed})", seed, size, fresh=True))
    return tuple(cases)


def _training_cases(raw_cases: list[Any], course: Course, exercise: Exercise) -> tuple[CaseSpec, ...]:
    """A training exercise's cases: the steps of its quick run, at most one per checkpoint and one more
    (the first step that disagreed), each named `step N`, of a batch size no larger than the course's."""
    assert exercise.training is not None
    most = len(exercise.training.checkpoints) + 1
    if len(raw_cases) > most:
        raise CourseError(f"the report to replay names {len(raw_cases)} cases; this exercise is judged on at most "
                          f"{most} steps")
    largest = max(course.fresh.batch_sizes[1], *(c.batch_size for c in course.cases), exercise.training.batch_size)
    cases = []
    for i, raw in enumerate(raw_cases):
        seed, size, dtype = _plain_case(raw, i)
        name = raw.get("name")
        if not (isinstance(name, str) and re.fullmatch(r"step \d{1,9}", name) and 2 <= size <= largest):
            raise CourseError(f"the report to replay has a malformed case (cases[{i}])")
        cases.append(CaseSpec(name, seed, size, dtype))
    return tuple(cases)


def _seed(value: Any) -> bool:
    """Whether a report's seed is one a torch.Generator takes (a plain int, 0 to 2**63 - 1)."""
    return type(value) is int and 0 <= value < 1 << 63
