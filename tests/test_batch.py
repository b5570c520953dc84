"""Batch grading: a class of generated submissions, a gradebook, and a batch killed and resumed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SUBMISSIONS, Cli, MechanismOff, needs_fork
from tests.helpers import assert_setup_error, read_gradebook

pytestmark = needs_fork

SOLUTION = (ROOT / "solutions" / "exercise2.py").read_text()
CORRECT = [
    SOLUTION,
    "dlogits = F.softmax(logits, dim=1) - F.one_hot(Yb, vocab_size).float()\ndlogits = dlogits / n\n",
    "p = logits.exp() / logits.exp().sum(1, keepdim=True)\np[range(n), Yb] -= 1\ndlogits = p / Yb.shape[0]\n",
]
WRONG = {  # source -> diagnosis
    "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\n": "scale",
    "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\ndlogits /= -n\n": "sign",
    "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\ndlogits /= 32\n": "hard-coded-batch",
    "dlogits = F.softmax(logits, 0)\ndlogits[range(n), Yb] -= 1\ndlogits /= n\n": None,
}
HOSTILE = {  # file -> the status dlogits gets
    "os_exit_first": "missing", "infinite_loop": "error", "memory_bomb": "error",
    "raises_system_exit_first": "error", "prints_fake_report_only": "wrong",
}


def make_class(root: Path) -> dict[str, tuple[bool, bool, str]]:
    """Write 100 submissions; return student -> (passed, unreadable, dlogits status)."""
    expected: dict[str, tuple[bool, bool, str]] = {}
    for i in range(45):
        (root / f"correct{i:02}.py").write_text(CORRECT[i % len(CORRECT)])
        expected[f"correct{i:02}"] = (True, False, "pass")
    for i in range(30):
        source = list(WRONG)[i % len(WRONG)]
        (root / f"wrong{i:02}.py").write_text(source)
        expected[f"wrong{i:02}"] = (False, False, "wrong")
    for i in range(5):
        (root / f"syntax{i}.py").write_text("dlogits = F.softmax(logits, 1\n")
        expected[f"syntax{i}"] = (False, False, "error")
    for i in range(3):
        (root / f"latin1_{i}.py").write_bytes(b"dlogits = 1  # caf\xe9\n")
        expected[f"latin1_{i}"] = (False, True, "")
    (root / "notes.txt").write_text("not a submission")
    expected["notes"] = (False, True, "")
    (root / "empty.py").write_text("")
    expected["empty"] = (False, False, "missing")
    (root / "folder_none").mkdir()
    expected["folder_none"] = (False, True, "")
    (root / "folder_two").mkdir()
    (root / "folder_two" / "a.py").write_text(SOLUTION)
    (root / "folder_two" / "b.py").write_text(SOLUTION)
    expected["folder_two"] = (False, True, "")
    (root / "folder_ok").mkdir()
    (root / "folder_ok" / "exercise2.py").write_text(SOLUTION)
    (root / "folder_ok" / "scratch.py").write_text("x = 1")
    expected["folder_ok"] = (True, False, "pass")
    for i in range(12):
        name = list(HOSTILE)[i % len(HOSTILE)]
        (root / f"hostile_{name}_{i}.py").write_text((SUBMISSIONS / "hostile" / f"{name}.py").read_text())
        expected[f"hostile_{name}_{i}"] = (False, False, HOSTILE[name])
    return expected


@pytest.mark.slow
def test_batch_of_a_hundred_mixed_submissions(cli: Cli, tmp_path: Path) -> None:
    """100 correct, wrong, broken and hostile submissions: each row is what its submission deserves."""
    subs = tmp_path / "subs"
    subs.mkdir()
    expected = make_class(subs)
    assert len(expected) >= 100
    out = tmp_path / "out"
    result = cli(["batch", "exercise2", *sorted(str(p) for p in subs.iterdir()), "--jobs", "2",
                  "--out", str(out), "--time-limit", "3", "--memory-limit", "256"])
    assert result.exit_code == 1, result.output
    book = read_gradebook(out / "gradebook.csv")
    assert set(book) == set(expected)
    for student, (passed, unreadable, status) in expected.items():
        row = book[student]
        assert row["max_score"] == "1", (student, row)  # points as written in course.yaml, not 1.0
        assert row["passed"] == str(passed), (student, row)
        assert bool(row["error"]) == unreadable, (student, row)
        if status == "pass":
            assert row["dlogits"] in ("exact", "approximate") and row["score"] == "1"
        elif status:
            assert row["dlogits"] == status, (student, row)
    wrong = [json.loads((out / f"wrong{i:02}.json").read_text()) for i in range(4)]
    assert [r["gradients"][0]["diagnosis"] for r in wrong] == list(WRONG.values())
    # The pass-rate table, from what each submission deserves: passed over those graded at all.
    deserved = sum(passed for passed, _, _ in expected.values())
    graded = sum(not unreadable for _, unreadable, _ in expected.values())
    share = deserved / graded
    rates = result.output.split("pass rate per gradient:\n")[1].splitlines()
    assert rates[0] == f"  {'dlogits':16} {'█' * round(share * 20):20} {deserved:4}/{graded} ({share:.0%})"
    assert "100 submissions: 46 passed · 48 failed · 6 errored" in result.output
    assert not list(out.glob(".*"))


# Runs the batch with a file-size limit that a report of 4,000 printed characters exceeds and the
# others do not: the kernel then kills the batch (SIGXFSZ, which Python ignores unless told) in the
# middle of writing that report, a kill at the one moment that tells an atomic write from a plain one.
KILLED_WRITING = """
import os, resource, signal, sys
sys.dont_write_bytecode = True  # nothing but the reports is written under the limit
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(os.environ["REPORT_LIMIT"]), resource.RLIM_INFINITY))
if os.environ.get("PLAIN_WRITE"):  # the mechanism switched off: each report written line by line, in place
    import grader.ci.batch
    def plain_write(path, data):
        with open(path, "w") as f:
            for line in data.splitlines(keepends=True):
                f.write(line)
    grader.ci.batch.write_atomic = plain_write
from grader.cli import run
run()
"""
REPORT_LIMIT = 4000  # bytes: a report here is about 1,500, the batch's manifest about 3,000, the printing one 5,500
PRINTING = "s15-printing"  # graded about halfway through the class


def whole_json(content: bytes) -> bool:
    try:
        json.loads(content)
    except ValueError:
        return False
    return True


@pytest.mark.slow
def test_batch_killed_and_rerun_grades_each_once(cli: Cli, tmp_path: Path, mechanism_off: MechanismOff) -> None:
    """Killed in the middle of writing a report, then rerun: OUT never holds half a report (only the
    temporary file beside it, which the rerun removes), and every submission is graded exactly once."""
    subs = tmp_path / "subs"
    subs.mkdir()
    for i in range(30):
        (subs / f"s{i:02}.py").write_text(CORRECT[i % len(CORRECT)])
    (subs / f"{PRINTING}.py").write_text(SOLUTION + "print('x' * 4000)\n")
    out = tmp_path / "out"
    args = ["batch", "exercise2", *sorted(str(p) for p in subs.iterdir()), "--jobs", "2", "--out", str(out)]
    before: dict[str, bytes] = {}

    def killed_while_writing() -> None:
        shutil.rmtree(out, ignore_errors=True)
        env = {**os.environ, "REPORT_LIMIT": str(REPORT_LIMIT)}
        batch = subprocess.run([sys.executable, "-c", KILLED_WRITING, *args], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600, check=False)
        assert batch.returncode == -signal.SIGXFSZ, "the batch must be killed writing the printing report"
        left = {p.name: p.read_bytes() for p in out.iterdir()}
        reports = {name: content for name, content in left.items() if name.endswith(".json")}
        assert 6 <= len(reports) < 31, "the batch must be killed partway"
        assert [name for name, content in reports.items() if not whole_json(content)] == []  # whole reports only
        assert f"{PRINTING}.json" not in reports
        assert [re.sub(r"\..{8}\.tmp$", ".RANDOM.tmp", name) for name in left if name.startswith(".")] == [
            f".{PRINTING}.json.RANDOM.tmp"]  # write_atomic's own temporary file, as the kill left it
        before.clear()
        before.update(reports)

    killed_while_writing()
    result = cli(args)
    assert result.exit_code == 0, result.output
    after = {p.name: p.read_bytes() for p in out.glob("s*.json")}
    assert len(after) == 31 and whole_json(after[f"{PRINTING}.json"])
    assert all(after[name] == content for name, content in before.items())  # not graded again
    assert f"({len(before)} graded before)" in result.output
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the rerun removed the temporary file
    assert len(read_gradebook(out / "gradebook.csv")) == 31
    mechanism_off(killed_while_writing, lambda m: m.setenv("PLAIN_WRITE", "1"), "the batch's atomic write")


@pytest.mark.slow
def test_batch_grades_no_link_to_a_classmate_or_the_solution(cli: Cli, tmp_path: Path,
                                                             mechanism_off: MechanismOff) -> None:
    """A submission that is a symbolic link, to a classmate's file or to the course's solution, is a row
    with that reason and no points; the classmate's own row stands."""
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "exercise2.py").write_text(SOLUTION)
    (tmp_path / "eve").mkdir()
    (tmp_path / "eve" / "exercise2.py").symlink_to("../alice/exercise2.py")
    (tmp_path / "mallory.py").symlink_to(ROOT / "solutions" / "exercise2.py")
    (tmp_path / "trudy").symlink_to("alice", target_is_directory=True)  # a folder, as an unpacked archive leaves it
    out = tmp_path / "out"
    subs = [str(tmp_path / name) for name in ("alice", "eve", "mallory.py", "trudy")]

    def check_rows() -> None:
        shutil.rmtree(out, ignore_errors=True)
        result = cli(["batch", "exercise2", *subs, "--out", str(out), "--jobs", "1"])
        rows = read_gradebook(out / "gradebook.csv")
        assert rows["alice"]["passed"] == "True", result.output
        for student in ("eve", "mallory", "trudy"):
            assert rows[student]["score"] == "0" and "is a symbolic link" in rows[student]["error"], rows[student]

    check_rows()
    mechanism_off(check_rows, lambda m: m.setattr("grader.intake.submission.file_size", lambda p: p.stat().st_size),
                  "file_size's refusal of links")
    mechanism_off(check_rows, lambda m: m.setattr("grader.ci.batch.link_problem", lambda p: None),
                  "the batch's refusal of a linked folder")


@pytest.mark.slow
def test_batch_gives_every_submission_an_id_of_its_own(cli: Cli, tmp_path: Path,
                                                       mechanism_off: MechanismOff) -> None:
    """Two sections each with an alice, and a student whose own name is alice-2 (she handed in the stub):
    the second alice gets an id no one has, and each row is its own student's grade."""
    for section, name, source in (("sec1", "alice", SOLUTION), ("sec1", "alice-2", ""), ("sec2", "alice", SOLUTION),
                                  ("sec2", "ALICE", "")):
        (tmp_path / section).mkdir(exist_ok=True)
        (tmp_path / section / f"{name}.py").write_text(source)
    subs = [str(tmp_path / p) for p in ("sec1/alice.py", "sec2/alice.py", "sec1/alice-2.py", "sec2/ALICE.py")]
    out = tmp_path / "out"

    def check_rows() -> None:
        shutil.rmtree(out, ignore_errors=True)
        result = cli(["batch", "exercise2", *subs, "--out", str(out), "--jobs", "1"])
        rows = read_gradebook(out / "gradebook.csv")
        assert len(rows) == 4 and "4 submissions" in result.output, (rows, result.output)
        assert Path(rows["alice-2"]["submission"]).parts[-2:] == ("sec1", "alice-2.py")
        assert rows["alice-2"]["score"] == "0"
        assert rows["alice"]["score"] == rows["alice-3"]["score"] == "1"
        assert Path(rows["alice-3"]["submission"]).parts[-2:] == ("sec2", "alice.py")
        assert rows["ALICE-4"]["score"] == "0"
        assert sorted(p.name for p in out.glob("*.json")) == ["ALICE-4.json", "alice-2.json", "alice-3.json",
                                                             "alice.json"]

    check_rows()
    mechanism_off(check_rows, lambda m: m.setattr("grader.ci.batch.student_ids", lambda paths: [
        p.stem for p in paths]), "ids of their own")


@pytest.mark.slow
def test_batch_force_regrades(cli: Cli, tmp_path: Path) -> None:
    """--force grades again what is already in OUT."""
    sub = tmp_path / "alice.py"
    sub.write_text(SOLUTION)
    out = tmp_path / "out"
    assert cli(["batch", "exercise2", str(sub), "--out", str(out), "--jobs", "1"]).exit_code == 0
    first = json.loads((out / "alice.json").read_text())["graded_at"]
    again = cli(["batch", "exercise2", str(sub), "--out", str(out), "--jobs", "1"])
    assert "(1 graded before)" in again.output
    time.sleep(1.1)
    forced = cli(["batch", "exercise2", str(sub), "--out", str(out), "--jobs", "1", "--force"])
    assert forced.exit_code == 0 and "graded before" not in forced.output
    assert json.loads((out / "alice.json").read_text())["graded_at"] != first


@pytest.mark.parametrize("args", [["batch", "exercise9", "x.py"], ["batch", "exercise2"]])
def test_batch_usage_errors_exit_2(cli: Cli, args: list[str]) -> None:
    """An unknown exercise or no submissions is a usage error, said in one line."""
    assert_setup_error(cli(args), "exercise9" if "exercise9" in args else "SUBMISSIONS")
