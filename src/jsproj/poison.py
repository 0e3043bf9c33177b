"""Events projection code fails on in async projections, and what is done with them.

Under policy ``dead-letter`` the event is recorded in ``pge_dead_letters`` and
the projection goes on; under ``stop`` the projection stops on it (status
``stopped``, the error kept). After a fix, :func:`resume` restarts a stopped
projection and :func:`retry_dead_letters` applies its dead letters again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.python_engine import apply_records
from jsproj.rows import one
from jsproj.runtime.projections import Projections


@dataclass(frozen=True)
class DeadLetter:
    """An event an async projection failed on and skipped, with the error."""

    id: int
    projection: str
    position: int
    event_id: str
    stream_id: str
    event_type: str
    error: dict[str, Any]
    created_at: datetime
    retried_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """As ``jsproj dead-letters --json`` prints it."""
        return {
            "id": self.id,
            "projection": self.projection,
            "position": self.position,
            "eventId": self.event_id,
            "streamId": self.stream_id,
            "eventType": self.event_type,
            "error": self.error,
            "createdAt": self.created_at.isoformat(),
            "retriedAt": self.retried_at.isoformat() if self.retried_at else None,
        }


def dead_letters(conn: psycopg.Connection[Any], projection: str | None = None) -> list[DeadLetter]:
    """The dead letters of every async projection (or of ``projection``), by projection and position."""
    rows = conn.execute(
        """select id, projection, position, event_id::text, stream_id, event_type, error, created_at, retried_at
           from pge_dead_letters where %s::text is null or projection = %s order by projection, position""",
        (projection, projection),
    ).fetchall()
    return [DeadLetter(*row) for row in rows]


def without(records: str, index: int) -> tuple[str, str, str]:
    """The page without record ``index``: (records before and after it, the records before it, that record)."""
    items = json.loads(records)
    return json.dumps(items[:index] + items[index + 1 :]), json.dumps(items[:index]), json.dumps(items[index])


def dead_letter(conn: psycopg.Connection[Any], name: str, record: dict[str, Any], error: errors.JsprojError) -> None:
    """Record the event ``record`` that ``name`` failed on (again: the newer error replaces the older)."""
    conn.execute(
        """insert into pge_dead_letters (projection, position, event_id, stream_id, event_type, error)
           values (%s, %s, %s, %s, %s, %s)
           on conflict (projection, position) do update set error = excluded.error, retried_at = now()""",
        (
            name,
            record["position"],
            record["event"]["$id"],
            record["streamId"],
            record["event"]["$type"],
            Jsonb(error.to_dict()),
        ),
    )


def stop_projection(conn: psycopg.Connection[Any], name: str, error: errors.JsprojError) -> None:
    """Stop ``name`` where it is, keeping the error (``jsproj status`` shows it)."""
    conn.execute(
        "update pge_projection_progress set status = 'stopped', error = %s, updated_at = now() where name = %s",
        (Jsonb(error.to_dict()), name),
    )


def request_retry(conn: psycopg.Connection[Any], name: str) -> int:
    """Mark every dead letter of ``name`` for retry (its holder retries them); returns how many."""
    return conn.execute("update pge_dead_letters set retry = true where projection = %s", (name,)).rowcount


def resume(conn: psycopg.Connection[Any], name: str) -> bool:
    """Restart a stopped async projection where it stopped; False if it was not stopped.

    One that stopped during a build has no progress yet (and perhaps the
    documents of an older definition): it builds again.
    """
    return (
        conn.execute(
            """update pge_projection_progress
               set status = case when last_tx = '0' and last_position = 0 then 'build' else 'running' end,
                   error = null, updated_at = now()
               where name = %s and status = 'stopped'""",
            (name,),
        ).rowcount
        == 1
    )


def retry_dead_letters(
    conn: psycopg.Connection[Any], projections: Projections, name: str, *, requested_only: bool = False
) -> int:
    """Apply a projection's dead-lettered events again, in position order; returns how many now applied.

    One transaction per event: an event that fails again stays, with its new error.
    """
    query = "select id, position from pge_dead_letters where projection = %s"
    if requested_only:
        query += " and retry"
    rows = conn.execute(query + " order by position", (name,)).fetchall()
    conn.commit()
    applied = 0
    for dead_id, position in rows:
        with conn.transaction():
            record, documents = one(
                conn,
                """select '[' || r.record || ']',
                          pge_load_documents(pge_route(array[r.stream_id], array[r.stream_type], array[r.type],
                                                       array[%s]))
                   from pge_records() r where r.position = %s""",
                (name, position),
            )
            try:
                with conn.transaction():
                    apply_records(conn, projections, record, [name], documents)
                conn.execute("delete from pge_dead_letters where id = %s", (dead_id,))
                applied += 1
            except errors.ProjectionHandlerError as exc:
                conn.execute(
                    "update pge_dead_letters set error = %s, retried_at = now(), retry = false where id = %s",
                    (Jsonb(exc.to_dict()), dead_id),
                )
    return applied
