"""What a daemon tells an observer as it works (:mod:`jsproj.follow.daemon.metrics` counts it): no-ops by default.

The loop calls these on its own thread, at the points where the state they
report changes: a round done (connected, holding these units), the database
lost, a page committed, a build's progress (and, from a thread of its own,
that a long build works on). An observer keeps what it needs
and answers other threads (an HTTP scrape) from that.
"""

from __future__ import annotations

from collections.abc import Set

from jsproj.follow.daemon.pages import Applied
from jsproj.follow.daemon.progress import Unit


class DaemonHooks:
    """The observer of one :class:`~jsproj.follow.daemon.Daemon`; every method does nothing here."""

    def holding(self, held: Set[Unit]) -> None:
        """The daemon is connected and, after balancing, holds ``held`` (before the round's work, which may be
        a long build)."""

    def round_done(self, held: Set[Unit]) -> None:
        """A round finished: the daemon is connected, and holds ``held``."""

    def lost(self, reason: str) -> None:
        """The daemon lost its connections (``reason``, without any password) and will connect again."""

    def page_committed(self, applied: Applied) -> None:
        """A page was committed: its events, dead letters and stops are in the database."""

    def built(self, name: str, events: int) -> None:
        """A build of projection ``name`` folded ``events`` more events."""

    def working(self) -> None:
        """A long step of the loop (a build: its fold, copy, indexes and swap) goes on, and its statement is
        not waiting for a lock (called from the daemon's heartbeat thread, every few seconds)."""

    def finished(self) -> None:
        """``run()`` returned: the daemon released its units."""
