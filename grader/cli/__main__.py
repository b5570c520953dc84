"""`python -m grader.cli`: ninja-grade, for a Python whose scripts folder is not on PATH."""

from grader.cli import run

run()
