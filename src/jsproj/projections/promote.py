"""Versioned projections (docs/deploy.md#versions): asking for the switch to a version that waits for it.

A deploy of a higher ``.version()`` of an async projection records it as
pending; the daemon builds it beside the deployed one
(:mod:`jsproj.follow.daemon.versions`). Deployed with ``promote=False`` (``jsproj
deploy --no-promote``), the built version waits for :func:`promote`.
"""

from __future__ import annotations

import psycopg

from jsproj.store.sync import EventStore
from jsproj.store.translate import translate


def promote(store: EventStore, name: str) -> int:
    """Let the version of ``name`` that waits replace the deployed one (the daemon builds it to the head of
    the log and switches); returns that version. :class:`~jsproj.errors.UnknownProjectionError` when no
    version of ``name`` waits."""
    with store.connection() as conn:
        try:
            row = conn.execute("select pge_request_promote(%s)", (name,)).fetchone()
        except psycopg.Error as exc:
            raise translate(exc, "promote") from exc
    assert row is not None
    return int(row[0])
