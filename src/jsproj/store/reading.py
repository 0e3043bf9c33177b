"""Reading the log and its streams, written once as steps (:mod:`jsproj.store.steps`) for both stores.

``read_all`` follows the log through :mod:`jsproj.store.log` (the gap-safe
order), by what happened when asked (:mod:`jsproj.store.filters`); a stream
is read by version on its own index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jsproj.errors import StreamArchivedError, UnknownPositionError, UnknownStreamError
from jsproj.store import log
from jsproj.store.filters import LogFilter, check_page
from jsproj.store.recorded import EVENT_COLUMNS, LOG_COLUMNS, STREAM_VERSION, RecordedEvent, Stream, event_from_row
from jsproj.store.steps import Query, Steps, ask


def read_all_steps(after: int, limit: int, where: LogFilter | None = None) -> Steps[list[RecordedEvent]]:
    """Events after the one at position ``after``, in the gap-safe order (docs/store.md), that ``where`` lets
    through (docs/reading.md)."""
    check_page(after, limit)
    where = where or LogFilter()
    tx = "0"
    if after != 0:
        row = yield from ask(
            Query("select tx_id::text from pge_events where position = %s", (after,)), "reading the log"
        )
        if row is None:
            raise UnknownPositionError(f"there is no event at position {after}: pass 0 or a position read_all returned")
        tx = row[0]
    rows = yield from ask(
        Query(page_query(where), {"tx": tx, "position": after, "limit": limit, **where.params()}, rows="all"),
        "reading the log",
    )
    return [event_from_row(row) for row in rows]


def page_query(where: LogFilter) -> str:
    """A page of the log the filter lets through. Filtered by event or stream types, it is one range scan per
    type on its index (type or stream_type, then tx_id, position: sql/migrations/0014_log_reads.sql), each
    stopping after ``limit`` events, merged: a page reads at most types x limit index entries, whatever the log's
    size. Otherwise the log in order (pge_events_tx_order), the other conditions filtering. The stream's type is
    the event's copy of it: no join."""
    conditions = " and ".join([log.after("e"), *where.conditions("e")])
    if where.key is None:
        return f"""select {LOG_COLUMNS} from pge_events e
            where {conditions} order by e.tx_id, e.position limit %(limit)s"""
    column = {"type": "type", "stream_type": "stream_type"}[where.key[0]]  # a column name, never the caller's text
    return f"""select {LOG_COLUMNS}
        from unnest(%(keys)s::text[]) as k (key)
        cross join lateral (select e.* from pge_events e where e.{column} = k.key and {conditions}
                            order by e.tx_id, e.position limit %(limit)s) as e
        order by e.tx_id, e.position limit %(limit)s"""


def fetch_stream_steps(
    stream_id: str,
    from_version: int | None,
    to_version: int | None,
    include_archived: bool = False,
    resolve_links: bool = False,
) -> Steps[Stream]:
    """The stream's id, type, version and its events from ``from_version`` to ``to_version`` (inclusive); an
    archived stream only with ``include_archived`` (docs/lifecycle.md); links as what they link to with
    ``resolve_links``."""
    head = yield from ask(
        Query(f"select id, type, {STREAM_VERSION}, archived_at is not null from pge_streams s where id = %s",
              (stream_id,)),
        "reading a stream",
    )  # fmt: skip
    if head is None:
        raise UnknownStreamError(f"there is no stream {stream_id!r}", streamId=stream_id)
    if head[3] and not include_archived:
        raise archived(stream_id)
    rows = yield from ask(
        Query(
            f"""select {EVENT_COLUMNS} from pge_events e join pge_streams s on s.id = e.stream_id
            where e.stream_id = %s and e.version between %s and %s order by e.version""",
            (stream_id, from_version or 1, to_version if to_version is not None else head[2]),
            rows="all",
        ),
        "reading a stream",
    )
    events = [event_from_row(row) for row in rows]
    if resolve_links:
        events = yield from resolved(events)
    return Stream(head[0], head[1], head[2], events, archived=head[3])


LINK = "$>"  # a link's type: its data {"link": "<sequence number>@<stream id>"} (js/lib/emits.js)


def resolved(events: list[RecordedEvent]) -> Steps[list[RecordedEvent]]:
    """``events`` with each link replaced by the event it links to (in one query); a link whose event is
    not stored (erased) stays as it is."""
    targets = {}
    for event in events:
        if event.type == LINK:
            number, _, stream = str(event.data.get("link", "")).partition("@")
            if number.isdigit() and int(number) < 2**62:  # (else it links to no event there can be)
                targets[event.position] = (stream, int(number) + 1)
    if not targets:
        return events
    rows = yield from ask(
        Query(
            f"""select {EVENT_COLUMNS} from pge_events e join pge_streams s on s.id = e.stream_id
            where (e.stream_id, e.version) in (select * from unnest(%s::text[], %s::bigint[]))""",
            ([s for s, _ in targets.values()], [v for _, v in targets.values()]),
            rows="all",
        ),
        "resolving links",
    )
    found = {(e.stream_id, e.version): e for e in map(event_from_row, rows)}
    return [found.get(targets[e.position], e) if e.position in targets else e for e in events]


def archived(stream_id: str) -> StreamArchivedError:
    """The error for a read of an archived stream that did not ask for archived streams."""
    return StreamArchivedError(
        f"stream {stream_id!r} is archived: read it with include_archived=True (jsproj stream --include-archived),"
        " or unarchive it",
        streamId=stream_id,
    )


def streams_steps(ids: Sequence[str]) -> Steps[dict[str, dict[str, Any]]]:
    """``{id: {"type", "version"}}`` for those of ``ids`` that exist."""
    query = Query(f"select id, type, {STREAM_VERSION} from pge_streams s where id = any(%s)", (list(ids),), rows="all")
    rows = yield from ask(query, "listing streams")
    return {row[0]: {"type": row[1], "version": row[2]} for row in rows}
