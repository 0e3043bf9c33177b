"""What the store returns: an append's result, recorded events, streams; and JSON as read from PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jsproj import errors


def load_json(data: str | bytes) -> Any:
    """JSON from PostgreSQL as Python values, with a clear error for what Python cannot read.

    jsonb holds nesting far deeper than Python's recursive JSON reader: such
    a document was stored before jsproj limited documents to 512 levels, or
    written by SQL. Reading it is a :class:`~jsproj.errors.UnreadableDocumentError`,
    never a ``RecursionError`` traceback.
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise errors.UnreadableDocumentError(
            "stored JSON is nested deeper than Python can read (jsproj keeps documents within 512 levels; this one "
            "was stored before that limit, or by SQL): read it with SQL (data::text), or rebuild its projection"
        ) from None


def not_archived(alias: str) -> str:
    """That a row ``alias`` of pge_events is not of an archived stream (docs/lifecycle.md): archived streams are
    few, so this is one hashed list of them per query."""
    return f"{alias}.stream_id not in (select a.id from pge_streams a where a.archived_at is not null)"  # noqa: S608 -- alias: jsproj's own


#: :func:`not_archived` for rows ``e``.
NOT_ARCHIVED = not_archived("e")

#: A stream's version (for a row ``s`` of pge_streams): as its row keeps it, else (a row from before migration 0018,
#: sql/functions/events.sql) its last event's.
STREAM_VERSION = "coalesce(s.version, (select max(version) from pge_events where stream_id = s.id), 0)"


@dataclass(frozen=True)
class AppendResult:
    """What one append did: the stream, its new version, and the events' global positions."""

    stream_id: str
    version: int
    positions: list[int]
    #: the WAL position after its commit, where the store reads from replicas (docs/replicas.md): a read given
    #: it as ``min_lsn`` sees the append
    lsn: str | None = None

    def to_dict(self) -> dict[str, Any]:
        done = {"streamId": self.stream_id, "version": self.version, "positions": self.positions}
        return done if self.lsn is None else {**done, "lsn": self.lsn}


@dataclass(frozen=True)
class RecordedEvent:
    """An event as stored."""

    position: int
    event_id: str
    stream_id: str
    stream_type: str
    version: int
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] | None
    timestamp: datetime
    #: When it was appended (the store's clock, its transaction's start): what ``since``/``until`` filter on.
    appended_at: datetime | None = None

    @property
    def event(self) -> dict[str, Any]:
        """The event as appended: ``{"$type", "$id", ...data}``."""
        return {"$type": self.type, "$id": self.event_id, **self.data}

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "version": self.version,
            "timestamp": iso(self.timestamp),
            "metadata": self.metadata,
            "event": self.event,
        }


@dataclass(frozen=True)
class Stream:
    """A stream with (some of) its events."""

    id: str
    type: str
    version: int
    events: list[RecordedEvent] = field(default_factory=list)
    archived: bool = False  # read with include_archived=True (docs/lifecycle.md)

    def to_dict(self) -> dict[str, Any]:
        events = [e.to_dict() for e in self.events]
        return {"id": self.id, "type": self.type, "version": self.version, "archived": self.archived, "events": events}


def iso(moment: datetime) -> str:
    """A timestamp as the engine writes it: ISO 8601, UTC, milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


EVENT_COLUMNS = (
    "e.position, e.id::text, e.stream_id, s.type, e.version, e.type, e.data, e.metadata, e.timestamp, e.appended_at"
)
#: The same of a row ``e`` of pge_events alone: the event's copy of its stream's type.
LOG_COLUMNS = EVENT_COLUMNS.replace("s.type", "e.stream_type")


def event_from_row(row: Sequence[Any]) -> RecordedEvent:
    return RecordedEvent(*row)
