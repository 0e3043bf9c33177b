"""The framing between a Sandbox and its V8 worker: an 8-byte length, then the body."""

from __future__ import annotations

import struct
from typing import BinaryIO

HEADER = struct.Struct(">Q")
#: The requests, besides the engine's operations, that ready a worker for the next sandbox: RECYCLE replaces
#: its isolate with a new one; RENEW makes a new engine in the same context, for a sandbox that shares it (its
#: ``context`` key: sandbox.py). Never an operation a caller can send.
RECYCLE = b"recycle"
RENEW = b"renew"
#: Sent by the sandbox that takes a waiting worker made for other limits: its time and memory limits from now on.
LIMITS = b"limits"
CONTROL = frozenset({RECYCLE, RENEW, LIMITS})


def read_frame(stream: BinaryIO) -> bytes | None:
    """One frame's body, or None at end of input."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def write_frame(stream: BinaryIO, body: bytes) -> None:
    stream.write(HEADER.pack(len(body)) + body)
    stream.flush()
