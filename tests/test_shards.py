"""A class split over shards that never talk, and merged: the same gradebook as one batch, nothing lost.

Which shard a process is comes from --shard or an engine's variables (the precedence in
grader/ci/shards.py); each shard is a process of its own here, as on separate machines, some sharing
one folder; one is killed halfway and run again. `merge` refuses shards graded differently and lists
the students with no report or with two.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import grader
from grader.ci import merge as merging
from grader.ci.shards import ShardError, shard_from, share_of
from tests.conftest import ROOT, Cli, MechanismOff, needs_fork, run_cli
from tests.helpers import assert_setup_error, copy_course, read_gradebook

SOLUTION = (ROOT / "solutions" / "exercise2.py").read_text()
STUB = (ROOT / "exercises" / "exercise2.py").read_text()
WRONG = [  # one edit each, wrong on every case whatever the batch
    "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\n",
    "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\ndlogits /= -n\n",
    "dlogits = F.softmax(logits, 0)\ndlogits[range(n), Yb] -= 1\ndlogits /= n\n",
]
SECRET = {"NINJA_CASE_SECRET": "the class of the shard tests"}  # every process draws the same cases


@pytest.mark.parametrize(("option", "env", "expected"), [
    ("2/4", {"JOB_COMPLETION_INDEX": "1"}, (2, 4, "--shard")),  # explicit: the environment is not read
    ("4", {"JOB_COMPLETION_INDEX": "3"}, (3, 4, "JOB_COMPLETION_INDEX")),
    ("4", {"AWS_BATCH_JOB_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ARRAY_SIZE": "4"}, (1, 4, "AWS_BATCH_JOB_ARRAY_INDEX")),
    ("4", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "4",
           "SLURM_ARRAY_TASK_COUNT": "4"}, (2, 4, "SLURM_ARRAY_TASK_ID")),
    ("4", {"JOB_COMPLETION_INDEX": "0", "SLURM_ARRAY_TASK_ID": "3"}, (0, 4, "JOB_COMPLETION_INDEX")),  # the first
    (None, {"AWS_BATCH_JOB_ARRAY_INDEX": "2", "AWS_BATCH_JOB_ARRAY_SIZE": "3"}, (2, 3, "AWS_BATCH_JOB_ARRAY_INDEX")),
    (None, {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}, (0, 2, "SLURM_ARRAY_TASK_ID")),
    (None, {}, (0, 1, "")),
    ("0/1", {"JOB_COMPLETION_INDEX": "5"}, (0, 1, "--shard")),
    (None, {"JOB_COMPLETION_INDEX": "1"}, "not how many shards there are: pass --shard N"),
    ("4", {}, "--shard 4 needs this shard's index"),
    ("4", {"AWS_BATCH_JOB_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ARRAY_SIZE": "8"}, "the array has 8 jobs"),
    ("4", {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_STEP": "2"}, "with a step or gaps"),
    ("4/4", {}, "shard index 4 (from --shard) is not below 4"),
    ("4", {"JOB_COMPLETION_INDEX": "7"}, "shard index 7 (from JOB_COMPLETION_INDEX) is not below 4"),
    ("0", {}, "there must be at least 1 shard"),
    ("one/4", {}, "expected I/N"),
    ("4", {"JOB_COMPLETION_INDEX": "x"}, "JOB_COMPLETION_INDEX='x' is not a whole number"),
])
def test_shard_from_follows_its_precedence(option: str | None, env: dict[str, str],
                                           expected: tuple[int, int, str] | str) -> None:
    """--shard I/N, else --shard N with the first engine's index, else an engine's index and size; what
    cannot be a shard (or would lose students) is one sentence."""
    if isinstance(expected, str):
        with pytest.raises(ShardError) as caught:
            shard_from(option, env)
        assert expected in str(caught.value)
        return
    shard = shard_from(option, env)
    assert (shard.index, shard.count, shard.source) == expected


def test_share_of_splits_a_class_stably() -> None:
    """Every student is in exactly one shard, every shard gets some, and the split is sha256's: the same on
    every machine and Python (these values are fixed)."""
    students = [f"student{i:04}" for i in range(1000)]
    for count in (1, 3, 7):
        shares = [share_of(s, count) for s in students]
        assert set(shares) == set(range(count))
    assert [share_of(name, 4) for name in ("alice", "bob")] == [3, 2] and share_of("student0001", 1000) == 166


def test_batch_shard_problems_are_set_up_errors(cli: Cli, tmp_path: Path) -> None:
    """A shard that cannot be used is one line, exit 2, before anyone is graded."""
    sub = tmp_path / "alice.py"
    sub.write_text(SOLUTION)
    out = tmp_path / "out"
    for env, args, words in (({"JOB_COMPLETION_INDEX": "1"}, [], "pass --shard N"),
                             ({"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "8"}, ["--shard", "4"],
                              "the array has 8 jobs"),
                             ({}, ["--shard", "5/4"], "not below 4")):
        result = cli(["batch", "exercise2", str(sub), "--out", str(out), *args], env=env)
        assert_setup_error(result, words)
        assert not out.exists()


def write_class(folder: Path) -> list[str]:
    """24 submissions, a third in each shard of three or so: correct, stubs, wrong everywhere."""
    folder.mkdir()
    for i in range(8):
        (folder / f"ok{i:02}.py").write_text(SOLUTION + f"# student {i}\n")
        (folder / f"stub{i:02}.py").write_text(STUB)
        (folder / f"wrong{i:02}.py").write_text(WRONG[i % len(WRONG)])
    return sorted(f"subs/{p.name}" for p in folder.iterdir())


def ninja(*args: str) -> list[str]:
    return [sys.executable, "-c", "from grader.cli import run; run()", *args]


def sorted_lines(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines())


@pytest.mark.slow
@needs_fork
def test_shards_as_separate_processes_merge_into_one_batch(tmp_path: Path) -> None:
    """Three shards, each its own process (two writing into one folder, at once), one of them killed halfway
    and run again: nothing it wrote is lost or graded twice, and the merged gradebook is the single batch's,
    line for line."""
    files = write_class(tmp_path / "subs")
    env = {**os.environ, **SECRET}

    def grade(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(ninja(*args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
                              check=False)

    single = grade("batch", "exercise2", *files, "--jobs", "2", "--out", "single")
    assert single.returncode == 1, single.stderr
    ours: dict[int, list[str]] = {0: [], 1: [], 2: []}
    for name in files:
        ours[share_of(Path(name).stem, 3)].append(Path(name).stem)
    assert all(len(students) >= 5 for students in ours.values())

    killed = subprocess.Popen(ninja("batch", "exercise2", *files, "--jobs", "1", "--shard", "1/3", "--out", "own1"),
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    shared = [subprocess.Popen(ninja("batch", "exercise2", *files, "--jobs", "1", "--shard", f"{i}/3", "--out",
                                     "shared"), cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for i in (0, 2)]
    deadline = time.monotonic() + 300
    while len(list((tmp_path / "own1").glob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    for process in shared:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 1, stderr
    before = {p.name: p.read_bytes() for p in (tmp_path / "own1").glob("*.json")}
    assert 2 <= len(before) < len(ours[1]), "shard 1 must be killed partway"
    assert sorted(p.name for p in (tmp_path / "shared").iterdir() if not p.name.endswith(".json")) == [
        "gradebook-shard-0-of-3.csv", "gradebook-shard-2-of-3.csv", "ninja-shard-0-of-3.manifest",
        "ninja-shard-2-of-3.manifest"]

    partial = grade("merge", "shared", "own1", "--out", "merged")
    assert partial.returncode == 3, partial.stderr
    missing = {line.split(":")[0].strip() for line in partial.stderr.splitlines() if "run it again" in line}
    assert missing == set(ours[1]) - {Path(name).stem for name in before}

    rerun = grade("batch", "exercise2", *files, "--jobs", "1", "--shard", "1/3", "--out", "own1")
    assert rerun.returncode == 1, rerun.stderr
    left = len(ours[1]) - len(before)
    assert f"grading {left} of {len(ours[1])}: {left} new; {len(before)} graded before and unchanged" in rerun.stdout
    assert all((tmp_path / "own1" / name).read_bytes() == content for name, content in before.items())

    merged = grade("merge", "shared", "own1", "--out", "merged")
    assert merged.returncode == 1, merged.stderr
    assert "merged 3 of 3 shards from 2 folders: 24 of 24 students graded" in merged.stdout
    assert sorted_lines(tmp_path / "merged" / "gradebook.csv") == sorted_lines(tmp_path / "single" / "gradebook.csv")
    assert (tmp_path / "merged" / "class.html").is_file()


STUDENTS = ("alice", "bob", "carol", "dave")  # shards of two: bob and carol in 0, alice and dave in 1


@pytest.fixture
def tiny_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in SECRET.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subs").mkdir()
    for student in STUDENTS:
        (tmp_path / "subs" / f"{student}.py").write_text(SOLUTION if student != "dave" else WRONG[0])
    return tmp_path


def shard(out: str, index: str, *more: str, before: tuple[str, ...] = (),
          students: tuple[str, ...] = STUDENTS) -> None:
    result = run_cli([*before, "batch", "exercise2", *(f"subs/{s}.py" for s in students),
                      "--jobs", "1", "--shard", index, "--out", out, *more])
    assert result.exit_code in (0, 1), result.output


def merged(*args: str) -> tuple[int, str, str]:
    result = run_cli(["merge", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
@needs_fork
def test_merge_refuses_shards_graded_differently(tiny_class: Path, monkeypatch: pytest.MonkeyPatch,
                                                 mechanism_off: MechanismOff) -> None:
    """Shards of other grader versions, courses, limits, splits or submissions, or a course other than the
    merge's, cannot be one class's gradebook: one line naming both, exit 2, nothing written."""
    shard("a", "0/2")
    with monkeypatch.context() as m:
        m.setattr(grader, "__version__", "99.0.0")
        shard("newer", "1/2")
    course = copy_course(tiny_class / "course")
    (course / "course.yaml").write_text((ROOT / "course.yaml").read_text().replace("rtol: 1.0e-5", "rtol: 2.0e-5", 1))
    shard("other-course", "1/2", before=("--course", str(course / "course.yaml")))
    shard("limits", "1/2", "--time-limit", "7")
    shard("three", "1/3")
    (tiny_class / "subs" / "erin.py").write_text(SOLUTION)
    shard("more", "1/2", students=(*STUDENTS, "erin"))

    def refused(*args: str, said: str) -> None:
        code, stdout, stderr = merged(*args, "--out", "merged")
        assert code == 2 and stdout == "" and said in stderr and stderr.count("\n") == 1, (code, stderr)
        assert not (tiny_class / "merged").exists()

    def refuses_another_grader() -> None:
        refused("a", "newer", said="were graded by different grader versions or code (grader 0.2.0 (code ")
        refused("a", "newer", said="; grader 99.0.0 (code ")

    refuses_another_grader()
    refused("a", "other-course", said="were graded with different courses")
    refused("a", "limits", said="were graded with different data or limits")
    refused("a", "three", said="were split into different numbers of shards (2 shards; 3 shards)")
    refused("a", "more", said="were run over different submissions (4 students")
    refused("other-course", said="graded with another version of the course than this one")
    refused("subs", said="subs holds no shard manifest")
    (tiny_class / "a" / "ninja-shard-0-of-2.manifest").write_text("{}")
    refused("a", said="is not a shard manifest of ninja-grade batch")
    without_the_grader = tuple(check for check in merging.CHECKS if "grader" not in check[0])
    mechanism_off(refuses_another_grader, lambda m: m.setattr(merging, "CHECKS", without_the_grader),
                  "refusing shards of another grader version")


@pytest.mark.slow
@needs_fork
def test_merge_lists_students_missing_or_graded_twice(tiny_class: Path) -> None:
    """A shard given twice lists its students as graded twice, a shard not given lists its students as
    missing (no score, never a 0), and a report left from another grading of a student's file is not
    taken: exit 3."""
    shard("a", "0/2")
    shutil.copytree(tiny_class / "a", tiny_class / "again")
    code, stdout, stderr = merged("a", "again", "--out", "merged")
    assert code == 3 and "merged 1 of 2 shards from 2 folders: 2 of 4 students graded" in stdout
    assert "2 students have no report" in stderr and "2 students were graded in several folders" in stderr
    assert "  alice: shard 1/2 not among the folders given" in stderr
    assert "  bob: a, again" in stderr
    rows = read_gradebook(tiny_class / "merged" / "gradebook.csv")
    assert (rows["alice"]["score"], rows["bob"]["score"]) == ("", "1")

    report = json.loads((tiny_class / "a" / "bob.json").read_text())
    report["graded_from"]["submission"] = "sha256:" + "0" * 64  # graded from other bytes than the manifest's
    (tiny_class / "a" / "bob.json").write_text(json.dumps(report))
    shard("b", "1/2")
    code, _, stderr = merged("a", "b", "--out", "merged")
    assert code == 3 and "  bob: not graded by shard 0/2: run it again" in stderr


@pytest.mark.slow
@needs_fork
def test_shard_removes_only_its_own_half_written_reports(tiny_class: Path, mechanism_off: MechanismOff) -> None:
    """Shards sharing a folder: a shard clears the temporary files a killed run of its own left, and never
    one of another shard's students (that shard may be writing it right now)."""
    out = tiny_class / "shared"

    def runs_beside_another() -> None:
        out.mkdir(exist_ok=True)
        theirs, ours = out / ".alice.json.k2j4h1x0.tmp", out / ".bob.json.q8w7e6r5.tmp"  # shards 1 and 0 of 2
        theirs.write_text("{\"half")
        ours.write_text("{\"half")
        shard("shared", "0/2")
        assert theirs.is_file() and theirs.read_text() == "{\"half" and not ours.exists()

    runs_beside_another()
    def every_one(out: Path, names: set[str]) -> list[Path]:
        return [p for p in out.iterdir() if p.name.endswith(".tmp")]

    mechanism_off(runs_beside_another, lambda m: m.setattr("grader.ci.batch.leftovers", every_one),
                  "clearing only the shard's own temporary files")


@pytest.mark.slow
@needs_fork
def test_merge_gives_each_namesake_its_own_file(tiny_class: Path, mechanism_off: MechanismOff) -> None:
    """Two sections hand in a bob.py each (a solution, the stub): shards given them in other orders still
    call the same file bob, so each file is graded once under its own id; shards run over other files of
    that name (one withdrawn, another added between their runs) are refused, naming the ids."""
    for section, source in (("sec1", SOLUTION), ("sec2", STUB), ("sec3", SOLUTION)):
        (tiny_class / section).mkdir()
        (tiny_class / section / "bob.py").write_text(source)

    def namesakes(out: str, index: str, *sections: str) -> None:  # bob is shard 0's, bob-2 shard 1's
        result = run_cli(["batch", "exercise2", *(f"{s}/bob.py" for s in sections), "--jobs", "1",
                          "--shard", index, "--out", out])
        assert result.exit_code in (0, 1), result.output

    def each_file_once() -> None:
        for folder in ("x0", "x1"):
            shutil.rmtree(tiny_class / folder, ignore_errors=True)
        namesakes("x0", "0/2", "sec1", "sec2")
        namesakes("x1", "1/2", "sec2", "sec1")
        code, _, stderr = merged("x0", "x1", "--out", "m")
        assert code == 1, stderr
        rows = read_gradebook(tiny_class / "m" / "gradebook.csv")
        assert {s: (r["submission"], r["score"]) for s, r in rows.items()} == {
            "bob": ("sec1/bob.py", "1"), "bob-2": ("sec2/bob.py", "0")}, rows

    def refuses_other_files() -> None:
        namesakes("y0", "0/2", "sec1", "sec2")
        namesakes("y1", "1/2", "sec2", "sec3")
        code, stdout, stderr = merged("y0", "y1", "--out", "n")
        assert code == 2 and stdout == "" and stderr.count("\n") == 1, (code, stderr)
        assert "disagree about which submission bob, bob-2 are" in stderr, stderr

    each_file_once()
    refuses_other_files()
    mechanism_off(each_file_once, lambda m: m.setattr("grader.ci.batch.sorted", lambda items, key=None: list(items),
                                                      raising=False), "numbering namesakes by their paths")
    mechanism_off(refuses_other_files, lambda m: m.setattr(merging, "_check_namesakes", lambda first, other: None),
                  "comparing the shards' namesakes")
