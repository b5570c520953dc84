"""Whether two versions of the grader write the same reports (not part of the test suite).

    .venv/bin/python benchmarks/same_reports.py --baseline REF [--keep DIR]

Grades every solution, stub, test submission and notebook fixture with this checkout and with
REF (exported to a temporary folder, run with the same interpreter), each on the same draw:
a fixed course secret makes the cases a function of the graded code alone, so both versions
judge each file on the same cases. Compares the JSON report (its environment too) and the text report of each, less
what is measured rather than decided (timings), and lists every file whose reports differ.
Exit 0 when all are the same. Needs names.txt where the grader finds it (NINJA_DATA).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "same-reports: a fixed secret, so that both versions draw the same cases for the same code"
MEASURED = ("backward_ms", "autograd_backward_ms", "seconds")  # timings: differ from run to run


def gradings(root: Path) -> list[tuple[str, str]]:
    """(exercise, file relative to root) for every file this script grades."""
    pairs = [(f"exercise{n}", f"solutions/exercise{n}.py") for n in range(1, 5)]
    pairs += [(f"exercise{n}", f"exercises/exercise{n}.py") for n in range(1, 5)]
    subs = root / "tests" / "submissions"
    for path in sorted(subs.rglob("*.py")):
        exercise = "exercise4" if "exercise4" in path.parts else "exercise1"
        pairs.append((exercise, str(path.relative_to(root))))
    for path in sorted((root / "tests" / "notebooks").glob("*.ipynb")):
        pairs += [(f"exercise{n}", str(path.relative_to(root))) for n in range(1, 5)]
    return pairs


def without_measured(value: object) -> object:
    if isinstance(value, dict):
        return {k: without_measured(v) for k, v in value.items() if k not in MEASURED}
    if isinstance(value, list):
        return [without_measured(v) for v in value]
    return value


def collect(out: Path, only: set[str] | None = None) -> None:
    """Grade every file of this tree (the current directory), or those in `only`, and write what was decided
    to `out`."""
    import torch  # noqa: PLC0415 - in the collecting process only

    from grader.courseware.course import load_course  # noqa: PLC0415
    try:  # where the pipeline lives in this tree
        from grader.pipeline import grade  # noqa: PLC0415
    except ImportError:
        from grader.judging.grade import grade  # type: ignore[no-redef]  # noqa: PLC0415
    from grader.reporting.formats import render  # noqa: PLC0415
    from grader.reporting.report import render_text  # noqa: PLC0415

    torch.set_num_threads(1)
    course = load_course(None)
    seen: dict[str, object] = {}
    for exercise, path in gradings(Path.cwd()):
        if only is not None and f"{exercise} {path}" not in only:
            continue
        try:
            report = grade(course, exercise, path)
            decided = {"json": without_measured(json.loads(render("json", [report]))),
                       "text": [line for line in render_text(report).splitlines() if " ms" not in line]}
        except Exception as exc:  # a set-up error is an outcome too, and must be the same
            decided = {"error": f"{type(exc).__name__}: {exc}"}
        seen[f"{exercise} {path}"] = decided
    out.write_text(json.dumps(seen, indent=1, sort_keys=True, default=str))


def run_tree(root: Path, out: Path, only: list[str] | None = None) -> dict[str, object]:
    """What `root`'s grader decided for each grading (or for those in `only`)."""
    env = {**os.environ, "PYTHONPATH": str(root), "NINJA_CASE_SECRET": SECRET, "NINJA_OFFLINE": "1"}
    extra = ["--only", json.dumps(only)] if only is not None else []
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--collect", str(out), *extra], cwd=root,
                   env=env, check=True)
    seen: dict[str, object] = json.loads(out.read_text())
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="the commit to compare this checkout with")
    parser.add_argument("--keep", type=Path, help="a folder to keep both sets of reports in")
    parser.add_argument("--collect", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.collect:
        collect(args.collect, set(json.loads(args.only)) if args.only else None)
        return 0
    if not args.baseline:
        parser.error("name the commit to compare with: --baseline REF")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "baseline"
        folder.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
        keep = args.keep or Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        a = run_tree(ROOT, keep / "this-checkout.json")
        b = run_tree(folder, keep / "baseline.json")
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        # A submission can make its own report vary (it reads memory torch.empty hands back): graded by the
        # baseline again, a report that changes is the submission's doing, not the change's.
        again = run_tree(folder, keep / "baseline-again.json", differ) if differ else {}
    unsteady = [k for k in differ if again.get(k) != b.get(k)]
    for key in differ:
        print(f"{'varies from run to run' if key in unsteady else 'differs'}: {key}")
    total = len(a.keys() | b.keys())
    print(f"{total - len(differ)} of {total} gradings the same as {args.baseline}, {len(unsteady)} that vary "
          f"from run to run of {args.baseline} itself")
    return 1 if len(differ) > len(unsteady) else 0


if __name__ == "__main__":
    sys.exit(main())
