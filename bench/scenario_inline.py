"""Scenario 2: what inline projections cost an append, with the Python engine and in the database.

One database per variant, the same appends in each: single-event append
latency (median) and batched throughput (1,000-event messages), with 0, 1
and 3 inline projections (a stream projection; then also an aggregate and a
multi-stream view), for every engine: Python, plpython3u, PLV8 and PL/JS
(the last two where PostgreSQL has them). And a file of one-event messages
appended in one call (``append_all``, what ``jsproj append`` does) with two
Python-engine inline projections, against the same projections async.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import psycopg

from harness import Row, log
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore

STREAM = """projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, moves: 0 }; },
  Deposited: function (state, evt) { state.balance += evt.amount; state.moves += 1; },
  Withdrawn: function (state, evt) { state.balance -= evt.amount; state.moves += 1; }
});"""
BANK = """projections.aggregate('Bank').by({
  Deposited: function (state, evt) { state.in = (state.in || 0) + evt.amount; },
  Withdrawn: function (state, evt) { state.out = (state.out || 0) + evt.amount; }
});
"""
MORE = (
    BANK
    + """projections.projectView('ByAmount').identifiedBy(function (evt) { return 'amount-' + (evt.amount % 10); }).by({
  $any: function (state) { state.n = (state.n || 0) + 1; }
});"""
)


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


#: Every engine, its label, and the targets of its 1-projection rows: (latency, batched throughput).
ENGINES = (
    ("python", "Python engine", (2.0, None)),
    ("plpython", "in-database (plpython3u)", (1.5, None)),
    ("plv8", "in-database (PLV8)", (1.5, 0.7)),
    ("pljs", "in-database (PL/JS)", (1.5, 0.7)),
)


def available(dsn: str, engine: str) -> bool:
    if engine in ("python", "plpython"):
        return True
    with psycopg.connect(dsn) as conn:
        found = conn.execute("select count(*) from pg_available_extensions where name = %s", (engine,)).fetchone()
    return bool(found[0])


def measure(dsn: str, engine: str, count: int, appends: int, batches: int) -> tuple[float, float]:
    with EventStore(dsn, max_size=2) as store:
        store.migrate()
        if count:
            files = [{"file": "Balance.js", "source": STREAM}]
            if count == 3:
                files.append({"file": "More.js", "source": MORE})
            deploy(store, files, engine=engine)
        log(f"inline: {count} projection(s), {engine} engine")
        latency(store, 30, "warm-up")  # the sandbox, V8 in the backend, prepared statements
        return latency(store, appends, "latency"), throughput(store, batches, 1000, "t")


def many_messages(new_database: Callable[[str], str], lifecycle: str, count: int) -> float:
    """Messages/s of one ``append_all`` of ``count`` one-event messages, the two projections ``lifecycle``."""
    with EventStore(new_database(f"inline_file_{lifecycle}")) as store:
        store.migrate()
        deploy(store, [{"file": "Bank.js", "source": STREAM + "\n" + BANK}],
               lifecycles={"Balance": lifecycle, "Bank": lifecycle})  # fmt: skip
        messages = [{"id": f"acc-{n % 500}", "type": "Account", "data": event(n)} for n in range(count)]
        started = time.perf_counter()
        store.append_all(messages)
        return count / (time.perf_counter() - started)


def file_row(new_database: Callable[[str], str], quick: bool) -> Row:
    count = 5_000 if quick else 20_000
    log(f"inline: {count:,} one-event messages in one append_all, 2 Python-engine inline projections, then async")
    inline, later = many_messages(new_database, "inline", count), many_messages(new_database, "async", count)
    return Row("2 inline", f"{count:,} one-event messages in one append_all, 2 inline projections, Python engine",
               inline, "the same projections async (no work in the append)", later, "msg/s", (">=", 0.5),
               note="the inline projections run once per page of 1,000 events, not once per message")  # fmt: skip


def run(new_database: Callable[[str], str], quick: bool) -> list[Row]:
    appends, batches = (150, 4) if quick else (500, 20)
    results = {("python", 0): measure(new_database("inline_python_0"), "python", 0, appends, batches)}
    for engine, _, _ in ENGINES:
        for count in (1, 3):
            dsn = new_database(f"inline_{engine}_{count}")
            if available(dsn, engine):
                results[(engine, count)] = measure(dsn, engine, count, appends, batches)
    base_latency, base_throughput = results[("python", 0)]
    rows = []
    for engine, label, (latency_target, throughput_target) in ENGINES:
        for count in (1, 3):
            if (engine, count) not in results:
                continue
            lat, thr = results[(engine, count)]
            plural = "s" if count > 1 else ""
            rows.append(Row("2 inline", f"append latency, {count} inline projection{plural}, {label}",
                            lat * 1000, "no inline projection", base_latency * 1000, "ms",
                            ("<=", latency_target) if count == 1 else None))  # fmt: skip
            rows.append(Row("2 inline", f"batched throughput, {count} inline projection{plural}, {label}",
                            thr, "no inline projection", base_throughput, "ev/s",
                            (">=", throughput_target) if count == 1 and throughput_target else None))  # fmt: skip
    rows.append(file_row(new_database, quick))
    return rows
