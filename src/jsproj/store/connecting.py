"""Opening a store as the CLI does: the DSN given, else ``JSPROJ_DSN``, else jsproj.toml, else the embedded database.

The schema likewise: given, else ``JSPROJ_SCHEMA``, else ``jsproj.toml``, else
``public``. The embedded database is the project's own PostgreSQL, started on
first use (``jsproj db stop`` stops it); see docs/python.md.
"""

from __future__ import annotations

from typing import Any

from jsproj.config import resolve_dsn, resolve_schema
from jsproj.store.aio import AsyncEventStore
from jsproj.store.sync import EventStore


def connect(dsn: str | None = None, *, schema: str | None = None, migrate: bool = True, **pool: Any) -> EventStore:
    """An :class:`~jsproj.EventStore` on the chosen database, its schema installed or upgraded unless ``migrate=False``.

    ``pool`` passes ``min_size`` / ``max_size`` to the connection pool.
    """
    schema = resolve_schema(schema)  # checked before the embedded database may start
    store = EventStore(resolve_dsn(dsn), schema=schema, **pool)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store


async def connect_async(
    dsn: str | None = None, *, schema: str | None = None, migrate: bool = True, **pool: Any
) -> AsyncEventStore:
    """An open :class:`~jsproj.AsyncEventStore` chosen like :func:`connect`'s (starting the embedded database
    blocks while it starts: call this once, at the application's start)."""
    schema = resolve_schema(schema)  # checked before the embedded database may start
    store = await AsyncEventStore.open(resolve_dsn(dsn), schema=schema, **pool)
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store
