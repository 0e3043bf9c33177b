"""The connections a fleet's stores share: kept open per database when a store is parked, taken by the next.

A store a fleet attaches takes three connections (its daemon's session:
:mod:`jsproj.follow.daemon.session`) and gives them back when it is parked.
Opening three connections costs more than a page of a thousand events
(bench scenario 13), so a connection given back cleanly waits, per
database, for the next store: emptied first (:data:`EMPTIED`: advisory
locks, LISTEN, cursors, temporary tables and every setting of the store
before are gone) -- then the next store's schema and name are set. Not
``DISCARD ALL``: it drops the prepared statements psycopg keeps a list of,
and psycopg does not always see it did (its cache then names statements the
server no longer has); those statements are the fleet's own queries, which
PostgreSQL plans again for the next store's ``search_path``.
Every store a fleet serves is owned by the fleet's own role (the
catalog's rule), so a connection passes between stores of one owner only.
A connection given back after an error, in a transaction, or beyond
:attr:`SharedConnections.keep` is closed.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from jsproj.follow.daemon.session import connect
from jsproj.store.identifiers import check_schema

#: What a connection given back is emptied of (``DISCARD ALL`` but the prepared statements: see the module).
EMPTIED = "close all; unlisten *; reset all; discard temp; discard sequences; select pg_advisory_unlock_all()"


class SharedConnections:
    """Connections kept per database for the fleet's next store (see the module); at most ``keep`` of each."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._idle: dict[str, list[psycopg.Connection[Any]]] = {}
        self._taken: dict[int, str] = {}  # the database of each connection out with a store (by its id())
        self._lock = threading.Lock()

    def take(self, dsn: str, schema: str, name: str) -> psycopg.Connection[Any]:
        """One that waits for ``dsn``'s next store, set to ``schema`` and ``name``; else a new one."""
        setting = sql.SQL("set search_path = {}; set application_name = {}").format(
            sql.Identifier(check_schema(schema)), sql.Literal(name[:63])
        )
        conn = self._ready(dsn, setting) or connect(dsn, schema, name)
        with self._lock:
            self._taken[id(conn)] = dsn
        return conn

    def give(self, conn: psycopg.Connection[Any], *, clean: bool) -> None:
        """Keep ``conn`` for the next store of its database, emptied -- or close it (see the module)."""
        with self._lock:
            dsn = self._taken.pop(id(conn), None)
        if dsn is None or not clean or conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
            conn.close()
            return
        try:
            conn.execute(EMPTIED)
        except psycopg.Error:
            conn.close()
            return
        with self._lock:
            idle = self._idle.setdefault(dsn, [])
            if len(idle) < self.keep:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every connection kept."""
        with self._lock:
            kept, self._idle = self._idle, {}
        for conns in kept.values():
            for conn in conns:
                conn.close()

    def _ready(self, dsn: str, setting: sql.Composed) -> psycopg.Connection[Any] | None:
        """A kept connection of ``dsn`` given ``setting``; None when none is kept (or none still works)."""
        while True:
            with self._lock:
                idle = self._idle.get(dsn)
                conn = idle.pop() if idle else None
            if conn is None:
                return None
            try:
                conn.execute(setting)
                return conn
            except psycopg.Error:
                conn.close()  # the server ended it meanwhile: the next, or a new one
