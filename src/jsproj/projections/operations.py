"""Operating deployed projections: rebuild one, retry one after a fix, list the dead letters.

What ``jsproj rebuild``, ``jsproj retry`` and ``jsproj dead-letters`` do, for
the CLI, the REPL and Python applications alike; results are dataclasses.
Where a daemon holds the projection (its advisory lock), the daemon does the
work and these follow it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.engine.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from jsproj.follow.daemon import progress
from jsproj.follow.daemon.build import build
from jsproj.follow.daemon.loop import DEFAULT_PAGE_SIZE
from jsproj.follow.daemon.poison import (
    DeadLetter,
    DeadLetterGroup,
    dead_letter_groups,
    dead_letters,
    request_retry,
    retry_dead_letters,
)
from jsproj.follow.daemon.progress import Unit, lock_key
from jsproj.store import log as lines
from jsproj.store.identifiers import search_path
from jsproj.store.python_engine import deployed_sources
from jsproj.store.python_engine import rebuild as rebuild_documents
from jsproj.store.queries import value
from jsproj.store.sync import EventStore

FOLLOW_INTERVAL = 0.2  # seconds between looks at a build another daemon does


@dataclass(frozen=True)
class Rebuilt:
    """A finished rebuild: the events it read."""

    projection: str
    events: int

    def to_dict(self) -> dict[str, Any]:
        return {"projection": self.projection, "events": self.events}


@dataclass(frozen=True)
class Retried:
    """What a retry did: restarted a stopped projection, and the dead letters asked for and applied here
    (``applied`` is None when the daemon holding the projection applies them)."""

    projection: str
    resumed: bool
    dead_letters: int
    applied: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "resumed": self.resumed,
            "deadLetters": self.dead_letters,
            "applied": self.applied,
        }


@contextmanager
def session(store: EventStore, *, autocommit: bool = True) -> Iterator[psycopg.Connection[Any]]:
    """A connection of its own (session advisory locks), working in the store's schema."""
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        conn.execute(search_path(store.schema))
        conn.autocommit = autocommit
        yield conn


@contextmanager
def _holding(conn: psycopg.Connection[Any], name: str) -> Iterator[bool]:
    """Whether this session got the projection's lock (held for the block); False: a daemon holds it."""
    got = bool(value(conn, sql.SQL("select pg_try_advisory_lock({})").format(lock_key(name))))
    try:
        yield got
    finally:
        if got:
            conn.execute(sql.SQL("select pg_advisory_unlock({})").format(lock_key(name)))


def deployed_names(store: EventStore) -> list[str]:
    """The names of the projections deployed in the store, sorted (what a NAME argument may be)."""
    with store.connection() as conn:
        return [name for (name,) in conn.execute("select name from pge_projection_definitions order by name")]


def _unknown(conn: psycopg.Connection[Any], name: str) -> errors.UnknownProjectionError:
    """The error for a projection name that is not deployed, with the closest deployed name."""
    if conn.execute("select from pge_subscriptions where name = %s", (name,)).fetchone() is not None:
        return errors.UnknownProjectionError(
            f"{name!r} is a subscription, not a projection: a stopped subscription tries its event again when its "
            "subscriber runs again (`jsproj subscribers MODULE`); `jsproj status` shows its error",
            projection=name,
        )
    known = [k for (k,) in conn.execute("select name from pge_projection_definitions").fetchall()]
    return errors.unknown_projection(f"there is no deployed projection {name!r}", name, known)


def check_deployed(store: EventStore, names: Iterable[str]) -> None:
    """Refuse names that are not deployed projections (UnknownProjectionError, with "did you mean")."""
    wanted = list(names)
    if not wanted:
        return
    with session(store) as conn:
        found = {
            k for (k,) in conn.execute("select name from pge_projection_definitions where name = any(%s)", (wanted,))
        }
        missing = next((name for name in wanted if name not in found), None)
        if missing is not None:
            raise _unknown(conn, missing)


def event_count(store: EventStore) -> int:
    """How many events the store holds (what a rebuild reads)."""
    with session(store) as conn:
        return int(value(conn, "select count(*) from pge_events"))


def rebuild(
    store: EventStore,
    name: str,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    on_progress: Callable[[int], None] | None = None,
) -> Rebuilt:
    """Rebuild projection ``name`` from the whole event log, while appends go on.

    An async projection is built into a staging table and swapped in at
    once (by the daemon holding it, if one does: this follows it); an inline
    one is rebuilt in one transaction, appends waiting meanwhile.
    ``on_progress`` gets the events read so far.
    """
    limits: dict[str, Any] = {"timeout": timeout, "memory_limit": memory_limit}
    with session(store) as control:
        row = control.execute(
            "select lifecycle, engine, on_error from pge_projection_definitions where name = %s", (name,)
        ).fetchone()
        if row is None:
            raise _unknown(control, name)
        lifecycle, engine, on_error = row
        if lifecycle == "live":
            raise errors.ProjectionError(f"{name} is a live projection: it stores nothing to rebuild", projection=name)
        if lifecycle == "inline":
            return Rebuilt(name, _rebuild_inline(store, name, engine, limits))
        progress.restart_build(control, name)
        build_here(store, control, name, on_error, page_size, limits, on_progress)
        return Rebuilt(name, _follow_build(control, name, on_progress))


def _rebuild_inline(store: EventStore, name: str, engine: str, limits: dict[str, Any]) -> int:
    with session(store, autocommit=False) as work, work.transaction():
        work.execute("lock table pge_events in share mode")
        if engine != "python":
            return int(value(work, "select pge_rebuild(%s)", (name,)))
        with Projections(deployed_sources(work), **limits) as loaded:
            return rebuild_documents(work, loaded, name)


def build_here(
    store: EventStore,
    control: psycopg.Connection[Any],
    name: str,
    on_error: str,
    page_size: int,
    limits: dict[str, Any],
    on_progress: Callable[[int], None] | None,
) -> None:
    """Build projection ``name`` (to be built) here, unless a daemon holds it (it builds it then)."""
    read = 0

    def advance(_: str, events: int) -> None:
        nonlocal read
        read += events
        if on_progress:
            on_progress(read)

    with _holding(control, name) as held:
        if held:
            with session(store, autocommit=False) as work, Projections(deployed_sources(work), **limits) as loaded:
                lines.prepare(work)
                while True:  # again if it was to be built anew meanwhile (another rebuild: a new epoch)
                    build(work, loaded, [name], {name: on_error}, page_size, on_progress=advance)
                    found = progress.state(work, name)
                    work.commit()
                    if found is None or found[0] != "build":
                        break


def finish_build(store: EventStore, name: str, limits: dict[str, Any]) -> int:
    """Build projection ``name``, already reset to build (status 'build'), here or by the daemon holding it, and
    wait until it runs; the events it read."""
    with session(store) as control:
        on_error = value(control, "select on_error from pge_projection_definitions where name = %s", (name,))
        build_here(store, control, name, on_error, DEFAULT_PAGE_SIZE, limits, None)
        return _follow_build(control, name, None)


def _follow_build(control: psycopg.Connection[Any], name: str, on_progress: Callable[[int], None] | None) -> int:
    """Wait for the build (done here, or by the daemon holding the projection) to finish; the events it read."""
    while True:
        found = progress.state(control, name)
        if found is None:
            raise errors.UnknownProjectionError(f"there is no async projection {name!r}", projection=name)
        status, events, error = found
        if on_progress:
            on_progress(events)
        if status == "running":
            return int(events)
        if status == "stopped":
            reason = (error or {}).get("message")
            raise errors.ProjectionError(f"{name} stopped during its rebuild: {reason}", projection=name)
        time.sleep(FOLLOW_INTERVAL)


def retry(
    store: EventStore, name: str, *, timeout: float = DEFAULT_TIMEOUT, memory_limit: int = DEFAULT_MEMORY_LIMIT
) -> Retried:
    """Resume projection ``name`` after a fix: restart it if it stopped, and apply its dead letters again
    (here, unless a daemon holds it: then the daemon does)."""
    limits: dict[str, Any] = {"timeout": timeout, "memory_limit": memory_limit}
    check_deployed(store, [name])
    with session(store) as control:
        resumed = progress.resume(control, name)
        requested = request_retry(control, name)
        applied = None
        if requested:
            count = value(control, "select partitions from pge_projection_definitions where name = %s", (name,))
            for unit in [Unit(name, partition, count) for partition in range(count)]:
                with _holding(control, unit.lock_name) as held:
                    if held:
                        with session(store, autocommit=False) as work:
                            lines.prepare(work)
                            with Projections(deployed_sources(work), **limits) as loaded:
                                done = retry_dead_letters(work, loaded, unit, requested_only=True)
                                applied = (applied or 0) + done
    return Retried(name, resumed, requested, applied)


def list_dead_letters(store: EventStore, projection: str | None = None, limit: int | None = None) -> list[DeadLetter]:
    """The events async projections failed on and skipped (policy ``dead-letter``), by projection and position;
    only ``projection``'s when given (a name that is not deployed: UnknownProjectionError); the first ``limit``."""
    check_deployed(store, [projection] if projection is not None else [])
    with session(store) as conn:
        return dead_letters(conn, projection, limit)


def group_dead_letters(store: EventStore, projection: str | None = None) -> list[DeadLetterGroup]:
    """The dead letters grouped by projection and error (kind and the message's first line), most first: what
    failed, at a glance, however many there are."""
    check_deployed(store, [projection] if projection is not None else [])
    with session(store) as conn:
        return dead_letter_groups(conn, projection)
