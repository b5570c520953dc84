"""The messages between the grader and the sandbox's child: one module, both sides import it.

Grader to child: Case (one forward pass, what the code is given), Run (a run of the whole
program, where to commit values and where to wait), Reveal (values to set now), Train (a
real training run's next steps), Done. Child to grader: Ready, Commits (the values of some
variables at one or more places of a run, in order; one frame holds every commit the child
held back until a point that waits, or until the run's end), End (what a run left, its errors
and output), and a training step's gradients (Step).

A run commits before anything is revealed: the child sends the value of a gradient at
its commit point and only then, if the point waits, receives what the grader decides to
set. The grader holds the truths and decides (grader/judging/judge.py); the child never
holds a truth before it has committed the values it is judged on.

Everything the child sends is decoded by `from_child`, which believes nothing: the exact
keys, types and sizes of each message, or a WireError. The grader's own messages to the
child are decoded by `for_child`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from grader.confined.wire import Frame, WireError, pack

BEFORE_ALL = -1  # a point or a preset before the first statement runs
MAX_NAME = 200  # characters of a variable name on the wire
MAX_NAMES = 4096
MAX_COMMITS = 1 << 16  # commits in one frame: a run commits once per point it asks for
MAX_ERRORS = 1000  # statements with an error, said in one run's end
MAX_ERROR_CHARS = 500  # of an error as a report says it, its `line 12: ` included
MAX_OUTPUT_CHARS = 5000
MAX_TYPE_NAME = 80


@dataclass(frozen=True)
class NotATensor:
    """A variable that holds something other than a plain tensor."""

    type_name: str


Value = torch.Tensor | NotATensor | None  # None: not assigned, None, or the stub's `...`


# --- grader to child -----------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One forward pass: the namespace's tensors and plain values, the gradients handed to the code
    (exercise 3's dhpreact), and the variables a run reads back by default."""

    tensors: dict[str, torch.Tensor]
    scalars: dict[str, Any]
    given_gradients: dict[str, torch.Tensor]
    wanted: tuple[str, ...]


@dataclass(frozen=True)
class Point:
    """A place in a run: right after statement `index` (or BEFORE_ALL), the child commits the values
    of `names`, then, if `waits`, waits for a Reveal before it runs the next statement."""

    index: int
    names: tuple[str, ...] = ()
    waits: bool = False


@dataclass(frozen=True)
class Run:
    """One run of the whole program on the current case.

    points: where to commit and wait, in the order the statements run (at most one per index);
    preset: values that are no truths (random probes) to set right after a statement's commit;
    read_back: variables committed when the run ends (None: the case's `wanted`).
    """

    points: tuple[Point, ...] = ()
    preset: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    read_back: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Reveal:
    values: dict[str, torch.Tensor]


@dataclass(frozen=True)
class TrainStart:
    """The first request of a real run: the forward pass's code, the parameters, the sizes."""

    graph: str
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    sizes: dict[str, int]
    params: torch.Tensor  # flat float32


@dataclass(frozen=True)
class Train:
    """The next steps of a real training run: their batches and learning rates."""

    Xb: torch.Tensor
    Yb: torch.Tensor
    lrs: tuple[float, ...]
    start: TrainStart | None = None


@dataclass(frozen=True)
class Done:
    pass


ToChild = Case | Run | Reveal | Train | Done


# --- child to grader -----------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The child is confined and waits for its first case; `held` says what confines it, by protection."""

    held: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Commit:
    index: int
    values: dict[str, Value]


@dataclass(frozen=True)
class Commits:
    """Commits in the order the run made them: the last may be at a point that waits, no other is."""

    commits: tuple[Commit, ...]


@dataclass(frozen=True)
class Raised:
    """What stopped one statement, as the child saw it. The line is a number of the submission's own
    file, never written into the text: the grader says where it is (in a notebook, its cell)."""

    line: int | None  # the last line of the submission's file it was raised in; None where none was
    text: str  # "ZeroDivisionError: division by zero", "memory limit of 512 MB reached"
    unbound: str | None = None  # a NameError's name: the grader says whether a later line assigns it


@dataclass(frozen=True)
class End:
    values: dict[str, Value]
    errors: dict[int, Raised]  # statement index -> what stopped it
    output: str = ""
    halted_at: int | None = None  # the statement that ended the program (sys.exit, out of memory)
    seconds: float = 0.0  # how long the statements took


@dataclass(frozen=True)
class Step:
    grads: torch.Tensor  # one training step's gradients, flat float32


FromChild = Ready | Commits | End | Step


# --- encoding --------------------------------------------------------------------------


def _values_out(values: dict[str, Value]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from grader.confined.wire import sendable  # noqa: PLC0415 - beside pack

    specs: dict[str, Any] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, value in values.items():
        if value is None:
            specs[name] = "missing"
        elif isinstance(value, NotATensor):
            specs[name] = ["other", value.type_name[:MAX_TYPE_NAME]]
        elif not sendable(value):
            specs[name] = ["other", f"tensor of dtype {value.dtype}"]
        else:
            specs[name] = "tensor"
            tensors[name] = value
    return specs, tensors


class HeldCommits:
    """The commits a run holds back, to go in one frame: each one's values are turned into bytes as it
    is added, before another line of graded code runs."""

    def __init__(self) -> None:
        self._frame = Frame()
        self._entries: list[list[Any]] = []

    def add(self, commit: Commit) -> None:
        specs, tensors = _values_out(commit.values)
        position = len(self._entries)
        for name, t in tensors.items():
            self._frame.add(f"{position}:{name}", t)
        self._entries.append([commit.index, specs])

    @property
    def size(self) -> int:
        """The bytes of the tensors held."""
        return self._frame.size

    def __len__(self) -> int:
        return len(self._entries)

    def take(self) -> bytes:
        """The frame of every commit held; none is held after."""
        frame = self._frame.pack({"type": "commits", "commits": self._entries})
        self._frame, self._entries = Frame(), []
        return frame


def _text_room(line: int | None) -> int:
    """How many characters an error's text may have: what a report says, `line 12: ` and the text,
    is at most MAX_ERROR_CHARS."""
    return MAX_ERROR_CHARS - (len(f"line {line}: ") if line else 0)


def _raised_out(error: Raised) -> list[Any]:
    unbound = error.unbound if error.unbound is not None and 0 < len(error.unbound) <= MAX_NAME else None
    return [error.line or None, error.text[:_text_room(error.line)], unbound]


def encode(message: ToChild | FromChild) -> bytes:
    """One frame for a message of either side."""
    if isinstance(message, Case):
        tensors = {f"t:{k}": v for k, v in message.tensors.items()}
        tensors.update({f"g:{k}": v for k, v in message.given_gradients.items()})
        return pack({"type": "case", "scalars": message.scalars, "wanted": list(message.wanted)}, tensors)
    if isinstance(message, Run):
        preset = {f"{i}:{name}": t for i, names in message.preset.items() for name, t in names.items()}
        return pack({"type": "run", "points": [[p.index, list(p.names), p.waits] for p in message.points],
                     "read_back": None if message.read_back is None else list(message.read_back)}, preset)
    if isinstance(message, Reveal):
        return pack({"type": "reveal"}, message.values)
    if isinstance(message, Train):
        header: dict[str, Any] = {"type": "train", "lrs": list(message.lrs)}
        tensors = {"Xb": message.Xb, "Yb": message.Yb}
        if message.start is not None:
            s = message.start
            header["start"] = {"graph": s.graph, "names": list(s.names), "shapes": [list(x) for x in s.shapes],
                               "sizes": s.sizes}
            tensors["params"] = s.params
        return pack(header, tensors)
    if isinstance(message, Done):
        return pack({"type": "done"}, {})
    if isinstance(message, Ready):
        return pack({"type": "ready", "held": message.held}, {})
    if isinstance(message, Commits):
        held = HeldCommits()
        for commit in message.commits:
            held.add(commit)
        return held.take()
    if isinstance(message, End):
        specs, tensors = _values_out(message.values)
        return pack({"type": "end", "values": specs,
                     "errors": {str(k): _raised_out(v) for k, v in list(message.errors.items())[:MAX_ERRORS]},
                     "output": message.output[:MAX_OUTPUT_CHARS], "halted_at": message.halted_at,
                     "seconds": message.seconds}, tensors)
    if isinstance(message, Step):
        return pack({"type": "step"}, {"grads": message.grads})
    raise TypeError(f"not a message: {type(message).__name__}")


def for_child(header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> ToChild:
    """The grader's message, in the child (the grader is trusted; the shapes are still typed)."""
    kind = header.get("type")
    if kind == "case":
        return Case({k[2:]: v for k, v in tensors.items() if k.startswith("t:")}, dict(header["scalars"]),
                    {k[2:]: v for k, v in tensors.items() if k.startswith("g:")}, tuple(header["wanted"]))
    if kind == "run":
        preset: dict[int, dict[str, torch.Tensor]] = {}
        for key, t in tensors.items():
            index, name = key.split(":", 1)
            preset.setdefault(int(index), {})[name] = t
        points = tuple(Point(int(i), tuple(names), bool(waits)) for i, names, waits in header["points"])
        read_back = header["read_back"]
        return Run(points, preset, None if read_back is None else tuple(read_back))
    if kind == "reveal":
        return Reveal(dict(tensors))
    if kind == "train":
        start = None
        if "start" in header:
            s = header["start"]
            start = TrainStart(str(s["graph"]), tuple(s["names"]), tuple(tuple(x) for x in s["shapes"]),
                               {str(k): int(v) for k, v in s["sizes"].items()}, tensors["params"])
        return Train(tensors["Xb"], tensors["Yb"], tuple(float(x) for x in header["lrs"]), start)
    return Done()


# --- what the child sends, checked -------------------------------------------------------


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # every control character but tab and newline
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON's \ud800 escapes decode to a str no UTF-8 can encode


def _plain(text: str) -> str:
    """Text from the child as every report may show it: no terminal escapes, bells or carriage returns
    (a student's print of ESC ] 52 would write to the clipboard of whoever reads the report), and each
    lone surrogate (an exception's text may hold one) a replacement character, so every format can
    write it."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def _is_int(x: object) -> bool:
    return type(x) is int and -(1 << 31) <= x < (1 << 31)


def _name(x: object) -> str:
    if type(x) is not str or not 0 < len(x) <= MAX_NAME:
        raise WireError("a variable name that is not a short string")
    return x


def _values_in(specs: object, tensors: dict[str, torch.Tensor], expected: tuple[str, ...] | None) -> dict[str, Value]:
    if type(specs) is not dict or len(specs) > MAX_NAMES:
        raise WireError("values that are not an object of names")
    if expected is not None and set(specs) != set(expected):
        raise WireError("values for other variables than asked")
    values: dict[str, Value] = {}
    for raw, spec in specs.items():
        name = _name(raw)
        if spec == "tensor" and type(spec) is str:
            if name not in tensors:
                raise WireError(f"no tensor sent for {name[:40]}")
            values[name] = tensors[name]
        elif spec == "missing" and type(spec) is str:
            values[name] = None
        elif (type(spec) is list and len(spec) == 2 and spec[0] == "other" and type(spec[1]) is str
              and len(spec[1]) <= MAX_TYPE_NAME):
            values[name] = NotATensor(_plain(spec[1]))
        else:
            raise WireError(f"no valid entry for {name[:40]}")
    if set(tensors) != {n for n, v in values.items() if isinstance(v, torch.Tensor)}:
        raise WireError("tensors sent that no value names")
    return values


def _commits_in(entries: object, tensors: dict[str, torch.Tensor]) -> tuple[Commit, ...]:
    """A Commits frame's commits: [[index, values], ...], at least one, each tensor named `position:name`
    for the commit at that position, every one of them named by its commit's values."""
    if type(entries) is not list or not 0 < len(entries) <= MAX_COMMITS:
        raise WireError("commits that are not a list of commits")
    own: list[dict[str, torch.Tensor]] = [{} for _ in entries]
    positions = {str(i): i for i in range(len(entries))}  # each commit's position as it is written, and only so
    for key, t in tensors.items():
        position, _, name = key.partition(":")
        at = positions.get(position)
        if at is None or not name:
            raise WireError("a tensor sent that no commit names")
        own[at][name] = t
    commits = []
    for entry, mine in zip(entries, own, strict=True):
        if not (type(entry) is list and len(entry) == 2 and _is_int(entry[0])):
            raise WireError("a commit without a statement index")
        commits.append(Commit(entry[0], _values_in(entry[1], mine, None)))
    return tuple(commits)


def _is_raised(x: object) -> bool:
    """An error as the child sends it: [line or null, text, a NameError's name or null]."""
    if type(x) is not list or len(x) != 3:
        return False
    line, text, unbound = x
    return ((line is None or (_is_int(line) and line > 0)) and type(text) is str
            and len(text) <= _text_room(line)
            and (unbound is None or (type(unbound) is str and 0 < len(unbound) <= MAX_NAME)))


def from_child(header: dict[str, Any], tensors: dict[str, torch.Tensor], *,
               expected: tuple[str, ...] | None = None) -> FromChild:
    """The child's message, believed only as far as it checks out: exact keys, types and sizes.
    `expected`: the names an End must carry values for, when the grader knows them."""
    kind = header.get("type")
    keys = set(header)
    if kind == "ready" and keys == {"type", "held"} and not tensors:
        held = header["held"]
        if not (type(held) is dict and len(held) <= 32 and all(
                type(k) is str and len(k) <= 40 and type(v) is str and len(v) <= 200 for k, v in held.items())):
            raise WireError("malformed ready")
        return Ready(held)
    if kind == "commits" and keys == {"type", "commits"}:
        return Commits(_commits_in(header["commits"], tensors))
    if kind == "end" and keys == {"type", "values", "errors", "output", "halted_at", "seconds"}:
        errors, output, halted, seconds = header["errors"], header["output"], header["halted_at"], header["seconds"]
        if not (type(errors) is dict and len(errors) <= MAX_ERRORS and all(_is_raised(v) for v in errors.values())):
            raise WireError("malformed errors")
        try:
            error_map = {int(k): Raised(line, _plain(text), unbound) for k, (line, text, unbound) in errors.items()}
        except ValueError as exc:
            raise WireError("malformed errors") from exc
        if not all(_is_int(k) for k in error_map):
            raise WireError("malformed errors")
        if not (type(output) is str and len(output) <= MAX_OUTPUT_CHARS and (halted is None or _is_int(halted))
                and type(seconds) in (int, float) and 0 <= seconds < 1e9):
            raise WireError("malformed header")
        return End(_values_in(header["values"], tensors, expected), error_map, _plain(output), halted, float(seconds))
    if kind == "step" and keys == {"type"} and set(tensors) == {"grads"}:
        return Step(tensors["grads"])
    raise WireError("malformed header")
