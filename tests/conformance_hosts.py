"""The hosts the conformance suite runs every case in, behind one interface.

Each host takes a case folder and returns what the case's ``expected.json``
describes: ``{"views", "aggregates"}`` or ``{"error": {...}}``, plus the
projection descriptions. Later hosts (PostgreSQL engines) join this list.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from jsproj import errors
from jsproj.deploy import deploy
from jsproj.eventsfile import as_messages
from jsproj.live import aggregate
from jsproj.runtime.projections import Projections, read_folder
from jsproj.runtime.simulation import simulate
from jsproj.store import EventStore
from jsproj.views import export_views

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "conformance"
NODE = shutil.which("node")
NOW = "2026-01-01T00:00:00.000Z"


def events_file(case: Path) -> Path:
    found = [p for p in (case / "events.json", case / "events.jsonl") if p.exists()]
    assert len(found) == 1, f"{case.name} needs exactly one events.json or events.jsonl"
    return found[0]


#: Makes a fresh, migrated database and returns its DSN (the ``databases`` fixture).
Databases = Callable[[], str]


class Host(Protocol):
    name: str

    def run(self, case: Path, page_size: int, databases: Databases) -> dict[str, Any]: ...


@dataclass
class PythonHost:
    """The Python host: the sandboxed V8 worker driven by jsproj.runtime.simulation."""

    name: str = "python"

    def run(self, case: Path, page_size: int, databases: Databases) -> dict[str, Any]:
        try:
            with Projections.from_folder(case / "projections") as loaded:
                return dict(simulate(loaded, events_file(case), page_size=page_size, now=NOW))
        except errors.JsprojError as exc:
            return {"error": exc.to_dict()}

    def describe(self, case: Path) -> list[dict[str, Any]]:
        with Projections.from_folder(case / "projections") as loaded:
            return [{"name": i.name, "kind": i.kind, "lifecycle": i.lifecycle} for i in loaded.infos]


@dataclass
class NodeHost:
    """The Node.js host: js/bin/simulate.js in a real node process."""

    name: str = "node"

    def _node(self, *args: str) -> tuple[int, Any, str]:
        assert NODE, "node is not on the PATH"
        done = subprocess.run([NODE, *args], capture_output=True, text=True, timeout=120, check=False)
        return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr

    def run(self, case: Path, page_size: int, databases: Databases) -> dict[str, Any]:
        code, output, stderr = self._node(
            str(ROOT / "js" / "bin" / "simulate.js"),
            str(case / "projections"),
            str(events_file(case)),
            "--page-size",
            str(page_size),
            "--now",
            NOW,
        )
        assert output is not None, f"simulate.js printed nothing (exit {code}): {stderr}"
        if "error" in output:
            assert code == 1, "an error must exit with code 1"
            assert stderr.startswith("error: "), stderr
        else:
            assert code == 0, stderr
        return output

    def describe(self, case: Path) -> list[dict[str, Any]]:
        code, output, stderr = self._node(str(ROOT / "js" / "bin" / "describe.js"), str(case / "projections"))
        assert code == 0, stderr
        return [{"name": i["name"], "kind": i["kind"], "lifecycle": i["lifecycle"]} for i in output]


def stored_events(
    case: Path, dsn: str, page_size: int, before_append: Callable[[EventStore, Projections], None]
) -> None:
    """Load a case's projections, check its events like the simulation does, and append them to ``dsn``."""
    with Projections.from_folder(case / "projections") as loaded:
        records = loaded.normalize(events_file(case).read_text("utf-8"), now=NOW)
        with EventStore(dsn, max_size=2) as store:
            before_append(store, loaded)
            for message in as_messages(records, page_size):
                store.append(message)


@dataclass
class InlineHost:
    """Inline projections in a real PostgreSQL: deploy every projection inline with one engine, append, export."""

    engine: str

    @property
    def name(self) -> str:
        return f"inline-{self.engine}"

    def run(self, case: Path, page_size: int, databases: Databases) -> dict[str, Any]:
        dsn = databases()
        try:

            def deploy_inline(store: EventStore, loaded: Projections) -> None:
                deploy(store, read_folder(case / "projections"), engine=self.engine,
                       lifecycles=dict.fromkeys(loaded.names, "inline"))  # fmt: skip

            stored_events(case, dsn, page_size, deploy_inline)
            with EventStore(dsn, max_size=1) as store:
                return export_views(store)
        except errors.JsprojError as exc:
            return {"error": exc.to_dict()}


@dataclass
class AsyncHost:
    """Async projections: deploy every projection async, append, run a daemon until caught up, export.

    ``build``: the daemon builds the projections from the whole log (the
    in-memory fold); ``follow``: it is caught up before the appends and
    applies them page by page (documents read, applied and written).
    """

    mode: str

    @property
    def name(self) -> str:
        return f"async-{self.mode}"

    def run(self, case: Path, page_size: int, databases: Databases) -> dict[str, Any]:
        from jsproj.daemon import Daemon

        dsn = databases()
        try:

            def deploy_async(store: EventStore, loaded: Projections) -> None:
                deploy(store, read_folder(case / "projections"), lifecycles=dict.fromkeys(loaded.names, "async"),
                       on_error=dict.fromkeys(loaded.names, "stop"))  # fmt: skip
                if self.mode == "follow":
                    Daemon(dsn, page_size=page_size).run(until_caught_up=True)

            stored_events(case, dsn, page_size, deploy_async)
            stopped = None
            try:
                Daemon(dsn, page_size=page_size, poll_interval=0.05).run(until_caught_up=True)
            except errors.JsprojError as exc:
                stopped = exc
            with EventStore(dsn, max_size=1) as store:
                if stopped is not None:  # the projection stopped on an event: report that event's error
                    with store.pool.connection() as conn:
                        error = conn.execute("select error from pge_projection_progress where status = 'stopped' "
                                             "order by (error ->> 'position')::bigint limit 1").fetchone()  # fmt: skip
                    return {"error": error[0]} if error else {"error": stopped.to_dict()}
                return export_views(store)
        except errors.JsprojError as exc:
            return {"error": exc.to_dict()}


@dataclass
class LiveHost:
    """Live aggregation: every stream projection folded from the stored events on demand.

    Where it applies (cases without errors); views and aggregates come from
    the simulation, stream projections are replaced by live folds of every
    stream of their stream type.
    """

    name: str = "live"

    def run(self, case: Path, page_size: int, databases: Databases) -> dict[str, Any]:
        simulated = PythonHost().run(case, page_size, databases)
        if "error" in simulated:
            return simulated
        dsn = databases()
        stored_events(case, dsn, page_size, lambda store, loaded: None)
        views = dict(simulated["views"])
        with EventStore(dsn, max_size=1) as store, Projections.from_folder(case / "projections") as loaded:
            with store.pool.connection() as conn:
                streams = conn.execute("select id, type from pge_streams").fetchall()
            for info in loaded.infos:
                if info.kind != "stream":
                    continue
                folded = {}
                for stream_id, stream_type in streams:
                    if stream_type == info.stream_type:
                        document = aggregate(store, loaded, info.name, stream_id)
                        if document is not None:
                            folded[stream_id] = document
                views[info.name] = folded
        return {"views": views, "aggregates": simulated["aggregates"]}


def language_available(dsn: str, language: str) -> bool:
    """Whether PostgreSQL at ``dsn`` has the extension ``language``."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        return bool(
            conn.execute("select count(*) from pg_available_extensions where name = %s", (language,)).fetchone()[0]
        )


def require_language(dsn: str, language: str) -> None:
    """Skip unless PostgreSQL has the extension ``language`` (plv8, pljs); where it must, fail instead.

    ``make pg-extensions`` installs both (from the platform, else built from
    ../shared/pg-js); CI sets JSPROJ_REQUIRE_LANGUAGES so that a missing
    one is a failure, never a silent skip.
    """
    if language_available(dsn, language):
        return
    required = os.environ.get("JSPROJ_REQUIRE_LANGUAGES", "").split(",")
    if language in required:
        pytest.fail(f"{language} is not installed in this PostgreSQL, and JSPROJ_REQUIRE_LANGUAGES requires it")
    pytest.skip(f"{language} is not installed in this PostgreSQL (make pg-extensions installs it)")


#: The JavaScript procedural languages, each an in-database engine (sql/engines/javascript.sql).
LANGUAGES = ("plv8", "pljs")


HOSTS: list[Host] = [
    PythonHost(),
    NodeHost(),
    InlineHost("python"),
    InlineHost("plpython"),
    AsyncHost("build"),
    AsyncHost("follow"),
    LiveHost(),
]
DESCRIBING_HOSTS = [PythonHost(), NodeHost()]


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "expected.json").exists())


def check_against_expected(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Assert a host's output matches a case's expected.json."""
    if "error" in expected:
        assert "error" in actual, f"expected an error, got views: {json.dumps(actual)[:500]}"
        got = actual["error"]
        for key, want in expected["error"].items():
            if key == "stackIncludes":
                assert want in (got.get("stack") or ""), f"stack lacks {want!r}: {got.get('stack')}"
            elif key == "messageStartsWith":
                assert got["message"].startswith(want), got["message"]
            else:
                assert got.get(key) == want, f"error field {key}: {got.get(key)!r} != {want!r}"
        return
    assert "error" not in actual, f"unexpected error: {actual.get('error', {}).get('message')}"
    assert as_doubles(actual["views"]) == as_doubles(expected["views"])
    assert as_doubles(actual["aggregates"]) == as_doubles(expected["aggregates"])


def as_doubles(value: Any) -> Any:
    """JSON as JavaScript reads it: every number a double.

    PostgreSQL's jsonb writes 1e308 as 1 followed by 308 zeros; both are the
    same JSON number, and the same double in every host.
    """
    return json.loads(json.dumps(value), parse_int=float)


def without_stack(output: dict[str, Any]) -> dict[str, Any]:
    """What must be identical across hosts: the output, numbers as doubles, errors without stacks."""
    if "error" not in output:
        return as_doubles(output)
    return {"error": {k: v for k, v in output["error"].items() if k != "stack"}}
