"""SQL identifiers built from names, and document field paths: checked here, then always quoted
(``psycopg.sql.Identifier``, ``psycopg.sql.Literal``)."""

from __future__ import annotations

import re

from psycopg import sql

from jsproj.errors import InvalidFieldError, InvalidNameError

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_IDENTIFIER = 63
#: One dotted segment of a field path; the rule of the DSL's ``.index()`` (js/lib/dsl.js) and pge_sync_indexes.
SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SEGMENTS = 16
MAX_FIELD = 200  # characters of a whole dotted path


def check_schema(name: str) -> str:
    """``name`` if it is a safe schema name (letters, digits, _; at most 63 bytes)."""
    if not isinstance(name, str) or not IDENTIFIER.match(name) or len(name.encode()) > MAX_IDENTIFIER:
        raise InvalidNameError(
            f"schema name {name!r} is not a safe identifier: use letters, digits and _, "
            f"start with a letter or _, at most {MAX_IDENTIFIER} characters"
        )
    return name


def search_path(schema: str, *, local: bool = False) -> sql.Composed:
    """``set search_path = <schema>``: a connection (``local``: a transaction) working in ``schema``
    (checked, then quoted)."""
    return sql.SQL("set local search_path = {}" if local else "set search_path = {}").format(
        sql.Identifier(check_schema(schema))
    )


def field_path(key: object) -> tuple[str, ...]:
    """The segments of a dotted field name, checked: ``"party.leader"`` is ``("party", "leader")``."""
    if not isinstance(key, str) or len(key) > MAX_FIELD:
        raise InvalidFieldError(f"a field is a dotted name of at most {MAX_FIELD} characters, not {key!r}", field=key)
    path = tuple(key.split("."))
    if len(path) > MAX_SEGMENTS or not all(SEGMENT.match(segment) for segment in path):
        raise InvalidFieldError(
            f"field {key!r} is not a dotted path of names (letters, digits and _, not starting with a digit; "
            f"at most {MAX_SEGMENTS} segments)",
            field=key,
        )
    return path
