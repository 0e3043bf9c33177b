"""A stream's lifecycle beyond appends, written once as steps for both stores: archiving and unarchiving.

Each is one call of its SQL function (sql/functions/lifecycle.sql), which takes the stream's append lock
and changes ``pge_streams``; what an archived stream means for reads, builds and appends is in
docs/lifecycle.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsproj.store.steps import Query, Steps, ask


@dataclass(frozen=True)
class StreamChange:
    """What an archive or unarchive did: the stream, whether it changed, and since when it is archived (None:
    it is not)."""

    stream_id: str
    changed: bool
    archived_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        archived = None if self.archived_at is None else self.archived_at.isoformat()
        return {"streamId": self.stream_id, "changed": self.changed, "archivedAt": archived}


def archive_steps(stream_id: str) -> Steps[StreamChange]:
    """Archive the stream (nothing changes if it is archived already)."""
    row = yield from ask(
        Query("select r.changed, r.at from pge_archive_stream(%s) as a,"
              " lateral (select (a ->> 'changed')::boolean as changed, (a ->> 'archivedAt')::timestamptz as at) r",
              (stream_id,)),
        "archiving a stream",
    )  # fmt: skip
    return StreamChange(stream_id, row[0], row[1])


def unarchive_steps(stream_id: str) -> Steps[StreamChange]:
    """Unarchive the stream (nothing changes if it is not archived)."""
    row = yield from ask(
        Query("select (pge_unarchive_stream(%s) ->> 'changed')::boolean", (stream_id,)), "unarchiving a stream"
    )
    return StreamChange(stream_id, row[0], None)
