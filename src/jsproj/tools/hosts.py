"""The hosts that run projections, behind one interface: used by ``jsproj test`` and the conformance suite.

A host takes a :class:`Job` (a projections folder, events, the time that
stands for "now", a page size) and returns what a simulation returns,
``{"views": {...}, "aggregates": {...}}``, or ``{"error": {...}}`` (a jsproj
error's ``to_dict()``) when the run fails.

A job's events are either an events file as written, which each host then
parses itself (the Python sandbox, Node's ``simulate.js``, the engine's
``normalize`` before a store appends), or append messages already
normalized (ids and timestamps assigned once, so that every host sees the
very same events: what specs give).

- :class:`PythonHost`: the simulation in the sandboxed V8 worker;
- :class:`NodeHost`: ``js/bin/simulate.js`` in a ``node`` process;
- :class:`StoreHost`: a real store: deploy, append, the daemon for async
  projections, every view read back;
- :class:`LiveHost`: the simulation, with stream projections folded on
  demand from stored events (live aggregation).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
from psycopg import sql

from jsproj import errors
from jsproj.engine.bundle import lib_dir
from jsproj.engine.events_file import as_messages
from jsproj.engine.projections import ProjectionInfo, Projections, read_folder

if TYPE_CHECKING:
    from jsproj.store.sync import EventStore

DEFAULT_NOW = "2026-01-01T00:00:00.000Z"
#: A store location for one run: ``(dsn, schema)``, made on entering and cleaned up on leaving.
Scratch = Callable[[], AbstractContextManager[tuple[str, str]]]


@dataclass(frozen=True)
class Job:
    """What a host runs: the projections of ``folder`` over ``events``.

    ``events`` is an events file (a path: each host parses it) or normalized
    append messages. ``sources`` are the folder's files when already read.
    ``page_size``: events per engine call (and per appended message, for an
    events file); None leaves each host its default.
    """

    folder: Path
    events: Path | Sequence[Mapping[str, Any]]
    now: str = DEFAULT_NOW
    page_size: int | None = None
    sources: Sequence[Mapping[str, str]] | None = None

    def projection_sources(self) -> list[dict[str, str]]:
        if self.sources is None:
            return read_folder(self.folder)
        return [{"file": s["file"], "source": s["source"]} for s in self.sources]


class Host(Protocol):
    """Runs a job; returns views and aggregates, or ``{"error": ...}``."""

    @property
    def name(self) -> str: ...

    def run(self, job: Job) -> dict[str, Any]: ...


def _failed(exc: errors.JsprojError) -> dict[str, Any]:
    return {"error": exc.to_dict()}


@dataclass(frozen=True)
class PythonHost:
    """The Python simulation: the sandboxed V8 worker, documents in memory."""

    name: str = "python"

    def run(self, job: Job) -> dict[str, Any]:
        from jsproj.engine.simulation import DEFAULT_PAGE_SIZE, simulate

        try:
            with Projections(job.projection_sources()) as loaded:
                return dict(simulate(loaded, job.events, page_size=job.page_size or DEFAULT_PAGE_SIZE, now=job.now))
        except errors.JsprojError as exc:
            return _failed(exc)

    def describe(self, folder: Path) -> list[dict[str, str]]:
        """Each projection's name, kind and lifecycle, as the sandbox loads them."""
        with Projections.from_folder(folder) as loaded:
            return [{"name": i.name, "kind": i.kind, "lifecycle": i.lifecycle} for i in loaded.infos]


@dataclass(frozen=True)
class NodeHost:
    """Node.js: the engine's own ``simulate.js`` in a ``node`` process.

    The script's contract is checked too: exit code 0 with views, exit code 1
    with an error and a one-line ``error: ...`` on stderr; a run that breaks
    it is reported as a ``NodeError``.
    """

    node: str
    name: str = "node"
    timeout: float = 300

    def run(self, job: Job) -> dict[str, Any]:
        with _events_path(job.events) as events:
            options = [] if job.page_size is None else ["--page-size", str(job.page_size)]
            done = self._node("simulate.js", str(job.folder), str(events), "--now", job.now, *options)
        try:
            output = json.loads(done.stdout)
        except ValueError:
            output = None
        if not isinstance(output, dict):
            return _node_error((done.stderr or done.stdout).strip() or "node failed")
        if "error" in output and (done.returncode != 1 or not done.stderr.startswith("error: ")):
            stderr = done.stderr.strip()[:500]
            return _node_error(f"simulate.js printed an error with exit code {done.returncode} and stderr {stderr!r}")
        if "error" not in output and done.returncode != 0:
            return _node_error(f"simulate.js printed views but exited with {done.returncode}: {done.stderr.strip()}")
        return output

    def describe(self, folder: Path) -> list[dict[str, str]]:
        """Each projection's name, kind and lifecycle, as Node loads them (``describe.js``)."""
        done = self._node("describe.js", str(folder))
        if done.returncode != 0:
            raise errors.JsprojError(f"describe.js failed (exit {done.returncode}): {done.stderr.strip()}")
        return [{key: str(info[key]) for key in ("name", "kind", "lifecycle")} for info in json.loads(done.stdout)]

    def _node(self, script: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [self.node, str(lib_dir().parent / "bin" / script), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=self.timeout, check=False)


def _node_error(message: str) -> dict[str, Any]:
    return {"error": {"kind": "NodeError", "message": message}}


@contextmanager
def _events_path(events: Path | Sequence[Mapping[str, Any]]) -> Iterator[Path]:
    """An events file as it is, or messages written to a temporary one."""
    if isinstance(events, Path):
        yield events
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as file:
        json.dump(list(events), file)
        file.flush()
        yield Path(file.name)


@contextmanager
def _schema_in(dsn: str) -> Iterator[tuple[str, str]]:
    schema = f"jsproj_spec_{uuid.uuid4().hex[:12]}"
    try:
        yield dsn, schema
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))


def schemas_in(dsn: str) -> Scratch:
    """Each run in a schema of its own in the database at ``dsn``, dropped afterwards."""
    return partial(_schema_in, dsn)


def _messages(loaded: Projections, job: Job) -> list[dict[str, Any]]:
    """The job's append messages: an events file checked and normalized as a simulation does, runs of
    ``page_size`` events; normalized messages as they are."""
    if not isinstance(job.events, Path):
        return [dict(message) for message in job.events]
    records = loaded.normalize(job.events.read_text("utf-8"), now=job.now)
    return as_messages(records) if job.page_size is None else as_messages(records, job.page_size)


def _append(store: EventStore, messages: list[dict[str, Any]], each: bool) -> None:
    if each:
        for message in messages:
            store.append(message)
    else:
        store.append_all(messages)


def _append_async(dsn: str, schema: str, messages: list[dict[str, Any]], each: bool) -> None:
    """:func:`_append` through the asyncio store."""
    import asyncio

    from jsproj.store.aio import AsyncEventStore

    async def appending() -> None:
        async with AsyncEventStore(dsn, schema=schema, max_size=2) as store:
            if each:
                for message in messages:
                    await store.append(message)
            else:
                await store.append_all(messages)

    asyncio.run(appending())


def _folded(store: EventStore, loaded: Projections, infos: Sequence[ProjectionInfo]) -> dict[str, dict[str, Any]]:
    """Live aggregation: each stream projection's documents folded from the stored events of its streams."""
    from jsproj.projections.live import aggregate

    with store.connection() as conn:
        streams = conn.execute("select id, type from pge_streams order by id").fetchall()
    views: dict[str, dict[str, Any]] = {}
    for info in infos:
        documents = views.setdefault(info.name, {})
        for stream_id, stream_type in streams:
            if stream_type == info.stream_type:
                document = aggregate(store, loaded, info.name, stream_id)
                if document is not None:
                    documents[stream_id] = document
    return views


def _stopped_error(store: EventStore) -> dict[str, Any] | None:
    """The error of the first event a stopped projection stopped on, if one stopped."""
    with store.connection() as conn:
        row = conn.execute(
            "select error from pge_projection_progress where status = 'stopped' "
            "order by (error ->> 'position')::bigint limit 1"
        ).fetchone()
    return dict(row[0]) if row and row[0] is not None else None


@dataclass(frozen=True)
class StoreHost:
    """A real store: deploy, append, run the daemon for async projections, read every view back.

    ``scratch`` gives each run its own place (a database, or a schema that is
    dropped afterwards: :func:`schemas_in`). ``engine`` runs the inline
    projections. ``lifecycle`` deploys every projection ``inline`` or
    ``async``; None keeps each one's own (live stream projections are then
    folded from the stored events). ``follow``: the daemon is caught up
    before the appends and applies them page by page, instead of building
    the projections from the whole log. ``append_each``: one append per
    message, each its own transaction; else one append of them all.
    ``asyncio``: the appends go through :class:`jsproj.store.aio.AsyncEventStore`.
    A projection stops on its first failing event: the run reports that
    event's error.
    """

    scratch: Scratch
    engine: str = "python"
    lifecycle: str | None = None
    follow: bool = False
    append_each: bool = False
    asyncio: bool = False

    @property
    def name(self) -> str:
        if self.lifecycle == "async":
            return "async-follow" if self.follow else "async-build"
        if self.lifecycle == "inline":
            return f"inline-{self.engine}" + ("-asyncio" if self.asyncio else "")
        return f"database-{self.engine}"

    def run(self, job: Job) -> dict[str, Any]:
        with self.scratch() as (dsn, schema):
            try:
                return self._run(job, dsn, schema)
            except errors.JsprojError as exc:
                return _failed(exc)

    def _run(self, job: Job, dsn: str, schema: str) -> dict[str, Any]:
        from jsproj.projections.deploy import deploy
        from jsproj.projections.views import export_views
        from jsproj.store.sync import EventStore

        sources = job.projection_sources()
        with Projections(sources) as loaded, EventStore(dsn, schema=schema, max_size=2) as store:
            messages = _messages(loaded, job)
            lifecycles = {info.name: self.lifecycle or info.lifecycle for info in loaded.infos}
            stop = dict.fromkeys(lifecycles, "stop")
            deploy(store, sources, engine=self.engine, lifecycles=lifecycles, on_error=stop)
            catch_up = "async" in lifecycles.values()
            if catch_up and self.follow:
                self._catch_up(dsn, schema, job)
            if self.asyncio:
                _append_async(dsn, schema, messages, self.append_each)
            else:
                _append(store, messages, self.append_each)
            if catch_up:
                try:
                    self._catch_up(dsn, schema, job)
                except errors.JsprojError as exc:
                    return {"error": _stopped_error(store) or exc.to_dict()}
            views = export_views(store)
            live = [i for i in loaded.infos if i.kind == "stream" and lifecycles[i.name] == "live"]
            views["views"].update(_folded(store, loaded, live))
            return views

    @staticmethod
    def _catch_up(dsn: str, schema: str, job: Job) -> None:
        from jsproj.follow.daemon import DEFAULT_PAGE_SIZE, Daemon

        page_size = job.page_size or DEFAULT_PAGE_SIZE
        Daemon(dsn, schema=schema, page_size=page_size, poll_interval=0.05).run(until_caught_up=True)


@dataclass(frozen=True)
class LiveHost:
    """Live aggregation: the simulation's views and aggregates, with every stream projection replaced by
    live folds of the stored events of its streams (appended one message at a time)."""

    scratch: Scratch
    name: str = "live"

    def run(self, job: Job) -> dict[str, Any]:
        from jsproj.engine.simulation import DEFAULT_PAGE_SIZE, simulate
        from jsproj.store.sync import EventStore

        try:
            loaded = Projections(job.projection_sources())
        except errors.JsprojError as exc:
            return _failed(exc)
        with loaded:  # one sandbox: the simulation, then the folds
            try:
                simulated = simulate(loaded, job.events, page_size=job.page_size or DEFAULT_PAGE_SIZE, now=job.now)
            except errors.JsprojError as exc:
                return _failed(exc)
            with self.scratch() as (dsn, schema), EventStore(dsn, schema=schema, max_size=2) as store:
                _append(store, _messages(loaded, job), each=True)
                views = dict(simulated["views"])
                views.update(_folded(store, loaded, [i for i in loaded.infos if i.kind == "stream"]))
        return {"views": views, "aggregates": simulated["aggregates"]}
