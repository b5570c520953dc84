"""Where courses grade: a GitHub Actions workflow, Classroom 50, PrairieLearn and Gradescope, for any course.

Each command bundles the course (course.yaml, its forward files and stubs, never the solutions),
names.txt and the grader's own wheel, and writes what the platform runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from grader.cli.common import course_or_exit, fail_setup
from grader.courseware.course import Course, CourseError

if TYPE_CHECKING:
    from grader.ci.bundle import Bundle

DISCONTINUED = ("GitHub Classroom was discontinued on 2026-08-28, and init-classroom's workflow reported to its "
                "dashboard: use ninja-grade init-classroom50 (Classroom 50, points in scores.json) or ninja-grade "
                "init-github-actions (a plain workflow: feedback, no points)")


exercise_option = click.option("--exercise", multiple=True,
                               help="Grade only these exercises (repeatable; default: all).")
data_option = click.option("--data", type=click.Path(path_type=Path), default=None,
                           help="names.txt to bundle (default: $NINJA_DATA, ./names.txt, the cache, a download).")


def bundle_or_exit(course: Course, exercises: tuple[str, ...], data: Path | None, *,
                   need_data: str = "") -> Bundle:
    """The course's bundle, or one line and exit 2. Without a real names.txt the bundle grades on the
    platform's download of it (or, offline, a synthetic batch): said, or refused where `need_data` says why."""
    from grader.ci.bundle import course_bundle
    from grader.ci.wheel import WheelError
    from grader.courseware.data import DataError
    from grader.courseware.forward import dataset_of

    try:
        for exercise_id in exercises:
            course.exercise(exercise_id)
        dataset = dataset_of(course, data)
        if dataset.synthetic and need_data:
            fail_setup(f"{need_data}: give --data PATH to the makemore names.txt (or set NINJA_DATA)")
        bundle = course_bundle(course, dataset)
    except (CourseError, DataError, WheelError) as exc:
        fail_setup(str(exc))
    except OSError as exc:
        fail_setup(f"cannot read {exc.filename}: {exc.strerror}")
    if bundle.data_file is None:
        click.echo("ninja-grade: no names.txt here to bundle: the platform's grader downloads it, or grades on a "
                   "synthetic batch where it cannot (give --data PATH to bundle one)", err=True)
    return bundle


def written(paths: list[Path], directory: Path) -> str:
    return f"{len(paths)} files in {directory}"


@click.command(name="gradescope-bundle", short_help="Gradescope: the autograder zip, for any course.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("autograder.zip"),
              show_default=True, help="Where to write the zip.")
@exercise_option
@data_option
@click.pass_context
def gradescope_bundle_command(ctx: click.Context, out: Path, exercise: tuple[str, ...], data: Path | None) -> None:
    """Write the autograder zip Gradescope takes (setup.sh, run_autograder, the course, the grader)."""
    from grader.ci.gradescope import gradescope_zip

    bundle = bundle_or_exit(course_or_exit(ctx), exercise, data)
    try:
        gradescope_zip(bundle, out, exercises=exercise)
    except OSError as exc:
        fail_setup(f"cannot write {out}: {exc.strerror}")
    click.echo(f"wrote {out}: upload it as the autograder of a Gradescope programming assignment (base image "
               "Ubuntu 22.04 or later); students submit exerciseN.py files or their notebook")


@click.command(name="init-classroom50", short_help="Classroom 50: an assignment's autograder.py, for any course.")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@exercise_option
@data_option
@click.pass_context
def init_classroom50_command(ctx: click.Context, directory: Path, exercise: tuple[str, ...],
                             data: Path | None) -> None:
    """Write a Classroom 50 autograder: autograder.py, the course and the grader, for DIRECTORY
    (your classroom50 repository's CLASSROOM/autograders/ASSIGNMENT/); print the runtime block."""
    from grader.ci.classroom50 import runtime_block, write_classroom50
    from grader.reporting.platforms import classroom50_problem

    course = course_or_exit(ctx)
    problem = classroom50_problem(course.exercises)
    if problem:
        fail_setup(problem)
    bundle = bundle_or_exit(course, exercise, data)
    try:
        paths = write_classroom50(bundle, directory, exercises=exercise)
    except OSError as exc:
        fail_setup(f"cannot write to {directory}: {exc.strerror}")
    click.echo(f"wrote {written(paths, directory)}: autograder.py grades the student's checkout into result.json "
               "and release-body.md. Put the folder at CLASSROOM/autograders/ASSIGNMENT/ in your classroom50 "
               "repository, and give the assignment this runtime block (the web form's Advanced settings, or "
               "gh teacher assignment add --runtime FILE):")
    click.echo(runtime_block())


@click.command(name="prairielearn", short_help="PrairieLearn: the grader image and its question options.")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--image", default=None, metavar="NAME",
              help="The image's name, as PrairieLearn will pull it (default: ninja-grade-COURSEFOLDER).")
@exercise_option
@data_option
@click.pass_context
def prairielearn_command(ctx: click.Context, directory: Path, image: str | None, exercise: tuple[str, ...],
                         data: Path | None) -> None:
    """Write a PrairieLearn external grader: the Dockerfile (CPU torch, the grader, this course), its
    entrypoint, and info.json's externalGradingOptions for the questions."""
    from grader.ci.prairielearn import info_json, write_prairielearn

    course = course_or_exit(ctx)
    bundle = bundle_or_exit(course, exercise, data,
                            need_data="PrairieLearn grades with no network, so the image must carry names.txt")
    name = image or f"ninja-grade-{course.root.name.lower()}"
    try:
        paths = write_prairielearn(course, bundle, directory, image=name, exercises=exercise)
    except OSError as exc:
        fail_setup(f"cannot write to {directory}: {exc.strerror}")
    click.echo(f"wrote {written(paths, directory)}. Build the image and push it where PrairieLearn can pull it "
               f"(docker build -t {name} {directory} && docker push {name}), and give each question this in its "
               "info.json (students submit exerciseN.py files or notebooks, by pl-file-upload or pl-file-editor):")
    click.echo(info_json(course, name, exercise))


@click.command(name="init-github-actions", short_help="GitHub Actions: a feedback workflow for students' repositories.")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False), default=Path("."))
@data_option
@click.pass_context
def init_github_actions_command(ctx: click.Context, directory: Path, data: Path | None) -> None:
    """Write a GitHub Actions workflow for a student's repository: on every push, the table on the run's
    summary page, annotations on the failing lines, JUnit reports. Feedback only: no points go anywhere."""
    from grader.ci.github_actions import write_github_actions

    course = course_or_exit(ctx)
    bundle = bundle_or_exit(course, (), data)
    try:
        paths = write_github_actions(course, bundle, directory)
    except OSError as exc:
        fail_setup(f"cannot write to {directory}: {exc.strerror}")
    click.echo(f"wrote {written(paths, directory)}: commit them to the assignment's template repository; every "
               "push then grades each exercise in the student's own repository")


@click.command(name="init-classroom", hidden=True,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("anything", nargs=-1, type=click.UNPROCESSED)
def init_classroom_command(anything: tuple[str, ...]) -> None:
    """GitHub Classroom's workflow: retired with GitHub Classroom."""
    fail_setup(DISCONTINUED)
