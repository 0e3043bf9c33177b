"""The daemon on its connections: rounds of heartbeat, balance, builds, retries, versions and pages.

Made by :meth:`Daemon.attach <jsproj.follow.daemon.loop.Daemon.attach>` each
time the daemon connects, and dropped with the connections: what it holds
(the units' locks, the progress read, the pipeline's pages, a version being
built) does not outlive them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from jsproj.errors import ProjectionStoppedError
from jsproj.follow.daemon import progress
from jsproj.follow.daemon.build import build
from jsproj.follow.daemon.deployed import Deployed
from jsproj.follow.daemon.hooks import DaemonHooks
from jsproj.follow.daemon.leases import Balanced, Leases
from jsproj.follow.daemon.pages import Applied, prepare
from jsproj.follow.daemon.pipeline import Pipeline, Undone
from jsproj.follow.daemon.poison import retry_dead_letters
from jsproj.follow.daemon.progress import Progress, caught_up_blockers
from jsproj.follow.daemon.retention import RetentionAgent
from jsproj.follow.daemon.session import Session
from jsproj.follow.daemon.version_jobs import VersionJobs
from jsproj.follow.daemon.versions import waiting
from jsproj.follow.engine import Waker
from jsproj.store.log import END, HIGH_WATER

BALANCE_SECONDS = 1.0  # how often the share of units is checked (at once when the definitions change)
CHECK_SECONDS = 0.5  # how often definitions and progress are read again while pages go well


class Owner(Protocol):
    """What the connected daemon needs of its daemon (:class:`~jsproj.follow.daemon.loop.Daemon`): its settings, what
    outlives the connections, whom to tell."""

    dsn: str
    schema: str
    id: str
    page_size: int
    poll_interval: float
    deployed: Deployed
    hooks: DaemonHooks
    stopping: threading.Event
    retention: RetentionAgent

    def say(self, level: int, message: str, **fields: object) -> None: ...

    def built(self, name: str, events: int) -> None: ...

    def applied(self, name: str, events: int) -> None: ...


class Connected:
    """The daemon's work between a connect and a disconnect, a round per step (see the module)."""

    def __init__(self, daemon: Owner, session: Session, leases: Leases) -> None:
        self.daemon, self.session, self.leases = daemon, session, leases
        self.deployed = daemon.deployed
        self.waker = Waker(daemon.poll_interval)
        self.pipeline = Pipeline(session.reader, session.work, daemon.page_size, self._undone, self._committed)
        build_with = {"limits": self.deployed.limits, "page_size": daemon.page_size}
        self.versions = VersionJobs(daemon.dsn, daemon.schema, daemon.id, build_with, daemon.built, daemon.say)
        self.known: list[Progress] | None = None  # the held units' progress: read when due, then moved by pages
        self._checked = self._balanced = 0.0
        self._told_idle = False  # said once per connection that nothing is deployed

    # -- the follower engine's side -------------------------------------------------

    def high_water(self) -> tuple[str, int] | None:
        """The latest event committed now, in (transaction, position) order."""
        self.pipeline.settle()
        row = self.session.work.execute(HIGH_WATER).fetchone()
        self.session.work.commit()
        return (row[0], row[1]) if row else None

    def step(self, target: object) -> bool:
        """One round: heartbeat; definitions, balance and progress when due; then a piece of work; False when
        there was none."""
        now = time.monotonic()
        self.session.heartbeat(now)
        if self.known is None or now - self._checked >= CHECK_SECONDS:
            self._check(now)
        busy = self._work(self.known or []) if self.leases.held else False
        if self.daemon.retention.due(now):
            self.pipeline.settle()  # (its page committed: the rules' erasures touch the progress rows)
            self.daemon.retention.run(self.session.work, now)
        if busy:
            self.waker.worked()
        self.daemon.hooks.round_done(frozenset(self.leases.held))
        return busy

    def caught_up(self, target: tuple[str, int] | None, busy: bool) -> bool:
        """Worth asking the database (which waits for the page being committed) after an idle round, or once
        every unit held is known to have reached ``target``; then whether every projection has."""
        if busy and target is not None:
            reached = (int(target[0]), target[1])
            if self.known is None or any(p.order < reached for p in self.known if p.status == "running"):
                return False
        if self.versions.busy:
            return False  # a new version to build and switch to, beside a held projection
        self.pipeline.settle()
        lagging = caught_up_blockers(self.session.work, list(self.deployed.definitions), target)
        self.session.work.commit()
        stopped = sorted({name for name, status in lagging if status == "stopped"})
        if stopped:
            raise ProjectionStoppedError(f"cannot catch up: {', '.join(stopped)} stopped on an event (see "
                                         "`jsproj status`; `jsproj retry` resumes)")  # fmt: skip
        return not lagging

    def idle(self) -> None:
        """Sleep until events are appended (NOTIFY) or the poll interval passes -- briefly, after recent work."""
        brisk = self.rest()
        self.waker.wait(self.session.control, self.daemon.stopping, brisk=brisk)

    def rest(self) -> bool:
        """Between an idle round and the next: the page in flight committed, pages small again after an idle
        spell. True while brisk (work was recent: poll again soon)."""
        self.pipeline.settle()
        brisk = self.waker.brisk or self.versions.building is not None
        if not brisk:
            self.pipeline.relax()
        return brisk

    def detach(self, *, clean: bool) -> None:
        self.versions.close()  # it needs the projection's lock, which goes with the control connection
        self.pipeline.close()
        self.session.close(clean=clean)
        self.leases.held.clear()  # session locks do not outlive a connection

    # -- the round's parts -----------------------------------------------------------

    def _check(self, now: float) -> None:
        """Read the definitions, balance when due, read the held units' progress and waiting versions."""
        self.pipeline.settle()
        work = self.session.work
        changed = self.deployed.refresh(work)
        if not self.deployed.definitions and not self._told_idle:
            self._told_idle = True
            schema = self.daemon.schema
            self.daemon.say(logging.INFO, f"no async projections are deployed in schema {schema}: waiting for a "
                                          "deploy of some (.async(), or --lifecycle NAME=async)")  # fmt: skip
        if changed or not self.leases.held or now - self._balanced >= BALANCE_SECONDS:
            self._said(self.leases.balance(self.deployed.units()))
            self._balanced = now
            self.daemon.hooks.holding(frozenset(self.leases.held))  # healthy before a first long build ends
        held = sorted(self.leases.held)
        self.known = progress.read(work, held) if held else []
        self.versions.waiting = waiting(work, sorted({u.name for u in held if u.partition == 0}))
        work.commit()
        self._checked = now

    def _said(self, balanced: Balanced) -> None:
        for unit in balanced.taken:
            self.daemon.say(logging.INFO, f"working on {unit}", projection=unit.name, partition=unit.partition)
        for unit in balanced.left:
            self.deployed.forget([unit.name])  # its next holder writes them
            self.daemon.say(logging.INFO, f"left {unit} to another daemon", projection=unit.name,
                            partition=unit.partition)  # fmt: skip
        if balanced.taken or balanced.left:
            self.known = None

    def _work(self, rows: list[Progress]) -> bool:
        """Builds first, requested retries next, then a page for the least advanced group; False when idle.

        ``rows`` is the held units' progress as last read, and moved since by this daemon's pages.
        """
        building = sorted({p.unit.name for p in rows if p.status == "build" and p.unit.partition == 0})
        if building or any(row.retry for row in rows):
            self.pipeline.settle()  # the work connection is this thread's again
        if building:
            self.known = None
            if self.versions.building in building:
                self.versions.end()  # a redeploy or a rebuild replaced it, and the build needs its staging table
            self._build(building)
            return True
        switched = self._tend_version()
        retried = 0
        for row in rows:
            if row.retry and row.status == "running":
                self.known = None
                retried += retry_dead_letters(self.session.work, self.deployed.projections, row.unit,
                                              requested_only=True)  # fmt: skip
                self.deployed.forget([row.unit.name])
        return self._follow([p for p in rows if p.status == "running"]) or retried > 0 or switched

    def _build(self, names: list[str]) -> None:
        work = self.session.work
        building = progress.building(work, names)
        work.commit()
        self.deployed.forget(building)
        with self.session.beating(time.monotonic, self.daemon.hooks.working):
            build(work, self.deployed.projections, building, self.deployed.policies(building), self.daemon.page_size,
                  on_progress=self.daemon.built, stop=self.daemon.stopping)  # fmt: skip
        letters = work.execute(
            "select projection, count(*) from pge_dead_letters where projection = any(%s) group by projection",
            (building,),
        ).fetchall()
        self._skipped(dict(letters), " in its build")

    def _tend_version(self) -> bool:
        """Start or switch a new version between two pages; True when it switched."""
        held = {unit.name for unit in self.leases.held}
        tried = self.versions.tend(held, self.pipeline.settle)
        if tried is None:
            return False
        self.known = None
        if tried.switched:
            self.daemon.say(logging.INFO, f"{tried.name} is at version {tried.version} now", projection=tried.name,
                            version=tried.version)  # fmt: skip
            self.deployed.forget([tried.name])  # the sandbox keeps the old version's documents
            self.pipeline.drop_read_ahead()
        return tried.switched

    def _follow(self, running: list[Progress]) -> bool:
        """Serve the least advanced group of units at one position, up to where the next group is."""
        if not running:
            return False
        positions = sorted({p.order for p in running})
        group = [p for p in running if p.order == positions[0]]
        following = next((p for p in running if p.order == positions[1]), None) if len(positions) > 1 else None
        page = self.pipeline.page(group[0].after, following.after if following else END)
        if page is None:
            return False
        units = [p.unit for p in group]
        cache = self.deployed.cache_for(group, running)
        try:
            prepared = prepare(self.session.work, self.deployed.projections, units,
                               self.deployed.policies(u.name for u in units), group[0].after, page, cache,
                               epochs={p.unit: p.epoch for p in group}, ready=self.pipeline.settled,
                               emits=self.deployed.emitters(u.name for u in units))  # fmt: skip
            self.pipeline.settled()  # the page before is committed: this one may follow it
        except BaseException as exc:
            self._undone(cache)
            if isinstance(exc, Undone):
                return False
            raise
        applied = prepared.applied
        self.pipeline.commit(prepared, cache)
        self.deployed.kept([n for n in cache if n not in applied.stopped], prepared.call.page.last)
        if self.known is not None:
            self.known = [self._moved(p, applied) for p in self.known] if not applied.stopped else None
        if applied.count < page.count:  # the page was cut around a limit: read at most that until idle
            self.pipeline.cut(applied.count)
        for name in sorted({u.name for u in units}):
            self.daemon.applied(name, applied.count)
        return True

    @staticmethod
    def _moved(row: Progress, applied: Applied) -> Progress:
        """A unit's progress after a page: where the page left it."""
        return dataclasses.replace(row, after=applied.reached[row.unit]) if row.unit in applied.reached else row

    def _undone(self, kept: Sequence[str]) -> None:
        """A page failed or was undone: the documents kept for it are dropped, the progress read again."""
        self.deployed.forget(kept)
        self.known = None

    def _committed(self, applied: Applied) -> None:
        self.daemon.hooks.page_committed(applied)
        self._skipped(applied.letters)
        for name in applied.stopped:
            self.daemon.say(logging.ERROR, f"{name} stopped on an event (see `jsproj status`; `jsproj retry {name}` "
                                           "resumes)", projection=name)  # fmt: skip

    def _skipped(self, letters: Mapping[str, int], during: str = "") -> None:
        """Say, as a warning, how many events each projection skipped (dead-lettered)."""
        for name, count in sorted(letters.items()):
            self.daemon.say(logging.WARNING, f"{name} skipped {count} event{'s' if count != 1 else ''} it failed on"
                                             f"{during} (`jsproj dead-letters --projection {name}`)",
                            projection=name, dead_letters=count)  # fmt: skip
