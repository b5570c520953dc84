"""A plain GitHub Actions workflow for a student's repository: feedback on every push, points nowhere.

One step per exercise grades it (its notebook notebooks/exerciseN.ipynb when there is one, else
its .py file), writes the Markdown table to the job's summary page, marks the failing lines with
annotations, and keeps a JUnit report per exercise as the run's artifact. The course and the
grader travel in the repository, under .github/ninja/, so the workflow needs nothing but PyPI.
"""

from __future__ import annotations

from pathlib import Path

from grader.ci.bundle import CPU_TORCH_INDEX, PYTHON, Bundle, write_tree
from grader.courseware.course import Course

WORKFLOW = ".github/workflows/ninja-grade.yml"
HOME = ".github/ninja"  # where the course, the data and the wheel sit in the student's repository
REPORTS = "ninja-reports"


def workflow(course: Course, bundle: Bundle) -> str:
    """The workflow's YAML: install, one step per exercise, then the JUnit reports as an artifact."""
    data = f"env:\n  NINJA_DATA: {HOME}/{bundle.data_file}\n" if bundle.data_file else ""
    steps = []
    for e in course.exercises:
        stub = e.stub.relative_to(course.root).as_posix()
        steps.append(f"""      - name: {e.id}
        if: ${{{{ !cancelled() && steps.install.outcome == 'success' }}}}
        run: |
          file="{stub}"
          if [ -f "notebooks/{e.id}.ipynb" ]; then file="notebooks/{e.id}.ipynb"; fi
          ninja-grade --course "{HOME}/{bundle.course_file}" {e.id} "$file" --github \\
            --format junit --output "{REPORTS}/{e.id}.xml" --summary "$GITHUB_STEP_SUMMARY\"""")
    return f"""# Grades every exercise on each push: the table on the run's summary page, the failing lines
# marked in the files, a JUnit report per exercise as the run's artifact (written by ninja-grade
# init-github-actions). Feedback only: no points are recorded anywhere.
name: ninja-grade
on: [push, workflow_dispatch]
permissions:
  contents: read
{data}jobs:
  grade:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "{PYTHON}"
      - name: Install the grader (CPU build of torch)
        id: install
        run: |
          python -m pip install --quiet torch --index-url {CPU_TORCH_INDEX}
          python -m pip install --quiet "{HOME}/{bundle.wheel}"
{chr(10).join(steps)}
      - name: Keep the JUnit reports
        if: ${{{{ !cancelled() }}}}
        uses: actions/upload-artifact@v4
        with:
          name: ninja-reports
          path: {REPORTS}/
          if-no-files-found: ignore
"""


def write_github_actions(course: Course, bundle: Bundle, directory: Path) -> list[Path]:
    """The workflow and .github/ninja/ (the course, the data, the wheel), under `directory`."""
    return write_tree([(WORKFLOW, workflow(course, bundle).encode()),
                       *((f"{HOME}/{name}", data) for name, data in bundle.files)], directory)
