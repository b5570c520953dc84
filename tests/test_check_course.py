"""`ninja-grade check-course`: the course as shipped is sound, and each way a course can be
broken is reported in one line, on a real copy of the course broken on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, Cli
from tests.helpers import copy_course


@pytest.mark.slow
def test_the_shipped_course_is_sound(cli: Cli) -> None:
    """Every solution passes, every stub is all missing, hints, names, order and shapes agree."""
    result = cli(["check-course", str(ROOT / "course.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("sound: 4 exercises")


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """Exercises 1 and 2 of the course, copied, with five things broken."""
    copy_course(tmp_path)
    course = yaml.safe_load((ROOT / "course.yaml").read_text())
    course["exercises"] = course["exercises"][:2]
    first = course["exercises"][0]["gradients"]
    first[0]["hints"] = first[0]["hints"][:2]  # dlogprobs: two levels
    (tmp_path / "course.yaml").write_text(yaml.safe_dump(course, sort_keys=False))
    stub = tmp_path / "exercises" / "exercise1.py"
    text = stub.read_text()
    text = text.replace("dprobs = None  # (32, 27)", "dprobs = None  # (27, 32)")  # a wrong shape
    text = text.replace("dcounts_sum_inv = None  # (32, 1)", "@@").replace("dcounts_sum = None  # (32, 1)",
                                                                            "dcounts_sum_inv = None  # (32, 1)")
    stub.write_text(text.replace("@@", "dcounts_sum = None  # (32, 1)"))  # two blanks swapped
    ex2 = tmp_path / "exercises" / "exercise2.py"
    ex2.write_text(ex2.read_text() + "\ndlogits = F.softmax(logits, 1)\n")  # a stub with an answer in it
    solution = tmp_path / "solutions" / "exercise1.py"
    solution.write_text(solution.read_text().replace("dlogprobs[range(n), Yb] = -1.0 / n",
                                                     "dlogprobs[range(n), Yb] = -1.0"))  # a wrong solution
    return tmp_path


@pytest.mark.slow
def test_each_break_is_one_line(cli: Cli, broken: Path) -> None:
    result = cli(["check-course", str(broken / "course.yaml")])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    stub, solution, ex2 = (str(broken / p) for p in ("exercises/exercise1.py", "solutions/exercise1.py",
                                                      "exercises/exercise2.py"))
    assert "exercise1: dlogprobs has 2 hint levels, not 3" in lines
    assert (f"{stub} (stub): gradients in another order than course.yaml's: dcounts_sum where course.yaml has "
            "dcounts_sum_inv") in lines
    assert any(line.startswith(f"{stub}:") and "the comment says dprobs is (27, 32), the forward pass gives "
               "(32, 27) on the course's first batch" in line for line in lines), lines
    assert any(line.startswith(f"{solution} (solution): dlogprobs is wrong") for line in lines), lines
    assert any(line.startswith(f"{ex2} (stub): dlogits is ") and "not missing" in line for line in lines), lines
    assert len(lines) == 5, lines  # nothing else: swapped blanks are still missing, exercise 2's solution passes


def test_a_missing_solution_is_one_line_and_the_course_still_grades(cli: Cli, tmp_path: Path) -> None:
    """A course whose solution file is not there (as in a platform's bundle) still loads and grades; only
    check-course, which needs the solutions, says in one line which file is missing."""
    copy_course(tmp_path / "course", ROOT / "examples" / "layernorm")
    (tmp_path / "course" / "solutions" / "exercise2.py").unlink()
    course = str(tmp_path / "course" / "course.yaml")
    graded = cli(["--course", course, "exercise2", str(ROOT / "examples" / "layernorm" / "solutions" / "exercise2.py")])
    assert graded.exit_code == 0, graded.output
    checked = cli(["check-course", course])
    assert checked.exit_code == 1
    missing = tmp_path / "course" / "solutions" / "exercise2.py"
    assert checked.stdout.splitlines() == [f"exercise2: {missing} does not exist (course.yaml names it)"]
