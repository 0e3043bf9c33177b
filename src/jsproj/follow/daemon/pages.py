"""One page of the log applied to every unit at its start, with their progress, in one transaction.

A page (:mod:`jsproj.store.log`: the gap-safe read) is read once, as
record lines, for every unit (a projection, or a partition of one) whose
progress is at its start -- by the daemon's reading connection, while the
previous page is applied on its working one: one route, one document
load, one engine call and one write for all of them, in one transaction
with their progress. Events projection code fails on are dead-lettered or
stop their projection (its policy) in the same call: the engine takes a
failed event out of the documents it touched (js/lib/policies.js), so a
poison event costs no more than any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from jsproj import errors
from jsproj.engine.projections import BatchResult, CallOptions, Projections
from jsproj.follow.daemon import progress
from jsproj.follow.daemon.poison import letter
from jsproj.follow.daemon.progress import Unit
from jsproj.store.log import LinesPage
from jsproj.store.queries import value
from jsproj.store.translate import translate


def read_documents(conn: psycopg.Connection[Any], keys: Mapping[str, list[str]]) -> str:
    """The documents a route answer names, as JSON text (passed to the engine as it is), unlocked:
    only the holder of a unit's lock writes them."""
    return str(value(conn, "select pge_read_documents(%s)::text", (Jsonb(keys),))) if keys else "{}"


@dataclass(frozen=True)
class Applied:
    """What a page did: the events read, the projections it stopped, and where it left each unit (the last
    event it applied or skipped)."""

    count: int
    stopped: tuple[str, ...]
    reached: Mapping[Unit, tuple[str, int]]
    events: Mapping[Unit, int]  # the events each unit read (up to where it stopped)
    letters: Mapping[str, int] = dataclasses.field(default_factory=dict)  # dead letters written, by projection


@dataclass(frozen=True)
class Prepared:
    """A page the engine applied, to be committed: its writes, dead letters, stops and progress moves."""

    call: _Call
    result: BatchResult
    after: tuple[str, int]
    applied: Applied


def prepare(
    conn: psycopg.Connection[Any],
    projections: Projections,
    units: Sequence[Unit],
    on_error: Mapping[str, str],
    after: tuple[str, int],
    page: LinesPage,
    cache: Sequence[str] = (),
    *,
    epochs: Mapping[Unit, int],
    ready: Callable[[], None] = lambda: None,
    emits: Sequence[str] = (),
) -> Prepared:
    """Apply ``page``, the events after ``after``, to ``units`` (all at ``after``) in the engine; :func:`commit`
    writes it.

    ``on_error`` is each projection's policy: ``stop`` or ``dead-letter``;
    ``epochs`` each unit's epoch as the caller read it (the page is written
    only if it is still that);
    ``cache`` names the projections whose documents the sandbox keeps (they
    are as the database has them at ``after``): the caller drops them when
    the page is not committed. The connection is used only after
    ``ready()`` (to read the documents the sandbox does not keep), so that a
    caller may still be committing the page before on it. ``emits`` names
    the projections whose handlers may write events: :func:`commit` appends
    them with the page (sql/functions/emits.sql).
    """
    call = _Call(conn, projections, units, on_error, page, cache, ready)
    call.epochs = dict(epochs)
    call.emits = list(emits)
    try:
        result = call.run()
    except psycopg.Error as exc:
        raise _translated(exc) from exc
    return Prepared(call, result, after, call.plan(result, after))


def commit(conn: psycopg.Connection[Any], prepared: Prepared) -> Applied | None:
    """Write a prepared page and move its units' progress, in one statement that is its own transaction
    (``conn`` is in autocommit: the documents the page read need no transaction, as only this daemon
    writes them); None when a unit's progress moved under this daemon (a redeploy reset it, another
    stop) and nothing was written."""
    try:
        prepared.call.write(prepared.result, prepared.applied, prepared.after)
        return prepared.applied
    except psycopg.Error as exc:
        if exc.sqlstate == progress.MOVED:
            return None
        raise _translated(exc) from exc


def _translated(exc: psycopg.Error) -> Exception:
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return exc  # the daemon reconnects
    return translate(exc, "the daemon")


class _Call:
    """One engine call for a page and a group of units, around the time and memory limits projection code hits."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        projections: Projections,
        units: Sequence[Unit],
        on_error: Mapping[str, str],
        page: LinesPage,
        cache: Sequence[str],
        ready: Callable[[], None],
    ) -> None:
        self.conn, self.projections, self.units, self.page = conn, projections, units, page
        self.cache = list(cache)
        self.ready = ready
        self.policies = {u.name: "skip" if on_error.get(u.name) == "dead-letter" else "stop" for u in units}
        self.exclude: dict[str, list[int]] = {}
        self.stopped: dict[str, errors.JsprojError] = {}  # by name: the error (a limit: where the page started)
        self.stopped_at: dict[str, int] = {}  # by name: the position it stopped on, within the page
        self.letters: list[dict[str, Any]] = []  # dead letters of events that hit a limit, written with the page
        self.epochs: dict[Unit, int] = {}
        self.emits: list[str] = []  # the projections that may write events

    def _epoch(self, name: str) -> int:
        """The epoch of ``name``'s units in the call (one per projection)."""
        return next(self.epochs[u] for u in self.units if u.name == name)

    def _kept(self, found: dict[str, Any]) -> bool:
        """Whether a dead letter stays within where its projection's progress goes: not one of a projection
        stopped where the page began, nor after where one stopped."""
        name = found["projection"]
        if name not in self.stopped:
            return True
        return name in self.stopped_at and int(found["position"]) < self.stopped_at[name]

    def _skipped(self, error: errors.JsprojError) -> bool:
        """Whether the engine skipped the event ``error`` names and went on (a dead letter)."""
        return self.policies.get(str(error.projection)) == "skip" and not error.info.get("discarded")

    def _partitions(self, name: str) -> list[int]:
        """The partitions of ``name`` the call serves (an event skipped is skipped for their documents)."""
        return sorted(u.partition for u in self.units if u.name == name)

    def options(self) -> CallOptions:
        names = sorted(set(self.policies) - set(self.stopped))
        partitions: dict[str, tuple[int, list[int]]] = {}
        for unit in self.units:
            if unit.partitions > 1 and unit.name in names:
                partitions.setdefault(unit.name, (unit.partitions, []))[1].append(unit.partition)
        return CallOptions(
            only=names,
            on_error={n: self.policies[n] for n in names},
            exclude=self.exclude,
            partitions=partitions,
            cache=[n for n in self.cache if n in names],
            changes_text=True,
            emits=[n for n in self.emits if n in names],
        )

    def run(self) -> BatchResult:
        """Route, load and apply the page, around the sandbox's limits.

        A time or memory limit names the event that was running when it hit,
        which may not be the one at fault (the documents kept, or the page's
        size, may be what filled the sandbox): the page runs again without
        kept documents, then halved, and only an event that hits a limit alone
        is dead-lettered (or stops its projection).
        """
        while True:
            options = self.options()
            if not options.only:
                return BatchResult({}, [])
            try:
                routed = self.projections.route_or_apply(self.page.text, options)
                if isinstance(routed, BatchResult):
                    return routed  # the sandbox kept every document the page needed
                self.ready()
                return self.projections.apply_page(self.page.text, read_documents(self.conn, routed), options)
            except errors.SandboxLimitError as exc:
                if self.cache:
                    self._cold()
                elif self.page.count > 1:
                    self.page = self.page.first(self.page.count // 2)
                else:
                    self._limit(exc, options)
            except errors.StaleBatchError:
                self._cold()  # the worker was replaced between the calls, and its documents with it

    def _cold(self) -> None:
        """Run without kept documents (a restarted sandbox has none)."""
        self.projections.cache_drop(self.cache)
        self.cache = []

    def _limit(self, exc: errors.SandboxLimitError, options: CallOptions) -> None:
        """The page's one event hits a limit: dead-letter it (with the page) or stop its projection."""
        self.ready()
        culprit = exc.projection or (options.only[0] if options.only and len(options.only) == 1 else None)
        if culprit is None:
            culprit, exc = self._culprit(exc, options)
        position = exc.position
        again = position is not None and position in self.exclude.get(culprit, [])
        if self.policies.get(culprit) == "skip" and position is not None and not again:
            self.letters.append(letter(culprit, exc, self._partitions(culprit)))
            self.exclude.setdefault(culprit, []).append(position)
        else:
            self.stopped[culprit] = exc  # where the page started: the events before it are applied when resumed

    def _culprit(self, exc: errors.SandboxLimitError, options: CallOptions) -> tuple[str, errors.SandboxLimitError]:
        """The projection at fault, found by running each alone (a limit stops the whole call)."""
        assert options.only
        for name in options.only:
            alone = CallOptions(
                only=[name],
                on_error={name: self.policies[name]},
                exclude=self.exclude,
                partitions={n: p for n, p in options.partitions.items() if n == name},
            )
            try:
                routed = self.projections.route_or_apply(self.page.text, alone)
                if not isinstance(routed, BatchResult):
                    self.projections.apply_page(self.page.text, read_documents(self.conn, routed), alone)
            except errors.SandboxLimitError as found:
                return name, found
        return options.only[0], exc

    def plan(self, result: BatchResult, after: tuple[str, int]) -> Applied:
        """What the page does, from the engine's answer: which projections stop where, where each unit goes."""
        for error in result.errors:
            name = str(error.projection)
            if error.info.get("discarded") and name not in self.stopped:
                self.stopped[name] = error  # the engine dropped all it did in the call: stop where it began
            elif self.policies.get(name) != "skip" and name not in self.stopped:
                self.stopped[name] = error
                self.stopped_at[name] = int(error.info["position"])
        reached = {}
        for unit in self.units:
            if unit.name in self.stopped_at:
                reached[unit] = self.page.before(self.stopped_at[unit.name], after)
            elif unit.name in self.stopped:
                reached[unit] = (after, 0)
            else:
                reached[unit] = (self.page.last, self.page.count)
        letters: dict[str, int] = {}
        for found in self._letters(result):
            letters[found["projection"]] = letters.get(found["projection"], 0) + 1
        return Applied(
            self.page.count, tuple(sorted(self.stopped)), {unit: to for unit, (to, _) in reached.items()},
            {unit: count for unit, (_, count) in reached.items()}, letters,
        )  # fmt: skip

    def _letters(self, result: BatchResult) -> list[dict[str, Any]]:
        """The page's dead letters: events that hit a limit alone, and those the engine skipped."""
        skipped = [letter(str(e.projection), e, self._partitions(str(e.projection))) for e in result.errors
                   if self._skipped(e)]  # fmt: skip
        return [found for found in self.letters + skipped if self._kept(found)]

    def write(self, result: BatchResult, applied: Applied, after: tuple[str, int]) -> None:
        """The page's dead letters, documents, progress moves and stops, in one statement (pge_commit_page)."""
        letters = self._letters(result)
        units = self.units
        self.conn.execute(
            "select pge_commit_page(%s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                result.changes_text or "{}",
                Jsonb(letters),
                [u.name for u in units],
                [u.partition for u in units],
                [after[0] for _ in units],
                [after[1] for _ in units],
                [applied.reached[u][0] for u in units],
                [applied.reached[u][1] for u in units],
                [applied.events[u] for u in units],
                [self.epochs[u] for u in units],
                Jsonb({name: progress.stopping(error, self._epoch(name)) for name, error in self.stopped.items()}),
            ),
        )
