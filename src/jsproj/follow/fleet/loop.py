"""The fleet: one daemon process serving many stores, fairly, within a bound on what it holds open.

Its parts (see the package): the catalogs (which stores there are, which have
work), a slot per store (its daemon, turn by turn), and workers -- threads
that each take the next queued slot, give it one turn, and queue it again at
the back if it did work (round robin: a page per store per round, so no store
waits behind another's backlog). This thread, the orchestrator, looks for
stores added and dropped, wakes resting slots when their turn is due or
appends were notified, and decides which stores hold connections: at most
``max_attached`` at once. A parked store with work takes the place of one
idle longest, or -- when every one has work -- of one served longest for at
least ``quantum`` seconds; a store idle for ``park_after`` seconds is parked
anyway.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence

from jsproj import errors, logs
from jsproj.engine.sandbox import keep_warm
from jsproj.follow.daemon import Daemon, Shared
from jsproj.follow.fleet.catalog import Catalog, StoreKey
from jsproj.follow.fleet.connections import SharedConnections
from jsproj.follow.fleet.lookout import Lookout
from jsproj.follow.fleet.slot import Slot

DEFAULT_MAX_ATTACHED = 8  # stores holding connections (3 each) and a V8 worker at once (bench scenario 13)
DEFAULT_WORKERS = 2  # turns at once
DISCOVER_SECONDS = 5.0  # how often the databases are looked at for stores added or dropped
QUANTUM_SECONDS = 5.0  # when every attached store has work, one served this long makes room for one waiting
PARK_AFTER_SECONDS = 30.0  # a store idle this long is parked (connections closed, sandbox freed)

logger = logging.getLogger("jsproj.daemon")

#: A store's daemon, made with what it shares with the fleet's other daemons (``Daemon(..., shared=shared)``).
DaemonFactory = Callable[[StoreKey, Shared], Daemon]


class Fleet:
    """Serves the stores the ``catalogs`` find, each by a daemon ``make_daemon(key, shared)`` builds (see the
    module)."""

    def __init__(
        self,
        catalogs: Sequence[Catalog],
        make_daemon: DaemonFactory,
        *,
        max_attached: int = DEFAULT_MAX_ATTACHED,
        workers: int = DEFAULT_WORKERS,
        poll_interval: float = 1.0,
        quantum: float = QUANTUM_SECONDS,
        park_after: float = PARK_AFTER_SECONDS,
        discover_every: float = DISCOVER_SECONDS,
    ) -> None:
        if max_attached < 1 or workers < 1:
            raise ValueError("max_attached and workers must be at least 1")
        self.lookout, self.make_daemon = Lookout(catalogs, self.say), make_daemon
        self.max_attached, self.workers, self.poll_interval = max_attached, workers, poll_interval
        self.quantum, self.park_after, self.discover_every = quantum, park_after, discover_every
        self.stopping = threading.Event()
        self.connections = SharedConnections(keep=3 * max_attached)  # a store's three, kept for the next
        self._id = uuid.uuid4().hex  # its V8 contexts' keys: one per database
        self.slots: dict[StoreKey, Slot] = {}
        self._lock = threading.Condition()
        self._queue: deque[Slot] = deque()
        self._until_caught_up = False
        self._discovered = self._asked = 0.0
        self._warm = False

    def stop(self) -> None:
        """Finish the turns under way, give every store back and return from ``run()``."""
        self.stopping.set()
        with self._lock:
            self._lock.notify_all()

    def say(self, level: int, message: str, **fields: object) -> None:
        logs.say(logger, level, message, **fields)

    def run(self, *, until_caught_up: bool = False) -> bool:
        """Serve until stopped -- or, ``until_caught_up``, until every store's daemon has processed what was
        appended before it started (raising :class:`~jsproj.errors.ProjectionStoppedError` naming those
        with a projection stopped on an event). True when caught up, False when stopped first."""
        self._until_caught_up = until_caught_up
        self.warm()
        with self._lock:
            for slot in self.slots.values():  # (found by warm() before)
                slot.follower.until_caught_up = until_caught_up
        threads = [threading.Thread(target=self._work, name=f"jsproj fleet worker {n}", daemon=True)
                   for n in range(self.workers)]  # fmt: skip
        for thread in threads:
            thread.start()
        try:
            return self._orchestrate()
        finally:
            self.stop()
            for thread in threads:
                thread.join()
            for slot in self.slots.values():
                slot.close()
            self.lookout.close()
            self.connections.close()
            self._warm = False

    def warm(self) -> None:
        """Find the stores, and start the V8 workers the attached stores take in turn (``max_attached`` per
        database, fewer for fewer stores; each a context in which store after store gets an engine of its own:
        :func:`~jsproj.engine.sandbox.keep_warm`) -- ``run()`` does it first; before it, serving starts warm."""
        if self._warm:
            return
        self._discover(time.monotonic(), first=True)
        stores = Counter(tuple(s.daemon.deployed.limits[k] for k in ("timeout", "memory_limit", "context"))
                         for s in self.slots.values())  # fmt: skip
        for (timeout, memory_limit, context), count in sorted(stores.items()):
            keep_warm(min(self.max_attached, count), timeout=timeout, memory_limit=memory_limit, context=context)
        self._warm = True

    # -- the orchestrator ------------------------------------------------------------

    def _orchestrate(self) -> bool:
        while not self.stopping.is_set():
            now = time.monotonic()
            if now - self._discovered >= self.discover_every:
                self._discover(now)
            appended = self.lookout.drained()
            if appended or now - self._asked >= self.poll_interval:
                self._ask(now, wake=appended)
            self._tend(now)
            if self._until_caught_up and self._all_caught_up():
                return True
            self.lookout.wait(min(self._next_due() - time.monotonic(), self.poll_interval), self.stopping)
        return False

    def _discover(self, now: float, *, first: bool = False) -> None:
        """Find the stores: new ones get a slot, parked; those gone (of a database that answered) are parked for
        good."""
        self._discovered = now
        found, answered = self.lookout.find(first=first)
        with self._lock:
            for key in found:
                if key not in self.slots:
                    shared = Shared(self.stopping, self.connections, context=f"fleet {self._id} {key.dsn}")
                    self.slots[key] = Slot(key, self.make_daemon(key, shared), until_caught_up=self._until_caught_up)
                    if not first:
                        self.say(logging.INFO, f"serving {key.label}, a new store", store=key.label)
            for key in set(self.slots) - set(found):
                if self.slots[key].gone or key.dsn not in answered:
                    continue
                self.slots[key].gone = True
                self.say(logging.INFO, f"{key.label} is gone: no longer served", store=key.label)

    def _ask(self, now: float, *, wake: bool) -> None:
        """Ask the parked stores whether they have work (queueing those that do, room permitting); on
        ``wake`` (appends were notified), give every resting store a turn now."""
        self._asked = now
        with self._lock:
            if wake:
                for slot in self.slots.values():
                    if slot.state == "resting":
                        slot.due_at = now
            if self._attached() >= self.max_attached and not self._room_makers(now):
                return  # no store could be attached now: asking costs a statement over every parked one
            parked = [s for s in self.slots.values() if s.state == "parked" and not s.gone and not s.caught_up]
        if not parked:
            return
        asked = self.lookout.ask([slot.key for slot in parked])
        if asked.failed:
            self._discovered = 0.0  # a store renamed or dropped since the last look, or a database: look again
        for slot in parked:
            if slot.key in asked.failed:
                continue  # asked again at the next look
            if slot.key in asked.busy or slot.daemon.retention.due(now):
                self._want(slot, now)
            elif self._until_caught_up:
                slot.caught_up = True  # nothing to do: caught up without a connection

    def _want(self, slot: Slot, now: float) -> None:
        """A parked store has work: queue it if there is room, making room if it is due."""
        with self._lock:
            if slot.state != "parked":
                return
            if self._attached() >= self.max_attached and not self._make_room(now):
                return
            slot.state, slot.attached_at = "queued", now
            self._queue.append(slot)
            self._lock.notify()

    def _make_room(self, now: float) -> bool:
        """Park one attached store (under the lock): the one idle longest, else one served for a quantum."""
        chosen = self._room_makers(now)
        if chosen:
            self._park(chosen[0])
        return bool(chosen)

    def _room_makers(self, now: float) -> list[Slot]:
        """(Under the lock.) The attached stores that may be parked to make room, the first first: those idle,
        longest first, else those served for a quantum, longest first."""
        resting = sorted((s for s in self.slots.values() if s.state == "resting"), key=lambda s: s.busy_at)
        idle = [s for s in resting if now - s.busy_at >= min(self.quantum, self.park_after)]
        served = sorted((s for s in self.slots.values() if s.state in ("queued", "resting")
                         and now - s.attached_at >= self.quantum), key=lambda s: s.attached_at)  # fmt: skip
        return idle or served

    def _tend(self, now: float) -> None:
        """Resting stores whose turn is due are queued; those idle long, caught up or gone are parked."""
        with self._lock:
            for key, slot in list(self.slots.items()):
                if slot.state != "resting":
                    if slot.gone and slot.state == "parked":
                        slot.close()
                        del self.slots[key]
                    continue
                done = self._until_caught_up and slot.caught_up
                if slot.gone or done or now - max(slot.busy_at, slot.attached_at) >= self.park_after:
                    self._park(slot)
                elif slot.due_at <= now:
                    slot.state = "queued"
                    self._queue.append(slot)
                    self._lock.notify()

    def _park(self, slot: Slot) -> None:
        """(Under the lock.) A queued or resting store gives everything back."""
        if slot.state == "queued":
            self._queue.remove(slot)
        slot.park()

    def _attached(self) -> int:
        return sum(1 for s in self.slots.values() if s.state != "parked")

    def _all_caught_up(self) -> bool:
        with self._lock:
            slots = [s for s in self.slots.values() if not s.gone]
            if not all(s.caught_up and s.state in ("parked", "resting") for s in slots):
                return False
        stopped = sorted(f"{s.key.label} ({s.stopped})" for s in slots if s.stopped)
        if stopped:
            raise errors.ProjectionStoppedError("; ".join(stopped))
        return True

    def _next_due(self) -> float:
        with self._lock:
            due = [s.due_at for s in self.slots.values() if s.state == "resting"]
        return min([self._asked + self.poll_interval, self._discovered + self.discover_every, *due])

    # -- the workers ---------------------------------------------------------------

    def _work(self) -> None:
        """A worker: the next queued slot, one turn, then back in the queue (busy) or resting."""
        while True:
            with self._lock:
                while not self._queue and not self.stopping.is_set():
                    self._lock.wait(0.25)
                if self.stopping.is_set():
                    return
                slot = self._queue.popleft()
                slot.state = "running"
            turn = slot.turn(self.poll_interval)
            with self._lock:
                if turn == "busy" and not slot.gone:
                    slot.state = "queued"
                    self._queue.append(slot)
                    self._lock.notify()
                else:
                    slot.state = "resting"


def catalogs_for(dsns: Iterable[str], schemas: Iterable[str] | None) -> list[Catalog]:
    """A catalog per database: every store in each (``schemas`` None), or those named."""
    chosen = list(schemas) if schemas is not None else None
    return [Catalog(dsn, chosen) for dsn in dsns]
