"""Grade a class: many submissions, in parallel, resumable, into a gradebook.

Each submission's report is written to OUT/<student>.json atomically as soon as it is
graded, so a batch that is killed and rerun grades only what is missing, and a file in
OUT is either a whole report or absent. Workers are forked from a process that has torch
loaded, and each keeps its data set between submissions; student code still runs in a
fresh sandbox per submission, forked by the worker's zygote (never by the worker, which
holds the truths of every submission it has graded). A report is written by the batch
itself, once the worker has answered and the sandbox's child is dead, and the gradebook is
built from the reports the batch holds, not read back from files.

Only what a student's code did can put a score in a report. A worker answers with a
typed outcome: Graded (a report) or Fault (the grader itself failed: no report, so the
next run grades it again). A worker that dies takes its pool down without saying which
submission it was on; the submissions not finished are then graded one per process, so
one that kills its worker again (memory, a crash in native code) is identified and
graded `error`, and the others are graded normally.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import multiprocessing
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from grader.ci.gradebooks import spreadsheet_cell
from grader.confined.sandbox import forking, prestart
from grader.courseware.course import Course, Limits, load_course
from grader.courseware.data import find_names
from grader.files import write_atomic
from grader.intake.submission import SubmissionError
from grader.judging.results import plain_number

SUFFIXES = (".ipynb", ".py")


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None
    problem: str | None = None  # why it cannot be graded at all


def discover(paths: list[Path], exercise_id: str) -> list[Submission]:
    """One submission per file or folder; the student id is the file's or folder's name."""
    found: list[Submission] = []
    seen: dict[str, int] = {}
    for path in paths:
        student = path.stem if path.is_file() else path.name
        seen[student] = seen.get(student, 0) + 1
        if seen[student] > 1:
            student = f"{student}-{seen[student]}"
        if path.is_file():
            problem = None if path.suffix in SUFFIXES else f"{path.name} is not a .py or .ipynb file"
            found.append(Submission(student, path, problem))
        elif path.is_dir():
            candidates = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
            named = [p for p in candidates if p.stem == exercise_id]
            if len(named) == 1 or len(candidates) == 1:
                found.append(Submission(student, (named or candidates)[0]))
            elif not candidates:
                found.append(Submission(student, None, f"{path.name}/ holds no .py or .ipynb file"))
            else:
                names = ", ".join(p.name for p in candidates[:4])
                found.append(Submission(student, None, f"{path.name}/ holds several submissions ({names}); "
                                                       f"name one {exercise_id}.py or .ipynb"))
        else:
            found.append(Submission(student, None, f"{path} does not exist"))
    return found


# --- in a worker ---------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _start_worker(course_path: str | None, data: str | None) -> None:
    """Once per worker: die with the batch, load the course and the data set."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes  # noqa: PLC0415 - Linux only: PR_SET_PDEATHSIG, so no worker outlives the batch

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch's to handle
    import torch  # noqa: PLC0415 - already loaded by the batch before it forked

    torch.set_num_threads(1)  # the tensors are tiny; one thread per worker keeps the cores for the workers
    prestart()  # the worker's zygote imports torch while the worker loads the course
    _worker["course"] = load_course(course_path)
    _worker["dataset"] = find_names(data)


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
    try:
        from grader.judging.grade import grade_program, load_submission  # noqa: PLC0415 - loads torch, in workers only

        course: Course = _worker["course"]
        exercise = course.exercise(exercise_id)
        try:
            program = load_submission(course, exercise, Path(path))
            result = grade_program(course, exercise, program, _worker["dataset"], submission_label=path,
                                   limits=limits).to_dict()
        except SubmissionError as exc:
            result = {"exercise": exercise_id, "submission": path, "passed": False, "score": 0,
                      "max_score": plain_number(exercise.max_score), "gradients": [], "error": str(exc)}
    except Exception as exc:  # the grader's own failure (a bug, a lost data set): never a student's grade
        return grader_fault(student, path, exc)
    return Graded({**result, "student": student, "seconds": round(time.monotonic() - started, 3),
                   "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


Job = tuple[str, str, str, Limits | None]  # exercise, student, path, limits


def _grade_in_child(conn: Connection, course_path: str | None, data: str | None, job: Job) -> None:
    """A worker of its own for one submission: its outcome goes back through `conn`."""
    exercise_id, student, path, limits = job
    try:
        _start_worker(course_path, data)
        outcome: Graded | Fault = grade_one(exercise_id, student, path, limits)
    except Exception as exc:
        outcome = grader_fault(student, path, exc)
    conn.send(outcome)
    conn.close()


# --- in the batch --------------------------------------------------------------------


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    errored: int = 0
    skipped: int = 0  # graded by an earlier run
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
    return {"exercise": exercise_id, "submission": str(sub.path or ""), "passed": False, "score": 0,
            "max_score": plain_number(max_score), "gradients": [], "error": sub.problem, "student": sub.student,
            "graded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


Progress = Callable[[dict[str, Any] | None, Tally], None]  # a report written, or None for a fault


def run_batch(course: Course, exercise_id: str, subs: list[Submission], *, out: Path, jobs: int, force: bool,
              course_path: str | None, data: str | None, limits: Limits | None, progress: Progress) -> Tally:
    """Grade what is not graded yet; each report lands in out/<student>.json as it is done."""
    exercise = course.exercise(exercise_id)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp"):  # left by a batch that was killed mid-write
        stale.unlink(missing_ok=True)
    tally = Tally()
    todo = []
    for sub in subs:
        if not force and (out / f"{sub.student}.json").is_file():
            tally.skipped += 1
        elif sub.problem is not None:
            record(Graded(unreadable(exercise_id, sub, exercise.max_score)), out, tally, progress)
        else:
            todo.append(sub)
    left = _grade_in_pool(exercise_id, todo, out=out, jobs=jobs, course_path=course_path, data=data,
                          limits=limits, tally=tally, progress=progress)
    for sub in left:  # a worker died in the pool, on one of these: find which, one per process
        record(_grade_alone(exercise_id, sub, course_path=course_path, data=data, limits=limits,
                            max_score=exercise.max_score), out, tally, progress)
    return tally


def record(outcome: Graded | Fault, out: Path, tally: Tally, progress: Progress) -> None:
    """Write a report, or keep a fault to say at the end (and write nothing, so a rerun grades it)."""
    if isinstance(outcome, Fault):
        tally.faults.append(outcome)
        progress(None, tally)
        return
    write_atomic(out / f"{outcome.report['student']}.json", json.dumps(outcome.report, indent=2))
    tally.add(outcome.report)
    progress(outcome.report, tally)


def _grade_in_pool(exercise_id: str, todo: list[Submission], *, out: Path, jobs: int, course_path: str | None,
                   data: str | None, limits: Limits | None, tally: Tally, progress: Progress) -> list[Submission]:
    """Grade `todo` with `jobs` workers; return the submissions that were not graded because a
    worker died (which one it was on, the pool does not say)."""
    if not todo:
        return []
    import grader.judging.grade  # noqa: F401, PLC0415 - torch loaded once here, shared by every forked worker

    left = {sub.student: sub for sub in todo}
    context = multiprocessing.get_context("fork")
    with forking(), ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                                        initargs=(course_path, data)) as pool:
        futures: dict[Future[Graded | Fault], Submission] = {
            pool.submit(grade_one, exercise_id, sub.student, str(sub.path), limits): sub for sub in todo}
        try:
            for future in as_completed(futures):
                outcome = future.result()
                left.pop(futures[future].student, None)
                record(outcome, out, tally, progress)
        except BrokenProcessPool:
            pass
    return list(left.values())


ATTEMPTS_ALONE = 2  # a submission that kills a worker of its own this many times is its own doing


def answer_within(limits: Limits | None) -> float:
    """How long a worker of its own may take on one submission: the student's code is stopped by the
    sandbox at its time limit, so far beyond that only the grader itself can be hanging."""
    return 3 * (limits.time_s if limits is not None else Limits().time_s) + 120


def _grade_alone(exercise_id: str, sub: Submission, *, course_path: str | None, data: str | None,
                 limits: Limits | None, max_score: float) -> Graded | Fault:
    """Grade one submission in a worker of its own. A worker that dies every time is the
    submission's doing (graded `error`, with how it died); once is a fluke, tried again."""
    context = multiprocessing.get_context("fork")
    how = ""
    for _attempt in range(ATTEMPTS_ALONE):
        receive, send = context.Pipe(duplex=False)
        job: Job = (exercise_id, sub.student, str(sub.path), limits)
        child = context.Process(target=_grade_in_child, args=(send, course_path, data, job), daemon=True)
        with forking():
            child.start()
        send.close()
        try:
            if not receive.poll(answer_within(limits)):  # the grader's own code hung: not the student's doing
                child.kill()
                child.join()
                return Fault(sub.student, str(sub.path), f"the grader's worker gave no answer in "
                             f"{answer_within(limits):.0f} s")
            outcome: Graded | Fault = receive.recv()
        except EOFError:  # died before it answered
            child.join()
            code = child.exitcode or 0
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            continue
        finally:
            receive.close()
        child.join()
        return outcome
    problem = (f"grading it killed the grader's worker {ATTEMPTS_ALONE} times ({how}): your code made the "
               "grader's process crash or run out of memory, so no gradient could be judged")
    return Graded(unreadable(exercise_id, Submission(sub.student, sub.path, problem), max_score))


def gradebook(course: Course, exercise_id: str, subs: list[Submission], out: Path,
              held: dict[str, dict[str, Any]] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The CSV gradebook, and the reports themselves: those `held` by this run (as graded, never read
    back from a file a child could have reached), else those in `out` from an earlier run."""
    exercise = course.exercise(exercise_id)
    names = list(exercise.gradient_names)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["student", "submission", "score", "max_score", "passed", "error", *names])
    reports = []
    for sub in subs:
        path = out / f"{sub.student}.json"
        try:
            report = (held or {}).get(sub.student) or json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):  # not graded: a row with no score, never a 0
            writer.writerow([spreadsheet_cell(sub.student), spreadsheet_cell(str(sub.path or "")), "",
                             plain_number(exercise.max_score), "",
                             "not graded yet: run the batch again", *("" for _ in names)])
            continue
        reports.append(report)
        statuses = {g["name"]: g["status"] for g in report.get("gradients", [])}
        writer.writerow([spreadsheet_cell(sub.student), spreadsheet_cell(str(report.get("submission", ""))),
                         report.get("score", 0), report.get("max_score", exercise.max_score),
                         report.get("passed", False), spreadsheet_cell(str(report.get("error") or "")),
                         *(statuses.get(n, "") for n in names)])
    return buffer.getvalue(), reports


def pass_rates(course: Course, exercise_id: str, reports: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(gradient, passed, graded) over the class, in the course's order."""
    rates = []
    for name in course.exercise(exercise_id).gradient_names:
        graded = [g for r in reports for g in r.get("gradients", []) if g["name"] == name]
        rates.append((name, sum(g["status"] in ("exact", "approximate") for g in graded), len(graded)))
    return rates

