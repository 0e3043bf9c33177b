"""The one log reader: the gap-safe order, the high-water mark, JSON record pages and record lines.

Every reader of the whole log -- ``EventStore.read_all``, the daemon's pages,
the subscribers' pages -- reads it here, after a position in (transaction,
position) order and only from transactions older than every running one
(:func:`after`): so a page never skips an event that commits later with a
smaller position. The one such condition in SQL is ``pge_log_end()``
(sql/functions/records.sql).

Record lines (js/lib/records.js) are the async engine's pages: one value of
PostgreSQL's own output formats, several times cheaper than JSON records built
in SQL, and one value rather than a row per event for the client to handle.
JSON record pages (``pge_records()``'s ``record``) are what the Python engine
applies: the events at given positions (:data:`RECORDS_AT`), or the page
after a position (:data:`RECORD_PAGE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from jsproj.store.queries import one
from jsproj.store.recorded import NOT_ARCHIVED

# The latest committed event, in (transaction, position) order (also jsproj
# status's high-water mark), of a stream that is not archived: no page reads
# the others (docs/lifecycle.md), so a reader catching up to it never waits
# for them. Ordering by the text output column "tx_id" would sort '9999'
# after '10739'.
HIGH_WATER = (
    f"select e.tx_id::text as tx, e.position from pge_events e where {NOT_ARCHIVED}"
    " order by e.tx_id desc, e.position desc limit 1"
)

# What a connection reading record lines needs: the timestamps' text is
# what records.js parses ("2026-11-27 08:36:33.404905+00"), whatever the
# server's defaults. Run once per connection (prepare).
SESSION = "set timezone = 'UTC'; set datestyle = 'ISO, MDY'"

# The largest xid8: a page with no upper bound.
END = ("18446744073709551615", 0)


def after(alias: str, until: bool = False) -> str:
    """The gap-safe condition on rows ``alias`` of the log: after ``(%(tx)s, %(position)s)`` (and, with
    ``until``, up to ``(%(until_tx)s, %(until_position)s)``), from transactions below every running one.

    Follow it with ``order by {alias}.tx_id, {alias}.position``. The only place in Python that says it.
    """
    bound = f" and ({alias}.tx_id, {alias}.position) <= (%(until_tx)s::xid8, %(until_position)s)" if until else ""
    return (
        f"({alias}.tx_id, {alias}.position) > (%(tx)s::xid8, %(position)s){bound}"
        f" and {alias}.tx_id < pg_snapshot_xmin(pg_current_snapshot())"
    )


def record_lines(source: str, *, order: str, stream_type: str = "to_json(e.stream_type)",
                 timestamp: str = "e.timestamp", tx: str = ", e.tx_id") -> str:  # fmt: skip
    """The query of the record lines of the events ``source`` selects as ``e`` (a subquery), and their count.

    Record lines are what js/lib/records.js parses: position, stream id, stream
    type, version, timestamp, metadata, type, id, data (and the transaction,
    which the engine ignores), tab-separated, a line per event.
    """
    return f"""
    select string_agg(concat_ws(E'\\t', e.position, to_json(e.stream_id), {stream_type}, e.version, {timestamp},
                                coalesce(e.metadata::text, 'null'), to_json(e.type), e.id, e.data{tx}),
                      E'\\n' order by {order}),
           count(*), max(e.version)
    from ({source}) as e
"""


# The columns of pge_records() but its record column, so that it is never built.
_COLUMNS = "r.position, r.stream_id, r.stream_type, r.version, r.timestamp, r.metadata, r.type, r.id, r.data, r.tx_id"
# A page, as record lines. The upper bound lets a group of units stop where the next group starts, so that
# they merge.
PAGE_AS_LINES = record_lines(
    f"select {_COLUMNS} from pge_records() r where {after('r', until=True)}"
    " order by r.tx_id, r.position limit %(limit)s",
    order="e.tx_id, e.position",
)
# One event, by position (a dead letter retried).
EVENT_AS_LINES = record_lines(
    f"select {_COLUMNS} from pge_records() r where r.position = %(position)s", order="e.tx_id, e.position"
)

# The events at positions %s (an array), as one JSON array of records in position order, and the documents
# they reach for the projections %s -- what the Python engine applies after an append.
RECORDS_AT = """
    select '[' || string_agg(r.record, ',' order by r.position) || ']',
           pge_load_documents(pge_route(array_agg(r.stream_id), array_agg(r.stream_type), array_agg(r.type), %s)),
           (select generation from pge_engine)
    from pge_records() r where r.position = any(%s)
"""
# The page after (%s, %s) in the log's order, of at most %s events, as JSON records; with its count, where
# it ends, and the documents its events reach for projection %s -- what the Python engine rebuilds from
# (under the projection's lock: no gap-safe condition, nothing runs beside it).
RECORD_PAGE = """
    select '[' || string_agg(page.record, ',' order by page.tx_id, page.position) || ']', count(*),
           ((array_agg(page.tx_id order by page.tx_id desc, page.position desc))[1])::text,
           (array_agg(page.position order by page.tx_id desc, page.position desc))[1],
           pge_load_documents(pge_route(array_agg(page.stream_id), array_agg(page.stream_type),
                                        array_agg(page.type), array[%(name)s]))
    from (select r.tx_id, r.position, r.stream_id, r.stream_type, r.type, r.record
          from pge_records() r
          where (r.tx_id, r.position) > (%(tx)s::xid8, %(position)s)
          order by r.tx_id, r.position limit %(limit)s) as page
"""


@dataclass(frozen=True)
class LinesPage:
    """A page as record lines (js/lib/records.js)."""

    text: str
    count: int
    last_tx: str
    last_position: int

    @property
    def last(self) -> tuple[str, int]:
        return self.last_tx, self.last_position

    def first(self, count: int) -> LinesPage:
        """The page of its first ``count`` events (a page of the log too: pages are runs of it)."""
        lines = self.text.split("\n")[:count]
        last = lines[-1].split("\t")
        return LinesPage("\n".join(lines), len(lines), last[9], int(last[0]))

    def before(self, position: int, start: tuple[str, int]) -> tuple[tuple[str, int], int]:
        """Where a unit that stops on the event at ``position`` is: the event before it, and the events up to it."""
        lines = self.text.split("\n")
        index = next(i for i, line in enumerate(lines) if line[: line.index("\t")] == str(position))
        if index == 0:
            return start, 0
        fields = lines[index - 1].split("\t")
        return (fields[9], int(fields[0])), index


def read_lines(
    conn: psycopg.Connection[Any], after: tuple[str, int], limit: int, until: tuple[str, int] = END
) -> LinesPage | None:
    """The next page after ``after`` (up to ``until``) as record lines; None when there is none."""
    params = {"tx": after[0], "position": after[1], "until_tx": until[0], "until_position": until[1], "limit": limit}
    text, count, _ = one(conn, PAGE_AS_LINES, params)
    if not count:
        return None
    last = text[text.rfind("\n") + 1 :].split("\t")
    return LinesPage(text, count, last[9], int(last[0]))


def read_event(conn: psycopg.Connection[Any], position: int) -> str | None:
    """The event at ``position`` as a record line; None if there is none."""
    text, count, _ = one(conn, EVENT_AS_LINES, {"position": position})
    return str(text) if count else None


def prepare(conn: psycopg.Connection[Any]) -> None:
    """Make ``conn`` read record lines as records.js parses them (once per connection)."""
    conn.execute(SESSION)
