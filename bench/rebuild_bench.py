"""Rebuild benchmark: async projections built from a large event log.

One throwaway PostgreSQL cluster; the same events and projections (a stream
projection and an aggregate) for every contender, in one run:

  * jsproj's daemon building both (one pass, one engine call per page);
  * a Node.js program with the `pg` package folding the same events with the
    same engine (js/) and writing the same documents (bench/node/rebuild.js);
  * jsproj's daemon on a tenth of the events, to compare peak memory.

Prints events/s, the ratio to Node, and peak RSS (the daemon's process plus
its V8 worker). Not a test.

    python bench/rebuild_bench.py [--events 1000000] [--streams 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from jsproj.daemon import Daemon
from jsproj.deploy import deploy
from jsproj.server import Cluster, temporary_cluster
from jsproj.store import EventStore

HERE = Path(__file__).resolve().parent
PROJECTIONS = """projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, deposits: 0, withdrawals: 0 }; },
  Deposited: function (state, evt) { state.balance += evt.amount; state.deposits += 1; },
  Withdrawn: function (state, evt) { state.balance -= evt.amount; state.withdrawals += 1; }
}).async();
projections.aggregate('Bank').by({
  $init: function () { return { deposited: 0, withdrawn: 0, events: 0 }; },
  Deposited: function (state, evt) { state.deposited += evt.amount; state.events += 1; },
  Withdrawn: function (state, evt) { state.withdrawn += evt.amount; state.events += 1; }
}).async();"""


def load_events(dsn: str, events: int, streams: int) -> None:
    """Write the event log with COPY (setup, not measured): ``events`` events round-robin over ``streams``."""
    with psycopg.connect(dsn) as conn:
        with conn.cursor().copy("copy pge_streams (id, type) from stdin") as copy:
            for s in range(streams):
                copy.write_row((f"account-{s}", "Account"))
        with conn.cursor().copy("copy pge_events (id, stream_id, version, type, data) from stdin") as copy:
            for n in range(events):
                kind = "Withdrawn" if n % 5 == 4 else "Deposited"
                copy.write_row((f"00000000-0000-4000-8000-{n:012d}", f"account-{n % streams}", n // streams + 1, kind,
                                json.dumps({"amount": n % 97 + 1})))  # fmt: skip
        conn.execute("analyze pge_events")


def process_tree_rss(pid: int) -> int:
    """Resident memory of a process and its descendants, in bytes."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending += [int(child) for child in children.read().split()]
        except (OSError, StopIteration):
            continue
    return total


def daemon_build(dsn: str, page_size: int) -> tuple[float, int]:
    """Build both projections with the daemon; returns (seconds, peak RSS of this process and its worker)."""
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process_tree_rss(os.getpid()))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.perf_counter()
    try:
        Daemon(dsn, page_size=page_size).run(until_caught_up=True)
    finally:
        done.set()
        sampler.join()
    return time.perf_counter() - started, peak[0]


def fresh_database(cluster: Cluster, name: str, events: int, streams: int) -> str:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    dsn = cluster.dsn.replace("dbname=jsproj", f"dbname={name}")
    with EventStore(dsn, max_size=1) as store:
        store.migrate()
        load_events(dsn, events, streams)
        deploy(store, [{"file": "Bank.js", "source": PROJECTIONS}])
    return dsn


def node_build(cluster: Cluster, database: str, page_size: int) -> dict:
    script = str(HERE / "node" / "rebuild.js")
    argv = [script, str(cluster.socket_dir), str(cluster.port), "jsproj", database, str(page_size)]
    done = subprocess.run(["node", *argv], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def check_same(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        ours = dict(conn.execute("select id, data from pge_projections_balance").fetchall())
        theirs = dict(conn.execute("select id, data from node_balance").fetchall())
        assert ours == theirs, "the daemon and the Node program disagree on Balance"
        bank = conn.execute("select data from pge_aggregates where name = 'Bank'").fetchone()[0]
        assert bank == conn.execute("select data from node_bank").fetchone()[0], "they disagree on Bank"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=5000)
    args = parser.parse_args()
    if not (HERE / "node" / "node_modules" / "pg").is_dir():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund"], cwd=HERE / "node", check=True)
    cluster = temporary_cluster(prefix="jsproj-pg-bench-", shared_buffers="512MB")
    cluster.init(durable=True)
    cluster.start()
    try:
        big = fresh_database(cluster, "rebuild_big", args.events, args.streams)
        small = fresh_database(cluster, "rebuild_small", args.events // 10, args.streams)
        seconds, rss = daemon_build(big, args.page_size)
        node = node_build(cluster, "rebuild_big", args.page_size)
        check_same(big)
        small_seconds, small_rss = daemon_build(small, args.page_size)
    finally:
        cluster.destroy()
    ours = args.events / seconds
    theirs = node["events"] / node["seconds"]
    mb = 1024 * 1024
    print(f"# rebuild: {args.events:,} events in {args.streams:,} streams, a stream projection and an aggregate, "
          f"page size {args.page_size}, durable PostgreSQL 15")  # fmt: skip
    small = args.events // 10
    node_rss = node["peakRss"] / mb
    print(f"jsproj daemon:  {ours:>10,.0f} events/s ({seconds:.1f} s)  peak RSS {rss / mb:,.0f} MB (+ V8 worker)")
    print(f"Node.js + pg:   {theirs:>10,.0f} events/s ({node['seconds']:.1f} s)  peak RSS {node_rss:,.0f} MB")
    print(f"jsproj / Node:  {ours / theirs:.2f}x  (target >= 1.0x and >= 100k events/s)")
    print(f"jsproj, {small:,} events: {small / small_seconds:,.0f} events/s, peak RSS {small_rss / mb:,.0f} MB")
    print(f"peak RSS {args.events:,} / {small:,} events: {rss / small_rss:.2f}x  (target: about the same)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
