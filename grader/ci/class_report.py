"""What a class gets wrong: statistics over a batch's reports, for the instructor's page and JSON.

Everything here follows from the reports' own fields (score, status, diagnosis, line, training),
counted; nothing is judged again. The report names no student, so the page can be shown to the
class: the examples of code are anonymised (grader/ci/anonymise.py) and each message has the
student's name and file taken out.

Counting rules, said once:
- a gradient's pass rate is over the reports that judged it (an unreadable submission judged none);
- a wrong answer's label is its diagnosis, else what its status says: "unexplained" (wrong, and no
  transformation of the truth explains it), "error" or "missing";
- the mistakes and the first wrong gradients are counted over submissions that wrote something:
  one with every gradient missing is counted once, as "nothing written";
- a student's first wrong gradient is the first in backprop order (the course's) that does not pass.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.ci.anonymise import ExampleReader, submission_reader, without_student
from grader.courseware.course import Course, CourseError, Exercise
from grader.judging.results import PASSING, STATUSES, plain_number

UNEXPLAINED = "unexplained"
UNDIAGNOSED = (UNEXPLAINED, "error", "missing")  # labels that are a status, not a diagnosis
TOP_MISTAKES = 3


class ClassReportError(Exception):
    """The reports cannot make a class report (none there, several exercises, an unknown one)."""


@dataclass(frozen=True)
class GradientStats:
    """One gradient over the class."""

    name: str
    graded: int  # reports that judged it
    passed: int
    statuses: tuple[tuple[str, int], ...]  # status -> reports, every status, in STATUSES order
    labels: tuple[tuple[str, int], ...]  # label -> answers that do not pass, commonest first
    first_wrong: int  # students whose first wrong gradient this is

    @property
    def rate(self) -> float:
        return self.passed / self.graded if self.graded else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "graded": self.graded, "passed": self.passed, "pass_rate": round(self.rate, 4),
                "statuses": dict(self.statuses), "labels": dict(self.labels), "first_wrong": self.first_wrong}


@dataclass(frozen=True)
class Mistake:
    """A gradient wrong in one way (its label), in several students' code."""

    gradient: str
    label: str
    students: int
    message: str  # what one of them was told, with their name and file taken out
    example: str | None  # that student's line, anonymised; None when no file could be read

    def to_dict(self) -> dict[str, Any]:
        return {"gradient": self.gradient, "label": self.label, "students": self.students,
                "message": self.message, "example": self.example}


@dataclass(frozen=True)
class TrainingStats:
    """Exercise 4's quick-check runs over the class."""

    planned: int  # steps each run is meant to make
    completed: int  # every step made, losses with autograd's throughout
    diverged: int  # every step made, but the losses strayed from autograd's
    stopped: tuple[tuple[int, int], ...]  # (step it stopped at, runs), by step
    no_run: int  # no run at all: the submission could not be run

    @property
    def stopped_runs(self) -> int:
        return sum(count for _, count in self.stopped)

    def to_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "completed": self.completed, "diverged": self.diverged,
                "stopped": self.stopped_runs, "stopped_at": [{"step": s, "runs": c} for s, c in self.stopped],
                "no_run": self.no_run}


@dataclass(frozen=True)
class ClassReport:
    """A batch's reports, counted: the data behind the instructor's page and its JSON."""

    exercise: str
    title: str
    max_score: float
    students: int  # reports
    passed: int  # reports that pass
    unreadable: int  # reports of submissions that could not be read or run at all
    untouched: int  # every gradient missing
    ungraded: int  # submissions with no report: the grader failed on them (the batch says which)
    scores: tuple[tuple[float, int], ...]  # (score, students), by score
    gradients: tuple[GradientStats, ...]  # in backprop order
    label_order: tuple[str, ...]  # the heat map's columns: diagnoses, commonest first, then UNDIAGNOSED
    mistakes: tuple[Mistake, ...]  # the commonest diagnosed mistakes, at most TOP_MISTAKES
    all_passed: int  # students (who wrote something) with no wrong gradient
    training: TrainingStats | None = None

    @property
    def median_score(self) -> float | None:
        flat = sorted(score for score, count in self.scores for _ in range(count))
        if not flat:
            return None
        middle = len(flat) // 2
        return flat[middle] if len(flat) % 2 else (flat[middle - 1] + flat[middle]) / 2

    @property
    def wrote_something(self) -> int:
        return self.students - self.unreadable - self.untouched

    def to_dict(self) -> dict[str, Any]:
        return {
            "exercise": self.exercise, "title": self.title, "max_score": plain_number(self.max_score),
            "students": self.students, "passed": self.passed, "unreadable": self.unreadable,
            "untouched": self.untouched, "ungraded": self.ungraded, "median_score": self.median_score,
            "scores": [{"score": plain_number(s), "students": c} for s, c in self.scores],
            "gradients": [g.to_dict() for g in self.gradients],
            "labels": list(self.label_order),
            "mistakes": [m.to_dict() for m in self.mistakes],
            "first_wrong": {**{g.name: g.first_wrong for g in self.gradients if g.first_wrong},
                            "none": self.all_passed},
            "training": self.training.to_dict() if self.training else None,
        }


# --- reading ---------------------------------------------------------------------------

def is_report(data: Any) -> bool:
    """Whether a JSON value is a grading report (docs/DESIGN.md, "The JSON report"), as far as counting
    it needs."""
    if not isinstance(data, dict) or not isinstance(data.get("exercise"), str):
        return False
    gradients = data.get("gradients")
    if not isinstance(gradients, list) or not isinstance(data.get("score", 0), int | float):
        return False
    return all(isinstance(g, dict) and isinstance(g.get("name"), str) and g.get("status") in STATUSES
               for g in gradients)


def read_reports(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The reports in `folder` (its *.json files), each with its student; and the files that are not
    reports, with why, to say rather than count."""
    reports, skipped = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            skipped.append(f"{path.name} ({type(exc).__name__})")
            continue
        if not is_report(data):
            skipped.append(f"{path.name} (not a grading report)")
            continue
        reports.append({**data, "student": str(data.get("student") or path.stem)})
    return reports, skipped


def exercise_of(course: Course, reports: list[dict[str, Any]], wanted: str | None) -> Exercise:
    """The one exercise the reports grade (or `wanted`, of those that grade it)."""
    ids = sorted({r["exercise"] for r in reports})
    if wanted is None and len(ids) > 1:
        raise ClassReportError(f"the reports grade {', '.join(ids)}: say which with --exercise")
    exercise_id = wanted or (ids[0] if ids else None)
    if exercise_id is None:
        raise ClassReportError("there are no grading reports to count")
    try:
        return course.exercise(exercise_id)
    except CourseError as exc:
        raise ClassReportError(str(exc)) from exc


# --- counting --------------------------------------------------------------------------

def label_of(gradient: dict[str, Any]) -> str:
    diagnosis = gradient.get("diagnosis")
    if isinstance(diagnosis, str) and diagnosis:
        return diagnosis
    return UNEXPLAINED if gradient["status"] == "wrong" else str(gradient["status"])


def class_report(course: Course, exercise_id: str, reports: Iterable[dict[str, Any]], *, ungraded: int = 0,
                 example: ExampleReader | None = None, base: Path | None = None) -> ClassReport:
    """Count `reports` (each a report dict with its "student") of one exercise. The example lines are read
    from the files the reports name, as given or (for a relative path not found) below `base`."""
    exercise = course.exercise(exercise_id)
    mine = sorted((r for r in reports if is_report(r) and r["exercise"] == exercise_id),
                  key=lambda r: str(r.get("student")))
    reader = example or submission_reader(course, exercise, base)
    order = exercise.gradient_names
    statuses: dict[str, Counter[str]] = {name: Counter() for name in order}
    labels: dict[str, Counter[str]] = {name: Counter() for name in order}
    who: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    first: Counter[str] = Counter()
    untouched = unreadable = all_passed = 0
    for report in mine:
        by_name = {g["name"]: g for g in report["gradients"] if g["name"] in statuses}
        for g in by_name.values():
            statuses[g["name"]][g["status"]] += 1
        if not by_name:
            unreadable += 1
            continue
        if all(g["status"] == "missing" for g in by_name.values()):
            untouched += 1
            continue
        wrong = [by_name[name] for name in order if name in by_name and by_name[name]["status"] not in PASSING]
        if wrong:
            first[wrong[0]["name"]] += 1
        else:
            all_passed += 1
        for g in wrong:
            labels[g["name"]][label_of(g)] += 1
            who.setdefault((g["name"], label_of(g)), []).append((report, g))
    totals: Counter[str] = Counter()
    for counter in labels.values():
        totals.update(counter)
    label_order = (*sorted((k for k in totals if k not in UNDIAGNOSED), key=lambda k: (-totals[k], k)),
                   *(k for k in UNDIAGNOSED if totals[k]))
    gradients = tuple(
        GradientStats(name, sum(statuses[name].values()), sum(statuses[name][s] for s in PASSING),
                      tuple((s, statuses[name][s]) for s in STATUSES),
                      tuple(sorted(labels[name].items(), key=lambda kv: (-kv[1], label_order.index(kv[0])))),
                      first[name])
        for name in order)
    diagnosed = sorted(((key, len(found)) for key, found in who.items() if key[1] not in UNDIAGNOSED),
                       key=lambda kc: (-kc[1], order.index(kc[0][0]), kc[0][1]))
    mistakes = tuple(mistake(gradient, label, who[(gradient, label)], reader)
                     for (gradient, label), _ in diagnosed[:TOP_MISTAKES])
    scores = Counter(float(r.get("score") or 0) for r in mine)
    return ClassReport(
        exercise=exercise.id, title=exercise.title, max_score=exercise.max_score, students=len(mine),
        passed=sum(bool(r.get("passed")) for r in mine), unreadable=unreadable, untouched=untouched,
        ungraded=ungraded, scores=tuple(sorted(scores.items())), gradients=gradients, label_order=label_order,
        mistakes=mistakes, all_passed=all_passed,
        training=training_stats(exercise, mine) if exercise.training is not None else None)


def mistake(gradient: str, label: str, found: list[tuple[dict[str, Any], dict[str, Any]]],
            reader: ExampleReader) -> Mistake:
    """The mistake, told with the first student (by name) whose line can be shown."""
    for report, result in found:
        line = result.get("line")
        code = reader(report, line) if isinstance(line, int) else None
        if code:
            return Mistake(gradient, label, len(found), without_student(str(result.get("message", "")), report), code)
    report, result = found[0]
    return Mistake(gradient, label, len(found), without_student(str(result.get("message", "")), report), None)


def training_stats(exercise: Exercise, reports: list[dict[str, Any]]) -> TrainingStats:
    spec = exercise.training
    planned = spec.check_steps if spec is not None else 0
    completed = diverged = no_run = 0
    stopped: Counter[int] = Counter()
    for report in reports:
        run = report.get("training")
        if not isinstance(run, dict):
            no_run += 1
        elif run.get("stopped"):
            steps = run.get("steps")
            stopped[steps if isinstance(steps, int) else 0] += 1
        elif run.get("agreed"):
            completed += 1
        else:
            diverged += 1
    return TrainingStats(planned, completed, diverged, tuple(sorted(stopped.items())), no_run)
