"""One store a daemon serving many works on: its daemon, the turns it is given, parked or attached.

A :class:`Slot` is a store's :class:`~jsproj.follow.daemon.Daemon`, run as a
processor of the follower engine one turn at a time
(:meth:`~jsproj.follow.engine.Follower.turn`: attach if need be, then one
round -- a page, a build, a retry) by whichever of the fleet's workers
takes it. Between turns it is *queued* (its turn is due), *resting* (idle
until it is due again: a poll, a notification, or a backoff after a
failure), or *parked*: no connections, no sandbox, nothing held -- until
the store has work again. Its state is the fleet's to change, under the
fleet's lock; a turn runs outside it.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from jsproj.errors import ProjectionStoppedError
from jsproj.follow.daemon import Daemon
from jsproj.follow.engine import BRISK_POLL, Follower, Turn
from jsproj.follow.fleet.catalog import StoreKey

State = Literal["parked", "queued", "running", "resting"]


class Slot:
    """A store served by the fleet (see the module); ``until_caught_up``: its daemon's run is."""

    def __init__(self, key: StoreKey, daemon: Daemon, *, until_caught_up: bool = False) -> None:
        self.key, self.daemon = key, daemon
        self.follower = Follower(daemon, daemon.stopping, until_caught_up=until_caught_up)
        self.state: State = "parked"
        self.due_at = 0.0  # resting: when its next turn is due
        self.busy_at = 0.0  # its last turn that did work
        self.attached_at = 0.0  # when it was last given turns after being parked
        self.caught_up = False  # (until caught up) its daemon reached its target, or there was nothing to do
        self.stopped: str | None = None  # a projection of it stopped on an event, or an error stopped it: why
        self.gone = False  # the store is no more: park it for good

    @property
    def attached(self) -> bool:
        """Whether it holds connections now."""
        return self.follower.attached is not None

    def turn(self, poll_interval: float) -> Turn:
        """One turn (on a worker's thread; the slot is ``running``); then when the next is due."""
        now = time.monotonic()
        try:
            turn = self.follower.turn()
        except ProjectionStoppedError as exc:  # until caught up: one of its projections stopped on an event
            self.stopped, turn = str(exc), "caught up"
        except Exception as exc:  # noqa: BLE001 -- an error no policy names, in one store: the others go on
            self.daemon.say(logging.ERROR, f"{self.key.label}: {type(exc).__name__}: {exc}; trying again later",
                            store=self.key.label)  # fmt: skip
            self.follower.detach(clean=False)
            turn = "failed"
        if turn == "busy":
            self.busy_at = now
        elif turn == "caught up":
            self.caught_up = True
        if turn == "failed":
            self.due_at = now + self.follower.backoff.next()
        elif turn != "busy":
            brisk = self.daemon.rest() if self.attached else False
            self.due_at = now + (BRISK_POLL if brisk else poll_interval)
        return turn

    def park(self) -> None:
        """Give everything back: connections, units, sandbox (the fleet's thread; the slot is not running)."""
        self.follower.detach(clean=True)
        self.daemon.deployed.close()
        self.state = "parked"

    def close(self) -> None:
        """The end: parked, its observer told."""
        self.park()
        self.daemon.hooks.finished()
