"""The log as record lines (js/lib/records.js) for the async engine: gap-safe pages, and single events.

A page holds the next events after a position, in (transaction, position)
order, from transactions older than every running one -- so a page never
skips an event that commits later with a smaller position. Record lines are
one value of PostgreSQL's own output formats, several times cheaper than
JSON records built in SQL, and one value rather than a row per event for the
client to handle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from jsproj.rows import one

# The latest committed event, in (transaction, position) order (also jsproj
# status's high-water mark). Ordering by the text output column "tx_id" would
# sort '9999' after '10739'.
HIGH_WATER = "select e.tx_id::text as tx, e.position from pge_events e order by e.tx_id desc, e.position desc limit 1"

# What a connection reading record lines needs: the timestamps' text is
# what records.js parses ("2026-11-27 08:36:33.404905+00"), whatever the
# server's defaults. Run once per connection (prepare).
SESSION = "set timezone = 'UTC'; set datestyle = 'ISO, MDY'"

# The largest xid8: a page with no upper bound.
END = ("18446744073709551615", 0)

# Record lines of the events a query selects as e (the columns of
# pge_records(), whose record column is not selected, so it is never built).
_LINES = """
    select string_agg(concat_ws(E'\\t', e.position, to_json(e.stream_id), to_json(e.stream_type), e.version,
                                e.timestamp,
                                coalesce(e.metadata::text, 'null'), to_json(e.type), e.id, e.data, e.tx_id),
                      E'\\n' order by e.tx_id, e.position),
           count(*)
    from (select r.position, r.stream_id, r.stream_type, r.version, r.timestamp, r.metadata, r.type, r.id, r.data,
                 r.tx_id
          from pge_records() r
          {where}) as e
"""
# A page. The upper bound lets a group of units stop where the next group
# starts, so that they merge.
PAGE_AS_LINES = _LINES.format(
    where="""where (r.tx_id, r.position) > (%(tx)s::xid8, %(position)s)
            and (r.tx_id, r.position) <= (%(until_tx)s::xid8, %(until_position)s)
            and r.tx_id < pg_snapshot_xmin(pg_current_snapshot())
          order by r.tx_id, r.position
          limit %(limit)s"""
)
# One event, by position (a dead letter retried).
EVENT_AS_LINES = _LINES.format(where="where r.position = %(position)s")


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
    text, count = one(conn, PAGE_AS_LINES, params)
    if not count:
        return None
    last = text[text.rfind("\n") + 1 :].split("\t")
    return LinesPage(text, count, last[9], int(last[0]))


def read_event(conn: psycopg.Connection[Any], position: int) -> str | None:
    """The event at ``position`` as a record line; None if there is none."""
    text, count = one(conn, EVENT_AS_LINES, {"position": position})
    return str(text) if count else None


def prepare(conn: psycopg.Connection[Any]) -> None:
    """Make ``conn`` read record lines as records.js parses them (once per connection)."""
    conn.execute(SESSION)
