"""Grading speed and memory, measured side by side in one run (not part of the test suite).

    .venv/bin/python benchmarks/run.py [--baseline REF] [--pinned-only] [--write docs/benchmarks.md] [--json F]

Needs names.txt where the grader finds it (NINJA_DATA, ./names.txt or the cache). Every figure
is measured for this checkout and, with --baseline, for another commit of the project as well
(exported to a temporary folder and run with the same interpreter), and with --pinned-only for
this checkout judging on the course's pinned cases alone (what fresh cases cost), alternating so
that all see the same machine. The result is one table with the date, the machine and its load;
--write replaces the file with it (the next run replaces it again), --json writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Mistakes students make, as edits of the course's solution (the tests hold the full list).
MISTAKES = [
    ("dprobs = (1.0 / probs) * dlogprobs", "dprobs = -(1.0 / probs) * dlogprobs"),
    ("dlogprobs[range(n), Yb] = -1.0 / n", "dlogprobs[range(n), Yb] = -1.0"),
    ("dcounts += torch.ones_like(counts) * dcounts_sum", "pass"),
    ("dbndiff2 = (1.0 / (n - 1))", "dbndiff2 = (1.0 / n)"),
    ("dW1 = embcat.T @ dhprebn", "dW1 = (embcat.T @ dhprebn).T"),
    ("dhprebn = dbndiff.clone()", "dhprebn = dbndiff"),
    ("db1 = dhprebn.sum(0)", "db1 = torch.zeros_like(b1)"),
]


@dataclass(frozen=True)
class Tree:
    """A checkout of the project to measure: its folder, and how to run its grader."""

    name: str
    root: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.root)}

    def ninja(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "from grader.cli import run; run()", *args]


def timed(tree: Tree, cmd: list[str], cwd: Path | None = None) -> tuple[float, int, str]:
    """Wall seconds, the peak RSS (MB) of the command and everything it started, and stdout."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
             "sys.stderr.write(p.stdout)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True,
                         env=tree.env(), cwd=cwd or tree.root)
    seconds, rss_kb = out.stdout.split()
    return float(seconds), int(rss_kb) // 1024, out.stderr


@dataclass
class Figure:
    name: str
    target: str
    ok: Callable[[float], bool]
    unit: str = ""
    values: dict[str, float] = field(default_factory=dict)  # by tree
    notes: dict[str, str] = field(default_factory=dict)

    def cell(self, tree: str) -> str:
        if tree not in self.values:
            return "—"
        value = self.values[tree]
        text = f"{value:.2f}{self.unit}" if value < 100 else f"{value:.0f}{self.unit}"
        return text + (f" ({self.notes[tree]})" if self.notes.get(tree) else "")


def alternate(trees: list[Tree], repeats: int, measure: Callable[[Tree], tuple[float, str]]) -> dict[str, list[float]]:
    """`measure` for each tree in turn, `repeats` rounds, so that both see the same machine."""
    seen: dict[str, list[float]] = {t.name: [] for t in trees}
    for _ in range(repeats):
        for tree in trees:
            seen[tree.name].append(measure(tree)[0])
    return seen


def make_class(folder: Path, count: int, tree: Tree) -> list[str]:
    """A class like a real one: half correct, a third with a real mistake, the rest the stub."""
    solution = (tree.root / "solutions" / "exercise1.py").read_text()
    stub = (tree.root / "exercises" / "exercise1.py").read_text()
    paths = []
    for i in range(count):
        source = solution if i % 6 in (0, 2, 4) else stub if i % 6 == 5 else \
            solution.replace(*MISTAKES[(i // 6) % len(MISTAKES)])
        path = folder / f"student{i:03}.py"
        path.write_text(source)
        paths.append(str(path))
    return paths


def watch_regrade_s(tree: Tree, repeats: int) -> float:
    """Median time from a save of an exercise-1 file to the end of its new table under --watch."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exercise1.py"
        solution = (tree.root / "solutions" / "exercise1.py").read_text()
        path.write_text(solution)
        process = subprocess.Popen(tree.ninja("exercise1", str(path), "--watch"), stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, env=tree.env(), cwd=tree.root)
        assert process.stdout is not None
        fd, pending, times = process.stdout.fileno(), b"", []

        def until_watching() -> None:
            nonlocal pending
            while b"watching " not in pending:
                pending += os.read(fd, 1 << 16)
            pending = pending.split(b"watching ", 1)[1].split(b"\n", 1)[-1]

        try:
            until_watching()
            for i in range(repeats):
                time.sleep(0.2)  # a student's saves are seconds apart
                saved = time.perf_counter()
                path.write_text(solution + f"\n# save {i}\n")
                until_watching()
                times.append(time.perf_counter() - saved)
        finally:
            process.kill()
            process.wait()
    return sorted(times)[len(times) // 2]


def busy_seconds() -> float | None:
    """Core-seconds this machine has spent busy since it started (Linux's /proc/stat: user, nice,
    system, interrupts), or None where there is no such file."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


@contextmanager
def busy_core() -> Iterator[None]:
    """One CPU-bound process beside whatever runs inside, as on a student's laptop that is never idle."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def pinned_only(folder: Path) -> Tree:
    """This checkout with its course judged on the pinned cases alone (`fresh_cases: count: 0`): beside
    this checkout, what the fresh cases cost."""
    for name in ("grader", "exercises", "solutions", "benchmarks"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("lecture.py", "pyproject.toml"):
        shutil.copy2(ROOT / name, folder / name)
    course = (ROOT / "course.yaml").read_text()
    head, marker, rest = course.partition("fresh_cases:\n")
    if not marker or "  count: " not in rest:
        raise SystemExit("course.yaml names no fresh_cases count to set to 0")
    before, _, after = rest.partition("  count: ")
    (folder / "course.yaml").write_text(head + marker + before + "  count: 0\n" + after.split("\n", 1)[1])
    return Tree("this checkout, pinned cases only", folder)


def export(ref: str, folder: Path) -> Tree:
    """Another commit of this project, as files (git archive), to run beside this checkout."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder / "grader")], check=True)
    return Tree(ref, folder)


def batch_figures(trees: list[Tree], args: argparse.Namespace, fig: Callable[..., Figure]) -> None:
    """The batch's rate, its CPU per submission and its memory, for each tree, the trees alternating."""
    batch = fig(f"batch of {args.batch} (half right, a third mistakes, a sixth stubs), --jobs 2: submissions/s",
                "≥ 40", lambda v: v >= 40, "/s")
    cpu = (fig("the same: busy CPU per submission, every process of the machine (ms)", "—", lambda v: True, " ms")
           if busy_seconds() is not None else None)  # where there is a /proc/stat to read
    batch_rss = fig("peak RSS of any batch process (MB)", "≤ 400", lambda v: v <= 400, " MB")
    with tempfile.TemporaryDirectory() as tmp:
        classes: dict[str, list[str]] = {}
        for i, tree in enumerate(trees):
            (Path(tmp) / f"class{i}").mkdir()
            classes[tree.name] = make_class(Path(tmp) / f"class{i}", args.batch, tree)
        seen: dict[str, list[tuple[float, float, int]]] = {tree.name: [] for tree in trees}  # wall, busy, RSS
        for _ in range(args.repeats):
            for tree in trees:
                shutil.rmtree(f"{tmp}/out", ignore_errors=True)
                before = busy_seconds()
                seconds, peak, _ = timed(tree, tree.ninja("batch", "exercise1", *classes[tree.name], "--jobs", "2",
                                                          "--out", f"{tmp}/out"))
                after = busy_seconds()
                seen[tree.name].append((seconds, after - before if after and before else 0.0, peak))
    for tree in trees:
        seconds = statistics.median(s for s, _, _ in seen[tree.name])
        batch.values[tree.name] = args.batch / seconds
        batch.notes[tree.name] = f"{seconds:.1f} s, start-up included"
        if cpu is not None:
            cpu.values[tree.name] = 1000 * statistics.median(b for _, b, _ in seen[tree.name]) / args.batch
        batch_rss.values[tree.name] = max(p for _, _, p in seen[tree.name])


def measure(trees: list[Tree], args: argparse.Namespace) -> list[Figure]:
    figures: list[Figure] = []
    repeats = args.repeats

    def fig(name: str, target: str, ok: Callable[[float], bool], unit: str = "") -> Figure:
        figures.append(Figure(name, target, ok, unit))
        return figures[-1]

    torch_s = statistics.median(alternate(trees[:1], repeats, lambda t: timed(t, [sys.executable, "-c",
                                                                                  "import torch"])[:2])[trees[0].name])
    grading = fig("exercise 1 graded: wall time (s)", "—", lambda v: True, " s")
    ratio = fig("the same / `python -c 'import torch'`", "≤ 1.25", lambda v: v <= 1.25)
    rss = fig("peak RSS of one grading (MB)", "≤ 400", lambda v: v <= 400, " MB")
    for tree in trees:
        runs = [timed(tree, tree.ninja("exercise1", str(tree.root / "solutions" / "exercise1.py"))) for _ in
                range(repeats)]
        grading.values[tree.name] = statistics.median(r[0] for r in runs)
        ratio.values[tree.name] = grading.values[tree.name] / torch_s
        rss.values[tree.name] = max(r[1] for r in runs)
    ratio.notes[trees[0].name] = f"import torch: {torch_s:.2f} s"

    helped = fig("`ninja-grade --help` (s)", "≤ 0.3", lambda v: v <= 0.3, " s")
    for name, times in alternate(trees, repeats, lambda t: timed(t, t.ninja("--help"))[:2]).items():
        helped.values[name] = statistics.median(times)

    batch_figures(trees, args, fig)

    watch = fig("`--watch`: a save of exercise 1 to its new table (s)", "≤ 0.3", lambda v: v <= 0.3, " s")
    for tree in trees:
        watch.values[tree.name] = watch_regrade_s(tree, repeats)

    solution4 = "solutions/exercise4.py"
    for label, target, context in (("", 1.5, nullcontext), (", one busy process beside", 2.0, busy_core)):
        train = fig(f"exercise 4 `--steps {args.steps}` / the plain loop{label}", f"≤ {target:g}",
                    lambda v, target=target: v <= target)
        with context():
            for tree in trees:
                ours, floor = [], []
                for _ in range(args.train_repeats):
                    ours.append(timed(tree, tree.ninja("exercise4", solution4, "--steps", str(args.steps),
                                                       "--format", "json", "--plot", os.devnull))[0])
                    floor.append(timed(tree, [sys.executable, str(tree.root / "benchmarks" / "plain_training.py"),
                                              str(args.steps), str(tree.root / solution4)])[0])
                train.values[tree.name] = statistics.median(ours) / statistics.median(floor)
                train.notes[tree.name] = f"{statistics.median(ours):.1f} s vs {statistics.median(floor):.1f} s"

    backward = fig("exercise 4: the solution's backward per step / autograd's", "< 1", lambda v: v < 1)
    for tree in trees:
        out = timed(tree, tree.ninja("exercise4", solution4, "--format", "json"))[2]
        training = json.loads(out)["training"]
        backward.values[tree.name] = training["backward_ms"] / training["autograd_backward_ms"]
    return figures


def table(figures: list[Figure], trees: list[Tree], load: tuple[float, float], started: str) -> str:
    """The one table, with what it was measured on."""
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") if Path("/proc/cpuinfo").exists() else open(os.devnull) as f:
        models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    import torch  # noqa: PLC0415 - only for its version, once measuring is over

    header = ["figure", "target", *(f"`{t.name}`" for t in trees), "met"]
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (benchmarks/run.py), which replaces this file with each run. Speed",
        "and memory are never checked by a test: the machines are shared and noisy.",
        "",
        f"Measured {started} on {os.cpu_count()} cores ({models[0] if models else cpu}), Python "
        f"{platform.python_version()}, torch {torch.__version__}; load average {load[0]:.2f} before "
        f"and {load[1]:.2f} after. "
        + (f"{', '.join(f'`{t.name}`' for t in trees[:-1])} and `{trees[-1].name}` alternate within each figure."
           if len(trees) > 1 else ""),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for f in figures:
        met = "yes" if f.ok(f.values[trees[0].name]) else "**no**"
        lines.append(f"| {f.name} | {f.target} | " + " | ".join(f.cell(t.name) for t in trees) + f" | {met} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a git ref of this project to measure beside this checkout")
    parser.add_argument("--pinned-only", action="store_true",
                        help="also measure this checkout judging on the course's pinned cases alone")
    parser.add_argument("--write", type=Path, help="replace this file with the table (docs/benchmarks.md)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=200, help="submissions in the batch figure")
    parser.add_argument("--steps", type=int, default=20_000, help="steps in the exercise-4 training figures")
    parser.add_argument("--train-repeats", type=int, default=3, help="runs of each, for the training figures")
    args = parser.parse_args()
    # Time the grader as installed: a regular pip install compiles its bytecode; an editable one is
    # compiled on first import, unless PYTHONDONTWRITEBYTECODE is set (then on every run).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "grader")], check=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    trees = [Tree("this checkout", ROOT)]
    with tempfile.TemporaryDirectory() as tmp:
        if args.pinned_only:
            (Path(tmp) / "pinned").mkdir()
            trees.append(pinned_only(Path(tmp) / "pinned"))
        if args.baseline:
            (Path(tmp) / "baseline").mkdir()
            trees.append(export(args.baseline, Path(tmp) / "baseline"))
        figures = measure(trees, args)
        shutil.rmtree(tmp, ignore_errors=True)
    text = table(figures, trees, (load_before, os.getloadavg()[0]), started)
    print(text)
    if args.write:
        args.write.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({
            "started": started, "load": [load_before, os.getloadavg()[0]], "cores": os.cpu_count(),
            "figures": [{"name": f.name, "target": f.target, "values": f.values, "notes": f.notes,
                         "met": f.ok(f.values[trees[0].name])} for f in figures]}, indent=2))
    return 0 if all(f.ok(f.values[trees[0].name]) for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
