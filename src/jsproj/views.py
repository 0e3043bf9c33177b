"""Reading the documents of deployed projections."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from jsproj import errors
from jsproj.errors import UnknownDocumentError
from jsproj.store import EventStore, translate


def _definition(conn: psycopg.Connection, name: str) -> tuple[str, str, str]:
    row = conn.execute(
        "select kind, lifecycle, pge_document_table(name) from pge_projection_definitions where name = %s", (name,)
    ).fetchone()
    if row is None:
        raise errors.UnknownProjectionError(f"there is no deployed projection {name!r}", projection=name)
    if row[1] == "live":
        raise errors.ProjectionError(
            f"{name} is a live projection: nothing is stored; fold a stream with `jsproj live {name} STREAM_ID`",
            projection=name,
        )
    return row


def fetch_view(
    store: EventStore, name: str, id: str | None = None, *, limit: int | None = None, after: str | None = None
) -> Any:
    """One document of projection ``name`` (``id`` given), or ``{id: document}`` for a page of them.

    Pages are in id order: ``limit`` documents after the id ``after``.
    An aggregate's one document has its name as id.
    """
    with store.pool.connection() as conn:
        try:
            kind, _, table = _definition(conn, name)
        except psycopg.Error as exc:
            raise translate(exc, "fetch_view") from exc
        try:
            return _read(conn, name, kind, table, id, limit, after)
        except errors.UnreadableDocumentError as exc:
            which = f"document {id!r}" if id is not None else "a document"
            raise exc.replace(f"projection {name}: {which}: {exc.message}", projection=name) from None


def _read(
    conn: psycopg.Connection, name: str, kind: str, table: str, id: str | None, limit: int | None, after: str | None
) -> Any:
    key = sql.Identifier("name" if kind == "aggregate" else "id")
    target = sql.Identifier(table)
    try:
        if id is not None:
            row = conn.execute(sql.SQL("select data from {} where {} = %s").format(target, key), (id,)).fetchone()
            if row is None:
                raise UnknownDocumentError(f"projection {name} has no document {id!r}", projection=name, id=id)
            return row[0]
        query = sql.SQL("select {key}, data from {t} where {key} > %s {only} order by {key} limit %s").format(
            key=key,
            t=target,
            only=sql.SQL("and name = %s") if kind == "aggregate" else sql.SQL("and %s::text is null"),
        )
        rows = conn.execute(query, (after or "", name if kind == "aggregate" else None, limit or 2**62)).fetchall()
    except psycopg.Error as exc:
        raise translate(exc, "fetch_view") from exc
    return dict(rows)


def export_views(store: EventStore) -> dict[str, dict[str, Any]]:
    """Every stored document, in the simulation's shape: ``{"views": {name: {id: doc}}, "aggregates": {name: doc}}``."""
    exported: dict[str, dict[str, Any]] = {"views": {}, "aggregates": {}}
    with store.pool.connection() as conn:
        try:
            names = conn.execute(
                "select name, kind from pge_projection_definitions where lifecycle <> 'live' order by name"
            ).fetchall()
        except psycopg.Error as exc:
            raise translate(exc, "export") from exc
    for name, kind in names:
        if kind == "aggregate":
            exported["aggregates"][name] = fetch_view(store, name).get(name)
        else:
            exported["views"][name] = fetch_view(store, name)
    return exported
