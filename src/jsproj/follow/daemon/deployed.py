"""What a daemon knows of the deployed async projections: their definitions, their code in a sandbox, and the
documents the sandbox keeps between pages.

It outlives the daemon's connections: a reconnect reads the definitions
again but keeps the sandbox while the deployed code is the same generation.
The documents the sandbox keeps (``js/lib/cache.js``) are those of the
projections this daemon alone writes; each is kept as of a position in the
log, and dropped whenever another may have written them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from jsproj import errors
from jsproj.engine.projections import Projections
from jsproj.follow.daemon.progress import Progress, Unit
from jsproj.store.python_engine import deployed_sources


@dataclass(frozen=True)
class Definition:
    """What the daemon needs of a deployed async projection."""

    kind: str
    on_error: str
    partitions: int
    emits: bool = False  # deployed with --emit: its handlers may write events


class Deployed:
    """The async projections this daemon may work on (``names``: some of them; None: all)."""

    def __init__(self, names: set[str] | None, limits: dict[str, Any]) -> None:
        self.names, self.limits = names, limits
        self.definitions: dict[str, Definition] = {}
        self._projections: Projections | None = None
        self._generation: int | None = None
        self._cached_at: dict[str, tuple[str, int]] = {}  # where the documents the sandbox keeps are as of
        self._caching = False  # a page was sent with documents to keep since the sandbox last dropped them all
        self._restarts = 0  # the sandbox restarts of the projections closed since the start

    @property
    def restarts(self) -> int:
        """How often the V8 worker was restarted since the start (a limit hit, a crash)."""
        current = self._projections
        return self._restarts + (current.sandbox.restarts if current is not None else 0)

    @property
    def projections(self) -> Projections:
        """The deployed code, loaded (there is some while any async projection is deployed)."""
        if self._projections is None:
            raise errors.InternalError("no projection code is loaded: nothing is deployed")
        return self._projections

    def refresh(self, work: psycopg.Connection[Any]) -> bool:
        """Read the deployed definitions (loading their code again after a redeploy); True when they changed."""
        rows = work.execute(
            """select e.generation, d.name, d.kind, d.on_error, d.partitions, d.emits
               from pge_engine e left join pge_projection_definitions d on d.lifecycle = 'async' order by d.name"""
        ).fetchall()
        generation = rows[0][0] if rows else 0
        definitions = {
            name: Definition(kind, on_error, partitions, emits)
            for _, name, kind, on_error, partitions, emits in rows
            if name is not None and (not self.names or name in self.names)
        }
        changed = definitions != self.definitions or generation != self._generation
        self.definitions = definitions
        if generation != self._generation:
            self.close()
            sources = deployed_sources(work)
            if sources:
                self._projections = Projections(sources, **self.limits)
            self._generation = generation
        work.commit()
        return changed

    def units(self) -> list[Unit]:
        return [
            Unit(name, partition, definition.partitions)
            for name, definition in sorted(self.definitions.items())
            for partition in range(definition.partitions)
        ]

    def policies(self, names: Iterable[str]) -> dict[str, str]:
        """Each projection's error policy (skip, stop, ...)."""
        return {name: self.definitions[name].on_error for name in names}

    def emitters(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` whose handlers may write events (deployed with --emit)."""
        return sorted({name for name in names if self.definitions[name].emits})

    def cache_for(self, group: Sequence[Progress], running: Sequence[Progress]) -> list[str]:
        """The group's projections whose documents the sandbox may keep: every unit of the projection this
        daemon holds is in the group, and what it kept is as of the group's position (else it is dropped)."""
        names = sorted({p.unit.name for p in group})
        spread = {p.unit.name for p in running if p not in group}
        self.forget([n for n in names if n in spread or self._cached_at.get(n) != group[0].after])
        kept = [n for n in names if n not in spread]
        self._caching = self._caching or bool(kept)
        return kept

    def kept(self, names: Iterable[str], at: tuple[str, int]) -> None:
        """The documents of ``names`` the sandbox keeps are as of ``at`` now."""
        self._cached_at.update(dict.fromkeys(names, at))

    def forget(self, names: Iterable[str] | None = None) -> None:
        """Drop the documents the sandbox keeps for ``names`` (None: all of them)."""
        chosen = None if names is None else list(names)
        if chosen == []:
            return
        for name in list(self._cached_at) if chosen is None else chosen:
            self._cached_at.pop(name, None)
        if self._projections is not None and self._caching:  # (else there is nothing to drop: no call)
            self._projections.cache_drop(chosen)
            self._caching = self._caching and chosen is not None

    def close(self) -> None:
        """Close the sandbox (the next refresh loads the code again)."""
        if self._projections is not None:
            self._restarts += self._projections.sandbox.restarts
            self._projections.close()
            self._projections = None
        self._generation = None
        self._cached_at.clear()
        self._caching = False
