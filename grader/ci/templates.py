"""Templates for grading elsewhere: a GitHub Classroom workflow and a Gradescope autograder.

Both install the course and call `ninja-grade` like anyone would; neither holds grading
logic of its own.
"""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

from grader.courseware.course import Course
from grader.files import write_atomic
from grader.judging.results import plain_number

CPU_TORCH = "torch --index-url https://download.pytorch.org/whl/cpu"


WORKFLOW = ".github/workflows/classroom.yml"  # the name GitHub Classroom's own template uses


def classroom_workflow(course: Course, course_repo: str) -> str:
    """A workflow for a student's repository in GitHub Classroom's shape: one runner step per
    exercise (its result in GitHub Classroom's format), the Markdown summary and annotations, then
    Classroom's grading reporter, which puts the points on the teacher's dashboard."""
    runners = []
    for e in course.exercises:
        stub = e.stub.relative_to(course.root)
        error = json.dumps({"version": 1, "status": "error", "max_score": plain_number(e.max_score), "tests": []})
        runners.append(f"""      - name: {e.id}
        id: {e.id}
        run: |
          file="{stub}"
          if [ -f "notebooks/{e.id}.ipynb" ]; then file="notebooks/{e.id}.ipynb"; fi
          ninja-grade {e.id} "$file" --format markdown --output "ninja-{e.id}.md" --github || true
          cat "ninja-{e.id}.md" >> "$GITHUB_STEP_SUMMARY" || true
          ninja-grade {e.id} "$file" --format classroom --output "ninja-{e.id}.json" > /dev/null || true
          if [ -s "ninja-{e.id}.json" ]; then
            echo "result=$(base64 -w 0 "ninja-{e.id}.json")" >> "$GITHUB_OUTPUT"
          else  # the grader could not run at all: an error, worth nothing, said as such
            echo "result=$(printf '%s' '{error}' | base64 -w 0)" >> "$GITHUB_OUTPUT"
          fi""")
    env = "\n".join(f"          {e.id.upper()}_RESULTS: \"${{{{ steps.{e.id}.outputs.result }}}}\""
                     for e in course.exercises)
    return f"""# Grades every exercise of backprop-ninja on each push, and reports the points to GitHub Classroom
# (written by ninja-grade init-classroom).
name: Autograding Tests
on: [push, repository_dispatch, workflow_dispatch]
permissions:
  checks: write
  actions: read
  contents: read
jobs:
  run-autograding-tests:
    runs-on: ubuntu-latest
    if: github.actor != 'github-classroom[bot]'
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install the grader (CPU build of torch)
        run: |
          python -m pip install --upgrade pip
          python -m pip install {CPU_TORCH}
          # The course (course.yaml, stubs, solutions) lives beside the grader: install a checkout.
          git clone --quiet --depth 1 "{course_repo}" "$RUNNER_TEMP/backprop-ninja"
          python -m pip install --quiet -e "$RUNNER_TEMP/backprop-ninja"
{chr(10).join(runners)}
      - name: Autograding Reporter
        uses: classroom-resources/autograding-grading-reporter@v1
        env:
{env}
        with:
          runners: {",".join(e.id for e in course.exercises)}
"""


SETUP_SH = f"""#!/usr/bin/env bash
# Gradescope runs this once to build the autograder image (written by ninja-grade gradescope-bundle).
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3 python3-pip python3-venv > /dev/null
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet --upgrade pip
/autograder/venv/bin/pip install --quiet {CPU_TORCH}
/autograder/venv/bin/pip install --quiet -e /autograder/source
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission; results/results.json is what it reads.
set -uo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
mkdir -p "$root/results"
ninja="${NINJA_GRADE:-$root/venv/bin/ninja-grade}"
"$ninja" all "$root/submission" --format gradescope --output "$root/results/results.json" EXERCISE_ARG
status=$?
if [ ! -s "$root/results/results.json" ]; then
  # A set-up problem (exit 2): still give Gradescope a result it can show.
  why="The autograder could not grade this submission (exit code $status): submit your .py files or notebook."
  printf '{"score": 0, "output": "%s", "tests": []}\\n' "$why" > "$root/results/results.json"
fi
exit 0
"""

# What the bundle carries of this repository: enough to `pip install` it and grade.
BUNDLED = ("pyproject.toml", "README.md", "course.yaml")
BUNDLED_DIRS = ("grader", "exercises", "solutions")


def _add(zf: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    mode = 0o755 if executable else 0o644
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def gradescope_bundle(course: Course, out: Path, *, exercises: tuple[str, ...] = ()) -> Path:
    """The zip Gradescope expects: setup.sh and run_autograder at its root, the course beside them."""
    buffer = io.BytesIO()
    exercise_arg = " ".join(f"--exercise {e}" for e in exercises)
    with zipfile.ZipFile(buffer, "w") as zf:
        _add(zf, "setup.sh", SETUP_SH.encode(), executable=True)
        _add(zf, "run_autograder", RUN_AUTOGRADER.replace("EXERCISE_ARG", exercise_arg).encode(), executable=True)
        forward_files = sorted({e.forward.relative_to(course.root).as_posix() for e in course.exercises})
        for name in (*BUNDLED, *forward_files):  # the forward files (lecture.py) are course content too
            _add(zf, name, (course.root / name).read_bytes())
        for folder in BUNDLED_DIRS:
            for path in sorted((course.root / folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    _add(zf, str(path.relative_to(course.root)), path.read_bytes())
    write_atomic(out, buffer.getvalue())
    return out


def write_workflow(course: Course, directory: Path, course_repo: str) -> Path:
    path = directory / WORKFLOW
    write_atomic(path, classroom_workflow(course, course_repo))
    return path
