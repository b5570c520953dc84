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
import torch.nn.functional as F

from grader.confined.child import SANDBOX_THREADS
from grader.confined.runner import Run, RunResult, Value
from grader.confined.sandbox import Sandbox
from grader.courseware.cases import Case, Splits, case_from, init_parameters, namespace_for
from grader.courseware.course import CaseSpec, Exercise, TrainingSpec
from grader.courseware.graph import BN_EPS, TRAINING
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


def start(spec: TrainingSpec, splits: Splits) -> tuple[Params, torch.Generator]:
    """The lecture's exercise-4 initialisation; the same generator then draws the batches."""
    g = torch.Generator().manual_seed(spec.seed)
    return init_parameters(g, splits.vocab_size, spec.n_hidden, torch.float32), g


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


def autograd_step(params: Params, Xb: torch.Tensor, Yb: torch.Tensor) -> tuple[float, dict[str, torch.Tensor], float]:
    """Loss, gradients and backward time of one step, by autograd."""
    leaves = {k: p.detach().requires_grad_(True) for k, p in params.items()}
    with torch.enable_grad():
        loss = TRAINING.forward(leaves, Xb, Yb)["loss"]
        with one_thread():
            started = time.perf_counter()
            loss.backward()  # type: ignore[no-untyped-call]
            seconds = time.perf_counter() - started
    return float(loss.detach()), {k: p.grad for k, p in leaves.items() if p.grad is not None}, seconds


@torch.no_grad()
def forward(params: Params, Xb: torch.Tensor, Yb: torch.Tensor) -> Params:
    """One step's forward pass: what the student's code is given."""
    return TRAINING.forward(params, Xb, Yb)


def truth_at(params: Params, Xb: torch.Tensor, Yb: torch.Tensor) -> tuple[Params, Params]:
    """One step's forward pass (detached, what the student is given) and autograd's gradients
    of the parameters, at the student's own parameters."""
    leaves = {k: p.detach().requires_grad_(True) for k, p in params.items()}
    with torch.enable_grad():
        acts = TRAINING.forward(leaves, Xb, Yb)
        acts["loss"].backward()  # type: ignore[no-untyped-call]
    return {k: a.detach() for k, a in acts.items()}, {k: p.grad for k, p in leaves.items() if p.grad is not None}


def student_step(sandbox: Sandbox, exercise: Exercise, params: Params, *, acts: Params, Xb: torch.Tensor,
                 Yb: torch.Tensor, vocab_size: int) -> tuple[float, dict[str, Value], float, str | None]:
    """Loss of this step (computed here), and the student's gradients (computed there)."""
    given = namespace_for(params, acts, Xb, Yb, vocab_size)
    (result,) = sandbox.run_case(given, {}, [Run()], exercise.gradient_names)
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


def quick_check(exercise: Exercise, program: Any, splits: Splits, sandbox: Sandbox) -> QuickCheck:
    """Run check_steps steps of both runs; judge every gradient in full at the checkpoints.

    Between checkpoints, every step's gradients are screened against autograd's at the
    student's own parameters; the first step where one disagrees is judged in full too, so
    a backward pass that goes wrong only now and then cannot pass.
    """
    spec = exercise.training
    assert spec is not None
    mine, g = start(spec, splits)
    ref = {k: p.clone() for k, p in mine.items()}
    out = QuickCheck()
    screening = True  # until the first step judged in full for a disagreement not seen before
    known: set[str] = set()  # gradients already wrong at a step judged in full
    screened = scored_as_written(exercise, TRAINING)
    for step in range(spec.check_steps):
        ix = torch.randint(0, splits.Xtr.shape[0], (spec.batch_size,), generator=g)
        Xb, Yb = splits.Xtr[ix], splits.Ytr[ix]
        lr = lr_at(spec, step, spec.check_steps)
        if out.stopped is None:
            judge_here = step in spec.checkpoints
            died = None
            if not judge_here:
                acts, truth = truth_at(mine, Xb, Yb) if screening else (forward(mine, Xb, Yb), {})
                loss, values, seconds, died = student_step(sandbox, exercise, mine, acts=acts, Xb=Xb, Yb=Yb,
                                                           vocab_size=splits.vocab_size)
                vjp = out.checks[0].vjp if out.checks else {}
                new_wrong = disagreeing(exercise, screened, values, truth, vjp) - known if screening else set()
                judge_here = died is None and bool(new_wrong)
                screening = screening and not judge_here
            if judge_here:
                case = case_from(CaseSpec(f"step {step}", spec.seed, spec.batch_size), mine, Xb, Yb,
                                 graph=TRAINING, vocab_size=splits.vocab_size)
                checks = check_case(exercise, program, case, sandbox, vjp=step == 0)
                vjp = out.checks[0].vjp if out.checks else checks.vjp
                known |= disagreeing(exercise, screened, checks.values, case.truth, vjp)
                out.cases.append(case)
                out.checks.append(checks)
                loss, values, seconds = float(case.given["loss"]), checks.values, checks.seconds  # type: ignore[arg-type]
                died = sandbox.died
            grads = usable(values, mine) if died is None else died
            if isinstance(grads, str):
                out.stopped = f"your run stopped at step {step}: {grads}"
                out.died = died
            else:
                out.losses.append(loss)
                out.student_s.append(seconds)
                mine = {k: p - lr * grads[k] for k, p in mine.items()}
        loss, true_grads, seconds = autograd_step(ref, Xb, Yb)
        out.reference.append(loss)
        out.autograd_s.append(seconds)
        ref = {k: (p - lr * true_grads[k]).detach() for k, p in ref.items()}
    return out


def training_result(spec: TrainingSpec, run: QuickCheck) -> TrainingResult:
    def mean_ms(xs: list[float]) -> float:
        return 1000 * sum(xs) / len(xs) if xs else 0.0

    return TrainingResult(spec.check_steps, tuple(run.losses), tuple(run.reference[:len(run.losses)]),
                          spec.loss_atol, run.stopped, mean_ms(run.student_s), mean_ms(run.autograd_s))


# --- the lecture's whole run -------------------------------------------------------


@torch.no_grad()
def split_loss(params: Params, X: torch.Tensor, Y: torch.Tensor, bnmean: torch.Tensor, bnvar: torch.Tensor) -> float:
    """Loss on a whole split, with batchnorm's statistics calibrated on the training set."""
    embcat = params["C"][X].view(X.shape[0], -1)
    hpreact = params["bngain"] * (embcat @ params["W1"] + params["b1"] - bnmean) * (bnvar + BN_EPS) ** -0.5 \
        + params["bnbias"]
    logits = torch.tanh(hpreact) @ params["W2"] + params["b2"]
    return float(F.cross_entropy(logits, Y))


@torch.no_grad()
def calibrate(params: Params, Xtr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hpreact = params["C"][Xtr].view(Xtr.shape[0], -1) @ params["W1"] + params["b1"]
    return hpreact.mean(0, keepdim=True), hpreact.var(0, keepdim=True, unbiased=True)


@torch.no_grad()
def sample(params: Params, bnmean: torch.Tensor, bnvar: torch.Tensor, itos: dict[int, str], *, count: int,
           seed: int, block_size: int = 3) -> tuple[str, ...]:
    """Names from the trained net, as the lecture samples them."""
    g = torch.Generator().manual_seed(seed)
    names = []
    for _ in range(count):
        out, context = [], [0] * block_size
        while True:
            embcat = params["C"][torch.tensor([context])].view(1, -1)
            hpreact = params["bngain"] * (embcat @ params["W1"] + params["b1"] - bnmean) \
                * (bnvar + BN_EPS) ** -0.5 + params["bnbias"]
            probs = F.softmax(torch.tanh(hpreact) @ params["W2"] + params["b2"], dim=1)
            ix = int(torch.multinomial(probs, num_samples=1, generator=g).item())
            context = [*context[1:], ix]
            out.append(ix)
            if ix == 0:
                break
        names.append("".join(itos[i] for i in out))
    return tuple(names)


STEPS_PER_REQUEST = 64  # steps asked of the sandbox at once; the next goes when the last one's first answer arrives


def full_run(exercise: Exercise, splits: Splits, sandbox: Sandbox, steps: int,
             progress: Callable[[int, float], None]) -> FullRun:
    """The lecture's training run with the student's backward pass; Ctrl-C ends it early.

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
        params, g = start(spec, splits)
        names, shapes = tuple(params), [p.shape for p in params.values()]
        sizes = [p.numel() for p in params.values()]
        wanted = tuple(f"d{name}" for name in names)
        flat = torch.cat([p.reshape(-1) for p in params.values()])
        mine = {name: part.view(shape)  # views: the in-place update below moves them
                for name, part, shape in zip(names, torch.split(flat, sizes), shapes, strict=True)}
        pending: deque[tuple[torch.Tensor, torch.Tensor, float]] = deque()  # asked for, not yet answered

        def ask(first: int) -> None:
            count = min(STEPS_PER_REQUEST, steps - first)
            batches = [torch.randint(0, splits.Xtr.shape[0], (spec.batch_size,), generator=g) for _ in range(count)]
            Xb, Yb = splits.Xtr[torch.stack(batches)], splits.Ytr[torch.stack(batches)]
            lrs = [lr_at(spec, step, steps) for step in range(first, first + count)]
            sandbox.send_steps(Xb, Yb, lrs, start=("training", params, splits.vocab_size) if first == 0 else None)
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
                loss = float(forward(mine, Xb, Yb)["loss"]) if why is None else math.nan
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
        params = mine
        bnmean, bnvar = calibrate(params, splits.Xtr)
        return FullRun(
            len(lossi), steps, tuple(lossi),
            split_loss(params, splits.Xtr, splits.Ytr, bnmean, bnvar),
            split_loss(params, splits.Xdev, splits.Ydev, bnmean, bnvar),
            sample(params, bnmean, bnvar, splits.itos, count=spec.samples, seed=spec.sample_seed), seconds, stopped,
            interrupted, threads,
        )


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


def save_loss_plot(lossi: tuple[float, ...], path: str) -> str:
    """The lecture's loss curve: log10 loss, averaged over windows of steps."""
    import matplotlib  # noqa: PLC0415 - only the full run draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    window = 1000 if len(lossi) >= 20_000 else max(1, len(lossi) // 20)
    usable_steps = len(lossi) // window * window
    curve = torch.tensor(lossi[:usable_steps]).view(-1, window).mean(1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([(i + 1) * window for i in range(len(curve))], curve.tolist())
    ax.set_xlabel("step")
    ax.set_ylabel(f"log10 loss (mean over {window} steps)")
    ax.set_title("exercise 4: training with your backward pass")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
