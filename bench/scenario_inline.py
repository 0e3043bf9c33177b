"""Scenario 2: what inline projections cost an append, with the Python engine and in the database.

One database per variant, the same appends in each: single-event append
latency (median) and batched throughput (1,000-event messages), with 0, 1
and 3 inline projections (a stream projection; then also an aggregate and a
multi-stream view), for every engine: Python, plpython3u, PLV8 and PL/JS
(the last two where PostgreSQL has them). And a file of one-event messages
appended in one call (``append_all``, what ``jsproj append`` does) with two
Python-engine inline projections, against the same projections async.

Every variant is measured in turns with the store without projections
(kept open throughout, like each variant's), three pairs; each measurement
appends to new streams.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack

import psycopg

from harness import PAIRS, Row, Turns, alternate, log, take_turns
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


def open_store(stack: ExitStack, dsn: str, engine: str, count: int) -> EventStore:
    """A store with ``count`` inline projections on ``engine`` deployed, warmed up, open until ``stack`` closes."""
    store = stack.enter_context(EventStore(dsn, max_size=2))
    store.migrate()
    if count:
        files = [{"file": "Balance.js", "source": STREAM}]
        if count == 3:
            files.append({"file": "More.js", "source": MORE})
        deploy(store, files, engine=engine)
    latency(store, 30, "warm-up")  # the sandbox, V8 in the backend, prepared statements
    return store


def measurer(store: EventStore, appends: int, batches: int) -> Callable[[], dict[str, float]]:
    """One measurement of a store: median single-event append latency (s) and batched throughput (ev/s), on
    streams new at every call."""
    calls = itertools.count()

    def measure() -> dict[str, float]:
        call = next(calls)
        return {"latency": latency(store, appends, f"latency-{call}"),
                "throughput": throughput(store, batches, 1000, f"t{call}")}  # fmt: skip

    return measure


def variant_rows(label: str, count: int, targets: tuple[float, float | None], turns: Turns) -> list[Row]:
    plural = "s" if count > 1 else ""
    latency_target, throughput_target = targets
    return [
        Row("2 inline", f"append latency, {count} inline projection{plural}, {label}",
            turns.pair("ours.latency", "baseline.latency").scaled(1000), "no inline projection", "ms",
            ("<=", latency_target) if count == 1 else None),
        Row("2 inline", f"batched throughput, {count} inline projection{plural}, {label}",
            turns.pair("ours.throughput", "baseline.throughput"), "no inline projection", "ev/s",
            (">=", throughput_target) if count == 1 and throughput_target else None),
    ]  # fmt: skip


def many_messages(new_database: Callable[[str], str], lifecycle: str, count: int, tag: int) -> float:
    """Messages/s of one ``append_all`` of ``count`` one-event messages, the two projections ``lifecycle``, on a
    new store."""
    with EventStore(new_database(f"inline_file_{lifecycle}_{tag}")) as store:
        store.migrate()
        deploy(store, [{"file": "Bank.js", "source": STREAM + "\n" + BANK}],
               lifecycles={"Balance": lifecycle, "Bank": lifecycle})  # fmt: skip
        messages = [{"id": f"acc-{n % 500}", "type": "Account", "data": event(n)} for n in range(count)]
        started = time.perf_counter()
        store.append_all(messages)
        return count / (time.perf_counter() - started)


def file_row(new_database: Callable[[str], str], quick: bool) -> Row:
    count = 5_000 if quick else 20_000
    log(f"inline: {count:,} one-event messages in one append_all, 2 Python-engine inline projections, then async,"
        f" {PAIRS} pairs")  # fmt: skip
    tags = itertools.count()
    pairs = alternate(lambda: many_messages(new_database, "inline", count, next(tags)),
                      lambda: many_messages(new_database, "async", count, next(tags)),
                      what="append_all with inline projections against async")  # fmt: skip
    return Row("2 inline", f"{count:,} one-event messages in one append_all, 2 inline projections, Python engine",
               pairs, "the same projections async (no work in the append)", "msg/s", (">=", 0.5),
               note="the inline projections run once per page of 1,000 events, not once per message; a new store"
                    " for each side of each pair")  # fmt: skip


def run(new_database: Callable[[str], str], quick: bool) -> list[Row]:
    appends, batches = (150, 4) if quick else (500, 20)
    rows = []
    with ExitStack() as stack:
        baseline = measurer(open_store(stack, new_database("inline_python_0"), "python", 0), appends, batches)
        for engine, label, targets in ENGINES:
            for count in (1, 3):
                dsn = new_database(f"inline_{engine}_{count}")
                if not available(dsn, engine):
                    continue
                log(f"inline: {count} projection(s), {engine} engine, and none, {PAIRS} pairs")
                ours = measurer(open_store(stack, dsn, engine, count), appends, batches)
                turns = take_turns({"ours": ours, "baseline": baseline},
                                   what=f"appends with {count} inline projection(s), {engine} (2 rows)")  # fmt: skip
                rows += variant_rows(label, count, targets, turns)
    rows.append(file_row(new_database, quick))
    return rows
