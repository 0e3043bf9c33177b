"""The Python engine: applies batches of event records to documents in the database.

Used for inline projections deployed with ``--engine python`` (in the append's
transaction) and for rebuilds. Documents are locked, loaded and written with
the same SQL functions the in-database engines use (``pge_load_documents``,
``pge_write_changes``); only the JavaScript runs here, in the Python sandbox.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.store.log import RECORD_PAGE
from jsproj.store.queries import one, value
from jsproj.store.steps import Call, Query, Steps, run


def apply_steps(
    projections: Projections, records: str, names: Sequence[str], documents: Mapping[str, Any]
) -> Steps[None]:
    """Apply engine records (JSON text) to the named projections' documents, in the connection's transaction.

    ``documents`` holds the documents of the projections routed by rule
    (``pge_route``), already locked; views are routed here by the engine.
    Raises the first handler error; the caller's transaction is then to be rolled back.
    """
    views = [name for name in names if projections.info(name).kind == "view"]
    if views:
        routed = yield Call(lambda: projections.route(records, only=views))
        if routed:
            (loaded,) = yield Query("select pge_load_documents(%s)", (Jsonb(routed),))
            documents = {**documents, **loaded}
    result = yield Call(lambda: projections.apply(records, documents, only=names))
    if result.errors:
        raise result.errors[0]
    if result.changes:
        changes = {name: {"upserts": c.upserts, "deletes": c.deletes} for name, c in result.changes.items()}
        yield Query("select pge_write_changes(%s)", (Jsonb(changes),), rows="none")


def apply_records(
    conn: psycopg.Connection, projections: Projections, records: str, names: Sequence[str], documents: Mapping[str, Any]
) -> None:
    """:func:`apply_steps` on a synchronous connection."""
    run(conn, apply_steps(projections, records, names, documents))


def deployed_sources_steps() -> Steps[list[dict[str, str]]]:
    """The projection files deployed in the connection's schema (one per file), the upcaster files with them."""
    rows = yield Query("select file, source from pge_deployed_files()", rows="all")
    return [{"file": file, "source": source} for file, source in rows]


def deployed_sources(conn: psycopg.Connection) -> list[dict[str, str]]:
    """:func:`deployed_sources_steps` on a synchronous connection."""
    return run(conn, deployed_sources_steps())


def rebuild(conn: psycopg.Connection, projections: Projections, name: str, page_size: int = 5000) -> int:
    """Rebuild one projection's documents from the whole event log; returns the events read.

    Pages follow the order readers see, (transaction, position). The caller
    holds off appends (``pge_deploy`` locks the events table).
    """
    table = value(conn, "select pge_document_table(%s)", (name,))
    if table is None:
        raise errors.UnknownProjectionError(f"there is no deployed projection {name!r}", projection=name)
    if table == "pge_aggregates":
        conn.execute("delete from pge_aggregates where name = %s", (name,))
    else:
        conn.execute(psycopg.sql.SQL("truncate {}").format(psycopg.sql.Identifier(table)))
    tx, position, total = "0", 0, 0
    while True:
        records, count, tx, position, documents = one(
            conn, RECORD_PAGE, {"name": name, "tx": tx, "position": position, "limit": page_size}
        )
        if not count:
            return total
        apply_records(conn, projections, records, [name], documents)
        total += count


@dataclass(frozen=True)
class Loaded:
    """What one append runs: the Python-engine inline projections of a deployment generation."""

    generation: int | None
    names: list[str]
    projections: Projections | None  # set whenever names is not empty


class PythonEngine:
    """The inline projections one EventStore runs itself, reloaded when a deploy changes them.

    Threads share it (an EventStore is): each append takes one consistent
    :meth:`loaded` snapshot; a reload builds the new projections first and
    swaps them in at once, so no append ever sees names without their code.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = Loaded(None, [], None)

    def loaded(self) -> Loaded:
        return self._loaded

    def forget(self) -> None:
        """Reload on the next use (a deploy added Python-engine projections)."""
        with self._lock:
            self._loaded = Loaded(None, self._loaded.names, self._loaded.projections)

    def refresh_steps(self) -> Steps[Loaded]:
        """Load the deployed definitions if the deployment generation moved; what is loaded now."""
        row = yield Query("select generation from pge_engine")
        generation = row[0] if row else 0
        old = self._loaded
        if generation == old.generation:
            return old
        query = "select name from pge_projection_definitions where lifecycle = 'inline' and engine = 'python'"
        names = sorted(name for (name,) in (yield Query(query, rows="all")))
        sources = (yield from deployed_sources_steps()) if names else []
        projections = (yield Call(lambda: Projections(sources))) if names else None
        with self._lock:  # two threads loaded this generation at once: keep the first
            kept = self._loaded.generation == generation
            if not kept:
                old, self._loaded = self._loaded, Loaded(generation, names, projections)
            loaded = self._loaded
        # Closing waits for a call in flight: a step of its own, so that an event loop does not wait.
        if kept and projections is not None:
            yield Call(projections.close)
        elif not kept and old.projections is not None and old.projections is not projections:
            yield Call(old.projections.close)  # an append still using it gets a new worker for its call
        return loaded

    def refresh(self, conn: psycopg.Connection) -> Loaded:
        """:meth:`refresh_steps` on a synchronous connection."""
        return run(conn, self.refresh_steps())

    def close(self) -> None:
        with self._lock:
            old, self._loaded = self._loaded, Loaded(None, [], None)
        if old.projections is not None:
            old.projections.close()
