"""Scenario 7: the async engine at its limit -- catch-up against rebuild, poison events, rebuild against a fair
Node.js program, and two daemons on one partitioned projection (the writers' scenarios: scenario_follow.py).

Every row compares figures measured in turns, three pairs, each measurement
on a fresh copy (CREATE DATABASE ... TEMPLATE) of a store set up once with
the same events (loaded with COPY, not measured), so that every pair starts
from the same state:

  * catch-up against rebuild, 1, 5 and 20 stream projections: the daemon
    building them from status 'build', then following the same number of
    events appended once they run (events/s both, every projection folded);
  * poison events (0.1, 1 and 5 % of the events throw, policy 'dead-letter')
    against none (in the same rounds), for the build and for the catch-up;
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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg

import scenario_follow
from harness import (
    PAIRS,
    Row,
    alternate,
    busy_share,
    clone_database,
    cpu_times,
    database_dsn,
    drop_database,
    log,
    take_turns,
    timed,
)
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


# -- a store in two states, copied for every measurement -----------------------------------------------------


@dataclass
class Stages:
    """A store in two states, kept as templates: ``build`` (the events loaded, the projections deployed, status
    'build') and ``catch_up`` (built, then as many events appended again: what a catch-up has to do)."""

    cluster: Cluster
    build: str
    catch_up: str
    names: list[str]
    built: Loaded  # what the documents must add up to after a build
    caught: Loaded  # ... after a catch-up
    events: int  # each stage's new events


def stages(cluster: Cluster, name: str, sources: list[dict[str, str]], events: int, streams: int,
           percent: float = 0.0, **options: Any) -> Stages:  # fmt: skip
    """Set up both stages (loaded with COPY, built by a daemon: not measured)."""
    build, catch_up = f"{name}_build", f"{name}_catch_up"
    dsn = clone_database(cluster.dsn, "template1", build)
    new_store(dsn, sources, **options)
    built = Loaded()
    load_events(dsn, built, events, streams, percent)
    dsn = clone_database(cluster.dsn, build, catch_up)
    daemon_seconds(dsn)
    caught = replace(built)
    load_events(dsn, caught, events, streams, percent)
    names = [source["file"].removesuffix(".js") for source in sources]
    return Stages(cluster, build, catch_up, names, built, caught, events)


def on_copy(cluster: Cluster, template: str, measure: Callable[[str], float]) -> float:
    """``measure`` on a new copy of ``template`` (given its DSN), dropped after: every pair starts alike."""
    name = f"{template}_copy"
    try:
        return measure(clone_database(cluster.dsn, template, name))
    finally:
        drop_database(cluster.dsn, name)


def daemon_rate(stage: Stages, phase: str) -> float:
    """Events/s of an in-process daemon building (``phase`` 'build') or catching up a copy; the documents checked."""
    loaded = stage.built if phase == "build" else stage.caught

    def measure(dsn: str) -> float:
        seconds = daemon_seconds(dsn)
        for name in stage.names:
            check_balance(dsn, name, loaded)
        return stage.events / seconds

    return on_copy(stage.cluster, stage.build if phase == "build" else stage.catch_up, measure)


# -- catch-up against rebuild --------------------------------------------------------------------------------


def catch_up_against_rebuild(cluster: Cluster, events: int, streams: int, copies: int) -> Row:
    """Build ``copies`` stream projections from ``events`` events, against catching up on as many appended after,
    in turns (each on a copy of its stage)."""
    names = [f"Balance{k}" for k in range(1, copies + 1)]
    stage = stages(cluster, f"async_catchup_{copies}", [balance_source(name) for name in names], events, streams)
    log(f"async: catch-up and rebuild of {copies} stream projection(s), {events:,} events in {streams:,} streams,"
        f" {PAIRS} pairs")  # fmt: skip
    pairs = alternate(lambda: daemon_rate(stage, "catch-up"), lambda: daemon_rate(stage, "build"),
                      what=f"catch-up against rebuild, {copies} projection(s)")  # fmt: skip
    plural = "s" if copies > 1 else ""
    return Row(SCENARIO, f"catch-up, {copies} stream projection{plural}, {events:,} events, {streams:,} streams",
               pairs, f"the daemon's rebuild of the same projection{plural}, as many events", "ev/s", (">=", 0.5),
               note="events/s of the log, each event folded into every projection")  # fmt: skip


# -- poison events ---------------------------------------------------------------------------------------------


def poison_rows(cluster: Cluster, events: int, streams: int) -> list[Row]:
    log(f"async: poison events, 0 / 0.1 / 1 / 5 %, {events:,} events in {streams:,} streams, build and catch-up,"
        f" {PAIRS} rounds")  # fmt: skip
    stage = {
        percent: stages(cluster, f"async_poison_{percent:g}".replace(".", "_"),
                        [balance_source("Poisoned", poison=True)], events, streams, percent,
                        on_error={"Poisoned": "dead-letter"})
        for percent in (0.0, *POISONED)
    }  # fmt: skip
    turns = take_turns(
        {f"{percent:g}.{phase}": lambda st=st, phase=phase: daemon_rate(st, phase)
         for percent, st in stage.items() for phase in ("build", "catch-up")},
        what="builds and catch-ups with poison events against none (6 rows)",
    )  # fmt: skip
    rows = []
    for percent in POISONED:
        for phase in ("build", "catch-up"):
            rows.append(Row(SCENARIO, f"{phase} with {percent:g} % poison events (dead-lettered), {events:,} events",
                            turns.pair(f"{percent:g}.{phase}", f"0.{phase}"),
                            f"the same {phase}, no poison events (in the same rounds)", "ev/s",
                            (">=", 0.7) if percent == 1.0 else None))  # fmt: skip
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
    """The daemon's rebuild of scenario_rebuild's projections against rebuild_lines.js, the same documents, in
    turns: each pair on a new copy of the loaded store, the Node.js program after the daemon on the same copy."""
    template = f"async_lines_{streams}"
    fresh_database(cluster, template, events, streams)
    log(f"async: rebuild, {events:,} events in {streams:,} streams: jsproj daemon and Node.js (record lines),"
        f" {PAIRS} pairs")  # fmt: skip
    copy = f"{template}_copy"

    def ours() -> float:
        return events / daemon_seconds(clone_database(cluster.dsn, template, copy))

    def node() -> float:
        try:
            found = node_lines(cluster, copy)
            assert found["events"] == events, f"the Node.js program read {found['events']} events, not {events}"
            check_same(database_dsn(cluster.dsn, copy))
        finally:
            drop_database(cluster.dsn, copy)
        return found["events"] / found["seconds"]

    pairs = alternate(ours, node, what=f"the daemon's rebuild against Node.js, {streams:,} streams")
    return Row(SCENARIO, f"rebuild a stream projection + aggregate, {events:,} events, {streams:,} streams",
               pairs, "Node.js + pg doing what jsproj's build does (record lines, next page read ahead)", "ev/s",
               (">=", 1.0), floor=150_000)  # fmt: skip


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


def partitioned(stage: Stages, daemons: int, seen: dict[str, Any]) -> float:
    """Events/s of ``daemons`` processes catching up a copy of the 20-partition projection's stage; the documents
    (checked, and against the other count's in ``seen``), the partitions each took up and how busy the CPUs were
    go into ``seen``."""

    def measure(dsn: str) -> float:
        seconds, logs, busy = daemon_processes_seconds(dsn, daemons)
        with psycopg.connect(dsn) as conn:
            documents = dict(conn.execute("select id, data from pge_projections_parted").fetchall())
        moves = sum(doc["deposits"] + doc["withdrawals"] for doc in documents.values())
        balance = sum(doc["balance"] for doc in documents.values())
        loaded = stage.caught
        assert (moves, balance) == (loaded.folded, loaded.balance), f"{daemons} daemon(s): {(moves, balance)}"
        assert seen.setdefault("documents", documents) == documents, "two daemons wrote other documents than one"
        seen.setdefault(f"busy_{daemons}", []).append(busy)
        seen[f"taken_{daemons}"] = [sum(": working on " in line for line in text.splitlines()) for text in logs]
        return stage.events / seconds

    return on_copy(stage.cluster, stage.catch_up, measure)


def two_daemons(cluster: Cluster, events: int, streams: int) -> list[Row]:
    if not partitions_available():
        log("async: two daemons on one partitioned projection: skipped: partitions not available")
        return []
    log(f"async: catch-up of a 20-partition projection, {events:,} events in {streams:,} streams, 2 daemons and 1,"
        f" {PAIRS} pairs")  # fmt: skip
    stage = stages(cluster, "async_partitions", [balance_source("Parted")], events, streams, partitions={"Parted": 20})
    seen: dict[str, Any] = {}
    pairs = alternate(lambda: partitioned(stage, 2, seen), lambda: partitioned(stage, 1, seen),
                      what="two daemons against one")  # fmt: skip
    busy_one, busy_two = statistics.median(seen["busy_1"]), statistics.median(seen["busy_2"])
    note = (f"wall time from starting the daemons to the last one's exit (their startup included); partitions "
            f"taken up by each of the two (their logs, the last pair): {', '.join(map(str, seen['taken_2']))}; the "
            f"machine's {os.cpu_count()} CPUs were {busy_one:.0%} busy with one daemon, {busy_two:.0%} with two "
            f"(medians; daemon, V8 worker and PostgreSQL backends: more daemons than cores can only share them)"
            )  # fmt: skip
    return [Row(SCENARIO, f"catch-up of a 20-partition stream projection by 2 daemon processes, {events:,} events",
                pairs, "the same catch-up by 1 daemon process", "ev/s", (">=", 1.6), note=note)]  # fmt: skip


def run(cluster: Cluster, new_database: NewDatabase, quick: bool) -> list[Row]:
    events, streams = (50_000, 10_000) if quick else (1_000_000, 10_000)
    rows = [catch_up_against_rebuild(cluster, events, streams, copies) for copies in (1, 5)]
    rows.append(catch_up_against_rebuild(cluster, events // 5, streams, 20))
    rows += scenario_follow.run(new_database, quick)
    rows += poison_rows(cluster, *((20_000, 1_000) if quick else (200_000, 1_000)))
    shapes = ((50_000, 1_000), (50_000, 10_000)) if quick else ((1_000_000, 10_000), (1_000_000, 100_000))
    rows += [rebuild_against_node(cluster, *shape) for shape in shapes]
    rows += two_daemons(cluster, events, streams)
    return rows
