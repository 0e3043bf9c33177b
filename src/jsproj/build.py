"""Building async projections from scratch: one pass over the log, folded in memory, swapped in at once.

One pass over the event log serves every projection being built: the
documents are folded in the sandbox's memory (one call per page, no document
reads), written to a staging table per projection every few pages, and
swapped for the live ones in one transaction that sets the progress to the
last event folded -- so readers see the old views until the new ones are
complete; events appended meanwhile are then applied like any others, page
by page (:mod:`jsproj.follow`). A projection that stops (policy ``stop``)
leaves the build; the others go on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.identifiers import search_path
from jsproj.pages import PAGE_OF_RECORDS, LinesPage, Page, read_lines, read_page
from jsproj.poison import dead_letter, stop_projection, without
from jsproj.rows import value
from jsproj.runtime.projections import Projections

FLUSH_EVERY = 20  # pages between writes of a build's documents to its staging table
_STAGING_COLUMNS = "id text primary key, data jsonb not null, updated_at timestamptz not null default now()"


def build(
    conn: psycopg.Connection[Any],
    projections: Projections,
    names: Sequence[str],
    on_error: Mapping[str, str],
    page_size: int,
    *,
    on_progress: Callable[[str, int], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Build async projections from scratch and swap each in atomically; returns the events read.

    The caller holds the projections' locks.
    """
    return Build(conn, projections, names, on_error, page_size).run(on_progress=on_progress, stop=stop)


class Build:
    """One build: the projections still in it (``active``), their staging tables, where the fold is."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        projections: Projections,
        names: Sequence[str],
        on_error: Mapping[str, str],
        page_size: int,
    ) -> None:
        self.conn = conn
        self.projections = projections
        self.names = list(names)
        self.on_error = on_error
        self.page_size = page_size
        self.active = list(names)
        self.staging = {name: sql.Identifier(f"pge_build_{name.lower()}") for name in names}
        self.after: tuple[str, int] = ("0", 0)
        self.total = 0
        self.kinds: dict[str, str] = {}  # each projection's kind, read when the build starts

    def run(self, *, on_progress: Callable[[str, int], None] | None, stop: threading.Event | None) -> int:
        self._prepare()
        self._fold_log(on_progress, stop)
        if self.active and not (stop is not None and stop.is_set()):
            self._swap()
        else:
            for name in list(self.active):
                self._drop_staging(name)
            self.conn.commit()
        return self.total

    # -- staging ------------------------------------------------------------

    def _prepare(self) -> None:
        query = "select name, kind from pge_projection_definitions where name = any(%s)"
        self.kinds = dict(self.conn.execute(query, (self.names,)).fetchall())
        for name in self.names:
            self.conn.execute(sql.SQL("drop table if exists {}").format(self.staging[name]))
            self.conn.execute(sql.SQL("create table {} (" + _STAGING_COLUMNS + ")").format(self.staging[name]))
        # found again if they still fail
        self.conn.execute("delete from pge_dead_letters where projection = any(%s)", (self.names,))
        self.conn.commit()
        self.projections.fold_start(self.names)

    def _drop_staging(self, name: str) -> None:
        self.conn.execute(sql.SQL("drop table if exists {}").format(self.staging[name]))
        self.active.remove(name)

    def _flush(self) -> None:
        """Write what the fold changed since the last flush to the staging tables."""
        for name, change in self.projections.fold_flush().items():
            if name not in self.active:
                continue
            if change.upserts:
                self.conn.execute(
                    sql.SQL("""insert into {} (id, data) select key, value from jsonb_each(%s)
                               on conflict (id) do update set data = excluded.data, updated_at = now()""").format(
                        self.staging[name]
                    ),
                    (Jsonb(change.upserts),),
                )
            if change.deletes:
                self.conn.execute(
                    sql.SQL("delete from {} where id = any(%s)").format(self.staging[name]), (change.deletes,)
                )

    # -- leaving the build ----------------------------------------------------

    def _leave(self, name: str, error: errors.JsprojError) -> None:
        stop_projection(self.conn, name, error)
        self._drop_staging(name)

    def _lost(self, exc: errors.SandboxLimitError) -> None:
        """A time or memory limit restarted the sandbox, and the build's documents went with it:
        the projection at fault stops, the others build again on the daemon's next round."""
        culprit = exc.projection
        for name in list(self.active):
            if culprit is None or name == culprit:
                self._leave(name, exc)
            else:
                self._drop_staging(name)
        self.conn.commit()

    # -- folding ----------------------------------------------------------------

    def _fold_log(self, on_progress: Callable[[str, int], None] | None, stop: threading.Event | None) -> None:
        """Fold every page; while the sandbox folds one, a second connection reads the next
        (PostgreSQL and V8 work at the same time, in their own processes)."""
        with psycopg.connect(self.conn.info.dsn, autocommit=True) as reader, ThreadPoolExecutor(1) as ahead:
            reader.execute("set timezone = 'UTC'")  # the timestamps' text in record lines
            schema = value(self.conn, "select current_schema()")
            reader.execute(search_path(schema))
            next_page: Future[LinesPage | None] = ahead.submit(read_lines, reader, self.after, self.page_size)
            pages = 0
            while self.active and (stop is None or not stop.is_set()):
                page = next_page.result()
                if page is None:
                    break
                next_page = ahead.submit(read_lines, reader, (page.last_tx, page.last_position), self.page_size)
                self._fold_read(page)
                pages += 1
                if on_progress:
                    on_progress(", ".join(self.active), page.count)
                if pages % FLUSH_EVERY == 0:
                    self._checkpoint()
            next_page.cancel()

    def _fold_read(self, page: LinesPage) -> None:
        """Fold a page read as lines; around a poison event, again as JSON records (all or nothing)."""
        folded: LinesPage | Page = page
        try:
            self.projections.fold_lines(page.text)
        except errors.SandboxLimitError as exc:
            self._lost(exc)
        except errors.ProjectionHandlerError:
            # The same events: any that became visible since are later in (transaction, position) order.
            records = read_page(self.conn, PAGE_OF_RECORDS, self.names[0], self.after, page.count)
            assert records is not None, "the page read as lines is there as records"
            self._fold_records(records)
            folded = records
        self.conn.commit()
        self.after, self.total = (folded.last_tx, folded.last_position), self.total + folded.count

    def _fold_records(self, page: Page) -> None:
        """Fold a page into every active projection; a poison event only affects its projection."""
        work = [(list(self.active), page.records, list(page.positions))]
        try:
            while work:
                subset, records, positions = work.pop()
                if positions and subset:
                    work.extend(self._fold_subset(subset, records, positions))
        except errors.SandboxLimitError as exc:
            self._lost(exc)

    def _fold_subset(
        self, subset: list[str], records: str, positions: list[int]
    ) -> list[tuple[list[str], str, list[int]]]:
        """Fold records into some projections; what is left to fold when one fails on an event."""
        try:
            self.projections.fold_page(records, only=subset)
            return []
        except errors.ProjectionHandlerError as exc:
            culprit = str(exc.projection)
            index = positions.index(exc.info["position"])
            rest, before, failed = without(records, index)
            left = [([n for n in subset if n != culprit], records, positions)]
            if self.on_error.get(culprit) == "dead-letter":
                dead_letter(self.conn, culprit, json.loads(failed), exc)
                left.append(([culprit], rest, positions[:index] + positions[index + 1 :]))
            else:
                if index:
                    self.projections.fold_page(before, only=[culprit])
                self._leave(culprit, exc)
            self.conn.commit()
            return left

    def _checkpoint(self) -> None:
        self._flush()
        self.conn.execute(
            "update pge_projection_progress set events = %s, updated_at = now() where name = any(%s)",
            (self.total, self.active),
        )
        self.conn.commit()

    # -- the swap -----------------------------------------------------------------

    def _swap(self) -> None:
        """Swap the staging tables in; what was appended meanwhile comes next, page by page."""
        self.conn.commit()
        with self.conn.transaction():
            self._flush()
            for name in self.active:
                self._swap_one(name, self.kinds[name])
            self.conn.execute(
                """update pge_projection_progress
                   set status = 'running', error = null, last_tx = %s::xid8, last_position = %s, events = %s,
                       updated_at = now()
                   where name = any(%s)""",
                (self.after[0], self.after[1], self.total, self.active),
            )

    def _swap_one(self, name: str, kind: str) -> None:
        staging = self.staging[name]
        if kind == "aggregate":
            self.conn.execute("delete from pge_aggregates where name = %s", (name,))
            self.conn.execute(
                sql.SQL("insert into pge_aggregates (name, data) select id, data from {}").format(staging)
            )
            self.conn.execute(sql.SQL("drop table {}").format(staging))
            return
        live = f"pge_projections_{name.lower()}"
        self.conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(live)))
        self.conn.execute(sql.SQL("alter table {} rename to {}").format(staging, sql.Identifier(live)))
        self.conn.execute(
            sql.SQL("alter index {} rename to {}").format(
                sql.Identifier(f"pge_build_{name.lower()}_pkey"), sql.Identifier(f"{live}_pkey")
            )
        )
