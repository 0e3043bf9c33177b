"""The daemon's retention agent: every interval, one daemon of the store applies the retention rules.

What applying means is the caller's (``jsproj daemon`` passes :func:`jsproj.projections.retention.apply_rules`,
which archives cold streams and erases old events: docs/lifecycle.md#retention); the agent decides when, and
makes sure that of several daemons on one store only one applies them at a time (a session advisory lock of
the store, as a projection's unit has). A failure is said, never the daemon's end: the next interval tries
again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from jsproj import errors
from jsproj.follow.daemon.progress import lock_key
from jsproj.store.queries import value

#: The lock's unit name: no projection's (names are identifiers).
UNIT = "$retention"


class RetentionAgent:
    """When to apply the retention rules, and applying them under the store's retention lock."""

    def __init__(self, apply: Callable[[], Any] | None, interval: float, say: Callable[..., None]) -> None:
        self.apply, self.interval, self.say = apply, interval, say
        self._next = 0.0  # (at the first round: a daemon started after a pause catches up with its rules too)

    def due(self, now: float) -> bool:
        return self.apply is not None and self.interval > 0 and now >= self._next

    def run(self, conn: psycopg.Connection[Any], now: float) -> None:
        """Apply the rules if no other daemon of the store is; say what was done."""
        apply = self.apply
        if apply is None:
            return
        self._next = now + self.interval
        ruled = bool(value(conn, "select exists (select from pge_retention)"))  # (most stores have none)
        got = ruled and bool(value(conn, sql.SQL("select pg_try_advisory_lock({})").format(lock_key(UNIT))))
        conn.commit()
        if not got:
            return
        try:
            done = apply()
        except errors.JsprojError as exc:
            self.say(logging.WARNING, f"retention failed: {exc}; trying again in {self.interval:g} s")
        else:
            for each in done or []:
                if each.streams or each.events:
                    self.say(logging.INFO, f"retention of {each.stream_type}: {each.streams} streams archived, "
                                           f"{each.events} events erased")  # fmt: skip
        finally:
            conn.execute(sql.SQL("select pg_advisory_unlock({})").format(lock_key(UNIT)))
            conn.commit()
