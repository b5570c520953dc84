"""The results model: plain frozen values, no grading logic, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    """The verdict on one gradient (docs/DESIGN.md). EXACT and APPROXIMATE pass."""

    EXACT = "exact"
    APPROXIMATE = "approximate"
    WRONG = "wrong"
    MISSING = "missing"
    ERROR = "error"

    @property
    def passed(self) -> bool:
        return self in (Status.EXACT, Status.APPROXIMATE)

    @property
    def severity(self) -> int:
        return list(Status).index(self)


PASSING = tuple(s.value for s in Status if s.passed)  # the statuses a report's JSON says pass
STATUSES = tuple(s.value for s in Status)  # every status, in order of severity


def passing(status: object) -> bool:
    """Whether a status read from a report's JSON passes (an unknown one does not)."""
    return status in PASSING


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=lambda s: s.severity)


@dataclass(frozen=True)
class Picture:
    """A wrong gradient, to look at: the truth and your value minus it, on one case, as plain numbers
    (row-major, of `shape`). Drawn by grader/reporting/pictures.py; not part of the JSON report."""

    shape: tuple[int, ...]
    truth: tuple[float, ...]
    difference: tuple[float, ...]
    case: str


@dataclass(frozen=True)
class GradientResult:
    """One gradient, judged on every case.

    `status` is the verdict points go by. `judged` says which: "isolated" (given correct
    upstream gradients; where every gradient the code reads is itself graded) or "as
    written" (the value the code produces, where it is computed through intermediate
    gradients that are not graded: exercise 4). `isolated` is the verdict on the
    gradient's own line; `chained` is what the lecture's cmp line prints for the code as
    written. `blame` names the ungraded intermediate that makes an as-written value
    wrong when its own line is right.
    """

    name: str
    tensor: str
    status: Status
    chained: Status
    exact: bool
    approximate: bool
    maxdiff: float | None
    message: str
    points: float
    line: int | None = None  # where the gradient is last assigned
    case: str | None = None  # the case that decided a failing status
    diagnosis: str | None = None
    judged: str = "isolated"  # or "as written"
    isolated: Status | None = None  # the own line's verdict; None: the same as status
    blame: str | None = None  # the wrong intermediate gradient it is computed from
    # [missing-branch]: the forward edges (tensor, consumer) whose contribution the gradient leaves out
    missing_branches: tuple[tuple[str, str], ...] = ()
    picture: Picture | None = field(default=None, repr=False, compare=False)  # a wrong value, to draw

    @property
    def passed(self) -> bool:
        return self.status.passed

    @property
    def score(self) -> float:
        return self.points if self.passed else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tensor": self.tensor,
            "status": self.status.value,
            "chained": self.chained.value,
            "exact": self.exact,
            "approximate": self.approximate,
            "maxdiff": self.maxdiff,
            "message": self.message,
            "diagnosis": self.diagnosis,
            "points": plain_number(self.points),
            "score": plain_number(self.score),
            "line": self.line,
            "case": self.case,
            "judged": self.judged,
            "isolated": (self.isolated or self.status).value,
            "blame": self.blame,
            "missing_branches": [list(edge) for edge in self.missing_branches],
        }


def plain_number(x: float) -> float | int:
    """26.0 as 26, for reports and gradebooks; 0.5 stays 0.5."""
    return int(x) if float(x).is_integer() else x


@dataclass(frozen=True)
class TrainingResult:
    """The quick check's run: the student's gradients against autograd's, step by step."""

    planned: int
    losses: tuple[float, ...]  # the run driven by the student's gradients
    reference: tuple[float, ...]  # autograd's run, same initialisation, same batches
    loss_atol: float
    stopped: str | None  # why the student's run ended early
    student_ms: float  # mean backward time per step, in the sandbox, one thread
    autograd_ms: float  # mean loss.backward() time per step, here, one thread

    @property
    def max_diff(self) -> float:
        diffs = [abs(a - b) for a, b in zip(self.losses, self.reference, strict=False)]
        return max(diffs) if diffs else float("inf")

    @property
    def agreed(self) -> bool:
        return self.stopped is None and len(self.losses) == self.planned and self.max_diff <= self.loss_atol

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": len(self.losses), "planned": self.planned, "agreed": self.agreed, "stopped": self.stopped,
            "final_loss": self.losses[-1] if self.losses else None,
            "final_loss_autograd": self.reference[-1] if self.reference else None,
            "max_loss_diff": self.max_diff if self.losses else None, "loss_atol": self.loss_atol,
            "backward_ms": round(self.student_ms, 4), "autograd_backward_ms": round(self.autograd_ms, 4),
        }


@dataclass(frozen=True)
class FullRun:
    steps: int
    planned: int
    lossi: tuple[float, ...]  # log10 of each step's loss, as the lecture keeps it
    train_loss: float | None
    val_loss: float | None
    samples: tuple[str, ...]
    seconds: float
    stopped: str | None  # why it ended early: interrupted, or the student's gradients
    interrupted: bool = False  # Ctrl-C ended it (exit 130), as opposed to the student's gradients
    threads: dict[str, int] = field(default_factory=dict)  # torch's threads, per process: grader, sandbox

    def to_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "planned": self.planned, "train_loss": self.train_loss,
                "val_loss": self.val_loss, "samples": list(self.samples), "seconds": round(self.seconds, 1),
                "stopped": self.stopped, "interrupted": self.interrupted, "threads": self.threads}


@dataclass(frozen=True)
class Report:
    exercise: str
    title: str
    submission: str
    gradients: tuple[GradientResult, ...]
    notes: tuple[str, ...] = ()  # about the data or the submission as a whole
    output: str = ""  # what the student's code printed (chained run, lecture case)
    start: str = ""  # how to begin, shown when nothing is written yet
    cases: tuple[dict[str, Any], ...] = field(default=())
    training: TrainingResult | None = None  # exercise 4: the run with the student's gradients
    sandbox: dict[str, str] = field(default_factory=dict)  # what confined the code, as it held at grading
    # where it was graded, captured then (judging/environment.py): torch, python, platform, threads, sandbox
    environment: dict[str, Any] = field(default_factory=dict)
    draw: dict[str, Any] = field(default_factory=dict)  # where its cases and probes came from (draw.py)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gradients) and (self.training is None or self.training.agreed)

    @property
    def score(self) -> float:
        return sum(g.score for g in self.gradients)

    @property
    def max_score(self) -> float:
        return sum(g.points for g in self.gradients)

    @property
    def untouched(self) -> bool:
        return all(g.status is Status.MISSING for g in self.gradients)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exercise": self.exercise,
            "submission": self.submission,
            "passed": self.passed,
            "score": plain_number(self.score),
            "max_score": plain_number(self.max_score),
            "gradients": [g.to_dict() for g in self.gradients],
            "notes": list(self.notes),
            "output": self.output,
            "cases": list(self.cases),
            **({"draw": dict(self.draw)} if self.draw else {}),
            **({"training": self.training.to_dict()} if self.training else {}),
        }


# --- the JSON report: its one builder, for every writer ----------------------------------


def json_report(reports: list[Report], environment: dict[str, Any]) -> dict[str, Any]:
    """The JSON report of one submission: one exercise's report with its environment, or, for several
    exercises, the submission, whether all passed, each exercise's report, and the environment."""
    if len(reports) == 1:
        return {**reports[0].to_dict(), "environment": environment}
    return {"submission": reports[0].submission if reports else "", "passed": all(r.passed for r in reports),
            "exercises": [r.to_dict() for r in reports], "environment": environment}


def error_report(exercise: str, submission: str, max_score: float, error: str) -> dict[str, Any]:
    """The JSON report of a submission that could not be graded at all: no gradients, no points, and why."""
    return {"exercise": exercise, "submission": submission, "passed": False, "score": 0,
            "max_score": plain_number(max_score), "gradients": [], "error": error}
