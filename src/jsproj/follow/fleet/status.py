"""Every store's status at once (``jsproj status --all-stores``): the stores of one or more databases, as a daemon
serving many finds them (docs/daemon.md#many-stores-one-daemon), each with its projections and subscriptions as
``jsproj status`` shows one store's, and whether a fleet of this role serves it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg

from jsproj import errors
from jsproj.follow.fleet.catalog import Catalog, StoreKey
from jsproj.projections.status import ProjectionStatus, projection_status, subscription_status
from jsproj.store.sync import EventStore
from jsproj.store.translate import reason


@dataclass(frozen=True)
class StoreStatus:
    """One store: its projections' and subscriptions' status (``rows``); ``left``: why a fleet of this role leaves
    it alone (None: it serves it); ``error``: why it could not be read (then no rows)."""

    key: StoreKey
    rows: tuple[ProjectionStatus, ...] = ()
    left: str | None = None
    error: str | None = None

    @property
    def behind(self) -> int:
        """The events its async projections and subscriptions have still to process, summed."""
        return sum(row.lag_events or 0 for row in self.rows)

    @property
    def oldest(self) -> float | None:
        """How old, in seconds, the oldest event one of them has still to process is (None: none behind)."""
        ages = [row.lag_seconds for row in self.rows if row.lag_seconds]
        return max(ages) if ages else None

    @property
    def stopped(self) -> list[str]:
        """Those stopped on an event."""
        return [row.name for row in self.rows if row.status == "stopped"]

    @property
    def daemons(self) -> list[str]:
        """The daemons (and subscription runners) holding its work."""
        return sorted({holder for row in self.rows if row.holder for holder in row.holder.split(", ")})

    def to_dict(self) -> dict[str, Any]:
        """As JSON (``jsproj status --all-stores --json``)."""
        return {"store": self.key.label, "database": self.key.database, "schema": self.key.schema,
                "servedByFleet": self.left is None, "leftAlone": self.left, "error": self.error,
                "behind": self.behind, "stopped": self.stopped,
                "projections": [row.to_dict() for row in self.rows]}  # fmt: skip


def stores_status(dsns: Iterable[str]) -> list[StoreStatus]:
    """Every store of the databases at ``dsns`` this role can see, by database and schema."""
    found: list[StoreStatus] = []
    for dsn in dsns:
        catalog = Catalog(dsn)
        try:
            seen = catalog.find()
        except psycopg.Error as exc:
            raise errors.StoreUnavailableError(f"cannot look for stores: {reason(exc, dsn)}") from None
        finally:
            catalog.close()
        found += [_read(key, None) for key in seen.stores] + [_read(key, why) for key, why in seen.left]
    return sorted(found, key=lambda status: (status.key.database, status.key.schema))


def _read(key: StoreKey, left: str | None) -> StoreStatus:
    """One store's status; one that cannot be read says why, and the others are read."""
    try:
        with EventStore(key.dsn, schema=key.schema, min_size=0, max_size=1) as store:
            rows = projection_status(store) + subscription_status(store)
    except (errors.JsprojError, psycopg.Error) as exc:
        return StoreStatus(key, left=left, error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return StoreStatus(key, tuple(rows), left)
