"""A course's data set is written in the alphabet its forward file names (ALPHABET, default a-z)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader.courseware import forward as forward_module
from grader.courseware.cases import setting_of
from grader.courseware.course import CourseError, load_course
from grader.courseware.data import LETTERS, DataError
from grader.courseware.forward import alphabet_of, dataset_of
from grader.pipeline import grade
from tests.conftest import ROOT, MechanismOff

SIX = "abcdef"


def course_with_alphabet(tmp_path: Path, alphabet: str) -> Path:
    """The shipped course as files of its own, its forward file naming `alphabet`."""
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "course.yaml", course / "course.yaml")
    forward = (ROOT / "lecture.py").read_text()
    (course / "lecture.py").write_text(f"{forward}\nALPHABET = {alphabet!r}\n")
    shutil.copytree(ROOT / "exercises", course / "exercises")
    return course / "course.yaml"


def names_in(path: Path, letters: str, count: int = 3000) -> Path:
    """A names.txt of `count` names written in `letters`, every letter used."""
    words = ["".join(letters[(i * 7 + k * (i % 4 + 1)) % len(letters)] for k in range(3 + i % 5))
             for i in range(count)]
    path.write_text("\n".join(words) + "\n")
    return path


def test_a_course_grades_on_names_in_its_own_alphabet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      mechanism_off: MechanismOff) -> None:
    """Six letters make a vocabulary of seven, and the lecture's solution is right on it, 26 of 26."""
    monkeypatch.delenv("NINJA_DATA", raising=False)
    course = load_course(course_with_alphabet(tmp_path, SIX))
    names = names_in(tmp_path / "names.txt", SIX)

    def check() -> None:
        try:
            report = grade(course, "exercise1", ROOT / "solutions" / "exercise1.py", data=names)
        except DataError as exc:  # the lecture's 26 letters asked of names written in six
            raise AssertionError(str(exc)) from None
        assert report.passed and report.score == 26
        world = setting_of(course.exercise("exercise1"), dataset_of(course, names)).world
        assert world["vocab_size"] == len(SIX) + 1

    assert alphabet_of(course) == SIX
    check()
    mechanism_off(check, lambda m: m.setattr(forward_module, "alphabet_of", lambda course: LETTERS),
                  "reading the alphabet from the forward file")


def test_names_outside_the_course_alphabet_are_refused_in_a_sentence(tmp_path: Path) -> None:
    course = load_course(course_with_alphabet(tmp_path, SIX))
    with pytest.raises(DataError, match=r"'\w+' is not a name in the course's alphabet \(abcdef\)"):
        dataset_of(course, names_in(tmp_path / "wide.txt", "abcdefg"))
    with pytest.raises(DataError, match="does not use all 6 letters, so the vocabulary is not 7"):
        dataset_of(course, names_in(tmp_path / "narrow.txt", "abcde"))


def test_the_lecture_course_keeps_its_26_letters(tmp_path: Path) -> None:
    course = load_course(None)
    assert alphabet_of(course) == LETTERS
    with pytest.raises(DataError, match="does not use all 26 letters, so the vocabulary is not 27"):
        dataset_of(course, names_in(tmp_path / "few.txt", SIX))


@pytest.mark.parametrize("alphabet", ["", "abca", "ab c", "ab.c"])
def test_a_forward_file_alphabet_that_cannot_make_a_vocabulary_is_a_course_error(tmp_path: Path,
                                                                                 alphabet: str) -> None:
    course = load_course(course_with_alphabet(tmp_path, alphabet))
    with pytest.raises(CourseError, match="ALPHABET must be a string of distinct letters"):
        alphabet_of(course)
