"""Opening a store as the CLI does: the DSN given, else ``JSPROJ_DSN``, else jsproj.toml, else the embedded database.

The schema likewise: given, else ``JSPROJ_SCHEMA``, else ``jsproj.toml``, else
``public``. The embedded database is the project's own PostgreSQL, started on
first use; one a program started stops when the last program using it exits
(one the CLI started runs until ``jsproj db stop``). A start is logged as a
WARNING on ``jsproj.store`` (shown even where logging is not configured):
where the data lives, and how to choose a database instead; see docs/python.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsproj.config import project_file, resolve_dsn, resolve_replicas, resolve_schema
from jsproj.store.aio import AsyncEventStore
from jsproj.store.sync import EventStore

if TYPE_CHECKING:
    from jsproj.tools.postgres_cluster import Cluster

logger = logging.getLogger("jsproj.store")


def _said_start(project: Path, cluster: Cluster) -> None:
    """Where a program's :func:`connect` started the embedded database, and how to choose another."""
    marker = "" if project_file().path else " (no jsproj.toml here or above: this folder is the project)"
    logger.warning(
        f"started the embedded PostgreSQL of {project}{marker}, data in {cluster.data_dir}; it stops when the "
        "last program using it exits. To use your own database pass a DSN, or set JSPROJ_DSN or dsn in jsproj.toml"
    )


def _embedded_or(dsn: str | None) -> str:
    return resolve_dsn(dsn, keep=False, on_start=_said_start)


def connect(
    dsn: str | None = None,
    *,
    schema: str | None = None,
    migrate: bool = True,
    replicas: Sequence[str] | None = None,
    **options: Any,
) -> EventStore:
    """An :class:`~jsproj.EventStore` on the chosen database, its schema installed or upgraded unless ``migrate=False``.

    ``replicas``: hot standbys to read from, else ``replicas`` in jsproj.toml (docs/replicas.md). ``options``
    passes ``min_size`` / ``max_size`` to the connection pool, and ``read_your_writes`` / ``replica_wait``.
    """
    schema = resolve_schema(schema)  # checked before the embedded database may start
    store = EventStore(_embedded_or(dsn), schema=schema, replicas=resolve_replicas(replicas), **options)
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store


async def connect_async(
    dsn: str | None = None,
    *,
    schema: str | None = None,
    migrate: bool = True,
    replicas: Sequence[str] | None = None,
    **options: Any,
) -> AsyncEventStore:
    """An open :class:`~jsproj.AsyncEventStore` chosen like :func:`connect`'s (starting the embedded database
    blocks while it starts: call this once, at the application's start)."""
    schema = resolve_schema(schema)  # checked before the embedded database may start
    store = await AsyncEventStore.open(_embedded_or(dsn), schema=schema, replicas=resolve_replicas(replicas), **options)
    if migrate:
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
    return store
