"""The units a daemon holds: a lease (advisory lock) per unit, a fair share of them among the live daemons.

A unit is an async projection, or one partition of a partitioned one
(:class:`~jsproj.follow.daemon.progress.Unit`). Each daemon holds
ceil(units / live daemons), preferring its own spread of them (a hash of
its id and the unit), so that daemons rarely contend for the same ones; a
daemon that holds more than its share gives the rest back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from jsproj.follow.daemon.progress import Unit, lock_key
from jsproj.follow.engine import Lease

STALE_SECONDS = 30.0  # a daemon whose heartbeat is older is not counted among the live ones

# The live daemons: a recent heartbeat, and a backend that is still there.
_LIVE = """
select count(*) from pge_daemons d
where d.heartbeat_at > now() - make_interval(secs => %s)
  and (d.backend_pid is null or exists (select from pg_stat_activity a where a.pid = d.backend_pid))
"""


@dataclass(frozen=True)
class Balanced:
    """What a balance did: the units it took and the ones it gave back."""

    taken: tuple[Unit, ...]
    left: tuple[Unit, ...]


class Leases:
    """The units this daemon holds, on its control connection."""

    def __init__(self, control: psycopg.Connection[Any], daemon_id: str) -> None:
        self.control = control
        self.daemon_id = daemon_id
        self.held: set[Unit] = set()

    def balance(self, units: Sequence[Unit]) -> Balanced:
        """Hold a fair share of ``units`` (the deployed ones): leave those gone, take or leave to the share."""
        left = [self._leave(unit) for unit in sorted(self.held - set(units))]
        row = self.control.execute(_LIVE, (STALE_SECONDS,)).fetchone()
        share = math.ceil(len(units) / max(1, row[0] if row else 1))
        preference = sorted(units, key=lambda u: hash((self.daemon_id, u.lock_name)))
        taken = []
        for unit in preference:
            if len(self.held) >= share:
                break
            if unit not in self.held and Lease.advisory(lock_key(unit.lock_name)).take(self.control):
                self.held.add(unit)
                taken.append(unit)
        while len(self.held) > share:
            left.append(self._leave(next(u for u in reversed(preference) if u in self.held)))
        return Balanced(tuple(taken), tuple(left))

    def _leave(self, unit: Unit) -> Unit:
        Lease.advisory(lock_key(unit.lock_name)).release(self.control)
        self.held.discard(unit)
        return unit
