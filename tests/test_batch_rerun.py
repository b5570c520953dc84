"""A rerun of a batch is never stale: it grades again exactly what changed since each report, and says why.

Each report records what it was graded from (the submission's bytes, the course, the data, the limits,
the grader's version); the same command run again compares, regrades what differs, and never trusts a
report whose record it cannot read. The gradebook is built from the reports the run holds, so a stale
report whose regrade failed is never a grade.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import grader
import grader.pipeline
from grader.ci import batch
from grader.ci.record import BatchRecord
from grader.ci.shards import WHOLE
from tests.conftest import ROOT, Cli, MechanismOff, needs_fork
from tests.helpers import copy_course, read_gradebook

pytestmark = needs_fork

SOLUTION = (ROOT / "solutions" / "exercise2.py").read_text()
WRONG = "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\n"  # no 1/n: wrong on every case


def scores(out: Path) -> dict[str, str]:
    return {student: row["score"] for student, row in read_gradebook(out / "gradebook.csv").items()}


def trusting_any_report(path: Path, student: str, record: BatchRecord, submission: str) -> tuple[str | None, Any]:
    """The record switched off: a report in OUT is kept whatever it was graded from."""
    try:
        return None, json.loads(path.read_text())
    except FileNotFoundError:
        return "new", None
    except ValueError:
        return "unreadable", None


def class_of(tmp_path: Path, **sources: str) -> tuple[Path, list[str]]:
    folder = tmp_path / "subs"
    folder.mkdir()
    for student, source in sources.items():
        (folder / f"{student}.py").write_text(source)
    return folder, [str(folder / f"{student}.py") for student in sources]


@pytest.mark.slow
def test_batch_rerun_regrades_a_corrected_submission(cli: Cli, tmp_path: Path, mechanism_off: MechanismOff) -> None:
    """A student hands in a corrected file after the batch: the same command grades that file alone again,
    says so, and the gradebook has the new grade; the unchanged student's report is kept byte for byte."""
    subs, paths = class_of(tmp_path, alice=WRONG, bob=SOLUTION)
    out = tmp_path / "out"
    args = ["batch", "exercise2", *paths, "--jobs", "2", "--out", str(out)]
    first = cli(args)
    assert first.exit_code == 1, first.output
    assert "grading 2 of 2: 2 new" in first.stdout and scores(out) == {"alice": "0", "bob": "1"}
    graded = tmp_path / "graded"
    shutil.copytree(out, graded)

    def corrected_and_rerun() -> None:
        shutil.rmtree(out)
        shutil.copytree(graded, out)
        (subs / "alice.py").write_text(SOLUTION)
        again = cli(args)
        assert "grading 1 of 2: 1 changed since their report; 1 graded before and unchanged" in again.stdout, \
            again.output
        assert again.exit_code == 0 and scores(out) == {"alice": "1", "bob": "1"}
        assert (out / "bob.json").read_bytes() == (graded / "bob.json").read_bytes()
        assert json.loads((out / "alice.json").read_text())["passed"] is True

    corrected_and_rerun()
    assert "grading 0 of 2: all graded before and unchanged" in cli(args).stdout
    mechanism_off(corrected_and_rerun, lambda m: m.setattr("grader.ci.batch.why_grade", trusting_any_report),
                  "the report's record of what it was graded from")


@pytest.mark.slow
def test_batch_rerun_regrades_everyone_when_the_course_or_grader_changes(cli: Cli, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         mechanism_off: MechanismOff) -> None:
    """course.yaml edited, the forward file edited, a stub's code changed, other limits, a new grader: each
    regrades every student, saying why; a reworded comment in a stub regrades no one."""
    course = copy_course(tmp_path / "course")
    _, paths = class_of(tmp_path, alice=SOLUTION, bob=WRONG)
    out = tmp_path / "out"
    args = ["--course", str(course / "course.yaml"), "batch", "exercise2", *paths, "--jobs", "2", "--out", str(out)]
    assert cli(args).exit_code == 1

    def edited(path: Path, old: str, new: str) -> Callable[[], None]:
        def edit() -> None:
            text = path.read_text()
            assert old in text
            path.write_text(text.replace(old, new, 1))
        return edit

    def regrades(change: Callable[[], None], said: str, more: tuple[str, ...] = ()) -> None:
        change()
        again = cli([*args, *more])
        assert said in again.stdout, again.output
        assert scores(out) == {"alice": "1", "bob": "0"}

    course_edit = edited(course / "course.yaml", "title: Cross-entropy backward in one go",
                         "title: Cross-entropy, backward, in one go")

    regrades(course_edit, "grading 2 of 2: 2 graded with another version of the course")
    regrades(lambda: (course / "lecture.py").write_text((course / "lecture.py").read_text() + "\n# a note\n"),
             "grading 2 of 2: 2 graded with another version of the course")
    regrades(edited(course / "exercises" / "exercise2.py", "# TODO: work out", "# TODO: first work out"),
             "grading 0 of 2: all graded before and unchanged")
    regrades(edited(course / "exercises" / "exercise2.py", "dlogits = None", "dlogits = ..."),
             "grading 2 of 2: 2 graded with another version of the course")
    regrades(lambda: None, "grading 2 of 2: 2 graded with other data or limits", ("--time-limit", "20"))
    monkeypatch.setattr(grader, "__version__", "99.0.0")
    regrades(lambda: None, "grading 2 of 2: 2 graded by another grader version", ("--time-limit", "20"))
    assert {json.loads(p.read_text())["graded_from"]["grader"].split(" (code ")[0] for p in out.glob("*.json")} \
        == {"99.0.0"}
    mechanism_off(lambda: regrades(course_edit, "grading 2 of 2: 2 graded with another version of the course"),
                  lambda m: m.setattr("grader.ci.record.course_digest", lambda course: "sha256:the same"),
                  "the course's hash in the record")


@pytest.mark.slow
def test_batch_rerun_never_trusts_a_report_whose_record_cannot_be_read(cli: Cli, tmp_path: Path,
                                                                       mechanism_off: MechanismOff) -> None:
    """Half a report, a report with no record (as older graders wrote), a record with a field missing, and
    another student's report under this one's name: each is graded again and replaced whole."""
    _, paths = class_of(tmp_path, alice=SOLUTION, bob=SOLUTION, carol=SOLUTION, dave=SOLUTION, erin=WRONG)
    out = tmp_path / "out"
    args = ["batch", "exercise2", *paths, "--jobs", "2", "--out", str(out)]
    assert cli(args).exit_code == 1
    graded = {p.stem: p.read_bytes() for p in out.glob("*.json")}

    def corrupted_and_rerun() -> None:
        for student, content in graded.items():
            (out / f"{student}.json").write_bytes(content)
        (out / "alice.json").write_bytes(graded["alice"][: len(graded["alice"]) // 2])
        older = json.loads(graded["bob"])
        del older["graded_from"]
        (out / "bob.json").write_text(json.dumps({**older, "score": 0, "passed": False}))
        forged = json.loads(graded["carol"])
        del forged["graded_from"]["limits"]
        (out / "carol.json").write_text(json.dumps({**forged, "score": 0, "passed": False}))
        (out / "dave.json").write_bytes(graded["erin"])
        again = cli(args)
        assert "grading 4 of 5: 4 with a report whose record could not be read; 1 graded before and unchanged" in \
            again.stdout, again.output
        assert scores(out) == {"alice": "1", "bob": "1", "carol": "1", "dave": "1", "erin": "0"}
        for student in ("alice", "bob", "carol", "dave"):
            report = json.loads((out / f"{student}.json").read_text())
            assert report["student"] == student and report["passed"] is True and "limits" in report["graded_from"]

    corrupted_and_rerun()
    mechanism_off(corrupted_and_rerun, lambda m: m.setattr("grader.ci.batch.why_grade", trusting_any_report),
                  "refusing reports whose record cannot be read")


@pytest.mark.slow
def test_batch_stale_report_whose_regrade_fails_is_no_grade(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            mechanism_off: MechanismOff) -> None:
    """A changed submission whose regrade hits a grader fault keeps no grade in the gradebook (not its stale
    report's 0, though that file is still in OUT); the next run grades it."""
    subs, paths = class_of(tmp_path, alice=WRONG, bob=SOLUTION)
    out = tmp_path / "out"
    args = ["batch", "exercise2", *paths, "--jobs", "1", "--out", str(out)]
    assert cli(args).exit_code == 1
    stale = (out / "alice.json").read_bytes()
    (subs / "alice.py").write_text(SOLUTION)
    real = grader.pipeline.grade_program

    def bug_on_alice(*a: Any, **k: Any) -> Any:
        if "alice.py" in k["submission_label"]:
            raise RuntimeError("injected grader bug")
        return real(*a, **k)

    def faulted_rerun() -> None:
        (out / "alice.json").write_bytes(stale)
        with monkeypatch.context() as m:
            m.setattr(grader.pipeline, "grade_program", bug_on_alice)
            faulted = cli(args)
        assert faulted.exit_code == 3, faulted.output
        alice = read_gradebook(out / "gradebook.csv")["alice"]
        assert alice["score"] == "" and alice["error"].startswith("not graded yet")
        assert (out / "alice.json").read_bytes() == stale

    def gradebook_from_files(course: Any, exercise_id: str, subs: list[batch.Submission],
                             reports: dict[str, dict[str, Any]]) -> Any:
        on_disk = {s.student: json.loads((out / f"{s.student}.json").read_text()) for s in subs
                   if (out / f"{s.student}.json").is_file()}
        return real_gradebook(course, exercise_id, subs, {**on_disk, **reports})

    real_gradebook = batch.gradebook
    faulted_rerun()
    assert cli(args).exit_code == 0 and scores(out) == {"alice": "1", "bob": "1"}
    (subs / "alice.py").write_text(WRONG + "\n")
    mechanism_off(faulted_rerun, lambda m: m.setattr(batch, "gradebook", gradebook_from_files),
                  "the gradebook built from the reports the run holds")


def test_readme_says_what_a_rerun_does_in_one_line() -> None:
    """The README's batch section says in one sentence what a rerun grades again; the instructors'
    guide says it in one item naming every part of a report's record and --force, and its example is
    what the batch itself prints."""
    readme = (ROOT / "README.md").read_text().split("## Grading a class")[1].split("\n## ")[0]
    said = [s for s in " ".join(readme.split()).split(". ") if s.startswith("Run it again")]
    assert len(said) == 1 and "regrades exactly" in said[0] and "how many and why" in said[0], said
    guide = (ROOT / "docs" / "instructors.md").read_text().split("## A whole class")[1].split("\n## ")[0]
    lines = [" ".join(item.split()) for item in guide.split("\n- ") if item.startswith("a rerun")]
    assert len(lines) == 1, "one item on what a rerun does"
    line = lines[0]
    for part in ("bytes", "`course.yaml`", "forward file", "stubs", "data", "limits", "grader's version", "--force"):
        assert part in line, part
    example = re.search(r"`(grading \d+ of \d+: [^`]+)`", line)
    assert example is not None
    share = [batch.Planned(batch.Submission(f"s{i}", None), "") for i in range(100)]
    plan = batch.Plan(BatchRecord("exercise1", "", "", 30.0, 1024, ""), WHOLE, share, todo=share[:4],
                      kept={p.sub.student: {} for p in share[4:]}, why=Counter(changed=3, new=1))
    assert plan.said == example[1]
