"""A class of hostile submissions, graded as a class is graded: the real `ninja-grade batch`.

tests/submissions/hostile/exercise1/ holds one attack per file, each named for what it tries;
none does any gradient math. They are graded together with an honest student, as root and
as a user without rights, in the unix and in the portable sandbox. Every attack must earn
no point; no file may appear outside the sandbox's scratch folder; neither a planted secret
of the grader's environment nor a file the user can read may show in any report or output;
a report graded before, and the honest student's, stay as they were; and nothing prints a
traceback. What stops each attack is proved layer by layer in tests/test_jail.py,
tests/test_confinement.py and tests/test_protocol.py, each with its protection switched off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, SUBMISSIONS, User, unix_only

pytestmark = [unix_only, pytest.mark.slow]

ATTACKS = sorted(p.stem for p in (SUBMISSIONS / "hostile" / "exercise1").glob("*.py"))
PLANTED_FILE = Path("/tmp/ninja-planted-secret.txt")  # where reads_grader_environment looks


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    return {"env": f"ninja-env-{uuid.uuid4().hex}", "file": f"ninja-file-{uuid.uuid4().hex}"}


def prepare(owner: User | None, secrets: dict[str, str]) -> Path:
    """A class folder (attacks, an honest student, a report from an earlier run), owned by the grader."""
    root = Path(tempfile.mkdtemp(prefix="ninja-class-", dir="/tmp"))
    work = root / "class"
    work.mkdir()
    for attack in ATTACKS:
        shutil.copy(SUBMISSIONS / "hostile" / "exercise1" / f"{attack}.py", work / f"{attack}.py")
    shutil.copy(ROOT / "solutions" / "exercise1.py", work / "honest.py")
    out = root / "out"
    out.mkdir()
    (root / "tmp").mkdir()  # the grader's TMPDIR: where its scratch folders go, to be empty at the end
    (out / "earlier.json").write_text(json.dumps({"student": "earlier", "score": 13, "max_score": 26}))
    PLANTED_FILE.write_text(secrets["file"])
    if owner is not None:
        for path in (root, work, out, root / "tmp", *work.iterdir(), *out.iterdir(), PLANTED_FILE):
            os.chown(path, owner.uid, owner.gid)
    PLANTED_FILE.chmod(0o600)
    return root


def grade_class(root: Path, grader: User | None, sandbox: str,
                secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
    files = sorted(str(p) for p in (root / "class").iterdir())
    command = [sys.executable, "-c", "from grader.cli import run; run()", "--sandbox", sandbox, "batch", "exercise1",
               *files, "--out", str(root / "out"), "--jobs", "2", "--time-limit", "20"]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "NINJA_DATA": os.environ.get("NINJA_DATA", ""),
           "NINJA_OFFLINE": "1", "HOME": str(root), "TMPDIR": str(root / "tmp"), "NINJA_PLANTED_SECRET": secrets["env"]}
    return subprocess.run(grader.command(*command) if grader else command, capture_output=True, text=True, env=env,
                          cwd=root, timeout=900, check=False)


def pwned() -> list[str]:
    """What the attacks try to write outside their scratch folder."""
    return sorted(p.name for p in Path("/tmp").glob("ninja-pwned*"))


@pytest.fixture(params=["root/unix", "root/portable", "user/unix", "user/portable"])
def graded(request: pytest.FixtureRequest, unprivileged: User, secrets: dict[str, str]) -> Iterator[
        tuple[Path, subprocess.CompletedProcess[str]]]:
    who, sandbox = request.param.split("/")
    if who == "root" and os.geteuid() != 0:
        pytest.skip("the tests do not run as root")
    grader = unprivileged if who == "user" and os.geteuid() == 0 else None
    root = prepare(grader, secrets)
    done = grade_class(root, grader, sandbox, secrets)
    assert pwned() == []
    assert list((root / "tmp").iterdir()) == []  # every scratch folder removed
    yield root, done
    shutil.rmtree(root, ignore_errors=True)
    PLANTED_FILE.unlink(missing_ok=True)


def test_hostile_class_earns_nothing_and_touches_nothing(graded: tuple[Path, subprocess.CompletedProcess[str]],
                                                         secrets: dict[str, str]) -> None:
    """Every attack scores 0, the honest student 26/26, the earlier report stands, nothing leaks, nothing
    is written outside the scratch folders, and nothing prints a traceback."""
    root, done = graded
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    out = root / "out"
    reports = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    for attack in ATTACKS:
        assert reports[attack]["score"] == 0, (attack, [(g["name"], g["status"]) for g in reports[attack]["gradients"]
                                                        if g["status"] in ("exact", "approximate")])
        assert not reports[attack].get("error"), (attack, reports[attack].get("error"))  # graded, not crashed
    assert reports["honest"]["score"] == 26 and reports["honest"]["passed"] is True
    assert json.loads((out / "earlier.json").read_text()) == {"student": "earlier", "score": 13, "max_score": 26}
    everything = done.stdout + done.stderr + "".join(p.read_text() for p in out.iterdir() if p.is_file())
    assert secrets["env"] not in everything and secrets["file"] not in everything
    assert "root:x:0:0" not in everything  # /etc/passwd
    assert "Traceback" not in everything
    assert sorted(p.name for p in (root / "class").iterdir()) == sorted([*(f"{a}.py" for a in ATTACKS), "honest.py"])
    gradebook = (out / "gradebook.csv").read_text()
    assert "honest,," not in gradebook and any(line.startswith("honest,") and ",26," in line
                                               for line in gradebook.splitlines())
