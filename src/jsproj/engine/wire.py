"""The framing between a Sandbox and its V8 worker: an 8-byte length, then the body."""

from __future__ import annotations

import struct
from typing import BinaryIO

HEADER = struct.Struct(">Q")
#: The request, besides the engine's operations, that replaces the worker's isolate with a new one.
RECYCLE = b"recycle"


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
