"""The event store's reading side, for synchronous code: the log in the gap-safe order, streams, views, and
where they are read from (the primary, or replicas: docs/replicas.md).

:class:`ReadingStore` is what :class:`jsproj.store.sync.EventStore` reads with, :class:`AsyncReadingStore`
what :class:`jsproj.store.aio.AsyncEventStore` does; the work itself is written once in
:mod:`jsproj.store.reading` for both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from jsproj.projections.views import AsyncView, View
from jsproj.store.filters import Time, log_filter
from jsproj.store.pooling import DEFAULT_READ_LIMIT
from jsproj.store.reading import fetch_stream_steps, read_all_steps, streams_steps
from jsproj.store.recorded import RecordedEvent, Stream
from jsproj.store.replicas import AsyncReplicas, ReplicaLag, Replicas
from jsproj.store.steps import Steps, run, run_async

T = TypeVar("T")


class ReadingStore:
    """Reads: ``read_all``, ``fetch_stream``, ``streams``, ``views``, from a replica that has replayed what they
    must see where the store has replicas, else from the primary's pool."""

    _pool: ConnectionPool
    _replicas: Replicas | None

    def read_connection(self, min_lsn: str | None = None) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A connection to read with: a replica's that has replayed ``min_lsn`` (and the store's own appends, in
        session mode) where the store has replicas, else the primary's (docs/replicas.md)."""
        if self._replicas is None:
            return self._pool.connection()
        return self._replicas.connection(self._pool, min_lsn)

    def replica_lag(self) -> list[ReplicaLag]:
        """Each replica's replay position and lag behind the primary (none without replicas)."""
        return [] if self._replicas is None else self._replicas.lag(self._pool)

    def read_all(
        self,
        after: int = 0,
        limit: int = DEFAULT_READ_LIMIT,
        *,
        types: str | Iterable[str] | None = None,
        stream_types: str | Iterable[str] | None = None,
        since: Time | None = None,
        until: Time | None = None,
        metadata: Mapping[str, Any] | None = None,
        include_archived: bool = False,
        min_lsn: str | None = None,
    ) -> list[RecordedEvent]:
        """Events after the one at position ``after`` (0: from the start), at most ``limit``.

        Only events that no running transaction can precede are returned, in
        a stable order (by appending transaction, then position), so a reader
        that follows with ``after=<last position returned>`` never skips an
        event or sees one out of order. Positions are unique but not in
        commit order; ``after`` must be a position returned earlier.

        The filters read the log by what happened (docs/reading.md), each
        with its index: ``types`` (event types), ``stream_types`` (a name or
        up to 32), the append-time window ``[since, until)`` (aware datetimes
        or ISO 8601 text with a zone, on ``appended_at``), and ``metadata`` (a
        JSON object the event's metadata contains). A bad one is a
        :class:`~jsproj.errors.LogFilterError`, raised before any SQL runs.
        The events of archived streams are left out unless ``include_archived``
        (docs/lifecycle.md). ``min_lsn``: see :meth:`read_connection`.
        """
        where = log_filter(types, stream_types, since, until, metadata, include_archived)
        return self._read(read_all_steps(after, limit, where), min_lsn)

    def fetch_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        to_version: int | None = None,
        *,
        include_archived: bool = False,
        resolve_links: bool = False,
        min_lsn: str | None = None,
    ) -> Stream:
        """The stream's id, type, version and its events from ``from_version`` to ``to_version`` (inclusive).

        An archived stream raises :class:`~jsproj.errors.StreamArchivedError` unless ``include_archived``.
        ``resolve_links``: each link (``$>``, a projection's ``linkTo``) as the event it links to, where that
        is stored (docs/from-kurrentdb.md#emit-and-linkto). ``min_lsn``: see :meth:`read_connection`."""
        steps = fetch_stream_steps(stream_id, from_version, to_version, include_archived, resolve_links)
        return self._read(steps, min_lsn)

    def streams(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{id: {"type", "version"}}`` for those of ``ids`` that exist."""
        return self._read(streams_steps(list(ids)))

    def _read(self, steps: Steps[T], min_lsn: str | None = None) -> T:
        with self.read_connection(min_lsn) as conn:
            return run(conn, steps)

    def views(self, name: str, *, min_lsn: str | None = None) -> View:
        """The documents of projection ``name``: ``get(id)``, ``find(where=..., order_by=..., limit=...)``,
        ``count(where)`` (docs/views.md); ``min_lsn``: see :meth:`read_connection`."""
        return View(self, name, min_lsn=min_lsn)


class AsyncReadingStore:
    """:class:`ReadingStore` for asyncio (:class:`jsproj.AsyncEventStore`'s reads)."""

    _pool: AsyncConnectionPool
    _replicas: AsyncReplicas | None

    def read_connection(self, min_lsn: str | None = None) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """A connection to read with (see :meth:`ReadingStore.read_connection`)."""
        if self._replicas is None:
            return self._pool.connection()
        return self._replicas.connection(self._pool, min_lsn)

    async def replica_lag(self) -> list[ReplicaLag]:
        """Each replica's replay position and lag behind the primary (none without replicas)."""
        return [] if self._replicas is None else await self._replicas.lag(self._pool)

    async def read_all(
        self,
        after: int = 0,
        limit: int = DEFAULT_READ_LIMIT,
        *,
        types: str | Iterable[str] | None = None,
        stream_types: str | Iterable[str] | None = None,
        since: Time | None = None,
        until: Time | None = None,
        metadata: Mapping[str, Any] | None = None,
        include_archived: bool = False,
        min_lsn: str | None = None,
    ) -> list[RecordedEvent]:
        """Events after position ``after`` in the gap-safe order, filtered by what happened (see
        :meth:`jsproj.EventStore.read_all`)."""
        where = log_filter(types, stream_types, since, until, metadata, include_archived)
        return await self._read(read_all_steps(after, limit, where), min_lsn)

    async def fetch_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        to_version: int | None = None,
        *,
        include_archived: bool = False,
        resolve_links: bool = False,
        min_lsn: str | None = None,
    ) -> Stream:
        """The stream and its events from ``from_version`` to ``to_version`` (inclusive)."""
        steps = fetch_stream_steps(stream_id, from_version, to_version, include_archived, resolve_links)
        return await self._read(steps, min_lsn)

    async def streams(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{id: {"type", "version"}}`` for those of ``ids`` that exist."""
        return await self._read(streams_steps(list(ids)))

    def views(self, name: str, *, min_lsn: str | None = None) -> AsyncView:
        """The documents of projection ``name``: ``await .get(id)``, ``.find(where=...)``, ``.count(where)``."""
        return AsyncView(self, name, min_lsn=min_lsn)

    async def _read(self, steps: Steps[T], min_lsn: str | None = None) -> T:
        async with self.read_connection(min_lsn) as conn:
            return await run_async(conn, steps)
