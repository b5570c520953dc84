"""The runs of one case, in the order that commits every answer before any truth is revealed.

On one case the program runs:

1. as written (the chained run): nothing is handed to it; every gradient's final value, and
   its value right after its last assignment, are read back;
2. with random gradients for every consumer (the vector-Jacobian check, vjp.py): random
   values, not truths, set right after each gradient's last assignment, sent up front;
3. isolated: each gradient committed at its last assignment, and only then, if the grader
   allows, its true value set in its place for the lines below (Reveals decides). The child
   waits there only if a line below could read that truth; where none could, the ledger
   enters it as revealed and nothing is sent.

A gradient's truth is revealed only once the child has committed every value it is judged on
for that gradient and for every gradient it is computed from (everything downstream of its
tensor): a true dW2 says what dlogits is, so it waits until dlogits is settled. A gradient's
isolated value counts only when the run handed it the truths of everything downstream it
reads, and no truth of a gradient it reads that is not downstream (as the lecture's `cmp`
would see it with correct upstream gradients). One run settles a program written in backprop
order; code in another order takes one more run per gradient at most.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grader.confined.protocol import BEFORE_ALL, Case, Commit, Point, Run, Value
from grader.confined.sandbox import RunResult, Sandbox
from grader.courseware.cases import Case as CaseData
from grader.courseware.course import Exercise, Gradient
from grader.intake.submission import Program

AT_END = 1 << 30  # where a gradient changed in place after its last assignment is committed: the run's end


@dataclass(frozen=True)
class Judged:
    """A gradient's value as one run left it, with that run (for its errors) and its snapshot."""

    value: Value
    run: RunResult
    snapshot: Value  # right after its last assignment, in the same run


@dataclass(frozen=True)
class Isolated:
    """What the isolated runs of one case left: each graded gradient's value, and how many runs it took."""

    judged: dict[str, Judged]
    runs: int


def message_for(exercise: Exercise, case: CaseData) -> Case:
    """The case as the child receives it: the namespace, and the gradients the exercise hands over."""
    tensors = {k: v for k, v in case.namespace.items() if isinstance(v, torch.Tensor)}
    scalars = {k: v for k, v in case.namespace.items() if not isinstance(v, torch.Tensor)}
    handed = {h.name: case.truth[h.tensor] for h in exercise.given_gradients}
    return Case(tensors, scalars, handed, exercise.gradient_names)


@dataclass(frozen=True)
class Slot:
    """A variable to set a tensor's random gradient in, and the statement after which to set it."""

    name: str
    index: int


class Plan:
    """The facts every run of one case is planned from: where each gradient is last assigned, which
    gradients each is computed from (its tensor's downstream), and which it reads."""

    def __init__(self, exercise: Exercise, program: Program, case: CaseData) -> None:
        self.exercise = exercise
        self.every: tuple[Gradient, ...] = (*exercise.gradients, *exercise.intermediates)
        self.graded = frozenset(g.name for g in exercise.gradients)
        self.truth = {g.name: case.truth[g.tensor] for g in self.every}
        descendants = {g.name: case.graph.descendants(g.tensor) for g in self.every}
        self.closure = {g.name: frozenset(o.name for o in self.every if o.tensor in descendants[g.name])
                        for g in self.every}
        self.last: dict[str, int | None] = {}
        for g in self.every:
            stmt = program.last_assignment(g.name)
            self.last[g.name] = stmt.index if stmt is not None else None
        self.reads = program.gradient_inputs(frozenset(g.name for g in self.every))
        # Where a line could still read each gradient, or tell whether it is set: the last statement that
        # names it in any way, or anywhere (AT_END) for one named by code that may run later (a function, a
        # generator). `dir` lists every name (graded code has no globals(), vars() or frames): a program
        # that names it anywhere may read anything anywhere.
        self.read_until: dict[str, int] = {}
        lists_names = any("dir" in stmt.touches for stmt in program.statements)
        for stmt in program.statements:
            for name in (self.last.keys() if lists_names else stmt.touches & self.last.keys()):
                self.read_until[name] = max(self.read_until.get(name, BEFORE_ALL),
                                            AT_END if stmt.defers or lists_names else stmt.index)
        self.order = sorted(exercise.gradients, key=lambda g: len(descendants[g.name]))  # backprop order

    def snapshot_points(self, names: set[str]) -> dict[int, tuple[str, ...]]:
        """For the given gradients: the statement of each one's last assignment, and who is assigned there."""
        at: dict[int, list[str]] = {}
        for g in self.order:
            index = self.last[g.name]
            if g.name in names and index is not None:
                at.setdefault(index, []).append(g.name)
        return {i: tuple(names) for i, names in sorted(at.items())}


def chained_run(plan: Plan, sandbox: Sandbox, also: dict[int, tuple[str, ...]] | None = None) -> RunResult:
    """The program as written: every gradient's value after its last assignment and at the end (and, with
    `also`, the values of other variables after the statements it names)."""
    at = {i: list(names) for i, names in plan.snapshot_points(set(plan.graded)).items()}
    for i, names in (also or {}).items():
        at.setdefault(i, []).extend(n for n in names if n not in at[i])
    points = tuple(Point(i, tuple(names)) for i, names in sorted(at.items()))
    return sandbox.run(Run(points, read_back=tuple(g.name for g in plan.every)))


def vjp_run(plan: Plan, sandbox: Sandbox, randoms: dict[str, torch.Tensor], gradients: set[str],
            slots: dict[str, tuple[Slot, ...]], *, given_to: set[str] | None = None) -> RunResult:
    """A run that sets random values (no truths) for the gradients in `given_to` (default: all), in the
    variables and after the statements `slots` gives for each tensor (probes.py), and commits `gradients`
    after their last assignment and at the end."""
    preset: dict[int, dict[str, torch.Tensor]] = {}
    for g in plan.every:
        if given_to is None or g.name in given_to:
            for slot in slots.get(g.tensor, ()):
                preset.setdefault(slot.index, {})[slot.name] = randoms[g.tensor]
    points = tuple(Point(i, names) for i, names in plan.snapshot_points(gradients).items())
    return sandbox.run(Run(points, preset, read_back=tuple(sorted(gradients))))


class Reveals:
    """The ledger of one case: which gradients are settled (every value they are judged on has been
    committed), and so which truths may be handed to the child, and when."""

    def __init__(self, plan: Plan, at_end: set[str]) -> None:
        self.plan = plan
        self.at_end = at_end  # gradients changed in place after their last assignment: judged at the end
        # Settled from the start: what has no value of its own to commit (never assigned) and the
        # intermediates, judged only as written (the chained run, already committed).
        self.settled = {g.name for g in plan.every if plan.last[g.name] is None or g.name not in plan.graded}
        self.judged: dict[str, Judged] = {}

    def read_after(self, name: str, index: int) -> bool:
        """Whether the code could read `name` after statement `index`, or tell whether it is set (Plan's
        `read_until`), so that setting its truth there could change what the run computes."""
        return name in self.at_end or self.plan.read_until.get(name, BEFORE_ALL) > index

    def waits_at(self, index: int) -> bool:
        """Whether the run must wait at `index` for what it may be given: only where a truth that may be due
        there (its gradient's last assignment, or one never assigned) could still be read. Elsewhere a due
        truth is entered in the ledger as revealed, as if it had been set, and not sent: nothing reads it."""
        last = self.plan.last
        return any(self.read_after(name, index) for name in last if last[name] in (index, None))

    def may_reveal(self, name: str) -> bool:
        return name in self.settled and self.plan.closure[name] <= self.settled

    def unjudged(self) -> list[Gradient]:
        return [g for g in self.plan.order if g.name not in self.judged]

    def pending(self) -> list[Gradient]:
        """What another run could still judge: a gradient the code never assigns has no value to commit
        in any run, and is judged as the code as written left it (missing)."""
        return [g for g in self.unjudged() if self.plan.last[g.name] is not None]

    def commit_index(self, name: str) -> int:
        last = self.plan.last[name]
        return AT_END if name in self.at_end or last is None else last

    def counts(self, name: str, revealed: dict[str, int]) -> bool:
        """Whether a gradient's value in this run is its isolated value: computed from the truths of
        everything downstream it is assigned after, and from no truth of a gradient it reads that is
        not downstream of it."""
        at = self.commit_index(name)
        plan = self.plan
        for other in plan.closure[name]:
            last = plan.last[other]
            if (last is None or last < at) and revealed.get(other, AT_END + 1) >= at:
                return False
        others = plan.reads.get(name, frozenset()) - plan.closure[name]
        return all(revealed.get(other, AT_END + 1) >= at for other in others)

    def run(self, sandbox: Sandbox, allowed: frozenset[str]) -> RunResult:
        """One isolated run: commit at every gradient's last assignment and wait there for what the
        ledger allows to be revealed."""
        plan = self.plan
        revealed: dict[str, int] = {}  # name -> the point where its truth was set in this run
        committed: dict[str, tuple[Value, Value]] = {}  # name -> (value committed here, snapshot)
        names_at = plan.snapshot_points(set(plan.graded))
        stops = sorted({BEFORE_ALL, *(i for i in plan.last.values() if i is not None)})
        points = tuple(Point(i, names_at.get(i, ()), waits=self.waits_at(i)) for i in stops)
        waiting = {p.index for p in points if p.waits}
        at_end = tuple(sorted(self.at_end & set(plan.graded)))

        def settle(name: str, value: Value, snapshot: Value, result: RunResult | None) -> None:
            if name in self.judged or not self.counts(name, revealed):
                return
            committed[name] = (value, snapshot)
            self.settled.add(name)

        def decide(commit: Commit) -> dict[str, torch.Tensor]:
            for name, value in commit.values.items():
                if name not in self.at_end:
                    settle(name, value, value, None)
            out: dict[str, torch.Tensor] = {}
            for g in plan.every:
                name = g.name
                due = plan.last[name] == commit.index or (plan.last[name] is None and name not in revealed)
                if name in allowed and due and name not in revealed and self.may_reveal(name):
                    out[name] = plan.truth[name]
                    revealed[name] = commit.index
            return out if commit.index in waiting else {}

        result = sandbox.run(Run(points, read_back=at_end), decide)
        for name in at_end:
            snapshot = result.commits.get(plan.last[name] or 0, {}).get(name)
            settle(name, result.values.get(name), snapshot, result)
        for name, (value, snapshot) in committed.items():
            self.judged[name] = Judged(value, result, snapshot)
        if result.died is not None or result.halted_at is not None:
            # What this run could not reach, it will not reach in another: judged as it stands. The commits
            # a dead child held back (where it did not wait) died with it: such a gradient's error is the death.
            for g in self.unjudged():
                reached = result.commits.get(plan.last[g.name] or 0, {})
                value = reached.get(g.name) if g.name not in self.at_end else result.values.get(g.name)
                self.judged[g.name] = Judged(value, result, reached.get(g.name))
                self.settled.add(g.name)
        return result


def isolated_runs(plan: Plan, sandbox: Sandbox, at_end: set[str]) -> Isolated:
    """Every graded gradient's isolated value, in as few runs as the program's order allows."""
    ledger = Reveals(plan, at_end)
    everything = frozenset(g.name for g in plan.every)
    runs = 0
    allowed = everything
    while ledger.pending() and runs <= len(plan.order):
        ledger.run(sandbox, allowed)
        runs += 1
        pending = ledger.pending()
        if not pending:
            break
        # Settle the first pending gradient for sure: hand it everything downstream, and keep back
        # what any pending gradient reads that is not downstream of it.
        first = pending[0]
        kept_back = frozenset().union(*(plan.reads.get(p.name, frozenset()) - plan.closure[p.name] for p in pending))
        allowed = plan.closure[first.name] | (everything - kept_back)
    return Isolated(ledger.judged, runs)
