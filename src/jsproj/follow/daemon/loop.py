"""The async projection daemon: an orchestrator of small parts, run by the follower engine.

Each daemon process holds a PostgreSQL session advisory lock per unit it
works on -- an async projection, or one partition of a partitioned one
(:mod:`~jsproj.follow.daemon.leases`) -- so any number of daemons, on any
number of machines, share the units and never work on one at the same time;
when a holder dies its connection closes, the lock is released and another
daemon takes over.

Each round, the units it holds that are at the same position are served by
one page (:mod:`~jsproj.follow.daemon.pages`, through the
:mod:`~jsproj.follow.daemon.pipeline`): read once, applied to all of them in
one transaction with their progress. The page of the least advanced group
stops where the next group starts, so groups merge and stay merged. Builds
come first (:mod:`~jsproj.follow.daemon.build`), then requested retries, new
versions (:mod:`~jsproj.follow.daemon.version_jobs`), then pages. NOTIFY
wakes the daemon, and it polls briefly after any work
(:class:`~jsproj.follow.engine.Waker`); polling is the source of truth.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jsproj import errors, logs
from jsproj.engine.sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from jsproj.errors import ProjectionStoppedError
from jsproj.follow.daemon.connected import Connected
from jsproj.follow.daemon.deployed import Deployed
from jsproj.follow.daemon.hooks import DaemonHooks
from jsproj.follow.daemon.leases import Leases
from jsproj.follow.daemon.progress import Unit
from jsproj.follow.daemon.progress_log import ProgressLog
from jsproj.follow.daemon.retention import RetentionAgent
from jsproj.follow.daemon.session import DIRECT, Connector, Session
from jsproj.follow.engine import LOST, Action, ErrorPolicy, Follower
from jsproj.store.translate import reason

DEFAULT_PAGE_SIZE = 20000  # the most events per page: bench/page_size_bench.py and scenario 7 (docs/benchmarks.md)

#: A lost connection reconnects; a projection stopped on an event ends a run until caught up; any other
#: jsproj error is said, and the daemon connects again after a backoff and goes on from the stored progress.
DAEMON_POLICY = ErrorPolicy(
    ((LOST, "reconnect"), ((ProjectionStoppedError,), "stop"), ((errors.JsprojError,), "retry"))
)

logger = logging.getLogger("jsproj.daemon")


@dataclass(frozen=True)
class Shared:
    """What a daemon shares with the other daemons of a fleet serving many stores (:mod:`jsproj.follow.fleet`):
    the stop event, the connections their stores take in turn, and the key of the V8 contexts their engines
    take in turn (:class:`~jsproj.engine.sandbox.Sandbox`'s ``context``)."""

    stop: threading.Event
    connector: Connector
    context: str


class Daemon:
    """One daemon process's work: ``run()`` until ``stop()``, or until caught up.

    ``names`` limits it to some async projections; ``page_size`` is the most
    events per engine call and transaction. It logs on the ``jsproj.daemon``
    logger (and calls ``log``, if given, with each message); ``hooks`` hears of
    its rounds, pages and lost connections (:mod:`jsproj.follow.daemon.metrics`).
    ``on_progress`` and ``hooks.built`` are called from the thread that builds
    a new version beside a deployed one, too (:mod:`jsproj.follow.daemon.versions`).
    """

    policy = DAEMON_POLICY

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        names: Iterable[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        poll_interval: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        log: Callable[[str], None] | None = None,
        on_progress: Callable[[str, int], None] | None = None,
        hooks: DaemonHooks | None = None,
        retention: Callable[[], Any] | None = None,
        retention_interval: float = 3600.0,
        shared: Shared | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.dsn = dsn
        self.schema = schema
        self.page_size = page_size
        self.poll_interval = poll_interval
        self.log = log or (lambda message: None)
        self.hooks = hooks or DaemonHooks()
        self.on_progress = on_progress or (lambda name, events: None)
        self.progress = ProgressLog(self.say)  # a line per projection every 10 s of a long catch-up or build
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.deployed = Deployed(
            set(names) if names else None,
            {"timeout": timeout, "memory_limit": memory_limit, "context": shared.context if shared else None},
        )
        self.stopping = shared.stop if shared else threading.Event()
        self.connector = shared.connector if shared else DIRECT  # where its connections come from
        # (retention: what applies the rules, jsproj.projections.retention's apply_rules for `jsproj daemon`)
        self.retention = RetentionAgent(retention, retention_interval, self.say)
        self._connected: Connected | None = None  # the daemon on its latest connections, for what `held` reports

    @property
    def held(self) -> frozenset[Unit]:
        """The units this daemon holds now."""
        current = self._connected
        return frozenset(current.leases.held) if current is not None else frozenset()

    @property
    def sandbox_restarts(self) -> int:
        """How often the V8 worker was restarted since the start (a limit hit, a crash)."""
        return self.deployed.restarts

    def say(self, level: int, message: str, **fields: object) -> None:
        """Log ``message`` (with this daemon's id and schema, and ``fields``, in JSON lines) and pass it to ``log``."""
        logs.say(logger, level, message, daemon=self.id, schema=self.schema, **fields)
        self.log(message)

    def rest(self) -> bool:
        """After an idle turn taken by a scheduler of many daemons (:mod:`jsproj.follow.fleet`): the page in
        flight committed, pages small again. True while work was recent (worth another turn soon)."""
        current = self._connected
        return current.rest() if current is not None else False

    def close(self) -> None:
        """The end of the daemon's work in a scheduler of many: its sandbox closed, its observer told. (Its
        connections went with its follower's detach.)"""
        self.deployed.close()
        self.hooks.finished()

    def stop(self) -> None:
        """Finish the current page, release the projections and return from ``run()``."""
        self.stopping.set()

    def run(self, *, until_caught_up: bool = False) -> bool:
        """Work until stopped; with ``until_caught_up``, until every async projection has
        processed everything appended before the call. Survives the database going away
        (reconnects with backoff and resumes from the stored progress).

        Returns True when it caught up, False when it was stopped first.
        """
        try:
            return Follower(self, self.stopping, until_caught_up=until_caught_up).run()
        finally:
            self.close()

    # -- as the follower engine's processor ---------------------------------------

    def attach(self) -> Connected:
        """Open the connections: the daemon on them, holding nothing yet."""
        session = Session(self.dsn, self.schema, self.id, self.connector)
        self.deployed.forget()  # no one else writing the documents is known no more
        self._connected = Connected(self, session, Leases(session.control, self.id))
        return self._connected

    def failed(self, exc: BaseException, action: Action, delay: float) -> None:
        why = reason(exc, self.dsn)
        if action == "reconnect":
            self.hooks.lost(f"lost the database: {why}")
            self.say(logging.WARNING, f"lost the database ({why}); reconnecting in {delay:.1f} s")
        else:
            self.hooks.lost(f"error: {why}")
            self.say(logging.ERROR, f"error: {why}; retrying in {delay:.1f} s")

    def built(self, name: str, events: int) -> None:
        """A build of ``name`` (the deployed version's, or a new one's beside it) folded ``events`` more."""
        self.hooks.built(name, events)
        self.progress.add(name, events, building=True)
        self.on_progress(name, events)

    def applied(self, name: str, events: int) -> None:
        """A page committed ``events`` more events of ``name``."""
        self.progress.add(name, events)
        self.on_progress(name, events)
