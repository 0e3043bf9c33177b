"""What the conformance suite adds to the hosts of jsproj.tools.hosts: its cases, its hosts by name, its checks.

Each host takes a case's projections and its events file as written (each
host parses it itself) and returns what the case's ``expected.json``
describes: ``{"views", "aggregates"}`` or ``{"error": {...}}``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from contextlib import nullcontext
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from jsproj import errors
from jsproj.engine.events_file import event_count, parse
from jsproj.tools.hosts import Host, Job, LiveHost, NodeHost, PythonHost, Scratch, StoreHost

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "conformance"
NODE = shutil.which("node")
NOW = "2026-01-01T00:00:00.000Z"
#: Cases with at most this many events also run at page size 1 (one event per engine call and per append).
SMALL = 50

#: Makes a fresh, migrated database and returns its DSN (the ``databases`` fixture).
Databases = Callable[[], str]

#: The hosts every case runs in. The Python simulation is the reference the others are compared with.
HOST_NAMES = (
    "python",
    "node",
    "inline-python",
    "inline-python-asyncio",
    "inline-plpython",
    "async-build",
    "async-follow",
    "live",
)

#: The JavaScript procedural languages, each an in-database engine (sql/engines/javascript.sql).
LANGUAGES = ("plv8", "pljs")


def events_file(case: Path) -> Path:
    found = [p for p in (case / "events.json", case / "events.jsonl") if p.exists()]
    assert len(found) == 1, f"{case.name} needs exactly one events.json or events.jsonl"
    return found[0]


def job(case: Path, page_size: int) -> Job:
    """A case as a host's job: its projections over its events file as written."""
    return Job(case / "projections", events_file(case), now=NOW, page_size=page_size)


#: The hosts that also run the small cases one event per page: the engine's own loop (in the Python host), and an
#: append per message. The others add no way of paging of their own: page size 1000 shows they store what those
#: do (the daemon's pages of one event: tests/follow/test_daemon.py and the batching property of tests/conformance/test_batching.py).
#: (Node runs the same js/lib/simulate.js paging as the Python host, a node process a page size: it runs 1000 only.)
ONE_EVENT_PAGES = ("python", "inline-python")


def page_sizes(case: Path, host: str = "python") -> tuple[int, ...]:
    """1000 for every case; 1 too for the small ones in the hosts of ONE_EVENT_PAGES (a file that does not
    parse is a small hand-written one)."""
    if host not in ONE_EVENT_PAGES:
        return (1000,)
    try:
        events = event_count([message.body for message in parse(events_file(case).read_text("utf-8"))])
    except errors.JsprojError:
        events = 0
    return (1, 1000) if events <= SMALL else (1000,)


def in_fresh_databases(databases: Databases) -> Scratch:
    """Each run in a fresh migrated database of the test's, in its public schema."""
    return lambda: nullcontext((databases(), "public"))


def hosts(databases: Databases, each: bool = True) -> dict[str, Host]:
    """The hosts of :data:`HOST_NAMES`, storing into fresh databases; stores append one message at a time
    (``each``), else all of them in one ``append_all`` (see :func:`appends_each`)."""
    assert NODE, "node is not on the PATH"
    scratch = in_fresh_databases(databases)
    made: list[Host] = [
        PythonHost(),
        NodeHost(NODE, timeout=120),
        StoreHost(scratch, engine="python", lifecycle="inline", append_each=each),
        StoreHost(scratch, engine="python", lifecycle="inline", append_each=each, asyncio=True),
        StoreHost(scratch, engine="plpython", lifecycle="inline", append_each=each),
        StoreHost(scratch, lifecycle="async", append_each=each),
        StoreHost(scratch, lifecycle="async", follow=True, append_each=each),
        LiveHost(scratch),
    ]
    assert tuple(host.name for host in made) == HOST_NAMES
    return {host.name: host for host in made}


def language_host(databases: Databases, language: str, each: bool = True) -> StoreHost:
    """Every projection inline on the in-database engine ``language`` (plv8, pljs)."""
    return StoreHost(in_fresh_databases(databases), engine=language, lifecycle="inline", append_each=each)


def appends_each(case: Path) -> bool:
    """Whether stores append the case one message at a time, each its own transaction: the small cases (those
    that also run one event per page). A large case's messages (many-streams: 1,500) go in one ``append_all``,
    the path of ``jsproj append``: appending each again would show nothing the small cases do not, at the cost
    of a transaction per message in every storing host."""
    return 1 in page_sizes(case)


@cache
def reference(case: str) -> dict[str, Any]:
    """The Python simulation's output for a case at page size 1000, as compared across hosts (once per process)."""
    return without_stack(PythonHost().run(job(CASES / case, 1000)))


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


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "expected.json").exists())


def case_params() -> list:
    """The cases as parameters; the large ones (no page size 1) are marked slow."""
    return [
        pytest.param(name, marks=[] if 1 in page_sizes(CASES / name) else [pytest.mark.slow]) for name in case_names()
    ]


#: The cases about the JavaScript engine alone (what a handler or file may do, and how each failure is named):
#: nothing of them reaches storage but what every other case stores.
ENGINE_CASES = frozenset(
    """deterministic-clock error-async-handler error-clock-at-load error-defined-twice error-document-too-deep
    error-document-too-large error-duplicate-name error-handler-not-function error-identifiedby-mutates
    error-isolation-reset error-missing-type error-promise-job error-regexp-flag-v error-regexp-modifiers
    error-removed-builtin error-require-fs error-thrown-string error-unsafe-name event-isolation
    isolation-identifiedby isolation-registry isolation-shared-builtins javascript-surface own-proto-keys
    require-forms sort-inconsistent-comparator unicode-normalize value-rule""".split()
)

#: Hosts that run the Python engine (the sandbox inline-python runs) by another way: the asyncio client
#: (inline-python's engine and SQL), the daemon following the log and building from its start, and live folds.
#: They run the cases that store or fold something of their own (and a handler's and a file's failure:
#: error-throwing-handler, error-syntax), not :data:`ENGINE_CASES`, which the Python host, Node, inline-python
#: and the in-database engines run; the asyncio client not the large cases either (1,500 appends more of the
#: same).
VARIANT_HOSTS = ("inline-python-asyncio", "async-build", "async-follow", "live")


#: The hosts `make test-fast` runs the cases in (the reference): the others are marked slow. (Node's host runs
#: each case as three node processes, a third of the fast run's conformance time; its engine is in the fast run
#: by js/test, its client by tests/cli/test_node_client.py, and every case in it by `make test`.)
FAST_HOSTS = ("python",)


#: The in-database engine `make test-fast` runs what every in-database engine runs alike (the others: slow).
FAST_ENGINE = "plv8"


def engine_params(engines: list[str]) -> list:
    """``engines`` as parameters: :data:`FAST_ENGINE` (else the first) in `make test-fast`, the others slow."""
    fast = FAST_ENGINE if FAST_ENGINE in engines else engines[0]
    return [pytest.param(engine, marks=[] if engine == fast else [pytest.mark.slow]) for engine in engines]


def host_case_params() -> list:
    """(case, host) pairs: every case in every host, but :data:`VARIANT_HOSTS` as said there."""
    return [
        pytest.param(
            case.values[0],
            host,
            id=f"{case.values[0]}-{host}",
            marks=[*case.marks, *([] if host in FAST_HOSTS else [pytest.mark.slow])],
        )
        for case in case_params()
        for host in HOST_NAMES
        if not (host in VARIANT_HOSTS and case.values[0] in ENGINE_CASES)
        and not (host == "inline-python-asyncio" and case.marks)
    ]


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
