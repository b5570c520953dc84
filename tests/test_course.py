"""course.yaml: what it holds, and one-line errors when it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from grader.courseware.course import Course, CourseError, Handed, load_course, parse_course
from grader.courseware.draw import draw


def test_course_has_the_lecture_exercises(course: Course) -> None:
    """The course lists exercises 1-3 with 26, 1 and 1 gradients and the default tolerances."""
    assert course.exercise_ids[:3] == ("exercise1", "exercise2", "exercise3")
    ex1 = course.exercise("exercise1")
    assert ex1.gradient_names[0] == "dlogprobs" and ex1.gradient_names[-1] == "dC"
    assert len(ex1.gradients) == 26 and ex1.max_score == 26
    dW2 = next(g for g in ex1.gradients if g.name == "dW2")
    assert (dW2.tolerance.rtol, dW2.tolerance.atol) == (1e-5, 1e-8)
    assert course.exercise("exercise3").given_gradients == (Handed("dhpreact", "hpreact"),)


def test_course_cases_include_lecture_and_other_batch_sizes(course: Course) -> None:
    """The lecture's case is pinned first, and at least two more, of other batch sizes, are drawn fresh for
    each grading."""
    (first,) = course.cases
    assert (first.seed, first.batch_size) == (2147483647, 32)
    assert course.fresh.count >= 2
    drawn = draw(course, course.exercise("exercise1")).cases
    assert drawn[0] == first and len(drawn) == 1 + course.fresh.count
    assert all(c.fresh and c.batch_size != 32 and c.seed != first.seed for c in drawn[1:])


def test_unknown_exercise_names_the_valid_ones(course: Course) -> None:
    """Asking for an exercise that does not exist lists those that do."""
    with pytest.raises(CourseError, match="the course has exercise1, exercise2, exercise3"):
        course.exercise("exercise9")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "must be a mapping"),
        ({"cases": [{"name": "a", "seed": 1, "batch_size": 1}]}, "batch_size must be at least 2"),
        ({"cases": [{"name": "a", "seed": 1, "batch_size": 8, "dtype": "int8"}]}, "dtype must be float32"),
        ({"cases": [{"name": "a", "seed": 1, "batch_size": 8}],
          "exercises": [{"id": "x", "title": "t", "stub": "course.yaml", "solution": "course.yaml",
                         "start": "s", "gradients": [{"name": "dX", "tensor": "C"}]}]},
         "must be named dC, not dX"),
        ({"cases": [{"name": "a", "seed": 1, "batch_size": 8}],
          "exercises": [{"id": "x", "title": "t", "stub": "course.yaml", "solution": "course.yaml",
                         "start": "s", "gradients": [{"name": "dC", "tensor": "C", "atol": -1}]}]},
         "must not be negative"),
    ],
)
def test_malformed_course_is_one_sentence(data: object, reason: str) -> None:
    """Each structural problem of course.yaml is reported as one CourseError sentence."""
    root = Path(__file__).resolve().parent.parent
    with pytest.raises(CourseError, match=reason):
        parse_course(data, root)


def test_intermediates_are_read_under_either_name_and_never_both() -> None:
    """`intermediates:` names the ungraded gradients; a course that wrote them as `helpers:` reads the same."""
    root = Path(__file__).resolve().parent.parent
    shipped = yaml.safe_load((root / "course.yaml").read_text())
    training = next(e for e in shipped["exercises"] if "intermediates" in e)
    expected = parse_course(shipped, root).exercise(training["id"]).intermediates
    assert [g.name for g in expected][:2] == ["dlogits", "dh"]
    training["helpers"] = training.pop("intermediates")
    assert parse_course(shipped, root).exercise(training["id"]).intermediates == expected
    training["intermediates"] = training["helpers"]
    with pytest.raises(CourseError, match="'intermediates' and 'helpers' name the same list"):
        parse_course(shipped, root)


def test_missing_course_file(tmp_path: Path) -> None:
    """A course path that does not exist says so."""
    with pytest.raises(CourseError, match="no course file at"):
        load_course(tmp_path / "course.yaml")
