"""The async projection daemon: keeps async projections up to date, exactly once.

Each daemon process holds a PostgreSQL session advisory lock per projection
it works on, so any number of daemons, on any number of machines, share the
projections and never work on one at the same time; when a holder dies its
connection closes, the lock is released and another daemon takes over.

For a projection it holds, the daemon reads a page of events with the
gap-safe read (only transactions older than every running one, in
(transaction, position) order), makes one sandbox call for the page, and
writes the documents and the projection's progress in one transaction, moving
the progress with a compare-and-set. A page is applied completely or not at
all, so nothing is applied twice or skipped, whatever fails in between.
LISTEN/NOTIFY wakes it up; polling is the fallback and the source of truth.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.errors import ProgressConflictError, ProjectionStoppedError
from jsproj.python_engine import apply_records, deployed_sources
from jsproj.runtime.projections import Projections
from jsproj.runtime.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from jsproj.store import translate

# The latest committed event, in (transaction, position) order (also jsproj
# status's high-water mark). Ordering by the text output column "tx_id" would
# sort '9999' after '10739'.
HIGH_WATER = "select e.tx_id::text as tx, e.position from pge_events e order by e.tx_id desc, e.position desc limit 1"

DEFAULT_PAGE_SIZE = 5000  # events per page: measured by bench/page_size_bench.py (docs/benchmarks.md)
LOCK_CLASS = 1246974038  # advisory locks (LOCK_CLASS, hashtext(projection)): who works on a projection
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 30.0
FLUSH_EVERY = 20  # pages between writes of a build's documents to its staging table

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


@dataclass
class Page:
    records: str
    count: int
    positions: list[int]
    last_tx: str
    last_position: int
    documents: dict[str, Any] | None


def lock_key(name: str) -> sql.Composed:
    return sql.SQL("{}, hashtext({})").format(sql.Literal(LOCK_CLASS), sql.Literal(name))


class Daemon:
    """One daemon process's work: ``run()`` until ``stop()``, or until caught up.

    ``names`` limits it to some async projections; ``page_size`` is the number
    of events per engine call and transaction.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        names: Iterable[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        poll_interval: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        log: Callable[[str], None] | None = None,
        on_progress: Callable[[str, int], None] | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.dsn = dsn
        self.schema = schema
        self.names = set(names) if names else None
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.limits = {"timeout": timeout, "memory_limit": memory_limit}
        self.log = log or (lambda message: None)
        self.on_progress = on_progress or (lambda name, events: None)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: set[str] = set()
        self._stop = threading.Event()
        self._control: psycopg.Connection | None = None
        self._work: psycopg.Connection | None = None
        self._projections: Projections | None = None
        self._generation: int | None = None
        self._definitions: dict[str, dict[str, Any]] = {}
        self._last_heartbeat = 0.0

    # -- running ------------------------------------------------------------

    def stop(self) -> None:
        """Finish the current page, release the projections and return from ``run()``."""
        self._stop.set()

    def run(self, *, until_caught_up: bool = False) -> None:
        """Work until stopped; with ``until_caught_up``, until every async projection has
        processed everything appended before the call. Survives the database going away
        (reconnects with backoff and resumes from the stored progress).
        """
        delay = 0.1
        target: tuple[str, int] | None = None
        targeted = False
        try:
            while not self._stop.is_set():
                try:
                    self._connect()
                    if until_caught_up and not targeted:
                        target, targeted = self._high_water(), True
                    self._heartbeat()
                    self._refresh()
                    self._balance()
                    busy = False
                    for name in sorted(self.held):
                        if self._stop.is_set():
                            break
                        busy = self._work_on(name) or busy
                    delay = 0.1
                    if until_caught_up and self._caught_up(target):
                        return
                    if not busy:
                        self._wait()
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self.log(f"lost the database ({str(exc).strip().splitlines()[0]}); reconnecting in {delay:.1f} s")
                    self._disconnect()
                    self._stop.wait(delay)
                    delay = min(delay * 2, 5.0)
                except ProjectionStoppedError:
                    raise
                except errors.JsprojError as exc:  # keep running: log it, back off, try again
                    self.log(f"error: {exc}; retrying in {delay:.1f} s")
                    self._disconnect()
                    self._stop.wait(delay)
                    delay = min(delay * 2, 5.0)
        finally:
            self._disconnect(clean=True)

    # -- connections ----------------------------------------------------------

    def _connect(self) -> None:
        if self._control is not None and not self._control.closed and self._work is not None and not self._work.closed:
            return
        self._disconnect()
        search_path = sql.SQL("set search_path = {}").format(sql.Identifier(self.schema))
        self._control = psycopg.connect(self.dsn, autocommit=True, application_name=f"jsproj daemon {self.id}"[:63])
        self._control.execute(search_path)
        self._control.execute("listen pge_events")
        self._work = psycopg.connect(self.dsn, application_name=f"jsproj daemon {self.id} work"[:63])
        self._work.execute(search_path)
        self._work.commit()
        self.held.clear()  # session locks do not outlive a connection

    def _disconnect(self, *, clean: bool = False) -> None:
        for conn in (self._work, self._control):
            if conn is None or conn.closed:
                continue
            try:
                if clean and conn is self._control:
                    conn.execute("delete from pge_daemons where id = %s", (self.id,))
                    conn.execute("select pg_advisory_unlock_all()")
                conn.close()
            except psycopg.Error:
                pass
        self._control = self._work = None
        self.held.clear()
        if clean and self._projections is not None:
            self._projections.close()
            self._projections = None
            self._generation = None

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_heartbeat < HEARTBEAT_SECONDS:
            return
        assert self._control is not None
        self._control.execute(
            """insert into pge_daemons (id, host, pid) values (%s, %s, %s)
               on conflict (id) do update set heartbeat_at = now()""",
            (self.id, socket.gethostname(), os.getpid()),
        )
        self._last_heartbeat = time.monotonic()

    def _wait(self) -> None:
        """Sleep until events are appended (NOTIFY) or the poll interval passes."""
        assert self._control is not None
        deadline = time.monotonic() + self.poll_interval
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for _ in self._control.notifies(timeout=min(left, 0.25), stop_after=1):
                return

    # -- which projections ------------------------------------------------------

    def _refresh(self) -> None:
        """Load the deployed definitions (again, after a redeploy)."""
        assert self._work is not None
        generation = self._work.execute("select generation from pge_engine").fetchone()[0]
        rows = self._work.execute(
            "select name, kind, on_error from pge_projection_definitions where lifecycle = 'async' order by name"
        ).fetchall()
        self._definitions = {
            name: {"kind": kind, "on_error": on_error}
            for name, kind, on_error in rows
            if not self.names or name in self.names
        }
        if generation != self._generation:
            if self._projections is not None:
                self._projections.close()
                self._projections = None
            sources = deployed_sources(self._work)
            if sources:
                self._projections = Projections(sources, **self.limits)
            self._generation = generation
        self._work.commit()

    def _balance(self) -> None:
        """Hold a fair share of the async projections: ceil(projections / live daemons)."""
        assert self._control is not None
        for name in sorted(self.held - set(self._definitions)):
            self._unlock(name)
        live = self._control.execute(
            "select count(*) from pge_daemons where heartbeat_at > now() - make_interval(secs => %s)", (STALE_SECONDS,)
        ).fetchone()[0]
        share = math.ceil(len(self._definitions) / max(1, live))
        for name in sorted(self._definitions, key=lambda n: hash((self.id, n))):
            if len(self.held) >= share:
                break
            if name not in self.held:
                got = self._control.execute(
                    sql.SQL("select pg_try_advisory_lock({})").format(lock_key(name))
                ).fetchone()[0]
                if got:
                    self.held.add(name)
                    self.log(f"working on {name}")
        while len(self.held) > share:
            self._unlock(sorted(self.held, key=lambda n: hash((self.id, n)))[-1])

    def _unlock(self, name: str) -> None:
        assert self._control is not None
        self._control.execute(sql.SQL("select pg_advisory_unlock({})").format(lock_key(name)))
        self.held.discard(name)
        self.log(f"left {name} to another daemon")

    # -- work -----------------------------------------------------------------

    def _work_on(self, name: str) -> bool:
        """Do the next piece of work for a held projection; False when there was none."""
        assert self._work is not None and self._projections is not None
        row = self._work.execute(
            "select status, last_tx::text, last_position from pge_projection_progress where name = %s", (name,)
        ).fetchone()
        self._work.commit()
        if row is None or row[0] == "stopped":
            return False
        if row[0] == "build":  # every held projection that needs a build gets it in the same pass
            building = [
                n for (n,) in self._work.execute(
                    "select name from pge_projection_progress where status = 'build' and name = any(%s) order by name",
                    (sorted(self.held),),
                ).fetchall()
            ]  # fmt: skip
            self._work.commit()
            policies = {n: self._definitions[n]["on_error"] for n in building}
            build(
                self._work,
                self._projections,
                building,
                policies,
                self.page_size,
                on_progress=self.on_progress,
                stop=self._stop,
            )
            return True
        retried = retry_dead_letters(self._work, self._projections, name, requested_only=True)
        on_error = self._definitions[name]["on_error"]
        read = process_page(
            self._work,
            self._projections,
            name,
            on_error,
            (row[1], row[2]),
            self.page_size,
            on_progress=self.on_progress,
        )
        return read > 0 or retried > 0

    def _high_water(self) -> tuple[str, int] | None:
        """The latest event committed now, in (transaction, position) order."""
        assert self._work is not None
        row = self._work.execute(HIGH_WATER).fetchone()
        self._work.commit()
        return (row[0], row[1]) if row else None

    def _caught_up(self, target: tuple[str, int] | None) -> bool:
        assert self._work is not None
        lagging = caught_up_blockers(self._work, list(self._definitions), target)
        self._work.commit()
        stopped = [name for name, status in lagging if status == "stopped"]
        if stopped:
            names = ", ".join(stopped)
            raise ProjectionStoppedError(
                f"cannot catch up: {names} stopped on an event (see `jsproj status`; `jsproj retry` resumes)"
            )
        return not lagging


def caught_up_blockers(
    conn: psycopg.Connection, names: list[str], target: tuple[str, int] | None
) -> list[tuple[str, str]]:
    """The projections (name, status) that have not processed every event up to ``target``."""
    return conn.execute(
        """select name, status from pge_projection_progress
           where name = any(%s)
             and (status <> 'running'
                  or (%s::xid8 is not null and (last_tx, last_position) < (%s::xid8, %s::bigint)))""",
        (names, target[0] if target else None, target[0] if target else None, target[1] if target else 0),
    ).fetchall()


def _read_page(conn: psycopg.Connection, query: str, name: str, after: tuple[str, int], limit: int) -> Page | None:
    row = conn.execute(query, {"name": name, "tx": after[0], "position": after[1], "limit": limit}).fetchone()
    if not row or not row[1]:
        return None
    return Page(row[0], row[1], list(row[2]), row[3], row[4], row[5])


@dataclass
class LinesPage:
    text: str
    count: int
    last_tx: str
    last_position: int


def _read_lines(conn: psycopg.Connection, after: tuple[str, int], limit: int) -> LinesPage | None:
    text, count = conn.execute(PAGE_AS_LINES, {"tx": after[0], "position": after[1], "limit": limit}).fetchone()
    if not count:
        return None
    last = text[text.rfind("\n") + 1 :].split("\t")
    return LinesPage(text, count, last[9], int(last[0]))


def _current_schema(conn: psycopg.Connection) -> str:
    """The schema a connection works in (the first of its search_path)."""
    return conn.execute("select current_schema()").fetchone()[0]


def _dead_letter(conn: psycopg.Connection, name: str, record: dict[str, Any], error: errors.JsprojError) -> None:
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


def _stop_projection(conn: psycopg.Connection, name: str, error: errors.JsprojError) -> None:
    conn.execute(
        "update pge_projection_progress set status = 'stopped', error = %s, updated_at = now() where name = %s",
        (Jsonb(error.to_dict()), name),
    )


def _without(records: str, index: int) -> tuple[str, str, str]:
    """The page without record ``index``: (records before and after it, the records before it, that record)."""
    items = json.loads(records)
    return json.dumps(items[:index] + items[index + 1 :]), json.dumps(items[:index]), json.dumps(items[index])


def process_page(
    conn: psycopg.Connection,
    projections: Projections,
    name: str,
    on_error: str,
    after: tuple[str, int],
    page_size: int,
    *,
    on_progress: Callable[[str, int], None] | None = None,
) -> int:
    """Apply the next page of events to an async projection, with its progress, in one transaction.

    Returns the events read (0 when caught up). A handler error dead-letters
    the event and goes on (``dead-letter``), or applies the events before it
    and stops the projection (``stop``).
    """
    try:
        with conn.transaction():
            page = _read_page(conn, PAGE_WITH_DOCUMENTS, name, after, page_size)
            if page is None:
                return 0
            records, positions = page.records, list(page.positions)
            while True:
                try:
                    apply_records(conn, projections, records, [name], page.documents or {})
                    break
                except (errors.ProjectionHandlerError, errors.SandboxLimitError) as exc:
                    if exc.info.get("position") not in positions:
                        _stop_projection(conn, name, exc)  # a limit without a known event: stop where it is
                        page.last_tx, page.last_position, page.count = after[0], after[1], 0
                        break
                    index = positions.index(exc.info["position"])
                    rest, before, failed = _without(records, index)
                    if on_error == "dead-letter":
                        _dead_letter(conn, name, json.loads(failed), exc)
                        records = rest
                        positions.pop(index)
                        if not positions:
                            break
                        continue
                    if index:  # apply what comes before the event, and stop on it
                        apply_records(conn, projections, before, [name], page.documents or {})
                        previous = json.loads(before)[-1]
                        page.last_tx = conn.execute("select tx_id::text from pge_events where position = %s",
                                                    (previous["position"],)).fetchone()[0]  # fmt: skip
                        page.last_position, page.count = previous["position"], index
                    else:
                        page.last_tx, page.last_position, page.count = after[0], after[1], 0
                    _stop_projection(conn, name, exc)
                    break
            moved = conn.execute(
                """update pge_projection_progress
                   set last_tx = %s::xid8, last_position = %s, events = events + %s, updated_at = now()
                   where name = %s and last_tx = %s::xid8 and last_position = %s and status <> 'build'""",
                (page.last_tx, page.last_position, page.count, name, after[0], after[1]),
            ).rowcount
            if moved != 1:
                raise ProgressConflictError(f"the progress of {name} moved under this daemon; the page was not applied")
    except ProgressConflictError:
        return 0
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            raise
        raise translate(exc, f"projection {name}") from exc
    if on_progress:
        on_progress(name, page.count)
    return page.count


def build(
    conn: psycopg.Connection,
    projections: Projections,
    names: Sequence[str],
    on_error: Mapping[str, str],
    page_size: int,
    *,
    on_progress: Callable[[str, int], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Build async projections from scratch and swap each in atomically; returns the events read.

    One pass over the event log serves every projection: the documents are
    folded in the sandbox's memory (one call per page, no document reads),
    written to a staging table per projection every few pages, and swapped for
    the live ones in one transaction that sets the progress to the last event
    folded -- so readers see the old views until the new ones are complete;
    events appended meanwhile are then applied like any others, page by page.
    The caller holds the projections' locks.
    A projection that stops (policy 'stop') leaves the build; the others go on.
    """
    names = list(names)
    kinds = dict(
        conn.execute("select name, kind from pge_projection_definitions where name = any(%s)", (names,)).fetchall()
    )
    staging = {name: sql.Identifier(f"pge_build_{name.lower()}") for name in names}
    for name in names:
        conn.execute(sql.SQL("drop table if exists {}").format(staging[name]))
        columns = "id text primary key, data jsonb not null, updated_at timestamptz not null default now()"
        conn.execute(sql.SQL("create table {} (" + columns + ")").format(staging[name]))
    conn.execute("delete from pge_dead_letters where projection = any(%s)", (names,))  # found again if they still fail
    conn.commit()
    projections.fold_start(names)
    active = list(names)
    after, total, pages = ("0", 0), 0, 0

    def leave(name: str, error: errors.JsprojError) -> None:
        _stop_projection(conn, name, error)
        conn.execute(sql.SQL("drop table if exists {}").format(staging[name]))
        active.remove(name)

    def lost(exc: errors.SandboxLimitError) -> None:
        """A time or memory limit restarted the sandbox, and the build's documents went with it:
        the projection at fault stops, the others build again on the daemon's next round."""
        culprit = exc.info.get("projection")
        for name in list(active):
            if culprit is None or name == culprit:
                leave(name, exc)
            else:
                conn.execute(sql.SQL("drop table if exists {}").format(staging[name]))
                active.remove(name)
        conn.commit()

    def fold(page: Page) -> None:
        """Fold a page into every active projection; a poison event only affects its projection."""
        work = [(list(active), page.records, list(page.positions))]
        try:
            while work:
                subset, records, positions = work.pop()
                if not positions or not subset:
                    continue
                try:
                    projections.fold_page(records, only=subset)
                except errors.ProjectionHandlerError as exc:
                    culprit = exc.info["projection"]
                    index = positions.index(exc.info["position"])
                    rest, before, failed = _without(records, index)
                    work.append(([n for n in subset if n != culprit], records, positions))
                    if on_error.get(culprit) == "dead-letter":
                        _dead_letter(conn, culprit, json.loads(failed), exc)
                        work.append(([culprit], rest, positions[:index] + positions[index + 1 :]))
                    else:
                        if index:
                            projections.fold_page(before, only=[culprit])
                        leave(culprit, exc)
                    conn.commit()
        except errors.SandboxLimitError as exc:
            lost(exc)

    def flush() -> None:
        for name, change in projections.fold_flush().items():
            if name not in active:
                continue
            if change.upserts:
                conn.execute(
                    sql.SQL("""insert into {} (id, data) select key, value from jsonb_each(%s)
                               on conflict (id) do update set data = excluded.data, updated_at = now()""").format(
                        staging[name]
                    ),
                    (Jsonb(change.upserts),),
                )
            if change.deletes:
                conn.execute(sql.SQL("delete from {} where id = any(%s)").format(staging[name]), (change.deletes,))

    def fold_page_read(page: LinesPage, after: tuple[str, int]) -> LinesPage | Page:
        """Fold a page read as lines; around a poison event, again as JSON records (all or nothing)."""
        try:
            projections.fold_lines(page.text)
            return page
        except errors.SandboxLimitError as exc:
            lost(exc)
            return page
        except errors.ProjectionHandlerError:
            records = _read_page(conn, PAGE_OF_RECORDS, names[0], after, page_size)
            assert records is not None
            fold(records)
            return records

    # While the sandbox folds a page, a second connection reads the next one:
    # PostgreSQL and V8 work at the same time, in their own processes.
    with psycopg.connect(conn.info.dsn, autocommit=True) as reader, ThreadPoolExecutor(1) as ahead:
        reader.execute("set timezone = 'UTC'")  # the timestamps' text in record lines
        reader.execute(sql.SQL("set search_path = {}").format(sql.Identifier(_current_schema(conn))))
        next_page = ahead.submit(_read_lines, reader, after, page_size)
        while active and (stop is None or not stop.is_set()):
            page = next_page.result()
            if page is None:
                break
            next_page = ahead.submit(_read_lines, reader, (page.last_tx, page.last_position), page_size)
            folded = fold_page_read(page, after)
            conn.commit()
            after, total, pages = (folded.last_tx, folded.last_position), total + folded.count, pages + 1
            if on_progress:
                on_progress(", ".join(active), folded.count)
            if pages % FLUSH_EVERY == 0:
                flush()
                conn.execute(
                    "update pge_projection_progress set events = %s, updated_at = now() where name = any(%s)",
                    (total, active),
                )
                conn.commit()
        next_page.cancel()
    if not active or (stop is not None and stop.is_set()):
        for name in active:
            conn.execute(sql.SQL("drop table if exists {}").format(staging[name]))
        conn.commit()
        return total

    conn.commit()
    with conn.transaction():  # swap; what was appended meanwhile comes next, page by page
        flush()
        for name in active:
            if kinds[name] == "aggregate":
                conn.execute("delete from pge_aggregates where name = %s", (name,))
                conn.execute(
                    sql.SQL("insert into pge_aggregates (name, data) select id, data from {}").format(staging[name])
                )
                conn.execute(sql.SQL("drop table {}").format(staging[name]))
            else:
                live = f"pge_projections_{name.lower()}"
                conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(live)))
                conn.execute(sql.SQL("alter table {} rename to {}").format(staging[name], sql.Identifier(live)))
                conn.execute(
                    sql.SQL("alter index {} rename to {}").format(
                        sql.Identifier(f"pge_build_{name.lower()}_pkey"), sql.Identifier(f"{live}_pkey")
                    )
                )
        conn.execute(
            """update pge_projection_progress
               set status = 'running', error = null, last_tx = %s::xid8, last_position = %s, events = %s,
                   updated_at = now()
               where name = any(%s)""",
            (after[0], after[1], total, active),
        )
    return total


def resume(conn: psycopg.Connection, name: str) -> bool:
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
    conn: psycopg.Connection, projections: Projections, name: str, *, requested_only: bool = False
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
            record, documents = conn.execute(
                """select '[' || r.record || ']',
                          pge_load_documents(pge_route(array[r.stream_id], array[r.stream_type], array[r.type],
                                                       array[%s]))
                   from pge_records() r where r.position = %s""",
                (name, position),
            ).fetchone()
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
