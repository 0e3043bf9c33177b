"""Pages of event records for the async engine: the gap-safe read, as JSON records or as record lines.

A page holds the next events after a projection's progress, in (transaction,
position) order, from transactions older than every running one -- so a page
never skips an event that commits later with a smaller position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from jsproj.rows import one, value

# The latest committed event, in (transaction, position) order (also jsproj
# status's high-water mark). Ordering by the text output column "tx_id" would
# sort '9999' after '10739'.
HIGH_WATER = "select e.tx_id::text as tx, e.position from pge_events e order by e.tx_id desc, e.position desc limit 1"

_PAGE = """
    select '[' || string_agg(page.record, ',' order by page.tx_id, page.position) || ']' as records,
           count(*) as count,
           array_agg(page.position order by page.tx_id, page.position) as positions,
           ((array_agg(page.tx_id order by page.tx_id desc, page.position desc))[1])::text as last_tx,
           (array_agg(page.position order by page.tx_id desc, page.position desc))[1] as last_position,
           {documents} as documents
    from (select r.tx_id, r.position, r.stream_id, r.stream_type, r.type, r.record
          from pge_records() r
          where (r.tx_id, r.position) > (%(tx)s::xid8, %(position)s)
            and r.tx_id < pg_snapshot_xmin(pg_current_snapshot())
          order by r.tx_id, r.position
          limit %(limit)s) as page
"""
PAGE_WITH_DOCUMENTS = _PAGE.format(
    documents="pge_load_documents(pge_route(array_agg(page.stream_id), array_agg(page.stream_type), "
    "array_agg(page.type), array[%(name)s]))"
)
PAGE_OF_RECORDS = _PAGE.format(documents="null")
# The same page as record lines (js/lib/records.js), for builds: one value of
# PostgreSQL's own output formats, several times cheaper than JSON records built
# in SQL, and one value rather than a row per event for the client to handle.
# The same rows as _PAGE (pge_records()); the record column is not selected,
# so it is never built.
PAGE_AS_LINES = """
    select string_agg(concat_ws(E'\\t', e.position, to_json(e.stream_id), to_json(e.stream_type), e.version,
                                e.timestamp,
                                coalesce(e.metadata::text, 'null'), to_json(e.type), e.id, e.data, e.tx_id),
                      E'\\n' order by e.tx_id, e.position),
           count(*)
    from (select r.position, r.stream_id, r.stream_type, r.version, r.timestamp, r.metadata, r.type, r.id, r.data,
                 r.tx_id
          from pge_records() r
          where (r.tx_id, r.position) > (%(tx)s::xid8, %(position)s)
            and r.tx_id < pg_snapshot_xmin(pg_current_snapshot())
          order by r.tx_id, r.position
          limit %(limit)s) as e
"""


@dataclass(frozen=True)
class Page:
    """A page as engine records (JSON text), with the documents its routed projection needs."""

    records: str
    count: int
    positions: list[int]
    last_tx: str
    last_position: int
    documents: dict[str, Any] | None


@dataclass(frozen=True)
class LinesPage:
    """A page as record lines (js/lib/records.js), for builds."""

    text: str
    count: int
    last_tx: str
    last_position: int


def read_page(conn: psycopg.Connection[Any], query: str, name: str, after: tuple[str, int], limit: int) -> Page | None:
    """The next page after ``after`` (``PAGE_WITH_DOCUMENTS`` or ``PAGE_OF_RECORDS``); None when caught up."""
    row = one(conn, query, {"name": name, "tx": after[0], "position": after[1], "limit": limit})
    if not row[1]:
        return None
    return Page(row[0], row[1], list(row[2]), row[3], row[4], row[5])


def read_lines(conn: psycopg.Connection[Any], after: tuple[str, int], limit: int) -> LinesPage | None:
    """The next page after ``after`` as record lines; None when caught up."""
    text, count = one(conn, PAGE_AS_LINES, {"tx": after[0], "position": after[1], "limit": limit})
    if not count:
        return None
    last = text[text.rfind("\n") + 1 :].split("\t")
    return LinesPage(text, count, last[9], int(last[0]))


def transaction_of(conn: psycopg.Connection[Any], position: int) -> str:
    """The transaction id (text) of the event at ``position``."""
    return str(value(conn, "select tx_id::text from pge_events where position = %s", (position,)))
