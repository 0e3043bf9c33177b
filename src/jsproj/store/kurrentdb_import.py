"""Importing events exported from KurrentDB: JSON Lines of what its clients read, into a store.

One line an event, in the order KurrentDB gave them (``$all``'s, or each stream's)::

    {"streamId": "cart-1", "eventType": "ItemAdded", "eventId": "<uuid>", "data": {...},
     "metadata": {...} or null, "created": "2026-03-01T10:00:00.1234567Z"}

Each event becomes one append message: its stream, the stream type KurrentDB's category rule gives (the
stream id before its first ``-``; the whole id where it has none), its id, its data, its metadata with the
original creation time under ``$created``, and that time as its timestamp. The whole file is checked before
anything is written; events whose id the store holds already are left out, so that importing a file again
appends nothing; the rest go in the file's order (each stream's order kept), a transaction per batch of at most
10,000 events and 500 streams: an import stopped halfway (a lost connection, a kill) is finished by running it
again.
docs/from-kurrentdb.md#importing-events says how to export them with KurrentDB's Python client.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jsproj import errors

if TYPE_CHECKING:
    from jsproj.store.sync import EventStore

#: Ids asked about at once when looking for events the store holds already.
ID_CHUNK = 10_000
#: A transaction's most events and streams: a store's export has streams by the million, and an append locks
#: its streams until it commits (in PostgreSQL's lock table, 64 a connection by default).
BATCH_EVENTS = 10_000
BATCH_STREAMS = 500
_OPTIONAL = ("metadata", "created")
_REQUIRED = ("streamId", "eventType", "eventId", "data")


@dataclass(frozen=True)
class Imported:
    """What an import did: events read from the file, appended, and left out as already in the store."""

    read: int
    appended: int
    skipped: int

    def to_dict(self) -> dict[str, int]:
        return {"read": self.read, "appended": self.appended, "skipped": self.skipped}


def stream_type(stream_id: str) -> str:
    """KurrentDB's default category of a stream (before its first ``-``), else the stream id itself."""
    at = stream_id.find("-")
    return stream_id[:at] if at > 0 and not stream_id.startswith("$") else stream_id


def _fail(line: int, message: str) -> errors.InvalidEventError:
    return errors.InvalidEventError(f"line {line}: {message}")


def _event(line: int, item: Any) -> dict[str, Any]:
    """One exported event checked, as an append message."""
    if not isinstance(item, dict):
        raise _fail(line, f"an exported event is a JSON object, not {type(item).__name__}")
    unknown = sorted(set(item) - set(_REQUIRED) - set(_OPTIONAL))
    missing = [key for key in _REQUIRED if key not in item]
    if missing or unknown:
        raise _fail(line, f"missing {', '.join(missing)}" if missing else f"unknown field {', '.join(unknown)}")
    stream, kind, data = item["streamId"], item["eventType"], item["data"]
    if not isinstance(stream, str) or not stream or not isinstance(kind, str) or not kind:
        raise _fail(line, "streamId and eventType are non-empty text")
    if kind.startswith("$"):
        raise _fail(line, f"{kind} is a KurrentDB system event: leave them out of the export (links, stream metadata)")
    try:
        event_id = str(uuid.UUID(str(item["eventId"])))
    except ValueError:
        raise _fail(line, f"eventId {item['eventId']!r} is not a UUID") from None
    if not isinstance(data, dict) or "$type" in data or "$id" in data:
        raise _fail(line, "data must be a JSON object without $type or $id (jsproj stores JSON events)")
    metadata, created = item.get("metadata"), item.get("created")
    if metadata is not None and not isinstance(metadata, dict):
        raise _fail(line, "metadata is a JSON object or null")
    event = {"$type": kind, "$id": event_id, **data}
    message: dict[str, Any] = {"id": stream, "type": stream_type(stream), "data": event}
    if created is not None:
        if not isinstance(created, str):
            raise _fail(line, "created is text (an ISO 8601 time)")
        message["timestamp"] = created
        metadata = {**(metadata or {}), "$created": created}
    if metadata:
        message["metadata"] = metadata
    return message


def read_export(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event of an export as ``(where, message)``, checked; an error names the first bad line."""
    messages = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise errors.EventsFileError(f"line {number}: not JSON: {exc.msg}", line=number) from None
        messages.append((f"line {number}", _event(number, item)))
    return messages


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), ID_CHUNK):
        yield items[start : start + ID_CHUNK]


def held_ids(store: EventStore, ids: list[str]) -> set[str]:
    """The ids among ``ids`` of events the store holds already."""
    held: set[str] = set()
    with store.connection() as conn:
        for chunk in _chunks(ids):
            rows = conn.execute("select id::text from pge_events where id = any(%s::uuid[])", (chunk,)).fetchall()
            held.update(row[0] for row in rows)
    return held


@dataclass(frozen=True)
class ImportPlan:
    """An export read and checked, less the events the store held when it was made: what :meth:`apply` appends."""

    read: int
    fresh: list[tuple[str, dict[str, Any]]]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [message for _, message in self.fresh]

    def apply(self, store: EventStore, *, on_progress: Callable[[int], None] | None = None) -> Imported:
        """Append the fresh events, a transaction per batch, in order; ``on_progress`` as ``append_all``'s."""
        for batch in batches(self.fresh):
            store.append_all([m for _, m in batch], where=[w for w, _ in batch], on_progress=on_progress)
        return Imported(read=self.read, appended=len(self.fresh), skipped=self.read - len(self.fresh))


def batches(messages: list[tuple[str, dict[str, Any]]]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """``messages`` in order, cut where a batch reaches :data:`BATCH_EVENTS` events or :data:`BATCH_STREAMS`
    streams: an append locks each of its streams until it commits, in PostgreSQL's lock table."""
    batch: list[tuple[str, dict[str, Any]]] = []
    streams: set[str] = set()
    for item in messages:
        if len(batch) >= BATCH_EVENTS or (item[1]["id"] not in streams and len(streams) >= BATCH_STREAMS):
            yield batch
            batch, streams = [], set()
        batch.append(item)
        streams.add(item[1]["id"])
    if batch:
        yield batch


def plan_import(store: EventStore, text: str) -> ImportPlan:
    """Read an export (``text``: JSON Lines, see the module) and leave out what ``store`` holds already."""
    messages = read_export(text)
    held = held_ids(store, [message["data"]["$id"] for _, message in messages])
    return ImportPlan(len(messages), [(w, m) for w, m in messages if m["data"]["$id"] not in held])


def import_kurrentdb(store: EventStore, text: str, *, on_progress: Callable[[int], None] | None = None) -> Imported:
    """Import an export into ``store``: idempotent on event ids (a second run appends nothing)."""
    return plan_import(store, text).apply(store, on_progress=on_progress)
