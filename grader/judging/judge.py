"""Judge a program's gradients against autograd: isolated and chained, on every case.

Isolated: for each gradient X, one run of the program in which every *upstream*
gradient Y (the gradient of a tensor computed from X's tensor) is replaced by its true
value right after the last statement that assigns it. X is then computed from true
inputs, so a slip earlier in the chain does not count twice.
Chained: one plain run, what the lecture's `cmp` would print for the code as written.

Points go by the isolated verdict where every gradient upstream of X is graded itself
(exercises 1-3), and by the value as written where X's gradient flows back through an
intermediate the exercise does not grade (exercise 4's intermediates: dlogits ... demb); there
the isolated run says whether X's own line is right, and the judged intermediates say which
intermediate is to blame (scored_as_written, blame).

Vector-Jacobian check (grader/judging/vjp.py): on the first case, X is also computed from
*random* gradients of its consumers and compared with autograd's product for them.

These are not one run per gradient: one shared run sets every gradient to its true (or,
for the VJP check, random) value right after its last assignment and reads each just
before, which is the same thing for code that only reads downstream gradients. A gradient
whose code reads another (statically), or that is changed in place later, gets a run of
its own (needs_own_run).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

import torch

from grader.confined.protocol import Raised, Value
from grader.confined.sandbox import RunResult, Sandbox
from grader.courseware.cases import Case
from grader.courseware.course import Exercise, Gradient
from grader.courseware.graph import Graph
from grader.intake.submission import Program
from grader.judging.compare import Check, compare
from grader.judging.diagnose import ADVICE, ANY_BATCH, Diagnosis, diagnose, diagnose_error, on_every_case
from grader.judging.probes import commit_points, held, own_names, reachable, slots_of
from grader.judging.results import GradientResult, Picture, Status, worst
from grader.judging.runs import AT_END, Plan, chained_run, isolated_runs, message_for, vjp_run
from grader.judging.vjp import VJPCheck, judge_vjp, settle_with_vjp, unit_randoms, unrun_vjp, vjp_plans


@dataclass(frozen=True)
class CaseChecks:
    isolated: dict[str, Check]
    chained: dict[str, Check]  # diagnosed where points go by the value as written
    intermediates: dict[str, Check]  # the ungraded intermediates the code assigns, as written, diagnosed
    vjp: dict[str, VJPCheck]
    output: str
    values: dict[str, Value]  # what the code as written assigned (the chained run)
    seconds: float  # how long the code as written took, in the sandbox


@functools.cache  # asked per gradient and per case; the answer is the exercise's and the graph's alone
def scored_as_written(exercise: Exercise, graph: Graph) -> frozenset[str]:
    """The gradients whose points go by the value the code as written produces: those whose
    gradient flows back through an intermediate the exercise does not grade."""
    intermediates = {h.tensor for h in exercise.intermediates}
    return frozenset(g.name for g in exercise.gradients if intermediates & graph.descendants(g.tensor))


def snapshot_of(result: RunResult, program: Program, name: str) -> Value:
    """The value `name` had right after its last assignment, in a run that committed it there."""
    stmt = program.last_assignment(name)
    return result.commits.get(stmt.index, {}).get(name) if stmt is not None else None


def error_for(program: Program, name: str, result: RunResult) -> str | None:
    """The exception of a statement that assigns `name`, or the exit that cut it off, as the student reads it."""
    if result.died is not None:
        return result.died
    if result.halted_at is not None:
        last = program.last_assignment(name)
        if last is None or last.index >= result.halted_at:
            stopper = error_text(program, result.halted_at, result.errors[result.halted_at])
            return f"your code ended early ({stopper}) before {name} was written"
    # Like the code's final value: a later statement that binds the name afresh and runs
    # clears an earlier failure; one that raises, or changes it in place after one, does not.
    error = None
    for stmt in program.statements:
        if name in stmt.assigns:
            if stmt.index in result.errors:
                error = error_text(program, stmt.index, result.errors[stmt.index])
            elif stmt.rebinds and name in stmt.rebinds:
                error = None
    return error


def error_text(program: Program, index: int, raised: Raised) -> str:
    """What stopped statement `index`, where the student finds it: `line 12: ZeroDivisionError: ...`, or
    `cell 5, line 3: ...` for code taken from a notebook. Only the grader's own line numbers are mapped:
    what the exception says is shown as it is."""
    if raised.unbound is not None:
        sentence = used_before_assigned(program, index, raised.unbound)
        if sentence is not None:
            return sentence
    where = f"{program.where(raised.line).described}: " if raised.line is not None else ""
    return f"{where}{raised.text}"


def used_before_assigned(program: Program, index: int, name: str) -> str | None:
    """For a NameError at statement `index` for a name a later line assigns: in a notebook it ran only
    because the kernel still held a value from an earlier run. Names both lines."""
    stmt = next((s for s in program.statements if s.index == index), None)
    later = next((s for s in program.statements if s.index > index and name in s.assigns), None)
    if stmt is None or later is None:
        return None
    return (f"{program.where(stmt.lineno).described}: {name} is used before {program.where(later.lineno).described} "
            "assigns it (in a notebook this runs only while the kernel still holds an older value; restart and run "
            f"all to see it). Move the line that assigns {name} above this one")


def backprop_order(exercise: Exercise, graph: Graph) -> list[Gradient]:
    """Gradients ordered so that each comes before every gradient computed from it.

    A gradient's isolated run is given the true values of gradients *downstream* of it;
    running them in this order means no run ever sees the truth it is judged against.
    """
    return sorted(exercise.gradients, key=lambda g: len(graph.descendants(g.tensor)))


def with_diagnosis(grad: Gradient, check: Check, *, value: Value, snapshot: Value, case: Case,
                   program: Program) -> Check:
    """Attach the transformation of the truth that explains a wrong value, if one does (or what an
    error says about the formula)."""
    if check.status is Status.ERROR:
        return replace(check, diagnosis=diagnose_error(grad.tensor, check.message, case))
    if check.status is not Status.WRONG or not isinstance(value, torch.Tensor) or not value.is_floating_point():
        return check
    last = program.last_assignment(grad.name)
    found = diagnose(grad.tensor, value, case.truth[grad.tensor], case,
                     snapshot=snapshot if isinstance(snapshot, torch.Tensor) else None,
                     assigned_line=last.lineno if last else None)
    return replace(check, diagnosis=found)


def changed_later(exercise: Exercise, program: Program, chained: RunResult) -> set[str]:
    """Gradients changed in place after their last assignment (through another name): their final
    value counts, so they are committed at the end of a run, not at their last assignment."""
    later = set()
    for grad in exercise.gradients:
        final, assigned = chained.values.get(grad.name), snapshot_of(chained, program, grad.name)
        if isinstance(final, torch.Tensor) and isinstance(assigned, torch.Tensor) and (
                final.shape != assigned.shape or not torch.equal(final, assigned)):
            later.add(grad.name)
    return later


def check_case(exercise: Exercise, program: Program, case: Case, sandbox: Sandbox, *, vjp: bool,
               probe_seed: int = 0) -> CaseChecks:
    """Isolated and chained checks of every gradient on one case (and the VJP checks if asked).

    The runs (grader/judging/runs.py), in this order: the chained run; with `vjp`, the runs with
    random consumer gradients; the isolated runs, which reveal each truth only once everything
    it could give away has been committed.
    """
    plan = Plan(exercise, program, case)
    sandbox.case(message_for(exercise, case))
    candidates = own_names(exercise, program, case) if vjp else {}
    chained_result = chained_run(plan, sandbox, also=commit_points(candidates))
    at_end = changed_later(exercise, program, chained_result)
    reads = plan.reads
    own = at_end | {g.name for g in exercise.gradients if reads.get(g.name, frozenset()) - plan.closure[g.name]}
    randoms = unit_randoms(exercise, case, probe_seed) if vjp else {}
    plans = vjp_plans(exercise, plan.order, case, randoms) if vjp else {}
    # A random gradient can only be handed to a variable that holds the gradient, before the line that
    # reads it (probes.py): where there is none, the check is left to what the graph alone says.
    slots = slots_of(plan, held(candidates, chained_result, case))
    commit_at = {g.name: AT_END if g.name in at_end or (last := plan.last[g.name]) is None else last
                 for g in exercise.gradients}
    unrun = {name: p for name, p in plans.items() if p is not None and not reachable(p, slots, commit_at[name])}
    plans = {name: p for name, p in plans.items() if name not in unrun}
    vjp_values: dict[str, Value] = {}
    if vjp:
        shared = vjp_run(plan, sandbox, randoms, set(plan.graded), slots)
        for g in exercise.gradients:
            vjp_values[g.name] = snapshot_of(shared, program, g.name)
        for g in plan.order:
            if g.name in own and plans.get(g.name) is not None:
                mine = vjp_run(plan, sandbox, randoms, {g.name}, slots, given_to=set(plan.closure[g.name]))
                vjp_values[g.name] = mine.values.get(g.name)
    judged = isolated_runs(plan, sandbox, at_end).judged
    as_written = scored_as_written(exercise, case.graph)
    isolated, chained, vjp_checks = {}, {}, {}
    for grad in exercise.gradients:
        truth = case.truth[grad.tensor]
        found = judged.get(grad.name)
        value = found.value if found is not None else None
        run = found.run if found is not None else chained_result
        check = compare(grad, value, truth, error_for(program, grad.name, run))
        isolated[grad.name] = with_diagnosis(grad, check, value=value, snapshot=found.snapshot if found else None,
                                             case=case, program=program)
        chained[grad.name] = as_written_check(grad, chained_result, case, program,
                                              diagnosed=grad.name in as_written)
        vjp_plan_of = plans.get(grad.name)
        if vjp_plan_of is not None and grad.name in vjp_values:
            vjp_checks[grad.name] = judge_vjp(vjp_values[grad.name], vjp_plan_of, truth)
        elif grad.name in unrun:
            vjp_checks[grad.name] = unrun_vjp(unrun[grad.name], truth)
    intermediates = {h.name: as_written_check(h, chained_result, case, program, diagnosed=True)
                     for h in exercise.intermediates if program.last_assignment(h.name) is not None}
    return CaseChecks(isolated, chained, intermediates, vjp_checks, chained_result.output, chained_result.values,
                      chained_result.seconds)


def as_written_check(grad: Gradient, chained: RunResult, case: Case, program: Program, *, diagnosed: bool) -> Check:
    """A gradient's final value in the plain run. Where it is diagnosed (its points, or the blame,
    go by it), it is judged as the result of a chain of float32 steps (compare's through_chain)."""
    value = chained.values.get(grad.name)
    check = compare(grad, value, case.truth[grad.tensor], error_for(program, grad.name, chained),
                    through_chain=diagnosed)
    if not diagnosed:
        return check
    return with_diagnosis(grad, check, value=value, snapshot=snapshot_of(chained, program, grad.name), case=case,
                          program=program)


@dataclass(frozen=True)
class Verdict:
    """One gradient's checks folded over the cases: status, the case that decided, and why."""

    status: Status
    at: int  # the index of the case that decided
    what: str  # what is wrong ("" when nothing is), before any advice
    diagnosis: Diagnosis | None  # why, when that can be shown; its label says what to try
    case_label: str | None


def fold(checks: list[Check], cases: list[Case]) -> Verdict:
    """The worst status over the cases, the case that decides it, and what to say about it."""
    status = worst([c.status for c in checks])
    alike = [c.diagnosis for c in checks if c.status is status]
    checks = [replace(c, diagnosis=on_every_case(c.diagnosis, alike)) if c.status is status else c for c in checks]
    # The case that decides: of those with the worst status, the clearest: one whose value a diagnosis
    # explains, then the first case, then the largest difference. (A shape mistake on the lecture's
    # batch can hide on another whose sizes happen to coincide.)
    at = min((i for i, c in enumerate(checks) if c.status is status),
             key=lambda i: (checks[i].diagnosis is None, i != 0, -(checks[i].maxdiff or 0.0)))
    decisive = checks[at]
    what, diagnosis, case_label = decisive.message, None, None
    if not status.passed and status is not Status.MISSING and len(cases) > 1:
        case_label = cases[at].label
    if status is Status.ERROR and checks[0].status.passed and cases[at].spec.batch_size != cases[0].spec.batch_size:
        first, there = cases[0].spec.described, cases[at].spec.described
        diagnosis = Diagnosis("hard-coded-batch", f"right on {first} but raises on {there}: "
                              f"{decisive.message}")
        what = diagnosis.message
    elif status is Status.ERROR and decisive.diagnosis is not None:
        diagnosis = decisive.diagnosis
        what = f"{decisive.message}: {diagnosis.message}"
    if status is Status.WRONG:
        prefix = ""
        if checks[0].status.passed and decisive.diagnosis is not None and decisive.diagnosis.label in ANY_BATCH:
            diagnosis = decisive.diagnosis  # it explains the value on any batch: the batch size is not the reason
            prefix = f"right on {cases[0].spec.described} but wrong on {cases[at].spec.described}: there "
        elif checks[0].status.passed and cases[at].spec.batch_size != cases[0].spec.batch_size:
            there = f": there {decisive.diagnosis.message}" if decisive.diagnosis else ""
            first, where = cases[0].spec.described, cases[at].spec.described
            diagnosis = Diagnosis("hard-coded-batch", f"right on {first} but wrong on {where}"
                                  f"{there}")
        elif checks[0].status.passed:
            what = f"right on {cases[0].spec.described} but wrong on {cases[at].spec.described}: {what}"
        elif decisive.diagnosis is not None:  # it explains the value of the case reported, exactly
            diagnosis = decisive.diagnosis
        if diagnosis is not None:
            diff = f" (maxdiff {decisive.maxdiff:.1e})" if decisive.maxdiff is not None else ""
            what = f"{prefix}{diagnosis.message}{diff}"
    return Verdict(status, at, what, diagnosis, case_label)


def batch_literals(program: Program, name: str, n: int) -> str:
    """Where the lecture's batch size (or n-1) is written as a number in the lines that compute `name`:
    ` (the 32 on line 12 is the batch size: write n)`, or nothing when none is."""
    found = []
    lines = program.source.splitlines()
    for stmt in program.statements:
        if name in stmt.assigns:
            for lineno in range(stmt.lineno, stmt.end_lineno + 1):
                code = lines[lineno - 1].split("#", 1)[0]
                found += [(m[0], lineno) for m in re.finditer(rf"(?<![\w.]){n}|(?<![\w.]){n - 1}(?![\w.])", code)]
    if not found:
        return ""
    literal, lineno = found[0]
    what = "the batch size" if literal == str(n) else "the batch size minus 1"
    fix = "n" if literal == str(n) else "n - 1"
    return f" (the {literal} on {program.where(lineno).described} is {what}: write {fix}, or the tensor's own shape)"


def first_wrong_intermediate(exercise: Exercise, grad: Gradient, graph: Graph, checks: CaseChecks) -> Gradient | None:
    """The first intermediate, in backprop order, that grad is computed through and that is wrong
    as written: where a chain of right lines first goes wrong."""
    descendants = graph.descendants(grad.tensor)
    for intermediate in sorted(exercise.intermediates, key=lambda h: len(graph.descendants(h.tensor))):
        check = checks.intermediates.get(intermediate.name)
        if intermediate.tensor in descendants and check is not None and not check.status.passed:
            return intermediate
    return None


def blame_text(intermediate: Gradient, check: Check, program: Program) -> str:
    """`dlogits (line 9) is wrong: it is n = 32 times the truth [scale]`."""
    stmt = program.last_assignment(intermediate.name)
    where = f" ({program.where(stmt.lineno).described})" if stmt is not None else ""
    why = f"{check.diagnosis.message} [{check.diagnosis.label}]" if check.diagnosis else check.message
    return f"{intermediate.name}{where} is wrong: {why}"


def summarize(grad: Gradient, exercise: Exercise, program: Program, cases: list[Case],
              per_case: list[CaseChecks]) -> GradientResult:
    """Fold one gradient's checks over the cases into its verdict, diagnosis and message."""
    vjp = per_case[0].vjp.get(grad.name)
    isolated_checks, vjp_note = settle_with_vjp(grad, [c.isolated[grad.name] for c in per_case], vjp)
    own = fold(isolated_checks, cases)
    as_written = grad.name in scored_as_written(exercise, cases[0].graph)
    checks = isolated_checks
    if as_written:
        checks, vjp_note = settle_with_vjp(grad, [c.chained[grad.name] for c in per_case], vjp)
    verdict = fold(checks, cases) if as_written else own
    # The message, from its parts: what is wrong; with a diagnosis's advice, where the batch size is
    # written as a number and what to try; what else is wrong; the hints; the notes.
    what, diagnosis, blame = verdict.what, verdict.diagnosis, None
    advice, also = verdict.diagnosis, ""
    if as_written and verdict.status is Status.WRONG:
        culprit = first_wrong_intermediate(exercise, grad, cases[verdict.at].graph, per_case[verdict.at])
        culprit_check = per_case[verdict.at].intermediates[culprit.name] if culprit else None
        if culprit is not None and culprit_check is not None:
            culprit_check = replace(culprit_check, diagnosis=on_every_case(culprit_check.diagnosis, [
                c.intermediates[culprit.name].diagnosis for c in per_case
                if culprit.name in c.intermediates and not c.intermediates[culprit.name].status.passed]))
        culprit_text = blame_text(culprit, culprit_check, program) if culprit and culprit_check else ""
        if own.status.passed and culprit is not None and culprit_check is not None:
            blame = culprit.name
            diagnosis = advice = culprit_check.diagnosis
            what = f"{grad.name}'s own line is right; it is wrong because {culprit_text}"
        elif own.status.passed:
            advice = None
            what = (f"{grad.name}'s own line is right given the true gradients it is computed from, so the "
                    f"mistake is upstream of it; name your intermediate gradients as the lecture does "
                    f"({', '.join(h.name for h in exercise.intermediates)}) and the grader will say which is wrong")
        else:
            diagnosis = advice = own.diagnosis
            what, also = own.what, (f"; {culprit_text} too" if culprit else "")
    hard_coded = diagnosis is not None and diagnosis.label == "hard-coded-batch"
    where = batch_literals(program, grad.name, cases[0].spec.batch_size) if hard_coded else ""
    to_try = f"{where}. Try: {ADVICE[advice.label]}" if advice is not None else ""
    hinted = verdict.status is Status.WRONG or hard_coded or (verdict.status is Status.ERROR and diagnosis is not None)
    hints = f" (hints: ninja-grade hint {exercise.id} {grad.name})" if hinted else ""
    notes = sorted({c.note for c in checks if c.note} | ({vjp_note} if vjp_note else set()))
    message = "; ".join(filter(None, [f"{what}{to_try}{also}{hints}", *notes]))
    diffs = [c.maxdiff for c in checks if c.maxdiff is not None]
    stmt = program.last_assignment(grad.name)
    drawn = checks[verdict.at].picture if verdict.status is Status.WRONG else None
    return GradientResult(
        name=grad.name,
        tensor=grad.tensor,
        status=verdict.status,
        chained=verdict.status if as_written else worst([c.chained[grad.name].status for c in per_case]),
        exact=all(c.exact for c in checks),
        approximate=all(c.approximate for c in checks),
        maxdiff=max(diffs) if len(diffs) == len(checks) else None,
        message=message,
        points=grad.points,
        line=stmt.lineno if stmt is not None else None,
        case=verdict.case_label,
        diagnosis=diagnosis.label if diagnosis else None,
        missing_branches=diagnosis.branches if diagnosis else (),
        judged="as written" if as_written else "isolated",
        isolated=own.status,
        blame=blame,
        picture=picture_of(drawn, cases[verdict.at].label) if drawn is not None else None,
    )


MAX_PICTURE = 20_000  # entries; every tensor of the lecture's nets is far smaller


def picture_of(drawn: tuple[torch.Tensor, torch.Tensor], case: str) -> Picture | None:
    """The truth and the difference as plain numbers for the results model."""
    truth, difference = drawn
    if truth.numel() > MAX_PICTURE:
        return None
    return Picture(tuple(truth.shape), tuple(truth.flatten().tolist()), tuple(difference.flatten().tolist()), case)


def all_error(exercise: Exercise, reason: str) -> tuple[GradientResult, ...]:
    """Every gradient `error` for one reason: the code did not parse, or broke the rules."""
    return tuple(
        GradientResult(g.name, g.tensor, Status.ERROR, Status.ERROR, False, False, None, reason, g.points)
        for g in exercise.gradients
    )


def judge(exercise: Exercise, program: Program, cases: list[Case], sandbox: Sandbox, *,
          probe_seed: int) -> tuple[tuple[GradientResult, ...], str]:
    """Every gradient of the exercise, judged on every case (the VJP check on the first, with random
    gradients from `probe_seed`); and what the code printed."""
    per_case = [check_case(exercise, program, case, sandbox, vjp=i == 0, probe_seed=probe_seed)
                for i, case in enumerate(cases)]
    results = tuple(summarize(g, exercise, program, cases, per_case) for g in exercise.gradients)
    return results, per_case[0].output


def with_left_out(results: tuple[GradientResult, ...], program: Program) -> tuple[GradientResult, ...]:
    """Each gradient whose last assignment is a left-out line: `error` with that line and why, since
    what the student meant was never computed. The others stand as judged."""
    out = []
    for g in results:
        lost = program.lost(g.name)
        if lost is None:
            out.append(g)
            continue
        message = (f"{lost.where.described}: {lost.reason}. That line was left out, so {g.name} was never computed; "
                   "the other gradients were judged without it")
        out.append(replace(g, status=Status.ERROR, chained=Status.ERROR, exact=False, approximate=False,
                           maxdiff=None, message=message, case=None, diagnosis=None, isolated=Status.ERROR,
                           blame=None, picture=None, missing_branches=()))
    return tuple(out)
