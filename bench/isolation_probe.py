"""One measurement of bench/isolation_ab.py, run in a tree of jsproj (PYTHONPATH names its src): JSON on stdout.

    python bench/isolation_probe.py fold DSN             -> events/s, the Python host folding pages of 1,000
    python bench/isolation_probe.py rebuild-ENGINE DSN   -> events/s, a redeploy rebuilding 20,000 stored events
    python bench/isolation_probe.py inline-ENGINE DSN    -> ms per append (median), one inline projection

Only APIs both trees have (Projections, EventStore, deploy) are used, so the
same script measures the commit before issue 26 and this one.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from jsproj.engine.projections import Projections
from jsproj.engine.simulation import apply_page
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore

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


def records(count: int) -> list[dict[str, object]]:
    return [{"position": i + 1, "streamId": f"account-{i % 200}", "streamType": "Account", "version": i // 200 + 1,
             "timestamp": "2026-01-01T00:00:00.000Z", "metadata": None,
             "event": {"$type": "Withdrawn" if i % 5 == 4 else "Deposited", "$id": f"e{i}", "amount": i % 97 + 1}}
            for i in range(count)]  # fmt: skip


def fold() -> float:
    events = records(EVENTS)
    pages = [json.dumps(events[start : start + 1000]) for start in range(0, len(events), 1000)]
    with Projections(FOLD) as loaded:
        documents: dict[str, dict[str, object]] = {name: {} for name in loaded.names}
        apply_page(loaded, pages[0], documents)  # warm up
        documents = {name: {} for name in loaded.names}
        started = time.perf_counter()
        for page in pages:
            apply_page(loaded, page, documents)
        return len(events) / (time.perf_counter() - started)


def messages(count: int) -> list[dict[str, object]]:
    return [{"id": f"account-{i % 200}", "type": "Account",
             "data": {"$type": "Withdrawn" if i % 5 == 4 else "Deposited", "amount": i % 97 + 1}}
            for i in range(count)]  # fmt: skip


def rebuild(dsn: str, engine: str) -> float:
    with EventStore(dsn, max_size=2) as store:
        deploy(store, [{"file": "Balance.js", "source": COUNTER}], engine=engine, lifecycles={"Balance": "inline"})
        store.append_all(messages(EVENTS))
        changed = COUNTER.replace("s.balance -= e.amount;", "s.balance -= e.amount; s.withdrawn = true;")
        started = time.perf_counter()
        deploy(store, [{"file": "Balance.js", "source": changed}], engine=engine, lifecycles={"Balance": "inline"})
        return EVENTS / (time.perf_counter() - started)


def inline(dsn: str, engine: str) -> float:
    with EventStore(dsn, max_size=1) as store:
        deploy(store, [{"file": "Balance.js", "source": COUNTER}], engine=engine, lifecycles={"Balance": "inline"})
        for n in range(30):  # warm: the engine loaded in this backend
            store.append({"id": f"w-{n % 10}", "type": "Account", "data": {"$type": "Deposited", "amount": 1}})
        times = []
        for n in range(300):
            started = time.perf_counter()
            store.append({"id": f"a-{n % 50}", "type": "Account", "data": {"$type": "Deposited", "amount": n}})
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000


def main() -> int:
    what, dsn = sys.argv[1], sys.argv[2]
    if what == "fold":
        value = fold()
    elif what.startswith("rebuild-"):
        value = rebuild(dsn, what.removeprefix("rebuild-"))
    else:
        value = inline(dsn, what.removeprefix("inline-"))
    print(json.dumps({"what": what, "value": value}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
