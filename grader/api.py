"""The grader as a library: grade one submission from Python, and the results it gives back.

    from grader.api import grade, render
    report = grade("exercise1", "solutions/exercise1.py")
    print(report.score, "/", report.max_score)
    print(render(report))                     # the text ninja-grade prints; fmt="json" and the others too

Everything here is typed and stable within a minor version; the modules behind it
(grader/pipeline.py and the stages it calls) are not. A mistake in the student's code is
never an exception: it is in the report. The exceptions are for set-up: a course that cannot
be read (CourseError), a submission that cannot be (SubmissionError), a data set that cannot
be used (DataError), a sandbox that cannot start (SandboxError).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from grader.confined.sandbox import SandboxError
from grader.courseware.course import Course, CourseError, Limits, load_course
from grader.courseware.data import DataError
from grader.intake.submission import SubmissionError
from grader.judging.results import FullRun, GradientResult, Report, Status, TrainingResult

__all__ = [
    "Course", "CourseError", "DataError", "FullRun", "GradientResult", "Limits", "Report", "SandboxError", "Status",
    "SubmissionError", "TrainingResult", "grade", "load_course", "render", "train",
]

PathLike = str | os.PathLike[str]


def _course(course: Course | PathLike | None) -> Course:
    return course if isinstance(course, Course) else load_course(None if course is None else Path(course))


def grade(exercise: str, submission: PathLike | None = None, *, course: Course | PathLike | None = None,
          data: PathLike | None = None, limits: Limits | None = None, sections: bool = False) -> Report:
    """Grade one submission of one exercise, as `ninja-grade EXERCISE SUBMISSION` does.

    Arguments:
        exercise: the exercise's id in the course ("exercise1" ... "exercise4" in the lecture's).
        submission: a .py or a .ipynb (a notebook's cells for this exercise are found by what they
            assign); default: the exercise's stub.
        course: a Course, or the path of a course.yaml; default: the shipped lecture course.
        data: names.txt; default: where the grader looks ($NINJA_DATA, ./names.txt, the cache).
        limits: time (s) and memory (MB) for the sandbox; default: the exercise's.
        sections: read a .py as holding several exercises, like a notebook.

    Returns the Report: a GradientResult per gradient (status, maxdiff, message, diagnosis),
    the score, notes about the submission as a whole, the cases it was judged on and, for a
    training exercise, the quick run's TrainingResult.

    Raises CourseError, SubmissionError, DataError or SandboxError for problems of set-up.
    """
    from grader.pipeline import grade as grade_submission  # noqa: PLC0415 - torch, only once something is graded

    return grade_submission(_course(course), exercise, submission, data, limits, sections=sections)


def train(exercise: str, submission: PathLike | None = None, *, course: Course | PathLike | None = None,
          data: PathLike | None = None, steps: int | None = None,
          progress: Callable[[int, float], None] | None = None) -> FullRun:
    """Train the net with the submission's backward pass, as `ninja-grade EXERCISE SUBMISSION --full` does.

    Arguments:
        exercise: a training exercise's id ("exercise4" in the lecture's course).
        submission, course, data: as for grade().
        steps: how many steps (default: the course's full run, the lecture's 200,000).
        progress: called with (step, loss) as the run goes.

    Returns the FullRun: the steps run, the losses (log10, as the lecture keeps them), the
    train and validation losses, samples, and why it stopped early, if it did.
    """
    from grader.pipeline import train_full  # noqa: PLC0415 - as above

    run, _ = train_full(_course(course), exercise, submission, data, steps=steps,
                        progress=progress or (lambda step, loss: None))
    return run


def render(report: Report | list[Report], fmt: str = "text") -> str:
    """A report (or one submission's reports, one per exercise) in a format of `ninja-grade --format`:
    text, json, junit, gradescope, markdown, prairielearn (classroom50 needs its runner's environment)."""
    from grader.reporting.formats import render as render_reports  # noqa: PLC0415 - as above

    return render_reports(fmt, report if isinstance(report, list) else [report])
