"""The sandbox's wire format: frames from the child are checked, and a bad one is refused.

The child runs untrusted code, so what it sends back may be malformed, truncated, oversized
or wrongly typed. unpack refuses each with a WireError (never a crash, never a pickle); the
sandbox turns any refusal or a cut-off answer into a `died` reason, in a sentence.
"""

from __future__ import annotations

import gc
import json
import os
import struct
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import torch

from grader.confined import sandbox as sandbox_module
from grader.confined.protocol import Case, Point, Raised, Ready, Run, encode
from grader.confined.unix import UnixSandbox
from grader.confined.wire import (
    DTYPES,
    FRAME,
    MAX_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    VIEW_BYTES,
    BufferedReader,
    WireError,
    exact_reader,
    pack,
    unpack,
)
from grader.courseware.course import Limits
from tests.conftest import MechanismOff, unix_only
from tests.forked import forked_here


def reader(data: bytes) -> Callable[[int], bytes]:
    """recv_exact over a byte string: EOFError when the frame is cut short, as a socket would."""
    view = memoryview(data)
    position = 0

    def recv_exact(n: int) -> bytes:
        nonlocal position
        if position + n > len(view):
            raise EOFError
        chunk = bytes(view[position:position + n])
        position += n
        return chunk

    return recv_exact


def frame(header: Any, payload: bytes = b"") -> bytes:
    head = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return FRAME.pack(len(head), len(payload)) + head + payload


def test_wire_round_trip_keeps_values_dtypes_and_shapes() -> None:
    """What pack sends, unpack reads back bit for bit, empty and 0-d tensors included."""
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5), "c": torch.empty(0, 2), "d": torch.tensor(2.5,
                                                                                                  dtype=torch.float64),
               "e": torch.empty(0, 3, dtype=torch.int64)}
    header, back = unpack(reader(pack({"values": {"x": 1}}, tensors)))
    assert header == {"values": {"x": 1}}
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and back[name].shape == t.shape and torch.equal(back[name], t)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_wire_round_trip_of_every_dtype_in_any_layout(dtype: torch.dtype) -> None:
    """Every dtype the wire carries, bfloat16 (which numpy lacks) too, laid out as code leaves it:
    transposed, sliced with a step, broadcast (stride 0), 0-d, empty."""
    base = (torch.arange(24) % 7).to(dtype).reshape(4, 6)
    tensors = {"plain": base, "transposed": base.T, "stepped": base[:, ::2], "broadcast": base[0].expand(3, 6),
               "scalar": base[1, 1], "empty": base[:0]}
    _, back = unpack(reader(pack({}, tensors)))
    for name, t in tensors.items():
        assert back[name].dtype == dtype and back[name].shape == t.shape and torch.equal(back[name], t), name
        assert back[name].is_contiguous()


class Trickle:
    """A stream's recv that hands at most `most` bytes a call, never more than asked: a socket under load."""

    def __init__(self, data: bytes, most: int) -> None:
        self.data, self.most, self.position = data, most, 0

    def recv(self, n: int) -> bytes:
        chunk = self.data[self.position:self.position + min(n, self.most)]
        self.position += len(chunk)
        return chunk


@pytest.mark.parametrize("most", [1, 7, 1 << 16])
def test_exact_reader_joins_a_frame_from_pieces_and_reads_no_further(most: int) -> None:
    """Frames that arrive in pieces (one byte a call, seven, or whole) are read whole and one by one,
    none of the next frame's bytes taken with them; the stream's end is an EOFError."""
    first = pack({"n": 1}, {"x": torch.arange(300, dtype=torch.float32)})
    second = pack({"n": 2}, {"y": torch.ones(2, 2, dtype=torch.int64)})
    read = exact_reader(Trickle(first + second, most).recv)
    one, two = unpack(read), unpack(read)
    assert one[0] == {"n": 1} and torch.equal(one[1]["x"], torch.arange(300, dtype=torch.float32))
    assert two[0] == {"n": 2} and torch.equal(two[1]["y"], torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(EOFError):
        read(1)


class Counted(Trickle):
    """A Trickle that counts its calls."""

    calls = 0

    def recv(self, n: int) -> bytes:
        self.calls += 1
        return super().recv(n)


@pytest.mark.parametrize("most", [1, 7, 1 << 16])
def test_buffered_reader_reads_frames_one_by_one_whatever_the_pieces(most: int) -> None:
    """The child's reader takes what a call brings, past the frame asked for, and hands the next frame
    from it: frames in pieces or whole come back one by one, the stream's end is an EOFError, and a
    frame that arrives whole takes one call, not one for its lengths, its header and its payload."""
    frames = [pack({"n": i}, {"x": torch.arange(i * 100, dtype=torch.float32)}) for i in range(1, 4)]
    stream = Counted(b"".join(frames), most)
    read = BufferedReader(stream.recv)
    for i in range(1, 4):
        header, tensors = unpack(read)
        assert header == {"n": i} and torch.equal(tensors["x"], torch.arange(i * 100, dtype=torch.float32))
    with pytest.raises(EOFError):
        read(1)
    if most == 1 << 16:
        assert stream.calls == 2  # the three frames in one call, then the end


def test_tensors_of_a_frame_are_its_own_bytes_and_each_others_untouched() -> None:
    """A payload's tensors are views of that frame's bytes: writing into one changes no other tensor of
    the frame, nothing of the next frame, and nothing the reader still holds. A tensor whose bytes do not
    start on a multiple of its element size (an int64 after three float32s) is copied, with its values."""
    first = pack({}, {"a": torch.ones(3), "b": torch.arange(4), "c": torch.full((2, 2), 7.0)})
    second = pack({}, {"d": torch.zeros(5)})
    read = BufferedReader(Trickle(first + second, 1 << 16).recv)
    _, one = unpack(read)
    assert torch.equal(one["b"], torch.arange(4)) and one["b"].dtype == torch.int64
    one["a"].add_(1)
    one["b"].mul_(10)
    assert torch.equal(one["c"], torch.full((2, 2), 7.0)) and torch.equal(one["a"], torch.full((3,), 2.0))
    assert torch.equal(one["b"], torch.arange(4) * 10)
    _, two = unpack(read)
    assert torch.equal(two["d"], torch.zeros(5))


def test_a_kept_tensor_of_a_large_frame_keeps_only_its_own_bytes() -> None:
    """A frame larger than VIEW_BYTES is copied tensor by tensor: a small tensor kept from it (a commit
    that also carried a tensor too large to be a gradient, which the grader drops) does not keep the
    whole frame alive. A small frame's tensors share its bytes."""
    big = pack({}, {"small": torch.ones(4), "huge": torch.zeros(1 << 20)})
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        _, tensors = unpack(BufferedReader(Trickle(big, 1 << 20).recv))
        kept = tensors["small"]
        del tensors
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert torch.equal(kept, torch.ones(4))
    assert held < 64 << 10, f"{held} bytes held for a tensor of 16"
    _, small = unpack(BufferedReader(Trickle(pack({}, {"a": torch.ones(4), "b": torch.zeros(4)}), 64).recv))
    assert small["b"].untyped_storage().data_ptr() - small["a"].untyped_storage().data_ptr() == 16
    assert len(big) > VIEW_BYTES


@pytest.mark.parametrize(("data", "words"), [
    (frame(b"{not json"), "header is not JSON"),
    (frame(b"\xff\xfe"), "header is not JSON"),
    (frame([1, 2]), "header is not an object with tensors"),
    (frame({"values": {}}), "header is not an object with tensors"),
    (frame({"tensors": {"x": ["complex128", [2], 32]}}, b"\0" * 32), "bad entry for 'x'"),
    (frame({"tensors": {"x": ["float32", [-1], 4]}}, b"\0" * 4), "bad entry for 'x'"),
    (frame({"tensors": {"x": ["float32", [2.0], 8]}}, b"\0" * 8), "bad entry for 'x'"),
    (frame({"tensors": {"x": ["float32", [2], "8"]}}, b"\0" * 8), "bad entry for 'x'"),
    (frame({"tensors": {"x": "float32"}}), "bad entry for 'x'"),
    (frame({"tensors": {"x": ["float32", [2], 4]}}, b"\0" * 8), "'x' has the wrong number of bytes"),
    (frame({"tensors": {"x": ["float32", [4], 16]}}, b"\0" * 8), "'x' has the wrong number of bytes"),
    (frame({"tensors": {"x": ["float32", [2], 8]}}, b"\0" * 12), "payload size does not match its tensors"),
    (FRAME.pack(MAX_HEADER_BYTES + 1, 0), "frame too large"),
    (FRAME.pack(10, MAX_PAYLOAD_BYTES + 1), "frame too large"),
], ids=["not-json", "not-utf8", "not-an-object", "no-tensors", "unknown-dtype", "negative-dim", "float-dim",
        "string-size", "entry-not-a-list", "size-lies", "payload-short", "payload-long", "header-oversized",
        "payload-oversized"])
def test_wire_refuses_a_bad_frame(data: bytes, words: str) -> None:
    """Each malformed, oversized or wrongly typed frame is refused with a WireError that says why."""
    with pytest.raises(WireError, match=words.replace("(", r"\(")):
        unpack(reader(data))


@pytest.mark.parametrize("cut", [3, FRAME.size + 5, -3])
def test_wire_truncated_frame_is_an_eof(cut: int) -> None:
    """A frame cut short (in its lengths, its header or its payload) ends as EOFError, never as a
    partial result."""
    data = pack({"values": {}}, {"x": torch.ones(4)})
    with pytest.raises(EOFError):
        unpack(reader(data[:cut]))


def answering_with(send: Callable[[Any], None]) -> Callable[..., None]:
    """A child that says it is ready, reads the case and the run, answers with what `send(sock)` writes,
    and exits."""
    def serve(sock: Any, *_args: Any, **_kwargs: Any) -> None:
        sock.sendall(encode(Ready({})))
        unpack(lambda n: _read(sock, n))  # the case
        unpack(lambda n: _read(sock, n))  # the run
        send(sock)
        sock.close()
    return serve


def _read(sock: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def end(**changes: Any) -> dict[str, Any]:
    """An End message's header, right in every field but those changed."""
    return {"type": "end", "values": {"x": "missing"}, "errors": {}, "output": "", "halted_at": None, "seconds": 0.0,
            "tensors": {}, **changes}


NESTED = b'{"type": "end", "values": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@unix_only
@pytest.mark.parametrize(("send", "died"), [
    (lambda sock: sock.sendall(frame(b"{not json")), "the sandbox sent an invalid answer (header is not JSON)"),
    (lambda sock: sock.sendall(frame(NESTED)), "the sandbox sent an invalid answer (header is nested too deeply "
                                               "to read)"),
    (lambda sock: sock.sendall(frame(end(values="all right"))),
     "the sandbox sent an invalid answer (values that are not an object of names)"),
    (lambda sock: sock.sendall(frame(end(values={"x": "tensor"}))),
     "the sandbox sent an invalid answer (no tensor sent for x)"),
    (lambda sock: sock.sendall(frame(end(errors={"one": [2, "x", None]}))),
     "the sandbox sent an invalid answer (malformed errors)"),
    (lambda sock: sock.sendall(frame(end(errors={"1": [2, ["x"], None]}))),
     "the sandbox sent an invalid answer (malformed errors)"),
    (lambda sock: sock.sendall(frame(end(errors={"1": ["x"]}))), "the sandbox sent an invalid answer (malformed "
                                                                 "errors)"),
    (lambda sock: sock.sendall(frame(end(errors={"1": ["2", "x", None]}))),
     "the sandbox sent an invalid answer (malformed errors)"),
    (lambda sock: sock.sendall(frame(end(errors={"1": [0, "x", None]}))),
     "the sandbox sent an invalid answer (malformed errors)"),
    (lambda sock: sock.sendall(frame(end(errors={"1": [2, "x" * 493, None]}))),
     "the sandbox sent an invalid answer (malformed errors)"),
    (lambda sock: sock.sendall(frame(end(errors={"1": [2, "x", 3]}))),
     "the sandbox sent an invalid answer (malformed errors)"),
    (lambda sock: sock.sendall(frame(end(values={"x": ["other", "T" * 1000]}))),
     "the sandbox sent an invalid answer (no valid entry for x)"),
    (lambda sock: sock.sendall(frame(end(values={"y": "missing"}))),
     "the sandbox sent an invalid answer (values for other variables than asked)"),
    (lambda sock: sock.sendall(frame(end(halted_at=True))), "the sandbox sent an invalid answer (malformed header)"),
    (lambda sock: sock.sendall(frame({"type": "commits", "commits": [[3, {}]], "tensors": {}})),
     "the sandbox sent an invalid answer (a commit where none was asked for)"),
    (lambda sock: sock.sendall(pack(end(values={"x": "tensor"}), {"x": torch.ones(3)})[:-4]),
     "your code ended the sandbox early (exit code 0)"),
    (lambda sock: sock.sendall(struct.pack("!IQ", MAX_HEADER_BYTES + 1, 0)),
     "the sandbox sent an invalid answer (frame too large)"),
], ids=["not-json", "nested-deep", "values-not-a-dict", "tensor-not-sent", "errors-badly-keyed",
        "errors-not-text", "errors-not-three-parts", "errors-line-not-a-number", "errors-line-not-a-line",
        "errors-longer-than-a-report-says", "errors-name-not-text", "type-name-too-long", "values-of-other-names",
        "halted-not-a-number", "commit-unasked", "truncated", "oversized"])
def test_sandbox_refuses_a_bad_answer(monkeypatch: pytest.MonkeyPatch, send: Callable[[Any], None],
                                      died: str) -> None:
    """Whatever the child sends back, the grader believes only a message that checks out in every field:
    anything else ends the sandbox with a reason, no value is taken from it, and nothing raises here."""
    monkeypatch.setattr("grader.confined.child.serve", answering_with(send))
    with forked_here(monkeypatch), UnixSandbox("x = 1", "<test>", Limits(time_s=5, memory_mb=256)) as box:
        box.case(Case({}, {}, {}, ("x",)))
        result = box.run(Run())
    assert result.died == died
    assert result.values == {"x": None}


@unix_only
def test_a_child_that_ends_itself_is_said_to_have_ended_so(monkeypatch: pytest.MonkeyPatch,
                                                           mechanism_off: MechanismOff) -> None:
    """A child that closes its channel and then takes a moment to exit is said to have exited with its
    own code, not to have been killed (over memory?) by the grader that did not wait for it."""
    def send(sock: Any) -> None:
        sock.close()
        time.sleep(0.2)
        os._exit(3)

    def check() -> None:
        monkeypatch.setattr("grader.confined.child.serve", answering_with(send))
        with forked_here(monkeypatch), UnixSandbox("x = 1", "<test>", Limits(time_s=5, memory_mb=256)) as box:
            box.case(Case({}, {}, {}, ("x",)))
            result = box.run(Run())
        assert result.died == "your code ended the sandbox early (exit code 3)"

    check()
    mechanism_off(check, lambda m: m.setattr(sandbox_module, "ENDING_GRACE_S", 0.0),
                  "waiting for a child whose channel closed to end by itself")


def commits(*entries: Any, tensors: dict[str, torch.Tensor] | None = None) -> bytes:
    """A Commits frame of `entries` ([index, values] each), with `tensors` under the names given."""
    return pack({"type": "commits", "commits": list(entries)}, tensors or {})


WAITS_AT_2 = Run((Point(1, ("x",)), Point(2, ("x",), waits=True), Point(3, ("x",))))


@unix_only
@pytest.mark.parametrize(("answer", "died"), [
    (pack({"type": "commits", "commits": {"1": {"x": "missing"}}}, {}), "commits that are not a list of commits"),
    (commits(), "commits that are not a list of commits"),
    (commits([1]), "a commit without a statement index"),
    (commits(["1", {"x": "missing"}]), "a commit without a statement index"),
    (commits([1, {"x": "missing"}], tensors={"1:x": torch.ones(2)}), "a tensor sent that no commit names"),
    (commits([1, {"x": "tensor"}], tensors={"00:x": torch.ones(2)}), "a tensor sent that no commit names"),
    (commits([1, {"x": "tensor"}], tensors={"x": torch.ones(2)}), "a tensor sent that no commit names"),
    (commits([1, {"x": "tensor"}], tensors={"9" * 5000 + ":x": torch.ones(2)}), "a tensor sent that no commit names"),
    (commits([1, {"x": "missing"}], tensors={"0:x": torch.ones(2)}), "tensors sent that no value names"),
    (commits([1, {"x": "missing"}], [2, {"x": "missing"}], [3, {"x": "missing"}]), "commits past a point that waits"),
    (commits([2, {"x": "missing"}]), "a commit where none was asked for"),
    (commits([1, {"x": "missing"}], [1, {"x": "missing"}]), "a commit where none was asked for"),
    (commits([1, {"y": "missing"}]), "a commit of other variables than asked"),
], ids=["not-a-list", "empty", "no-values", "index-not-a-number", "tensor-of-no-commit", "position-not-plain",
        "tensor-without-position", "position-too-long-for-int", "tensor-not-named",
        "past-a-wait", "out-of-order", "twice", "other-names"])
def test_sandbox_refuses_a_bad_commits_frame(monkeypatch: pytest.MonkeyPatch, answer: bytes, died: str) -> None:
    """One frame holds the commits a run held back: each is checked as if it came alone, every tensor
    belongs to one of them, and none may follow a point that waits, whose reveal the child had to wait for."""
    monkeypatch.setattr("grader.confined.child.serve", answering_with(lambda sock: sock.sendall(answer)))
    with forked_here(monkeypatch), UnixSandbox("x = 1", "<test>", Limits(time_s=5, memory_mb=256)) as box:
        box.case(Case({}, {}, {}, ("x",)))
        result = box.run(WAITS_AT_2, lambda commit: {})
    assert result.died == f"the sandbox sent an invalid answer ({died})"


@unix_only
def test_sandbox_takes_commits_held_back_and_reveals_where_the_run_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits up to a point that waits come in one frame, each decided on in order; the reveal goes
    back at that point, and the rest of the run's commits come with its End."""
    seen: list[tuple[int, object]] = []

    def send(sock: Any) -> None:
        sock.sendall(commits([1, {"x": "tensor"}], [2, {"x": "missing"}], tensors={"0:x": torch.ones(2)}))
        header, tensors = unpack(lambda n: _read(sock, n))
        assert header == {"type": "reveal"} and torch.equal(tensors["x"], torch.full((2,), 7.0))
        sock.sendall(commits([3, {"x": "tensor"}], tensors={"0:x": tensors["x"] * 2})
                     + pack(end(values={"x": "tensor"}), {"x": torch.zeros(1)}))

    def decide(commit: Any) -> dict[str, torch.Tensor]:
        seen.append((commit.index, commit.values["x"].tolist() if commit.values["x"] is not None else None))
        return {"x": torch.full((2,), 7.0)} if commit.index == 2 else {}

    monkeypatch.setattr("grader.confined.child.serve", answering_with(send))
    with forked_here(monkeypatch), UnixSandbox("x = 1", "<test>", Limits(time_s=5, memory_mb=256)) as box:
        box.case(Case({}, {}, {}, ("x",)))
        result = box.run(WAITS_AT_2, decide)
    assert result.died is None, result.died
    assert seen == [(1, [1.0, 1.0]), (2, None), (3, [14.0, 14.0])]
    assert torch.equal(result.commits[3]["x"], torch.full((2,), 14.0))  # type: ignore[arg-type]
    assert torch.equal(result.values["x"], torch.zeros(1))  # type: ignore[arg-type]


@unix_only
def test_sandbox_takes_a_good_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same fake child, answering right, is believed: the bad answers above fail for their one fault."""
    good = pack({"type": "end", "values": {"x": "tensor"}, "errors": {"1": [2, "oops", None], "3": [None, "x", "y"]},
                 "output": "hi", "halted_at": None, "seconds": 0.5}, {"x": torch.ones(3)})
    monkeypatch.setattr("grader.confined.child.serve", answering_with(lambda sock: sock.sendall(good)))
    with forked_here(monkeypatch), UnixSandbox("x = 1", "<test>", Limits(time_s=5, memory_mb=256)) as box:
        box.case(Case({}, {}, {}, ("x",)))
        result = box.run(Run())
    assert result.died is None and result.output == "hi"
    assert result.errors == {1: Raised(2, "oops"), 3: Raised(None, "x", "y")}
    assert torch.equal(result.values["x"], torch.ones(3))  # type: ignore[arg-type]
