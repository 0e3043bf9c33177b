"""Inline projection benchmark: what one inline stream projection costs an append.

All in one run, on one throwaway PostgreSQL cluster (durable settings), one
database per variant, the same appends in each:

  1. single-event append latency (median) with no projection, with one inline
     stream projection on the Python engine, and on the in-database engine
     (plpython3u);
  2. batched append throughput (1,000-event messages) for the same three.

Prints the figures and the ratios to the no-projection baseline. Not a test.

    python bench/inline_bench.py [--appends 500] [--batches 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import psycopg

from jsproj.deploy import deploy
from jsproj.server import temporary_cluster
from jsproj.store import EventStore

PROJECTION = """projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, moves: 0 }; },
  Deposited: function (state, evt) { state.balance += evt.amount; state.moves += 1; },
  Withdrawn: function (state, evt) { state.balance -= evt.amount; state.moves += 1; }
});"""
VARIANTS = ("none", "python", "plpython")


def event(n: int) -> dict:
    return {"$type": "Withdrawn" if n % 5 == 4 else "Deposited", "amount": n % 97 + 1}


def open_variant(cluster_dsn: str, variant: str) -> tuple[EventStore, str]:
    with psycopg.connect(cluster_dsn, autocommit=True) as conn:
        conn.execute(f"create database bench_{variant}")
    dsn = cluster_dsn.replace("dbname=jsproj", f"dbname=bench_{variant}")
    store = EventStore(dsn, max_size=2)
    store.migrate()
    if variant != "none":
        deploy(store, [{"file": "Balance.js", "source": PROJECTION}], engine=variant)
    return store, dsn


def latency(store: EventStore, appends: int) -> float:
    store.append({"id": "latency", "type": "Account", "data": event(0)})
    samples = []
    for n in range(1, appends):
        started = time.perf_counter()
        store.append({"id": "latency", "data": event(n)})
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def throughput(store: EventStore, batches: int, size: int) -> float:
    messages = [
        {"id": f"batch-{b}", "type": "Account", "data": [event(n) for n in range(size)]} for b in range(batches)
    ]
    started = time.perf_counter()
    for message in messages:
        store.append(message)
    return batches * size / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    cluster = temporary_cluster(prefix="jsproj-pg-bench-")
    cluster.init(durable=True)
    cluster.start()
    results: dict[str, tuple[float, float]] = {}
    try:
        for variant in VARIANTS:
            store, _ = open_variant(cluster.dsn, variant)
            try:
                latency(store, 30)  # warm up: the sandbox, V8 in the backend, prepared statements
                results[variant] = (latency(store, args.appends), throughput(store, args.batches, 1000))
            finally:
                store.close()
    finally:
        cluster.destroy()
    base_latency, base_throughput = results["none"]
    print("# inline projections, one stream projection, durable PostgreSQL 15")
    print(f"{'engine':<28}{'append latency':>16}{'vs none':>10}{'batched throughput':>22}{'vs none':>10}")
    for variant, (lat, thr) in results.items():
        label = {"none": "no inline projection", "python": "Python engine", "plpython": "in-database (plpython3u)"}[
            variant
        ]
        ratios = f"{lat / base_latency:>9.2f}x{thr:>16,.0f} ev/s{thr / base_throughput:>9.2f}x"
        print(f"{label:<28}{lat * 1000:>13.2f} ms{ratios}")
    print("targets: append latency <= 2x (Python engine), <= 1.5x (in-database)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
