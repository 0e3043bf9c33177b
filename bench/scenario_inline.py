"""Scenario 2: what inline projections cost an append, with the Python engine and in the database.

One database per variant, the same appends in each: single-event append
latency (median) and batched throughput (1,000-event messages), with 0, 1
and 3 inline projections (a stream projection; then also an aggregate and a
multi-stream view).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from harness import Row, log
from jsproj.deploy import deploy
from jsproj.store import EventStore

STREAM = """projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, moves: 0 }; },
  Deposited: function (state, evt) { state.balance += evt.amount; state.moves += 1; },
  Withdrawn: function (state, evt) { state.balance -= evt.amount; state.moves += 1; }
});"""
MORE = """projections.aggregate('Bank').by({
  Deposited: function (state, evt) { state.in = (state.in || 0) + evt.amount; },
  Withdrawn: function (state, evt) { state.out = (state.out || 0) + evt.amount; }
});
projections.projectView('ByAmount').identifiedBy(function (evt) { return 'amount-' + (evt.amount % 10); }).by({
  $any: function (state) { state.n = (state.n || 0) + 1; }
});"""


def event(n: int) -> dict:
    return {"$type": "Withdrawn" if n % 5 == 4 else "Deposited", "amount": n % 97 + 1}


def latency(store: EventStore, appends: int, stream: str) -> float:
    store.append({"id": stream, "type": "Account", "data": event(0)})
    samples = []
    for n in range(1, appends):
        started = time.perf_counter()
        store.append({"id": stream, "data": event(n)})
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def throughput(store: EventStore, batches: int, size: int, tag: str) -> float:
    messages = [
        {"id": f"batch-{tag}-{b}", "type": "Account", "data": [event(n) for n in range(size)]} for b in range(batches)
    ]
    started = time.perf_counter()
    for message in messages:
        store.append(message)
    return batches * size / (time.perf_counter() - started)


def run(new_database: Callable[[str], str], quick: bool) -> list[Row]:
    appends, batches = (150, 4) if quick else (500, 20)
    results: dict[tuple[str, int], tuple[float, float]] = {}
    for engine in ("python", "plpython"):
        for count in (0, 1, 3):
            if count == 0 and engine == "plpython":
                continue  # no projection: the same store whichever engine
            dsn = new_database(f"inline_{engine}_{count}")
            with EventStore(dsn, max_size=2) as store:
                store.migrate()
                if count:
                    files = [{"file": "Balance.js", "source": STREAM}]
                    if count == 3:
                        files.append({"file": "More.js", "source": MORE})
                    deploy(store, files, engine=engine)
                log(f"inline: {count} projection(s), {engine} engine")
                latency(store, 30, "warm-up")  # the sandbox, V8 in the backend, prepared statements
                results[(engine, count)] = (latency(store, appends, "latency"), throughput(store, batches, 1000, "t"))
    base_latency, base_throughput = results[("python", 0)]
    rows = []
    for engine, label, target in (("python", "Python engine", 2.0), ("plpython", "in-database (plpython3u)", 1.5)):
        for count in (1, 3):
            lat, thr = results[(engine, count)]
            rows.append(Row("2 inline", f"append latency, {count} inline projection{'s' if count > 1 else ''}, {label}",
                            lat * 1000, "no inline projection", base_latency * 1000, "ms",
                            ("<=", target) if count == 1 else None))  # fmt: skip
            rows.append(Row("2 inline", f"batched throughput, {count} inline projection{'s' if count > 1 else ''}, "
                            f"{label}", thr, "no inline projection", base_throughput, "ev/s"))  # fmt: skip
    return rows
