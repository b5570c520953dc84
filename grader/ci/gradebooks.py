"""Gradebooks an LMS imports, and the roster that says who each submission is.

A submission's student id is its file's or folder's name. A roster (CSV: name, student id,
email, LMS id; the LMS id is the student's login there: Canvas's SIS Login ID, Moodle's
username, Blackboard's Username) maps those names to people: a name matches the roster entry
whose student id, LMS id or email it equals, or the part of the email before the @ where that
is no one else's (letter case aside). Every student and every roster entry ends up somewhere
said: in the gradebook, or in one of the lists `Matching` keeps (not in the roster, an entry
several submissions match, no submission), which the batch prints. Nothing is dropped silently.

Each format follows its LMS's documented import:
- csv: the batch's own gradebook (one row per submission, a column per gradient), with the
  roster's columns after `student` when there is a roster;
- canvas: Student, ID, SIS User ID, SIS Login ID, Section, then the assignment column, with a
  "Points Possible" row first (Canvas matches a student by ID, SIS User ID or SIS Login ID);
- moodle: an identifier column for each of Moodle's "map from" choices (ID number, Email
  address, Username), the full name, then the grade item's column; an empty grade is no grade;
- blackboard: Last Name, First Name, Username, Student ID, then the grade column as the Grade
  Center names one, `NAME [Total Pts: N Score] |COLUMN_ID` (no `|ID`: a new column), every
  field in double quotes; Blackboard matches on Username, so a row needs one.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.courseware.course import Exercise
from grader.judging.results import plain_number

FORMATS = ("csv", "canvas", "moodle", "blackboard")
HEADERS = {  # a roster's column -> what it may be called (compared lower-case, spaces and dashes as _)
    "name": ("name", "full_name", "student_name", "student"),
    "first_name": ("first_name", "given_name", "firstname"),
    "last_name": ("last_name", "surname", "family_name", "lastname"),
    "student_id": ("student_id", "studentid", "student_number", "id", "sis_id", "sis_user_id", "id_number"),
    "email": ("email", "e_mail", "email_address", "mail"),
    "lms_id": ("lms_id", "lms", "username", "user_name", "login", "login_id", "sis_login_id"),
    "section": ("section",),
}
IDENTIFIERS = ("student_id", "lms_id", "email")
FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a cell starting so is a formula to a spreadsheet


class RosterError(Exception):
    """A roster that cannot be used: said in one line, before anyone is graded."""


@dataclass(frozen=True)
class Person:
    """One roster entry."""

    name: str
    student_id: str = ""
    email: str = ""
    lms_id: str = ""
    section: str = ""
    first_name: str = ""
    last_name: str = ""
    row: int = 0  # its line in the roster file

    @property
    def keys(self) -> frozenset[str]:
        """The identifiers a submission's name may equal to be this person's (compared in lower case)."""
        return frozenset(k.strip().casefold() for k in (self.student_id, self.lms_id, self.email) if k.strip())

    @property
    def email_name(self) -> str:
        """The part of the email before the @, which a file may be named after too."""
        return self.email.split("@", 1)[0].strip().casefold() if "@" in self.email else ""

    @property
    def label(self) -> str:
        ids = ", ".join(v for v in (self.student_id, self.lms_id, self.email) if v)
        return f"{self.name or '(no name)'} ({ids}; roster line {self.row})"

    def split_name(self) -> tuple[str, str]:
        """(last, first): the roster's own columns when it has them, else the name at its last space."""
        if self.last_name or self.first_name:
            return self.last_name, self.first_name
        first, _, last = self.name.strip().rpartition(" ")
        return (last, first) if first else (self.name.strip(), "")


@dataclass(frozen=True)
class Roster:
    people: tuple[Person, ...]
    source: str

    def lookup(self) -> dict[str, Person]:
        """Name -> person: every identifier, and each email's name where it is no one else's."""
        found = {key: person for person in self.people for key in person.keys}
        names = Counter(p.email_name for p in self.people if p.email_name)
        for person in self.people:
            if person.email_name and names[person.email_name] == 1:
                found.setdefault(person.email_name, person)
        return found


def read_roster(path: Path) -> Roster:
    """The roster at `path`; a RosterError says in one line what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise RosterError(f"the roster {path} is not UTF-8 text: save it as CSV UTF-8") from None
    except OSError as exc:
        raise RosterError(f"cannot read the roster {path}: {exc.strerror or exc}") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise RosterError(f"the roster {path} is empty: it needs a header row (name, student id, email, LMS id)")
    columns: dict[str, int] = {}
    for index, header in enumerate(rows[0]):
        key = re.sub(r"[\s\-]+", "_", header.strip().casefold())
        for column, names in HEADERS.items():
            if key in names and column not in columns:
                columns[column] = index
    if not any(c in columns for c in IDENTIFIERS):
        found = ", ".join(repr(h) for h in rows[0][:6])
        raise RosterError(f"the roster {path} has no student id, email or LMS id column (its header: {found}); "
                          "name them e.g. student_id, email, lms_id")
    people: list[Person] = []
    owner: dict[str, Person] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {c: row[i].strip() if i < len(row) else "" for c, i in columns.items()}
        name = values.get("name") or " ".join(v for v in (values.get("first_name"), values.get("last_name")) if v)
        person = Person(name=name, student_id=values.get("student_id", ""), email=values.get("email", ""),
                        lms_id=values.get("lms_id", ""), section=values.get("section", ""),
                        first_name=values.get("first_name", ""), last_name=values.get("last_name", ""), row=number)
        if not person.keys:
            raise RosterError(f"the roster {path}, line {number}: no student id, email or LMS id for {name or 'it'}")
        for key in person.keys:
            if key in owner and owner[key] is not person:
                raise RosterError(f"the roster {path}: lines {owner[key].row} and {number} both have {key!r}; "
                                  "each student id, email and LMS id must be one person's")
            owner[key] = person
        people.append(person)
    return Roster(tuple(people), str(path))


@dataclass(frozen=True)
class Matching:
    """Who each submission is, and everything that did not match, to be said."""

    people: tuple[tuple[str, Person], ...]  # student (a submission's name) -> roster entry
    not_in_roster: tuple[str, ...] = ()
    shared: tuple[tuple[Person, tuple[str, ...]], ...] = ()  # an entry several submissions match
    no_submission: tuple[Person, ...] = ()
    repeated: dict[str, str] = field(default_factory=dict)  # an id made from a name met before -> that name

    @property
    def unmatched(self) -> tuple[str, ...]:
        """The submissions that are in no LMS gradebook, for want of a person."""
        return (*self.not_in_roster, *(s for _, names in self.shared for s in names))

    def problems(self) -> list[str]:
        """Each student and roster entry not in the gradebook, one line each, to print."""
        lines = [f"{s}: not in the roster (no student id, LMS id or email is {s!r})" for s in self.not_in_roster]
        lines += [f"{', '.join(self._said(n) for n in names)}: {'all match' if len(names) > 1 else 'matches'} "
                  f"{person.label}{self._others(names)}; rename all but one" for person, names in self.shared]
        lines += [f"{person.label}: no submission" for person in self.no_submission]
        return lines

    def _others(self, names: tuple[str, ...]) -> str:
        """Where submissions of the same name are not all among these (another shard has the rest)."""
        named = {self.repeated.get(n, n).casefold(): self.repeated.get(n, n) for n in names}
        ids = {n.casefold() for n in names}
        rest = [i for i, name in self.repeated.items() if name.casefold() in named and i.casefold() not in ids]
        rest += [name for key, name in named.items() if key not in ids]  # the first of that name keeps it as its id
        return f", as do the class's other submissions named {', '.join(named.values())}" if rest else ""

    def _said(self, student: str) -> str:
        named = self.repeated.get(student)
        return f"{student} (handed in as {named})" if named else student


def met_again(repeated: dict[str, str]) -> set[str]:
    """The names (in lower case) more than one submission of the whole class was handed in under, every
    shard's: a roster entry one of them matches is not that one's alone, whichever shard has the others."""
    return {name.strip().casefold() for name in repeated.values()}


def match(students: Iterable[str], roster: Roster, repeated: dict[str, str] | None = None) -> Matching:
    """Match each submission's name to a roster entry (Roster.lookup). An id made from a name met before
    (`repeated`: id -> that name, from batch.repeated_names) is matched by that name, never by itself:
    two files named alice are both alice's, for the instructor to tell apart, and neither is alice-2's."""
    by_key = roster.lookup()
    found: dict[int, list[str]] = {}  # id(person) -> the submissions that are theirs
    not_in = []
    repeated = repeated or {}
    names_met_again = met_again(repeated)
    ambiguous: set[int] = set()
    for student in students:
        key = repeated.get(student, student).strip().casefold()
        person = by_key.get(key)
        if person is None:
            not_in.append(student)
        else:
            found.setdefault(id(person), []).append(student)
            if key in names_met_again:  # one of several of that name, though only it may be in this shard
                ambiguous.add(id(person))
    people_of = {id(p): p for p in roster.people}
    matched = [(names[0], people_of[pid]) for pid, names in found.items() if len(names) == 1 and pid not in ambiguous]
    shared = [(people_of[pid], tuple(names)) for pid, names in found.items() if len(names) > 1 or pid in ambiguous]
    no_submission = tuple(p for p in roster.people if id(p) not in found)
    return Matching(tuple(sorted(matched, key=lambda sp: sp[1].row)), tuple(not_in), tuple(shared), no_submission,
                    repeated)


@dataclass(frozen=True)
class Row:
    """One line of a gradebook: who, and the score (None: no grade, e.g. no report or no submission)."""

    student: str  # the submission's name, "" for a roster entry with no submission
    person: Person | None
    score: float | None


@dataclass(frozen=True)
class Gradebook:
    """A gradebook's text, and what could not go into it."""

    text: str
    left_out: tuple[str, ...] = field(default=())  # one line each: who, and why
    unplaced: int = 0  # submissions not in the file for want of a roster entry (their reports still are)


def batch_gradebook(fmt: str, exercise: Exercise, *, table: str, reports: list[dict[str, Any]],
                    students: list[str], roster: Roster | None, column: str | None = None,
                    repeated: dict[str, str] | None = None) -> Gradebook:
    """The gradebook a batch writes: its CSV `table` (with the roster's columns, given one) for csv, else
    the LMS file from the reports' scores (no report: no grade); with every mismatch said."""
    matching = match(students, roster, repeated) if roster is not None else None
    problems = tuple(matching.problems()) if matching is not None else ()
    if fmt == "csv":
        return Gradebook(with_roster(table, matching, students) if matching is not None else table, problems)
    graded = {str(r.get("student")): r.get("score") for r in reports}
    scores = {s: float(v) if isinstance(v := graded.get(s), int | float) else None for s in students}
    if matching is None:  # the id is the LMS login: never one made up to tell namesakes apart
        namesakes = namesakes_of(students, repeated or {})
        problems = tuple(namesake_lines([s for s in students if s in namesakes], repeated or {}))
        scores = {s: v for s, v in scores.items() if s not in namesakes}
    book = lms_gradebook(fmt, exercise, scores, matching, column)
    return Gradebook(book.text, (*problems, *book.left_out), len(matching.unmatched) if matching is not None else 0)


def namesakes_of(students: Iterable[str], repeated: dict[str, str]) -> set[str]:
    """The ids of a name more than one submission of the whole class was handed in under, every shard's:
    the made-up ones (alice-2) and the one that kept the name (alice), which is no more alice's than they."""
    names = met_again(repeated)
    return {s for s in students if s in repeated or s.strip().casefold() in names}


def namesake_lines(namesakes: Iterable[str], repeated: dict[str, str]) -> list[str]:
    """One line for each submission an LMS gradebook without a roster leaves out for its name (namesakes_of)."""
    return [f"{s}{f' (handed in as {repeated[s]})' if s in repeated else ''}: more than one submission is named "
            f"{repeated.get(s, s)}, so none is given to that LMS login; give a --roster, or rename all but one"
            for s in namesakes]


def rows_for(scores: dict[str, float | None], matching: Matching | None) -> list[Row]:
    """The rows of an LMS gradebook: every matched submission (every submission, without a roster),
    and every roster entry with no submission, with no grade."""
    if matching is None:
        return [Row(student, None, score) for student, score in scores.items()]
    return ([Row(student, person, scores.get(student)) for student, person in matching.people]
            + [Row("", person, None) for person in matching.no_submission])


def lms_gradebook(fmt: str, exercise: Exercise, scores: dict[str, float | None], matching: Matching | None,
                  column: str | None = None) -> Gradebook:
    """The gradebook of an LMS format for `scores` (student -> score, None: not graded)."""
    rows = rows_for(scores, matching)
    column = column or exercise.id
    out = io.StringIO()
    left_out: list[str] = []
    points = plain_number(exercise.max_score)
    if fmt == "canvas":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column])
        writer.writerow(["Points Possible", "", "", "", "", points])
        for row in rows:
            p = row.person
            writer.writerow([_cell(p.name if p else row.student), "", _cell(p.student_id if p else ""),
                             _cell(p.lms_id if p else row.student), _cell(p.section if p else ""), _score(row.score)])
    elif fmt == "moodle":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["ID number", "Email address", "Username", "Full name", column])
        for row in rows:
            p = row.person
            writer.writerow([_cell(p.student_id if p else ""), _cell(p.email if p else ""),
                             _cell(p.lms_id if p else row.student), _cell(p.name if p else row.student),
                             _score(row.score)])
    elif fmt == "blackboard":
        name, _, column_id = column.rpartition("|") if "|" in column else (column, "", "")
        header = f"{name.strip()} [Total Pts: {points} Score]" + (f" |{column_id.strip()}" if column_id.strip() else "")
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow(["Last Name", "First Name", "Username", "Student ID", header])
        for row in rows:
            p = row.person
            username = p.lms_id if p else row.student
            if not username:
                assert p is not None
                who = f"{row.student} = {p.label}" if row.student else p.label
                left_out.append(f"{who}: the roster gives no LMS id, and Blackboard matches on Username; add it "
                                "to the roster")
                continue
            last, first = p.split_name() if p else (row.student, "")
            writer.writerow([_cell(last), _cell(first), _cell(username), _cell(p.student_id if p else ""),
                             _score(row.score)])
    else:
        raise ValueError(f"not an LMS format: {fmt!r}")
    return Gradebook(out.getvalue(), tuple(left_out))


def with_roster(table: str, matching: Matching, students: list[str]) -> str:
    """The batch's CSV gradebook (a row per student of `students`, in that order) with the roster's columns
    after `student`, and a row for each roster entry with no submission. Rows are matched by position, never
    by their escaped cell: '@jsmith is what both @jsmith and '@jsmith are shown as."""
    rows = list(csv.reader(io.StringIO(table)))
    if not rows:
        return table
    header, body = rows[0], rows[1:]
    if len(body) != len(students):
        raise ValueError(f"a gradebook of {len(body)} rows for {len(students)} students")
    person_of = dict(matching.people)
    extra = ["name", "student_id", "email", "lms_id"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([header[0], *extra, *header[1:]])
    for student, row in zip(students, body, strict=True):
        p = person_of.get(student)
        writer.writerow([row[0] if row else "", *([_cell(p.name), _cell(p.student_id), _cell(p.email), _cell(p.lms_id)]
                                                  if p else ["", "", "", ""]), *row[1:]])
    error = header.index("error") if "error" in header else None
    for p in matching.no_submission:
        rest = ["" for _ in header[1:]]
        if error is not None:
            rest[error - 1] = "no submission"
        writer.writerow(["", _cell(p.name), _cell(p.student_id), _cell(p.email), _cell(p.lms_id), *rest])
    return out.getvalue()


def _score(score: float | None) -> str:
    return "" if score is None else str(plain_number(score))


def spreadsheet_cell(text: str) -> str:
    """Text as a spreadsheet shows it, never as a formula (a file name is the student's to choose)."""
    return f"'{text}" if text.startswith(FORMULA) else text


_cell = spreadsheet_cell  # the short name this module's writers use
