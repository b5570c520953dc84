"""What a batch report was graded from, so that a rerun regrades exactly what has changed.

Every report a batch writes carries `graded_from`: a hash of the submission's bytes, a hash
of the course (its course.yaml, its forward files, and the lines of its stubs that are code),
a hash of the data set, the limits, the exercise, the grader's version and a digest of its own
code, and a keyed digest of the class's case secret (never the secret). A rerun compares
each report's record with what it would grade now: the same record is the same grading, and
anything else is graded again, with the reason counted ("3 changed since their report").
A report whose record cannot be read, or that does not read whole as a report whose score and
verdict follow from its gradients and the course's points, is never trusted. Grading draws fresh cases each time,
so a record says what was graded, not which cases: two gradings of one record may differ only
where the submission's verdict depends on the batch it is judged on.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.metadata
import json
import math
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grader
from grader.courseware.course import Course, CourseError, Exercise, Limits
from grader.courseware.data import Dataset
from grader.courseware.draw import course_secret
from grader.judging.results import passing

DISTRIBUTION = "backprop-ninja"
# Past every cap intake puts on a submission (2 MB for .py, 100 MB for a notebook): a file this large is
# refused by its size alone, so its size is all of it a rerun needs to compare, and it is never read.
HASHED_BYTES = 128 * 1024 * 1024
SECRET_LABEL = b"ninja-grade record: the case secret"  # HMAC'd with the secret: says which, never what

# Why a submission is graded (again), in the order a rerun lists them.
REASONS = {
    "force": "--force",
    "changed": "changed since their report",
    "new": "new",
    "unreadable": "with a report whose record could not be read",
    "exercise": "graded as another exercise",
    "grader": "graded by another grader version or code",
    "course": "graded with another version of the course",
    "settings": "graded with other data or limits",
    "cases": "graded under another case secret",
}


def grader_version() -> str:
    """`grader.__version__`, else the installed distribution's version."""
    version = getattr(grader, "__version__", None)
    if isinstance(version, str) and version:
        return version
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def grader_code() -> str:
    """The grader's own code: a digest of the .py files of its package, so that an editable install
    changed under the same version regrades. Once per process; the same on every machine with that code."""
    root = Path(grader.__file__).parent
    return _digest((p.relative_to(root).as_posix(), p.read_bytes()) for p in sorted(root.rglob("*.py")))


def grader_said() -> str:
    """`0.2.0 (code 1a2b3c4d5e6f7a8b)`: the version a person reads, and the code that graded."""
    return f"{grader_version()} (code {grader_code()[7:23]})"


def secret_digest(course: Course) -> str:
    """Which case secret the cases are drawn under: a keyed digest of it, never the secret; "none" without one."""
    try:
        secret = course_secret(course)
    except CourseError:  # said by the grading itself, which cannot draw without it
        return "unreadable"
    if secret is None:
        return "none"
    key = secret.encode("utf-8", errors="surrogateescape")
    return "hmac-sha256:" + hmac.new(key, SECRET_LABEL, hashlib.sha256).hexdigest()[:16]


def _digest(parts: Iterable[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:  # each part framed by its name and length: no two courses hash alike by a shift
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return f"sha256:{h.hexdigest()}"


def graded_lines(text: str) -> bytes:
    """A stub's lines that are code: without blank lines and lines that are only a comment, so that a
    reworded TODO regrades no one and a changed assignment regrades everyone."""
    lines = (line.rstrip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.lstrip().startswith("#")).encode()


def course_digest(course: Course) -> str:
    """The course as graded: course.yaml, every forward file, every stub's code lines."""
    root = course.root
    parts: list[tuple[str, bytes]] = []
    if course.path is not None:
        parts.append(("course.yaml", course.path.read_bytes()))
    for forward in sorted({e.forward for e in course.exercises}):
        parts.append((f"forward {_relative(forward, root)}", forward.read_bytes()))
    for exercise in course.exercises:
        parts.append((f"stub {exercise.id}", graded_lines(exercise.stub.read_text(encoding="utf-8", errors="replace"))))
    return _digest(parts)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def data_digest(dataset: Dataset) -> str:
    return _digest([("words", "\n".join(dataset.words).encode())])


@dataclass(frozen=True)
class BatchRecord:
    """What every submission of one batch run is graded with."""

    exercise: str
    course: str
    data: str
    time_s: float
    memory_mb: int
    grader: str
    cases: str = "none"  # secret_digest
    # gradient -> its points, in the course's order: what a kept report's score is checked against
    points: tuple[tuple[str, float], ...] = field(default=(), compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"exercise": self.exercise, "grader": self.grader, "course": self.course, "data": self.data,
                "limits": {"time_s": self.time_s, "memory_mb": self.memory_mb}, "cases": self.cases}

    def of(self, submission: str) -> dict[str, Any]:
        """A report's `graded_from`: this run's record and the submission's fingerprint."""
        return {**self.to_dict(), "submission": submission}


def points_of(exercise: Exercise) -> dict[str, float]:
    """Gradient -> its points, in the course's order: what a report's gradients are checked against."""
    return {g.name: float(g.points) for g in exercise.gradients}


def batch_record(course: Course, exercise_id: str, dataset: Dataset, limits: Limits) -> BatchRecord:
    points = tuple(points_of(course.exercise(exercise_id)).items())
    return BatchRecord(exercise_id, course_digest(course), data_digest(dataset), float(limits.time_s),
                       int(limits.memory_mb), grader_said(), secret_digest(course), points)


def fingerprint(path: Path | None, problem: str | None) -> str:
    """A submission as it is now: the hash of its file's bytes (streamed), of its size alone where that is
    past any size a submission may have, or of why it cannot be graded at all."""
    if path is None or problem is not None:
        return _digest([("problem", (problem or "").encode())])
    try:
        # non-blocking: a name swapped for a pipe since it was found must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:
        return _digest([("unreadable", (getattr(exc, "strerror", None) or type(exc).__name__).encode())])
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())  # what was opened, not what the name says now
        if not stat.S_ISREG(info.st_mode):
            return _digest([("not a file", f"{stat.S_IFMT(info.st_mode):o}".encode())])
        if info.st_size > HASHED_BYTES:
            return _digest([("too large", str(info.st_size).encode())])
        return _streamed("file", file, info.st_size)


def _streamed(name: str, file: Any, size: int) -> str:
    """_digest of one part `size` bytes long, read a megabyte at a time: the same hash as of its bytes whole.
    A file cut short while read hashes as no whole file does, and is graded again next time."""
    h = hashlib.sha256(f"{name}\0{size}\0".encode())
    left = size
    while left > 0 and (chunk := file.read(min(left, 1 << 20))):
        h.update(chunk)
        left -= len(chunk)
    return f"sha256:{h.hexdigest()}"


def why_grade(report_path: Path, student: str, record: BatchRecord,
              submission: str) -> tuple[str | None, dict[str, Any] | None]:
    """Why a student's submission must be graded (a key of REASONS), or None with its report when the
    report in `report_path` is theirs and was graded from exactly this record."""
    try:
        raw = report_path.read_bytes()
    except FileNotFoundError:
        return "new", None
    except OSError:
        return "unreadable", None
    try:
        report = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return "unreadable", None
    was = report.get("graded_from") if isinstance(report, dict) else None
    if not _well_formed(was) or report.get("student") != student:
        return "unreadable", None
    assert isinstance(was, dict) and isinstance(report, dict)
    now = record.of(submission)
    for key in ("exercise", "grader", "course"):
        if was[key] != now[key]:
            return key, None
    if was["data"] != now["data"] or was["limits"] != now["limits"]:
        return "settings", None
    if was.get("cases") != now["cases"]:  # a record without one is another record
        return "cases", None
    if was["submission"] != submission:
        return "changed", None
    if report_problem(report, dict(record.points)) is not None:  # edited since, or not written by a batch
        return "unreadable", None
    return None, report


RECORD_KEYS = frozenset({"exercise", "grader", "course", "data", "limits", "submission"})


def _well_formed(was: Any) -> bool:
    if not isinstance(was, dict) or set(was) - {"cases"} != RECORD_KEYS:
        return False
    limits = was["limits"]
    return (all(isinstance(was[k], str) for k in (*RECORD_KEYS - {"limits"}, *("cases",) * ("cases" in was)))
            and isinstance(limits, dict) and set(limits) == {"time_s", "memory_mb"})


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def report_problem(report: Any, points: Mapping[str, float] | None = None) -> str | None:
    """Why a report read back from a file is not one to keep, or None: each field read later must have
    its type, its gradients must be the course's (`points`: gradient -> points, where known), and its
    score, max_score and passed must be what its gradients give."""
    if not isinstance(report, dict):
        return "it is not a JSON object"
    gradients = report.get("gradients")
    if not isinstance(gradients, list) or not all(
            isinstance(g, dict) and isinstance(g.get("name"), str) and isinstance(g.get("status"), str)
            and _number(g.get("points")) and _number(g.get("score")) for g in gradients):
        return "its gradients are not a list of judged gradients"
    if not all(_number(report.get(k)) for k in ("score", "max_score")) or not isinstance(report.get("passed"), bool):
        return "its score, max_score or passed is missing or not a number or true/false"
    error, training = report.get("error"), report.get("training")
    if (error is not None and not isinstance(error, str)) or not isinstance(report.get("submission", ""), str):
        return "its error or submission is not text"
    if training is not None and not (isinstance(training, dict) and isinstance(training.get("agreed"), bool)):
        return "its training run is not one"
    names = [g["name"] for g in gradients]
    if points is not None and names != list(points) and (gradients or not error):  # an error report has none
        return "its gradients are not the course's"
    if points is not None and any(not _same(g["points"], points[g["name"]]) for g in gradients):
        return "its gradients' points are not the course's"
    if any(not _same(g["score"], g["points"] if passing(g["status"]) else 0.0) for g in gradients):
        return "a gradient's score is not what its verdict gives"
    if not _same(report["score"], sum(g["score"] for g in gradients)):
        return "its score is not the sum of its gradients' scores"
    most = sum(points.values()) if points is not None else sum(g["points"] for g in gradients)
    if (points is not None or gradients) and not _same(report["max_score"], most):
        return "its max_score is not the course's"
    passed = not error and all(passing(g["status"]) for g in gradients) and (training is None or training["agreed"])
    if report["passed"] != passed:
        return "its passed is not what its gradients give"
    return None


def reasons_said(counts: dict[str, int]) -> str:
    """`3 changed since their report, 1 new`, in REASONS' order."""
    return ", ".join(f"{counts[key]} {REASONS[key]}" for key in REASONS if counts.get(key))
