"""Reads from hot standbys: a pool per replica, the wait that gives read-your-writes, and each replica's lag.

A store given replicas (``EventStore(dsn, replicas=[...])``, docs/replicas.md) reads the log, streams, views
and live folds from them, in turn, and writes, deploys and runs daemons on the primary. An append then
answers the WAL position after its commit (``AppendResult.lsn``); a read given a position (``min_lsn``), or
any read of a store in session mode (``read_your_writes``: the last position of the store's own appends),
waits until the replica has replayed that far, at most ``wait`` seconds, and reads from the primary past
that. A replica that cannot be reached in :data:`REPLICA_TIMEOUT` is left out of the turns for
:data:`RETRY_AFTER` seconds (its reads go to the next, the primary last).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from jsproj.store.translate import describe_dsn, reason

logger = logging.getLogger("jsproj.store")

#: How long a read waits for a replica to replay a position before it reads from the primary (seconds).
DEFAULT_WAIT = 2.0
#: How often a waiting read asks the replica again (seconds).
POLL = 0.002
#: How long a read waits for a replica's connection (seconds), and how long a replica that did not give one is
#: left out of the turns before it is tried again.
REPLICA_TIMEOUT = 1.0
RETRY_AFTER = 5.0
#: A replica's connections: autocommit (each read its own snapshot), and not longer than this to connect.
REPLICA_CONNECTION: dict[str, Any] = {"autocommit": True, "connect_timeout": 2}
#: The WAL position just past what this session's last transaction inserted: its commit record included.
COMMIT_LSN = "select pg_current_wal_insert_lsn()::text"
_REPLAYED = "select not pg_is_in_recovery() or pg_last_wal_replay_lsn() >= %s::pg_lsn"
_LAG = """select pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
       extract(epoch from now() - pg_last_xact_replay_timestamp())::float8"""


def lsn_key(lsn: str) -> int:
    """A WAL position (``X/Y``, hexadecimal) as a number, to compare two."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class ReplicaLag:
    """One replica as the primary sees it now: how far it has replayed, and how far behind that is."""

    replica: str  # its DSN, described without a password
    standby: bool  # in recovery (False: it is a primary now, promoted, or not a standby at all)
    replay_lsn: str | None
    lag_bytes: int | None  # the primary's WAL insert position minus the replayed one
    lag_seconds: float | None  # since the last transaction it replayed committed (None: none yet)
    error: str | None = None  # why it could not be asked

    def to_dict(self) -> dict[str, Any]:
        return {"replica": self.replica, "standby": self.standby, "replayLsn": self.replay_lsn,
                "lagBytes": self.lag_bytes, "lagSeconds": self.lag_seconds, "error": self.error}  # fmt: skip


class _Turns:
    """What both stores' replicas share: the replicas in turn, those left out for a while, and the store's own
    last write position (session mode)."""

    def __init__(self, dsns: Sequence[str], wait: float, read_your_writes: bool) -> None:
        self.dsns = list(dsns)
        self.wait = wait
        self.read_your_writes = read_your_writes
        self._turn = itertools.count()
        self._down_until = [0.0] * len(self.dsns)  # (time.monotonic()) a replica that failed sits out until then
        self._lock = threading.Lock()
        self.written: str | None = None  # the last position of this store's appends

    def wrote(self, lsn: str) -> None:
        """Remember ``lsn``, the position after one of the store's appends, if it is the furthest yet."""
        with self._lock:
            if self.written is None or lsn_key(lsn) > lsn_key(self.written):
                self.written = lsn

    def _wanted(self, min_lsn: str | None) -> str | None:
        own = self.written if self.read_your_writes else None
        if min_lsn is None or own is None:
            return min_lsn or own
        return max(min_lsn, own, key=lsn_key)

    def _order(self) -> list[int]:
        """The replicas to try for one read, in turn, those left out skipped."""
        first, now = next(self._turn), time.monotonic()
        indexes = [(first + n) % len(self.dsns) for n in range(len(self.dsns))]
        return [index for index in indexes if self._down_until[index] <= now]

    def _left_out(self, index: int, exc: Exception) -> None:
        dsn = self.dsns[index]
        self._down_until[index] = time.monotonic() + RETRY_AFTER
        logger.warning(f"replica {describe_dsn(dsn)} left out for {RETRY_AFTER:g} s: {reason(exc, dsn)}")


class Replicas(_Turns):
    """The replicas of :class:`jsproj.EventStore`: a pool each."""

    def __init__(
        self,
        dsns: Sequence[str],
        configure: Callable[[psycopg.Connection[Any]], None],
        *,
        max_size: int,
        wait: float = DEFAULT_WAIT,
        read_your_writes: bool = True,
    ) -> None:
        super().__init__(dsns, wait, read_your_writes)
        self._pools = [
            ConnectionPool(dsn, min_size=0, max_size=max_size, kwargs=REPLICA_CONNECTION, configure=configure,
                           open=False, name=f"jsproj-replica-{n}", timeout=REPLICA_TIMEOUT)
            for n, dsn in enumerate(self.dsns)
        ]  # fmt: skip
        for pool in self._pools:
            pool.open(wait=False)  # a replica down at the start is skipped, not an error

    @contextmanager
    def connection(self, primary: ConnectionPool, min_lsn: str | None) -> Iterator[psycopg.Connection[Any]]:
        """A replica's connection that has replayed ``min_lsn`` (and, in session mode, the store's own last
        write), else one of the primary's."""
        wanted = self._wanted(min_lsn)
        with ExitStack() as stack:
            conn = self._replica(stack, wanted)
            yield conn if conn is not None else stack.enter_context(primary.connection())

    def _replica(self, stack: ExitStack, wanted: str | None) -> psycopg.Connection[Any] | None:
        """The first replica, in turn, that answers and has replayed ``wanted`` in time (its connection held by
        ``stack``); None when none has."""
        for index in self._order():
            with ExitStack() as attempt:
                try:
                    conn = attempt.enter_context(self._pools[index].connection())
                    caught_up = wanted is None or self._replayed(conn, wanted)
                except (PoolTimeout, psycopg.Error) as exc:
                    self._left_out(index, exc)
                    continue
                if not caught_up:
                    return None  # (the others are no further, as a rule: the primary answers now)
                stack.enter_context(attempt.pop_all())
                return conn
        return None

    def _replayed(self, conn: psycopg.Connection[Any], lsn: str) -> bool:
        """Whether the replica has replayed ``lsn``, waiting for it at most :attr:`wait` seconds."""
        deadline = time.monotonic() + self.wait
        while True:
            row = conn.execute(_REPLAYED, (lsn,)).fetchone()
            if row is not None and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def lag(self, primary: ConnectionPool) -> list[ReplicaLag]:
        """Each replica's replay position and lag, against the primary's WAL insert position now."""
        with primary.connection() as conn:
            row = conn.execute(COMMIT_LSN).fetchone()
        assert row is not None
        return [_lag_of(dsn, pool, lsn_key(row[0])) for dsn, pool in zip(self.dsns, self._pools, strict=True)]

    def close(self) -> None:
        for pool in self._pools:
            pool.close()


class AsyncReplicas(_Turns):
    """The replicas of :class:`jsproj.AsyncEventStore`: a pool each (opened by :meth:`open`)."""

    def __init__(
        self,
        dsns: Sequence[str],
        configure: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]],
        *,
        max_size: int,
        wait: float = DEFAULT_WAIT,
        read_your_writes: bool = True,
    ) -> None:
        super().__init__(dsns, wait, read_your_writes)
        self._pools = [
            AsyncConnectionPool(dsn, min_size=0, max_size=max_size, kwargs=REPLICA_CONNECTION, configure=configure,
                                open=False, name=f"jsproj-async-replica-{n}", timeout=REPLICA_TIMEOUT)
            for n, dsn in enumerate(self.dsns)
        ]  # fmt: skip

    async def open(self) -> None:
        for pool in self._pools:
            await pool.open(wait=False)  # a replica down at the start is skipped, not an error

    @asynccontextmanager
    async def connection(
        self, primary: AsyncConnectionPool, min_lsn: str | None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """As :meth:`Replicas.connection`."""
        wanted = self._wanted(min_lsn)
        async with AsyncExitStack() as stack:
            conn = await self._replica(stack, wanted)
            yield conn if conn is not None else await stack.enter_async_context(primary.connection())

    async def _replica(self, stack: AsyncExitStack, wanted: str | None) -> psycopg.AsyncConnection[Any] | None:
        for index in self._order():
            async with AsyncExitStack() as attempt:
                try:
                    conn = await attempt.enter_async_context(self._pools[index].connection())
                    caught_up = wanted is None or await self._replayed(conn, wanted)
                except (PoolTimeout, psycopg.Error) as exc:
                    self._left_out(index, exc)
                    continue
                if not caught_up:
                    return None
                await stack.enter_async_context(attempt.pop_all())
                return conn
        return None

    async def _replayed(self, conn: psycopg.AsyncConnection[Any], lsn: str) -> bool:
        deadline = time.monotonic() + self.wait
        while True:
            row = await (await conn.execute(_REPLAYED, (lsn,))).fetchone()
            if row is not None and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL)

    async def lag(self, primary: AsyncConnectionPool) -> list[ReplicaLag]:
        """As :meth:`Replicas.lag`."""
        async with primary.connection() as conn:
            row = await (await conn.execute(COMMIT_LSN)).fetchone()
        assert row is not None
        return [
            await _async_lag_of(dsn, pool, lsn_key(row[0])) for dsn, pool in zip(self.dsns, self._pools, strict=True)
        ]

    async def close(self) -> None:
        for pool in self._pools:
            await pool.close()


def _lag_of(dsn: str, pool: ConnectionPool, primary_lsn: int) -> ReplicaLag:
    try:
        with pool.connection() as conn:
            row = conn.execute(_LAG).fetchone()
    except (PoolTimeout, psycopg.Error) as exc:
        return ReplicaLag(describe_dsn(dsn), False, None, None, None, error=reason(exc, dsn))
    return _lag_row(dsn, row, primary_lsn)


async def _async_lag_of(dsn: str, pool: AsyncConnectionPool, primary_lsn: int) -> ReplicaLag:
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute(_LAG)).fetchone()
    except (PoolTimeout, psycopg.Error) as exc:
        return ReplicaLag(describe_dsn(dsn), False, None, None, None, error=reason(exc, dsn))
    return _lag_row(dsn, row, primary_lsn)


def _lag_row(dsn: str, row: tuple[Any, ...] | None, primary_lsn: int) -> ReplicaLag:
    assert row is not None
    standby, replayed, seconds = row
    lag = None if replayed is None else max(0, primary_lsn - lsn_key(replayed))
    return ReplicaLag(describe_dsn(dsn), bool(standby), replayed, lag, seconds)
