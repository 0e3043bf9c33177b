"""SQL identifiers built from names: checked here, then always quoted with ``psycopg.sql.Identifier``."""

from __future__ import annotations

import re

from psycopg import sql

from jsproj.errors import InvalidNameError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_IDENTIFIER = 63


def check_schema(name: str) -> str:
    """``name`` if it is a safe schema name (letters, digits, _; at most 63 bytes)."""
    if not isinstance(name, str) or not IDENTIFIER.match(name) or len(name.encode()) > MAX_IDENTIFIER:
        raise InvalidNameError(
            f"schema name {name!r} is not a safe identifier: use letters, digits and _, "
            f"start with a letter or _, at most {MAX_IDENTIFIER} characters"
        )
    return name


def search_path(schema: str) -> sql.Composed:
    """``set search_path = <schema>``: a connection working in ``schema`` (checked, then quoted)."""
    return sql.SQL("set search_path = {}").format(sql.Identifier(check_schema(schema)))
