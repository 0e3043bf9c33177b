"""The follower engine: one way to follow the log, for async projections and Python subscribers alike.

A follower is a :class:`Processor` -- the daemon's projections, or a
subscriber -- run by :class:`Follower`: it attaches (connects, and gets an
:class:`Attached` whose connections are open for as long as it lives), takes
steps of work until stopped or caught up, idles until the log grows
(:class:`Waker`), and when something fails does what the processor's
:class:`ErrorPolicy` says: reconnect after a :class:`Backoff`, retry, or
stop. Each follower holds :class:`Lease` s (session advisory locks) on the
work it does, so that any number of them share it and never do the same
work at once. Every follower reads the log through :mod:`jsproj.store.log`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import psycopg
from psycopg import sql

BRISK_SECONDS = 2.0  # after work, poll this long at BRISK_POLL (appends that did not notify: async.sql)
BRISK_POLL = 0.01
NOTIFY_CHANNEL = "pge_events"  # what the notify trigger of pge_events says (sql/functions/async.sql)

#: The connection went away (not the work at fault): connect again.
LOST = (psycopg.OperationalError, psycopg.InterfaceError)

Action = Literal["reconnect", "retry", "stop"]


@dataclass(frozen=True)
class ErrorPolicy:
    """What a follower does with an error, as data: rules of (error classes, action), the first that matches.

    ``reconnect``: the connection was lost -- connect again after a backoff;
    ``retry``: the work failed -- say so, connect again after a backoff;
    ``stop``: raise it to the caller. An error no rule names stops too.
    """

    rules: tuple[tuple[tuple[type[BaseException], ...], Action], ...]

    def action(self, exc: BaseException) -> Action:
        return next((action for kinds, action in self.rules if isinstance(exc, kinds)), "stop")


class Backoff:
    """Waits that double after each failure, from ``first`` up to ``longest`` seconds; short again after a success."""

    def __init__(self, first: float = 0.1, longest: float = 5.0) -> None:
        self.first, self.longest, self.delay = first, longest, first

    def reset(self) -> None:
        self.delay = self.first

    def next(self) -> float:
        """The current delay, doubled for the next failure."""
        delay, self.delay = self.delay, min(self.delay * 2, self.longest)
        return delay

    def wait(self, stop: threading.Event) -> None:
        """Wait the current delay (or until ``stop``), then double it."""
        stop.wait(self.next())


class Waker:
    """Waiting for the log to grow: a notification on :data:`NOTIFY_CHANNEL`, else the poll interval --
    polling briefly (:data:`BRISK_POLL`) for :data:`BRISK_SECONDS` after work, since appends that commit
    without a notification (the trigger exists only while someone listens) are then seen at once. Polling is
    the source of truth; notifications only wake sooner."""

    def __init__(self, poll_interval: float) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        self.poll_interval = poll_interval
        self.last_work = 0.0

    @staticmethod
    def listen(conn: psycopg.Connection[Any]) -> None:
        """Have ``conn`` (in autocommit) hear the notifications."""
        conn.execute(f"listen {NOTIFY_CHANNEL}")

    def worked(self) -> None:
        self.last_work = time.monotonic()

    @property
    def brisk(self) -> bool:
        """Whether there was work in the last :data:`BRISK_SECONDS`."""
        return time.monotonic() - self.last_work < BRISK_SECONDS

    def wait(self, conn: psycopg.Connection[Any], stop: threading.Event, *, brisk: bool | None = None) -> None:
        """Until a notification on ``conn``, ``stop``, or the poll interval (:data:`BRISK_POLL` when brisk)."""
        quick = self.brisk if brisk is None else brisk
        deadline = time.monotonic() + (min(BRISK_POLL, self.poll_interval) if quick else self.poll_interval)
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for _ in conn.notifies(timeout=min(left, 0.25), stop_after=1):
                return


@dataclass(frozen=True)
class Lease:
    """A session advisory lock on one connection: the right to do one piece of work (a daemon's unit, a
    subscription's runner). It goes when the connection goes, so a dead holder's work is taken over."""

    take_query: sql.Composed  # answers whether this connection holds it now
    release_query: sql.Composed

    @classmethod
    def advisory(cls, key: sql.Composable) -> Lease:
        """The lock of ``key`` (the lock's arguments: (class, key) or one bigint), taken directly."""
        return cls(sql.SQL("select pg_try_advisory_lock({})").format(key),
                   sql.SQL("select pg_advisory_unlock({})").format(key))  # fmt: skip

    @classmethod
    def subscription(cls, name: str) -> Lease:
        """A subscription's lease, through the store's ``pge_subscription_lease`` (docs/deploy.md#advisory-locks:
        an application role takes it where it may take no advisory lock itself)."""
        return cls(sql.SQL("select pge_subscription_lease({}, true)").format(sql.Literal(name)),
                   sql.SQL("select pge_subscription_lease({}, false)").format(sql.Literal(name)))  # fmt: skip

    def take(self, conn: psycopg.Connection[Any]) -> bool:
        """Take it if no one holds it; True when this connection holds it now."""
        row = conn.execute(self.take_query).fetchone()
        return bool(row and row[0])

    def release(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(self.release_query)


class Attached(Protocol):
    """A processor with its connections open: what :class:`Follower` drives between two connections."""

    def high_water(self) -> Any:
        """Where the log ends now: the target of a run until caught up."""

    def step(self, target: Any) -> bool:
        """A piece of work (a target: none past it); False when there was none."""

    def caught_up(self, target: Any, busy: bool) -> bool:
        """Whether the work reached ``target``; ``busy``: the last step did work."""

    def idle(self) -> None:
        """Wait until there may be work."""

    def detach(self, *, clean: bool) -> None:
        """Close the connections (``clean``: the run ends, give everything back now)."""


class Processor(Protocol):
    """A kind of follower: async projections (:mod:`jsproj.follow.daemon`) or a subscriber."""

    @property
    def policy(self) -> ErrorPolicy:
        """What to do with each error."""

    def attach(self) -> Attached:
        """Connect; what it holds is held until :meth:`Attached.detach`."""

    def failed(self, exc: BaseException, action: Action, delay: float) -> None:
        """Say what failed and what comes next (reconnecting or retrying in ``delay`` seconds)."""


Turn = Literal["busy", "idle", "caught up", "failed"]


class Follower:
    """Runs a :class:`Processor` until ``stop`` is set or -- ``until_caught_up`` -- until it reached the end of
    the log as it was when it first attached, riding out lost connections and failures by its policy.

    :meth:`run` takes turns until then; a scheduler of many followers (:mod:`jsproj.follow.fleet`) takes their
    :meth:`turn` s itself, one at a time, and waits as it sees fit.
    """

    def __init__(self, processor: Processor, stop: threading.Event, *, until_caught_up: bool = False) -> None:
        self.processor = processor
        self.stop = stop
        self.until_caught_up = until_caught_up
        self.backoff = Backoff()
        self.attached: Attached | None = None
        self._target: Any = None
        self._targeted = False

    def turn(self) -> Turn:
        """Attach if need be, then one step: ``busy`` (it did work), ``idle``, ``caught up`` (until caught up),
        or ``failed`` (said by the processor, detached; wait ``backoff.next()`` before the next turn). Raises
        what the policy stops on."""
        try:
            attached = self.attached = self.attached or self.processor.attach()
            if self.until_caught_up and not self._targeted:
                self._target, self._targeted = attached.high_water(), True
            busy = attached.step(self._target if self.until_caught_up else None)
            self.backoff.reset()
            if self.until_caught_up and attached.caught_up(self._target, busy):
                return "caught up"
            return "busy" if busy else "idle"
        except Exception as exc:  # noqa: BLE001 -- the processor's policy decides: _failed raises what it stops on
            return self._failed(exc)

    def idle(self) -> Turn:
        """Wait until there may be work (after an ``idle`` turn): ``idle``, or ``failed`` as :meth:`turn`."""
        try:
            if self.attached is not None:
                self.attached.idle()
            return "idle"
        except Exception as exc:  # noqa: BLE001 -- as in turn(): the policy decides
            return self._failed(exc)

    def _failed(self, exc: Exception) -> Turn:
        action = self.processor.policy.action(exc)
        if action == "stop":
            raise exc
        self.processor.failed(exc, action, self.backoff.delay)
        self.detach(clean=False)  # what it held goes with its connections
        return "failed"

    def detach(self, *, clean: bool) -> None:
        """Close the processor's connections, if open (``clean``: give everything back now)."""
        gone, self.attached = self.attached, None
        if gone is not None:
            gone.detach(clean=clean)

    def run(self) -> bool:
        """True when caught up, False when stopped first; raises what the policy stops on."""
        try:
            while not self.stop.is_set():
                turn = self.turn()
                if turn == "caught up":
                    return True
                if turn == "idle":
                    turn = self.idle()
                if turn == "failed":
                    self.backoff.wait(self.stop)
            return False
        finally:
            self.detach(clean=True)
