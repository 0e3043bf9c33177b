"""Rebuild benchmark: async projections built from a large event log.

One throwaway PostgreSQL cluster; the same events and projections (a stream
projection and an aggregate) for every contender, in one run:

  * `jsproj daemon --until-caught-up` building both (one pass, one engine
    call per page);
  * a Node.js program with the `pg` package folding the same events with the
    same engine (js/) and writing the same documents (bench/node/rebuild.js);
  * jsproj's daemon on a tenth of the events, to compare peak memory.

  * the `eventsourcing` package's projection runner doing the same fold from
    its own stored copy of the events (bench/eventsourcing_runner.py);
  * the raw fold in Node over the same kind of events in memory, no database
    at all (bench/fold_node.js, objects): the engine's limit.

Times are each process's wall time, start to exit (the in-memory fold: the
fold alone). Peak RSS is each process tree's. The events are loaded once;
each round builds on fresh copies of that store (CREATE DATABASE ... TEMPLATE),
the contenders taking turns, three rounds. Part of ``python bench/run.py``.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from harness import (
    MB,
    PAIRS,
    Row,
    clone_database,
    database_dsn,
    drop_database,
    log,
    process_tree_rss,
    take_turns,
)
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import Cluster

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
        with conn.cursor().copy("copy pge_events (id, stream_id, stream_type, version, type, data) from stdin") as copy:
            for n in range(events):
                kind = "Withdrawn" if n % 5 == 4 else "Deposited"
                copy.write_row((f"00000000-0000-4000-8000-{n:012d}", f"account-{n % streams}", "Account",
                                n // streams + 1, kind, json.dumps({"amount": n % 97 + 1})))  # fmt: skip
        conn.execute("analyze pge_events")


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


def node_in_memory(events: int, streams: int, page_size: int) -> dict:
    done = subprocess.run(["node", str(HERE / "fold_node.js"), str(events), str(streams), str(page_size), "objects"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout)


def sizes(quick: bool) -> tuple[int, int, int]:
    """(events, streams, page size) of the rebuild."""
    return (100_000, 1_000, 5000) if quick else (1_000_000, 10_000, 5000)


#: The databases every pair's copy is made from: the events loaded, the projections deployed, not built.
BIG, SMALL = "rebuild_big", "rebuild_small"


class Builds:
    """The measurements of a round, each on a copy of a loaded store (a build changes the store it runs on)."""

    def __init__(self, cluster: Cluster, events: int, streams: int, page_size: int) -> None:
        self.cluster, self.events, self.streams, self.page_size = cluster, events, streams, page_size
        self.copies = itertools.count()
        self.current = ""  # the copy the daemon built, for the Node.js program to rebuild and the check
        self.series: list[int] = []  # the last big build's RSS samples

    def daemon(self, template: str = BIG) -> dict[str, float]:
        name = f"{template}_{next(self.copies)}"
        dsn = clone_database(self.cluster.dsn, template, name)
        seconds, rss, series = daemon_build(dsn, self.page_size)
        events = self.events if template == BIG else self.events // 10
        if template == BIG:
            self.current, self.series = name, series
        else:
            drop_database(self.cluster.dsn, name)
        return {"rate": events / seconds, "rss": rss}

    def node(self) -> dict[str, float]:
        """The Node.js program on the copy the daemon just built; then both wrote the same documents."""
        node = node_build(self.cluster, self.current, self.page_size)
        check_same(database_dsn(self.cluster.dsn, self.current))
        drop_database(self.cluster.dsn, self.current)
        return {"rate": node["events"] / node["seconds"], "rss": node["peakRss"]}

    def in_memory(self) -> float:
        return self.events / node_in_memory(self.events, self.streams, self.page_size)["seconds"]


def run(cluster: Cluster, quick: bool) -> list[Row]:
    events, streams, page_size = sizes(quick)
    if not (HERE / "node" / "node_modules" / "pg").is_dir():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=HERE / "node", check=True)
    log(f"rebuild: loading {events:,} events in {streams:,} streams (and a tenth of them)")
    fresh_database(cluster, BIG, events, streams)
    fresh_database(cluster, SMALL, events // 10, streams)
    log(f"rebuild: {PAIRS} rounds of the jsproj daemon, Node.js + pg, the daemon on a tenth, the raw fold in Node")
    builds = Builds(cluster, events, streams, page_size)
    turns = take_turns(
        {"daemon": builds.daemon, "node": builds.node, "small": lambda: builds.daemon(SMALL),
         "memory": builds.in_memory},
        what="the rebuild against Node.js + pg, a tenth of the events and the raw fold (4 rows)",
    )  # fmt: skip
    scale = f"{events:,} events, {streams:,} streams"
    rss = {side: turns.pair("daemon.rss", f"{side}.rss").scaled(1 / MB) for side in ("node", "small")}
    quarters = [max(builds.series[: max(1, len(builds.series) * q // 4)]) / MB for q in (1, 2, 3, 4)]
    return [
        Row("4 rebuild", f"rebuild a stream projection + aggregate, {scale}", turns.pair("daemon.rate", "node.rate"),
            "Node.js program with pg, same engine, same documents", "ev/s", (">=", 1.0), floor=100_000),
        Row("4 rebuild", "peak RSS during that rebuild", rss["node"], "the Node.js + pg program", "MB"),
        Row("4 rebuild", f"peak RSS, {events:,}-event rebuild", rss["small"],
            f"peak RSS, {events // 10:,}-event rebuild", "MB", ("<=", 1.25),
            note="target: about the same; peak RSS after 1/4, 1/2, 3/4, all (the last round): "
                 + ", ".join(f"{q:,.0f} MB" for q in quarters)),
        Row("4 rebuild", "rebuild events/s", turns.pair("daemon.rate", "memory"),
            "raw fold in Node, events in memory (the engine's limit)", "ev/s"),
    ]  # fmt: skip
