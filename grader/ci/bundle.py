"""What every platform carries to grade a course: the course's own files, names.txt, and the grader's wheel.

A course is data (docs/DESIGN.md): its course.yaml, the forward files it names and the stubs.
Those are bundled, relative to the course's folder, so a course outside the grader's repository
is graded as well as the shipped one. Solutions never are: every platform's bundle can end up
where students look (a public image, a Pages site, their own repository), and grading needs none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grader.ci.wheel import grader_wheel
from grader.courseware.course import Course, CourseError
from grader.courseware.data import Dataset
from grader.files import write_atomic

CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"  # the CPU build: no CUDA libraries to download
PYTHON = "3.12"  # the Python a platform's set-up asks for, where it can choose: CPU torch has wheels for it
COURSE_DIR = "course"
DATA_FILE = "data/names.txt"
WHEELS_DIR = "wheels"


@dataclass(frozen=True)
class Bundle:
    """Files by their path inside the bundle, and where the three that matter are."""

    files: tuple[tuple[str, bytes], ...]
    course_file: str  # course/course.yaml
    wheel: str  # wheels/backprop_ninja-….whl
    data_file: str | None  # data/names.txt, when there was a real copy to bundle

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.files)


def course_files(course: Course) -> dict[str, Path]:
    """course.yaml, its forward files and its stubs, by their path relative to the course's folder.
    Raises CourseError for a file outside that folder, or one that is also a solution."""
    if course.path is None:
        raise CourseError("this course was not read from a course.yaml, so there is none to bundle")
    solutions = {e.solution for e in course.exercises}
    files = [course.path, *sorted({e.forward for e in course.exercises}), *(e.stub for e in course.exercises)]
    found: dict[str, Path] = {}
    for path in files:
        if not path.is_relative_to(course.root):
            raise CourseError(f"{path} is outside the course's folder {course.root}: a bundle carries only what "
                              "is below it; move it there and name it relative to course.yaml")
        if path in solutions:
            raise CourseError(f"{path} is a solution as well: a bundle carries no solutions, so give the "
                              "exercise a stub of its own")
        found[path.relative_to(course.root).as_posix()] = path
    return found


def course_bundle(course: Course, dataset: Dataset | None) -> Bundle:
    """The course, the data when it is a real copy (platforms may have no network), and the grader."""
    files = [(f"{COURSE_DIR}/{name}", path.read_bytes()) for name, path in course_files(course).items()]
    data_file = None
    if dataset is not None and not dataset.synthetic:
        data_file = DATA_FILE
        files.append((DATA_FILE, Path(dataset.source).read_bytes()))
    wheel_name, wheel = grader_wheel()
    files.append((f"{WHEELS_DIR}/{wheel_name}", wheel))
    assert course.path is not None  # course_files said so
    return Bundle(tuple(files), f"{COURSE_DIR}/{course.path.relative_to(course.root).as_posix()}",
                  f"{WHEELS_DIR}/{wheel_name}", data_file)


def write_tree(files: list[tuple[str, bytes]], directory: Path, *, executable: tuple[str, ...] = ()) -> list[Path]:
    """Each file under `directory`, written whole; those named in `executable` made runnable."""
    written = []
    for name, data in files:
        path = directory / name
        write_atomic(path, data)
        if name in executable:
            path.chmod(path.stat().st_mode | 0o111)
        written.append(path)
    return written
