"""What a batch trusts when it keeps a report, and what it records so that it can tell.

A kept report must read whole as a report whose score and verdict follow from its gradients and the
course's points; the record names the grader's own code (not only its version) and which case
secret drew the cases (a keyed digest, never the secret); a submission is fingerprinted without
ever being read whole into memory. Each through the real batch and merge.
"""

from __future__ import annotations

import json
import shutil
import tracemalloc
from pathlib import Path

import pytest

import grader
from grader.ci import record
from tests.conftest import ROOT, MechanismOff, needs_fork, run_cli
from tests.helpers import read_gradebook

pytestmark = needs_fork

SOLUTION = (ROOT / "solutions" / "exercise2.py").read_text()
WRONG = "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\n"  # no 1/n: wrong on every case


def batch(tmp_path: Path, *more: str, students: tuple[str, ...] = ("alice",), out: str = "out") -> tuple[int, str]:
    result = run_cli(["batch", "exercise2", *(str(tmp_path / f"{s}.py") for s in students), "--jobs", "1",
                      "--out", str(tmp_path / out), *more])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def test_batch_regrades_and_merge_refuses_an_edited_report(tmp_path: Path, mechanism_off: MechanismOff) -> None:
    """A wrong file's report edited to full marks, or with its gradients null: the rerun grades it again
    (said as a report that could not be read) and the gradebook has its real 0; merge takes neither,
    saying why in a sentence, never a traceback."""
    (tmp_path / "alice.py").write_text(WRONG)
    assert batch(tmp_path)[0] == 1
    report = tmp_path / "out" / "alice.json"
    graded = json.loads(report.read_text())
    forged = [{**graded, "score": 1, "passed": True}, {**graded, "gradients": None}]

    def never_trusted() -> None:
        for edit, why in zip(forged, ("its score is not the sum", "its gradients are not a list"), strict=True):
            report.write_text(json.dumps(edit))
            result = run_cli(["merge", str(tmp_path / "out"), "--out", str(tmp_path / "merged")])
            assert result.exit_code == 3 and "Traceback" not in result.output, result.output
            assert f"alice: its report in {tmp_path / 'out'} is not taken: {why}" in result.stderr, result.stderr
            code, said = batch(tmp_path)
            assert code == 1 and "grading 1 of 1: 1 with a report whose record could not be read" in said, said
            assert read_gradebook(tmp_path / "out" / "gradebook.csv")["alice"]["score"] == "0"

    never_trusted()
    mechanism_off(never_trusted, lambda m: (m.setattr("grader.ci.record.report_problem", lambda *a: None),
                                            m.setattr("grader.ci.merge.report_problem", lambda *a: None)),
                  "checking a report's gradients, score and passed")


def test_batch_regrades_when_the_graders_code_changes_under_one_version(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       mechanism_off: MechanismOff) -> None:
    """An editable install changed (here a copy of the package the record is computed from) with the same
    version: every report is graded again, said as another grader; the record holds the version still."""
    package = tmp_path / "package"
    shutil.copytree(Path(grader.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(grader, "__file__", str(package / "__init__.py"))
    (tmp_path / "alice.py").write_text(SOLUTION)

    def changed_code_regrades() -> None:
        record.grader_code.cache_clear()
        batch(tmp_path)
        results = package / "judging" / "results.py"
        results.write_text(results.read_text() + "\n# a change\n")
        record.grader_code.cache_clear()
        code, said = batch(tmp_path)
        assert code == 0 and "grading 1 of 1: 1 graded by another grader version or code" in said, said

    try:
        changed_code_regrades()
        was = json.loads((tmp_path / "out" / "alice.json").read_text())["graded_from"]["grader"]
        assert was.startswith(f"{record.grader_version()} (code "), was
        mechanism_off(changed_code_regrades, lambda m: m.setattr(record, "grader_said", record.grader_version),
                      "recording the grader's code")
    finally:
        record.grader_code.cache_clear()


def test_a_rotated_case_secret_regrades_and_merge_refuses_mixed_secrets(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        mechanism_off: MechanismOff) -> None:
    """A new NINJA_CASE_SECRET regrades everyone (the old cases may have leaked); the record holds a keyed
    digest, never the secret; shards graded under two secrets are refused by merge in one line."""
    for student in ("alice", "bob"):
        (tmp_path / f"{student}.py").write_text(SOLUTION)
    both = ("alice", "bob")

    def rotation_regrades() -> None:
        monkeypatch.setenv("NINJA_CASE_SECRET", "leaked-secret")
        batch(tmp_path, students=both)
        monkeypatch.setenv("NINJA_CASE_SECRET", "rotated-secret")
        code, said = batch(tmp_path, students=both)
        assert code == 0 and "grading 2 of 2: 2 graded under another case secret" in said, said

    def mixed_shards_refused() -> None:
        for index, secret in ((0, "leaked-secret"), (1, "rotated-secret")):
            monkeypatch.setenv("NINJA_CASE_SECRET", secret)
            batch(tmp_path, "--shard", f"{index}/2", students=both, out=f"shard{index}")
        result = run_cli(["merge", str(tmp_path / "shard0"), str(tmp_path / "shard1"), "--out", str(tmp_path / "m")])
        assert result.exit_code == 2 and "were graded under different case secrets" in result.stderr, result.output

    rotation_regrades()
    text = (tmp_path / "out" / "alice.json").read_text()
    assert "rotated-secret" not in text and json.loads(text)["graded_from"]["cases"].startswith("hmac-sha256:")
    mixed_shards_refused()
    for check in (rotation_regrades, mixed_shards_refused):
        mechanism_off(check, lambda m: m.setattr(record, "secret_digest", lambda course: "none"),
                      "recording which case secret drew the cases")


def test_fingerprint_streams_a_file_and_never_reads_a_huge_one(tmp_path: Path, mechanism_off: MechanismOff) -> None:
    """A sparse 256 MB huge.py is fingerprinted by its size with next to nothing in memory, and still gets
    its one-line refusal in the batch; a normal file's fingerprint is the hash of its bytes, as before."""
    (tmp_path / "alice.py").write_text(SOLUTION)
    assert record.fingerprint(tmp_path / "alice.py", None) == record._digest([("file", SOLUTION.encode())])
    with (tmp_path / "huge.py").open("wb") as f:
        f.truncate(256 * 1024 * 1024)

    def small_in_memory() -> None:
        tracemalloc.start()
        try:
            record.fingerprint(tmp_path / "huge.py", None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 * 1024 * 1024, peak

    small_in_memory()
    code, _ = batch(tmp_path, students=("huge",))
    row = read_gradebook(tmp_path / "out" / "gradebook.csv")["huge"]
    assert code == 1 and row["score"] == "0" and "huge.py is 268,435,456 bytes" in row["error"], row
    mechanism_off(small_in_memory, lambda m: m.setattr(
        record, "fingerprint", lambda path, problem: record._digest([("file", path.read_bytes())])),
        "checking a submission's size before hashing it")
