"""Database errors as jsproj errors: by SQLSTATE, with the engine's own description where it gave one."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg

from jsproj import errors
from jsproj.redact import redact

#: PostgreSQL's SQLSTATE for a connection exception: what a connection that failed without one is taken for.
CONNECTION_EXCEPTION = "08000"
#: The unique constraint of event ids: the log's, or a partition's (pge_events_<n>_id_key: docs/partitioning.md).
EVENT_ID_KEY = re.compile(r"pge_events(_[0-9]+)?_id_key")


def translate(exc: psycopg.Error, where: str = "") -> errors.JsprojError:
    """The jsproj error for a database error raised while appending or reading.

    The rule of the error table (``js/errors.json``) for the SQLSTATE
    (:func:`jsproj.errors.rule_for_sqlstate`: its kind, else its class's
    rule), after the two cases the state alone cannot tell: an engine's own
    description of the error in the DETAIL, and a duplicate event id. A
    connection that failed before PostgreSQL answered has no SQLSTATE: it is
    one of class ``08``, as the Node client's refused connections are.
    """
    prefix = f"{where}: " if where else ""
    state = exc.sqlstate or ""
    diag = exc.diag
    message = diag.message_primary or str(exc).split("\n", 1)[0]
    detail = _json_detail(diag.message_detail)
    # a batch's error: its message's number, and PostgreSQL's own detail (sql/functions/events.sql)
    plain = detail.pop("detail", None) if detail and "messageNumber" in detail else diag.message_detail
    described = _engine_description(state, detail)
    if described is not None:  # an engine error raised in the database, or projection code it stopped
        return errors.from_info({**described, "message": prefix + described["message"]})
    if state == "23505" and EVENT_ID_KEY.fullmatch(diag.constraint_name or ""):
        numbered = {"messageNumber": detail["messageNumber"]} if detail and "messageNumber" in detail else {}
        return errors.InvalidEventError(prefix + f"an event $id is already stored ({plain or message})", **numbered)
    unreachable = not state and isinstance(exc, psycopg.OperationalError)
    cls, template = errors.rule_for_sqlstate(CONNECTION_EXCEPTION if unreachable else state)
    return cls(prefix + template.format(message=message, code=state), **_detail_fields(state, detail))


def _detail_fields(state: str, detail: dict[str, Any] | None) -> dict[str, Any]:
    """The fields a JSON DETAIL adds to the error: those of a state a kind lists (jsproj's SQL writes them; any
    other state's DETAIL is PostgreSQL's), never its kind or message."""
    if detail is None or errors.for_sqlstate(state) is None:
        return {}
    return {key: value for key, value in detail.items() if key not in ("kind", "message")}


def _json_detail(detail: str | None) -> dict[str, Any] | None:
    """A DETAIL that jsproj's SQL wrote as a JSON object, else None."""
    if not detail or not detail.startswith("{"):
        return None
    try:
        parsed = json.loads(detail)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _engine_description(state: str, detail: dict[str, Any] | None) -> dict[str, Any] | None:
    """The error an in-database engine described in the DETAIL: any JP500's, and the projection code a
    JavaScript language stopped (sql/engines/javascript.sql)."""
    if detail is None or not isinstance(detail.get("message"), str):
        return None
    if state == "JP500" and isinstance(detail.get("kind"), str):
        return detail
    # the language's own state (57014 for a cancel, XX000, 53200, ...), with jsproj's description
    return detail if str(detail.get("kind", "")).startswith("Sandbox") else None


def reason(exc: BaseException, dsn: str | None = None) -> str:
    """A database error's message on one line, without the password of ``dsn`` (nor any other it shows)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return redact("; ".join(lines), dsn) if lines else type(exc).__name__


def describe_dsn(dsn: str) -> str:
    """Where a DSN points (host, port, database, user): never its password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the given DSN"
    return " ".join(f"{k}={v}" for k, v in info.items() if k in ("host", "port", "dbname", "user"))


#: Every error of the database driver: what a caller reports as :func:`untranslated` when nothing translated it.
DatabaseError = psycopg.Error


def untranslated(exc: BaseException) -> str:
    """A database error no one translated, on one line (its first), as PostgreSQL said it."""
    text = str(exc).strip()
    return f"PostgreSQL: {text.splitlines()[0] if text else type(exc).__name__}"
