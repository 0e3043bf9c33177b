"""Building async projections from scratch: one pass over the log, folded in memory, swapped in at once.

One pass over the event log serves every projection being built: the
documents are folded in the sandbox's memory (one call per page, no document
reads; a poison event is dead-lettered or stops its projection in the same
call), then copied into a staging table per projection (COPY, the indexes --
the primary key, the declared fields' -- made after the rows) and swapped for
the live ones in one transaction that sets the progress to the last event
folded -- so readers see the old views until the new ones are complete;
events appended meanwhile are then applied like any others, page by page
(:mod:`jsproj.follow.daemon.pages`). A projection that stops (policy ``stop``) leaves the build; the others go on.

A :class:`Build` is ``start``-ed, ``fold``-s pages, is ``flush``-ed into its
staging tables and ``swap``-ped in, or ``abandon``-ed (its staging dropped).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.follow.daemon import progress
from jsproj.follow.daemon.poison import letter
from jsproj.store import log as lines
from jsproj.store.identifiers import search_path
from jsproj.store.log import LinesPage, read_lines
from jsproj.store.queries import value

COUNT_EVERY = 20  # pages between updates of a build's event count (jsproj status shows it)
FIRST_PAGE = 100  # a build's first page; pages double up to the page size while they fold fast
FAST_SHARE, SLOW_SHARE = 0.05, 0.25  # of the sandbox's time limit: a page folded faster doubles, slower halves
ROWS_PER_COPY = 20_000  # documents per foldRows call: bounds the text held at once
_STAGING_COLUMNS = "id text not null, data jsonb not null, updated_at timestamptz not null default now()"
# Pages left 30% free: the updates of the daemon that follows stay on the row's page (HOT: no index
# entry each), a third cheaper (measured with bench/scenario_async.py's catch-up).
_STAGING_STORAGE = "with (fillfactor = 70)"


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

    The caller holds the projections' locks. A page of several events that
    hits a sandbox limit (its documents go with the sandbox) starts the
    build again, in pages half that long: only an event that hits a limit
    alone stops its projection.
    """
    first = FIRST_PAGE
    while True:
        staged = Build(conn, projections, names, on_error, page_size, first=min(first, page_size))
        staged.start()
        try:
            staged.fold(on_progress, stop)
            if staged.active and not (stop is not None and stop.is_set()) and staged.flush():
                staged.swap()
            else:
                staged.abandon()
            return staged.total
        except PageTooLong as cut:
            staged.abandon()
            page_size = first = max(1, cut.events // 2)  # a ceiling from now on: it shrinks down to one event
        finally:
            if projections.sandbox.restarts == staged.restarts:
                projections.fold_end()  # the documents are in the database now (or given up)


class PageTooLong(Exception):
    """A page of several events hit a sandbox limit: the build starts again in shorter pages."""

    def __init__(self, events: int) -> None:
        super().__init__(events)
        self.events = events


class Build:
    """One build: the projections still in it (``active``), their staging tables, where the fold is."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        projections: Projections,
        names: Sequence[str],
        on_error: Mapping[str, str],
        page_size: int,
        *,
        first: int = 1000,
    ) -> None:
        self.first = first  # the first page's size: pages double and halve from it (_next_limit)
        self.conn = conn
        self.projections = projections
        self.names = list(names)
        self.policies = {name: "skip" if on_error.get(name) == "dead-letter" else "stop" for name in names}
        self.page_size = page_size
        self.active = list(names)
        self.staging = {name: sql.Identifier(f"pge_build_{name.lower()}") for name in names}
        self.after: tuple[str, int] = ("0", 0)
        self.total = 0
        self.restarts = 0  # the sandbox's restarts when the build started: a restart takes its documents
        self.kinds: dict[str, str] = {}  # each projection's kind and partitions, read when the build starts
        self.partitions: dict[str, int] = {}
        self.epochs: dict[str, int] = {}  # each projection's epoch when the build started

    # -- start and abandon -----------------------------------------------------

    def start(self) -> None:
        """Forget earlier dead letters (found again if they still fail) and start the fold in the sandbox."""
        query = "select name, kind, partitions, emits from pge_projection_definitions where name = any(%s)"
        found = self.conn.execute(query, (self.names,)).fetchall()
        self.kinds = {name: kind for name, kind, _, _ in found}
        self.partitions = {name: partitions for name, _, partitions, _ in found}
        emitters = self._emitters({name: emits for name, _, _, emits in found})
        self.epochs = progress.epochs(self.conn, self.names)
        for name in self.names:
            self.conn.execute(sql.SQL("drop table if exists {}").format(self.staging[name]))
        self._clear_letters()
        self.conn.commit()
        self.projections.fold_start(self.names, self.policies, emitters)
        self.restarts = self.projections.sandbox.restarts

    def _emitters(self, permitted: dict[str, bool]) -> list[str]:
        """The projections whose handlers may write events (deployed with --emit)."""
        return [name for name, emits in permitted.items() if emits]

    def _append(self, emitted: str) -> None:
        """Append what a page emitted, once each, whatever a build before this one appended (emits.sql)."""
        self.conn.execute("select pge_append_emitted(%s::jsonb)", (emitted,))

    def _clear_letters(self) -> None:
        self.conn.execute("delete from pge_dead_letters where projection = any(%s)", (self.names,))

    def abandon(self) -> None:
        """Leave the build: drop what was staged; the live views stay as they were."""
        for name in list(self.active):
            self._drop_staging(name)
        self.conn.commit()

    def _drop_staging(self, name: str) -> None:
        self.conn.execute(sql.SQL("drop table if exists {}").format(self.staging[name]))
        self.active.remove(name)

    def _leave(self, name: str, error: errors.JsprojError) -> None:
        progress.stop(self.conn, name, error, epoch=self.epochs[name])  # not a newer deployment of it
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

    def fold(self, on_progress: Callable[[str, int], None] | None, stop: threading.Event | None) -> None:
        """Fold every page; while the sandbox folds one, a second connection reads the next
        (PostgreSQL and V8 work at the same time, in their own processes)."""
        with psycopg.connect(self.conn.info.dsn, autocommit=True) as reader, ThreadPoolExecutor(1) as ahead:
            lines.prepare(reader)
            reader.execute(search_path(value(self.conn, "select current_schema()")))
            self.conn.commit()
            limit = min(self.first, self.page_size)
            next_page: Future[LinesPage | None] = ahead.submit(read_lines, reader, self.after, limit)
            pages = 0
            report = on_progress or (lambda name, events: None)
            while self.active and (stop is None or not stop.is_set()):
                page = next_page.result()
                if page is None:
                    break
                next_page = ahead.submit(read_lines, reader, page.last, limit)
                started = time.monotonic()
                self._fold_page(page)
                limit = self._next_limit(limit, page.count, time.monotonic() - started)
                pages += 1
                for name in self.active:
                    report(name, page.count)  # each projection's count, as the pages that follow report them
                if pages % COUNT_EVERY == 0:
                    self._count()
                    self.conn.commit()
            next_page.cancel()

    def _count(self) -> None:
        progress.count_built(self.conn, self.active, self.total)

    def _next_limit(self, limit: int, count: int, seconds: float) -> int:
        """The next pages' size: doubled (up to the page size) while a page folds in a small part of the
        sandbox's time limit, halved when it takes a large part -- so that slow projection code gets pages
        it folds within the limit, and a limit names a slow event, not a long page."""
        budget = self.projections.sandbox.timeout
        if seconds > budget * SLOW_SHARE:
            return max(1, count // 2)
        if count >= limit and seconds < budget * FAST_SHARE:
            return min(self.page_size, limit * 2)
        return limit

    def _fold_page(self, page: LinesPage) -> None:
        """Fold a page; dead-letter the events projections skipped, and let the ones that stopped leave."""
        try:
            folded = self.projections.fold_lines(page.text)
        except errors.SandboxLimitError as exc:
            if page.count > 1:
                raise PageTooLong(page.count) from exc
            self._lost(exc)
            return
        letters = []
        for error in folded.errors:
            name = str(error.projection)
            if name not in self.active:
                continue
            if self.policies[name] == "skip" and not error.info.get("discarded"):
                letters.append(letter(name, error, range(self.partitions[name])))  # skipped for every document
            else:
                self._leave(name, error)
        letters = [found for found in letters if found["projection"] in self.active]  # not of those that left
        if letters:
            self.conn.execute("select pge_add_dead_letters(%s)", (Jsonb(letters),))  # the page's, at once
        if folded.emitted:
            self._append(folded.emitted)
        if folded.errors or folded.emitted:
            self.conn.commit()
        self.after, self.total = page.last, self.total + page.count

    # -- flush and swap -------------------------------------------------------------

    def flush(self) -> bool:
        """Copy every document the build folded into its staging table, then index it (cheaper than
        keeping the index up to date row by row); False when a sandbox limit stopped it."""
        try:
            self._copy()
        except errors.SandboxLimitError as exc:
            self.conn.rollback()
            self._lost(exc)
            return False
        return True

    def _copy(self) -> None:
        for name in self.active:
            self.conn.execute(
                sql.SQL(f"create table {{}} ({_STAGING_COLUMNS}) {_STAGING_STORAGE}").format(self.staging[name])
            )
            with self.conn.cursor().copy(sql.SQL("copy {} (id, data) from stdin").format(self.staging[name])) as copy:
                more = True
                while more:
                    text, _, more = self.projections.fold_rows(name, ROWS_PER_COPY)
                    copy.write(text)
            if self.kinds[name] != "aggregate":
                self.conn.execute(
                    sql.SQL("alter table {} add constraint {} primary key (id)").format(
                        self.staging[name], sql.Identifier(f"pge_build_{name.lower()}_pkey")
                    )
                )
                # The declared fields' indexes too, made here rather than in the swap's transaction,
                # where readers of the view would wait for them.
                self.conn.execute("select pge_sync_indexes(%s, true)", (name,))
                # And the user's own indexes of the live table, for the swap to rename (it keeps its grants).
                self.conn.execute("select pge_stage_user_indexes(%s)", (name,))
        self.conn.commit()

    def swap(self) -> None:
        """Swap the staging tables in; what was appended meanwhile comes next, page by page. A projection
        to be built again meanwhile (a redeploy, a rebuild: a new epoch) keeps its live table."""
        with self.conn.transaction():
            for name in list(self.active):
                if progress.swapped_in(self.conn, name, self.epochs[name], self.after, self.total):
                    self._swap_one(name, self.kinds[name])
                else:
                    self._drop_staging(name)

    def _swap_one(self, name: str, kind: str) -> None:
        staging = self.staging[name]
        if kind == "aggregate":
            self.conn.execute("delete from pge_aggregates where name = %s", (name,))
            self.conn.execute(
                sql.SQL("insert into pge_aggregates (name, data) select id, data from {}").format(staging)
            )
            self.conn.execute(sql.SQL("drop table {}").format(staging))
            return
        # The staging table becomes the live one with the live one's grants, comment and user indexes.
        self.conn.execute("select pge_swap_build(%s)", (name,))
