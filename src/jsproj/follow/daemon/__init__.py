"""The async projection daemon: keeps async projections up to date, exactly once.

- :mod:`~jsproj.follow.daemon.loop` -- the daemon (:class:`Daemon`): a processor of the follower engine
  (:mod:`jsproj.follow.engine`), its error policy, what outlives its connections;
- :mod:`~jsproj.follow.daemon.connected` -- the daemon on its connections: rounds of builds, retries, versions, pages;
- :mod:`~jsproj.follow.daemon.session` -- its three connections and its heartbeat;
- :mod:`~jsproj.follow.daemon.leases` -- the units it holds: an advisory lock each, a fair share;
- :mod:`~jsproj.follow.daemon.pipeline` -- pages read ahead, applied, committed behind;
- :mod:`~jsproj.follow.daemon.deployed` -- the deployed definitions, their code in a sandbox, its kept documents;
- :mod:`~jsproj.follow.daemon.version_jobs` -- new versions built beside the deployed ones, then switched to;
- :mod:`~jsproj.follow.daemon.pages` -- a page applied to a group of units, committed with their progress;
- :mod:`~jsproj.follow.daemon.build` -- a staged build: start, fold, flush, swap or abandon;
- :mod:`~jsproj.follow.daemon.progress` -- every statement on the progress table;
- :mod:`~jsproj.follow.daemon.poison` -- dead letters and their retry;
- :mod:`~jsproj.follow.daemon.hooks` -- what the loop tells an observer;
- :mod:`~jsproj.follow.daemon.metrics` -- Prometheus metrics and ``/healthz`` from those hooks.

A page is applied completely or not at all, with the progress of every unit
it served, so nothing is applied twice or skipped, whatever fails in between.
"""

from jsproj.errors import ProjectionStoppedError
from jsproj.follow.daemon.leases import STALE_SECONDS
from jsproj.follow.daemon.loop import DEFAULT_PAGE_SIZE, Daemon, Shared
from jsproj.follow.daemon.progress import LOCK_CLASS, Unit, caught_up_blockers, lock_key

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "LOCK_CLASS",
    "STALE_SECONDS",
    "Daemon",
    "ProjectionStoppedError",
    "Shared",
    "Unit",
    "caught_up_blockers",
    "lock_key",
]
