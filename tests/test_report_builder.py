"""The JSON report: one builder for every writer, and the environment it was graded in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader import pipeline as pipeline_module
from grader.ci import batch
from grader.courseware.course import load_course
from grader.judging.results import PASSING, STATUSES, Status, error_report, passing
from grader.pipeline import grade
from grader.reporting import formats
from grader.reporting.formats import render
from tests.conftest import ROOT, MechanismOff


def test_the_json_environment_is_where_it_was_graded_not_where_it_is_rendered(
        monkeypatch: pytest.MonkeyPatch, mechanism_off: MechanismOff) -> None:
    course = load_course(None)

    def check() -> None:
        report = grade(course, "exercise1", ROOT / "solutions" / "exercise1.py")
        graded = json.loads(render("json", [report]))["environment"]
        with monkeypatch.context() as later:  # rendered on a machine with other threads and another sandbox
            later.setattr("torch.get_num_threads", lambda: 97)
            later.setattr("grader.judging.environment.protections", lambda *a, **k: {"sandbox": "elsewhere"})
            rendered = json.loads(render("json", [report]))["environment"]
        assert rendered == graded
        assert graded["threads"] != 97 and graded["sandbox"]["sandbox"] in ("unix", "portable")

    check()
    mechanism_off(check, lambda m: m.setattr(pipeline_module, "captured", lambda held=None: {}),
                  "capturing the environment when grading")


def test_the_batch_writes_the_error_form_of_the_one_builder(tmp_path: Path) -> None:
    """An unreadable submission's report in a batch is the builder's error form, with who and when."""
    sub = batch.Submission("ada", tmp_path / "ada.txt", "ada.txt is not a .py or .ipynb file")
    written = batch.unreadable("exercise1", sub, 26)
    built = error_report("exercise1", str(sub.path), 26, "ada.txt is not a .py or .ipynb file")
    assert {k: v for k, v in written.items() if k not in ("student", "graded_at")} == built
    assert written["student"] == "ada" and built == {
        "exercise": "exercise1", "submission": str(sub.path), "passed": False, "score": 0, "max_score": 26,
        "gradients": [], "error": "ada.txt is not a .py or .ipynb file"}


def test_what_passes_is_the_results_model_s_word() -> None:
    assert PASSING == tuple(s.value for s in Status if s.passed) == ("exact", "approximate")
    assert STATUSES == ("exact", "approximate", "wrong", "missing", "error")
    assert [passing(s) for s in (*STATUSES, "EXACT", "passed", None)] == [True, True, False, False, False,
                                                                          False, False, False]
    course = load_course(None)
    names = course.exercise("exercise1").gradient_names
    reports = [{"gradients": [{"name": names[0], "status": status}]} for status in
               ("exact", "approximate", "wrong", "made-up")]
    assert batch.pass_rates(course, "exercise1", reports)[0] == (names[0], 2, 4)


def test_a_report_never_graded_stands_in_with_this_machine() -> None:
    """A report built by hand (no grading, no environment) is rendered with this machine's, said as such."""
    report = grade(load_course(None), "exercise1", ROOT / "exercises" / "exercise1.py")
    bare = type(report)(exercise=report.exercise, title=report.title, submission=report.submission,
                        gradients=report.gradients)
    assert formats.environment([bare])["sandbox"]["protocol"] == "commit before reveal"
    assert formats.environment([bare]).keys() == formats.environment([report]).keys()
