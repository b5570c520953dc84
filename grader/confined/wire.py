"""The sandbox's wire format: a JSON header plus raw tensor bytes, checked on arrival.

One frame is: 4 bytes header length, 8 bytes payload length, the header (UTF-8 JSON
object), the payload (the tensors' bytes, back to back). The header's "tensors" entry
says, per name, the dtype, shape and byte count. Nothing is unpickled: a frame from
untrusted code can at worst be refused.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import torch

FRAME = struct.Struct("!IQ")
MAX_HEADER_BYTES = 4 << 20
MAX_PAYLOAD_BYTES = 256 << 20
MAX_DIM = 1 << 31
VIEW_BYTES = 64 << 10  # a payload up to this size is shared by its tensors; a larger one is copied, tensor by tensor
DTYPES = {
    "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
    "float64": torch.float64, "int8": torch.int8, "uint8": torch.uint8, "int16": torch.int16,
    "int32": torch.int32, "int64": torch.int64, "bool": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
NUMPY_DTYPES = frozenset(DTYPES.values()) - {torch.bfloat16}
ITEM_BYTES = {name: torch.empty((), dtype=dtype).element_size() for name, dtype in DTYPES.items()}
_JSON = json.JSONEncoder(check_circular=False)  # a header is plain data made by pack's callers: no cycles in it


class WireError(ValueError):
    """A frame that does not check out."""


def exact_reader(recv: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """What unpack reads through: exactly n bytes from `recv` (a socket's or a pipe's, up to n bytes
    a call, b"" at the end), or EOFError."""

    def read(n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    return read


class BufferedReader:
    """What unpack reads through where nothing but frames arrive (either end of a sandbox's channel):
    exactly n bytes, as a bytearray of their own, from a buffer that each `recv` fills with as much
    as is there (most often a whole frame, lengths, header and payload, in one call); EOFError at the end."""

    def __init__(self, recv: Callable[[int], bytes]) -> None:
        self.recv = recv
        self.buffer = bytearray()
        self.at = 0  # where the unread bytes begin

    def __call__(self, n: int) -> bytearray:
        buffer = self.buffer
        while len(buffer) - self.at < n:
            del buffer[:self.at]
            self.at = 0
            chunk = self.recv(min(max(n - len(buffer), 1 << 16), 1 << 20))
            if not chunk:
                raise EOFError
            buffer += chunk
        data = buffer[self.at:self.at + n]
        self.at += n
        if self.at == len(buffer):  # all read: nothing held between frames
            buffer.clear()
            self.at = 0
        return data


def sendable(t: torch.Tensor) -> bool:
    return t.dtype in DTYPE_NAMES


class Frame:
    """A frame built a tensor at a time: each one is turned into bytes as it is added, so what changes
    it afterwards changes nothing sent (the child holds commits back to send them in one frame)."""

    def __init__(self) -> None:
        self.meta: dict[str, list[Any]] = {}
        self.chunks: list[bytes] = []
        self.size = 0  # payload bytes so far

    def add(self, name: str, t: torch.Tensor) -> None:
        """`t` (a dtype in DTYPES) under `name`."""
        plain = t.detach()
        if t.dtype in NUMPY_DTYPES:
            data = plain.numpy().tobytes()  # in C order, whatever the tensor's strides
        else:  # bfloat16: numpy has no such type, so its bytes go as bytes
            flat = plain.contiguous().reshape(-1)
            data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        self.meta[name] = [DTYPE_NAMES[t.dtype], list(t.shape), len(data)]
        self.chunks.append(data)
        self.size += len(data)

    def pack(self, header: dict[str, Any]) -> bytes:
        """The frame: `header` with the tensors added so far."""
        head = _JSON.encode({**header, "tensors": self.meta}).encode()
        return b"".join([FRAME.pack(len(head), self.size), head, *self.chunks])


def pack(header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> bytes:
    """One frame holding `header` and the raw bytes of `tensors` (dtypes in DTYPES)."""
    frame = Frame()
    for name, t in tensors.items():
        frame.add(name, t)
    return frame.pack(header)


def unpack(recv_exact: Callable[[int], bytes | bytearray]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read one frame through `recv_exact(n)`; refuse anything malformed with WireError. Where the payload
    comes as a bytearray of its own, of at most VIEW_BYTES, its tensors are views of it (each its own bytes of
    it), not copies."""
    head_len, payload_len = FRAME.unpack(recv_exact(FRAME.size))
    if head_len > MAX_HEADER_BYTES or payload_len > MAX_PAYLOAD_BYTES:
        raise WireError("frame too large")
    raw = recv_exact(head_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError("header is not JSON") from exc
    except (RecursionError, MemoryError, ValueError) as exc:  # nested too deep, or numbers too long to read
        raise WireError("header is nested too deeply to read") from exc
    payload = recv_exact(payload_len)
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), dict):
        raise WireError("header is not an object with tensors")
    tensors: dict[str, torch.Tensor] = {}
    offset = 0
    for name, spec in header.pop("tensors").items():
        tensors[name], offset = _tensor(spec, payload, offset, name)
    if offset != len(payload):
        raise WireError("payload size does not match its tensors")
    return header, tensors


def _tensor(spec: Any, payload: bytes | bytearray, offset: int, name: str) -> tuple[torch.Tensor, int]:
    ok = (isinstance(spec, list) and len(spec) == 3 and spec[0] in DTYPES and isinstance(spec[1], list)
          and all(isinstance(d, int) and 0 <= d < MAX_DIM for d in spec[1]) and isinstance(spec[2], int))
    if not ok:
        raise WireError(f"bad entry for {name[:40]!r}")
    dtype = DTYPES[spec[0]]
    numel = 1
    for d in spec[1]:
        numel *= d
    size = numel * ITEM_BYTES[spec[0]]
    if size != spec[2] or offset + size > len(payload):
        raise WireError(f"{name[:40]!r} has the wrong number of bytes")
    if size == 0:
        return torch.empty(spec[1], dtype=dtype), offset
    if type(payload) is bytearray and len(payload) <= VIEW_BYTES and offset % ITEM_BYTES[spec[0]] == 0:
        # the frame's own bytes, aligned: no copy. A view locks the bytearray's size; a small payload keeps
        # little alive for a tensor kept (a tensor too large to be a gradient is dropped, its bytes with it).
        flat = torch.frombuffer(memoryview(payload), dtype=dtype, count=numel, offset=offset)
    else:
        flat = torch.frombuffer(bytearray(memoryview(payload)[offset:offset + size]), dtype=dtype)
    return (flat.view(*spec[1]) if spec[1] else flat.view(())), offset + size
