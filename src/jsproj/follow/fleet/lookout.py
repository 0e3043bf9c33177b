"""The fleet's look at its databases: which stores there are (and which it leaves alone), which parked ones have
work, whether appends were notified -- each database through its :class:`~jsproj.follow.fleet.catalog.Catalog`,
one failing database or store never in the others' way, each warning said once."""

from __future__ import annotations

import logging
import select
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg

from jsproj import errors
from jsproj.follow.fleet.catalog import Catalog, StoreKey
from jsproj.store.translate import reason

TICK = 0.01  # the shortest wait


@dataclass(frozen=True)
class Asked:
    """Which of the parked stores asked have work, and which could not say (asked again at the next look)."""

    busy: frozenset[StoreKey]
    failed: frozenset[StoreKey]


class Lookout:
    """The look at the databases of ``catalogs``; ``say(level, message)`` tells what it found wrong, once each."""

    def __init__(self, catalogs: Sequence[Catalog], say: Callable[[int, str], None]) -> None:
        self.catalogs = list(catalogs)
        self._say = say
        self._told: set[str] = set()

    def find(self, *, first: bool) -> tuple[list[StoreKey], set[str]]:
        """The stores to serve, and the databases (by DSN) that answered: a store of one that did not is not
        gone. ``first``: a database that does not answer, or a store asked for by name that is not there,
        raises."""
        found: list[StoreKey] = []
        answered: set[str] = set()
        for catalog in self.catalogs:
            try:
                seen = catalog.find()
            except psycopg.Error as exc:
                if first:
                    raise
                self.once(f"find {catalog.dsn}", f"cannot look for stores: {reason(exc, catalog.dsn)}")
                continue
            answered.add(catalog.dsn)
            missing = catalog.missing(seen)
            if missing and first:
                raise errors.SchemaMissingError(f"no jsproj store in schema {', '.join(missing)} of database "
                                                f"{catalog.connection.info.dbname}")  # fmt: skip
            for key, why in seen.left:
                self.once(f"left {key}", f"{key.label} is left alone: {why}")
            found.extend(seen.stores)
        return found, answered

    def ask(self, parked: Sequence[StoreKey]) -> Asked:
        """Which of ``parked`` have work now (a statement per database)."""
        busy: set[StoreKey] = set()
        failed: set[StoreKey] = set()
        for catalog in self.catalogs:
            mine = {key.schema: key for key in parked if key.dsn == catalog.dsn}
            if not mine:
                continue
            try:
                with_work, refused = catalog.with_work(list(mine))
            except psycopg.Error as exc:  # the database itself (the catalog connects again at its next look)
                catalog.close()
                self.once(f"ask {catalog.dsn}", f"cannot ask stores for work: {reason(exc, catalog.dsn)}")
                failed.update(mine.values())
                continue
            for schema, why in refused.items():
                self.once(f"failed {catalog.dsn} {schema}", f"{schema} cannot say whether it has work ({why}); "
                                                            "the others go on")  # fmt: skip
            busy.update(mine[schema] for schema in with_work if schema in mine)
            failed.update(mine[schema] for schema in refused if schema in mine)
        return Asked(frozenset(busy), frozenset(failed))

    def drained(self) -> bool:
        """Whether appends were notified since the last look (does not wait)."""
        appended = False
        for catalog in self.catalogs:
            try:
                appended = catalog.drain() or appended
            except psycopg.Error:
                catalog.close()  # connected again at the next look
        return appended

    def wait(self, timeout: float, stopping: threading.Event) -> None:
        """Until appends are notified, ``stopping``, or ``timeout`` (at least a tick)."""
        timeout = max(timeout, TICK)
        sockets = [c.connection.fileno() for c in self.catalogs if c.open]
        if sockets:
            select.select(sockets, [], [], timeout)
        else:
            stopping.wait(timeout)

    def once(self, what: str, message: str) -> None:
        """Say ``message`` as a warning, the first time only (per ``what``)."""
        if what not in self._told:
            self._told.add(what)
            self._say(logging.WARNING, message)

    def close(self) -> None:
        for catalog in self.catalogs:
            catalog.close()
