"""Grade a class: many submissions, in parallel, resumable, never stale, into a gradebook.

Each submission's report is written to OUT/<student>.json atomically as soon as it is
graded, so a batch that is killed and rerun loses nothing, and a file in OUT is either a
whole report or absent. Each report records what it was graded from (grader/ci/record.py):
a rerun grades again exactly the submissions whose record differs, and says why. A shard
(grader/ci/shards.py) takes its share of the class and writes its manifest beside its reports.

Workers are forked from a process that has torch loaded, each keeps its course and data set
between submissions, and each grades one submission at a time (grader/ci/pool.py): student
code runs in a fresh sandbox per submission, forked by the worker's zygote (never by the
worker, which holds the truths of every submission it has graded). A report is written by
the batch itself, once the worker has answered and the sandbox's child is dead, and the
gradebook is built from the reports the batch holds (graded in this run, or read and checked
before it began), never read back from a file afterwards.

Only what a student's code did can put a score in a report. A worker answers with a typed
outcome: Graded (a report) or Fault (the grader itself failed: no report, so the next run
grades it again). A worker that dies is the death of the one submission it was on: that one
is tried again in a fresh worker, and one that kills its worker twice (memory, a crash in
native code) is graded `error`. A worker that gives no answer in bounded time is killed and
its submission left ungraded, as a Fault.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import signal
import stat
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grader.ci.gradebooks import spreadsheet_cell
from grader.ci.pool import Died, Hung, Pool
from grader.ci.record import BatchRecord, batch_record, fingerprint, reasons_said, why_grade
from grader.ci.shards import MANIFEST_GLOBS, WHOLE, Shard, write_manifest
from grader.confined import kernel
from grader.confined.choice import prestart, zygote_for_worker
from grader.confined.zygote import Zygote
from grader.courseware.course import Course, Limits, load_course
from grader.courseware.data import Dataset
from grader.courseware.forward import dataset_of
from grader.files import write_atomic
from grader.intake.submission import SubmissionError
from grader.judging.results import error_report, passing, plain_number

SUFFIXES = (".ipynb", ".py")


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None
    problem: str | None = None  # why it cannot be graded at all
    named: str = ""  # the name it was handed in under, where its id is that name made unique (student_ids)


def _name(path: Path) -> str:
    """A folder's name, or a file's without its suffix: a pipe or a device named carol.py is carol too."""
    try:
        kind = path.stat().st_mode
    except (OSError, ValueError):  # nothing there (or a name no system can hold): said as it was given
        return path.name
    return path.name if stat.S_ISDIR(kind) else path.stem


REPORT_NAME_BYTES = 200  # a report's file name at most: write_atomic's ".NAME.XXXXXXXX.tmp" must fit in 255


def report_name(student: str) -> str:
    """The file a student's report is written to in OUT: `<student>.json`, or, for an id too long to be
    a file's name, its first bytes and a hash of the whole id, the same on every run and every machine."""
    name = f"{student}.json"
    if len(os.fsencode(name)) <= REPORT_NAME_BYTES:
        return name
    tag = "-" + hashlib.sha256(os.fsencode(student)).hexdigest()[:16] + ".json"
    stem = os.fsencode(student)[: REPORT_NAME_BYTES - len(tag)].decode("utf-8", "ignore")  # whole characters
    return stem + tag


def student_ids(paths: list[Path]) -> list[str]:
    """Each path's student id: the file's or folder's name, and for a name met before, that name with
    the first suffix -2, -3, ... that no path is named and no id has taken, so that no two submissions
    share an id (nor ids that differ only in case: their reports' files would be one on some systems).
    Namesakes are numbered in the order of their paths (letter case aside, then lower case first), not of
    the arguments, so that every shard, given the same files in any order, gives each the same id."""
    names = [_name(path) for path in paths]
    taken = {name.casefold() for name in names}
    used: set[str] = set()
    ids = [""] * len(paths)
    for i in sorted(range(len(paths)), key=lambda i: (str(paths[i]).casefold(), str(paths[i]).swapcase())):
        name = names[i]
        student, k = name, 1
        while student.casefold() in used or (k > 1 and student.casefold() in taken):
            k += 1
            student = f"{name}-{k}"
        used.add(student.casefold())
        ids[i] = student
    return ids


def link_problem(path: Path) -> str | None:
    """Why a folder handed in as a student's cannot be: a symbolic link (to a classmate's folder, say)."""
    return f"{path} is a symbolic link; grade the folder it names, not the link" if path.is_symlink() else None


def holds_batch_output(path: Path, out: Path) -> bool:
    """Whether a path handed in as a student's is the batch's own --out folder, or any folder a batch
    wrote its manifest in and no submission is in (`cd subs; ninja-grade batch EX *` names ninja-batch/
    on its rerun)."""
    if not path.is_dir():
        return False
    try:
        if out.is_dir() and path.samefile(out):
            return True
        # a batch writes no .py or .ipynb: a student's folder with a manifest of their own is still theirs
        return (any(next(path.glob(pattern), None) is not None for pattern in MANIFEST_GLOBS)
                and not any(p.suffix in SUFFIXES for p in path.iterdir()))
    except OSError:
        return False


def discover(paths: list[Path], exercise_id: str) -> list[Submission]:
    """One submission per file or folder; the student id is the file's or folder's name (student_ids)."""
    found: list[Submission] = []
    for path, student in zip(paths, student_ids(paths), strict=True):
        name = _name(path)
        found.append(replace(_discovered(path, student, exercise_id), named="" if name == student else name))
    return found


def repeated_names(subs: list[Submission]) -> dict[str, str]:
    """Each id made from a name met before -> that name: the name a roster is matched by, so that no such
    submission takes the grade of a roster entry its made-up id happens to be."""
    return {sub.student: sub.named for sub in subs if sub.named}


def _discovered(path: Path, student: str, exercise_id: str) -> Submission:
    if path.is_dir() and (linked := link_problem(path)):
        return Submission(student, None, linked)
    if path.is_file():
        wrong_kind = None if path.suffix in SUFFIXES else f"{path.name} is not a .py or .ipynb file"
        return Submission(student, path, wrong_kind)
    if not path.is_dir():
        return Submission(student, path if _exists(path) else None, _not_a_file(path))
    candidates = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    named = [p for p in candidates if p.stem == exercise_id]
    if len(named) == 1 or len(candidates) == 1:
        return Submission(student, (named or candidates)[0])
    if not candidates:
        return Submission(student, None, f"{path.name}/ holds no .py or .ipynb file")
    names = ", ".join(p.name for p in candidates[:4])
    return Submission(student, None, f"{path.name}/ holds several submissions ({names}); "
                                     f"name one {exercise_id}.py or .ipynb")


def _exists(path: Path) -> bool:
    try:
        path.lstat()
    except (OSError, ValueError):
        return False
    return True


def _not_a_file(path: Path) -> str:
    """Why a path that is neither a regular file nor a folder cannot be graded, found by stat alone:
    opening a pipe to look would wait for a writer forever."""
    try:
        kind = path.stat().st_mode
    except FileNotFoundError:
        return f"{path} is a symbolic link to nothing" if path.is_symlink() else f"{path} does not exist"
    except (OSError, ValueError) as exc:
        return f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
    what = ("a pipe (FIFO)" if stat.S_ISFIFO(kind) else "a device" if stat.S_ISCHR(kind) or stat.S_ISBLK(kind)
            else "a socket" if stat.S_ISSOCK(kind) else "neither a file nor a folder")
    linked = "a symbolic link to " if path.is_symlink() else ""
    return f"{path} is not a regular file: it is {linked}{what}; hand in a .py or .ipynb file"


# --- in a worker ---------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _start_worker(course_path: str | None, data: str | None, zygote: Zygote | None) -> None:
    """Once per worker: die with the batch, take the zygote forked for it, load the course and the data set."""
    kernel.die_with_parent()  # Linux: no worker outlives the batch
    kernel.name_process("ninja-worker")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch's to handle
    import torch  # noqa: PLC0415 - already loaded by the batch before it forked

    torch.set_num_threads(1)  # the tensors are tiny; one thread per worker keeps the cores for the workers
    try:
        prestart(zygote)  # or the worker's own zygote imports torch while the worker loads the course
        _worker["course"] = load_course(course_path)
        _worker["dataset"] = dataset_of(_worker["course"], data)
    except Exception as exc:  # said as each job's Fault: the grader's failure, never a student's
        _worker["broken"] = f"the grader's worker could not start ({type(exc).__name__}: {exc})"[:300]


@dataclass(frozen=True)
class Graded:
    """A submission graded: its report, ready to write."""

    report: dict[str, Any]


@dataclass(frozen=True)
class Fault:
    """The grader failed on a submission, through no doing of the student's: no report."""

    student: str
    path: str
    reason: str


def grader_fault(student: str, path: str, exc: Exception) -> Fault:
    """The grader's own failure on a submission, as the batch will say it."""
    return Fault(student, path, f"{type(exc).__name__}: {exc}"[:300])


def grade_one(exercise_id: str, student: str, path: str, limits: Limits | None) -> Graded | Fault:
    """One submission's report; a submission that cannot be read is a report (the student's file
    is at fault), a failure of the grader's own code is a Fault."""
    started = time.monotonic()
    if "broken" in _worker:
        return Fault(student, path, _worker["broken"])
    try:
        from grader.pipeline import grade_program, load_submission  # noqa: PLC0415 - loads torch, in workers only

        course: Course = _worker["course"]
        exercise = course.exercise(exercise_id)
        try:
            program = load_submission(course, exercise, Path(path))
            result = grade_program(course, exercise, program, _worker["dataset"], submission_label=path,
                                   limits=limits).to_dict()
        except SubmissionError as exc:
            result = error_report(exercise_id, path, exercise.max_score, str(exc))
    except Exception as exc:  # the grader's own failure (a bug, a lost data set): never a student's grade
        return grader_fault(student, path, exc)
    return Graded({**result, "student": student, "seconds": round(time.monotonic() - started, 3),
                   "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


Job = tuple[str, str, str, Limits | None]  # exercise, student, path, limits


def _work(job: Job) -> Graded | Fault:
    return grade_one(*job)


# --- in the batch --------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One submission of this run's share, with its fingerprint now."""

    sub: Submission
    submission: str  # record.fingerprint


@dataclass
class Plan:
    """What a run will grade, and why; and the reports it keeps, as read and checked now."""

    record: BatchRecord
    shard: Shard
    share: list[Planned]
    todo: list[Planned] = field(default_factory=list)
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)  # graded before, from this very record
    why: Counter[str] = field(default_factory=Counter)  # reason -> how many are graded for it
    repeated: dict[str, str] = field(default_factory=dict)  # the whole class's repeated_names
    paths: dict[str, str] = field(default_factory=dict)  # the whole class's id -> the path handed in

    @property
    def said(self) -> str:
        """`grading 4 of 100: 3 changed since their report, 1 new; 96 graded before and unchanged`."""
        kept = f"; {len(self.kept)} graded before and unchanged" if self.kept and self.todo else ""
        if not self.share:
            return "grading 0: none of the submissions is this shard's"
        if not self.todo:
            return f"grading 0 of {len(self.share)}: all graded before and unchanged"
        return f"grading {len(self.todo)} of {len(self.share)}: {reasons_said(self.why)}{kept}"


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    errored: int = 0
    skipped: int = 0  # graded by an earlier run, from the same record
    faults: list[Fault] = field(default_factory=list)  # not graded: the grader failed on them
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # graded in this run, by student

    def add(self, report: dict[str, Any]) -> None:
        self.reports[str(report.get("student", ""))] = report
        if report.get("error"):
            self.errored += 1
        elif report.get("passed"):
            self.passed += 1
        else:
            self.failed += 1

    def __str__(self) -> str:
        faults = f" · {len(self.faults)} not graded" if self.faults else ""
        return f"{self.passed} passed · {self.failed} failed · {self.errored} errored{faults}"


def unreadable(exercise_id: str, sub: Submission, max_score: float) -> dict[str, Any]:
    return {**error_report(exercise_id, str(sub.path or ""), max_score, sub.problem or ""), "student": sub.student,
            "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


Progress = Callable[[dict[str, Any] | None, Tally], None]  # a report written, or None for a fault


def plan_batch(course: Course, exercise_id: str, subs: list[Submission], *, out: Path, force: bool,
               dataset: Dataset, limits: Limits, shard: Shard = WHOLE) -> Plan:
    """This run's share of `subs`, and which of them to grade: those whose report in `out` is missing,
    unreadable, or graded from another record than this run's (everything with `force`)."""
    plan = Plan(batch_record(course, exercise_id, dataset, limits), shard,
                [Planned(sub, fingerprint(sub.path, sub.problem)) for sub in subs if shard.takes(sub.student)],
                repeated=repeated_names(subs), paths={sub.student: str(sub.path or "") for sub in subs})
    for planned in plan.share:
        student = planned.sub.student
        reason, report = ("force", None) if force else why_grade(out / report_name(student), student, plan.record,
                                                                 planned.submission)
        if reason is None and report is not None:
            plan.kept[student] = report
        else:
            plan.todo.append(planned)
            plan.why[reason or "unreadable"] += 1
    return plan


def run_batch(course: Course, exercise_id: str, plan: Plan, students: list[str], *, out: Path, jobs: int,
              course_path: str | None, data: str | None, limits: Limits, progress: Progress) -> Tally:
    """Grade what the plan says; each report lands in out/<student>.json as it is done, and the shard's
    manifest beside them says what this run graded with (written before and after)."""
    exercise = course.exercise(exercise_id)
    out.mkdir(parents=True, exist_ok=True)
    ours = {report_name(p.sub.student) for p in plan.share} | {plan.shard.manifest_name, plan.shard.gradebook_name}
    for stale in leftovers(out, ours):  # left by a run killed mid-write; another shard's in the same OUT are its own
        stale.unlink(missing_ok=True)
    share = {p.sub.student: p.submission for p in plan.share}

    def manifest(*, complete: bool) -> None:
        write_manifest(out, plan.shard, plan.record.to_dict(), students, share, complete=complete,
                       repeated=plan.repeated, paths=plan.paths)

    manifest(complete=False)
    tally = Tally(skipped=len(plan.kept))
    todo: dict[str, Planned] = {}
    for planned in plan.todo:
        if planned.sub.problem is not None:
            graded = Graded(unreadable(exercise_id, planned.sub, exercise.max_score))
            record(graded, planned, from_=plan.record, out=out, tally=tally, progress=progress)
        else:
            todo[planned.sub.student] = planned
    if todo:
        _grade_in_pool(exercise_id, todo, plan.record, out=out, jobs=jobs, course_path=course_path, data=data,
                       limits=limits, tally=tally, progress=progress, max_score=exercise.max_score)
    manifest(complete=True)
    return tally


def leftovers(out: Path, names: set[str]) -> list[Path]:
    """The temporary files in `out` that write_atomic left for the files named (`.NAME.RANDOM.tmp`)."""
    found = []
    for path in out.iterdir():  # once: a class's folder may hold a hundred thousand reports
        name = path.name
        if name.startswith(".") and name.endswith(".tmp") and name[1:-4].rpartition(".")[0] in names:
            found.append(path)
    return found


def record(outcome: Graded | Fault, planned: Planned, *, from_: BatchRecord, out: Path, tally: Tally,
           progress: Progress) -> None:
    """Write a report with what it was graded from, or keep a fault to say at the end (and write
    nothing, so a rerun grades it)."""
    if isinstance(outcome, Fault):
        tally.faults.append(outcome)
        progress(None, tally)
        return
    report = {**outcome.report, "graded_from": from_.of(planned.submission)}
    write_atomic(out / report_name(str(report["student"])), json.dumps(report, indent=2))
    tally.add(report)
    progress(report, tally)


def answer_within(limits: Limits | None) -> float:
    """How long a worker may take on one submission: the student's code is stopped by the sandbox at
    its time limit, so far beyond that only the grader itself can be hanging."""
    return 3 * (limits.time_s if limits is not None else Limits().time_s) + 120


def _grade_in_pool(exercise_id: str, todo: dict[str, Planned], from_: BatchRecord, *, out: Path, jobs: int,
                   course_path: str | None, data: str | None, limits: Limits, tally: Tally, progress: Progress,
                   max_score: float) -> None:
    import grader.pipeline  # noqa: F401, PLC0415 - torch loaded once here, shared by every forked worker

    def done(job: Job, answer: Graded | Fault | Died | Hung) -> None:
        planned = todo[job[1]]
        sub = planned.sub
        if isinstance(answer, Died):  # the worker died on this one, each time it was tried: its own doing
            problem = (f"grading it killed the grader's worker {answer.times} times ({answer.how}): your code made "
                       "the grader's process crash or run out of memory, so no gradient could be judged")
            answer = Graded(unreadable(exercise_id, Submission(sub.student, sub.path, problem), max_score))
        elif isinstance(answer, Hung):  # the grader's own code hung: not the student's doing
            answer = Fault(sub.student, str(sub.path), f"the grader's worker gave no answer in {answer.seconds:.0f} s")
        record(answer, planned, from_=from_, out=out, tally=tally, progress=progress)

    pool: Pool[Job] = Pool(min(jobs, len(todo)), functools.partial(_start_worker, course_path, data), _work,
                           answer_within(limits), hand=zygote_for_worker)
    pool.run([(exercise_id, p.sub.student, str(p.sub.path), limits) for p in todo.values()], done)


def gradebook(course: Course, exercise_id: str, subs: list[Submission],
              reports: dict[str, dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The CSV gradebook of `subs`, and their reports, from `reports` alone: those graded in this run
    (as graded, never read back from a file a child could have reached) and those read and checked
    before it began. A student with none has a row with no score, never a 0."""
    exercise = course.exercise(exercise_id)
    names = list(exercise.gradient_names)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["student", "submission", "score", "max_score", "passed", "error", *names])
    held = []
    for sub in subs:
        report = reports.get(sub.student)
        if report is None:
            writer.writerow([spreadsheet_cell(sub.student), spreadsheet_cell(str(sub.path or "")), "",
                             plain_number(exercise.max_score), "",
                             "not graded yet: run the batch again", *("" for _ in names)])
            continue
        held.append(report)
        statuses = {g["name"]: g["status"] for g in report.get("gradients", [])}
        writer.writerow([spreadsheet_cell(sub.student), spreadsheet_cell(str(report.get("submission", ""))),
                         report.get("score", 0), report.get("max_score", exercise.max_score),
                         report.get("passed", False), spreadsheet_cell(str(report.get("error") or "")),
                         *(statuses.get(n, "") for n in names)])
    return buffer.getvalue(), held


def pass_rates(course: Course, exercise_id: str, reports: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(gradient, passed, graded) over the class, in the course's order."""
    rates = []
    for name in course.exercise(exercise_id).gradient_names:
        graded = [g for r in reports for g in r.get("gradients", []) if g["name"] == name]
        rates.append((name, sum(passing(g["status"]) for g in graded), len(graded)))
    return rates
