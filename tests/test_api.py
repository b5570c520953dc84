"""grader.api: the library's surface grades as the command line does, and says set-up problems as its errors."""

from __future__ import annotations

import contextlib
import io
import json
import re
import typing
from pathlib import Path

import pytest

from grader import api
from tests.conftest import ROOT

DOC = ROOT / "docs" / "api.md"


def test_the_documented_example_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/api.md's example, run from the project's folder, grades the solution 26 of 26."""
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(blocks[0], str(DOC), "exec"), {})
    first, *approximate = printed.getvalue().split("\n{")[0].splitlines()
    assert first == "26/26 passed"
    assert approximate and all(line.split()[1] == "approximate" for line in approximate)
    assert '{\n  "exercise": "exercise1"' in printed.getvalue()


def test_grade_judges_a_right_and_a_wrong_submission(tmp_path: Path) -> None:
    right = api.grade("exercise1", ROOT / "solutions" / "exercise1.py")
    assert right.passed and right.score == right.max_score == 26
    assert right.environment["sandbox"]["protocol"] == "commit before reveal"
    wrong = tmp_path / "wrong.py"
    wrong.write_text((ROOT / "solutions" / "exercise1.py").read_text().replace(
        "dprobs = (1.0 / probs) * dlogprobs", "dprobs = -(1.0 / probs) * dlogprobs"))
    report = api.grade("exercise1", wrong)
    statuses = {g.name: g.status for g in report.gradients}
    assert statuses["dprobs"] is api.Status.WRONG and statuses["dlogprobs"] is api.Status.EXACT
    assert json.loads(api.render(report, "json"))["score"] == report.score < 26
    stub = api.grade("exercise1")
    assert stub.untouched and stub.score == 0


@pytest.mark.slow  # it trains
def test_a_course_by_path_and_a_training_run(tmp_path: Path) -> None:
    course = ROOT / "examples" / "layernorm" / "course.yaml"
    loaded = api.load_course(course)
    first = loaded.exercises[0]
    assert api.grade(first.id, first.solution, course=course).passed
    seen: list[int] = []
    run = api.train("exercise4", ROOT / "solutions" / "exercise4.py", steps=30,
                    progress=lambda step, loss: seen.append(step))
    assert run.steps == 30 and run.stopped is None and seen and seen[-1] <= 30


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda: api.grade("exercise9"), api.CourseError, "no exercise 'exercise9'"),
    (lambda: api.grade("exercise1", "/nonexistent/mine.py"), api.SubmissionError, "no submission at"),
    (lambda: api.grade("exercise1", data="/nonexistent/names.txt"), api.DataError, "no names.txt at"),
    (lambda: api.train("exercise1"), api.CourseError, "not a training exercise"),
])
def test_set_up_problems_are_the_documented_errors(call: typing.Callable[[], object], error: type[Exception],
                                                   words: str) -> None:
    with pytest.raises(error, match=re.escape(words)):
        call()


def test_every_name_it_publishes_is_documented_and_typed() -> None:
    text = DOC.read_text()
    for name in api.__all__:
        value = getattr(api, name)
        assert value.__doc__, name
        if callable(value) and not isinstance(value, type):
            hints = typing.get_type_hints(value)
            assert "return" in hints, name
            assert f"`{name}(" in text, name
