"""docs/scale.md's recipes, as an engine would run them: each parses, says only what the CLI has, and its
shard command grades a shard for real with the variables its engine sets; the GitHub Actions matrix runs
whole, shards and merge. Only the mount points of the grader's image (/opt/ninja) and of the class
(/class) are moved into a temporary folder, and the exercise is set to the cheapest one to grade."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from grader.ci.shards import ENGINES
from grader.cli import main
from tests.conftest import ROOT, Cli, needs_fork, posix_grader

DOC = ROOT / "docs" / "scale.md"
RECIPE = re.compile(r"<!-- recipe: ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.DOTALL)
SHARDS = 4
STUDENTS = [f"student{i}" for i in range(8)]  # shards of four: 0, 3, 0, 1, 3, 0, 3, 1 (shard 2 is empty)
SOLUTION = (ROOT / "solutions" / "exercise2.py").read_text()
ENV = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "EXERCISE": "exercise2"}


def recipes() -> dict[str, Any]:
    found = {name: (lang, text) for name, lang, text in RECIPE.findall(DOC.read_text())}
    assert set(found) == {"kubernetes", "aws-batch", "slurm", "github-actions"}
    return {
        "kubernetes": list(yaml.safe_load_all(found["kubernetes"][1])),
        "aws-batch": json.loads(found["aws-batch"][1]),
        "slurm": found["slurm"][1],
        "github-actions": yaml.safe_load(found["github-actions"][1]),
    }


SHELL_VALUES = {"EXERCISE": "exercise1", "CLASS": "/class", "NINJA": ".github/ninja", "SLURM_CPUS_PER_TASK": "2"}


def commands_in(script: str) -> list[list[str]]:
    """Every ninja-grade command line of a shell script, as the shell hands it its words (variables
    expanded, no globbing; continuations joined)."""
    joined = script.replace("\\\n", " ").replace("${{ matrix.shard }}", "0")
    commands = []
    for line in re.split(r"[;\n]|\|\|", joined):
        if shlex.split(line, comments=True)[:1] != ["ninja-grade"]:
            continue
        words = subprocess.run(["bash", "-fc", 'eval "set -- $1"; printf "%s\\0" "$@"', "_", line],
                               env={"PATH": os.environ["PATH"], **SHELL_VALUES}, capture_output=True, check=True)
        commands.append(words.stdout.decode().split("\0")[1:-1])
    return commands


def parses(words: list[str]) -> str:
    """The command's name, once click has parsed every option and argument of it (a UsageError if not)."""
    before = 0
    while words[before] in ("--course", "--sandbox"):
        before += 2
    name = words[before]
    ctx = main.make_context("ninja-grade", words[:before + 1], resilient_parsing=True)
    command = main.get_command(ctx, name)
    assert command is not None, name
    command.make_context(name, words[before + 1:], parent=ctx)
    return name


def scripts() -> dict[str, list[str]]:
    """The shell each recipe runs, by recipe (the GitHub workflow: each step's)."""
    loaded = recipes()
    kubernetes = [doc["spec"]["template"]["spec"]["containers"][0]["args"][0] for doc in loaded["kubernetes"]]
    workflow = loaded["github-actions"]
    steps = [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]
    return {"kubernetes": kubernetes, "aws-batch": [loaded["aws-batch"]["containerProperties"]["command"][2]],
            "slurm": [loaded["slurm"]], "github-actions": steps}


def test_scale_recipes_parse_and_use_only_what_the_cli_has() -> None:
    """Each recipe is valid YAML, JSON or bash; every ninja-grade command in it parses against the real CLI;
    each shards into as many parts as its engine starts, and reads only variables the grader knows."""
    loaded = recipes()
    names = {recipe: [parses(words) for script in texts for words in commands_in(script)]
             for recipe, texts in scripts().items()}
    assert names == {"kubernetes": ["batch", "merge"], "aws-batch": ["batch"], "slurm": ["batch"],
                     "github-actions": ["batch", "merge"]}
    job = loaded["kubernetes"][0]["spec"]
    assert job["completionMode"] == "Indexed" and job["completions"] == SHARDS
    assert f"--shard {SHARDS} " in scripts()["kubernetes"][0] and f"--shard {SHARDS} " in scripts()["aws-batch"][0]
    assert f"#SBATCH --array=0-{SHARDS - 1}\n" in loaded["slurm"] and f"--shard {SHARDS} " in loaded["slurm"]
    assert loaded["aws-batch"]["type"] == "container" and f"size={SHARDS}" in DOC.read_text()
    matrix = loaded["github-actions"]["jobs"]["grade"]["strategy"]["matrix"]["shard"]
    assert matrix == list(range(SHARDS)) and f"--shard ${{{{ matrix.shard }}}}/{SHARDS} " in scripts()[
        "github-actions"][1]
    subprocess.run(["bash", "-n"], input=loaded["slurm"], text=True, check=True)
    variables = {v for v, _, _ in ENGINES} | set(re.findall(r'"(SLURM_ARRAY_TASK_[A-Z]+|AWS_BATCH_[A-Z_]+)"',
                                                           (ROOT / "grader" / "ci" / "shards.py").read_text()))
    assert {v for v in re.findall(r"`([A-Z_]+_(?:INDEX|ID|SIZE|COUNT|MIN))`", DOC.read_text())} <= variables
    with pytest.raises(click.UsageError):  # the check itself catches an option the CLI does not have
        parses(["batch", "exercise1", "x.py", "--shards", "4"])


@pytest.fixture(scope="module")
def setting(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class of eight in CLASS/submissions, the grader image's /opt/ninja as `ninja-grade prairielearn`
    lays it out, and a grading repository as `ninja-grade init-github-actions` writes it."""
    if not os.environ.get("NINJA_DATA"):
        pytest.skip("the grader's image carries names.txt: set NINJA_DATA")
    root = tmp_path_factory.mktemp("scale")
    (root / "class" / "submissions").mkdir(parents=True)
    (root / "repo" / "submissions").mkdir(parents=True)
    for student in STUDENTS:
        (root / "class" / "submissions" / f"{student}.py").write_text(SOLUTION)
        (root / "repo" / "submissions" / f"{student}.py").write_text(SOLUTION)
    for args in (["prairielearn", str(root / "image"), "--image", "ninja-grader"],
                 ["init-github-actions", str(root / "repo")]):
        result = cli(args)
        assert result.exit_code == 0, result.output
    return root


def moved(script: str, root: Path) -> str:
    return script.replace("/opt/ninja", str(root / "image")).replace("/class", str(root / "class"))


def manifest(folder: Path, index: int) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / f"ninja-shard-{index}-of-{SHARDS}.manifest").read_text())
    return loaded


@pytest.mark.slow
@needs_fork
@posix_grader
@pytest.mark.parametrize(("recipe", "engine", "index"), [
    ("kubernetes", {"JOB_COMPLETION_INDEX": "1"}, 1),
    ("aws-batch", {"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "4"}, 0),
    ("slurm", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "3",
               "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_STEP": "1", "SLURM_CPUS_PER_TASK": "1"}, 3),
])
def test_scale_recipe_grades_its_shard(setting: Path, recipe: str, engine: dict[str, str], index: int) -> None:
    """The recipe's shard command, with the variables its engine sets, grades that shard of the class and
    exits 0 (some failing students would be exit 0 too: a finished shard)."""
    script = moved(scripts()[recipe][0], setting)
    env = {**os.environ, **ENV, **engine, "CLASS": str(setting / "class")}
    command = ["bash", "-c", script] if recipe == "slurm" else ["sh", "-c", script]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    out = setting / "class" / "out" / "exercise2"
    written = manifest(out, index)
    assert written["shard"] == [index, SHARDS] and written["complete"] is True
    assert sorted(written["share"]) == sorted(s for s, i in zip(STUDENTS, (0, 3, 0, 1, 3, 0, 3, 1), strict=True)
                                              if i == index)
    assert f"shard {index}/{SHARDS} ({next(iter(engine))})" in done.stdout


@pytest.mark.slow
@needs_fork
@posix_grader
def test_scale_github_actions_matrix_runs_whole(setting: Path) -> None:
    """Each matrix job's step grades its shard on a machine of its own, their artifacts are downloaded as
    the workflow says, and the merge job's step writes the class's gradebook: every student graded."""
    grade_step, merge_step = scripts()["github-actions"][1], scripts()["github-actions"][3]
    repo = setting / "repo"
    env = {**os.environ, **ENV, "NINJA": ".github/ninja"}
    for i in range(SHARDS):
        shutil.rmtree(repo / "out", ignore_errors=True)
        done = subprocess.run(["bash", "-e", "-c", grade_step.replace("${{ matrix.shard }}", str(i))], cwd=repo,
                              env=env, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        shutil.copytree(repo / "out", repo / "shards" / f"shard-{i}")  # upload-artifact, then download-artifact
    done = subprocess.run(["bash", "-e", "-c", merge_step], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert f"merged {SHARDS} of {SHARDS} shards from {SHARDS} folders: 8 of 8 students graded" in done.stdout
    rows = (repo / "merged" / "exercise2" / "gradebook.csv").read_text().splitlines()
    assert sorted(row.split(",")[0] for row in rows[1:]) == STUDENTS
