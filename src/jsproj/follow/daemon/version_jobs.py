"""New versions of held projections, built one at a time beside the deployed ones, then switched to.

The build runs in a thread of its own, on a connection and a sandbox of its
own (:func:`~jsproj.follow.daemon.versions.build_version`), while the
daemon's loop goes on applying the deployed version; the loop asks
:meth:`VersionJobs.tend` between two pages, which starts the next pending
version or switches to the one built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Set
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg

from jsproj import errors
from jsproj.follow.daemon.progress_log import Say
from jsproj.follow.daemon.versions import Pending, VersionBuild, build_version
from jsproj.logs import log_warnings
from jsproj.store.identifiers import search_path


@dataclass(frozen=True)
class _Job:
    """A new version being built beside the deployed one: in a thread, on a connection of its own."""

    pending: Pending
    conn: psycopg.Connection[Any]
    future: Future[VersionBuild | None]
    halt: threading.Event


@dataclass(frozen=True)
class Switched:
    """A version built and tried: ``switched`` is False when a deploy replaced or ended it meanwhile."""

    name: str
    version: int
    switched: bool


class VersionJobs:
    """The versions waiting for the held projections (read with their progress), and the one being built."""

    def __init__(
        self,
        dsn: str,
        schema: str,
        daemon_id: str,
        build: Mapping[str, Any],  # limits and page_size for build_version
        on_progress: Callable[[str, int], None],
        say: Say,
    ) -> None:
        self.dsn, self.schema, self.daemon_id, self.build = dsn, schema, daemon_id, build
        self.on_progress, self.say = on_progress, say
        self.waiting: list[Pending] = []
        self._job: _Job | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="jsproj-version-build")

    @property
    def busy(self) -> bool:
        """Whether a version is being built, or waits to be."""
        return self._job is not None or bool(self.waiting)

    @property
    def building(self) -> str | None:
        """The projection whose new version is being built, if any."""
        return self._job.pending.name if self._job is not None else None

    def tend(self, held: Set[str], settle: Callable[[], None]) -> Switched | None:
        """Start building the next waiting version, or switch to the one built (``settle()`` first: no page of the
        deployed version in flight); what it switched, if it tried. ``held``: the projections this daemon holds."""
        job = self._job
        if job is None:
            if self.waiting:
                self._job = self._start(self.waiting.pop(0))
            return None
        if not job.future.done():
            return None
        self._job = None
        try:
            staged = job.future.result()
            if staged is None:
                return None
            if job.pending.name not in held:
                staged.abandon()  # another daemon holds it now: it builds the version again
                return None
            settle()
            switched = staged.switch()
        except (psycopg.Error, errors.JsprojError) as exc:
            self.say(
                logging.ERROR,
                f"building version {job.pending.version} of {job.pending.name}: {exc}",
                projection=job.pending.name,
                version=job.pending.version,
            )
            return None
        finally:
            job.conn.close()
        return Switched(job.pending.name, job.pending.version, switched)

    def _start(self, pending: Pending) -> _Job:
        self.say(
            logging.INFO,
            f"building version {pending.version} of {pending.name} beside the deployed one",
            projection=pending.name,
            version=pending.version,
        )
        conn = psycopg.connect(
            self.dsn, autocommit=True, application_name=f"jsproj daemon {self.daemon_id} version"[:63]
        )
        log_warnings(conn, logging.getLogger("jsproj.daemon"))
        conn.execute(search_path(self.schema))
        halt = threading.Event()
        future = self._pool.submit(build_version, conn, pending, self.build["limits"], self.build["page_size"],
                                   on_progress=self.on_progress, stop=halt)  # fmt: skip
        return _Job(pending, conn, future, halt)

    def end(self) -> None:
        """Stop the version being built (its staging goes) and close its connection."""
        job, self._job = self._job, None
        if job is None:
            return
        job.halt.set()
        try:
            staged = job.future.result()
            if staged is not None:
                staged.abandon()
        except (psycopg.Error, errors.JsprojError):
            pass  # its connection goes, and its staging table is dropped by the next build
        finally:
            job.conn.close()

    def close(self) -> None:
        self.end()
        self._pool.shutdown()
