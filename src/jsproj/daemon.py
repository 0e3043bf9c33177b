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

import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import psycopg
from psycopg import sql

from jsproj import errors
from jsproj.build import build
from jsproj.errors import ProjectionStoppedError
from jsproj.follow import process_page
from jsproj.identifiers import search_path
from jsproj.pages import HIGH_WATER
from jsproj.poison import retry_dead_letters
from jsproj.python_engine import deployed_sources
from jsproj.rows import value
from jsproj.runtime.projections import Projections
from jsproj.runtime.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT

DEFAULT_PAGE_SIZE = 5000  # events per page: measured by bench/page_size_bench.py (docs/benchmarks.md)
LOCK_CLASS = 1246974038  # advisory locks (LOCK_CLASS, hashtext(projection)): who works on a projection
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 30.0


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
        self.limits: dict[str, Any] = {"timeout": timeout, "memory_limit": memory_limit}
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
        self._control = psycopg.connect(self.dsn, autocommit=True, application_name=f"jsproj daemon {self.id}"[:63])
        self._control.execute(search_path(self.schema))
        self._control.execute("listen pge_events")
        self._work = psycopg.connect(self.dsn, application_name=f"jsproj daemon {self.id} work"[:63])
        self._work.execute(search_path(self.schema))
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
        generation = value(self._work, "select generation from pge_engine")
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
        live = value(
            self._control,
            "select count(*) from pge_daemons where heartbeat_at > now() - make_interval(secs => %s)",
            (STALE_SECONDS,),
        )
        share = math.ceil(len(self._definitions) / max(1, live))
        for name in sorted(self._definitions, key=lambda n: hash((self.id, n))):
            if len(self.held) >= share:
                break
            if name not in self.held:
                got = value(self._control, sql.SQL("select pg_try_advisory_lock({})").format(lock_key(name)))
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
