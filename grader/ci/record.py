"""What a batch report was graded from, so that a rerun regrades exactly what has changed.

Every report a batch writes carries `graded_from`: a hash of the submission's bytes, a hash
of the course (its course.yaml, its forward files, and the lines of its stubs that are code),
a hash of the data set, the limits, the exercise and the grader's version. A rerun compares
each report's record with what it would grade now: the same record is the same grading, and
anything else is graded again, with the reason counted ("3 changed since their report").
A report whose record cannot be read is never trusted. Grading draws fresh cases each time,
so a record says what was graded, not which cases: two gradings of one record may differ only
where the submission's verdict depends on the batch it is judged on.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grader
from grader.courseware.course import Course, Limits
from grader.courseware.data import Dataset

DISTRIBUTION = "backprop-ninja"

# Why a submission is graded (again), in the order a rerun lists them.
REASONS = {
    "force": "--force",
    "changed": "changed since their report",
    "new": "new",
    "unreadable": "with a report whose record could not be read",
    "exercise": "graded as another exercise",
    "grader": "graded by another grader version",
    "course": "graded with another version of the course",
    "settings": "graded with other data or limits",
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

    def to_dict(self) -> dict[str, Any]:
        return {"exercise": self.exercise, "grader": self.grader, "course": self.course, "data": self.data,
                "limits": {"time_s": self.time_s, "memory_mb": self.memory_mb}}

    def of(self, submission: str) -> dict[str, Any]:
        """A report's `graded_from`: this run's record and the submission's fingerprint."""
        return {**self.to_dict(), "submission": submission}


def batch_record(course: Course, exercise_id: str, dataset: Dataset, limits: Limits) -> BatchRecord:
    return BatchRecord(exercise_id, course_digest(course), data_digest(dataset), float(limits.time_s),
                       int(limits.memory_mb), grader_version())


def fingerprint(path: Path | None, problem: str | None) -> str:
    """A submission as it is now: the hash of its file's bytes, or of why it cannot be graded at all."""
    if path is None or problem is not None:
        return _digest([("problem", (problem or "").encode())])
    try:
        return _digest([("file", path.read_bytes())])
    except OSError as exc:
        return _digest([("unreadable", (exc.strerror or type(exc).__name__).encode())])


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
    if was["submission"] != submission:
        return "changed", None
    return None, report


def _well_formed(was: Any) -> bool:
    if not isinstance(was, dict) or set(was) != {"exercise", "grader", "course", "data", "limits", "submission"}:
        return False
    limits = was["limits"]
    return (all(isinstance(was[k], str) for k in ("exercise", "grader", "course", "data", "submission"))
            and isinstance(limits, dict) and set(limits) == {"time_s", "memory_mb"})


def reasons_said(counts: dict[str, int]) -> str:
    """`3 changed since their report, 1 new`, in REASONS' order."""
    return ", ".join(f"{counts[key]} {REASONS[key]}" for key in REASONS if counts.get(key))
