"""The async projection daemon's loop: heartbeat, balancing, locks, and a page at a time for the units it holds.

Each daemon process holds a PostgreSQL session advisory lock per unit it
works on -- an async projection, or one partition of a partitioned one --
so any number of daemons, on any number of machines, share the units and
never work on one at the same time; when a holder dies its connection
closes, the lock is released and another daemon takes over.

Each round, the units it holds that are at the same position are served by
one page (:func:`jsproj.follow.daemon.pages.prepare`, then ``commit``): read once,
applied to all of them in one transaction with their progress. The page of the least advanced
group stops where the next group starts, so groups merge and stay merged.
Pages grow while a backlog fills them and shrink when following live
writers. NOTIFY wakes the daemon, and it polls briefly after any work, so
appends that did not notify (sql/functions/async.sql) are seen at once;
polling is the source of truth.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.engine.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from jsproj.errors import ProjectionStoppedError
from jsproj.follow.daemon import progress
from jsproj.follow.daemon.build import build
from jsproj.follow.daemon.hooks import DaemonHooks
from jsproj.follow.daemon.pages import Applied, commit, prepare
from jsproj.follow.daemon.poison import retry_dead_letters
from jsproj.follow.daemon.progress import Progress, Unit, caught_up_blockers, lock_key
from jsproj.follow.daemon.versions import Pending, VersionBuild, build_version, waiting
from jsproj.logs import log_warnings
from jsproj.store import log as lines
from jsproj.store.identifiers import search_path
from jsproj.store.log import END, HIGH_WATER, LinesPage, read_lines
from jsproj.store.python_engine import deployed_sources
from jsproj.store.translate import reason

DEFAULT_PAGE_SIZE = 20000  # the most events per page: bench/page_size_bench.py and scenario 7 (docs/benchmarks.md)
FIRST_PAGE = 100  # a page's size after an idle spell; it doubles while pages come back full
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 30.0
BALANCE_SECONDS = 1.0  # how often the share of units is checked (at once when the definitions change)
CHECK_SECONDS = 0.5  # how often definitions and progress are read again while pages go well
BRISK_SECONDS = 2.0  # after work, poll this long at BRISK_POLL instead of waiting for a notification
BRISK_POLL = 0.01

logger = logging.getLogger("jsproj.daemon")


class _Undone(Exception):
    """The page committed before the one in hand was undone: the one in hand is dropped too."""


@dataclass(frozen=True)
class Definition:
    """What the daemon needs of a deployed async projection."""

    kind: str
    on_error: str
    partitions: int


@dataclass
class _VersionJob:
    """A new version being built beside the deployed one: in a thread, on a connection of its own."""

    pending: Pending
    conn: psycopg.Connection[Any]
    future: Future[VersionBuild | None]
    halt: threading.Event


class Daemon:
    """One daemon process's work: ``run()`` until ``stop()``, or until caught up.

    ``names`` limits it to some async projections; ``page_size`` is the most
    events per engine call and transaction. It logs on the ``jsproj.follow.daemon``
    logger (and calls ``log``, if given, with each message); ``hooks`` hears of
    its rounds, pages and lost connections (:mod:`jsproj.follow.daemon.metrics`).
    ``on_progress`` and ``hooks.built`` are called from the thread that builds
    a new version beside a deployed one, too (:mod:`jsproj.follow.daemon.versions`).
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
        hooks: DaemonHooks | None = None,
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
        self.hooks = hooks or DaemonHooks()
        self.on_progress = on_progress or (lambda name, events: None)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held: set[Unit] = set()
        self._stop = threading.Event()
        self._control: psycopg.Connection | None = None
        self._work: psycopg.Connection | None = None
        self._reader: psycopg.Connection | None = None  # reads pages, ahead of the work connection
        self._pool: ThreadPoolExecutor | None = None  # the reading connection's thread, while running
        self._commits: ThreadPoolExecutor | None = None  # the thread committing pages on the work connection
        self._committing: tuple[Future[Applied | None], list[str]] | None = None  # a page and its kept documents
        self._ahead: tuple[tuple[tuple[str, int], tuple[str, int], int], Future[LinesPage | None]] | None = None
        self._projections: Projections | None = None
        self._generation: int | None = None
        self._cached_at: dict[str, tuple[str, int]] = {}  # where the documents the sandbox keeps are as of
        self._known: list[Progress] | None = None  # the held units' progress: read when due, then moved by pages
        self._versions: list[Pending] = []  # new versions of held projections to build beside them: read with it
        self._version_job: _VersionJob | None = None  # the one being built, in its thread, beside the deployed one
        self._version_pool: ThreadPoolExecutor | None = None
        self._checked = 0.0
        self._definitions: dict[str, Definition] = {}
        self._last_heartbeat = 0.0
        self._last_balance = 0.0
        self._last_work = 0.0
        self._limit = min(FIRST_PAGE, page_size)
        self._ceiling = page_size  # the most a page may grow to: lower after a page was cut around a limit
        self._restarts = 0  # the sandbox restarts of the projections closed since the start

    @property
    def sandbox_restarts(self) -> int:
        """How often the V8 worker was restarted since the start (a limit hit, a crash)."""
        current = self._projections
        return self._restarts + (current.sandbox.restarts if current is not None else 0)

    def _say(self, level: int, message: str) -> None:
        logger.log(level, message)
        self.log(message)

    # -- running ------------------------------------------------------------

    def stop(self) -> None:
        """Finish the current page, release the projections and return from ``run()``."""
        self._stop.set()

    def run(self, *, until_caught_up: bool = False) -> bool:
        """Work until stopped; with ``until_caught_up``, until every async projection has
        processed everything appended before the call. Survives the database going away
        (reconnects with backoff and resumes from the stored progress).

        Returns True when it caught up, False when it was stopped first.
        """
        delay = 0.1
        target: tuple[str, int] | None = None
        targeted = False
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="jsproj-read-ahead")
        self._commits = ThreadPoolExecutor(1, thread_name_prefix="jsproj-commit")
        self._version_pool = ThreadPoolExecutor(1, thread_name_prefix="jsproj-version-build")
        try:
            while not self._stop.is_set():
                try:
                    self._connect()
                    if until_caught_up and not targeted:
                        target, targeted = self._high_water(), True
                    busy = self._round()
                    self.hooks.round_done(frozenset(self.held))
                    delay = 0.1
                    if until_caught_up and self._maybe_caught_up(busy, target) and self._caught_up(target):
                        return True
                    if not busy:
                        self._wait()
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    why = reason(exc, self.dsn)
                    self.hooks.lost(f"lost the database: {why}")
                    self._say(logging.WARNING, f"lost the database ({why}); reconnecting in {delay:.1f} s")
                    self._disconnect()
                    self._stop.wait(delay)
                    delay = min(delay * 2, 5.0)
                except ProjectionStoppedError:
                    raise
                except errors.JsprojError as exc:  # keep running: log it, back off, try again
                    self.hooks.lost(f"error: {reason(exc, self.dsn)}")
                    self._say(logging.ERROR, f"error: {reason(exc, self.dsn)}; retrying in {delay:.1f} s")
                    self._disconnect()
                    self._stop.wait(delay)
                    delay = min(delay * 2, 5.0)
            return False
        finally:
            self._disconnect(clean=True)
            self._pool.shutdown()
            self._commits.shutdown()
            self._version_pool.shutdown()
            self._pool = self._commits = self._version_pool = None
            self.hooks.finished()

    def _round(self) -> bool:
        """One round: heartbeat; definitions, balance and progress when due; then a piece of work;
        False when there was none."""
        self._heartbeat()
        if self._known is None or time.monotonic() - self._checked >= CHECK_SECONDS:
            self._settle()
            assert self._work is not None
            changed = self._refresh()
            if changed or not self.held or time.monotonic() - self._last_balance >= BALANCE_SECONDS:
                self._balance()
            self._known = progress.read(self._work, sorted(self.held)) if self.held else []
            self._versions = waiting(self._work, sorted({u.name for u in self.held if u.partition == 0}))
            self._work.commit()
            self._checked = time.monotonic()
        busy = self._work_on_held(self._known) if self.held else False
        if busy:
            self._last_work = time.monotonic()
        return busy

    # -- connections ----------------------------------------------------------

    def _connect(self) -> None:
        connections = (self._control, self._work, self._reader)
        if all(conn is not None and not conn.closed for conn in connections):
            return
        self._disconnect()
        self._control = psycopg.connect(self.dsn, autocommit=True, application_name=f"jsproj daemon {self.id}"[:63])
        self._control.execute(search_path(self.schema))
        self._control.execute("listen pge_events")
        # In autocommit: a page commits as one statement (pages.commit); builds and retries make their own
        # transactions.
        self._work = psycopg.connect(self.dsn, autocommit=True, application_name=f"jsproj daemon {self.id} work"[:63])
        log_warnings(self._work, logger)  # a build's swap says what of the user's it could not keep
        self._work.execute(search_path(self.schema))
        # A page's documents and progress commit together, so they can commit without waiting for the disk:
        # a server crash that undoes the last pages undoes their progress too, and they are applied again.
        self._work.execute("set synchronous_commit = off")
        lines.prepare(self._work)  # retries read events as record lines on it
        self._work.commit()
        self._reader = psycopg.connect(self.dsn, autocommit=True, application_name=f"jsproj daemon {self.id} read"[:63])
        self._reader.execute(search_path(self.schema))
        lines.prepare(self._reader)
        self.held.clear()  # session locks do not outlive a connection
        self._forget()  # nor does knowing that no one else wrote the documents
        self._known = None
        self._last_heartbeat = self._last_balance = 0.0

    def _disconnect(self, *, clean: bool = False) -> None:
        self._end_version()  # it needs the projection's lock, which goes with the control connection
        self._drop_read_ahead()
        try:
            self._settle()
        except (psycopg.Error, errors.JsprojError):
            pass  # the connection goes, and the page with it
        for conn in (self._reader, self._work, self._control):
            if conn is None or conn.closed:
                continue
            try:
                if clean and conn is self._control:
                    conn.execute("delete from pge_daemons where id = %s", (self.id,))
                    conn.execute("select pg_advisory_unlock_all()")
                conn.close()
            except psycopg.Error:
                pass
        self._control = self._work = self._reader = None
        self.held.clear()
        if clean and self._projections is not None:
            self._restarts += self._projections.sandbox.restarts
            self._projections.close()
            self._projections = None
            self._generation = None

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_heartbeat < HEARTBEAT_SECONDS:
            return
        assert self._control is not None
        self._control.execute(
            """insert into pge_daemons (id, host, pid, backend_pid) values (%s, %s, %s, pg_backend_pid())
               on conflict (id) do update set heartbeat_at = now(), backend_pid = excluded.backend_pid""",
            (self.id, socket.gethostname(), os.getpid()),
        )
        self._last_heartbeat = time.monotonic()

    def _wait(self) -> None:
        """Sleep until events are appended (NOTIFY) or the poll interval passes -- briefly, after recent work."""
        assert self._control is not None
        self._settle()
        brisk = time.monotonic() - self._last_work < BRISK_SECONDS or self._version_job is not None
        deadline = time.monotonic() + (min(BRISK_POLL, self.poll_interval) if brisk else self.poll_interval)
        if not brisk:
            self._limit, self._ceiling = min(FIRST_PAGE, self.page_size), self.page_size
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for _ in self._control.notifies(timeout=min(left, 0.25), stop_after=1):
                return

    # -- which projections ------------------------------------------------------

    def _refresh(self) -> bool:
        """Read the deployed definitions (loading their code again after a redeploy); True when they changed."""
        assert self._work is not None
        rows = self._work.execute(
            """select e.generation, d.name, d.kind, d.on_error, d.partitions
               from pge_engine e left join pge_projection_definitions d on d.lifecycle = 'async' order by d.name"""
        ).fetchall()
        generation = rows[0][0] if rows else 0
        definitions = {
            name: Definition(kind, on_error, partitions)
            for _, name, kind, on_error, partitions in rows
            if name is not None and (not self.names or name in self.names)
        }
        changed = definitions != self._definitions or generation != self._generation
        self._definitions = definitions
        if generation != self._generation:
            if self._projections is not None:
                self._restarts += self._projections.sandbox.restarts
                self._projections.close()
                self._projections = None
            self._cached_at.clear()
            sources = deployed_sources(self._work)
            if sources:
                self._projections = Projections(sources, **self.limits)
            self._generation = generation
        self._work.commit()
        return changed

    def _units(self) -> list[Unit]:
        return [
            Unit(name, partition, definition.partitions)
            for name, definition in sorted(self._definitions.items())
            for partition in range(definition.partitions)
        ]

    def _balance(self) -> None:
        """Hold a fair share of the units: ceil(units / live daemons)."""
        assert self._control is not None
        units = self._units()
        for unit in sorted(self.held - set(units)):
            self._unlock(unit)
        row = self._control.execute(
            """select count(*) from pge_daemons d
               where d.heartbeat_at > now() - make_interval(secs => %s)
                 and (d.backend_pid is null or exists (select from pg_stat_activity a where a.pid = d.backend_pid))""",
            (STALE_SECONDS,),
        ).fetchone()
        share = math.ceil(len(units) / max(1, row[0] if row else 1))
        preference = sorted(units, key=lambda u: hash((self.id, u.lock_name)))
        for unit in preference:
            if len(self.held) >= share:
                break
            if unit not in self.held:
                locked = self._control.execute(
                    sql.SQL("select pg_try_advisory_lock({})").format(lock_key(unit.lock_name))
                ).fetchone()
                if locked and locked[0]:
                    self.held.add(unit)
                    self._known = None
                    self._say(logging.INFO, f"working on {unit}")
        while len(self.held) > share:
            self._unlock(next(u for u in reversed(preference) if u in self.held))
        self._last_balance = time.monotonic()

    def _unlock(self, unit: Unit) -> None:
        assert self._control is not None
        self._control.execute(sql.SQL("select pg_advisory_unlock({})").format(lock_key(unit.lock_name)))
        self.held.discard(unit)
        self._known = None
        self._forget([unit.name])  # its next holder writes them
        self._say(logging.INFO, f"left {unit} to another daemon")

    # -- work -----------------------------------------------------------------

    def _work_on_held(self, rows: list[Progress]) -> bool:
        """Builds first, requested retries next, then a page for the least advanced group; False when idle.

        ``rows`` is the held units' progress as last read, and moved since by this daemon's pages.
        """
        assert self._work is not None and self._projections is not None
        building = sorted({p.unit.name for p in rows if p.status == "build" and p.unit.partition == 0})
        if building or any(row.retry for row in rows):
            self._settle()  # the work connection is this thread's again
        if building:
            self._known = None
            if self._version_job is not None and self._version_job.pending.name in building:
                self._end_version()  # a redeploy or a rebuild replaced it, and the build needs its staging table
            self._build(building)
            return True
        switched = self._tend_version()
        retried = 0
        for row in rows:
            if row.retry and row.status == "running":
                self._known = None
                retried += retry_dead_letters(self._work, self._projections, row.unit, requested_only=True)
                self._forget([row.unit.name])
        return self._follow([p for p in rows if p.status == "running"]) or retried > 0 or switched

    def _build(self, names: list[str]) -> None:
        assert self._work is not None and self._projections is not None
        building = progress.building(self._work, names)
        self._work.commit()
        policies = {n: self._definitions[n].on_error for n in building}
        self._forget(building)
        with self._beating():
            build(
                self._work,
                self._projections,
                building,
                policies,
                self.page_size,
                on_progress=self._built,
                stop=self._stop,
            )

    @contextmanager
    def _beating(self) -> Iterator[None]:
        """Heartbeats while the loop's thread is in a long step (a build: copying millions of documents and
        indexing them takes minutes), from a thread of its own on the control connection (idle meanwhile), so
        that other daemons and ``jsproj status`` see this one alive; and word to the hooks that it works while
        the server runs the build's statement -- not while it waits for a lock, nor while the connection is idle
        (the fold reports its own pages) -- so that /healthz shows a build stuck behind a lock, or in Python."""
        assert self._control is not None and self._work is not None
        control, backend, done = self._control, self._work.info.backend_pid, threading.Event()

        def beat() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                try:
                    row = control.execute(
                        "select state = 'active' and wait_event_type is distinct from 'Lock' from pg_stat_activity"
                        " where pid = %s",
                        (backend,),
                    ).fetchone()
                    self._heartbeat()
                except psycopg.Error:
                    return  # the loop's thread finds the connection lost, and says so
                if row == (True,):  # the server works on the build's statement (not idle, not waiting for a lock)
                    self.hooks.working()

        beating = threading.Thread(target=beat, name="jsproj daemon heartbeat", daemon=True)
        beating.start()
        try:
            yield
        finally:
            done.set()
            beating.join()

    def _tend_version(self) -> bool:
        """Start building a new version beside the deployed one (in its thread, on its connection), or switch
        to the one built, between two pages of this loop; True when it switched."""
        job = self._version_job
        if job is None:
            if self._versions and self._version_pool is not None:
                self._version_job = self._start_version(self._versions.pop(0))
            return False
        if not job.future.done():
            return False
        self._version_job = None
        try:
            staged = job.future.result()
            if staged is None:
                return False
            if not any(unit.name == job.pending.name for unit in self.held):
                staged.abandon()  # another daemon holds it now: it builds the version again
                return False
            self._settle()  # no page of the deployed version is in flight
            switched = staged.switch()
        except (psycopg.Error, errors.JsprojError) as exc:
            self._say(logging.ERROR, f"building version {job.pending.version} of {job.pending.name}: {exc}")
            return False
        finally:
            job.conn.close()
        self._known = None
        if switched:
            self._say(logging.INFO, f"{job.pending.name} is at version {job.pending.version} now")
            self._forget([job.pending.name])  # the sandbox keeps the old version's documents
            self._drop_read_ahead()
        return switched

    def _start_version(self, pending: Pending) -> _VersionJob:
        assert self._version_pool is not None
        self._say(logging.INFO, f"building version {pending.version} of {pending.name} beside the deployed one")
        conn = psycopg.connect(self.dsn, autocommit=True, application_name=f"jsproj daemon {self.id} version"[:63])
        log_warnings(conn, logger)
        conn.execute(search_path(self.schema))
        halt = threading.Event()
        future = self._version_pool.submit(
            build_version, conn, pending, self.limits, self.page_size, on_progress=self._built, stop=halt
        )
        return _VersionJob(pending, conn, future, halt)

    def _end_version(self) -> None:
        """Stop the version being built (its staging goes) and close its connection."""
        job, self._version_job = self._version_job, None
        if job is None:
            return
        job.halt.set()
        try:
            staged = job.future.result()
            if staged is not None:
                staged.abandon()
        except (psycopg.Error, errors.JsprojError):
            pass  # its connection goes, and its staging table is dropped by the next build
        finally:
            job.conn.close()

    def _built(self, name: str, events: int) -> None:
        self.hooks.built(name, events)
        self.on_progress(name, events)

    def _follow(self, running: list[Progress]) -> bool:
        """Serve the least advanced group of units at one position, up to where the next group is."""
        assert self._work is not None and self._projections is not None
        if not running:
            return False
        positions = sorted({p.order for p in running})
        group = [p for p in running if p.order == positions[0]]
        following = next((p for p in running if p.order == positions[1]), None) if len(positions) > 1 else None
        until = following.after if following else END
        policies = {p.unit.name: self._definitions[p.unit.name].on_error for p in group}
        units = [p.unit for p in group]
        page = self._page(group[0].after, until)
        if page is None:
            return False
        cache = self._cache_for(group, running)
        try:
            epochs = {p.unit: p.epoch for p in group}
            prepared = prepare(self._work, self._projections, units, policies, group[0].after, page, cache,
                               epochs=epochs, ready=self._settled)  # fmt: skip
            self._settled()  # the page before is committed: this one may follow it
        except BaseException as exc:
            self._forget(cache)
            self._known = None
            if isinstance(exc, _Undone):
                return False
            raise
        applied = prepared.applied
        self._committing = (self._committer().submit(commit, self._work, prepared), cache)
        served = prepared.call.page  # the page as applied: cut around a limit, perhaps
        self._cached_at.update({name: served.last for name in cache if name not in applied.stopped})
        if self._known is not None:
            self._known = [self._moved(p, applied) for p in self._known] if not applied.stopped else None
        if applied.count < page.count:  # the page was cut around a limit: read at most that until idle
            self._limit = self._ceiling = max(1, applied.count)
            self._drop_read_ahead()
        for name in sorted({u.name for u in units}):
            self.on_progress(name, applied.count)
        return True

    def _committer(self) -> ThreadPoolExecutor:
        assert self._commits is not None
        return self._commits

    def _settled(self) -> None:
        """Wait until the page being committed (on the work connection, by the committing thread) is;
        raise :class:`_Undone` if it was not (its documents and progress are read again)."""
        pending, self._committing = self._committing, None
        if pending is None:
            return
        future, cache = pending
        try:
            applied = future.result()
        except BaseException:
            self._forget(cache)
            self._known = None
            raise
        if applied is None:
            self._forget(cache)
            self._known = None
            self._drop_read_ahead()
            raise _Undone()
        self.hooks.page_committed(applied)
        for name in applied.stopped:
            self._say(logging.ERROR, f"{name} stopped on an event (see `jsproj status`; `jsproj retry {name}` resumes)")

    @staticmethod
    def _moved(row: Progress, applied: Applied) -> Progress:
        """A unit's progress after a page: where the page left it."""
        return dataclasses.replace(row, after=applied.reached[row.unit]) if row.unit in applied.reached else row

    def _cache_for(self, group: list[Progress], running: list[Progress]) -> list[str]:
        """The group's projections whose documents the sandbox may keep: every unit of the projection this
        daemon holds is in the group, and what it kept is as of the group's position (else it is dropped)."""
        names = sorted({p.unit.name for p in group})
        spread = {p.unit.name for p in running if p not in group}
        stale = [n for n in names if n in spread or self._cached_at.get(n) != group[0].after]
        self._forget(stale)
        return [n for n in names if n not in spread]

    def _forget(self, names: Iterable[str] | None = None) -> None:
        """Drop the documents the sandbox keeps for ``names`` (None: all of them)."""
        chosen = None if names is None else [n for n in names]
        if chosen == []:
            return
        for name in list(self._cached_at) if chosen is None else chosen:
            self._cached_at.pop(name, None)
        if self._projections is not None:
            self._projections.cache_drop(chosen)

    def _page(self, after: tuple[str, int], until: tuple[str, int]) -> LinesPage | None:
        """The page after ``after`` (up to ``until``): the one read ahead if it is that one, else read now.

        A full page grows the next (up to the page size) and has the next one
        read ahead on the reading connection while this one is applied.
        """
        assert self._reader is not None and self._pool is not None
        wanted = (after, until, self._limit)
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == wanted:
            page = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].result()  # one read at a time on the reading connection
            page = read_lines(self._reader, after, self._limit, until)
        if page is not None and page.count >= self._limit:
            self._limit = min(self._ceiling, self._limit * 2)
            following = (page.last, until, self._limit)
            self._ahead = (following, self._pool.submit(read_lines, self._reader, page.last, self._limit, until))
        return page

    def _drop_read_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            try:
                ahead[1].result()
            except psycopg.Error:
                pass  # the reading connection is checked on the next round

    def _settle(self) -> None:
        """:meth:`_settled`, whatever became of the page being committed."""
        try:
            self._settled()
        except _Undone:
            pass

    def _high_water(self) -> tuple[str, int] | None:
        """The latest event committed now, in (transaction, position) order."""
        self._settle()
        assert self._work is not None
        row = self._work.execute(HIGH_WATER).fetchone()
        self._work.commit()
        return (row[0], row[1]) if row else None

    def _maybe_caught_up(self, busy: bool, target: tuple[str, int] | None) -> bool:
        """Worth asking the database (which waits for the page being committed): after an idle round, or
        once every unit this daemon holds is known to have reached ``target``."""
        if not busy or target is None:
            return True
        reached = (int(target[0]), target[1])
        return self._known is not None and all(p.order >= reached for p in self._known if p.status == "running")

    def _caught_up(self, target: tuple[str, int] | None) -> bool:
        if self._version_job is not None or self._versions:
            return False  # a new version to build and switch to, beside a held projection
        self._settle()
        assert self._work is not None
        lagging = caught_up_blockers(self._work, list(self._definitions), target)
        self._work.commit()
        stopped = sorted({name for name, status in lagging if status == "stopped"})
        if stopped:
            names = ", ".join(stopped)
            raise ProjectionStoppedError(
                f"cannot catch up: {names} stopped on an event (see `jsproj status`; `jsproj retry` resumes)"
            )
        return not lagging
