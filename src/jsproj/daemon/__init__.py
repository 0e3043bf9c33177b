"""The async projection daemon: keeps async projections up to date, exactly once.

- :mod:`~jsproj.daemon.loop` -- the loop: heartbeat, balancing, locks (:class:`Daemon`);
- :mod:`~jsproj.daemon.pages` -- the gap-safe page read, and a page applied to a group of units;
- :mod:`~jsproj.daemon.build` -- a staged build: start, fold, flush, swap or abandon;
- :mod:`~jsproj.daemon.progress` -- every statement on the progress table;
- :mod:`~jsproj.daemon.poison` -- dead letters and their retry;
- :mod:`~jsproj.daemon.hooks` -- what the loop tells an observer;
- :mod:`~jsproj.daemon.metrics` -- Prometheus metrics and ``/healthz`` from those hooks.

A page is applied completely or not at all, with the progress of every unit
it served, so nothing is applied twice or skipped, whatever fails in between.
"""

from jsproj.daemon.loop import DEFAULT_PAGE_SIZE, STALE_SECONDS, Daemon
from jsproj.daemon.progress import LOCK_CLASS, Unit, caught_up_blockers, lock_key
from jsproj.errors import ProjectionStoppedError

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
