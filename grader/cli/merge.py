"""`ninja-grade merge`: one gradebook and class page from the folders of a class's shards."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from grader.ci.gradebooks import FORMATS as GRADEBOOK_FORMATS
from grader.cli.class_report import roster_or_exit, write_batch_outputs
from grader.cli.common import EXIT_FAILED, EXIT_GRADER_FAULT, EXIT_PASSED, course_or_exit, fail_setup
from grader.courseware.course import CourseError
from grader.reporting.formats import one_line

LISTED = 20  # students named per problem; the rest are counted


@click.command(name="merge", short_help="Join the outputs of a class's shards into one gradebook.")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="OUT_DIR...")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("ninja-merged"),
              show_default=True, help="Folder for the merged gradebook and the class page.")
@click.option("--gradebook", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the gradebook (default: OUT/gradebook.csv).")
@click.option("--gradebook-format", type=click.Choice(GRADEBOOK_FORMATS), default="csv", show_default=True,
              help="As for batch: csv, or the file canvas, moodle or blackboard imports.")
@click.option("--roster", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="CSV of name, student_id, email, lms_id: who each submission (its file name) is.")
@click.option("--gradebook-column", default=None, metavar="NAME", help="The LMS's assignment column, as for batch.")
@click.pass_context
def merge_command(ctx: click.Context, /, *, folders: tuple[Path, ...], out: Path, gradebook: Path | None,
                  gradebook_format: str, roster: Path | None, gradebook_column: str | None) -> None:
    """Merge the --out folders of `ninja-grade batch --shard I/N` runs (any number, each holding one or
    more shards) into one gradebook and class page, as one batch over the whole class would write.
    Refuses shards graded differently (exercise, grader version or code, course, data, limits, case
    secret, split or submissions): one line, exit 2. Lists the students with no report (a shard missing or not
    finished: exit 3) and those graded by two folders (exit 3); else exit 0 when every student
    passed, 1 when some did not."""
    from grader.ci.batch import Submission
    from grader.ci.batch import gradebook as table_of
    from grader.ci.merge import MergeError, merge, read_outputs
    from grader.ci.record import course_digest, points_of
    from grader.cli.tools import say_rates_and_faults

    course = course_or_exit(ctx)
    people = roster_or_exit(roster)
    try:
        outputs = read_outputs(list(folders))
        exercise = course.exercise(str(outputs[0].graded_with.get("exercise")))
        merged = merge(outputs, course_digest(course), points_of(exercise))
    except (MergeError, CourseError) as exc:
        fail_setup(str(exc))
    except OSError as exc:
        fail_setup(f"cannot read the course to check the shards against it: {exc}")
    if out.exists() and not out.is_dir():
        fail_setup(f"--out {out} is a file, not a folder")
    subs = [Submission(student, None) for student in merged.students]
    table, reports = table_of(course, exercise.id, subs, merged.reports)
    book = gradebook or out / "gradebook.csv"
    try:
        page = write_batch_outputs(course, exercise, students=list(merged.students), table=table, reports=reports,
                                   book=book, fmt=gradebook_format, roster=people, column=gradebook_column,
                                   repeated=merged.repeated)
    except OSError as exc:
        fail_setup(f"cannot write {exc.filename or book}: {exc.strerror}")
    shards = sorted({o.index for o in outputs})
    click.echo(f"merged {len(shards)} of {merged.count} shards from {len(folders)} folder{'s' * (len(folders) != 1)}: "
               f"{len(reports)} of {len(merged.students)} students graded")
    click.echo(f"gradebook {book}" + (f", class page {page}" if page else ""))
    say_rates_and_faults(course, exercise.id, reports, [])
    for title, rows in ((f"{len(merged.missing)} student{'s have' if len(merged.missing) != 1 else ' has'} no report "
                         "(no score in the gradebook):", [f"{one_line(s)}: {why}" for s, why in merged.missing]),
                        (f"{len(merged.duplicates)} student{'s were' if len(merged.duplicates) != 1 else ' was'} "
                         "graded in several folders (the first one's report is in the gradebook):",
                         [f"{one_line(s)}: {', '.join(map(one_line, where))}" for s, where in merged.duplicates])):
        if rows:
            click.echo(f"\n{title}", err=True)
            for row in rows[:LISTED]:
                click.echo(f"  {row}", err=True)
            if len(rows) > LISTED:
                click.echo(f"  ... and {len(rows) - LISTED} more", err=True)
    if merged.missing or merged.duplicates:
        sys.exit(EXIT_GRADER_FAULT)
    sys.exit(EXIT_PASSED if all(r.get("passed") for r in reports) else EXIT_FAILED)
