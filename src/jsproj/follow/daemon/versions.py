"""Versioned async projections in the daemon: a new version built beside the deployed one, then switched to.

``jsproj deploy`` of a higher ``.version()`` of an async projection leaves
the deployed version as it is -- its definition, table, progress: readers
and this daemon go on with it -- and records the new one as pending
(``pge_projection_versions``). The daemon holding the projection builds the
pending version from the whole log with a sandbox and a connection of its
own (the new code beside the old), in a thread, into the staging table, as
a build does (:mod:`jsproj.follow.daemon.build`) -- while its loop goes on applying
the deployed version -- then, between two pages, switches in one transaction
(``pge_promote_version``): the definition, the table (the old one kept,
retired, until a deploy with prune), and the progress, which runs on from
the last event built. With ``promote = 'manual'`` it stops after checking
the build (``built``) until ``jsproj promote`` asks for the switch: then it
builds again to the head of the log and switches. A version whose build
stops on an event is ``failed`` and replaces nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.follow.daemon.build import FIRST_PAGE, Build, PageTooLong
from jsproj.store.python_engine import deployed_sources
from jsproj.store.queries import value


@dataclass(frozen=True)
class Pending:
    """A version waiting to replace a deployed projection: its definition as ``pge_deploy`` took it."""

    name: str
    version: int
    promote: str  # "auto" or "manual"
    definition: Mapping[str, Any]


def waiting(conn: psycopg.Connection[Any], names: Sequence[str]) -> list[Pending]:
    """The versions of ``names`` to be built."""
    rows = conn.execute(
        """select name, version, promote, definition from pge_projection_versions
           where status = 'pending' and name = any(%s) order by name""",
        (list(names),),
    ).fetchall()
    return [Pending(name, version, promote, definition) for name, version, promote, definition in rows]


class VersionBuild(Build):
    """A build of a pending version: its failures and progress are the version's, not the deployed one's."""

    def __init__(
        self, conn: psycopg.Connection[Any], projections: Projections, pending: Pending, page_size: int, first: int
    ) -> None:
        # A failing event stops the new version (the deployed one serves on): no dead letters of it.
        super().__init__(conn, projections, [pending.name], {}, page_size, first=first)
        self.pending = pending

    def _clear_letters(self) -> None:
        pass  # the dead letters are the deployed version's

    def _emitters(self, permitted: dict[str, bool]) -> list[str]:
        return [self.pending.name] if self.pending.definition.get("emits") else []  # the version's permission

    def _append(self, emitted: str) -> None:
        pass  # what the events before the switch emit is the deployed version's to emit

    def _where(self) -> tuple[str, int, str]:
        return self.pending.name, self.pending.version, str(self.pending.definition["hash"])

    def _count(self) -> None:
        self.conn.execute(
            """update pge_projection_versions set events = %s, updated_at = now()
               where name = %s and version = %s and definition ->> 'hash' = %s""",
            (self.total, *self._where()),
        )

    def _leave(self, name: str, error: errors.JsprojError) -> None:
        self.conn.execute(
            """update pge_projection_versions set status = 'failed', error = %s, events = %s, updated_at = now()
               where name = %s and version = %s and definition ->> 'hash' = %s and status = 'pending'""",
            (Jsonb(error.to_dict()), self.total, *self._where()),
        )
        self._drop_staging(name)

    def switch(self) -> bool:
        """Make the built version the deployed one, in one transaction (``manual``: mark it built and wait);
        True when it switched."""
        name = self.pending.name
        if self.pending.promote == "manual":
            self.conn.execute(
                """update pge_projection_versions set status = 'built', events = %s, updated_at = now()
                   where name = %s and version = %s and definition ->> 'hash' = %s and status = 'pending'""",
                (self.total, *self._where()),
            )
            self._drop_staging(name)
            self.conn.commit()
            return False
        with self.conn.transaction():
            switched = bool(
                value(
                    self.conn,
                    "select pge_promote_version(%s, %s, %s, %s::xid8, %s, %s)",
                    (*self._where(), self.after[0], self.after[1], self.total),
                )
            )
            if not switched:  # replaced or ended by a deploy meanwhile
                self._drop_staging(name)
        return switched


def version_sources(conn: psycopg.Connection[Any], pending: Pending) -> list[dict[str, str]]:
    """The files a version is built with: its own, and the other deployed ones (the upcasters they declare
    are part of its input: docs/dsl.md#upcasters), but the file of the version it replaces."""
    own = str(pending.definition["file"])
    replaced = value(conn, "select file from pge_projection_definitions where name = %s", (pending.name,))
    conn.commit()
    others = [s for s in deployed_sources(conn) if s["file"] not in (own, replaced)]
    return [{"file": own, "source": str(pending.definition["source"])}, *others]


def build_version(
    conn: psycopg.Connection[Any],
    pending: Pending,
    limits: Mapping[str, Any],
    page_size: int,
    *,
    on_progress: Callable[[str, int], None] | None = None,
    stop: threading.Event | None = None,
) -> VersionBuild | None:
    """Build ``pending`` into its staging table, beside the deployed version; the build, ready for
    :meth:`VersionBuild.switch`, or None when it failed or was stopped (nothing staged then).

    It runs on a connection and a sandbox of its own, so that the daemon goes on applying the deployed
    version meanwhile. As :func:`jsproj.follow.daemon.build.build`, a page that hits a sandbox limit starts
    again in pages half as long; an event that hits one alone fails the version.
    """
    first = FIRST_PAGE
    with Projections(version_sources(conn, pending), **limits) as projections:
        while True:
            staged = VersionBuild(conn, projections, pending, page_size, min(first, page_size))
            staged.start()
            try:
                staged.fold(on_progress, stop)
                if staged.active and not (stop is not None and stop.is_set()) and staged.flush():
                    return staged
                staged.abandon()
                return None
            except PageTooLong as cut:
                staged.abandon()
                page_size = first = max(1, cut.events // 2)
