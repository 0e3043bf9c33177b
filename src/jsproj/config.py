"""Where the store is: ``--dsn``, else ``JSPROJ_DSN``, else the embedded default database."""

from __future__ import annotations

import os

from jsproj.identifiers import check_schema

DEFAULT_SCHEMA = "public"


def resolve_dsn(dsn: str | None = None) -> str:
    """The connection string to use, starting the embedded database when none is given."""
    if dsn:
        return dsn
    if os.environ.get("JSPROJ_DSN"):
        return os.environ["JSPROJ_DSN"]
    from jsproj import embedded

    return embedded.ensure_running().dsn


def resolve_schema(schema: str | None = None) -> str:
    """The schema to use: ``--schema``, else ``JSPROJ_SCHEMA``, else ``public``."""
    return check_schema(schema or os.environ.get("JSPROJ_SCHEMA") or DEFAULT_SCHEMA)
