"""Events projection code fails on in async projections, and what is done with them.

Under policy ``dead-letter`` the event is recorded in ``pge_dead_letters`` and
the projection goes on; under ``stop`` the projection stops on it (status
``stopped``, the error kept: :mod:`jsproj.follow.daemon.progress`). After a fix,
``progress.resume`` restarts a stopped projection and
:func:`retry_dead_letters` applies its dead letters again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.engine.projections import BatchResult, CallOptions, Projections
from jsproj.follow.daemon.progress import Unit
from jsproj.store.log import read_event
from jsproj.store.queries import value


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


def dead_letters(
    conn: psycopg.Connection[Any], projection: str | None = None, limit: int | None = None
) -> list[DeadLetter]:
    """The dead letters of every async projection (or of ``projection``), by projection and position; the first
    ``limit`` of them when given."""
    rows = conn.execute(
        """select id, projection, position, event_id::text, stream_id, event_type, error, created_at, retried_at
           from pge_dead_letters where %s::text is null or projection = %s order by projection, position
           limit %s""",
        (projection, projection, limit),
    ).fetchall()
    return [DeadLetter(*row) for row in rows]


@dataclass(frozen=True)
class DeadLetterGroup:
    """The dead letters of one projection that failed alike: the error's kind and its cause (what the handler
    threw, on one line), how many, and the first and last position they are at."""

    projection: str
    kind: str
    message: str
    count: int
    first_position: int
    last_position: int

    def to_dict(self) -> dict[str, Any]:
        return {"projection": self.projection, "kind": self.kind, "message": self.message, "count": self.count,
                "firstPosition": self.first_position, "lastPosition": self.last_position}  # fmt: skip


def dead_letter_groups(conn: psycopg.Connection[Any], projection: str | None = None) -> list[DeadLetterGroup]:
    """The dead letters grouped by projection and error, most first: the error's kind and its cause -- what the
    handler threw (``error.error``), else the first line of the message (which names the event, so differs)."""
    rows = conn.execute(
        """select projection, coalesce(error ->> 'kind', 'Error'),
                  split_part(coalesce((error -> 'error' ->> 'name') || ': ' || (error -> 'error' ->> 'message'),
                                      error ->> 'message', ''), chr(10), 1),
                  count(*), min(position), max(position)
           from pge_dead_letters where %s::text is null or projection = %s
           group by 1, 2, 3 order by count(*) desc, 1, 2, 3""",
        (projection, projection),
    ).fetchall()
    return [DeadLetterGroup(*row) for row in rows]


def letter(name: str, error: errors.JsprojError, partitions: Sequence[int] = (0,)) -> dict[str, Any]:
    """The dead letter of the event ``error`` names, which ``name`` failed on and skipped for the documents
    of ``partitions``, as ``pge_add_dead_letters`` takes it."""
    info = error.info
    return {
        "projection": name,
        "position": info["position"],
        "eventId": info["eventId"],
        "streamId": info["streamId"],
        "eventType": info["eventType"],
        "error": error.to_dict(),
        "partitions": list(partitions),
    }


def request_retry(conn: psycopg.Connection[Any], name: str) -> int:
    """Mark every dead letter of ``name`` for retry (its holder retries them); returns how many."""
    return conn.execute(
        "update pge_dead_letters set retry = true, retried = '{}' where projection = %s", (name,)
    ).rowcount


def retry_dead_letters(
    conn: psycopg.Connection[Any], projections: Projections, unit: Unit, *, requested_only: bool = False
) -> int:
    """Apply a projection's dead-lettered events again to the documents of ``unit`` (the projection, or a
    partition of it), in position order; returns how many are now applied for every partition.

    One transaction per event: an event that fails again stays, with its new
    error. ``conn`` reads record lines (:func:`jsproj.store.log.prepare`).
    """
    rows = conn.execute(
        """select id, position from pge_dead_letters
           where projection = %s and %s = any(partitions) and (not %s or (retry and not %s = any(retried)))
           order by position""",
        (unit.name, unit.partition, requested_only, unit.partition),
    ).fetchall()
    emits = bool(value(conn, "select emits from pge_projection_definitions where name = %s", (unit.name,)))
    conn.commit()
    split = {unit.name: (unit.partitions, [unit.partition])} if unit.partitions > 1 else {}
    options = CallOptions(only=[unit.name], partitions=split, changes_text=True, emits=[unit.name] if emits else [])
    applied = 0
    for dead_id, position in rows:
        with conn.transaction():
            claimed = conn.execute(
                "select from pge_dead_letters where id = %s and %s = any(partitions) for update",
                (dead_id, unit.partition),
            ).fetchone()
            if claimed is None:
                continue  # applied meanwhile (another retry of this partition)
            text = read_event(conn, position)
            assert text is not None, "events are never deleted"
            try:
                with conn.transaction():
                    _apply(conn, projections, text, options)
            except errors.ProjectionError as exc:
                # Tried, and failed again: the request stands for the partitions that have not tried yet.
                conn.execute(
                    """update pge_dead_letters
                       set error = %s, retried_at = now(), retried = retried || %s,
                           retry = not (partitions <@ (retried || %s))
                       where id = %s""",
                    (Jsonb(exc.to_dict()), unit.partition, unit.partition, dead_id),
                )
                continue
            left = value(
                conn,
                """update pge_dead_letters
                   set partitions = array_remove(partitions, %s), retried_at = now(),
                       retry = retry and not (array_remove(partitions, %s) <@ retried)
                   where id = %s returning cardinality(partitions)""",
                (unit.partition, unit.partition, dead_id),
            )
            if left == 0:
                conn.execute("delete from pge_dead_letters where id = %s", (dead_id,))
                applied += 1
    return applied


def _apply(conn: psycopg.Connection[Any], projections: Projections, text: str, options: CallOptions) -> None:
    """Apply one event (a record line) to the documents ``options`` choose; raise its handler error."""
    routed = projections.route_or_apply(text, options)
    if isinstance(routed, BatchResult):
        result = routed  # it needed no document
    else:
        documents = value(conn, "select pge_load_documents(%s)", (Jsonb(routed),)) if routed else {}
        result = projections.apply_page(text, documents, options)
    if result.errors:
        raise result.errors[0]
    if result.changes_text not in (None, "{}"):
        conn.execute("select pge_write_changes(%s::jsonb)", (result.changes_text,))
        if options.emits:  # what it emits, once each (sql/functions/emits.sql: none when there is none)
            conn.execute("select pge_append_emitted(%s::jsonb)", (result.changes_text,))
