"""The real CLI, through click's CliRunner and as a process of its own: output, JSON contract, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import grader
import grader.pipeline
from grader.courseware.course import Course
from grader.courseware.data import Dataset
from grader.courseware.draw import replay
from tests.conftest import ROOT, SUBMISSIONS, Cli, MechanismOff
from tests.helpers import assert_setup_error, assert_shaped_as, design_json_examples

SOLUTION = str(ROOT / "solutions" / "exercise1.py")


def test_cli_solution_passes_with_exit_0(cli: Cli) -> None:
    """Grading the solution prints cmp-like lines and a full score, exit 0."""
    result = cli(["exercise1", SOLUTION])
    assert result.exit_code == 0, result.output
    assert "26/26 gradients correct" in result.output
    assert "dlogprobs       | exact: True  | approximate: True  | maxdiff: 0" in result.output


def test_cli_stub_is_all_missing_with_hint_and_exit_1(cli: Cli) -> None:
    """The untouched stub (the default submission) is all missing, with a hint, exit 1."""
    result = cli(["exercise1"])
    assert result.exit_code == 1
    assert result.output.count("| missing") == 26
    assert "0/26 gradients correct" in result.output
    assert "Nothing written yet" in result.output and "dlogprobs" in result.output
    assert "Traceback" not in result.output


def test_cli_json_is_the_design_contract(cli: Cli, tmp_path: Path, course: Course, dataset: Dataset) -> None:
    """--format json prints one object and nothing else: every field docs/DESIGN.md's example shows and
    no other, at every level (gradients, cases, draw, environment and its sandbox), with the example's
    values for a right gradient and a wrong one; a print that looks like a report is kept apart, in
    output."""
    sub = tmp_path / "printy.py"
    source = Path(SOLUTION).read_text().replace("dprobs = (1.0 / probs)", "dprobs = -(1.0 / probs)")
    sub.write_text(source + "\nprint('{\"passed\": true}')\n")
    result = cli(["exercise1", str(sub), "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    documented = design_json_examples()[0]
    assert_shaped_as(documented, report)
    assert (report["exercise"], report["submission"], report["passed"]) == ("exercise1", str(sub), False)
    assert (report["score"], report["max_score"]) == (documented["score"], documented["max_score"]) == (25, 26)
    assert report["output"].strip() == '{"passed": true}' and report["notes"] == []
    lines = source.splitlines()
    right, wrong = report["gradients"][0], report["gradients"][1]
    assert right == {"name": "dlogprobs", "tensor": "logprobs", "status": "exact", "chained": "exact", "exact": True,
                     "approximate": True, "maxdiff": 0.0, "message": "", "diagnosis": None, "points": 1, "score": 1,
                     "line": lines.index("dlogprobs[range(n), Yb] = -1.0 / n") + 1, "case": None,
                     "judged": "isolated", "isolated": "exact", "blame": None, "missing_branches": []}
    assert right == documented["gradients"][0]
    decided = {k: v for k, v in wrong.items() if k not in ("maxdiff", "message")}
    assert decided == {
        "name": "dprobs", "tensor": "probs", "status": "wrong", "chained": "wrong", "exact": False,
        "approximate": False, "diagnosis": "sign", "points": 1, "score": 0,
        "line": next(i for i, x in enumerate(lines, 1) if x.startswith("dprobs = -(1.0 / probs)")),
        "case": course.cases[0].name, "judged": "isolated", "isolated": "wrong", "blame": None,
        "missing_branches": []}
    assert decided == {k: v for k, v in documented["gradients"][1].items() if k not in ("maxdiff", "message")}
    said = documented["gradients"][1]["message"].split(" (maxdiff")[0]  # the example's words, before its numbers
    assert wrong["maxdiff"] > 1 and wrong["message"].startswith(said) and "opposite sign" in said
    assert [c["name"] for c in report["cases"][:len(course.cases)]] == [c.name for c in course.cases]
    assert report["cases"][0] == documented["cases"][0]  # the pinned lecture case, as documented
    assert len(report["cases"]) == len(course.cases) + course.fresh.count
    assert all(c["fresh"] and c["name"] == f"fresh batch of {c['batch_size']} (seed {c['seed']})"
               for c in report["cases"][len(course.cases):])
    assert report["draw"]["drawn"] == documented["draw"]["drawn"] == "fresh"
    assert report["draw"]["training_seed"] is documented["draw"]["training_seed"] is None
    assert report["environment"]["sandbox"]["protocol"] == documented["environment"]["sandbox"]["protocol"]
    model = grader.pipeline.grade(course, "exercise1", sub, None if dataset.synthetic else dataset.source,
                                       draw=replay(report, course, course.exercise("exercise1"))).to_dict()
    assert report["gradients"] == model["gradients"]  # the results model's to_dict, field for field


def test_cli_version_is_the_package_version(cli: Cli) -> None:
    """`ninja-grade --version` prints grader.__version__, which is the version pyproject.toml reads and the
    newest release CHANGELOG.md names."""
    result = cli(["--version"])
    assert result.exit_code == 0 and result.stdout == f"ninja-grade, version {grader.__version__}\n"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]$', pyproject, re.MULTILINE)
    assert re.search(r'^version = \{attr = "grader.__version__"\}$', pyproject, re.MULTILINE)
    releases = re.findall(r"^## \[(\d[^\]]*)\] - \d{4}-\d{2}-\d{2}$", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert releases[0] == grader.__version__


def test_cli_json_of_failing_submission_exit_1(cli: Cli) -> None:
    """A failing submission in JSON: passed false, per-gradient statuses, exit 1."""
    result = cli(["exercise2", "--format", "json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["passed"] is False and report["score"] == 0 and report["max_score"] == 1
    assert report["gradients"][0]["status"] == "missing"


def test_cli_unknown_exercise_lists_valid_ones_exit_2(cli: Cli) -> None:
    """An unknown exercise is a usage error that lists the real ones."""
    result = cli(["exercise9"])
    assert_setup_error(result, "no exercise or command 'exercise9'", "exercise1, exercise2, exercise3")


@pytest.mark.parametrize("bad", ["does_not_exist.py", "."])
def test_cli_unreadable_submission_exit_2(cli: Cli, bad: str) -> None:
    """A missing file or a directory is a one-line set-up error, exit 2."""
    assert_setup_error(cli(["exercise1", bad]), bad)


def test_cli_non_utf8_submission_exit_2(cli: Cli, tmp_path: Path) -> None:
    """A submission that is not UTF-8 text is refused in one line."""
    sub = tmp_path / "latin1.py"
    sub.write_bytes(b"dlogits = None  # caf\xe9\n")
    assert_setup_error(cli(["exercise2", str(sub)]), "not UTF-8")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("exercises: [", "not valid YAML at line"),
        ("cases: []\nexercises: []\n", "cases must be a non-empty list"),
        ("cases: [{name: a, seed: 1, batch_size: 8}]\nexercises:\n  - {id: x, title: t, stub: nope.py,"
         " solution: nope.py, start: s, gradients: [{name: dC, tensor: C}]}\n", "no forward file: name one with"),
        ("forward: nope.py\ncases: [{name: a, seed: 1, batch_size: 8}]\nexercises:\n  - {id: x, title: t, "
         "graph: g, stub: nope.py, solution: nope.py, start: s, gradients: [{name: dC, tensor: C}]}\n",
         "forward: nope.py does not exist"),
        ("cases: [{name: a, seed: one, batch_size: 8}]\nexercises: []\n", "'seed' must be a int"),
    ],
)
def test_cli_malformed_course_exit_2(cli: Cli, tmp_path: Path, content: str, expected: str) -> None:
    """A broken course.yaml gives a one-line error naming the problem, exit 2."""
    course = tmp_path / "course.yaml"
    course.write_text(content)
    assert_setup_error(cli(["--course", str(course), "exercise1"]), expected)


def test_cli_syntax_error_costs_only_its_line(cli: Cli, tmp_path: Path) -> None:
    """A line that does not parse is left out on its own: its gradient is error with the line and
    the reason, the next line still runs (and is judged), exit 1, no traceback."""
    sub = tmp_path / "broken.py"
    sub.write_text("dlogprobs = torch.zeros_like(logprobs\ndprobs = 1\n")
    result = cli(["exercise1", str(sub), "--format", "json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    report = json.loads(result.stdout)
    gradients = {g["name"]: g for g in report["gradients"]}
    assert gradients["dlogprobs"]["status"] == "error"
    assert gradients["dlogprobs"]["message"].startswith("line 1: syntax error: '(' was never closed")
    assert gradients["dprobs"]["status"] == "error" and "is a int, not a torch.Tensor" in gradients["dprobs"]["message"]
    assert {g["status"] for name, g in gradients.items() if name not in ("dlogprobs", "dprobs")} == {"missing"}
    assert any("left out, each on its own" in note and "line 1 (syntax error" in note for note in report["notes"])


def test_cli_a_line_only_the_compiler_refuses_costs_only_its_line(cli: Cli, tmp_path: Path) -> None:
    """`return` outside a function parses but does not compile: that line is left out on its own, like
    one that does not parse, and the rest is graded (no traceback)."""
    sub = tmp_path / "returns.py"
    sub.write_text("dlogprobs = 1\nreturn dlogprobs\ndprobs = 1\n")
    result = cli(["exercise1", str(sub), "--format", "json"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output[-500:]
    report = json.loads(result.stdout)
    gradients = {g["name"]: g for g in report["gradients"]}
    assert [gradients[n]["status"] for n in ("dlogprobs", "dprobs")] == ["error", "error"]
    assert "is a int, not a torch.Tensor" in gradients["dprobs"]["message"]
    assert any("line 2 (syntax error: 'return' outside function)" in note for note in report["notes"])


def test_cli_file_too_broken_to_read_line_by_line_is_all_error(cli: Cli, tmp_path: Path) -> None:
    """A file with more broken lines than can be left out one by one: every gradient error with the
    first syntax error's location."""
    sub = tmp_path / "broken.py"
    sub.write_text("".join(f"d{i} = (\n" for i in range(12)))
    report = json.loads(cli(["exercise1", str(sub), "--format", "json"]).stdout)
    assert {g["status"] for g in report["gradients"]} == {"error"}
    assert "syntax error at line" in report["gradients"][0]["message"]


DEEP = {"an attribute chain": "torch" + ".abs" * 400, "a sum": " + ".join(["1"] * 600),
        "nots": "not " * 600 + "1", "subscripts": "x" + "[0]" * 500, "lambdas": "lambda: " * 500 + "1"}


@pytest.mark.parametrize("kind", DEEP)
@pytest.mark.parametrize("where", ["file", "notebook", "function"])
def test_cli_code_deeper_than_the_grader_reads_is_said_in_a_line(cli: Cli, course: Course, tmp_path: Path,
                                                                 mechanism_off: MechanismOff, kind: str,
                                                                 where: str) -> None:
    """Python parses an expression hundreds of levels deeper than the grader's walks over the tree (the
    policy, the sandbox's rewrite) can follow: such code, in a file, a notebook's exercise cell or a
    function, is said to be nested too deeply, every gradient error, exit 1, no traceback."""
    solution = course.exercise("exercise2").solution.read_text()
    line = f"x = [0]\ny = {DEEP[kind]}\n" if where != "function" else f"def f(x):\n    return {DEEP[kind]}\n"
    if where == "notebook":
        sub = tmp_path / "deep.ipynb"
        sub.write_text(json.dumps({"cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "outputs": [],
                                              "execution_count": None, "source": "# Exercise 2\n" + solution + line}],
                                   "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    else:
        sub = tmp_path / "deep.py"
        sub.write_text(solution + line)

    def said() -> None:
        result = cli(["exercise2", str(sub), "--format", "json"])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output[-800:]
        assert result.stdout.startswith("{"), result.output[-800:]
        report = json.loads(result.stdout)
        assert report["gradients"][0]["status"] == "error"
        assert "nested too deeply to read (an expression more than 100 levels deep)" in json.dumps(report)

    said()
    if kind == "an attribute chain":
        mechanism_off(said, lambda m: m.setattr("grader.intake.submission.MAX_NESTING", 10**6),
                      "the limit on how deep code may be")


def test_cli_code_of_too_many_statements_is_said_in_a_line(cli: Cli, course: Course, tmp_path: Path,
                                                           mechanism_off: MechanismOff) -> None:
    """Each top-level statement is refused, compiled and run on its own: 2 MB of one-line statements
    would cost a minute of the grader's time. Past 5,000 (the lecture's whole notebook has some 150),
    the code is said to have too many, every gradient error, exit 1."""
    sub = tmp_path / "many.py"
    sub.write_text(course.exercise("exercise2").solution.read_text() + "x = 1\n" * 5000)

    def said() -> None:
        result = cli(["exercise2", str(sub), "--format", "json"])
        assert result.exit_code == 1 and result.stdout.startswith("{"), result.output[-800:]
        report = json.loads(result.stdout)
        assert report["gradients"][0]["status"] == "error"
        assert "statements, over the 5,000 a submission may have" in report["gradients"][0]["message"]

    said()
    mechanism_off(said, lambda m: m.setattr("grader.intake.submission.MAX_STATEMENTS", 10**6),
                  "the limit on statements")


def test_cli_a_walk_too_deep_for_the_grader_is_the_codes_doing(cli: Cli, course: Course, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               mechanism_off: MechanismOff) -> None:
    """Behind the limit on nesting: a notebook whose cmp call renames a variable has each of its statements
    unparsed (five frames a level for a dict), and a walk that recurses too deep is said as code nested too
    deeply, never the grader's traceback (shown with the limit lifted, a dict 198 levels deep)."""
    monkeypatch.setattr("grader.intake.submission.MAX_NESTING", 10**6)
    source = ("# Exercise 2\ndl = torch.zeros_like(logits)\ncmp('logits', dl, logits)\n"
              "x = " + "{1: " * 198 + "1" + "}" * 198 + "\n")
    sub = tmp_path / "deep.ipynb"
    sub.write_text(json.dumps({"cells": [{"cell_type": "code", "id": "c1", "metadata": {}, "outputs": [],
                                          "execution_count": None, "source": source}],
                               "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))

    def said() -> None:
        result = cli(["exercise2", str(sub), "--format", "json"])
        assert result.exit_code == 1 and result.stdout.startswith("{"), result.output[-800:]
        assert "nested too deeply to read" in json.loads(result.stdout)["gradients"][0]["message"]

    said()
    real = grader.pipeline.extract

    def uncaught(*args: object) -> object:  # what the catch would see if it were not there
        try:
            return real(*args)  # type: ignore[arg-type]
        except RecursionError as exc:
            raise RuntimeError("a walk recursed too deep") from exc

    mechanism_off(said, lambda m: m.setattr(grader.pipeline, "extract", uncaught), "catching a walk too deep")


def test_cli_an_expression_as_deep_as_a_student_writes_is_graded(cli: Cli, course: Course, tmp_path: Path) -> None:
    """A long sum (80 terms) and a long chain of methods are code a student may write: graded as usual."""
    solution = course.exercise("exercise2").solution.read_text()
    sub = tmp_path / "long.py"
    sub.write_text(solution + "total = " + " + ".join(["dlogits.sum()"] * 80) + "\n"
                   + "chained = dlogits" + ".abs()" * 30 + "\n")
    result = cli(["exercise2", str(sub)])
    assert result.exit_code == 0 and "1/1 gradient correct" in result.output, result.output


def test_cli_exception_errors_only_its_gradient(cli: Cli, tmp_path: Path) -> None:
    """A statement that raises makes its own gradient error (with line); the rest are judged."""
    source = Path(SOLUTION).read_text().replace(
        "dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv",
        "dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv @ W1",
    )
    sub = tmp_path / "raises.py"
    sub.write_text(source)
    result = cli(["exercise1", str(sub), "--format", "json"])
    assert result.exit_code == 1
    by_name = {g["name"]: g for g in json.loads(result.stdout)["gradients"]}
    assert by_name["dcounts_sum"]["status"] == "error"
    lineno = source.splitlines().index("dcounts_sum = (-counts_sum**-2) * dcounts_sum_inv @ W1  # (32, 1)") + 1
    assert by_name["dcounts_sum"]["message"].startswith(f"line {lineno}: RuntimeError: mat1 and mat2 shapes")
    assert by_name["dcounts"]["status"] in ("exact", "approximate")  # judged from the true dcounts_sum
    assert by_name["dcounts"]["chained"] == "error"  # as written, it never had a dcounts_sum
    assert sum(g["status"] != "error" for g in by_name.values()) == 25


def test_cli_colour_on_terminal_plain_in_pipe(cli: Cli) -> None:
    """Verdicts are coloured when colour is on, plain text otherwise."""
    plain = cli(["exercise2", str(ROOT / "solutions" / "exercise2.py")])
    coloured = cli(["exercise2", str(ROOT / "solutions" / "exercise2.py")], color=True)
    assert "\x1b[" not in plain.output
    assert "\x1b[32" in coloured.output  # green for a passing verdict


def test_cli_help_lists_exercises(cli: Cli) -> None:
    """--help shows the exercises from course.yaml."""
    result = cli(["--help"])
    assert result.exit_code == 0
    assert "exercise1" in result.output and "Batchnorm backward in one go" in result.output


def test_cli_grades_lecture_style_file(cli: Cli) -> None:
    """A lecture-style submission with cmp calls and prints passes and shows its prints."""
    result = cli(["exercise1", str(SUBMISSIONS / "exercise1" / "correct_lecture_style.py")])
    assert result.exit_code == 0
    assert "your code printed:" in result.output and "done with exercise 1" in result.output


def test_cli_text_marks_gradients_wrong_only_when_chained(cli: Cli, tmp_path: Path) -> None:
    """A right formula fed by a wrong upstream gradient shows '(chained: wrong)' and the legend."""
    sub = tmp_path / "sign.py"
    sub.write_text(Path(SOLUTION).read_text().replace("dprobs = (1.0 / probs)", "dprobs = -(1.0 / probs)"))
    result = cli(["exercise1", str(sub)])
    assert result.exit_code == 1
    line = next(x for x in result.output.splitlines() if x.startswith("dcounts "))
    assert "| exact" in line and "(chained: wrong)" in line
    assert "chained: what the lecture's cmp prints" in result.output
    assert "25/26 gradients correct" in result.output


@pytest.mark.parametrize(("args", "words"), [
    (["exercise2", "{tmp}/nope.py"], "no submission at {tmp}/nope.py"),
    (["exercise2", "--data", "{tmp}/nope.txt"], "no names.txt at {tmp}/nope.txt"),
    (["exercise2", "--watch", "--data", "{tmp}/nope.txt"], "no names.txt at {tmp}/nope.txt"),
    (["exercise4", "--steps", "3", "--data", "{tmp}/nope.txt"], "no names.txt at {tmp}/nope.txt"),
    (["exercise2", "--time-limit", "0"], "Invalid value for '--time-limit'"),
    (["all", "{tmp}/nope"], "no submission at {tmp}/nope"),
    (["batch", "exercise2", "{tmp}/afile", "--data", "{tmp}/nope.txt"], "no names.txt at {tmp}/nope.txt"),
    (["batch", "exercise2", "{tmp}/afile", "--jobs", "0"], "Invalid value for '--jobs'"),
    (["batch", "exercise2", "{tmp}/afile", "--shard", "3/2"], "shard index 3 (from --shard) is not below 2"),
    (["merge", "{tmp}/nope"], "{tmp}/nope is not a folder"),
    (["merge", "{tmp}", "--out", "{tmp}/merged"], "{tmp} holds no shard manifest"),
    (["hint", "exercise2", "dX"], "exercise2 has no gradient 'dX'"),
    (["notebook", "exercise9", "--out", "{tmp}/nb"], "no exercise 'exercise9'"),
    (["notebook", "all", "--out", "{tmp}/afile/nb", "--course-repo", "https://example.org/c.git"],
     "cannot write to {tmp}/afile/nb"),
    (["init-github-actions", "{tmp}/afile/repo"], "cannot write to {tmp}/afile/repo"),
    (["gradescope-bundle", "--exercise", "exercise9", "--out", "{tmp}/a.zip"], "no exercise 'exercise9'"),
    (["check-course", "{tmp}/nope.yaml"], "no course file at {tmp}/nope.yaml"),
    (["check-course", "--data", "{tmp}/nope.txt"], "no names.txt at {tmp}/nope.txt"),
    (["--sandbox", "box", "exercise2"], "Invalid value for '--sandbox'"),
    (["exercise2", "--format", "xml"], "Invalid value for '--format'"),
])
def test_cli_every_command_says_a_setup_error_in_one_line(cli: Cli, tmp_path: Path, args: list[str],
                                                          words: str) -> None:
    """Each command's set-up errors, click's own usage errors among them: exit 2, nothing on stdout, one
    line on stderr that names the problem, nothing written."""
    (tmp_path / "afile").write_text("dlogits = None\n")
    before = sorted(tmp_path.rglob("*"))
    result = cli([arg.replace("{tmp}", str(tmp_path)) for arg in args])
    assert_setup_error(result, words.replace("{tmp}", str(tmp_path)))
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("name", ["pipe.py", "pipe.ipynb"])
def test_cli_refuses_a_pipe_at_once(cli: Cli, tmp_path: Path, name: str) -> None:
    """A submission that is a named pipe (or a link to a device) is a set-up error said at once: the
    grader does not wait on it forever, nor read /dev/zero until its memory runs out."""
    os.mkfifo(tmp_path / name)
    (tmp_path / f"zero{Path(name).suffix}").symlink_to("/dev/zero")
    assert_setup_error(cli(["exercise2", str(tmp_path / name)]), "is not a file (a device or a pipe?)")
    assert_setup_error(cli(["exercise2", str(tmp_path / f"zero{Path(name).suffix}")]), "is a symbolic link")


def test_cli_usage_error_is_one_line_naming_the_help(cli: Cli) -> None:
    """A missing argument, as click finds it, is said in one line that points at the command's --help,
    not click's four lines of Usage, Try, blank and Error."""
    result = cli(["hint", "exercise2"], prog_name="ninja-grade")
    line = assert_setup_error(result, "Missing argument 'GRADIENT'")
    assert line.endswith("(see 'ninja-grade hint --help')")


# --- the command as a shell runs it -------------------------------------------------------


def _ninja(*args: str, code: str = "from grader.cli import run; run()") -> subprocess.CompletedProcess[str]:
    """The command in a process of its own, its output block-buffered as a pipe's is by default."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-c", f"import sys; sys.argv[1:] = {list(args)!r}; {code}"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)


def test_the_command_ends_with_its_exit_code_and_every_line_it_wrote() -> None:
    """ninja-grade as a process, its output a pipe: each exit code as documented, the whole JSON report, and
    one line on stderr for a usage error."""
    passed = _ninja("exercise1", SOLUTION, "--format", "json")
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["score"] == 26
    stub = _ninja("exercise1", str(ROOT / "exercises" / "exercise1.py"), "--format", "json")
    assert stub.returncode == 1 and json.loads(stub.stdout)["score"] == 0
    unknown = _ninja("exercise9")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.startswith("ninja-grade: ") and unknown.stderr.count("\n") == 1


def test_the_command_runs_its_exit_handlers_before_it_ends() -> None:
    """What the process registered to do at exit (as the zygote's end is) is done, in order, after the
    command's own output, and what it prints there is flushed; sys.exit with a sentence says it and ends
    with 1."""
    ran = _ninja("--version", code="import atexit; from grader.cli import run; "
                                   "atexit.register(print, 'second'); atexit.register(print, 'first'); run()")
    assert ran.returncode == 0
    assert ran.stdout.splitlines()[-2:] == ["first", "second"] and "ninja-grade" in ran.stdout
    said = _ninja(code="from grader.cli import end_now, main; import click; "
                       "main.add_command(click.Command('stop', callback=lambda: sys.exit('stopped here'))); "
                       "from grader.cli import run; sys.argv[1:] = ['stop']; run()")
    assert said.returncode == 1 and said.stderr.strip() == "stopped here"


def test_a_character_no_encoding_can_write_is_written_escaped_not_raised(tmp_path: Path) -> None:
    """The command's own streams write what their encoding cannot escaped: a lone surrogate that got past
    every check before them (here: the sandbox's replacement of them switched off) is a report, not a
    UnicodeEncodeError halfway through one; with the streams left strict, it would be."""
    submission = tmp_path / "exercise2.py"
    submission.write_text("def boom():\n    raise ValueError('bad \\ud800 value')\n\n\ndlogits = boom()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    past = "import re; from grader.confined import protocol; protocol._SURROGATE = re.compile('(?!)'); "

    def ninja(code: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-c", past + code, "exercise2", str(submission)], capture_output=True,
                              cwd=ROOT, env=env, timeout=120, check=False)

    ran = ninja("from grader.cli import run; run()")
    assert ran.returncode == 1 and b"ValueError: bad \\ud800 value" in ran.stdout, ran.stderr[-600:]
    assert b"Traceback" not in ran.stderr
    strict = ninja("import grader.cli as c; c.escape_what_cannot_be_encoded = lambda: None; c.run()")
    assert b"UnicodeEncodeError" in strict.stderr and b"Traceback" in strict.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs a device that is always full (Linux)")
def test_output_that_cannot_be_written_is_one_sentence_and_exit_120() -> None:
    """The report written to a full disk: one line on stderr, no traceback, and the exit status Python
    gives for output it could not write."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with open("/dev/full", "w") as full:
        ran = subprocess.run([sys.executable, "-c", "from grader.cli import run; run()", "exercise1", SOLUTION,
                              "--format", "json"], stdout=full, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env=env, timeout=120, check=False)
    assert ran.returncode == 120
    assert ran.stderr == "ninja-grade: cannot write its output (No space left on device)\n"
