"""The event store for asyncio code: :class:`AsyncEventStore`, on psycopg's ``AsyncConnectionPool``.

The same appends, reads and transactions as :class:`jsproj.EventStore` — the
work is written once, as steps (:mod:`jsproj.store.appending`), and driven here on
an async connection. Sandbox calls (Python-engine inline projections) run in
a worker thread, so the event loop never waits on V8. Deploying, daemons and
live aggregation are operations of the synchronous store and the CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing
from dataclasses import replace
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from jsproj.errors import PythonEngineRequiredError, StoreUnavailableError
from jsproj.projections.status import wait_steps
from jsproj.store.appending import (
    Message,
    append_all_steps,
    append_steps,
    inline_steps,
    message_of,
)
from jsproj.store.identifiers import check_schema, search_path
from jsproj.store.lifecycle import StreamChange, archive_steps, unarchive_steps
from jsproj.store.migrate import Applied, migrate
from jsproj.store.pooling import CONNECT_TIMEOUT
from jsproj.store.python_engine import PythonEngine
from jsproj.store.readers import AsyncReadingStore
from jsproj.store.recorded import AppendResult, load_json
from jsproj.store.replicas import COMMIT_LSN, DEFAULT_WAIT, AsyncReplicas
from jsproj.store.steps import Steps, run_async
from jsproj.store.transactions import Transaction, pending_steps
from jsproj.store.translate import describe_dsn, reason, translate

T = TypeVar("T")


class AsyncEventStore(AsyncReadingStore):
    """Events in PostgreSQL, for asyncio: ``await store.append(...)``, ``read_all``, ``fetch_stream``.

    Open it with ``await AsyncEventStore.open(dsn)`` or ``async with AsyncEventStore(dsn) as store``;
    ``dsn`` is a libpq connection string or URL, tables live in ``schema``, connections come
    from a pool of ``min_size``..``max_size``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        min_size: int = 1,
        max_size: int = 8,
        replicas: Sequence[str] = (),
        read_your_writes: bool = True,
        replica_wait: float = DEFAULT_WAIT,
    ) -> None:
        self.dsn = dsn
        self.schema = check_schema(schema)
        self._search_path = search_path(schema)
        self._engine = PythonEngine()
        self._pool = AsyncConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=False,
            name="jsproj-async",
        )
        self._replicas = None
        if replicas:  # reads from hot standbys (docs/replicas.md)
            self._replicas = AsyncReplicas(replicas, self._configure, max_size=max_size, wait=replica_wait,
                                           read_your_writes=read_your_writes)  # fmt: skip

    @classmethod
    async def open(cls, dsn: str, **options: Any) -> AsyncEventStore:
        """A store with its pool open, or :class:`~jsproj.errors.StoreUnavailableError` with PostgreSQL's reason."""
        store = cls(dsn, **options)
        await store._open()
        return store

    async def _open(self) -> None:
        try:  # one direct connection first, to fail fast with PostgreSQL's own reason
            await (await psycopg.AsyncConnection.connect(self.dsn, connect_timeout=CONNECT_TIMEOUT)).close()
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                f"cannot connect to PostgreSQL at {describe_dsn(self.dsn)}: {reason(exc, self.dsn)}"
            ) from None
        try:
            await self._pool.open(wait=True, timeout=15)
        except PoolTimeout as exc:
            await self._pool.close()
            raise StoreUnavailableError(
                f"PostgreSQL is unreachable at {describe_dsn(self.dsn)}: {reason(exc, self.dsn)}"
            ) from None
        if self._replicas is not None:
            await self._replicas.open()

    async def _committed(self, conn: psycopg.AsyncConnection[Any], results: T) -> T:
        """As :meth:`jsproj.EventStore._committed`: the WAL position after the commit, where there are replicas."""
        if self._replicas is None:
            return results
        row = await (await conn.execute(COMMIT_LSN)).fetchone()
        assert row is not None
        self._replicas.wrote(row[0])
        if isinstance(results, list):
            return [replace(result, lsn=row[0]) for result in results]  # type: ignore[return-value]
        return replace(results, lsn=row[0])  # type: ignore[type-var]

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(self._search_path)
        set_json_loads(load_json, conn)

    async def migrate(self) -> Applied:
        """Install or upgrade the schema (in a worker thread, on a connection of its own)."""

        def work() -> Applied:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
                conn.execute(self._search_path)
                return migrate(conn, self.schema)

        try:
            return await asyncio.to_thread(work)
        except psycopg.Error as exc:
            raise translate(exc, "migrate") from exc

    # -- appending ----------------------------------------------------------

    async def append(
        self,
        message: Message | None = None,
        *,
        stream_id: str | None = None,
        type: str | None = None,
        events: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append one message atomically (see :meth:`jsproj.EventStore.append`)."""
        message = message_of(message, stream_id, type, events, expected_version, metadata)
        async with self._pool.connection() as conn:
            return await self._committed(conn, await self._reloading(lambda: self._append_one(conn, message)))

    async def delete_stream(
        self, stream_id: str, *, expected_version: int | None = None, metadata: Mapping[str, Any] | None = None
    ) -> AppendResult:
        """Delete a stream (soft): see :meth:`jsproj.EventStore.delete_stream`."""
        return await self.append(stream_id=stream_id, events={"$type": "$deleted"},
                                 expected_version=expected_version, metadata=metadata)  # fmt: skip

    async def _append_one(self, conn: psycopg.AsyncConnection[Any], message: Message) -> AppendResult:
        if not await run_async(conn, inline_steps(self._engine)):
            return await run_async(conn, append_steps(self._engine, message))
        async with conn.pipeline(), conn.transaction():
            return await run_async(conn, append_steps(self._engine, message))

    async def append_all(
        self,
        messages: Iterable[Message],
        *,
        where: Sequence[str] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[AppendResult]:
        """Append messages in one transaction: all of them, or none if any fails."""
        messages = list(messages)
        labels = list(where) if where else [f"message {n + 1}" for n in range(len(messages))]

        async def attempt(conn: psycopg.AsyncConnection[Any]) -> list[AppendResult]:
            await run_async(conn, inline_steps(self._engine, reload=True))
            async with conn.pipeline(), conn.transaction():
                return await run_async(conn, append_all_steps(self._engine, messages, labels, on_progress))

        async with self._pool.connection() as conn:
            return await self._committed(conn, await self._reloading(lambda: attempt(conn)))

    async def _reloading(self, attempt: Callable[[], Awaitable[T]]) -> T:
        for tries in (1, 2):
            try:
                return await attempt()
            except PythonEngineRequiredError:
                if tries == 2:
                    raise
                self._engine.forget()
            except psycopg.Error as exc:
                raise translate(exc) from exc
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def transaction(self, conn: psycopg.AsyncConnection[Any] | None = None) -> AsyncIterator[Transaction]:
        """The application's writes and its appends in one transaction (see :meth:`jsproj.EventStore.transaction`)."""
        if conn is not None:
            if not conn.autocommit:
                await conn.execute("select")  # the caller's transaction, opened if none is: ours is a savepoint
            with closing(Transaction(conn)) as tx:
                async with conn.transaction():
                    yield tx
                    results = await self._write(conn, tx, self.schema)
                tx.settle(results)
            return
        async with self._pool.connection() as own:
            with closing(Transaction(own)) as tx:
                try:
                    async with own.transaction():
                        yield tx
                        results = await self._write(own, tx, None)
                    tx.settle(await self._committed(own, results))
                finally:
                    await self._reset(own)

    async def _write(
        self, conn: psycopg.AsyncConnection[Any], tx: Transaction, schema: str | None
    ) -> list[AppendResult]:
        try:
            return await run_async(conn, pending_steps(self._engine, tx, schema))
        except psycopg.Error as exc:
            raise translate(exc) from exc

    async def _reset(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The pooled connection as the pool made it, whatever the block SET (see jsproj.store.sync's ``_reset``)."""
        if conn.closed or conn.broken:
            return
        try:
            await conn.execute("reset all")
            await self._configure(conn)
        except psycopg.Error:
            await conn.close()

    async def archive_stream(self, stream_id: str) -> StreamChange:
        """Archive a stream (see :meth:`jsproj.EventStore.archive_stream`)."""
        return await self._primary(archive_steps(stream_id))

    async def unarchive_stream(self, stream_id: str) -> StreamChange:
        """Unarchive a stream (see :meth:`jsproj.EventStore.unarchive_stream`)."""
        return await self._primary(unarchive_steps(stream_id))

    async def _primary(self, steps: Steps[T]) -> T:
        async with self._pool.connection() as conn:
            return await run_async(conn, steps)

    async def wait_for_projections(
        self, timeout: float = 30.0, names: Iterable[str] | None = None, poll: float = 0.02
    ) -> None:
        """Wait until async projections have processed everything appended before the call
        (see :func:`jsproj.wait_for_projections`; a daemon must be running)."""
        async with self._pool.connection() as conn:
            await run_async(conn, wait_steps(timeout, names, poll))

    def connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """A connection of the store's pool, for the length of an ``async with`` block (set up as the store's);
        given back at the end."""
        return self._pool.connection()

    async def close(self) -> None:
        if self._replicas is not None:
            await self._replicas.close()
        await self._pool.close()
        self._engine.close()

    async def __aenter__(self) -> AsyncEventStore:
        if self._pool.closed:
            await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
