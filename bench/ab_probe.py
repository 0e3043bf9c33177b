"""One measurement of bench/ab.py, run in a tree of jsproj (PYTHONPATH names its src): JSON on stdout.

    python bench/ab_probe.py fold DSN             -> events/s, the Python host folding pages of 1,000
    python bench/ab_probe.py rebuild-ENGINE DSN   -> events/s, a redeploy rebuilding 20,000 stored events
    python bench/ab_probe.py inline-ENGINE DSN    -> ms per append (median), one inline projection
    python bench/ab_probe.py append DSN           -> ms per append (median), no projection
    python bench/ab_probe.py read-all DSN         -> events/s, read_all over 20,000 events in pages of 1,000
    python bench/ab_probe.py daemon-build DSN     -> events/s, the daemon building an async projection of 20,000
    python bench/ab_probe.py daemon-follow DSN    -> events/s, the daemon catching up on 20,000 new events
    python bench/ab_probe.py subscriber DSN       -> events/s, a Python subscriber catching up on 20,000 events

Only the public API (``import jsproj``: Projections, EventStore, deploy,
Daemon, subscribe) is used, so that the same script measures any two
commits whatever their modules are called.
"""

from __future__ import annotations

import importlib
import inspect
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsproj

HERE = Path(__file__).resolve().parent
FOLD = [{"file": "fold_projections.js", "source": (HERE / "fold_projections.js").read_text()}]
COUNTER = """
projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, moves: [] }; },
  Deposited: function (s, e) { s.balance += e.amount; s.moves = s.moves.concat([e.amount]).slice(-5); },
  Withdrawn: function (s, e) { s.balance -= e.amount; }
});
"""
EVENTS = 20_000


def deploy(*args: Any, **kwargs: Any) -> Any:
    """``jsproj.deploy``: before the package was grouped by concern, importing the store made ``jsproj.deploy``
    the module of that name, not the function (tests/unit/test_structure.py keeps the names apart now)."""
    found = jsproj.deploy
    return (found.deploy if inspect.ismodule(found) else found)(*args, **kwargs)


def apply_page() -> Callable[..., Any]:
    """The Python host's page fold, wherever this tree keeps it."""
    for module in ("jsproj.engine.simulation", "jsproj.runtime.simulation"):
        try:
            return importlib.import_module(module).apply_page  # type: ignore[no-any-return]
        except ImportError:
            continue
    raise ImportError("no apply_page in this tree")


def records(count: int) -> list[dict[str, object]]:
    return [{"position": i + 1, "streamId": f"account-{i % 200}", "streamType": "Account", "version": i // 200 + 1,
             "timestamp": "2026-01-01T00:00:00.000Z", "metadata": None,
             "event": {"$type": "Withdrawn" if i % 5 == 4 else "Deposited", "$id": f"e{i}", "amount": i % 97 + 1}}
            for i in range(count)]  # fmt: skip


def fold() -> float:
    events, apply = records(EVENTS), apply_page()
    pages = [json.dumps(events[start : start + 1000]) for start in range(0, len(events), 1000)]
    with jsproj.Projections(FOLD) as loaded:
        documents: dict[str, dict[str, object]] = {name: {} for name in loaded.names}
        apply(loaded, pages[0], documents)  # warm up
        documents = {name: {} for name in loaded.names}
        started = time.perf_counter()
        for page in pages:
            apply(loaded, page, documents)
        return len(events) / (time.perf_counter() - started)


def messages(count: int, prefix: str = "account") -> list[dict[str, object]]:
    return [{"id": f"{prefix}-{i % 200}", "type": "Account",
             "data": {"$type": "Withdrawn" if i % 5 == 4 else "Deposited", "amount": i % 97 + 1}}
            for i in range(count)]  # fmt: skip


def inline_deploy(store: jsproj.EventStore, source: str, engine: str) -> None:
    deploy(store, [{"file": "Balance.js", "source": source}], engine=engine, lifecycles={"Balance": "inline"})


def rebuild(dsn: str, engine: str) -> float:
    with jsproj.EventStore(dsn, max_size=2) as store:
        deploy(store, [{"file": "Balance.js", "source": COUNTER}], engine=engine, lifecycles={"Balance": "inline"})
        store.append_all(messages(EVENTS))
        changed = COUNTER.replace("s.balance -= e.amount;", "s.balance -= e.amount; s.withdrawn = true;")
        started = time.perf_counter()
        deploy(store, [{"file": "Balance.js", "source": changed}], engine=engine, lifecycles={"Balance": "inline"})
        return EVENTS / (time.perf_counter() - started)


def latency(store: jsproj.EventStore) -> float:
    for n in range(30):  # warm: the engine loaded in this backend
        store.append({"id": f"w-{n % 10}", "type": "Account", "data": {"$type": "Deposited", "amount": 1}})
    times = []
    for n in range(300):
        started = time.perf_counter()
        store.append({"id": f"a-{n % 50}", "type": "Account", "data": {"$type": "Deposited", "amount": n}})
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def inline(dsn: str, engine: str) -> float:
    with jsproj.EventStore(dsn, max_size=1) as store:
        deploy(store, [{"file": "Balance.js", "source": COUNTER}], engine=engine, lifecycles={"Balance": "inline"})
        return latency(store)


def append(dsn: str) -> float:
    with jsproj.EventStore(dsn, max_size=1) as store:
        store.migrate()
        return latency(store)


def read_all(dsn: str) -> float:
    with jsproj.EventStore(dsn, max_size=1) as store:
        store.migrate()
        store.append_all(messages(EVENTS))
        store.read_all(0, 1000)  # warm
        started, after, read = time.perf_counter(), 0, 0
        while page := store.read_all(after, 1000):
            after, read = page[-1].position, read + len(page)
        return read / (time.perf_counter() - started)


def daemon(dsn: str, follow: bool) -> float:
    """The daemon building an async projection of EVENTS stored events (or, ``follow``: catching up on EVENTS
    appended after it was built), start to caught up."""
    with jsproj.EventStore(dsn, max_size=2) as store:
        deploy(store, [{"file": "Balance.js", "source": COUNTER}], lifecycles={"Balance": "async"})
        store.append_all(messages(EVENTS))
        if follow:
            jsproj.Daemon(dsn).run(until_caught_up=True)
            store.append_all(messages(EVENTS, "later"))
        started = time.perf_counter()
        jsproj.Daemon(dsn).run(until_caught_up=True)
        return EVENTS / (time.perf_counter() - started)


def subscriber(dsn: str) -> float:
    with jsproj.EventStore(dsn, max_size=2) as store:
        store.migrate()
        store.append_all(messages(EVENTS))
        seen = []
        subscription = jsproj.subscribe(store, "bench", lambda event, conn: seen.append(event.position))
        started = time.perf_counter()
        subscription.run(until_caught_up=True)
        elapsed = time.perf_counter() - started
        assert len(seen) == EVENTS, len(seen)
        return EVENTS / elapsed


MEASUREMENTS: dict[str, Callable[[str], float]] = {
    "fold": lambda dsn: fold(),
    "append": append,
    "read-all": read_all,
    "daemon-build": lambda dsn: daemon(dsn, follow=False),
    "daemon-follow": lambda dsn: daemon(dsn, follow=True),
    "subscriber": subscriber,
}


def main() -> int:
    what, dsn = sys.argv[1], sys.argv[2]
    if what.startswith("rebuild-"):
        value = rebuild(dsn, what.removeprefix("rebuild-"))
    elif what.startswith("inline-"):
        value = inline(dsn, what.removeprefix("inline-"))
    else:
        value = MEASUREMENTS[what](dsn)
    print(json.dumps({"what": what, "value": value}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
