"""Scenarios 1 and 3: appends against COPY and plain INSERT, and live aggregation against a fetch.

Each figure is measured next to its baseline, on tables of the same shape
(``like pge_events including defaults, identity and indexes``), durable settings.
"""

from __future__ import annotations

import json
import statistics
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg

from harness import Row, log, timed
from jsproj.live import aggregate
from jsproj.runtime.projections import Projections
from jsproj.store import EventStore

LIVE_SOURCE = """projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, deposits: 0, withdrawals: 0 }; },
  Deposited: function (state, evt) { state.balance += evt.amount; state.deposits += 1; },
  Withdrawn: function (state, evt) { state.balance -= evt.amount; state.withdrawals += 1; }
});"""


def event(n: int) -> dict:
    return {"$type": "Withdrawn" if n % 5 == 4 else "Deposited", "amount": n % 97 + 1, "note": f"transfer {n}"}


def same_shape(conn: psycopg.Connection, name: str) -> None:
    conn.execute(f"drop table if exists {name}")
    conn.execute(f"create table {name} (like pge_events including defaults including identity including indexes)")


def batched(store: EventStore, dsn: str, total: int, size: int) -> tuple[float, float]:
    """(appends/s through pge_append in ``size``-event messages, COPY of the same rows/s)."""
    messages = [
        {"id": f"batch-{m}", "type": "Account", "data": [event(m * size + n) for n in range(size)]}
        for m in range(total // size)
    ]
    append_seconds = timed(lambda: [store.append(message) for message in messages])
    now = datetime.now(UTC)
    rows = [
        (str(uuid.uuid4()), message["id"], v + 1, e["$type"], json.dumps({k: x for k, x in e.items() if k != "$type"}),
         now)
        for message in messages
        for v, e in enumerate(message["data"])
    ]  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        same_shape(conn, "copy_target")

        def copy() -> None:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("copy copy_target (id, stream_id, version, type, data, timestamp) from stdin") as out:
                    for row in rows:
                        out.write_row(row)

        copy_seconds = timed(copy)
    return len(rows) / append_seconds, len(rows) / copy_seconds


def single(store: EventStore, dsn: str, total: int, writers: int) -> tuple[float, float]:
    """(single-event appends/s from ``writers`` threads, plain single-row INSERT transactions/s, as many threads)."""
    per_writer = total // writers
    tag = uuid.uuid4().hex[:6]

    def appender(writer: int) -> None:
        for n in range(per_writer):  # the first append creates the stream (it needs the type)
            message = {"id": f"single-{tag}-{writer}", "data": event(n)}
            store.append({**message, "type": "Account"} if n == 0 else message)

    with psycopg.connect(dsn, autocommit=True) as conn:
        same_shape(conn, "insert_target")
    now = datetime.now(UTC)

    def inserter(writer: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for n in range(per_writer):
                e = event(n)
                conn.execute(
                    "insert into insert_target (id, stream_id, version, type, data, timestamp)"
                    " values (%s, %s, %s, %s, %s, %s)",
                    (uuid.uuid4(), f"single-{writer}", n + 1, e["$type"],
                     json.dumps({"amount": e["amount"], "note": e["note"]}), now),
                )  # fmt: skip

    def run(work: Callable[[int], None]) -> float:
        with ThreadPoolExecutor(writers) as pool:
            return timed(lambda: list(pool.map(work, range(writers))))

    appends = run(appender)
    inserts = run(inserter)
    done = per_writer * writers
    return done / appends, done / inserts


def live(store: EventStore, dsn: str, events: int, repeats: int) -> tuple[float, float]:
    """(median seconds to fold a stream of ``events`` live, median seconds to just fetch it)."""
    for start in range(0, events, 1000):
        store.append({"id": "live-1", "type": "Account",
                      "data": [event(n) for n in range(start, min(events, start + 1000))]})  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum analyze pge_events")  # settle the table for both sides: hint bits, statistics
        conn.execute("checkpoint")
    lives, fetches = [], []
    with Projections([{"file": "Balance.js", "source": LIVE_SOURCE}]) as projections:
        aggregate(store, projections, "Balance", "live-1")  # warm up the sandbox
        store.fetch_stream("live-1")
        for _ in range(repeats):  # interleaved, so that drift hits both alike
            lives.append(timed(lambda: aggregate(store, projections, "Balance", "live-1")))
            fetches.append(timed(lambda: store.fetch_stream("live-1")))
    return statistics.median(lives), statistics.median(fetches)


def run(dsn: str, quick: bool) -> list[Row]:
    total, singles, live_events = (20_000, 800, 10_000) if quick else (200_000, 4_000, 10_000)
    rows = []
    with EventStore(dsn, max_size=10) as store:
        store.migrate()
        log(f"append: {total:,} events in 1,000-event messages, and COPY")
        ours, copy = batched(store, dsn, total, 1000)
        rows.append(Row("1 append", "batched appends, 1,000-event messages", ours, "COPY of the same rows", copy,
                        "ev/s", (">=", 0.5), floor=100_000))  # fmt: skip
        for writers in (1, 8):
            log(f"append: {singles:,} single-event appends from {writers} writer(s), and plain INSERTs")
            ours, insert = single(store, dsn, singles, writers)
            rows.append(Row("1 append", f"single-event appends, {writers} writer{'s' if writers > 1 else ''}", ours,
                            "plain single-row INSERT transactions", insert, "ev/s",
                            (">=", 0.7) if writers == 8 else None))  # fmt: skip
        log(f"live: a {live_events:,}-event stream folded live, and fetched")
        folded, fetched = live(store, dsn, live_events, 5 if quick else 9)
        rows.append(Row("3 live aggregation", f"fold a {live_events:,}-event stream live", folded * 1000,
                        "fetching its events", fetched * 1000, "ms", ("<=", 1.5)))  # fmt: skip
    return rows
