"""A class of real submissions, to grade as a batch: the course's solution and other correct ones,
one-edit mistakes (MISTAKES in tests/helpers.py), students' notebooks (tests/notebooks), untouched
stubs, and files that cannot be read. Each student's file name says what is in it."""

from __future__ import annotations

import shutil
from pathlib import Path

from grader.courseware.course import Course
from tests.conftest import SUBMISSIONS
from tests.helpers import MISTAKES, with_mistake

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
# How many students make each mistake, beyond one each: a class has favourites.
POPULAR = {"sign_flipped": 6, "missing_1_over_n": 5, "n_instead_of_n_minus_1": 3}
CLASS_NOTEBOOKS = ("lecture_all_correct", "lecture_mixed", "spread_over_cells", "no_markers", "ran_out_of_order",
                   "autograd_read_and_unfinished_line", "helpers_in_earlier_cells")
# The first student by name with the class's commonest mistake: their line is the example the page
# shows, so it carries what a page must never show (a comment with markup, a string with their name)
# and an operator to escape. (Notebook students, nb_*, come next, and are the examples elsewhere.)
EXAMPLE_STUDENT = "ada_sign_flipped"
EXAMPLE_LINE = ('dprobs = -(1.0 / probs) * dlogprobs if n > 0 else probs[:"ada lovelace"]  '
                '# <script>alert("ada")</script>')


def make_class(root: Path, course: Course) -> dict[str, str]:
    """Write the class into `root`; return student -> what their file is (a mistake's name, "correct",
    "stub", "notebook:NAME", "unreadable")."""
    solution = course.exercise("exercise1").solution.read_text()
    stub = course.exercise("exercise1").stub.read_text()
    kinds: dict[str, str] = {}

    def put(student: str, text: str, kind: str, suffix: str = ".py") -> None:
        (root / f"{student}{suffix}").write_text(text)
        kinds[student] = kind

    for i in range(8):
        put(f"st{i:02}_correct", solution, "correct")
    for name in ("correct_lecture_style", "correct_vectorised_reordered"):
        put(f"st_{name}", (SUBMISSIONS / "exercise1" / f"{name}.py").read_text(), "correct")
    for mistake in sorted(MISTAKES):
        correct, wrong, *_ = MISTAKES[mistake]
        for k in range(POPULAR.get(mistake, 1)):
            put(f"st_{mistake}_{k}", with_mistake(solution, correct, wrong), mistake)
    put(EXAMPLE_STUDENT, with_mistake(solution, MISTAKES["sign_flipped"][0], EXAMPLE_LINE), "sign_flipped")
    for name in CLASS_NOTEBOOKS:
        shutil.copy(NOTEBOOKS / f"{name}.ipynb", root / f"nb_{name}.ipynb")
        kinds[f"nb_{name}"] = f"notebook:{name}"
    for i in range(3):
        put(f"st{i:02}_stub", stub, "stub")
    (root / "st00_latin1.py").write_bytes(b"dlogprobs = 1  # caf\xe9\n")
    kinds["st00_latin1"] = "unreadable"
    return kinds


def make_training_class(root: Path, course: Course) -> dict[str, str]:
    """A small exercise-4 class, one of each way a training run ends: student -> how it should end."""
    solution = course.exercise("exercise4").solution.read_text()
    runs = {
        "t_correct": (solution, "completed"),
        "t_dW2_halved": (with_mistake(solution, "dW2 = h.T @ dlogits", "dW2 = 0.5 * h.T @ dlogits"), "diverged"),
        "t_stub": (course.exercise("exercise4").stub.read_text(), "stopped"),
        # right until the loss first drops below 3, then NaN: stopped partway
        "t_nan_once_learning": (solution + "\nif loss.item() < 3.0:\n    dW1 = dW1 * float('nan')\n", "stopped"),
        # the line left out alone: dW2 is missing, and the run cannot take its first step
        "t_syntax_in_dW2": (with_mistake(solution, "dW2 = h.T @ dlogits", "dW2 = h.T @@ dlogits"), "stopped"),
    }
    for student, (text, _) in runs.items():
        (root / f"{student}.py").write_text(text)
    (root / "t_latin1.py").write_bytes(b"dW2 = 1  # caf\xe9\n")  # cannot be read: no run at all
    return {**{student: end for student, (_, end) in runs.items()}, "t_latin1": "no run"}
