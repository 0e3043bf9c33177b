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
  * two daemon processes against one catching up a projection in 20
    partitions: the CPU time per event of the daemons and of every
    PostgreSQL process (what carries over to machines with more cores),
    how the partitions' events were split between the two, and their
    events/s (for scale: on two cores one daemon already uses most of them).

The daemon runs in this process (a sandbox worker started beforehand, as a
running daemon has one), except where processes are the point: two daemons
(bench/daemon_process.py, started and ready before they are told to begin),
and the Node.js program (timed from its start to its last write, not its
interpreter's startup). Every scenario checks the documents before it reports.
"""

from __future__ import annotations

import array
import bisect
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import psycopg

import scenario_follow
from harness import (
    PAIRS,
    Row,
    alternate,
    busy_share,
    clone_database,
    cpu_seconds,
    cpu_times,
    database_dsn,
    drop_database,
    log,
    postmaster_pid,
    server_settled,
    take_turns,
    timed,
    tree_cpu_seconds,
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
T = TypeVar("T")


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
        with conn.cursor().copy("copy pge_events (id, stream_id, stream_type, version, type, data) from stdin") as copy:
            for n in range(start, start + count):
                kind, amount, poison = "Withdrawn" if n % 5 == 4 else "Deposited", n % 97 + 1, is_poison(n, percent)
                data = {"amount": amount, "poison": True} if poison else {"amount": amount}
                copy.write_row((f"00000000-0000-4000-8000-{n:012d}", f"account-{n % streams}", "Account",
                                n // streams + 1, kind, json.dumps(data)))  # fmt: skip
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


def on_copy(cluster: Cluster, template: str, measure: Callable[[str], T]) -> T:
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


PARTS = 20  # the partitions of the projection two daemons share


def partition_of(key: str, count: int) -> int:
    """The partition of a document key, as js/lib/policies.js's ``partitionOf``: FNV-1a over its UTF-16 code
    units."""
    h, units = 0x811C9DC5, key.encode("utf-16-le")
    for i in range(0, len(units), 2):
        h = ((h ^ (units[i] | units[i + 1] << 8)) * 0x01000193) & 0xFFFFFFFF
    return h % count


@dataclass
class Parted:
    """The 20-partition projection's stages, with where each partition's catch-up starts and the positions of
    the events each partition folds in it, in order (what a daemon's pages over a range folded)."""

    stage: Stages
    starts: dict[str, int]  # by unit ("Parted/3"): the position its progress is at before the catch-up
    positions: dict[str, array.array]  # by unit: the positions of the catch-up's events of its documents


def parted_stage(cluster: Cluster, events: int, streams: int) -> Parted:
    stage = stages(cluster, "async_partitions", [balance_source("Parted")], events, streams,
                   partitions={"Parted": PARTS})  # fmt: skip
    with psycopg.connect(database_dsn(cluster.dsn, stage.catch_up)) as conn:
        starts = {f"Parted/{part}": position for part, position in conn.execute(
            "select partition, last_position from pge_projection_progress where name = 'Parted'")}  # fmt: skip
        positions = {unit: array.array("q") for unit in starts}
        rows = conn.execute("select position, stream_id from pge_events where position > %s order by position",
                            (min(starts.values()),))  # fmt: skip
        for position, stream in rows:
            unit = f"Parted/{partition_of(stream, PARTS)}"
            if position > starts[unit]:
                positions[unit].append(position)
    assert sum(map(len, positions.values())) == events, "the catch-up's events are not the stage's"
    return Parted(stage, starts, positions)


def folded_by(parted: Parted, reports: list[dict[str, Any]]) -> list[int]:
    """The events each daemon folded into its partitions' documents: each page it committed moved its units
    from where they were (by it or the other daemon) to where the page left them."""
    moves: dict[str, list[tuple[tuple[int, int], int]]] = {unit: [] for unit in parted.starts}
    for daemon, report in enumerate(reports):
        for page in report["pages"]:
            for unit, (tx, position) in page["reached"].items():
                moves[unit].append(((tx, position), daemon))
    folded = [0] * len(reports)
    for unit, reached in moves.items():
        positions, at = parted.positions[unit], bisect.bisect_right(parted.positions[unit], parted.starts[unit])
        for (_, position), daemon in sorted(reached):  # a unit's progress only moves on, whoever holds it
            to = bisect.bisect_right(positions, position)
            folded[daemon] += to - at
            at = to
    assert sum(folded) == parted.stage.events, f"the daemons' pages folded {folded}, not {parted.stage.events}"
    return folded


def daemons_catch_up(parted: Parted, dsn: str, database: str, count: int) -> tuple[dict[str, float], list[dict]]:
    """``count`` daemon processes (bench/daemon_process.py: what ``jsproj daemon --until-caught-up`` runs) catch
    up the copy ``database``: started and ready first (Python, jsproj, a V8 worker), then told to begin at once.

    Figures: events/s from the start to the last one's report (caught up, connections closed); CPU seconds of
    the daemons (each process and its V8 worker) and of every process of the cluster (the postmaster and its
    children: the daemons' backends, background writers, autovacuum), from /proc before the start and after
    the daemons' backends are gone (reaped: counted in the postmaster's); the machine's busy share meanwhile.
    Also each daemon's report (its units and pages)."""
    argv = [sys.executable, str(HERE / "daemon_process.py"), dsn, str(PAGE_SIZE)]
    postmaster = postmaster_pid(parted.stage.cluster.data_dir)
    logs = [tempfile.TemporaryFile("w+") for _ in range(count)]
    daemons: list[subprocess.Popen] = []

    def failed(daemon: subprocess.Popen, err: Any) -> AssertionError:
        daemon.wait(10)
        err.seek(0)
        return AssertionError(f"a daemon process failed with exit code {daemon.returncode}: {err.read()[-2000:]}")

    try:
        daemons += [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
                    for err in logs]  # fmt: skip
        for daemon, err in zip(daemons, logs, strict=True):
            if daemon.stdout.readline() != "ready\n":
                raise failed(daemon, err)
        server_settled(postmaster, database)
        cpu_daemons, cpu_server = sum(tree_cpu_seconds(d.pid) for d in daemons), tree_cpu_seconds(postmaster)
        cpu_python = sum(cpu_seconds(d.pid) for d in daemons)  # the processes without their V8 workers
        started, machine = time.perf_counter(), cpu_times()
        for daemon in daemons:
            daemon.stdin.write("go\n")
            daemon.stdin.flush()
        lines = [daemon.stdout.readline() for daemon in daemons]
        seconds, busy = time.perf_counter() - started, busy_share(machine, cpu_times())
        for daemon, err, line in zip(daemons, logs, lines, strict=True):
            if not line:
                raise failed(daemon, err)
        server_settled(postmaster, database)
        cpu_daemons = sum(tree_cpu_seconds(d.pid) for d in daemons) - cpu_daemons
        cpu_server = tree_cpu_seconds(postmaster) - cpu_server
        cpu_python = sum(cpu_seconds(d.pid) for d in daemons) - cpu_python
    finally:
        for daemon in daemons:
            daemon.stdin.close()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        for err in logs:
            err.close()
    reports = [json.loads(line) for line in lines]
    assert all(report["caught_up"] for report in reports), "a daemon did not catch up"
    events = parted.stage.events
    cpu = {"python": cpu_python, "worker": cpu_daemons - cpu_python, "server": cpu_server}
    figures = {"rate": events / seconds, "cpu": sum(cpu.values()) / events * 1e6, "busy": busy,
               "used": sum(cpu.values()) / seconds,
               "read": sum(page["read"] for report in reports for page in report["pages"]) / events}  # fmt: skip
    for part, used in cpu.items():
        figures |= {f"{part}_cpu": used / events * 1e6, f"{part}_used": used / seconds}
    return figures, reports


def partitioned(parted: Parted, count: int, seen: dict[str, Any]) -> dict[str, float]:
    """:func:`daemons_catch_up` by ``count`` daemons on a copy of the 20-partition projection's stage, the
    documents checked (and against the other count's in ``seen``); with two, the events each folded, and the
    partitions each held after its first balance and at its end, go into the figures and ``seen``."""

    def measure(dsn: str) -> dict[str, float]:
        figures, reports = daemons_catch_up(parted, dsn, f"{parted.stage.catch_up}_copy", count)
        with psycopg.connect(dsn) as conn:
            documents = dict(conn.execute("select id, data from pge_projections_parted").fetchall())
        moves = sum(doc["deposits"] + doc["withdrawals"] for doc in documents.values())
        balance = sum(doc["balance"] for doc in documents.values())
        loaded = parted.stage.caught
        assert (moves, balance) == (loaded.folded, loaded.balance), f"{count} daemon(s): {(moves, balance)}"
        assert seen.setdefault("documents", documents) == documents, "two daemons wrote other documents than one"
        folded = folded_by(parted, reports)
        if count > 1:
            figures |= {"larger": max(folded), "even": parted.stage.events / count}
            seen.setdefault("held", []).append([(len(r["held"][0]), len(r["held"][-1])) if r["held"] else (0, 0)
                                                for r in reports])  # fmt: skip
            seen.setdefault("folded", []).append(folded)
        return figures

    return on_copy(parted.stage.cluster, parted.stage.catch_up, measure)


def two_daemons(cluster: Cluster, events: int, streams: int) -> list[Row]:
    if not partitions_available():
        log("async: two daemons on one partitioned projection: skipped: partitions not available")
        return []
    log(f"async: catch-up of a {PARTS}-partition projection, {events:,} events in {streams:,} streams, 2 daemons"
        f" and 1, {PAIRS} pairs")  # fmt: skip
    parted = parted_stage(cluster, events, streams)
    seen: dict[str, Any] = {}
    turns = take_turns({"two": lambda: partitioned(parted, 2, seen), "one": lambda: partitioned(parted, 1, seen)},
                       what="two daemons against one (3 rows)")  # fmt: skip
    med = turns.median
    what = f"catch-up of a {PARTS}-partition stream projection by 2 daemon processes, {events:,} events"

    def parts(side: str, figure: str, unit: str) -> str:
        return " + ".join(f"{name} {med(f'{side}.{part}_{figure}'):.2f}{unit}" for part, name in
                          (("python", "daemon"), ("worker", "V8 worker"), ("server", "PostgreSQL")))  # fmt: skip

    cpu_note = (
        f"CPU time of the daemons (each process and its V8 worker) and of every process of the bench's PostgreSQL "
        f"cluster (the daemons' backends, WAL writer, checkpointer, autovacuum), from /proc/<pid>/stat before and "
        f"after the catch-up, per event of the log (medians): 2 daemons {parts('two', 'cpu', ' us')}; 1 daemon "
        f"{parts('one', 'cpu', ' us')}. Each daemon reads and parses the whole log and folds only its partitions' "
        f"documents: the 2 daemons' pages read {med('two.read'):.2f}x the log's events, 1 daemon's "
        f"{med('one.read'):.2f}x. The daemons' processes are started and ready beforehand (not counted: a running "
        f"daemon has paid that), then told to begin at once"
    )  # fmt: skip
    held = "; ".join(" and ".join(f"{first}->{last}" for first, last in pair) for pair in seen["held"])
    folded = "; ".join(" / ".join(f"{n:,}" for n in pair) for pair in seen["folded"])
    balance_note = (
        f"events each of the 2 daemons folded into its partitions' documents (its pages' ranges of its units, "
        f"counted in the store), pair by pair: {folded}; partitions each held after its first balance -> at its "
        f"end: {held}. A daemon takes ceil(units / live daemons) of them, and gives back what is above its share "
        f"at its next balance, a second later; both daemons are registered (pge_daemons) before they begin, as "
        f"running daemons are: started at once unregistered, the first to balance may take all 20, and a quick "
        f"run's catch-up is over within that second. Target: the folds (not the log's reading, which each daemon "
        f"does whole) take as long as the larger share; at 1.25x of an even split the second daemon cuts them "
        f"to 62.5 % of one daemon's at best, a speed-up of 1.6x for that part"
    )  # fmt: skip
    cpus = os.cpu_count() or 1
    most = cpus / med("two.cpu") * 1e6  # events/s if 2 daemons and PostgreSQL had every CPU to themselves
    rate_note = (
        f"wall time from telling the daemons to begin to the last one's report (caught up, connections closed); "
        f"reported for scale: it cannot exceed 1x on this machine's {cpus} CPUs. The 1-daemon catch-up used "
        f"{med('one.used'):.2f} CPU seconds per wall second ({parts('one', 'used', '')}), 2 daemons "
        f"{med('two.used'):.2f}; 2 daemons need {med('two.cpu'):.1f} CPU us per event (first row), so {cpus} CPUs "
        f"fit at most {most:,.0f} ev/s of them, {most / med('one.rate'):.2f}x one daemon's rate. The whole "
        f"machine was {med('one.busy'):.0%} busy with 1 daemon, {med('two.busy'):.0%} with 2 (other work "
        f"included; medians)"
    )  # fmt: skip
    return [
        Row(SCENARIO, f"CPU time per event (daemons + PostgreSQL) of a {PARTS}-partition stream projection's "
                      f"catch-up by 2 daemon processes, {events:,} events",
            turns.pair("two.cpu", "one.cpu"), "the same catch-up by 1 daemon process", "CPU us/ev", ("<=", 1.15),
            note=cpu_note),
        Row(SCENARIO, f"the larger of 2 daemons' share of a {PARTS}-partition catch-up's events, {events:,} events",
            turns.pair("two.larger", "two.even"), "an even split (half the events)", "ev", ("<=", 1.25),
            note=balance_note),
        Row(SCENARIO, what, turns.pair("two.rate", "one.rate"), "the same catch-up by 1 daemon process", "ev/s",
            note=rate_note),
    ]  # fmt: skip


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
