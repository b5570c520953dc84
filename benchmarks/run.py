"""Grading speed and memory, measured side by side in one run (not part of the test suite).

    .venv/bin/python benchmarks/run.py [--json results.json] [--repeats 5] [--batch 200]

Needs names.txt where the grader finds it (NINJA_DATA, ./names.txt or the cache). Prints
one line per figure with its target and whether it is met; --json writes the same.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NINJA = str(BIN / "ninja-grade")
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


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, the peak RSS (MB) of the command and everything it started, and stdout."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
             "sys.stderr.write(p.stdout)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True)
    seconds, rss_kb = out.stdout.split()
    return float(seconds), int(rss_kb) // 1024, out.stderr


def median_of(cmd: list[str], repeats: int) -> tuple[float, int]:
    runs = [timed(cmd) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def make_class(folder: Path, count: int) -> list[str]:
    solution = (ROOT / "solutions" / "exercise1.py").read_text()
    paths = []
    for i in range(count):
        source = solution
        if i % 2:
            old, new = MISTAKES[(i // 2) % len(MISTAKES)]
            source = solution.replace(old, new)
        path = folder / f"student{i:03}.py"
        path.write_text(source)
        paths.append(str(path))
    return paths


def watch_regrade_s(repeats: int) -> float:
    """Median time from a save of an exercise-1 file to the end of its new table under --watch."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exercise1.py"
        solution = (ROOT / "solutions" / "exercise1.py").read_text()
        path.write_text(solution)
        process = subprocess.Popen([NINJA, "exercise1", str(path), "--watch"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)
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


@contextmanager
def busy_core() -> Iterator[None]:
    """One CPU-bound process beside whatever runs inside, as on a student's laptop that is never idle."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def training_figures(steps: int, repeats: int) -> list[tuple[str, float, str, bool, str]]:
    """Exercise 4's real run against the plain loop (benchmarks/plain_training.py), quiet and beside
    a busy process; runs alternate so that both see the same machine."""
    solution = str(ROOT / "solutions" / "exercise4.py")
    grader = [NINJA, "exercise4", solution, "--steps", str(steps), "--format", "json", "--plot", os.devnull]
    plain = [sys.executable, str(ROOT / "benchmarks" / "plain_training.py"), str(steps), solution]
    figures = []
    for label, target, context in (("", 1.5, nullcontext), (", one busy process beside", 2.0, busy_core)):
        ours, floor, threads = [], [], {}
        with context():
            for _ in range(repeats):
                seconds, _, out = timed(grader)
                ours.append(seconds)
                threads = json.loads(out).get("threads", {})
                floor.append(timed(plain)[0])
        ratio = statistics.median(ours) / statistics.median(floor)
        used = ", ".join(f"{who} {n}" for who, n in threads.items())
        figures.append((f"exercise4 --steps {steps} / plain loop{label}", ratio, f"<= {target:g}", ratio <= target,
                        f"{statistics.median(ours):.1f} s vs {statistics.median(floor):.1f} s; torch threads: {used}, "
                        "plain 1"))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=200, help="submissions in the batch figure")
    parser.add_argument("--steps", type=int, default=20_000, help="steps in the exercise-4 training figures")
    parser.add_argument("--train-repeats", type=int, default=3, help="runs of each, for the training figures")
    args = parser.parse_args()
    # Time the grader as installed: a regular pip install compiles its bytecode; an editable one is
    # compiled on first import, unless PYTHONDONTWRITEBYTECODE is set (then on every run, ~0.4 s here).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "grader")], check=True)
    load_before = os.getloadavg()
    solution = str(ROOT / "solutions" / "exercise1.py")
    figures = []

    torch_s, _ = median_of([sys.executable, "-c", "import torch"], args.repeats)
    grade_s, grade_mb = median_of([NINJA, "exercise1", solution], args.repeats)
    figures.append(("exercise1 grading / python -c 'import torch'", grade_s / torch_s, "<= 1.25",
                    grade_s / torch_s <= 1.25, f"{grade_s:.2f} s vs {torch_s:.2f} s"))
    help_s, _ = median_of([NINJA, "--help"], args.repeats)
    figures.append(("ninja-grade --help (s)", help_s, "<= 0.3", help_s <= 0.3, ""))

    with tempfile.TemporaryDirectory() as tmp:
        subs = make_class(Path(tmp), args.batch)
        started = time.perf_counter()
        batch_s, batch_mb, _ = timed([NINJA, "batch", "exercise1", *subs, "--jobs", "2", "--out", f"{tmp}/out"])
        rate = args.batch / batch_s
        figures.append((f"batch of {args.batch}, --jobs 2 (submissions/s)", rate, ">= 10", rate >= 10,
                        f"{batch_s:.1f} s in all, start-up included"))
        del started
    figures.append(("peak RSS, one grading (MB)", grade_mb, "<= 400", grade_mb <= 400, ""))
    figures.append(("peak RSS, any batch process (MB)", batch_mb, "<= 400", batch_mb <= 400,
                    "the largest of the batch, its workers and their sandboxes"))

    regrade = watch_regrade_s(args.repeats)
    figures.append(("--watch: a save of exercise1 to its table printed (s)", regrade, "<= 0.3", regrade <= 0.3,
                    f"median of {args.repeats} saves, one process"))

    figures += training_figures(args.steps, args.train_repeats)

    _, _, report = timed([NINJA, "exercise4", str(ROOT / "solutions" / "exercise4.py"), "--format", "json"])
    training = json.loads(report)["training"]
    ratio = training["backward_ms"] / training["autograd_backward_ms"]
    figures.append(("exercise4 solution backward / autograd's, per step", ratio, "< 1", ratio < 1,
                    f"{training['backward_ms']:.3f} ms vs {training['autograd_backward_ms']:.3f} ms"))

    load_after = os.getloadavg()
    width = max(len(f[0]) for f in figures)
    print(f"machine: {os.cpu_count()} cores, load {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    for name, value, target, met, note in figures:
        print(f"{name:{width}}  {value:8.3f}  target {target:7}  {'met' if met else 'NOT MET'}  {note}")
    if args.json:
        args.json.write_text(json.dumps({
            "load": {"before": load_before, "after": load_after}, "cores": os.cpu_count(),
            "figures": [{"name": n, "value": v, "target": t, "met": m, "note": note} for n, v, t, m, note in figures],
        }, indent=2))
    return 0 if all(f[3] for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
