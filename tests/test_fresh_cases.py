"""Answers that cannot be looked up: every grading judges on batches and probes no one has seen.

The lookup-table attack is written here as a student would write it at home, with nothing but
the grader's public code: for every case course.yaml names and the probes seeded from it, the
true answer of each gradient line, keyed by what that line receives. Graded on those public
inputs (the draw pinned to them), it scores full marks, every gradient exact; graded as every
grading is, on fresh cases and probes, it scores nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from grader.courseware import draw as draw_module
from grader.courseware.cases import build_case, setting_of
from grader.courseware.course import CaseSpec, Course
from grader.courseware.data import Dataset
from grader.courseware.draw import SECRET_ENV, Draw, draw, pinned
from grader.judging.vjp import unit_randoms, vjp_plans
from tests.conftest import ROOT, Cli, MechanismOff, grade

FINGERPRINT = "def fp(t):\n    return round(float(t.double().sum()), 5) if isinstance(t, torch.Tensor) else None\n"


def lookup_table_submission(course: Course, dataset: Dataset, cases: tuple[CaseSpec, ...] | None = None,
                            probe_seed: int | None = None) -> str:
    """Exercise 1 answered from a table: each gradient's line looks up (the batch, the fingerprints of
    its consumers' gradients) among answers computed in advance for every public case and probe (or
    for the `cases` and probe seed a report names)."""
    exercise = course.exercise("exercise1")
    setting = setting_of(exercise, dataset)
    table: dict[str, list[float]] = {}
    order = sorted(exercise.gradients, key=lambda g: len(setting.graph.descendants(g.tensor)))
    name_of = {g.tensor: g.name for g in exercise.gradients}

    def consumers_of(tensor: str) -> list[str]:
        return [c for c in setting.graph.consumers(tensor) if c in name_of]

    for spec in cases or course.cases:  # what the public course.yaml names, and the probes seeded from it
        case = build_case(spec, setting)
        batch = tuple(case.namespace["Xb"].flatten()[:6].tolist())  # type: ignore[union-attr]
        randoms = unit_randoms(exercise, case, probe_seed if probe_seed is not None else spec.seed + 1)
        plans = vjp_plans(exercise, order, case, randoms)
        for g in order:
            consumers = consumers_of(g.tensor)
            truths = tuple(round(float(case.truth[c].double().sum()), 5) for c in consumers)
            table[repr((g.name, batch, truths))] = case.truth[g.tensor].flatten().tolist()
            plan = plans[g.name]
            if plan is not None:
                probes = tuple(round(float(randoms[c].double().sum()), 5) for c in consumers)
                answer = sum(plan.parts.values(), torch.zeros_like(case.truth[g.tensor]))
                table[repr((g.name, batch, probes))] = answer.flatten().tolist()
    lines = ["T = " + repr(table), FINGERPRINT, "batch = tuple(Xb.flatten()[:6].tolist())"]
    for g in order:
        consumers = ", ".join(f"fp({name_of[c]})" for c in consumers_of(g.tensor))
        key = f"repr(({g.name!r}, batch, ({consumers}{',' if consumers and ',' not in consumers else ''})))"
        lines.append(f"found = T.get({key})")
        lines.append(f"{g.name} = torch.tensor(found).view({g.tensor}.shape) if found else "
                     f"torch.zeros_like({g.tensor})")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def table_source(course: Course, dataset: Dataset) -> str:
    return lookup_table_submission(course, dataset)


@pytest.mark.slow
def test_lookup_table_scores_in_full_on_public_inputs(course: Course, dataset: Dataset, table_source: str) -> None:
    """The attack is real: on the cases and probes the public course names, the table earns every point."""
    public = pinned(course, course.cases, probe_seed=course.cases[0].seed + 1)
    report = grade(course, dataset, "exercise1", table_source, label="table.py", draw=public)
    assert report.score == report.max_score, [(g.name, g.message) for g in report.gradients if not g.passed]
    assert len(table_source) > 100_000


@pytest.mark.slow
def test_lookup_table_scores_nothing_on_fresh_cases(course: Course, dataset: Dataset, table_source: str) -> None:
    """Graded as every grading is, on fresh cases and probes, the table earns no point."""
    report = grade(course, dataset, "exercise1", table_source, label="table.py", draw="fresh")
    assert report.score == 0, [g.name for g in report.gradients if g.passed]
    assert report.draw["drawn"] == "fresh"
    assert sum(c["fresh"] for c in report.cases) == course.fresh.count


def test_two_gradings_pass_on_different_cases(course: Course, dataset: Dataset) -> None:
    """The same correct file passes twice, on fresh cases and probes that differ between the gradings;
    the lecture's batch is in both."""
    exercise = course.exercise("exercise1")
    source = exercise.solution.read_text()
    first, second = (grade(course, dataset, exercise, source, label="solution.py", draw="fresh") for _ in range(2))
    assert first.passed and second.passed
    assert first.cases[0] == second.cases[0] and first.cases[0]["name"] == "lecture"
    assert [c["seed"] for c in first.cases[1:]] != [c["seed"] for c in second.cases[1:]]
    assert first.draw["probe_seed"] != second.draw["probe_seed"]


def test_fresh_batch_sizes_stay_in_the_range(course: Course) -> None:
    """Fresh batch sizes come from course.yaml's range and are never a pinned case's (32)."""
    sizes = {c.batch_size for _ in range(200) for c in draw(course, course.exercise("exercise1")).cases[1:]}
    low, high = course.fresh.batch_sizes
    assert sizes <= set(range(low, high + 1)) - {32} and len(sizes) > 20


def test_a_course_secret_gives_the_same_code_the_same_cases(course: Course, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a class's secret every grading of the same code draws the same cases and probes, unknown
    without it; other code (one character more), another secret or none draws others; no report names
    the secret."""
    exercise = course.exercise("exercise1")
    code = exercise.solution.read_text()
    monkeypatch.setenv(SECRET_ENV, "the class of 2026")
    one, two = draw(course, exercise, source=code), draw(course, exercise, source=code)
    assert one == two and one.drawn == "secret"
    assert draw(course, exercise, source=code + " ").cases != one.cases
    monkeypatch.setenv(SECRET_ENV, "another class")
    assert draw(course, exercise, source=code).cases != one.cases
    monkeypatch.delenv(SECRET_ENV)
    assert draw(course, exercise, source=code).cases != one.cases
    assert "class of 2026" not in json.dumps(one.to_dict()) + json.dumps([c.to_dict() for c in one.cases])


@pytest.mark.slow
def test_a_table_made_from_a_report_under_a_secret_scores_nothing(course: Course, dataset: Dataset,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   mechanism_off: MechanismOff) -> None:
    """A student graded under the class's secret builds, at home with the public code, a table of
    answers for the cases and probes their report names. The table would earn every point on those;
    handed in, it is other code, judged on other cases, and earns none."""
    monkeypatch.setenv(SECRET_ENV, "the class of 2026")
    exercise = course.exercise("exercise1")

    def table_from_a_report() -> tuple[str, Draw]:
        first = grade(course, dataset, exercise, exercise.stub.read_text(), label="stub.py", draw="fresh")
        named = tuple(CaseSpec(c["name"], c["seed"], c["batch_size"], fresh=c["fresh"]) for c in first.cases)
        source = lookup_table_submission(course, dataset, named, first.draw["probe_seed"])
        return source, pinned(course, named, probe_seed=first.draw["probe_seed"])

    table, named = table_from_a_report()
    on_those = grade(course, dataset, exercise, table, label="table.py", draw=named)
    assert on_those.score == on_those.max_score, [g.name for g in on_those.gradients if not g.passed]

    def handed_in() -> None:
        table, _ = table_from_a_report()
        report = grade(course, dataset, exercise, table, label="table.py", draw="fresh")
        assert report.draw["drawn"] == "secret"
        assert report.score == 0, [g.name for g in report.gradients if g.passed]

    handed_in()
    mechanism_off(handed_in, lambda m: m.setattr(draw_module, "code_key", lambda source: ""),
                  "the graded code's part in a secret's draw (code_key in grader/courseware/draw.py)")


def test_a_course_secret_file_kept_off_the_students_copy(tmp_path: Path, course: Course) -> None:
    """The course's secret file pins the cases where it exists (the instructor's copy) and nothing where
    it does not (the students')."""
    from dataclasses import replace  # noqa: PLC0415

    secret = tmp_path / ".ninja-case-secret"
    with_file = replace(course, fresh=replace(course.fresh, secret_file=secret))
    secret.write_text("kept by the instructor\n")
    assert draw(with_file, course.exercise("exercise2")) == draw(with_file, course.exercise("exercise2"))
    secret.unlink()
    assert draw(with_file, course.exercise("exercise2")).drawn == "fresh"


def test_replay_reproduces_a_report(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--replay REPORT.json grades on the cases and probes the report names: the same report again, for a
    wrong submission whose messages name a fresh batch."""
    monkeypatch.chdir(tmp_path)
    source = (ROOT / "solutions" / "exercise1.py").read_text().replace("dlogprobs[range(n), Yb] = -1.0 / n",
                                                                        "dlogprobs[range(n), Yb] = -1.0 / 32")
    assert "1.0 / 32" in source
    sub = tmp_path / "hard_coded.py"
    sub.write_text(source)
    first = cli(["exercise1", str(sub), "--format", "json"])
    report = json.loads(first.stdout)
    (tmp_path / "report.json").write_text(first.stdout)
    again = json.loads(cli(["exercise1", str(sub), "--format", "json", "--replay", "report.json"]).stdout)
    assert again["draw"] == {**report["draw"], "drawn": "replay"}
    assert {k: v for k, v in again.items() if k != "draw"} == {k: v for k, v in report.items() if k != "draw"}
    dlogprobs = report["gradients"][0]
    assert dlogprobs["diagnosis"] == "hard-coded-batch"
    assert "a fresh batch of" in dlogprobs["message"] and "(the 32 on line" in dlogprobs["message"]


LECTURE_CASE = {"name": "lecture", "seed": 2147483647, "batch_size": 32}


def test_replay_names_its_cases_itself(cli: Cli, tmp_path: Path) -> None:
    """A replayed draw's cases are named from their seeds and sizes: a name in the file, terminal escapes
    and all, never reaches the output."""
    forged = tmp_path / "forged.json"
    cases = [{**LECTURE_CASE, "name": "lecture \x1b]0;owned\x07"},
             {"name": "fresh \x1b[2J", "seed": 11, "batch_size": 40}]
    forged.write_text(json.dumps({"exercise": "exercise2", "draw": {"probe_seed": 3}, "cases": cases}))
    result = cli(["exercise2", str(ROOT / "solutions" / "exercise2.py"), "--replay", str(forged)])
    assert result.exit_code == 0, result.output
    assert "(lecture; fresh batch of 40 (seed 11))" in result.stdout and "\x1b" not in result.stdout


@pytest.mark.parametrize("content", ["{not json", '{"exercise": "exercise2", "cases": [], "draw": {}}',
                                     '{"cases": [{"name": "x", "seed": "one", "batch_size": 2}], "draw": {}}',
                                     json.dumps({"cases": [LECTURE_CASE], "draw": {"probe_seed": 2**70}}),
                                     json.dumps({"cases": [{**LECTURE_CASE, "batch_size": 65}],
                                                 "draw": {"probe_seed": 1}}),
                                     json.dumps({"cases": [LECTURE_CASE] * 4, "draw": {"probe_seed": 1}}),
                                     json.dumps({"cases": [LECTURE_CASE] * 3, "draw": {"probe_seed": 1}}),
                                     json.dumps({"cases": [LECTURE_CASE, {**LECTURE_CASE, "name": "fresh batch of 32",
                                                                          "fresh": True}], "draw": {"probe_seed": 1}}),
                                     json.dumps({"cases": [{**LECTURE_CASE, "seed": 7}], "draw": {"probe_seed": 1}}),
                                     json.dumps({"cases": [LECTURE_CASE, {"name": "a", "seed": 5, "batch_size": 40},
                                                           {"name": "b", "seed": 5, "batch_size": 41}],
                                                 "draw": {"probe_seed": 1}})])
def test_replay_of_something_else_is_one_line(cli: Cli, tmp_path: Path, content: str) -> None:
    """A file that is not a report of this exercise, or is malformed, is one line on stderr, exit 2: a seed
    no generator takes, a batch larger than the course draws, more cases than it grades, and a draw the
    course could not have made (its lecture case again as a fresh one, a pinned case changed, two fresh
    cases of one seed), among them."""
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = cli(["exercise1", str(ROOT / "solutions" / "exercise1.py"), "--replay", str(bad)])
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("ninja-grade: ")


def test_hard_coded_batch_view_is_caught_on_a_fresh_batch(course: Course, dataset: Dataset) -> None:
    """`.view(32, 3, 10)` passes the lecture's batch and raises on every fresh one: hard-coded-batch, named."""
    exercise = course.exercise("exercise1")
    source = exercise.solution.read_text()
    changed = source.replace("demb = dembcat.view(emb.shape)", "demb = dembcat.view(32, 3, 10)")
    assert changed != source
    report = grade(course, dataset, exercise, changed, label="view.py", draw="fresh")
    demb = next(g for g in report.gradients if g.name == "demb")
    assert demb.diagnosis == "hard-coded-batch" and "a fresh batch of" in demb.message
    assert "(the 32 on line" in demb.message


@pytest.mark.slow
@pytest.mark.parametrize("exercise_id", ["exercise1", "exercise2", "exercise3"])
def test_a_solution_passes_fifty_fresh_gradings(course: Course, dataset: Dataset, exercise_id: str) -> None:
    """No tolerance is flaky at any batch size of the range: 50 fresh gradings in a row, every one passing."""
    exercise = course.exercise(exercise_id)
    source = exercise.solution.read_text()
    failures = []
    sizes = set()
    for _ in range(50):
        report = grade(course, dataset, exercise, source, label="solution.py", draw="fresh")
        sizes |= {c["batch_size"] for c in report.cases[1:]}
        if not report.passed:
            failures.append((report.cases, [(g.name, g.message) for g in report.gradients if not g.passed]))
    assert failures == []
    assert len(sizes) > 25


@pytest.mark.slow
def test_replay_of_a_training_exercise_reproduces_its_steps(cli: Cli, tmp_path: Path) -> None:
    """Exercise 4 is judged on its quick run's steps: a replay of its report takes them, and grades the same."""
    solution = str(ROOT / "solutions" / "exercise4.py")
    first = cli(["exercise4", solution, "--format", "json"])
    (tmp_path / "report.json").write_text(first.stdout)
    again = cli(["exercise4", solution, "--format", "json", "--replay", str(tmp_path / "report.json")])
    assert again.exit_code == 0, again.stderr
    was, now = json.loads(first.stdout), json.loads(again.stdout)
    assert now["cases"] == was["cases"] and now["cases"][0]["name"] == "step 0"
    assert now["score"] == was["score"] == 7
