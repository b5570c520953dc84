"""Gradescope's autograder zip: setup.sh and run_autograder at its root, the course and the grader beside them.

Gradescope (gradescope-autograders.readthedocs.io, "Autograder Specifications") unzips it into
/autograder/source, runs setup.sh once to build the image, then run_autograder in /autograder for
every submission, which is in /autograder/submission; it reads /autograder/results/results.json.
AUTOGRADER_ROOT moves /autograder, to try the zip anywhere.
"""

from __future__ import annotations

import io
import shlex
import stat
import zipfile
from pathlib import Path

from grader.ci.bundle import CPU_TORCH_INDEX, Bundle
from grader.ci.wheel import ZIP_DATE
from grader.files import write_atomic

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, to build the autograder's image (written by ninja-grade gradescope-bundle).
set -euo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
if ! python3 -m venv "$root/venv" 2> /dev/null; then  # no Python with venv in the base image: install it
  apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip > /dev/null
  python3 -m venv --clear "$root/venv"
fi
"$root/venv/bin/python" -m pip install --quiet --upgrade pip
"$root/venv/bin/python" -m pip install --quiet torch --index-url CPU_TORCH_INDEX
"$root/venv/bin/python" -m pip install --quiet "$root/source/WHEEL"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission; results/results.json is what it reads.
set -uo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
mkdir -p "$root/results"
rm -f "$root/results/results.json"
DATA_LINE"$root/venv/bin/ninja-grade" --course "$root/source/COURSE_FILE" all "$root/submission" EXERCISE_ARGS\\
  --format gradescope --output "$root/results/results.json"
status=$?
if [ ! -s "$root/results/results.json" ]; then  # the grader itself failed: say so, and that it is not the student
  printf '{"score": 0, "output": "The autograder failed (exit code %s) before it could grade: this is not your code. \
Tell your instructor.", "tests": []}\\n' "$status" > "$root/results/results.json"
fi
exit 0
"""


def run_autograder(bundle: Bundle, exercises: tuple[str, ...]) -> str:
    data = f'export NINJA_DATA="$root/source/{bundle.data_file}"\n' if bundle.data_file else ""
    exercise_args = "".join(f"--exercise {shlex.quote(e)} " for e in exercises)
    return (RUN_AUTOGRADER.replace("DATA_LINE", data).replace("COURSE_FILE", bundle.course_file)
            .replace("EXERCISE_ARGS", exercise_args))


def _add(zf: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def gradescope_zip(bundle: Bundle, out: Path, *, exercises: tuple[str, ...] = ()) -> Path:
    """The zip a Gradescope programming assignment takes, written whole to `out`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        setup = SETUP_SH.replace("CPU_TORCH_INDEX", CPU_TORCH_INDEX).replace("WHEEL", bundle.wheel)
        _add(zf, "setup.sh", setup.encode(), executable=True)
        _add(zf, "run_autograder", run_autograder(bundle, exercises).encode(), executable=True)
        for name, data in bundle.files:
            _add(zf, name, data)
    write_atomic(out, buffer.getvalue())
    return out
