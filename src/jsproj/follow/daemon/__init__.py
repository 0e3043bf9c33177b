"""The async projection daemon: keeps async projections up to date, exactly once.

- :mod:`~jsproj.follow.daemon.loop` -- the loop: heartbeat, balancing, locks (:class:`Daemon`);
- :mod:`~jsproj.follow.daemon.pages` -- the gap-safe page read, and a page applied to a group of units;
- :mod:`~jsproj.follow.daemon.build` -- a staged build: start, fold, flush, swap or abandon;
- :mod:`~jsproj.follow.daemon.progress` -- every statement on the progress table;
- :mod:`~jsproj.follow.daemon.poison` -- dead letters and their retry;
- :mod:`~jsproj.follow.daemon.hooks` -- what the loop tells an observer;
- :mod:`~jsproj.follow.daemon.metrics` -- Prometheus metrics and ``/healthz`` from those hooks.

A page is applied completely or not at all, with the progress of every unit
it served, so nothing is applied twice or skipped, whatever fails in between.
"""

from jsproj.errors import ProjectionStoppedError
from jsproj.follow.daemon.loop import DEFAULT_PAGE_SIZE, STALE_SECONDS, Daemon
from jsproj.follow.daemon.progress import LOCK_CLASS, Unit, caught_up_blockers, lock_key

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "LOCK_CLASS",
    "STALE_SECONDS",
    "Daemon",
    "ProjectionStoppedError",
    "Unit",
    "caught_up_blockers",
    "lock_key",
]
