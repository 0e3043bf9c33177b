"""Typed reads of queries that always return a row: ``one`` row, or its first ``value``."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.abc import Params, QueryNoTemplate

from jsproj import errors


def one(conn: psycopg.Connection[Any], query: QueryNoTemplate, params: Params | None = None) -> tuple[Any, ...]:
    """The first row of ``query``; a query that returned none is a bug of jsproj's (an aggregate always has a row)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise errors.InternalError(f"a query that always returns a row returned none: {str(query)[:80]}")
    return tuple(row)


def value(conn: psycopg.Connection[Any], query: QueryNoTemplate, params: Params | None = None) -> Any:
    """The first column of the first row of ``query``."""
    return one(conn, query, params)[0]
