"""Event store benchmark: appends and live aggregation against their baselines.

All in one run, on one throwaway PostgreSQL cluster (durable settings: fsync
and synchronous_commit on), each figure next to the baseline it is compared to:

  1. batched appends (messages of 1,000 events through pge_append) vs COPY of
     the same rows into a table of the same shape (same columns, defaults and indexes);
  2. single-event appends from 8 concurrent writers vs plain single-row
     INSERT transactions into a table of the same shape, 8 writers too;
  3. live aggregation of a 10,000-event stream vs just fetching its events.

Prints a table with the ratios. Not a test: nothing here asserts on speed.

    python bench/store_bench.py [--events 200000] [--single 4000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg

from jsproj.live import aggregate
from jsproj.projections import Projections
from jsproj.server import temporary_cluster
from jsproj.store import EventStore

WRITERS = 8
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


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_batched(store: EventStore, dsn: str, total: int, size: int) -> tuple[float, float]:
    messages = [
        {"id": f"batch-{m}", "type": "Account", "data": [event(m * size + n) for n in range(size)]}
        for m in range(total // size)
    ]
    append_seconds = timed(lambda: [store.append(message) for message in messages])
    now = datetime.now(UTC)
    rows = [
        (
            str(uuid.uuid4()),
            message["id"],
            v + 1,
            e["$type"],
            json.dumps({k: x for k, x in e.items() if k != "$type"}),
            now,
        )
        for message in messages
        for v, e in enumerate(message["data"])
    ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        same_shape(conn, "copy_target")

        def copy() -> None:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("copy copy_target (id, stream_id, version, type, data, timestamp) from stdin") as out:
                    for row in rows:
                        out.write_row(row)

        copy_seconds = timed(copy)
    return len(rows) / append_seconds, len(rows) / copy_seconds


def bench_single(store: EventStore, dsn: str, total: int) -> tuple[float, float]:
    per_writer = total // WRITERS

    def appender(writer: int) -> None:
        # The first append creates the stream (it needs the type); the others append to it.
        for n in range(per_writer):
            message = {"id": f"single-{writer}", "data": event(n)}
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
                    (
                        uuid.uuid4(),
                        f"single-{writer}",
                        n + 1,
                        e["$type"],
                        json.dumps({"amount": e["amount"], "note": e["note"]}),
                        now,
                    ),
                )

    def run(work: Callable[[int], None]) -> float:
        with ThreadPoolExecutor(WRITERS) as pool:
            return timed(lambda: list(pool.map(work, range(WRITERS))))

    appends = run(appender)
    inserts = run(inserter)
    done = per_writer * WRITERS
    return done / appends, done / inserts


def bench_live(store: EventStore, dsn: str, events: int, repeats: int) -> tuple[float, float]:
    for start in range(0, events, 1000):
        store.append(
            {"id": "live-1", "type": "Account", "data": [event(n) for n in range(start, min(events, start + 1000))]}
        )
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events appended in 1,000-event messages")
    parser.add_argument("--single", type=int, default=4_000, help="single-event appends, across 8 writers")
    parser.add_argument("--live", type=int, default=10_000, help="events in the live-aggregated stream")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    cluster = temporary_cluster(prefix="jsproj-pg-bench-", max_connections="50")
    cluster.init(durable=True)
    cluster.start()
    try:
        with EventStore(cluster.dsn, max_size=WRITERS + 2) as store:
            store.migrate()
            print(f"# event store, PostgreSQL {psycopg.connect(cluster.dsn).info.server_version}, durable settings")
            batched, copy = bench_batched(store, cluster.dsn, args.events, 1000)
            single, insert = bench_single(store, cluster.dsn, args.single)
            live, fetch = bench_live(store, cluster.dsn, args.live, args.repeats)
    finally:
        cluster.destroy()

    rows = [
        ("batched appends (1,000-event messages)", f"{batched:,.0f} ev/s", "COPY of the same rows", f"{copy:,.0f} ev/s",
         f"{batched / copy:.2f}x", ">= 0.5x and >= 100k ev/s"),
        (f"single-event appends, {WRITERS} writers", f"{single:,.0f} ev/s", "plain single-row INSERT transactions",
         f"{insert:,.0f} ev/s", f"{single / insert:.2f}x", ">= 0.7x"),
        (f"live aggregation of a {args.live:,}-event stream", f"{live * 1000:.1f} ms", "fetching its events",
         f"{fetch * 1000:.1f} ms", f"{live / fetch:.2f}x the time", "<= 1.5x the time"),
    ]  # fmt: skip
    widths = [max(len(str(row[i])) for row in rows) for i in range(6)]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
