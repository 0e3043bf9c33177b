"""Reading events files in Python: a JSON array of append messages, one message, or JSON Lines.

The same formats and rules as the engine's ``parseEvents`` (js/lib/log.js);
used where messages go to the store as they are, so that ids stay unassigned
until PostgreSQL assigns them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsproj import errors


@dataclass(frozen=True)
class Message:
    """One append message and where it was in the file."""

    body: Any
    number: int
    line: int | None

    @property
    def where(self) -> str:
        return f"message {self.number}" + (f" (line {self.line})" if self.line else "")


#: A stream's tombstone's event type (docs/lifecycle.md#deleting-a-stream).
DELETED = "$deleted"


def decode(data: bytes, name: str) -> str:
    """An events file's text: UTF-8, or an :class:`~jsproj.errors.EventsFileError` naming the file, line and byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise errors.EventsFileError(
            f"{name}: line {line}: not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})",
            line=line,
            offset=exc.start,
        ) from None


def read(path: str | os.PathLike[str]) -> str:
    """The text of the events file at ``path`` (UTF-8, a BOM allowed)."""
    return decode(Path(path).read_bytes(), str(path))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def parse(text: str) -> list[Message]:
    """The messages of an events file, each with its number and line (JSON Lines and single objects)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    stripped = text.lstrip()
    if not stripped:
        return []
    if stripped[0] == "[":
        try:
            bodies = _loads(text)
        except ValueError as exc:
            raise _malformed(exc) from None
        return [Message(body, n + 1, None) for n, body in enumerate(bodies)]
    if stripped[0] == "{":
        try:
            return [Message(_loads(text), 1, text[: len(text) - len(stripped)].count("\n") + 1)]
        except ValueError:
            pass  # JSON Lines
    messages: list[Message] = []
    for number, row in enumerate(text.split("\n"), start=1):
        if not row.strip():
            continue
        try:
            messages.append(Message(_loads(row), len(messages) + 1, number))
        except ValueError as exc:
            raise _malformed(exc, number) from None
    return messages


def _malformed(exc: ValueError, line: int | None = None) -> errors.EventsFileError:
    """``line 2, column 13: not valid JSON: Expecting value``: where in the file (``line``: the JSON Lines row,
    whose own text is one line), then json's reason without its own position (relative to the row)."""
    line = line or getattr(exc, "lineno", None)
    column = getattr(exc, "colno", None)
    where = f"line {line}, column {column}: " if line and column else f"line {line}: " if line else ""
    return errors.EventsFileError(f"{where}not valid JSON: {getattr(exc, 'msg', exc)}", line=line)


def event_count(messages: Sequence[Any]) -> int:
    """How many events append messages hold (a message's ``data`` is one event or a list)."""
    return sum(len(m["data"]) if isinstance(m, dict) and isinstance(m.get("data"), list) else 1 for m in messages)


def as_messages(records: Sequence[Mapping[str, Any]], max_events: int = 1000) -> list[dict[str, Any]]:
    """Append messages for engine records (from ``Projections.normalize``): runs of one stream's events.

    The records' ids, timestamps and metadata are kept, so a store appended
    these messages holds the same events a simulation of the records sees. A
    stream's tombstone (``$deleted``) is a message of its own, and the message
    after it re-creates the stream with the tombstone's version as its
    expected version, as the events file had to (docs/lifecycle.md).
    """
    grouped: list[dict[str, Any]] = []
    deleted: set[str] = set()  # the streams whose last record so far is their tombstone
    for record in records:
        stream, tombstone = record["streamId"], record["event"]["$type"] == DELETED
        last = grouped[-1] if grouped else None
        if (
            last is not None
            and not tombstone
            and stream not in deleted
            and last["id"] == stream
            and last["timestamp"] == record["timestamp"]
            and last["metadata"] == record["metadata"]
            and len(last["data"]) < max_events
        ):
            last["data"].append(record["event"])
            continue
        message = {"id": stream, "type": record["streamType"], "timestamp": record["timestamp"],
                   "metadata": record["metadata"], "data": [record["event"]]}  # fmt: skip
        if stream in deleted:
            message["expected_version"] = record["version"] - 1
        grouped.append(message)
        deleted.discard(stream)
        if tombstone:
            deleted.add(stream)
    return grouped
