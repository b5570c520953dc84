"""Gradebooks an LMS imports: a real batch's grades written for Canvas, Moodle and Blackboard, each
read back by a parser written from that LMS's documented import rules (not from the writer), and a
roster that maps file names to people, with every student and roster entry that does not match said.

The rules each parser holds the file to:
- Canvas (its gradebook import, as the Canvas guides describe it): the columns Student, ID, SIS
  User ID, SIS Login ID, Section, in that order, then one column per assignment; an optional
  "Points Possible" row; a student named by ID, SIS User ID, SIS Login ID or name.
- Moodle (grade/import/csv: gradeimport_csv_load_data): headers are trimmed; the teacher maps one
  column to a user field (id, username, idnumber, email); a row whose identifier is empty is
  skipped; a grade "" or "-" is no grade, any other must be a number, and at most 100 by default.
- Blackboard (the Grade Center's "Upload grades" help): a header row; in a comma-delimited file
  every field in a quote character; every row needs the Username it matches on (else the upload
  fails); a grade column is `NAME [Total Pts: N Score] |ID`, where the ID routes it to an existing
  column and no ID makes a new one.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from grader.ci import gradebooks
from grader.ci.gradebooks import FORMULA, RosterError, match, read_roster
from tests.conftest import ROOT, Cli, MechanismOff, needs_fork, run_cli
from tests.helpers import gradebook_rows

SOLUTION = (ROOT / "solutions" / "exercise2.py").read_text()
WRONG = "dlogits = F.softmax(logits, 1)\ndlogits[range(n), Yb] -= 1\n"  # the 1/n missing
ROSTER = """Name,Student ID,Email,LMS ID,Section
Alice Smith,1001,alice@uni.edu,alice01,A
Bob Jones,1002,bob@uni.edu,bjones,A
Carol Chen,1003,carol@uni.edu,,B
Eve Adams,1005,eve@uni.edu,eadams,B
Frank Moore,1006,frank@uni.edu,fmoore,A
"""
# file -> (its text, the roster entry it is: by LMS id, by the email's name, by student id)
FILES = {"alice01.py": SOLUTION, "bob.py": WRONG, "1003.py": SOLUTION, "dave.py": WRONG, "=cmd.py": SOLUTION}
SCORE = {"Alice Smith": 1, "Bob Jones": 0, "Carol Chen": 1, "Eve Adams": 0}  # Eve's file cannot be read: 0


@dataclass(frozen=True)
class Batch:
    root: Path
    args: list[str]

    def run(self, *more: str) -> tuple[int, str, str]:
        result = run_cli([*self.args, *more])
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    """Six exercise-2 submissions graded once; each gradebook below is a rerun that grades nothing again."""
    root = tmp_path_factory.mktemp("gradebooks")
    subs = root / "subs"
    subs.mkdir()
    for name, text in FILES.items():
        (subs / name).write_text(text)
    (subs / "eve@uni.edu.py").write_bytes(b"dlogits = 1  # caf\xe9\n")
    (root / "roster.csv").write_text(ROSTER)
    batch = Batch(root, ["batch", "exercise2", *sorted(str(p) for p in subs.iterdir()), "--jobs", "2",
                         "--out", str(root / "out")])
    code, _, stderr = batch.run()
    assert code == 1, stderr
    return batch


def canvas_import(text: str) -> tuple[dict[str, float], list[dict[str, str | float | None]]]:
    """Points possible per assignment, and each student row, as Canvas's gradebook import reads them."""
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert header[:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"], header
    assignments = header[5:]
    assert assignments, "no assignment column"
    body, points = rows[1:], {}
    if body and body[0][0].strip() == "Points Possible":
        points = {a: float(v) for a, v in zip(assignments, body[0][5:], strict=True)}
        body = body[1:]
    students = []
    for row in body:
        assert len(row) == len(header), row
        assert any(row[:4]), f"a row that names no student: {row}"
        grades = {a: (float(v) if v.strip() else None) for a, v in zip(assignments, row[5:], strict=True)}
        students.append({**dict(zip(header[:5], row[:5], strict=True)), **grades})
    return points, students


def moodle_import(text: str, map_from: str, map_to: str, item: str) -> dict[str, float | None]:
    """The grades Moodle's CSV import takes, with the teacher's "map from" column and "map to" field."""
    assert map_to in ("userid", "username", "useridnumber", "useremail")
    rows = list(csv.reader(io.StringIO(text)))
    header = [h.strip() for h in rows[0]]
    who, grade = header.index(map_from), header.index(item)
    grades: dict[str, float | None] = {}
    for row in rows[1:]:
        if not row[who]:
            continue  # Moodle skips a row with a blank user field
        value = row[grade]
        if value.strip() in ("", "-"):
            grades[row[who]] = None
            continue
        number = float(value)  # anything else is Moodle's "badgrade"
        assert number <= 100, "over Moodle's default gradepointmax"
        grades[row[who]] = number
    return grades


BLACKBOARD_COLUMN = re.compile(r"(?P<name>.+) \[Total Pts: (?P<points>[0-9.]+) Score\](?: \|(?P<id>\d+))?")


def blackboard_import(text: str) -> tuple[dict[str, tuple[float, str | None]], dict[str, dict[str, float | None]]]:
    """Each grade column (points, column id or None for a new column), and each Username's grades, as the
    Grade Center's upload reads a comma-delimited file."""
    field = r'"(?:[^"]|"")*"'
    for line in text.splitlines():
        assert re.fullmatch(rf"{field}(?:,{field})*", line), f"a field not in quotes: {line}"
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    assert "Username" in header
    columns = {}
    for index, name in enumerate(header):
        found = BLACKBOARD_COLUMN.fullmatch(name)
        if found:
            columns[index] = (found["name"], float(found["points"]), found["id"])
    assert columns, "no grade column"
    grades = {}
    for row in rows[1:]:
        username = row[header.index("Username")]
        assert username, f"the upload fails: a row with no Username: {row}"
        grades[username] = {columns[i][0]: (float(row[i]) if row[i] else None) for i in columns}
    return {n: (p, i) for n, p, i in columns.values()}, grades


def roster_problems(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.split("disagree on", 1)[1].splitlines()[1:] if line.startswith("  ")]


@needs_fork
def test_gradebook_canvas_imports_with_the_roster(graded: Batch) -> None:
    """Canvas: each roster entry with its grade (no grade without a submission), points possible from the
    course, and every submission the roster does not know listed."""
    book = graded.root / "canvas.csv"
    code, stdout, stderr = graded.run("--gradebook-format", "canvas", "--roster", str(graded.root / "roster.csv"),
                                      "--gradebook", str(book))
    assert code == 1 and "(6 graded before)" in stdout
    points, students = canvas_import(book.read_text())
    assert points == {"exercise2": 1.0}
    assert {s["Student"]: s["exercise2"] for s in students} == {**SCORE, "Frank Moore": None}
    assert {s["Student"]: (s["SIS User ID"], s["SIS Login ID"], s["Section"]) for s in students}["Alice Smith"] == (
        "1001", "alice01", "A")
    assert roster_problems(stderr) == [
        "=cmd: not in the roster (no student id, LMS id or email is '=cmd')",
        "dave: not in the roster (no student id, LMS id or email is 'dave')",
        "Frank Moore (1006, fmoore, frank@uni.edu; roster line 6): no submission",
        f"(these 2 submissions without a roster entry are not in {book}: the reports are in the batch's folder)"]
    assert (graded.root / "class.html").is_file()  # the class page goes beside the gradebook


@needs_fork
@pytest.mark.parametrize(("map_from", "map_to", "key"), [("ID number", "useridnumber", "1001"),
                                                         ("Email address", "useremail", "alice@uni.edu"),
                                                         ("Username", "username", "alice01")])
def test_gradebook_moodle_imports_by_each_identifier(graded: Batch, map_from: str, map_to: str, key: str) -> None:
    """Moodle: mapped from any of its identifier columns, each student's grade lands on them; a roster entry
    with no submission has no grade."""
    book = graded.root / "moodle.csv"
    code, _, _ = graded.run("--gradebook-format", "moodle", "--roster", str(graded.root / "roster.csv"),
                            "--gradebook", str(book), "--gradebook-column", "Backprop ninja: cross-entropy")
    assert code == 1
    grades = moodle_import(book.read_text(), map_from, map_to, "Backprop ninja: cross-entropy")
    assert grades[key] == 1.0
    by_id = moodle_import(book.read_text(), "ID number", "useridnumber", "Backprop ninja: cross-entropy")
    assert by_id == {"1001": 1.0, "1002": 0.0, "1003": 1.0, "1005": 0.0, "1006": None}


@needs_fork
def test_gradebook_blackboard_imports_into_its_column(graded: Batch) -> None:
    """Blackboard: every field quoted, the column id routes the grades to the existing column, and the
    student whose roster entry has no LMS id (Blackboard's Username) is listed, not written."""
    book = graded.root / "blackboard.csv"
    code, _, stderr = graded.run("--gradebook-format", "blackboard", "--roster", str(graded.root / "roster.csv"),
                                 "--gradebook", str(book), "--gradebook-column", "Backprop 2 |4242")
    assert code == 1
    columns, grades = blackboard_import(book.read_text())
    assert columns == {"Backprop 2": (1.0, "4242")}
    assert {user: g["Backprop 2"] for user, g in grades.items()} == {"alice01": 1.0, "bjones": 0.0, "eadams": 0.0,
                                                                     "fmoore": None}
    assert "1003 = Carol Chen (1003, carol@uni.edu; roster line 4): the roster gives no LMS id, and Blackboard " \
           "matches on Username; add it to the roster" in roster_problems(stderr)


@needs_fork
def test_gradebook_without_a_roster_uses_the_file_names(graded: Batch) -> None:
    """No roster: a row per submission, named by its file, a file name a spreadsheet would run as a formula
    written as text; Blackboard gets a new column named after the exercise."""
    canvas = graded.root / "plain-canvas.csv"
    assert graded.run("--gradebook-format", "canvas", "--gradebook", str(canvas))[0] == 1
    _, students = canvas_import(canvas.read_text())
    assert {s["SIS Login ID"]: s["exercise2"] for s in students} == {
        "1003": 1.0, "'=cmd": 1.0, "alice01": 1.0, "bob": 0.0, "dave": 0.0, "eve@uni.edu": 0.0}
    board = graded.root / "plain-blackboard.csv"
    assert graded.run("--gradebook-format", "blackboard", "--gradebook", str(board))[0] == 1
    columns, grades = blackboard_import(board.read_text())
    assert columns == {"exercise2": (1.0, None)} and len(grades) == 6


@needs_fork
def test_gradebook_csv_writes_a_formula_file_name_as_text(graded: Batch) -> None:
    """The batch's own CSV gradebook, with or without a roster: a file name a spreadsheet would run as a
    formula (`=cmd.py`) is written as text, in its student and submission columns alike."""
    plain, with_roster = graded.root / "formula.csv", graded.root / "formula-roster.csv"
    assert graded.run("--gradebook", str(plain))[0] == 1
    assert graded.run("--gradebook", str(with_roster), "--roster", str(graded.root / "roster.csv"))[0] == 1
    for book in (plain, with_roster):
        rows = gradebook_rows(book)
        cells = [v for row in rows for v in row.values() if v]
        assert [v for v in cells if v.startswith(("=", "+", "-", "@"))] == [], book
        assert any(row["student"] == "'=cmd" and row["passed"] == "True" for row in rows), rows


@needs_fork
def test_gradebook_csv_gets_the_rosters_columns(graded: Batch) -> None:
    """csv with a roster: the batch's own columns and values kept, the roster's after `student`, and a row
    for the roster entry with no submission."""
    plain, with_roster = graded.root / "plain.csv", graded.root / "roster-book.csv"
    assert graded.run("--gradebook", str(plain))[0] == 1
    assert graded.run("--gradebook", str(with_roster), "--roster", str(graded.root / "roster.csv"))[0] == 1
    before = gradebook_rows(plain)
    after = gradebook_rows(with_roster)
    assert list(after[0])[:5] == ["student", "name", "student_id", "email", "lms_id"]
    for old in before:
        new = next(row for row in after if row["student"] == old["student"])
        assert {k: new[k] for k in old} == old
    assert {row["student"]: row["name"] for row in after if row["student"]}["bob"] == "Bob Jones"
    assert [(row["name"], row["error"]) for row in after if not row["student"]] == [("Frank Moore", "no submission")]


@needs_fork
@pytest.mark.parametrize(("roster", "words"), [
    ("Name,Phone\nAlice,123\n", "has no student id, email or LMS id column (its header: 'Name', 'Phone')"),
    ("name,student_id\nAlice,1001\nAlicia,1001\n", "lines 2 and 3 both have '1001'"),
    ("name,email\nAlice,\n", "line 2: no student id, email or LMS id for Alice"),
    (b"name,email\nJos\xe9,jose@uni.edu\n", "is not UTF-8 text"),
    ("", "is empty"),
])
def test_gradebook_bad_roster_stops_the_batch_before_grading(cli: Cli, tmp_path: Path, roster: str | bytes,
                                                             words: str) -> None:
    """A roster that cannot say who is who: one line, exit 2, nothing graded or written."""
    path = tmp_path / "roster.csv"
    path.write_bytes(roster.encode() if isinstance(roster, str) else roster)
    (tmp_path / "alice.py").write_text(SOLUTION)
    result = cli(["batch", "exercise2", str(tmp_path / "alice.py"), "--out",
                  str(tmp_path / "out"), "--roster", str(path)])
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_roster_matching_says_who_could_not_be_placed(tmp_path: Path) -> None:
    """Two files that are one student are both listed (neither is given the other's grade); an email's name
    matches only where it is no one else's."""
    path = tmp_path / "roster.csv"
    path.write_text("name,student_id,email,lms_id\nAlice,1001,alice@a.edu,alice01\n"
                    "Sam A,2001,sam@a.edu,\nSam B,2002,sam@b.edu,\n")
    matching = match(["alice01", "1001", "sam", "sam@b.edu", "ALICE@A.EDU"], read_roster(path))
    assert [(s, p.name) for s, p in matching.people] == [("sam@b.edu", "Sam B")]
    assert matching.not_in_roster == ("sam",)
    assert [(p.name, names) for p, names in matching.shared] == [("Alice", ("alice01", "1001", "ALICE@A.EDU"))]
    assert [p.name for p in matching.no_submission] == ["Sam A"]
    assert set(matching.unmatched) == {"sam", "alice01", "1001", "ALICE@A.EDU"}


def test_a_repeated_name_never_takes_the_grade_of_a_roster_entry_its_id_happens_to_be(
        tmp_path: Path, mechanism_off: MechanismOff) -> None:
    """Three sections each hand in an alice.py; the second is alice-2 to the batch, but the roster's alice-2
    is someone else, who handed in nothing. No alice is credited to her, in one batch, in shards merged or
    in a shard that holds one alice alone: each matches the roster's alice, said for the instructor to tell
    apart, and alice-2 has no grade."""
    for section, source in (("sec1", ""), ("sec2", SOLUTION), ("sec3", SOLUTION)):
        (tmp_path / section).mkdir()
        (tmp_path / section / "alice.py").write_text(source)
    roster = tmp_path / "roster.csv"
    roster.write_text("name,student_id,email\nAlice Smith,alice,alice@uni.edu\nAlice Two,alice-2,two@uni.edu\n")
    subs = [str(tmp_path / section / "alice.py") for section in ("sec1", "sec2", "sec3")]
    book = ["--roster", str(roster), "--gradebook-format", "canvas"]

    def neither_alice_is_alice_two(out: Path, stderr: str, name: str = "gradebook.csv",
                                   said: str = "alice, alice-2 (handed in as alice), alice-3 (handed in as alice): "
                                               "all match Alice Smith") -> None:
        rows = {r["SIS User ID"]: r for r in csv.DictReader(io.StringIO((out / name).read_text()))}
        assert rows["alice-2"]["exercise2"] == "", rows  # Alice Two: no grade
        assert "alice" not in rows, rows  # which alice is Alice Smith is the instructor's to say
        assert said in stderr, stderr

    def a_shard_with_one_alice() -> None:  # alice-3 is shard 0's alone; alice and alice-2 are shard 1's
        result = run_cli(["batch", "exercise2", *subs, "--out", str(tmp_path / "alone"), "--jobs", "1",
                          "--shard", "0/2", *book])
        neither_alice_is_alice_two(tmp_path / "alone", result.stderr, "gradebook-shard-0-of-2.csv",
                                   "alice-3 (handed in as alice): matches Alice Smith (alice, alice@uni.edu; "
                                   "roster line 2), as do the class's other submissions named alice")

    def one_batch() -> None:
        out = tmp_path / "out"
        result = run_cli(["batch", "exercise2", *subs, "--out", str(out), "--jobs", "1", *book])
        neither_alice_is_alice_two(out, result.stderr)

    def shards_merged() -> None:
        for i in (0, 1):
            run_cli(["batch", "exercise2", *subs, "--out", str(tmp_path / f"shard{i}"), "--jobs", "1",
                     "--shard", f"{i}/2"])
        result = run_cli(["merge", str(tmp_path / "shard0"), str(tmp_path / "shard1"), "--out",
                          str(tmp_path / "merged"), *book])
        neither_alice_is_alice_two(tmp_path / "merged", result.stderr)

    one_batch()
    shards_merged()
    a_shard_with_one_alice()
    for check in (one_batch, shards_merged):
        mechanism_off(check, lambda m: m.setattr("grader.ci.batch.repeated_names", lambda subs: {}),
                      "matching a repeated name by the name it was handed in under")
    mechanism_off(a_shard_with_one_alice, lambda m: m.setattr("grader.ci.gradebooks.met_again", lambda repeated: set()),
                  "counting the names met again in other shards")


def test_roster_missing_file_is_one_line(tmp_path: Path) -> None:
    """A roster path that is not there says so."""
    with pytest.raises(RosterError, match="cannot read the roster"):
        read_roster(tmp_path / "nope.csv")


@needs_fork
def test_gradebook_reports_are_the_scores(graded: Batch) -> None:
    """The grades the LMS files carry are the reports' scores (what each file deserves, above)."""
    out = graded.root / "out"
    scores = {p.stem: json.loads(p.read_text())["score"] for p in out.glob("*.json")}
    assert scores == {"alice01": 1, "bob": 0, "1003": 1, "dave": 0, "=cmd": 1, "eve@uni.edu": 0}


@needs_fork
@pytest.mark.parametrize(("fmt", "login"), [("canvas", "SIS Login ID"), ("moodle", "Username"),
                                            ("blackboard", "Username")])
def test_lms_gradebook_without_a_roster_never_writes_a_made_up_login(tmp_path: Path, fmt: str, login: str,
                                                                     mechanism_off: MechanismOff) -> None:
    """Two sections hand in an alice.py: without a roster neither is written as the LMS login alice (which
    alice is she?) nor alice-2 (someone else's login, perhaps); both are listed on stderr, carol is written."""
    for section in ("sec1", "sec2"):
        (tmp_path / section).mkdir()
        (tmp_path / section / "alice.py").write_text(SOLUTION)
    (tmp_path / "carol.py").write_text(WRONG)
    args = ["batch", "exercise2", str(tmp_path / "sec1" / "alice.py"), str(tmp_path / "sec2" / "alice.py"),
            str(tmp_path / "carol.py"), "--jobs", "1", "--out", str(tmp_path / "out"), "--gradebook-format", fmt]

    def no_made_up_login() -> None:
        result = run_cli(args)
        assert result.exit_code == 1, result.output
        book = (tmp_path / "out" / "gradebook.csv").read_text()
        logins = [row[login] for row in csv.DictReader(io.StringIO(book))]
        assert "carol" in logins and not {"alice", "alice-2"} & set(logins), book
        assert "alice: more than one submission is named alice" in result.stderr, result.stderr
        assert "alice-2 (handed in as alice): more than one submission is named alice" in result.stderr

    no_made_up_login()
    mechanism_off(no_made_up_login, lambda m: m.setattr("grader.ci.gradebooks.namesakes_of", lambda s, r: set()),
                  "leaving namesakes out of an LMS gradebook without a roster")


@needs_fork
def test_gradebook_csv_roster_columns_go_to_the_submission_not_its_escaped_cell(
        tmp_path: Path, mechanism_off: MechanismOff) -> None:
    """@jsmith.py and '@jsmith.py both show as '@jsmith in the CSV; only @jsmith's row gets Jane Smith's
    name, and '@jsmith (in no roster) gets none."""
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "@jsmith.py").write_text(SOLUTION)
    (tmp_path / "subs" / "'@jsmith.py").write_text(WRONG)
    roster = tmp_path / "roster.csv"
    roster.write_text("name,email,lms_id\nJane Smith,jane@uni.edu,@jsmith\n")
    args = ["batch", "exercise2", str(tmp_path / "subs" / "@jsmith.py"), str(tmp_path / "subs" / "'@jsmith.py"),
            "--jobs", "1", "--out", str(tmp_path / "out"), "--roster", str(roster)]

    def jane_once() -> None:
        run_cli(args)
        rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "gradebook.csv").read_text())))
        assert sorted((r["student"], r["name"], r["score"]) for r in rows) == [
            ("'@jsmith", "", "0"), ("'@jsmith", "Jane Smith", "1")], rows

    def reparsed(table: str, matching: Any, students: list[str]) -> str:
        cells = [row[0] for row in csv.reader(io.StringIO(table))][1:]
        guessed = [c[1:] if c[:1] == "'" and c[1:].startswith(FORMULA) else c for c in cells]
        return real(table, matching, guessed)

    real = gradebooks.with_roster
    jane_once()
    mechanism_off(jane_once, lambda m: m.setattr(gradebooks, "with_roster", reparsed),
                  "carrying each row's student id to the roster")
