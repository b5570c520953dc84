"""Classroom 50's autograder for one assignment: autograder.py, with the course and the grader beside it.

Classroom 50 (foundation50/classroom50, wiki "Advanced Autograding") runs
CLASSROOM/autograders/ASSIGNMENT/autograder.py on GitHub Actions in the student's repository: the
student's checkout is the working directory, the files beside autograder.py are at
Path(__file__).parent, and CLASSROOM, ASSIGNMENT, SUBMISSION_TAG, COMMIT_URL, RELEASE_URL and
REVIEW_URL are in the environment. It must write ./result.json (classroom50/result/v1) and exit 0
whenever it graded, whatever the score; a non-zero exit is an infrastructure error. It may write
./release-body.md, the Release students open from "View grade".
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template

from grader.ci.bundle import CPU_TORCH_INDEX, PYTHON, Bundle, write_tree

RUNTIME = {"runs-on": "ubuntu-latest", "python": PYTHON}

AUTOGRADER = Template('''#!/usr/bin/env python3
"""Classroom 50 autograder, written by `ninja-grade init-classroom50`: grades the student's checkout.

Installs the grader (the wheel beside this file) and CPU torch into the runner's Python, grades the
checkout (exerciseN.py files or notebooks) against PyTorch autograd, and writes result.json (one
test per gradient) and release-body.md (the table the student reads on the Release). A submission
that cannot be read is graded too: every gradient fails, with the reason. Exit 1 means the grader
itself could not run.
"""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COURSE = HERE / $course_file
DATA = $data_file
WHEEL = HERE / $wheel
EXERCISES = $exercises  # empty: every exercise of the course
TORCH_INDEX = $torch_index
PIP = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]


def main() -> int:
    for args in (["torch", "--index-url", TORCH_INDEX], [str(WHEEL)]):
        if subprocess.run([*PIP, *args], check=False).returncode != 0:
            print(f"::error::could not install {args[0]}: see the lines above", file=sys.stderr)
            return 1
    env = dict(os.environ, **({"NINJA_DATA": str(HERE / DATA)} if DATA else {}))
    for stale in ("result.json", "release-body.md"):
        Path(stale).unlink(missing_ok=True)
    command = [sys.executable, "-m", "grader.cli", "--course", str(COURSE), "all", ".",
               *(arg for exercise in EXERCISES for arg in ("--exercise", exercise)),
               "--format", "classroom50", "--output", "result.json", "--summary", "release-body.md"]
    done = subprocess.run(command, env=env, check=False)
    # 0 and 1: graded; 2 with result.json: graded as unreadable; anything else: the grader failed
    return 0 if Path("result.json").is_file() and done.returncode in (0, 1, 2) else 1


if __name__ == "__main__":
    sys.exit(main())
''')


def autograder_py(bundle: Bundle, exercises: tuple[str, ...]) -> str:
    return AUTOGRADER.substitute(course_file=repr(bundle.course_file), data_file=repr(bundle.data_file),
                                 wheel=repr(bundle.wheel), exercises=repr(list(exercises)),
                                 torch_index=repr(CPU_TORCH_INDEX))


def write_classroom50(bundle: Bundle, directory: Path, *, exercises: tuple[str, ...] = ()) -> list[Path]:
    """autograder.py and what sits beside it, in `directory` (CLASSROOM/autograders/ASSIGNMENT/)."""
    return write_tree([("autograder.py", autograder_py(bundle, exercises).encode()), *bundle.files], directory,
                      executable=("autograder.py",))


def runtime_block() -> str:
    """The assignment's `runtime` block (gh teacher assignment add --runtime FILE, or the web form)."""
    return json.dumps(RUNTIME, indent=2)
