"""Projection specs: given events, the views expected of them, checked in every host jsproj has.

A spec file (``specs/*.json``) holds one spec or a JSON array of them::

    {
      "name": "a party reaches Baerlon",
      "given": [{"id": "quest-1", "type": "Quest", "data": [{"$type": "QuestStarted", "members": ["Rand"]}]}],
      "expect": {
        "views": {"Party": {"quest-1": {"members": ["Rand"]}}},
        "aggregates": {"Traveled": {"traveled": 0}}
      }
    }

``given`` is a list of append messages or the name of an events file next to
the spec. Each projection named under ``expect`` must have exactly those
documents (projections not named are not checked); ``"error": {"projection",
"kind", "message"}`` expects the run to fail with a handler error whose
message contains ``message``. Missing stream ids, event ``$id`` s and
timestamps are assigned once (timestamps from ``now``, default
:data:`DEFAULT_NOW`), so every host sees the very same events.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql

from jsproj import errors
from jsproj.errors import SpecFileError
from jsproj.eventsfile import as_messages
from jsproj.runtime.bundle import lib_dir
from jsproj.runtime.projections import Projections, read_folder

DEFAULT_NOW = "2026-01-01T00:00:00.000Z"
EXPECT_KEYS = {"views", "aggregates", "error"}
SPEC_KEYS = {"name", "given", "expect", "now"}


@dataclass(frozen=True)
class Spec:
    """One spec: the events given and what is expected of them."""

    name: str
    file: Path
    given: list[dict[str, Any]]
    expect: dict[str, Any]
    now: str = DEFAULT_NOW


@dataclass
class SpecResult:
    """A spec's outcome in one host; ``problems`` are readable lines (a diff), empty when it passed."""

    spec: Spec
    host: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.name,
            "file": str(self.spec.file),
            "host": self.host,
            "passed": self.passed,
            "problems": self.problems,
        }


def load_specs(folder: str | os.PathLike[str]) -> list[Spec]:
    """Every spec in the ``*.json`` files of ``folder`` (sorted by file name), checked for format."""
    path = Path(folder)
    if not path.is_dir():
        raise SpecFileError(f"no such specs folder: {path}")
    specs: list[Spec] = []
    for file in sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file()):
        specs.extend(_read_spec_file(file))
    if not specs:
        raise SpecFileError(f"no specs (*.json) in {path}")
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SpecFileError(f"{path}: two specs are named {duplicates[0]!r}")
    return specs


def _read_spec_file(file: Path) -> list[Spec]:
    try:
        document = json.loads(file.read_text("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SpecFileError(f"{file}: not valid JSON: {exc}") from None
    items = document if isinstance(document, list) else [document]
    specs = []
    for n, item in enumerate(items, 1):
        where = f"{file}" + (f" (spec {n})" if isinstance(document, list) else "")
        if not isinstance(item, dict):
            raise SpecFileError(f"{where}: a spec is an object with given and expect")
        unknown = sorted(set(item) - SPEC_KEYS)
        if unknown:
            raise SpecFileError(f"{where}: unknown key {unknown[0]!r} (a spec has {', '.join(sorted(SPEC_KEYS))})")
        expect = item.get("expect")
        if not isinstance(expect, dict) or not expect:
            raise SpecFileError(f"{where}: expect must be an object with views, aggregates or error")
        unknown = sorted(set(expect) - EXPECT_KEYS)
        if unknown:
            raise SpecFileError(f"{where}: unknown expectation {unknown[0]!r} (use views, aggregates or error)")
        if "error" in expect and (set(expect) - {"error"} or not isinstance(expect["error"], dict)):
            raise SpecFileError(f"{where}: an expected error is an object, and comes without views or aggregates")
        for key in ("views", "aggregates"):
            if key in expect and not isinstance(expect[key], dict):
                raise SpecFileError(f"{where}: expect.{key} must be an object keyed by projection name")
        for name, documents in expect.get("views", {}).items():
            if not isinstance(documents, dict):
                raise SpecFileError(f"{where}: expect.views.{name} must be an object of documents by id")
        name = item.get("name") or (file.stem if len(items) == 1 else f"{file.stem} #{n}")
        if not isinstance(name, str):
            raise SpecFileError(f"{where}: name must be text")
        now = item.get("now", DEFAULT_NOW)
        if not isinstance(now, str):
            raise SpecFileError(f"{where}: now must be an ISO 8601 timestamp")
        specs.append(Spec(name=name, file=file, given=_given(item.get("given"), file, where), expect=expect, now=now))
    return specs


def _given(given: Any, file: Path, where: str) -> list[dict[str, Any]]:
    if isinstance(given, str):
        from jsproj.eventsfile import parse

        events_file = file.parent / given
        try:
            text = events_file.read_text("utf-8")
        except OSError as exc:
            raise SpecFileError(f"{where}: cannot read the given events file {events_file}: {exc.strerror}") from None
        try:
            return [message.body for message in parse(text)]
        except errors.InputError as exc:
            raise SpecFileError(f"{where}: {events_file}: {exc.message}") from None
    if not isinstance(given, list) or not all(isinstance(m, dict) for m in given):
        raise SpecFileError(f"{where}: given must be a list of append messages, or an events file name")
    return given


# -- hosts --------------------------------------------------------------------


class SpecHost(Protocol):
    """Runs a spec's (normalized) messages through projections; returns views or ``{"error": ...}``."""

    name: str

    def run(self, sources: list[dict[str, str]], folder: Path, messages: list[dict[str, Any]], now: str) -> dict: ...


@dataclass
class PythonSpecHost:
    """The Python simulation: the sandboxed V8 worker, documents in memory."""

    name: str = "python"

    def run(self, sources: list[dict[str, str]], folder: Path, messages: list[dict[str, Any]], now: str) -> dict:
        from jsproj.runtime.simulation import simulate

        try:
            with Projections(sources) as loaded:
                return dict(simulate(loaded, messages, now=now))
        except errors.JsprojError as exc:
            return {"error": exc.to_dict()}


@dataclass
class NodeSpecHost:
    """Node.js: the engine's own ``simulate.js`` in a ``node`` process."""

    node: str
    name: str = "node"

    def run(self, sources: list[dict[str, str]], folder: Path, messages: list[dict[str, Any]], now: str) -> dict:
        script = lib_dir().parent / "bin" / "simulate.js"
        with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as events:
            json.dump(messages, events)
            events.flush()
            done = subprocess.run(
                [self.node, str(script), str(folder), events.name, "--now", now],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        try:
            return json.loads(done.stdout)
        except ValueError:
            return {"error": {"kind": "NodeError", "message": (done.stderr or done.stdout).strip() or "node failed"}}


@dataclass
class DatabaseSpecHost:
    """A real store: deploy (inline projections on ``engine``), append, run the daemon, read the views back.

    Each spec runs in a schema of its own that is dropped afterwards.
    """

    dsn: str
    engine: str = "python"

    @property
    def name(self) -> str:
        return f"database-{self.engine}"

    def run(self, sources: list[dict[str, str]], folder: Path, messages: list[dict[str, Any]], now: str) -> dict:
        schema = f"jsproj_spec_{uuid.uuid4().hex[:12]}"
        try:
            return self._run(sources, messages, schema)
        except errors.JsprojError as exc:
            return {"error": exc.to_dict()}
        finally:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))

    def _run(self, sources: list[dict[str, str]], messages: list[dict[str, Any]], schema: str) -> dict:
        from jsproj.daemon import Daemon
        from jsproj.deploy import deploy
        from jsproj.live import aggregate
        from jsproj.store import EventStore
        from jsproj.views import export_views

        with EventStore(self.dsn, schema=schema, max_size=2) as store, Projections(sources) as loaded:
            deploy(store, sources, engine=self.engine, on_error=dict.fromkeys(loaded.names, "stop"))
            store.append_all(messages)
            try:
                Daemon(self.dsn, schema=schema, poll_interval=0.05).run(until_caught_up=True)
            except errors.JsprojError as exc:
                stopped = _stopped_error(store)
                return {"error": stopped or exc.to_dict()}
            views = export_views(store)
            streams = {m["id"]: m["type"] for m in reversed(messages)}
            for info in loaded.infos:
                if info.lifecycle != "live" or info.kind != "stream":
                    continue
                folded = {}
                for stream_id, stream_type in sorted(streams.items()):
                    if stream_type == info.stream_type:
                        document = aggregate(store, loaded, info.name, stream_id)
                        if document is not None:
                            folded[stream_id] = document
                views["views"][info.name] = folded
            return views


def _stopped_error(store: Any) -> dict[str, Any] | None:
    with store.pool.connection() as conn:
        row = conn.execute(
            "select error from pge_projection_progress where status = 'stopped' "
            "order by (error ->> 'position')::bigint limit 1"
        ).fetchone()
    return row[0] if row else None


def available_hosts(dsn: str | None = None, engines: Sequence[str] = ("python",)) -> list[SpecHost]:
    """Python always; Node when ``node`` is on the PATH; the database with each engine when ``dsn`` is given."""
    hosts: list[SpecHost] = [PythonSpecHost()]
    node = shutil.which("node")
    if node:
        hosts.append(NodeSpecHost(node))
    if dsn:
        hosts.extend(DatabaseSpecHost(dsn, engine) for engine in engines)
    return hosts


# -- running and comparing ----------------------------------------------------


def run_specs(
    projections_folder: str | os.PathLike[str], specs: Iterable[Spec], hosts: Sequence[SpecHost]
) -> list[SpecResult]:
    """Every spec in every host; a spec whose given events are invalid fails in all of them alike."""
    folder = Path(projections_folder)
    sources = read_folder(folder)
    results = []
    with Projections(sources) as loaded:
        for spec in specs:
            try:
                records = loaded.normalize(json.dumps(spec.given), now=spec.now)
            except errors.JsprojError as exc:
                results.extend(SpecResult(spec, h.name, [f"the given events are invalid: {exc}"]) for h in hosts)
                continue
            messages = as_messages(records)
            for host in hosts:
                output = host.run(sources, folder, messages, spec.now)
                results.append(SpecResult(spec, host.name, compare(spec.expect, output)))
    return results


def compare(expect: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """What differs between a spec's expectation and a host's output, as readable lines (empty: it passed)."""
    if "error" in expect:
        if "error" not in actual:
            return ["expected an error, but the events applied without one"]
        got, problems = actual["error"], []
        want = expect["error"]
        for key in ("projection", "kind"):
            if key in want and got.get(key) != want[key]:
                problems.append(f"expected the error's {key} to be {want[key]!r}, got {got.get(key)!r}")
        if "message" in want and str(want["message"]) not in str(got.get("message", "")):
            problems.append(f"expected the error message to contain {want['message']!r}, got {got.get('message')!r}")
        return problems
    if "error" in actual:
        error = actual["error"]
        where = f" (projection {error['projection']})" if error.get("projection") else ""
        return [f"unexpected {error.get('kind', 'error')}{where}: {error.get('message')}"]
    problems = []
    for key in ("views", "aggregates"):
        for name, wanted in sorted(expect.get(key, {}).items()):
            known = actual.get("views", {}).keys() | actual.get("aggregates", {}).keys()
            if name not in known:
                problems.append(f"there is no projection named {name!r} ({', '.join(sorted(known)) or 'none'})")
                continue
            got = actual.get(key, {}).get(name, {} if key == "views" else None)
            if _doubles(got) != _doubles(wanted):
                problems.extend(_diff(f"{key}.{name}", wanted, got))
    return problems


def _doubles(value: Any) -> Any:
    """JSON as JavaScript reads it: 1 and 1.0 are the same number."""
    return json.loads(json.dumps(value), parse_int=float)


def _diff(label: str, expected: Any, actual: Any) -> list[str]:
    lines = difflib.unified_diff(
        json.dumps(expected, indent=2, sort_keys=True, ensure_ascii=False).splitlines(),
        json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False).splitlines(),
        f"expected {label}",
        f"actual {label}",
        lineterm="",
    )
    return list(lines)
