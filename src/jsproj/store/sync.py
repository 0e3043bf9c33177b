"""The event store on PostgreSQL, for synchronous code: append, gap-safe reading, fetching streams.

Appends go through the server-side function ``pge_append(message jsonb)``,
one round trip per message, so that any client (psql included) appends with
the same checks. Readers follow ``read_all``, which only returns events that
no transaction still running can precede: see ``docs/store.md``. The work
itself is written once in :mod:`jsproj.store.appending`, for this store and for
:class:`jsproj.store.aio.AsyncEventStore`; docs/python.md is the guide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import replace
from typing import Any, TypeVar, cast

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from jsproj.errors import PythonEngineRequiredError, StoreUnavailableError
from jsproj.logs import log_warnings
from jsproj.store.appending import (
    INLINE_PAGE,
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
from jsproj.store.readers import ReadingStore
from jsproj.store.recorded import STREAM_VERSION, AppendResult, RecordedEvent, Stream, iso, load_json
from jsproj.store.replicas import COMMIT_LSN, DEFAULT_WAIT, Replicas
from jsproj.store.steps import Steps, run
from jsproj.store.tenants import DEFAULT_PLACEMENT, Placement, Tenants
from jsproj.store.transactions import Transaction, pending_steps
from jsproj.store.translate import describe_dsn, reason, translate

__all__ = [
    "INLINE_PAGE",
    "STREAM_VERSION",
    "AppendResult",
    "EventStore",
    "RecordedEvent",
    "Stream",
    "iso",
    "load_json",
    "translate",
]

logger = logging.getLogger("jsproj.store")
T = TypeVar("T")


class EventStore(ReadingStore):
    """Events in PostgreSQL: ``append``, ``read_all``, ``fetch_stream``.

    ``dsn`` is a libpq connection string or URL; tables live in ``schema``.
    Connections come from a pool of ``min_size``..``max_size``.
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
        tenants: str = DEFAULT_PLACEMENT,
    ) -> None:
        self.dsn = dsn
        self.schema = check_schema(schema)
        self._tenants = Tenants(Placement.parse(tenants), dsn, self.schema,
                                lambda where: EventStore(where.dsn, schema=where.schema, min_size=0, max_size=max_size,
                                                         tenants=tenants))  # fmt: skip
        self.max_size = max_size  # the most connections its pool opens
        self._search_path = search_path(schema)
        try:  # one direct connection first, to fail fast with PostgreSQL's own reason
            psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT).close()
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                f"cannot connect to PostgreSQL at {describe_dsn(dsn)}: {reason(exc, dsn)}"
            ) from None
        self._engine = PythonEngine()
        self._pool = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            configure=self._configure,
            open=False,
            name="jsproj",
        )
        try:
            self._pool.open(wait=True, timeout=15)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreUnavailableError(
                f"PostgreSQL is unreachable at {describe_dsn(dsn)}: {reason(exc, dsn)}"
            ) from None
        self._replicas = None
        if replicas:  # reads from hot standbys (docs/replicas.md)
            self._replicas = Replicas(replicas, self._configure, max_size=max_size, wait=replica_wait,
                                      read_your_writes=read_your_writes)  # fmt: skip

    def _configure(self, conn: psycopg.Connection) -> None:
        log_warnings(conn, logger)  # deploys and rebuilds say what of the user's a rebuild could not keep
        conn.execute(self._search_path)
        set_json_loads(load_json, conn)

    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A connection of the store's pool, for the length of a ``with`` block (set up as the store's: its
        schema first on the search path, JSON read as jsproj reads it); given back at the end."""
        return self._pool.connection()

    def _committed(self, conn: psycopg.Connection[Any], results: T) -> T:
        """``results`` (an append's, or a list of them) with the WAL position after their commit, which the
        store remembers, where it reads from replicas; as they are otherwise (no query)."""
        if self._replicas is None:
            return results
        row = conn.execute(COMMIT_LSN).fetchone()
        assert row is not None
        self._replicas.wrote(row[0])
        if isinstance(results, list):
            return [replace(result, lsn=row[0]) for result in results]  # type: ignore[return-value]
        return replace(results, lsn=row[0])  # type: ignore[type-var]

    # -- schema -------------------------------------------------------------

    def migrate(self) -> Applied:
        """Install or upgrade the schema; returns the migrations (and functions files) applied now."""
        with self._pool.connection() as conn:
            try:
                return migrate(conn, self.schema)
            except psycopg.Error as exc:
                raise translate(exc, "migrate") from exc

    # -- appending ----------------------------------------------------------

    def append(
        self,
        message: Message | None = None,
        *,
        stream_id: str | None = None,
        type: str | None = None,
        events: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> AppendResult:
        """Append one message atomically: a message dict, or its fields as keywords.

        Raises :class:`~jsproj.errors.ConcurrencyError` when the stream is not
        at ``expected_version`` and :class:`~jsproj.errors.InvalidEventError`
        for a bad message; either way nothing is written.
        """
        message = message_of(message, stream_id, type, events, expected_version, metadata)
        with self._pool.connection() as conn:
            return self._committed(conn, self._reloading(lambda: self._append_one(conn, message)))

    def delete_stream(
        self, stream_id: str, *, expected_version: int | None = None, metadata: Mapping[str, Any] | None = None
    ) -> AppendResult:
        """Delete a stream (soft): append its tombstone, a ``$deleted`` event, which projections see
        (a stream projection's document is deleted). Its events stay; later appends raise
        :class:`~jsproj.errors.StreamDeletedError` unless they re-create it, giving the tombstone's version as
        ``expected_version`` (docs/lifecycle.md#deleting-a-stream)."""
        return self.append(stream_id=stream_id, events={"$type": "$deleted"}, expected_version=expected_version,
                           metadata=metadata)  # fmt: skip

    def _append_one(self, conn: psycopg.Connection, message: Message) -> AppendResult:
        if not run(conn, inline_steps(self._engine)):
            return run(conn, append_steps(self._engine, message))
        # Pipelined: BEGIN goes with the append, the documents' write with COMMIT,
        # so an inline append costs two round trips, not four.
        with conn.pipeline(), conn.transaction():
            return run(conn, append_steps(self._engine, message))

    def append_all(
        self,
        messages: Iterable[Message],
        *,
        where: Sequence[str] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[AppendResult]:
        """Append messages in one transaction: all of them, or none if any fails.

        ``where`` names each message in errors (e.g. ``"message 3 (line 3)"``);
        ``on_progress`` is called with the events of each batch as it is appended (batches of up to 1 MB
        of JSON then, so that progress moves through a large append; one transaction all the same).
        """
        messages = list(messages)
        labels = list(where) if where else [f"message {n + 1}" for n in range(len(messages))]

        def attempt(conn: psycopg.Connection) -> list[AppendResult]:
            run(conn, inline_steps(self._engine, reload=True))  # one query: a batch sees the latest deploy
            with conn.pipeline(), conn.transaction():
                return run(conn, append_all_steps(self._engine, messages, labels, on_progress))

        with self._pool.connection() as conn:
            return self._committed(conn, self._reloading(lambda: attempt(conn)))

    def _reloading(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, once more after loading the inline projections a deploy just added; errors translated."""
        for tries in (1, 2):
            try:
                return attempt()
            except PythonEngineRequiredError:
                if tries == 2:
                    raise
                self._engine.forget()
            except psycopg.Error as exc:  # raised when a pipeline syncs: the write or the COMMIT
                raise translate(exc) from exc
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self, conn: psycopg.Connection[Any] | None = None) -> Iterator[Transaction]:
        """A transaction of the application's own and the events it appends: both commit, or neither.

        ``tx.conn`` runs the application's statements; ``tx.append(...)`` queues a
        message, written (with its inline projections) when the block ends
        without an error, just before the commit. A block that raises rolls
        everything back, and no append was tried: not even a position is used.
        With ``conn`` (a connection of yours), the appends join its
        transaction and you commit it (one is opened when none is; on an
        autocommit connection the block is a transaction of its own).
        docs/python.md has the example.
        """
        if conn is not None:
            if not conn.autocommit:
                conn.execute("select")  # the caller's transaction, opened if none is: ours is a savepoint in it
            with closing(Transaction(conn)) as tx:
                with conn.transaction():
                    yield tx
                    results = self._write(conn, tx, self.schema)
                tx.settle(results)
            return
        with self._pool.connection() as own, closing(Transaction(own)) as tx:
            try:
                with own.transaction():
                    yield tx
                    results = self._write(own, tx, None)
                tx.settle(self._committed(own, results))  # committed: the results are true now
            finally:
                _reset(own, self._configure)

    def _write(self, conn: psycopg.Connection[Any], tx: Transaction, schema: str | None) -> list[AppendResult]:
        try:
            return run(conn, pending_steps(self._engine, tx, schema))
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def archive_stream(self, stream_id: str) -> StreamChange:
        """Archive a stream: its events stay, but reads, live folds, builds and rebuilds leave them out, and
        appends to it raise :class:`~jsproj.errors.StreamArchivedError` until it is unarchived. Views already
        built from it are kept (docs/lifecycle.md). Archiving an archived stream changes nothing."""
        return self._write_steps(archive_steps(stream_id))

    def unarchive_stream(self, stream_id: str) -> StreamChange:
        """Unarchive a stream: its events are read again and it takes appends (docs/lifecycle.md)."""
        return self._write_steps(unarchive_steps(stream_id))

    def _write_steps(self, steps: Steps[T]) -> T:
        with self._pool.connection() as conn:
            return run(conn, steps)

    def for_tenant(self, tenant: str, *, create: bool = False) -> EventStore:
        """The store of ``tenant``: a schema (or database) of its own, as ``tenants`` places them (default
        ``schema:tenant_{tenant}``), opened once and closed with this store; ``create``: made and migrated if
        the tenant has none yet (else :class:`~jsproj.errors.SchemaMissingError`).
        docs/daemon.md#many-stores-one-daemon."""
        return cast(EventStore, self._tenants.store(tenant, create=create))

    def close(self) -> None:
        self._tenants.close()
        if self._replicas is not None:
            self._replicas.close()
        self._pool.close()
        self._engine.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reset(conn: psycopg.Connection[Any], configure: Callable[[psycopg.Connection[Any]], None]) -> None:
    """A pooled connection back as the pool made it: what the application SET in a transaction's block
    (a search_path, a role, a timeout) does not follow the store's next appends. A connection that cannot
    be reset is closed (the pool replaces it)."""
    if conn.closed or conn.broken:
        return
    try:
        conn.execute("reset all")
        configure(conn)
    except psycopg.Error:
        conn.close()
