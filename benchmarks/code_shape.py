"""The shape of grader/ a newcomer meets (not part of the test suite).

    .venv/bin/python benchmarks/code_shape.py [--baseline REF]

Prints, for this checkout and, with --baseline, another commit: the ten longest functions, the
largest files, and the places that build a submission's JSON report (a dict literal with the keys
"submission" and "gradients", or "submission" and "exercises": what a report's shape is written as).
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def functions(root: Path) -> list[tuple[int, str]]:
    """(lines, module:function) for every function of grader/."""
    found = []
    for path in sorted((root / "grader").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                found.append((lines, f"{path.relative_to(root)}:{node.name}"))
    return sorted(found, reverse=True)


def files(root: Path) -> list[tuple[int, str]]:
    return sorted(((len(p.read_text(encoding="utf-8").splitlines()), str(p.relative_to(root)))
                   for p in (root / "grader").rglob("*.py")), reverse=True)


def report_builders(root: Path) -> list[str]:
    """Where a dict literal with a submission report's keys is written."""
    found = []
    for path in sorted((root / "grader").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                if "submission" in keys and ("gradients" in keys or "exercises" in keys):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def describe(root: Path, label: str) -> str:
    funcs, sizes, builders = functions(root), files(root), report_builders(root)
    lines = [f"## {label}", "", f"{len(funcs)} functions in {len(sizes)} files, {sum(n for n, _ in sizes)} lines",
             "", "ten longest functions (lines):"]
    lines += [f"  {n:4}  {name}" for n, name in funcs[:10]]
    lines += ["", "largest files (lines):", *[f"  {n:4}  {name}" for n, name in sizes[:5]]]
    lines += ["", f"places that build a JSON report: {len(builders)}", *[f"  {b}" for b in builders], ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="another commit to describe beside this checkout")
    args = parser.parse_args()
    print(describe(ROOT, "this checkout"))
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "grader"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            print(describe(Path(tmp), args.baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
