"""Scenario 7: the async engine at its limit -- catch-up against rebuild, poison events, rebuild against a fair
Node.js program, and two daemons on one partitioned projection (the writers' scenarios: scenario_follow.py).

Every row compares two figures measured minutes apart in the same run, each
on a database of its own with the same events (loaded with COPY, not measured):

  * catch-up against rebuild, 1, 5 and 20 stream projections: the daemon
    building them from status 'build', then following the same number of
    events appended once they run (events/s both, every projection folded);
  * poison events (0.1, 1 and 5 % of the events throw, policy 'dead-letter')
    against none, for the build and for the catch-up;
  * the daemon's rebuild against bench/node/rebuild_lines.js (what jsproj's
    build does, by hand in Node: pages as record lines, the next page read
    while the current one folds), at 10 and 100 events per stream;
  * one daemon process against two on a projection in 20 partitions.

The daemon runs in this process (a sandbox worker started beforehand, as a
running daemon has one), except where processes are the point: two daemons,
and the Node.js program (timed from its start to its last write, not its
interpreter's startup). Every scenario checks the documents before it reports.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

import scenario_follow
from harness import Row, busy_share, cpu_times, log, timed
from jsproj.engine.bundle import lib_dir
from jsproj.engine.projections import Projections
from jsproj.follow.daemon import DEFAULT_PAGE_SIZE, Daemon
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import Cluster
from scenario_rebuild import check_same, fresh_database

HERE = Path(__file__).resolve().parent
SCENARIO = "7 async"
PAGE_SIZE = DEFAULT_PAGE_SIZE  # what a daemon uses unless told otherwise; the Node.js programs too
POISONED = (0.1, 1.0, 5.0)  # % of the events that throw; the target is on 1 %
POISON = "if (evt.poison === true) throw new Error('poison event ' + evt.$id); "
HANDLERS = """{
  $init: function () { return { balance: 0, deposits: 0, withdrawals: 0 }; },
  Deposited: function (state, evt) { %sstate.balance += evt.amount; state.deposits += 1; },
  Withdrawn: function (state, evt) { %sstate.balance -= evt.amount; state.withdrawals += 1; }
}"""

NewDatabase = Callable[[str], str]


def balance_source(name: str, *, poison: bool = False) -> dict[str, str]:
    """A stream projection of the Account streams (as scenario_rebuild's Balance), optionally throwing on poison."""
    handlers = HANDLERS % ((POISON, POISON) if poison else ("", ""))
    source = f"projections.projectStream('Account').named('{name}').by({handlers}).async();"
    return {"file": f"{name}.js", "source": source}


@dataclass
class Loaded:
    """What the events loaded so far add up to: the documents' sums must match."""

    events: int = 0
    poison: int = 0
    balance: int = 0

    @property
    def folded(self) -> int:
        return self.events - self.poison


def is_poison(n: int, percent: float) -> bool:
    """Exactly ``percent`` % of every 10,000 consecutive events, spread over them (7919 is prime to 10,000)."""
    return (n * 7919) % 10_000 < round(percent * 100)


def load_events(dsn: str, loaded: Loaded, count: int, streams: int, percent: float = 0.0) -> None:
    """Append ``count`` more events round-robin over ``streams`` with COPY (setup, not measured), as scenario_rebuild.

    The first load creates the streams; a later one goes on with their versions.
    """
    start = loaded.events
    with psycopg.connect(dsn) as conn:
        if start == 0:
            with conn.cursor().copy("copy pge_streams (id, type) from stdin") as copy:
                for s in range(streams):
                    copy.write_row((f"account-{s}", "Account"))
        with conn.cursor().copy("copy pge_events (id, stream_id, version, type, data) from stdin") as copy:
            for n in range(start, start + count):
                kind, amount, poison = "Withdrawn" if n % 5 == 4 else "Deposited", n % 97 + 1, is_poison(n, percent)
                data = {"amount": amount, "poison": True} if poison else {"amount": amount}
                copy.write_row((f"00000000-0000-4000-8000-{n:012d}", f"account-{n % streams}", n // streams + 1, kind,
                                json.dumps(data)))  # fmt: skip
                loaded.poison += poison
                loaded.balance += 0 if poison else (-amount if kind == "Withdrawn" else amount)
        conn.execute("analyze pge_events")
    loaded.events += count


def new_store(dsn: str, sources: list[dict[str, str]], **options: Any) -> None:
    """Migrate a new database and deploy ``sources`` (async projections: status 'build')."""
    with EventStore(dsn, max_size=1) as store:
        store.migrate()
        deploy(store, sources, **options)


def warm_worker() -> None:
    """Leave a started sandbox worker waiting, for the next daemon to take (as a running daemon has its own)."""
    Projections([balance_source("Warm")]).close()


def daemon_seconds(dsn: str) -> float:
    """Seconds a daemon in this process takes to process everything appended before it starts."""
    warm_worker()
    return timed(lambda: Daemon(dsn, page_size=PAGE_SIZE).run(until_caught_up=True))


def check_balance(dsn: str, name: str, loaded: Loaded) -> None:
    """The projection runs, folded every event loaded but the poison ones, and dead-lettered those."""
    with psycopg.connect(dsn) as conn:
        found = conn.execute("select status from pge_projection_progress where name = %s", (name,)).fetchall()
        assert found and all(status == "running" for (status,) in found), f"{name} is {found}, not running"
        moves, balance = conn.execute(
            f"""select coalesce(sum((data->>'deposits')::bigint + (data->>'withdrawals')::bigint), 0),
                       coalesce(sum((data->>'balance')::bigint), 0) from pge_projections_{name.lower()}"""
        ).fetchone()
        dead = conn.execute("select count(*) from pge_dead_letters where projection = %s", (name,)).fetchone()[0]
    assert (moves, balance) == (loaded.folded, loaded.balance), f"{name}: {(moves, balance)}, not {loaded}"
    assert dead == loaded.poison, f"{name}: {dead} dead letters for {loaded.poison} poison events"


# -- catch-up against rebuild --------------------------------------------------------------------------------


def catch_up_against_rebuild(new_database: NewDatabase, events: int, streams: int, copies: int) -> Row:
    """Build ``copies`` stream projections from ``events`` events, then catch up on as many appended after."""
    dsn = new_database(f"async_catchup_{copies}")
    names = [f"Balance{k}" for k in range(1, copies + 1)]
    new_store(dsn, [balance_source(name) for name in names])
    loaded = Loaded()
    load_events(dsn, loaded, events, streams)
    log(f"async: rebuild of {copies} stream projection(s), {events:,} events in {streams:,} streams")
    built = daemon_seconds(dsn)
    for name in names:
        check_balance(dsn, name, loaded)
    load_events(dsn, loaded, events, streams)
    log(f"async: catch-up of the same projection(s) on {events:,} more events")
    caught_up = daemon_seconds(dsn)
    for name in names:
        check_balance(dsn, name, loaded)
    plural = "s" if copies > 1 else ""
    return Row(SCENARIO, f"catch-up, {copies} stream projection{plural}, {events:,} events, {streams:,} streams",
               events / caught_up, f"the daemon's rebuild of the same projection{plural}, as many events",
               events / built, "ev/s", (">=", 0.5),
               note="events/s of the log, each event folded into every projection")  # fmt: skip


# -- poison events ---------------------------------------------------------------------------------------------


def poisoned(dsn: str, events: int, streams: int, percent: float) -> tuple[float, float]:
    """(build events/s, catch-up events/s) of a dead-lettering stream projection with ``percent`` % poison events,
    on a new database."""
    new_store(dsn, [balance_source("Poisoned", poison=True)], on_error={"Poisoned": "dead-letter"})
    loaded = Loaded()
    load_events(dsn, loaded, events, streams, percent)
    built = daemon_seconds(dsn)
    check_balance(dsn, "Poisoned", loaded)
    load_events(dsn, loaded, events, streams, percent)
    caught_up = daemon_seconds(dsn)
    check_balance(dsn, "Poisoned", loaded)
    return events / built, events / caught_up


def poison_rows(new_database: NewDatabase, events: int, streams: int) -> list[Row]:
    log(f"async: poison events, 0 / 0.1 / 1 / 5 %, {events:,} events in {streams:,} streams, build and catch-up")
    first = poisoned(new_database("async_poison_none"), events, streams, 0.0)
    measured = {
        percent: poisoned(new_database(f"async_poison_{percent:g}".replace(".", "_")), events, streams, percent)
        for percent in POISONED
    }
    last = poisoned(new_database("async_poison_none_again"), events, streams, 0.0)
    clean = [(a + b) / 2 for a, b in zip(first, last, strict=True)]  # before and after: drift hits both alike
    rows = []
    for percent, rates in measured.items():
        for phase, ours, baseline in zip(("build", "catch-up"), rates, clean, strict=True):
            rows.append(Row(SCENARIO, f"{phase} with {percent:g} % poison events (dead-lettered), {events:,} events",
                            ours, f"the same {phase}, no poison events (mean of runs before and after)", baseline,
                            "ev/s", (">=", 0.7) if percent == 1.0 else None))  # fmt: skip
    return rows


# -- rebuild against a fair Node.js program ----------------------------------------------------------------


def node_lines(cluster: Cluster, database: str) -> dict:
    """Run bench/node/rebuild_lines.js with the engine jsproj loads; its own seconds (start to last write)."""
    if not (HERE / "node" / "node_modules" / "pg").is_dir():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=HERE / "node", check=True)
    argv = ["node", str(HERE / "node" / "rebuild_lines.js"), str(cluster.socket_dir), str(cluster.port), "jsproj",
            database, str(PAGE_SIZE)]  # fmt: skip
    env = {**os.environ, "JSPROJ_JS": str(lib_dir().parent)}
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout)


def rebuild_against_node(cluster: Cluster, events: int, streams: int) -> Row:
    """The daemon's rebuild of scenario_rebuild's projections against rebuild_lines.js, the same documents."""
    database = f"async_lines_{streams}"
    dsn = fresh_database(cluster, database, events, streams)
    log(f"async: rebuild, {events:,} events in {streams:,} streams: jsproj daemon, then Node.js (record lines)")
    seconds = daemon_seconds(dsn)
    node = node_lines(cluster, database)
    assert node["events"] == events, f"the Node.js program read {node['events']} events, not {events}"
    check_same(dsn)
    return Row(SCENARIO, f"rebuild a stream projection + aggregate, {events:,} events, {streams:,} streams",
               events / seconds, "Node.js + pg doing what jsproj's build does (record lines, next page read ahead)",
               node["events"] / node["seconds"], "ev/s", (">=", 1.0), floor=150_000)  # fmt: skip


# -- two daemons on one partitioned projection --------------------------------------------------------------


def partitions_available() -> bool:
    return "partitions" in inspect.signature(deploy).parameters


def daemon_processes_seconds(dsn: str, count: int) -> tuple[float, list[str], float]:
    """Seconds from starting ``count`` ``jsproj daemon --until-caught-up`` processes at once until all have exited,
    what each logged, and how busy the machine's CPUs were meanwhile (1.0: all of them)."""
    argv = [str(Path(sys.executable).parent / "jsproj"), "daemon", "--until-caught-up", "--page-size", str(PAGE_SIZE),
            "--dsn", dsn]  # fmt: skip
    logs = [tempfile.TemporaryFile("w+") for _ in range(count)]
    daemons: list[subprocess.Popen] = []
    try:
        started, cpu = time.perf_counter(), cpu_times()
        daemons += [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err) for err in logs]
        codes = [daemon.wait() for daemon in daemons]
        seconds, busy = time.perf_counter() - started, busy_share(cpu, cpu_times())
        texts = []
        for code, err in zip(codes, logs, strict=True):
            err.seek(0)
            texts.append(err.read())
            assert code == 0, f"a daemon failed with exit code {code}: {texts[-1][-2000:]}"
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
        for err in logs:
            err.close()
    return seconds, texts, busy


def partitioned(
    new_database: NewDatabase, events: int, streams: int, daemons: int
) -> tuple[float, dict, list[int], float]:
    """(seconds ``daemons`` processes take to catch up a 20-partition projection on ``events`` events, the documents,
    how many times each daemon logged taking a partition up, how busy the CPUs were)."""
    dsn = new_database(f"async_partitions_{daemons}")
    new_store(dsn, [balance_source("Parted")], partitions={"Parted": 20})
    loaded = Loaded()
    load_events(dsn, loaded, events, streams)
    Daemon(dsn, page_size=PAGE_SIZE).run(until_caught_up=True)  # the build: setup
    load_events(dsn, loaded, events, streams)
    seconds, logs, busy = daemon_processes_seconds(dsn, daemons)
    with psycopg.connect(dsn) as conn:
        documents = dict(conn.execute("select id, data from pge_projections_parted").fetchall())
    moves = sum(doc["deposits"] + doc["withdrawals"] for doc in documents.values())
    balance = sum(doc["balance"] for doc in documents.values())
    assert (moves, balance) == (loaded.folded, loaded.balance), f"{daemons} daemon(s): {(moves, balance)}, {loaded}"
    taken = [sum(": working on " in line for line in text.splitlines()) for text in logs]  # (after time and level)
    return seconds, documents, taken, busy


def two_daemons(new_database: NewDatabase, events: int, streams: int) -> list[Row]:
    if not partitions_available():
        log("async: two daemons on one partitioned projection: skipped: partitions not available")
        return []
    log(f"async: catch-up of a 20-partition projection, {events:,} events in {streams:,} streams, 1 and 2 daemons")
    one, alone, _, busy_one = partitioned(new_database, events, streams, 1)
    two, shared, taken, busy_two = partitioned(new_database, events, streams, 2)
    assert alone == shared, "two daemons wrote other documents than one"
    note = (f"wall time from starting the daemons to the last one's exit (their startup included); partitions "
            f"taken up by each of the two (their logs): {', '.join(map(str, taken))}; the machine's "
            f"{os.cpu_count()} CPUs were {busy_one:.0%} busy with one daemon, {busy_two:.0%} with two "
            f"(daemon, V8 worker and PostgreSQL backends: more daemons than cores can only share them)")  # fmt: skip
    return [Row(SCENARIO, f"catch-up of a 20-partition stream projection by 2 daemon processes, {events:,} events",
                events / two, "the same catch-up by 1 daemon process", events / one, "ev/s", (">=", 1.6),
                note=note)]  # fmt: skip


def run(cluster: Cluster, new_database: NewDatabase, quick: bool) -> list[Row]:
    events, streams = (100_000, 10_000) if quick else (1_000_000, 10_000)
    rows = [catch_up_against_rebuild(new_database, events, streams, copies) for copies in (1, 5)]
    rows.append(catch_up_against_rebuild(new_database, events // 5, streams, 20))
    rows += scenario_follow.run(new_database, quick)
    rows += poison_rows(new_database, *((50_000, 1_000) if quick else (200_000, 1_000)))
    shapes = ((100_000, 1_000), (100_000, 10_000)) if quick else ((1_000_000, 10_000), (1_000_000, 100_000))
    rows += [rebuild_against_node(cluster, *shape) for shape in shapes]
    rows += two_daemons(new_database, events, streams)
    return rows
