"""Exercise 4: training runs driven by the student's backward pass, beside autograd's.

The student's code runs in the sandbox once per step and only ever computes gradients.
Everything else happens here, in the grader: the forward pass, the parameter update,
the losses, autograd's run on the same batches, and every comparison.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from grader.confined.child import SANDBOX_THREADS
from grader.confined.protocol import Case as CaseMessage
from grader.confined.protocol import Run, Value
from grader.confined.sandbox import RunResult, Sandbox
from grader.courseware.cases import Case, Setting, case_from, namespace_for
from grader.courseware.course import CaseSpec, Exercise, TrainingSpec
from grader.judging.compare import compare
from grader.judging.judge import CaseChecks, check_case, scored_as_written
from grader.judging.results import FullRun, TrainingResult
from grader.judging.vjp import VJPCheck, settle_with_vjp

Params = dict[str, torch.Tensor]


@contextmanager
def one_thread() -> Iterator[None]:
    """Time autograd as the sandbox runs student code: on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def lr_at(spec: TrainingSpec, step: int, steps: int) -> float:
    return spec.lr if step < steps // 2 else spec.lr_late


def usable(values: dict[str, Value], params: Params) -> dict[str, torch.Tensor] | str:
    """The student's gradients, ready to update with, or why they cannot be used."""
    grads = {}
    for name, p in params.items():
        g = values.get("d" + name)
        if not isinstance(g, torch.Tensor):
            return f"d{name} is {'missing' if g is None else 'not a tensor'}"
        if not g.is_floating_point() or g.numel() != p.numel():
            return f"d{name} does not have the shape of {name} {tuple(p.shape)}"
        if not bool(torch.isfinite(g).all()):
            return f"d{name} contains NaN or inf"
        grads[name] = g.reshape(p.shape).to(p.dtype)
    return grads


def autograd_step(setting: Setting, params: Params, Xb: torch.Tensor,
                  Yb: torch.Tensor) -> tuple[float, dict[str, torch.Tensor], float]:
    """Loss, gradients and backward time of one step, by autograd."""
    leaves = {k: p.detach().requires_grad_(True) for k, p in params.items()}
    with torch.enable_grad():
        loss = setting.graph.forward(leaves, Xb, Yb, setting.sizes)["loss"]
        with one_thread():
            started = time.perf_counter()
            loss.backward()  # type: ignore[no-untyped-call]
            seconds = time.perf_counter() - started
    return float(loss.detach()), {k: p.grad for k, p in leaves.items() if p.grad is not None}, seconds


@torch.no_grad()
def forward(setting: Setting, params: Params, Xb: torch.Tensor, Yb: torch.Tensor) -> Params:
    """One step's forward pass: what the student's code is given."""
    return setting.graph.forward(params, Xb, Yb, setting.sizes)


def truth_at(setting: Setting, params: Params, Xb: torch.Tensor, Yb: torch.Tensor) -> tuple[Params, Params]:
    """One step's forward pass (detached, what the student is given) and autograd's gradients
    of the parameters, at the student's own parameters."""
    leaves = {k: p.detach().requires_grad_(True) for k, p in params.items()}
    with torch.enable_grad():
        acts = setting.graph.forward(leaves, Xb, Yb, setting.sizes)
        acts["loss"].backward()  # type: ignore[no-untyped-call]
    return {k: a.detach() for k, a in acts.items()}, {k: p.grad for k, p in leaves.items() if p.grad is not None}


def student_step(sandbox: Sandbox, exercise: Exercise, params: Params, *, acts: Params, Xb: torch.Tensor,
                 Yb: torch.Tensor, sizes: dict[str, int]) -> tuple[float, dict[str, Value], float, str | None]:
    """Loss of this step (computed here), and the student's gradients (computed there)."""
    namespace = namespace_for(params, acts, Xb, Yb, sizes)
    tensors = {k: v for k, v in namespace.items() if isinstance(v, torch.Tensor)}
    sandbox.case(CaseMessage(tensors, {k: v for k, v in namespace.items() if k not in tensors}, {},
                             exercise.gradient_names))
    result = sandbox.run(Run())
    return float(acts["loss"]), result.values, result.seconds, result.died


def disagreeing(exercise: Exercise, screened: frozenset[str], values: dict[str, Value], truth: Params,
                vjp: dict[str, VJPCheck]) -> set[str]:
    """The screened gradients (those whose points go by their value as written) that disagree with
    autograd's on this step, by the rule the checkpoints judge them by (through_chain, the VJP check)."""
    wrong = set()
    for grad in exercise.gradients:
        if grad.name in screened:
            check = compare(grad, values.get(grad.name), truth[grad.tensor], None, through_chain=True)
            if not settle_with_vjp(grad, [check], vjp.get(grad.name))[0][0].status.passed:
                wrong.add(grad.name)
    return wrong


@dataclass
class QuickCheck:
    """What the quick check of exercise 4 collects on its way."""

    cases: list[Case] = field(default_factory=list)
    checks: list[CaseChecks] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    student_s: list[float] = field(default_factory=list)
    autograd_s: list[float] = field(default_factory=list)
    stopped: str | None = None
    died: str | None = None  # the sandbox ended (time, memory, a crash): no gradient can be trusted


def quick_check(exercise: Exercise, program: Any, setting: Setting, sandbox: Sandbox, *, seed: int | None = None,
                probe_seed: int = 0) -> QuickCheck:
    """Run check_steps steps of both runs; judge every gradient in full at the checkpoints.

    Between checkpoints, every step's gradients are screened against autograd's at the
    student's own parameters; the first step where one disagrees is judged in full too, so
    a backward pass that goes wrong only now and then cannot pass.
    """
    spec = exercise.training
    assert spec is not None
    seed = spec.seed if seed is None else seed  # drawn anew for a grading; both runs start from it
    mine, g = setting.parameters(seed)
    ref = {k: p.clone() for k, p in mine.items()}
    out = QuickCheck()
    screening = True  # until the first step judged in full for a disagreement not seen before
    known: set[str] = set()  # gradients already wrong at a step judged in full
    screened = scored_as_written(exercise, setting.graph)
    for step in range(spec.check_steps):
        Xb, Yb = setting.batch(g, spec.batch_size)
        lr = lr_at(spec, step, spec.check_steps)
        if out.stopped is None:
            judge_here = step in spec.checkpoints
            died = None
            if not judge_here:
                acts, truth = truth_at(setting, mine, Xb, Yb) if screening else (forward(setting, mine, Xb, Yb), {})
                loss, values, seconds, died = student_step(sandbox, exercise, mine, acts=acts, Xb=Xb, Yb=Yb,
                                                           sizes=setting.sizes)
                vjp = out.checks[0].vjp if out.checks else {}
                new_wrong = disagreeing(exercise, screened, values, truth, vjp) - known if screening else set()
                judge_here = died is None and bool(new_wrong)
                screening = screening and not judge_here
            if judge_here:
                case = case_from(CaseSpec(f"step {step}", seed, spec.batch_size), mine, Xb, Yb, setting=setting)
                checks = check_case(exercise, program, case, sandbox, vjp=step == 0, probe_seed=probe_seed)
                vjp = out.checks[0].vjp if out.checks else checks.vjp
                known |= disagreeing(exercise, screened, checks.values, case.truth, vjp)
                out.cases.append(case)
                out.checks.append(checks)
                loss, values, seconds = float(case.namespace["loss"]), checks.values, checks.seconds  # type: ignore[arg-type]
                died = sandbox.died
            grads = usable(values, mine) if died is None else died
            if isinstance(grads, str):
                out.stopped = f"your run stopped at step {step}: {grads}"
                out.died = died
            else:
                out.losses.append(loss)
                out.student_s.append(seconds)
                mine = {k: p - lr * grads[k] for k, p in mine.items()}
        loss, true_grads, seconds = autograd_step(setting, ref, Xb, Yb)
        out.reference.append(loss)
        out.autograd_s.append(seconds)
        ref = {k: (p - lr * true_grads[k]).detach() for k, p in ref.items()}
    return out


def training_result(spec: TrainingSpec, run: QuickCheck) -> TrainingResult:
    def mean_ms(xs: list[float]) -> float:
        return 1000 * sum(xs) / len(xs) if xs else 0.0

    return TrainingResult(spec.check_steps, tuple(run.losses), tuple(run.reference[:len(run.losses)]),
                          spec.loss_atol, run.stopped, mean_ms(run.student_s), mean_ms(run.autograd_s))


# --- the whole run ------------------------------------------------------------------


STEPS_PER_REQUEST = 64  # steps asked of the sandbox at once; the next goes when the last one's first answer arrives


def full_run(exercise: Exercise, setting: Setting, sandbox: Sandbox, steps: int,
             progress: Callable[[int, float], None]) -> FullRun:
    """The course's whole training run with the student's backward pass; Ctrl-C ends it early.

    The sandbox's child runs ahead on its own copy of the parameters (the course's forward
    pass, the student's backward pass, the update) and streams each step's gradients back.
    The grader applies the same update to its own copy, computes each step's loss from it,
    and stops at the first step whose gradients or loss cannot be used. The child never
    waits for the grader, so the two processes work side by side on two cores; both use
    one thread, so neither's thread pool fights the other's.
    """
    spec = exercise.training
    assert spec is not None
    with one_thread():
        params, g = setting.parameters(spec.seed)
        names, shapes = tuple(params), [p.shape for p in params.values()]
        sizes = [p.numel() for p in params.values()]
        wanted = tuple(f"d{name}" for name in names)
        flat = torch.cat([p.reshape(-1) for p in params.values()])
        mine = {name: part.view(shape)  # views: the in-place update below moves them
                for name, part, shape in zip(names, torch.split(flat, sizes), shapes, strict=True)}
        pending: deque[tuple[torch.Tensor, torch.Tensor, float]] = deque()  # asked for, not yet answered

        def ask(first: int) -> None:
            count = min(STEPS_PER_REQUEST, steps - first)
            batches = [setting.batch(g, spec.batch_size) for _ in range(count)]
            Xb, Yb = torch.stack([x for x, _ in batches]), torch.stack([y for _, y in batches])
            lrs = [lr_at(spec, step, steps) for step in range(first, first + count)]
            start = (setting.graph.source, params, setting.sizes) if first == 0 else None
            sandbox.send_steps(Xb, Yb, lrs, start=start)
            pending.extend(zip(Xb, Yb, lrs, strict=True))

        lossi: list[float] = []
        stopped = None
        interrupted = False
        started = time.monotonic()
        try:
            ask(0)
            for step in range(steps):
                answer = sandbox.next_step(flat.numel(), wanted)
                if step % STEPS_PER_REQUEST == 0 and step + STEPS_PER_REQUEST < steps:
                    ask(step + STEPS_PER_REQUEST)  # the child has read the last request: this one fits the socket
                Xb, Yb, lr = pending.popleft()
                why = step_problem(answer, mine, sandbox.died)
                loss = float(forward(setting, mine, Xb, Yb)["loss"]) if why is None else math.nan
                if why is None and not math.isfinite(loss):
                    why = f"the loss is {loss}"
                if why is not None:
                    stopped = f"stopped at step {step}: {why}"
                    break
                assert isinstance(answer, torch.Tensor)
                flat -= lr * answer  # in place, so `mine` follows; the child's own update, to the bit
                lossi.append(math.log10(loss))
                progress(step + 1, loss)
        except KeyboardInterrupt:
            stopped, interrupted = f"interrupted after {len(lossi)} steps", True
        seconds = time.monotonic() - started
        threads = {"grader": torch.get_num_threads(), "sandbox": SANDBOX_THREADS}
        if not lossi:
            return FullRun(0, steps, (), None, None, (), seconds, stopped, interrupted, threads)
        losses = setting.forward.evaluate(mine, setting.world, setting.sizes)
        # a net the student's gradients have made give a loss that is not finite has no names to sample
        samples = setting.forward.sample(mine, setting.world, setting.sizes,
                                         torch.Generator().manual_seed(spec.sample_seed), spec.samples) \
            if all(math.isfinite(v) for v in losses.values()) else ()
        return FullRun(len(lossi), steps, tuple(lossi), losses.get("train"), losses.get("val"), samples, seconds,
                       stopped, interrupted, threads)


def step_problem(answer: torch.Tensor | RunResult | None, params: Params, died: str | None) -> str | None:
    """Why one step's answer from the sandbox cannot be used to update `params`, or None."""
    if answer is None:
        return died or "the sandbox ended early"
    if isinstance(answer, RunResult):
        grads = usable(answer.values, params)
        return grads if isinstance(grads, str) else "the sandbox sent an invalid answer (usable gradients, refused)"
    if bool(answer.sum().isfinite()):  # a NaN or inf anywhere makes the sum one: a quarter of isfinite's time
        return None
    split = dict(zip(params, torch.split(answer, [p.numel() for p in params.values()]), strict=True))
    bad = (name for name, part in split.items() if not bool(torch.isfinite(part).all()))
    name = next(bad, None)  # None: every value is finite, only their sum overflowed; the loss says if it matters
    return None if name is None else f"d{name} contains NaN or inf"
