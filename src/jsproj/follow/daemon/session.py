"""A daemon's connections and its heartbeat: opened together, closed together, never half there.

- ``control`` (autocommit): the units' advisory locks, LISTEN, heartbeats;
- ``work`` (autocommit; a page commits as one statement, builds and retries
  make their own transactions): pages' documents and progress, builds;
- ``reader``: pages read ahead while the one before is applied.

Session locks do not outlive their connection: when a daemon dies, its
units are free for another.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Protocol

import psycopg

from jsproj.follow.engine import Waker
from jsproj.logs import log_warnings
from jsproj.store import log
from jsproj.store.identifiers import search_path

HEARTBEAT_SECONDS = 5.0

logger = logging.getLogger("jsproj.daemon")


def connect(dsn: str, schema: str, name: str) -> psycopg.Connection[Any]:
    """A new connection (autocommit) named ``name``, working in ``schema``."""
    conn = psycopg.connect(dsn, autocommit=True, application_name=name[:63])
    log_warnings(conn, logger)  # a build's swap says what of the user's it could not keep
    try:
        conn.execute(search_path(schema))
    except BaseException:
        conn.close()
        raise
    return conn


class Connector(Protocol):
    """Where a session's connections come from and go back to: :class:`Direct` (opened and closed), or a
    fleet's connections shared by its stores (:mod:`jsproj.follow.fleet.connections`)."""

    def take(self, dsn: str, schema: str, name: str) -> psycopg.Connection[Any]:
        """A connection (autocommit) named ``name``, working in ``schema``, in a new session's state."""

    def give(self, conn: psycopg.Connection[Any], *, clean: bool) -> None:
        """The session is done with ``conn`` (``clean``: no error left it in doubt)."""


class Direct:
    """Each connection opened for its session and closed with it."""

    def take(self, dsn: str, schema: str, name: str) -> psycopg.Connection[Any]:
        return connect(dsn, schema, name)

    def give(self, conn: psycopg.Connection[Any], *, clean: bool) -> None:
        if clean and not conn.closed:
            conn.execute("select pg_advisory_unlock_all()")  # given back now, not when the server sees it gone
        conn.close()


DIRECT = Direct()


class Session:
    """The three connections of a daemon (see the module), and its row in ``pge_daemons``."""

    def __init__(self, dsn: str, schema: str, daemon_id: str, connector: Connector = DIRECT) -> None:
        self.daemon_id, self.connector = daemon_id, connector
        with ExitStack() as opened:  # a connection that fails is given back with the ones taken before it
            self.control = self._take(opened, dsn, schema, f"jsproj daemon {daemon_id}")
            Waker.listen(self.control)
            self.work = self._take(opened, dsn, schema, f"jsproj daemon {daemon_id} work")
            # A page's documents and progress commit together, so they can commit without waiting for the disk:
            # a server crash that undoes the last pages undoes their progress too, and they are applied again.
            self.work.execute("set synchronous_commit = off")
            log.prepare(self.work)  # retries read events as record lines on it
            self.reader = self._take(opened, dsn, schema, f"jsproj daemon {daemon_id} read")
            log.prepare(self.reader)
            opened.pop_all()
        self._last_heartbeat = 0.0

    def _take(self, opened: ExitStack, dsn: str, schema: str, name: str) -> psycopg.Connection[Any]:
        conn = self.connector.take(dsn, schema, name)
        opened.callback(self.connector.give, conn, clean=False)
        return conn

    def heartbeat(self, now: float) -> None:
        """Say this daemon is alive, at most every :data:`HEARTBEAT_SECONDS`."""
        if now - self._last_heartbeat < HEARTBEAT_SECONDS:
            return
        self.control.execute(
            """insert into pge_daemons (id, host, pid, backend_pid) values (%s, %s, %s, pg_backend_pid())
               on conflict (id) do update set heartbeat_at = now(), backend_pid = excluded.backend_pid""",
            (self.daemon_id, socket.gethostname(), os.getpid()),
        )
        self._last_heartbeat = now

    @contextmanager
    def beating(self, clock: Callable[[], float], working: Callable[[], None]) -> Iterator[None]:
        """Heartbeats while the loop's thread is in a long step (a build: copying millions of documents and
        indexing them takes minutes), from a thread of its own on the control connection (idle meanwhile), so
        that other daemons and ``jsproj status`` see this one alive; and ``working()`` while the server runs the
        build's statement -- not while it waits for a lock, nor while the connection is idle (the fold reports
        its own pages) -- so that /healthz shows a build stuck behind a lock, or in Python."""
        backend, done = self.work.info.backend_pid, threading.Event()

        def beat() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                try:
                    row = self.control.execute(
                        "select state = 'active' and wait_event_type is distinct from 'Lock' from pg_stat_activity"
                        " where pid = %s",
                        (backend,),
                    ).fetchone()
                    self.heartbeat(clock())
                except psycopg.Error:
                    return  # the loop's thread finds the connection lost, and says so
                if row == (True,):  # the server works on the build's statement (not idle, not waiting for a lock)
                    working()

        beating = threading.Thread(target=beat, name="jsproj daemon heartbeat", daemon=True)
        beating.start()
        try:
            yield
        finally:
            done.set()
            beating.join()

    def close(self, *, clean: bool) -> None:
        """Close the connections; ``clean``: first say this daemon is gone and give its units back."""
        for conn in (self.reader, self.work, self.control):
            try:
                if clean and conn is self.control and not conn.closed:
                    conn.execute("delete from pge_daemons where id = %s", (self.daemon_id,))
                self.connector.give(conn, clean=clean)
            except psycopg.Error:
                conn.close()
