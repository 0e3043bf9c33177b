"""The daemon's progress lines during long work: how far each projection got, every ``PROGRESS_SECONDS``.

A catch-up or a build of millions of events takes minutes; between "working
on NAME" and "caught up" an operator should see it move. Each page (and each
build step, from the thread building a new version too) adds its events
here, and a line is said when ``every`` seconds have passed since the last
one for that projection: the events so far and the rate since that line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

PROGRESS_SECONDS = 10.0  # the least time between two progress lines of one projection


class Say(Protocol):
    """The daemon's :meth:`~jsproj.follow.daemon.loop.Daemon.say`: a message at a level, with log fields."""

    def __call__(self, level: int, message: str, **fields: object) -> None: ...


@dataclass(frozen=True)
class _Since:
    at: float  # when the last line was said (or the first events came)
    events: int  # events since then
    total: int  # events since this daemon started on the projection


class ProgressLog:
    """Counts each projection's events and says a progress line every ``every`` seconds of work."""

    def __init__(self, say: Say, *, every: float = PROGRESS_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.say, self.every, self.clock = say, every, clock
        self._lock = threading.Lock()  # builds of new versions report from a thread of their own
        self._since: dict[str, _Since] = {}

    def add(self, name: str, events: int, *, building: bool = False) -> None:
        """``name`` applied (or, ``building``, folded into a build) ``events`` more events."""
        now = self.clock()
        with self._lock:
            was = self._since.get(name, _Since(now, 0, 0))
            since = _Since(was.at, was.events + events, was.total + events)
            due = now - since.at >= self.every and since.events > 0
            self._since[name] = _Since(now, 0, since.total) if due else since
        if due:
            rate = since.events / max(now - since.at, 1e-9)
            what = "folded into its build" if building else "applied"
            self.say(logging.INFO, f"{name}: {since.total:,} events {what} so far ({rate:,.0f} events/s)",
                     projection=name, events=since.total, events_per_second=round(rate))  # fmt: skip
