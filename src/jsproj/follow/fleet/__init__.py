"""A daemon serving many stores: every jsproj schema of one or more databases, one process, fairly.

- :mod:`~jsproj.follow.fleet.catalog` -- one database's stores: which there are, which have work;
- :mod:`~jsproj.follow.fleet.lookout` -- the look at every database of the fleet, each warning said once;
- :mod:`~jsproj.follow.fleet.slot` -- one store's daemon, given turns, attached or parked;
- :mod:`~jsproj.follow.fleet.connections` -- the connections its stores take in turn, kept per database;
- :mod:`~jsproj.follow.fleet.loop` -- the fleet: workers taking turns round robin, an orchestrator deciding
  which stores hold connections;
- :mod:`~jsproj.follow.fleet.metrics` -- the stores' metrics, labelled by store, and the fleet's health;
- :mod:`~jsproj.follow.fleet.status` -- every store's status at once (``jsproj status --all-stores``).

Each store's work is its own :class:`~jsproj.follow.daemon.Daemon`'s, with its exactly-once pages, leases
and error policy unchanged: the fleet only decides when it runs and whether it holds connections, and
gives it what the stores take in turn (:class:`~jsproj.follow.daemon.Shared`: connections, and V8 contexts
in which each store gets an engine of its own; docs/daemon.md#many-stores-one-daemon).
"""

from jsproj.follow.fleet.catalog import Catalog, StoreKey
from jsproj.follow.fleet.loop import DEFAULT_MAX_ATTACHED, DEFAULT_WORKERS, Fleet, catalogs_for

__all__ = ["DEFAULT_MAX_ATTACHED", "DEFAULT_WORKERS", "Catalog", "Fleet", "StoreKey", "catalogs_for"]
