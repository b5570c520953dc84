"""`ninja-grade class-report`, and what `batch` writes after its reports: the gradebook in the chosen
format and the class page beside it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from grader.ci.gradebooks import Roster, RosterError, batch_gradebook, read_roster
from grader.cli.common import EXIT_PASSED, course_or_exit, fail_setup
from grader.courseware.course import Course, Exercise
from grader.files import write_atomic
from grader.reporting.formats import one_line


@click.command(name="class-report", short_help="One page of what a batch's class gets wrong, and why.")
@click.argument("reports_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Where to write the page (default: REPORTS_DIR/class.html).")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True), default=None,
              help="Also write the same numbers as JSON to this file ('-': to stdout).")
@click.option("--exercise", default=None, help="Count this exercise's reports (when the folder holds several).")
@click.pass_context
def class_report_command(ctx: click.Context, reports_dir: Path, out: Path | None, json_path: Path | None,
                         exercise: str | None) -> None:
    """Count the JSON reports in REPORTS_DIR (as `ninja-grade batch --out` writes them) into one
    self-contained HTML page: the scores, the pass rate of each gradient in backprop order, which
    mistakes (diagnoses) the wrong answers are, the three commonest with what a student was told
    and an anonymised line of code, the first wrong gradient of each student, and exercise 4's
    training runs. The page names no student."""
    from grader.ci.class_page import class_html, class_json
    from grader.ci.class_report import ClassReportError, class_report, exercise_of, read_reports

    course = course_or_exit(ctx)
    if not reports_dir.is_dir():
        fail_setup(f"{reports_dir} is not a folder: give the folder of JSON reports a batch wrote (its --out)")
    reports, skipped = read_reports(reports_dir)
    try:
        chosen = exercise_of(course, reports, exercise)
    except ClassReportError as exc:
        skipping = f" (skipped {len(skipped)} files that are not reports)" if skipped else ""
        fail_setup(f"{reports_dir}: {exc}{skipping}")
    if skipped:
        what = "file that is not a grading report" if len(skipped) == 1 else "files that are not grading reports"
        names = ", ".join(one_line(name) for name in skipped[:5])
        click.echo(f"skipped {len(skipped)} {what}: {names}" + (" ..." if len(skipped) > 5 else ""),
                   err=True)
    counted = class_report(course, chosen.id, reports, base=reports_dir.parent)
    page = out or reports_dir / "class.html"
    try:
        write_atomic(page, class_html(counted))
        if json_path is not None and str(json_path) != "-":
            write_atomic(json_path, class_json(counted))
    except OSError as exc:
        fail_setup(f"cannot write {exc.filename or page}: {exc.strerror}")
    if json_path is not None and str(json_path) == "-":
        click.echo(class_json(counted), nl=False)
    click.echo(f"wrote {page}: {counted.students} {chosen.id} reports, {counted.passed} passing"
               + (f"; JSON in {json_path}" if json_path is not None and str(json_path) != "-" else ""),
               err=json_path is not None and str(json_path) == "-")
    sys.exit(EXIT_PASSED)


def roster_or_exit(roster: Path | None) -> Roster | None:
    """The batch's --roster, read before anyone is graded: a bad one is one line, exit 2."""
    if roster is None:
        return None
    try:
        return read_roster(roster)
    except RosterError as exc:
        fail_setup(str(exc))


def write_batch_outputs(course: Course, exercise: Exercise, *, students: list[str], table: str,
                        reports: list[dict[str, Any]], book: Path, fmt: str, roster: Roster | None,
                        column: str | None, page: bool = True, repeated: dict[str, str] | None = None) -> Path | None:
    """After a batch: its gradebook at `book` in `fmt` (the batch's CSV `table` as it is for csv),
    each student and roster entry it could not place said on stderr, and, with `page`, the class page
    beside the gradebook (its path; None when it could not be made, which is said, or not asked for)."""
    from grader.ci.class_page import class_html
    from grader.ci.class_report import class_report

    written = batch_gradebook(fmt, exercise, table=table, reports=reports, students=students, roster=roster,
                              column=column, repeated=repeated)
    write_atomic(book, written.text)
    if written.left_out:
        where = f"the roster {roster.source} and the submissions" if roster is not None else "the submissions"
        click.echo(f"\n{where} disagree on {len(written.left_out)}:", err=True)
        for line in written.left_out:  # each names a submission: its id is a file's name, as odd as a student made it
            click.echo(f"  {one_line(line)}", err=True)
    if written.unplaced:
        many = written.unplaced > 1
        click.echo(f"  ({'these' if many else 'this'} {written.unplaced} submission{'s' * many} without a roster "
                   f"entry {'are' if many else 'is'} not in {book}: the reports are in the batch's folder)", err=True)
    if not page:
        return None
    class_page = book.parent / "class.html"
    try:
        counted = class_report(course, exercise.id, reports, ungraded=len(students) - len(reports))
        write_atomic(class_page, class_html(counted))
    except OSError as exc:
        click.echo(f"could not write the class page {class_page}: {exc.strerror}", err=True)
        return None
    except Exception as exc:  # the page is the grader's own extra: its failure must not cost the batch's ending
        click.echo(f"could not make the class page ({type(exc).__name__}: {exc}); the reports and the gradebook "
                   "are written: ninja-grade class-report on the reports' folder tries again", err=True)
        return None
    return class_page
