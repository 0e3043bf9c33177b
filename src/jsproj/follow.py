"""Following the log: the next page of events applied to a running async projection, with its progress.

One transaction holds the page's documents and the move of the progress (a
compare-and-set from where the page started), so a page is applied
completely or not at all. An event projection code fails on is dead-lettered
or stops the projection, by its policy (:mod:`jsproj.poison`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from jsproj import errors
from jsproj.pages import PAGE_WITH_DOCUMENTS, Page, read_page, transaction_of
from jsproj.poison import dead_letter, stop_projection, without
from jsproj.python_engine import apply_records
from jsproj.runtime.projections import Projections
from jsproj.store import translate


@dataclass(frozen=True)
class Reached:
    """Where a page leaves a projection: its last event applied (or skipped), and the events read."""

    last_tx: str
    last_position: int
    count: int


def process_page(
    conn: psycopg.Connection[Any],
    projections: Projections,
    name: str,
    on_error: str,
    after: tuple[str, int],
    page_size: int,
    *,
    on_progress: Callable[[str, int], None] | None = None,
) -> int:
    """Apply the next page of events to an async projection, with its progress, in one transaction.

    Returns the events read (0 when caught up, or when the progress moved
    under this daemon -- a redeploy reset it -- and nothing was applied). A
    handler error dead-letters the event and goes on (``dead-letter``), or
    applies the events before it and stops the projection (``stop``).
    """
    reached: Reached | None = None
    try:
        with conn.transaction():
            page = read_page(conn, PAGE_WITH_DOCUMENTS, name, after, page_size)
            if page is None:
                return 0
            reached = _apply(conn, projections, name, on_error, page, after)
            if not _move_progress(conn, name, after, reached):
                reached = None
                raise psycopg.Rollback()  # leaves the transaction block, undone
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            raise
        raise translate(exc, f"projection {name}") from exc
    if reached is None:
        return 0
    if on_progress:
        on_progress(name, reached.count)
    return reached.count


def _apply(
    conn: psycopg.Connection[Any],
    projections: Projections,
    name: str,
    on_error: str,
    page: Page,
    after: tuple[str, int],
) -> Reached:
    """Apply a page, around the events projection code fails on."""
    records, positions = page.records, list(page.positions)
    while positions:
        try:
            apply_records(conn, projections, records, [name], page.documents or {})
            break
        except (errors.ProjectionHandlerError, errors.SandboxLimitError) as exc:
            if exc.position not in positions:
                stop_projection(conn, name, exc)  # a limit without a known event: stop where it is
                return Reached(after[0], after[1], 0)
            index = positions.index(exc.position)
            rest, before, failed = without(records, index)
            if on_error != "dead-letter":
                return _stop_on(conn, projections, name, page, before, exc) or Reached(after[0], after[1], 0)
            dead_letter(conn, name, json.loads(failed), exc)
            records = rest
            positions.pop(index)
    return Reached(page.last_tx, page.last_position, page.count)


def _stop_on(
    conn: psycopg.Connection[Any],
    projections: Projections,
    name: str,
    page: Page,
    before: str,
    error: errors.JsprojError,
) -> Reached | None:
    """Apply the events before the failed one and stop the projection on it; where that leaves it (None: nowhere)."""
    applied = json.loads(before)
    reached = None
    if applied:
        apply_records(conn, projections, before, [name], page.documents or {})
        last = applied[-1]["position"]
        reached = Reached(transaction_of(conn, last), last, len(applied))
    stop_projection(conn, name, error)
    return reached


def _move_progress(conn: psycopg.Connection[Any], name: str, after: tuple[str, int], reached: Reached) -> bool:
    """Move the progress from ``after`` to ``reached``; False when it was not at ``after`` any more."""
    moved = conn.execute(
        """update pge_projection_progress
           set last_tx = %s::xid8, last_position = %s, events = events + %s, updated_at = now()
           where name = %s and last_tx = %s::xid8 and last_position = %s and status <> 'build'""",
        (reached.last_tx, reached.last_position, reached.count, name, after[0], after[1]),
    ).rowcount
    return moved == 1
