"""Rebuild benchmark: async projections built from a large event log.

One throwaway PostgreSQL cluster; the same events and projections (a stream
projection and an aggregate) for every contender, in one run:

  * `jsproj daemon --until-caught-up` building both (one pass, one engine
    call per page);
  * a Node.js program with the `pg` package folding the same events with the
    same engine (js/) and writing the same documents (bench/node/rebuild.js);
  * jsproj's daemon on a tenth of the events, to compare peak memory.

Times are each process's wall time, start to exit. Prints events/s, the
ratio to Node, and peak RSS (the daemon's process plus its V8 worker; how it
grows during the large rebuild). Not a test.

    python bench/rebuild_bench.py [--events 1000000] [--streams 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg

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


def daemon_build(dsn: str, page_size: int) -> tuple[float, int, list[int]]:
    """Build both projections with ``jsproj daemon --until-caught-up`` in its own process.

    Returns (seconds, peak RSS of the daemon and its V8 worker, RSS sampled every 0.05 s).
    """
    jsproj = Path(sys.executable).parent / "jsproj"
    argv = [str(jsproj), "daemon", "--until-caught-up", "--page-size", str(page_size), "--dsn", dsn]
    samples: list[int] = []
    started = time.perf_counter()
    with subprocess.Popen(argv, stderr=subprocess.DEVNULL) as daemon:
        while daemon.poll() is None:
            samples.append(process_tree_rss(daemon.pid))
            time.sleep(0.05)
    seconds = time.perf_counter() - started
    if daemon.returncode != 0:
        raise SystemExit(f"the daemon failed with exit code {daemon.returncode}")
    return seconds, max(samples), samples


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
    """Run bench/node/rebuild.js; its ``seconds`` become the process's wall time, as for the daemon."""
    script = str(HERE / "node" / "rebuild.js")
    argv = [script, str(cluster.socket_dir), str(cluster.port), "jsproj", database, str(page_size)]
    started = time.perf_counter()
    done = subprocess.run(["node", *argv], capture_output=True, text=True, check=True)
    return {**json.loads(done.stdout), "seconds": time.perf_counter() - started}


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
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=HERE / "node", check=True)
    cluster = temporary_cluster(prefix="jsproj-pg-bench-", shared_buffers="512MB")
    cluster.init(durable=True)
    cluster.start()
    try:
        big = fresh_database(cluster, "rebuild_big", args.events, args.streams)
        small = fresh_database(cluster, "rebuild_small", args.events // 10, args.streams)
        seconds, rss, series = daemon_build(big, args.page_size)
        node = node_build(cluster, "rebuild_big", args.page_size)
        check_same(big)
        small_seconds, small_rss, _ = daemon_build(small, args.page_size)
    finally:
        cluster.destroy()
    ours = args.events / seconds
    theirs = node["events"] / node["seconds"]
    mb = 1024 * 1024
    print(f"# rebuild: {args.events:,} events in {args.streams:,} streams, a stream projection and an aggregate, "
          f"page size {args.page_size}, durable PostgreSQL 15")  # fmt: skip
    small = args.events // 10
    node_rss = node["peakRss"] / mb
    print(f"jsproj daemon:  {ours:>10,.0f} events/s ({seconds:.1f} s)  peak RSS {rss / mb:,.0f} MB (and V8 worker)")
    print(f"Node.js + pg:   {theirs:>10,.0f} events/s ({node['seconds']:.1f} s)  peak RSS {node_rss:,.0f} MB")
    print(f"jsproj / Node:  {ours / theirs:.2f}x  (target >= 1.0x and >= 100k events/s)")
    print(f"jsproj, {small:,} events: {small / small_seconds:,.0f} events/s, peak RSS {small_rss / mb:,.0f} MB")
    print(f"peak RSS {args.events:,} / {small:,} events: {rss / small_rss:.2f}x  (target: about the same)")
    quarters = [max(series[: max(1, len(series) * q // 4)]) / mb for q in (1, 2, 3, 4)]
    print("large rebuild, peak RSS after 1/4, 1/2, 3/4, all: " + ", ".join(f"{q:,.0f} MB" for q in quarters))
    return 0


if __name__ == "__main__":
    sys.exit(main())
