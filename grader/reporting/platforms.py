"""Results for the platforms courses grade on: Classroom 50's result.json and PrairieLearn's results.json.

Renderers: Reports in, JSON out, no grading logic. Student-controlled text loses its control
characters (a terminal escape would colour PrairieLearn's page); both platforms show it as text.

- Classroom 50 (foundation50/classroom50, wiki "Advanced Autograding"): the `classroom50/result/v1`
  schema, whole points only, one test per gradient; its runner stamps the owner, the assignment
  type and the submission's time over what is written here.
- PrairieLearn (docs "External Grading"): `score` from 0 to 1, `tests` with points, `images` as data
  URLs, at most 1 MB, and `gradable: false` for a submission that cannot be read.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterable, Mapping
from typing import Any

from grader.courseware.course import Exercise
from grader.judging.results import GradientResult, Report
from grader.reporting.formats import details, printable

CLASSROOM50_SCHEMA = "classroom50/result/v1"
# What Classroom 50's runner puts in the autograder's environment, and the fields they fill.
CLASSROOM50_IDENTITY = {"classroom": "CLASSROOM", "assignment": "ASSIGNMENT", "submission": "SUBMISSION_TAG",
                        "commit": "COMMIT_URL", "release": "RELEASE_URL"}
PRAIRIELEARN_LIMIT = 1_000_000  # bytes of results.json PrairieLearn takes
TEXT_CAPS = (2000, 500, 100, 0)  # how far texts are cut, in turn, when no picture is left to leave out
CUT = " … (cut: PrairieLearn takes at most 1 MB of results)"


def unreadable_reports(exercises: Iterable[Exercise], submission: str, reason: str) -> list[Report]:
    """The reports of a submission that could not be read at all: every gradient `error`, for `reason`."""
    from grader.judging.environment import captured  # noqa: PLC0415 - torch, only where a report is made
    from grader.judging.judge import all_error  # noqa: PLC0415 - as above

    return [Report(exercise=e.id, title=e.title, submission=submission, gradients=all_error(e, reason),
                   notes=(reason,), start=e.start, environment=captured()) for e in exercises]


def classroom50_problem(exercises: Iterable[Exercise], environ: Mapping[str, str] | None = None) -> str | None:
    """Why Classroom 50 cannot count these exercises (or, given `environ`, why --format classroom50
    cannot be written here), in a sentence; None when it can."""
    fractional = [f"{e.id} {g.name} ({g.points:g})" for e in exercises for g in e.gradients
                  if not float(g.points).is_integer()]
    if fractional:
        return (f"Classroom 50 takes whole points only, and course.yaml gives {', '.join(fractional[:3])}: give every "
                "gradient a whole number of points")
    missing = [name for name in CLASSROOM50_IDENTITY.values() if environ is not None and not environ.get(name)]
    if missing:
        return (f"--format classroom50 is written for Classroom 50's runner, which sets {', '.join(missing)}; "
                "they are not set here (set them to try it by hand)")
    return None


def _classroom50_test(report: Report, g: GradientResult) -> dict[str, Any]:
    return {"test-name": f"{report.exercise}: {g.name}", "passed": g.passed, "score": round(g.score),
            "max-score": round(g.points), "status": g.status.value, "message": printable(g.message),
            "diagnosis": g.diagnosis, "line": g.line, "case": g.case}


def render_classroom50(reports: list[Report], environ: Mapping[str, str], *,
                       now: datetime.datetime | None = None) -> str:
    """result.json in the `classroom50/result/v1` schema: one test per gradient, worth its points, with its
    verdict, message and diagnosis kept as extra fields; a training run is one more test, worth 0, that
    passes when the run follows autograd's (a failure marks the submission failing, not its score)."""
    tests = [_classroom50_test(r, g) for r in reports for g in r.gradients]
    for r in reports:
        if r.training is not None:
            t = r.training
            tests.append({"test-name": f"{r.exercise}: training run", "passed": t.agreed, "score": 0, "max-score": 0,
                          "message": printable(t.stopped or ("follows autograd's run" if t.agreed else
                                                             "the loss curve does not follow autograd's"))})
    when = (now or datetime.datetime.now(datetime.timezone.utc)).astimezone(datetime.timezone.utc)
    identity = {field: environ.get(name, "") for field, name in CLASSROOM50_IDENTITY.items()}
    result = {"schema": CLASSROOM50_SCHEMA, **identity,
              "review": environ.get("REVIEW_URL") or identity["commit"],
              "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "score": sum(t["score"] for t in tests), "max-score": sum(t["max-score"] for t in tests),
              "tests": tests}
    return json.dumps(result, indent=2)


def _prairielearn_test(report: Report, g: GradientResult) -> dict[str, Any]:
    verdict = g.status.value + (f" ({g.diagnosis})" if g.diagnosis else "")
    return {"name": f"{report.exercise}: {g.name}", "description": verdict, "points": g.score, "max_points": g.points,
            "message": printable(g.message) or verdict, "output": printable(details(g))}


def _size(result: dict[str, Any]) -> int:
    return len(json.dumps(result))  # ASCII: non-ASCII text is escaped, so characters are bytes


def _picture_url(g: GradientResult) -> str:
    from grader.reporting.pictures import picture_png  # noqa: PLC0415 - matplotlib only for a wrong gradient

    assert g.picture is not None
    return "data:image/png;base64," + base64.b64encode(picture_png(g.name, g.picture)).decode()


def _cut(text: str, cap: int) -> str:
    if len(text) <= cap:
        return text
    return text[:cap] + CUT if cap else ""


def _fit_texts(result: dict[str, Any], limit: int) -> None:
    """Cut the printed output and every test's texts shorter, in turn, until the results fit (the
    summary on top stays whole)."""
    for cap in TEXT_CAPS:
        if _size(result) <= limit:
            return
        result["output"] = _cut(result["output"], cap)
        for test in result["tests"]:
            for key in ("message", "output"):
                test[key] = _cut(test[key], cap)


def render_prairielearn(reports: list[Report], *, unreadable: str | None = None,
                        limit: int = PRAIRIELEARN_LIMIT) -> str:
    """results.json for PrairieLearn's external grader: the score as a fraction, one test per gradient
    worth its points, and each wrong gradient's picture beside it. Over `limit` bytes, pictures are left
    out first (the last ones first, saying how many), then texts are cut. A submission that could not be
    read is not gradable: no points and no attempt lost, the reason said."""
    if unreadable is not None:
        reason = printable(unreadable)
        return json.dumps({"gradable": False, "score": 0.0, "message": reason, "format_errors": [reason],
                           "tests": []}, indent=2)
    score, max_score = sum(r.score for r in reports), sum(r.max_score for r in reports)
    lines = [f"{r.exercise}: {sum(g.passed for g in r.gradients)}/{len(r.gradients)} gradients correct"
             for r in reports]
    lines += [printable(note) for r in reports for note in r.notes]
    lines += [f"{r.exercise} training run: {'follows' if r.training.agreed else 'does not follow'} autograd's"
              + (f" ({printable(r.training.stopped)})" if r.training.stopped else "")
              for r in reports if r.training is not None]
    output = "\n\n".join(f"What your code for {r.exercise} printed:\n{printable(r.output)}"
                         for r in reports if r.output)
    pairs = [(r, g) for r in reports for g in r.gradients]
    result: dict[str, Any] = {
        "gradable": True,
        "score": score / max_score if max_score else float(all(r.passed for r in reports)),
        "message": "\n".join(lines), "output": output,
        "tests": [_prairielearn_test(r, g) for r, g in pairs],
    }
    drawable = [i for i, (_, g) in enumerate(pairs) if g.picture is not None and not g.passed]
    left_out = f"\n{len(drawable)} of {len(drawable)} pictures of wrong gradients left out: PrairieLearn takes " \
               "at most 1 MB of results"
    budget = limit - len(json.dumps(left_out))  # room for the note, should one be needed
    kept = 0
    for i in drawable:
        name = pairs[i][1].name
        result["tests"][i]["images"] = [{"label": f"{name}: the truth, and your value minus it",
                                         "url": _picture_url(pairs[i][1])}]
        if _size(result) > budget:
            del result["tests"][i]["images"]
            break  # the first wrong gradients keep their pictures: they are the ones to fix first
        kept += 1
    if kept < len(drawable):
        result["message"] += f"\n{len(drawable) - kept} of {len(drawable)} pictures of wrong gradients left out: " \
                             "PrairieLearn takes at most 1 MB of results"
    _fit_texts(result, limit)
    return json.dumps(result)
