"""PrairieLearn's external grader: a Docker image (CPU torch, the grader, this course) and its entrypoint.

PrairieLearn (docs "External Grading") starts the question's image with networking off, the
student's files in /grade/student and the question's data in /grade/data/data.json, runs the
entrypoint, and reads /grade/results/results.json (at most 1 MB; the entrypoint makes the folder)
before the question's timeout, at most 600 s. NINJA_GRADE_ROOT moves /grade, to try the
entrypoint anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template

from grader.ci.bundle import CPU_TORCH_INDEX, PYTHON, Bundle, write_tree
from grader.courseware.course import Course

IMAGE_HOME = "/opt/ninja"  # where the image keeps the course, the data and the entrypoint
PYTHON_IMAGE = f"python:{PYTHON}-slim"
MAX_TIMEOUT_S = 600  # PrairieLearn's ceiling for externalGradingOptions.timeout
START_S = 30  # torch's import, the data, the cases: before any student code runs

DOCKERFILE = Template("""# PrairieLearn external grader for this course (written by ninja-grade prairielearn).
#   docker build -t $image . && docker push $image
FROM $python_image
RUN python -m pip install --no-cache-dir torch --index-url $torch_index
COPY $wheel /tmp/
RUN python -m pip install --no-cache-dir /tmp/$wheel_name && rm /tmp/$wheel_name
COPY course/ $home/course/
$copy_data
COPY entrypoint.py $home/entrypoint.py
RUN chmod 755 $home/entrypoint.py
ENV NINJA_OFFLINE=1
""")

ENTRYPOINT = Template('''#!/usr/bin/env python3
"""PrairieLearn entrypoint, written by `ninja-grade prairielearn`: grades /grade/student into
/grade/results/results.json. Arguments: the exercises to grade (none: every exercise found).
NINJA_GRADE_ROOT moves /grade."""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COURSE = HERE / $course_file
DATA = $data_file


def main() -> int:
    root = Path(os.environ.get("NINJA_GRADE_ROOT") or "/grade")
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.unlink(missing_ok=True)
    env = dict(os.environ, **({"NINJA_DATA": str(HERE / DATA)} if DATA else {}))
    command = [sys.executable, "-m", "grader.cli", "--course", str(COURSE), "all", str(root / "student"),
               *(arg for exercise in sys.argv[1:] for arg in ("--exercise", exercise)),
               "--format", "prairielearn", "--output", str(results)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if not results.is_file():  # the grader itself failed: not the student's attempt
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        message = f"The grader failed before it could grade ({why}): this is not your code. Tell your instructor."
        results.write_text(json.dumps({"gradable": False, "score": 0.0, "message": message,
                                       "format_errors": [message], "tests": []}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
''')


def dockerfile(bundle: Bundle, image: str) -> str:
    wheel_name = Path(bundle.wheel).name
    copy_data = f"COPY {bundle.data_file} {IMAGE_HOME}/{bundle.data_file}" if bundle.data_file else ""
    return DOCKERFILE.substitute(python_image=PYTHON_IMAGE, torch_index=CPU_TORCH_INDEX, wheel=bundle.wheel,
                                 wheel_name=wheel_name, home=IMAGE_HOME, copy_data=copy_data, image=image)


def entrypoint_py(bundle: Bundle) -> str:
    return ENTRYPOINT.substitute(course_file=repr(bundle.course_file), data_file=repr(bundle.data_file))


def timeout_for(course: Course, exercises: tuple[str, ...]) -> int:
    """The question's timeout: the start plus every graded exercise's own time limit, within PrairieLearn's."""
    graded = [course.exercise(e) for e in exercises] if exercises else list(course.exercises)
    return min(MAX_TIMEOUT_S, START_S + round(sum(e.limits.time_s for e in graded)))


def info_json(course: Course, image: str, exercises: tuple[str, ...]) -> str:
    """The externalGradingOptions to put in the question's info.json."""
    options = {"enabled": True, "image": image, "entrypoint": [f"{IMAGE_HOME}/entrypoint.py", *exercises],
               "timeout": timeout_for(course, exercises)}
    return json.dumps({"externalGradingOptions": options}, indent=2)


def write_prairielearn(course: Course, bundle: Bundle, directory: Path, *, image: str,
                       exercises: tuple[str, ...] = ()) -> list[Path]:
    """The image's build folder: Dockerfile, entrypoint.py, the course, the data and the wheel; and
    info.json, the question's externalGradingOptions (not part of the image)."""
    files = [("Dockerfile", dockerfile(bundle, image).encode()),
             ("entrypoint.py", entrypoint_py(bundle).encode()), *bundle.files,
             ("info.json", info_json(course, image, exercises).encode())]
    return write_tree(files, directory, executable=("entrypoint.py",))
