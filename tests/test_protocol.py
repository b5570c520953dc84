"""Commit before reveal: no truth reaches the child before everything it could give away is committed.

The grader hands the child a true gradient only after the child has committed its own value of
that gradient and of every gradient computed from it (everything downstream of its tensor):
a true dW2 says what dlogits is. These tests record every reveal of real gradings, in a real
sandbox, and check that order for programs in backprop order and out of it; the same check
fails when the ledger is told to reveal everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from grader.confined import sandbox as sandbox_module
from grader.confined.protocol import Commit, Run
from grader.courseware.cases import setting_of
from grader.courseware.course import Course
from grader.courseware.data import Dataset, find_names
from grader.judging import runs
from tests.conftest import SUBMISSIONS, grade, unix_only

pytestmark = unix_only


@dataclass
class Log:
    """What the isolated runs of one grading committed and revealed, in order, case by case."""

    events: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (case|commit|reveal|end, names)


@pytest.fixture
def reveals(monkeypatch: pytest.MonkeyPatch) -> Iterator[Log]:
    """Every commit and reveal of the isolated runs (the runs that wait for reveals) of a test's gradings."""
    log = Log()
    real_run = sandbox_module.Sandbox.run
    real_case = sandbox_module.Sandbox.case

    def case(self: sandbox_module.Sandbox, message: object) -> None:
        log.events.append(("case", ()))
        real_case(self, message)  # type: ignore[arg-type]

    def run(self: sandbox_module.Sandbox, request: Run, decide: object = None) -> object:
        if decide is None:
            return real_run(self, request)

        def recording(commit: Commit) -> dict[str, object]:
            log.events.append(("commit", tuple(commit.values)))
            out = decide(commit)  # type: ignore[operator]
            log.events.append(("reveal", tuple(out)))
            return out  # type: ignore[no-any-return]

        result = real_run(self, request, recording)  # type: ignore[arg-type]
        log.events.append(("end", tuple(result.values)))  # what the run's end commits
        return result

    monkeypatch.setattr(sandbox_module.Sandbox, "case", case)
    monkeypatch.setattr(sandbox_module.Sandbox, "run", run)
    yield log


def check_order(log: Log, course: Course, exercise_id: str) -> None:
    """Within each case, a gradient's truth is revealed only after its own value and that of every graded
    gradient downstream of it have been committed by an isolated run."""
    exercise = course.exercise(exercise_id)
    graph = setting_of(exercise, find_names(allow_download=False)).graph
    tensor_of = {g.name: g.tensor for g in (*exercise.gradients, *exercise.intermediates)}
    graded = set(exercise.gradient_names)
    committed: set[str] = set()
    revealed = 0
    for kind, names in log.events:
        if kind == "case":
            committed = set()
        elif kind in ("commit", "end"):
            committed |= set(names)
        else:
            for name in names:
                revealed += 1
                downstream = {g for g, t in tensor_of.items() if t in graph.descendants(tensor_of[name])} & graded
                assert name in committed or name not in graded, f"{name} revealed before it was committed"
                assert downstream <= committed, f"{name} revealed before {sorted(downstream - committed)}"
    assert revealed > 0


PROGRAMS = {
    "solution": "",
    "an early gradient assigned again at the end": "\ndlogprobs = dlogprobs.clone()\n",
    "a gradient changed in place after its last assignment":
        "\nkeep = dC.clone()\ndC = torch.zeros_like(C)\nalias = dC\nalias += keep\n",
    "a gradient that reads one not downstream of it": "\ndbnbias = dhpreact.sum(0, keepdim=True) + 0 * dbngain\n",
}


@pytest.mark.parametrize("change", sorted(PROGRAMS))
def test_no_truth_before_its_commits(course: Course, dataset: Dataset, reveals: Log, change: str) -> None:
    """For programs in backprop order and out of it, every reveal comes after the commits it could give
    away, and the solution still scores in full."""
    source = course.exercise("exercise1").solution.read_text() + PROGRAMS[change]
    report = grade(course, dataset, "exercise1", source)
    assert report.score == report.max_score, [(g.name, g.message) for g in report.gradients if not g.passed]
    check_order(reveals, course, "exercise1")


def test_order_check_fails_when_the_ledger_reveals_at_once(course: Course, dataset: Dataset,
                                                             reveals: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """The order check has teeth: a ledger that reveals each truth as soon as its own line has run breaks it
    for a program that assigns a downstream gradient late."""
    monkeypatch.setattr(runs.Reveals, "may_reveal", lambda self, name: True)
    source = course.exercise("exercise1").solution.read_text() + PROGRAMS["an early gradient assigned again at the end"]
    grade(course, dataset, "exercise1", source)
    with pytest.raises(AssertionError, match="revealed before"):
        check_order(reveals, course, "exercise1")


SPARSE_ONLY = ("dprobs = (1.0 / probs) * dlogprobs if int((dlogprobs != 0).sum()) <= n else None\n")


def test_code_that_answers_only_the_values_it_expects_fails(course: Course, dataset: Dataset) -> None:
    """A line that gives its gradient only when its input looks like the truth (one nonzero per row), and
    nothing for the random values of the vector-Jacobian check, is wrong, however right its value."""
    solution = course.exercise("exercise1").solution.read_text()
    source = solution.replace("dprobs = (1.0 / probs) * dlogprobs", SPARSE_ONLY.strip(), 1)
    assert source != solution
    results = {g.name: g for g in grade(course, dataset, "exercise1", source).gradients}
    assert results["dprobs"].status.value == "wrong"
    assert "gave no usable dprobs" in results["dprobs"].message


def test_gradients_never_assigned_cost_no_runs_of_their_own(course: Course, dataset: Dataset, reveals: Log) -> None:
    """Half a solution (its lines down to db2, as a student who stopped there hands in) is judged in one isolated
    run per case: the gradients it never assigns have nothing to commit in any run, and are missing."""
    solution = course.exercise("exercise1").solution.read_text()
    half = solution.split("\ndhpreact = ", 1)[0] + "\n"
    report = grade(course, dataset, "exercise1", half)
    status = {g.name: g.status.value for g in report.gradients}
    assigned = ["dlogprobs", "dprobs", "dcounts_sum_inv", "dcounts_sum", "dcounts", "dnorm_logits", "dlogit_maxes",
                "dlogits", "dh", "dW2", "db2"]
    assert all(status[name] in ("exact", "approximate") for name in assigned), status
    assert {s for name, s in status.items() if name not in assigned} == {"missing"}
    cases = sum(kind == "case" for kind, _ in reveals.events)
    isolated = sum(kind == "end" for kind, _ in reveals.events)
    assert cases == 3 and isolated == cases, f"{isolated} isolated runs over {cases} cases"


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """For each isolated run of a test's gradings: the gradients committed at points where it waits for the grader."""
    seen: list[set[str]] = []
    real_run = sandbox_module.Sandbox.run

    def run(self: sandbox_module.Sandbox, request: Run, decide: object = None) -> object:
        if decide is not None:
            seen.append({name for p in request.points if p.waits for name in p.names})
        return real_run(self, request, decide)  # type: ignore[arg-type]

    monkeypatch.setattr(sandbox_module.Sandbox, "run", run)
    return seen


LEAVES = {"dW2", "db2", "dbngain", "dbnbias", "dW1", "db1", "dC"}  # gradients of parameters: no line reads them


def test_a_run_waits_only_where_a_later_line_could_read_the_truth(course: Course, dataset: Dataset,
                                                                   waits: list[set[str]]) -> None:
    """The solution's isolated run waits for the grader after each gradient a later line reads, and goes on
    past the parameters' gradients, which nothing reads; the stub, which reads nothing, never waits. Their
    grades stand."""
    exercise = course.exercise("exercise1")
    solution = grade(course, dataset, "exercise1", exercise.solution.read_text())
    assert solution.score == solution.max_score
    assert len(waits) == 3 and all(w == set(exercise.gradient_names) - LEAVES for w in waits), waits
    waits.clear()
    stub = grade(course, dataset, "exercise1", exercise.stub.read_text())
    assert stub.score == 0 and {g.status.value for g in stub.gradients} == {"missing"}
    assert waits == [set(), set(), set()]


# The gradients that dlogits feeds read it only through a function defined before dlogits is assigned.
THROUGH_A_FUNCTION = {
    "dh = dlogits @ W2.T": "dh = upstream() @ W2.T",
    "dW2 = h.T @ dlogits": "dW2 = h.T @ upstream()",
    "db2 = dlogits.sum(0)": "db2 = upstream().sum(0)",
    "dlogits = dnorm_logits.clone()": "dlogits = 2 * dnorm_logits",
}


def test_a_truth_read_through_a_function_defined_earlier_is_still_given(course: Course, dataset: Dataset,
                                                                         waits: list[set[str]]) -> None:
    """A wrong dlogits, read by the lines below it only through a function defined at the top: the run still
    waits for dlogits' truth, so dh, dW2 and db2 are judged on it (right) and dlogits alone is wrong."""
    source = course.exercise("exercise1").solution.read_text()
    for old, new in THROUGH_A_FUNCTION.items():
        assert old in source
        source = source.replace(old, new, 1)
    source = "def upstream():\n    return dlogits\n\n\n" + source
    status = {g.name: g.status.value for g in grade(course, dataset, "exercise1", source).gradients}
    assert status["dlogits"] == "wrong"
    assert all(status[name] in ("exact", "approximate") for name in ("dh", "dW2", "db2")), status
    assert all("dlogits" in w for w in waits)


SOLUTION_WITHOUT_DC = ("dC = torch.zeros_like(C)  # (27, 10)\nfor k in range(Xb.shape[0]):\n"
                       "    for j in range(Xb.shape[1]):\n        dC[Xb[k, j]] += demb[k, j]\n")
# Programs that tell whether the truth of dC (never assigned, so due at every point) was set, without loading it.
TELLS_WHETHER_SET = {
    "dir": ("", "\ndb1 = dhprebn.sum(0) * (1 / 0 if 'dC' in dir() and n != 32 else 1.0)\n"),
    "aliased dir": ("listed = dir\n", "\ndb1 = dhprebn.sum(0) * (1 / 0 if 'dC' in listed() and n != 32 else 1.0)\n"),
    "global +=": ("def touch():\n    global dC\n    dC += 0\n    return 1.0\n\n",
                  "\ndb1 = dhprebn.sum(0) * (touch() if n != 32 else 1.0)\n"),
    "global del": ("def drop():\n    global dC\n    del dC\n    return 1.0\n\n",
                   "\ndb1 = dhprebn.sum(0) * (drop() if n != 32 else 1.0)\n"),
}


def without_timings(value: object) -> object:
    """A report's data less what is measured rather than decided."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in ("seconds", "backward_ms")}
    return [without_timings(v) for v in value] if isinstance(value, list) else value


def judged_both_ways(course: Course, dataset: Dataset, source: str, monkeypatch: pytest.MonkeyPatch,
                     exercise: str = "exercise1") -> tuple[object, object]:
    """The report of `source` as graded, and as graded by runs that wait at every point, less its timings."""
    default = without_timings(grade(course, dataset, exercise, source).to_dict())
    with monkeypatch.context() as patched:
        patched.setattr(runs.Reveals, "waits_at", lambda self, index: True)
        everywhere = without_timings(grade(course, dataset, exercise, source).to_dict())
    return default, everywhere


@pytest.mark.parametrize("program", sorted(TELLS_WHETHER_SET))
def test_code_that_can_tell_a_truth_was_set_is_judged_as_if_it_were_waited_for(
        course: Course, dataset: Dataset, monkeypatch: pytest.MonkeyPatch, program: str) -> None:
    """A truth entered as revealed but not sent must be one no line can tell about: code that lists the names
    (dir, under any name) or deletes or changes a gradient inside a function gets the same report as from runs
    that wait at every point."""
    top, bottom = TELLS_WHETHER_SET[program]
    solution = course.exercise("exercise1").solution.read_text()
    assert SOLUTION_WITHOUT_DC in solution
    source = top + solution.replace(SOLUTION_WITHOUT_DC, "") + bottom
    default, everywhere = judged_both_ways(course, dataset, source, monkeypatch)
    assert default == everywhere


SLOW_TO_END = {"infinite_loop.py", "numerical_vjp_exercise1.py", "memory_bomb.py"}  # each waits out a limit
VARIES = {"empty_tensors_for_stale_truths.py"}  # reads freed memory: its report differs from run to run anyway


@pytest.mark.slow
def test_every_exercise1_submission_is_judged_as_by_runs_that_wait_everywhere(
        course: Course, dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting only where a truth could be read changes no report of the test submissions."""
    files = sorted(p for p in SUBMISSIONS.rglob("*.py") if "exercise4" not in p.parts
                   and p.name not in SLOW_TO_END | VARIES)
    assert len(files) > 25
    for path in files:
        default, everywhere = judged_both_ways(course, dataset, path.read_text(), monkeypatch)
        assert default == everywhere, path.name
