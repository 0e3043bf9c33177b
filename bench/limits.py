"""The measured limits of one PostgreSQL primary on this machine: the table of docs/scaling.md.

    .venv/bin/python bench/limits.py            # full sizes (about five minutes); rewrites the table in docs/scaling.md
    .venv/bin/python bench/limits.py --quick    # small sizes (under a minute); prints the table only

Unlike bench/run.py this compares nothing: it measures absolute figures, the
ceilings one primary reached here, so that docs/scaling.md can say where each
limit is and what to do past it. It starts its own PostgreSQL (durable
settings, as every bench scenario: bench/harness.py's ``bench_cluster``) and:

1. **replica lag**: a hot standby made with ``pg_basebackup`` (as scenario 12),
   8 writer threads appending for a fixed time, the primary's
   ``pg_stat_replication`` sampled every 50 ms: bytes of WAL the standby has
   not replayed, and its ``replay_lag`` (seconds), p50 and max; the standby is
   then removed, and everything below runs on the primary alone;
2. **appends** through the public API (``jsproj.connect``, ``EventStore.append``)
   at 1, 8 and 32 concurrent writers -- threads of this process, each on a
   pooled connection of its own and a stream of its own -- single-event
   appends and 100-event appends (one message of 100 events per call), and 8
   writers on one stream (contention); each case warms up first (the same
   threads, discarded), then runs for a fixed time: events/s, the latency of
   one call (p50, p99), the WAL written per event, and this process's CPU
   seconds per wall second (near 1.0: the client, not the primary, was the
   limit);
3. **bytes per event**: the log's table and indexes (``pg_total_relation_size``
   over its partitions, if partitioned) over its events, after those appends;
4. **rebuild and catch-up** of one async stream projection: events loaded with
   COPY (not measured), ``jsproj.rebuild`` over all of them (events/s), then
   as many events again appended behind a running projection and a daemon
   (``Daemon.run(until_caught_up=True)``, in this process, a sandbox worker
   started beforehand as a running daemon has one) catching up (events/s);
   the documents are checked after each.

The table goes into docs/scaling.md between ``<!-- limits:begin -->`` and
``<!-- limits:end -->`` with the date, the machine, the sizes and the load
average before and after (the prose around it stays). Figures on a machine
shared with other work are lower than on a quiet one: the load says how
shared it was.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

import jsproj
from harness import ROOT, bench_cluster, busy_share, cpu_times, fmt, log, machine, new_database, timed
from jsproj.follow.daemon import Daemon
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import Cluster, temporary_cluster
from scenario_async import Loaded, balance_source, check_balance, load_events, warm_worker
from scenario_store import event

REPORT = ROOT / "docs" / "scaling.md"
BEGIN, END = "<!-- limits:begin: written by bench/limits.py -->", "<!-- limits:end -->"
BATCH = 100  # events per call in the batched cases


@dataclass(frozen=True)
class Sizes:
    """How long and how much each measurement runs."""

    warm: float  # seconds of warm-up before each append case (discarded)
    seconds: float  # seconds each append case is measured
    events: int  # events the projection is rebuilt from
    behind: int  # events the daemon catches up on, per round
    streams: int  # streams those events are spread over
    rounds: int  # rebuilds, and catch-ups


QUICK = Sizes(warm=0.5, seconds=1.5, events=50_000, behind=25_000, streams=1_000, rounds=2)
FULL = Sizes(warm=2.0, seconds=15.0, events=2_000_000, behind=1_000_000, streams=10_000, rounds=3)


@dataclass
class Load:
    """What writers did in a measured time."""

    events: int
    seconds: float
    latencies: list[float]  # seconds per call
    client_cpu: float  # this process's CPU seconds per wall second
    wal_bytes: int  # WAL the primary wrote meanwhile
    busy: float  # the share of the machine's CPU time in use meanwhile (other work included)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def latency_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Figures:
    """Everything measured, for the table and --json."""

    about: dict[str, Any] = field(default_factory=dict)
    appends: list[dict[str, Any]] = field(default_factory=list)
    lag: list[dict[str, Any]] = field(default_factory=list)
    sizes: dict[str, Any] = field(default_factory=dict)
    folds: dict[str, list[float]] = field(default_factory=dict)


# -- writers --------------------------------------------------------------------------------------------------

Message = Callable[[int, int], dict[str, Any]]  # (writer, call number) -> the message it appends


def own_streams(events: int) -> Message:
    """Each writer appends ``events``-event messages to a stream of its own (new for every case)."""
    tag = uuid.uuid4().hex[:8]

    def message(writer: int, n: int) -> dict[str, Any]:
        data = [event(n * events + k) for k in range(events)] if events > 1 else event(n)
        return {"id": f"w-{tag}-{writer}", "type": "Account", "data": data}

    return message


def one_stream(store: EventStore) -> Message:
    """Every writer appends single events to the same stream (created first): they take turns on its lock."""
    stream = f"hot-{uuid.uuid4().hex[:8]}"
    store.append({"id": stream, "type": "Account", "data": event(0)})
    return lambda writer, n: {"id": stream, "type": "Account", "data": event(n)}


def wal_lsn(conn: psycopg.Connection) -> str:
    return str(conn.execute("select pg_current_wal_lsn()").fetchone()[0])


def wal_since(conn: psycopg.Connection, lsn: str) -> int:
    return int(conn.execute("select pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn,)).fetchone()[0])


def drive(store: EventStore, admin: psycopg.Connection, writers: int, seconds: float, message: Message,
          per_call: int) -> Load:  # fmt: skip
    """``writers`` threads appending ``message``s for ``seconds``, started together; what they did."""
    latencies: list[list[float]] = [[] for _ in range(writers)]
    start = threading.Barrier(writers + 1)
    end = [0.0]

    def writer(number: int) -> None:
        mine, n = latencies[number], 0
        start.wait()
        while (began := time.perf_counter()) < end[0]:
            store.append(message(number, n))
            mine.append(time.perf_counter() - began)
            n += 1

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    lsn, cpu, machine_cpu = wal_lsn(admin), time.process_time(), cpu_times()
    began = time.perf_counter()
    end[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began  # the calls under way at the end included
    busy, client = busy_share(machine_cpu, cpu_times()), (time.process_time() - cpu) / elapsed
    every = [latency for mine in latencies for latency in mine]
    return Load(len(every) * per_call, elapsed, every, client, wal_since(admin, lsn), busy)


def measured(store: EventStore, admin: psycopg.Connection, sizes: Sizes, writers: int, message: Message,
             per_call: int) -> Load:  # fmt: skip
    """:func:`drive` twice: a warm-up (discarded), then the measurement."""
    drive(store, admin, writers, sizes.warm, message, per_call)
    return drive(store, admin, writers, sizes.seconds, message, per_call)


def append_row(what: str, writers: int, load: Load) -> dict[str, Any]:
    return {"what": what, "writers": writers, "rate": load.rate, "events": load.events, "seconds": load.seconds,
            "p50_ms": load.latency_ms(0.5), "p99_ms": load.latency_ms(0.99), "client_cpu": load.client_cpu,
            "wal_per_event": load.wal_bytes / max(1, load.events), "busy": load.busy}  # fmt: skip


def appends(dsn: str, sizes: Sizes, figures: Figures) -> None:
    """The append cases, on the primary alone (no standby): single-event, 100-event, and one hot stream."""
    cases: list[tuple[str, int, Callable[[EventStore], Message], int]] = [
        *[("single-event appends, a stream per writer", w, lambda _: own_streams(1), 1) for w in (1, 8, 32)],
        ("single-event appends, all writers on one stream", 8, one_stream, 1),
        *[(f"{BATCH}-event appends, a stream per writer", w, lambda _: own_streams(BATCH), BATCH) for w in (1, 8, 32)],
    ]  # fmt: skip
    with jsproj.connect(dsn, min_size=32, max_size=32) as store, psycopg.connect(dsn, autocommit=True) as admin:
        for what, writers, make, per_call in cases:
            log(f"limits: {what}, {writers} writer(s), {sizes.warm:g} s warm-up + {sizes.seconds:g} s")
            before = os.getloadavg()[0]
            load = measured(store, admin, sizes, writers, make(store), per_call)
            figures.appends.append({**append_row(what, writers, load), "load": before})
            log(f"limits:   {load.rate:,.0f} ev/s, p50 {load.latency_ms(0.5):.2f} ms")


# -- bytes per event ----------------------------------------------------------------------------------------------

#: The log's leaf tables: its partitions where it is partitioned, else itself.
LEAVES = """select coalesce((select array_agg(relid::oid) from pg_partition_tree('pge_events'::regclass) where isleaf),
                        array['pge_events'::regclass::oid])"""
SIZES = """select sum(pg_relation_size(o)), sum(pg_table_size(o) - pg_relation_size(o)), sum(pg_indexes_size(o))
           from unnest(%s::oid[]) o"""
#: Each index's bytes, a partition's under its parent index's name.
EACH_INDEX = """select coalesce(p.relname, c.relname), sum(pg_relation_size(i.indexrelid))
                from pg_index i join pg_class c on c.oid = i.indexrelid
                left join pg_inherits h on h.inhrelid = i.indexrelid left join pg_class p on p.oid = h.inhparent
                where i.indrelid = any(%s::oid[]) group by 1 order by 2 desc"""


def bytes_per_event(dsn: str, figures: Figures) -> None:
    """The log's heap, TOAST (and free-space/visibility maps) and indexes over its events; each index's share."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum analyze pge_events")
        leaves = conn.execute(LEAVES).fetchone()[0]
        heap, toast, indexes = conn.execute(SIZES, (leaves,)).fetchone()
        each = conn.execute(EACH_INDEX, (leaves,)).fetchall()
        events = conn.execute("select count(*) from pge_events").fetchone()[0]
        streams = conn.execute("select count(*) from pge_streams").fetchone()[0]
        stream_bytes = conn.execute("select pg_total_relation_size('pge_streams')").fetchone()[0]
        data = conn.execute("select avg(pg_column_size(data)) from pge_events").fetchone()[0]
    figures.sizes = {"events": events, "heap": int(heap), "toast": int(toast), "indexes": int(indexes),
                     "streams": streams, "stream_bytes": stream_bytes, "partitions": len(leaves),
                     "each_index": {name: int(size) for name, size in each},
                     "data_bytes": float(data or 0)}  # fmt: skip


# -- replica lag --------------------------------------------------------------------------------------------------

LAG = """select pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), extract(epoch from replay_lag)
         from pg_stat_replication"""


@contextmanager
def sampling(dsn: str, every: float = 0.05) -> Iterator[list[tuple[float, float | None]]]:
    """(bytes behind, replay_lag seconds) of the standby, sampled from the primary every ``every`` s meanwhile."""
    samples: list[tuple[float, float | None]] = []
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not done.wait(every):  # a sampling period, not a wait for anything
                for behind, seconds in conn.execute(LAG).fetchall():
                    samples.append((float(behind or 0), None if seconds is None else float(seconds)))

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


def lag_row(what: str, load: Load, samples: list[tuple[float, float | None]]) -> dict[str, Any]:
    behind = [b for b, _ in samples] or [0.0]
    seconds = [s for _, s in samples if s is not None] or [0.0]
    return {"what": what, "rate": load.rate, "p50_ms": load.latency_ms(0.5), "samples": len(samples),
            "bytes_p50": statistics.median(behind), "bytes_max": max(behind),
            "seconds_p50": statistics.median(seconds), "seconds_max": max(seconds)}  # fmt: skip


def streaming(admin: psycopg.Connection, timeout: float = 30.0) -> None:
    """Wait until the primary has a standby streaming from it (it connects once started)."""
    deadline = time.monotonic() + timeout
    while not admin.execute("select 1 from pg_stat_replication where state = 'streaming'").fetchone():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no standby streaming after {timeout:g} s")
        time.sleep(0.05)


def replica_lag(primary: Cluster, sizes: Sizes, figures: Figures) -> None:
    """8 writers on the primary while a standby replays: its lag sampled, for single- and 100-event appends."""
    standby = temporary_cluster(prefix="jsproj-limits-standby-")
    try:
        primary.base_backup_to(standby)
        standby.start()
        dsn = new_database(primary.dsn, "limits_lag")
        with jsproj.connect(dsn, min_size=8, max_size=8) as store, psycopg.connect(dsn, autocommit=True) as admin:
            streaming(admin)
            for what, per_call in (("single-event appends", 1), (f"{BATCH}-event appends", BATCH)):
                log(f"limits: replica lag under 8 writers of {what}, {sizes.warm:g} s warm-up + {sizes.seconds:g} s")
                message = own_streams(per_call)
                drive(store, admin, 8, sizes.warm, message, per_call)
                with sampling(dsn) as samples:
                    load = drive(store, admin, 8, sizes.seconds, message, per_call)
                figures.lag.append(lag_row(what, load, samples))
    finally:
        standby.destroy()


# -- rebuild and catch-up ----------------------------------------------------------------------------------------


def folds(dsn: str, sizes: Sizes, figures: Figures) -> None:
    """``jsproj.rebuild`` of one async stream projection over ``sizes.events`` events, then a daemon's catch-up on
    ``sizes.behind`` events appended behind it, ``sizes.rounds`` times each; the documents checked each time."""
    with jsproj.connect(dsn, max_size=2) as store:
        jsproj.deploy(store, [balance_source("Balance")])
        loaded = Loaded()
        log(f"limits: loading {sizes.events:,} events in {sizes.streams:,} streams (COPY, not measured)")
        load_events(dsn, loaded, sizes.events, sizes.streams)
        for round_ in range(sizes.rounds):
            log(f"limits: rebuild over {sizes.events:,} events, round {round_ + 1}")
            warm_worker()
            figures.folds.setdefault("rebuild.load", []).append(os.getloadavg()[0])
            seconds = timed(lambda: jsproj.rebuild(store, "Balance"))
            check_balance(dsn, "Balance", loaded)
            figures.folds.setdefault("rebuild", []).append(loaded.events / seconds)
        for round_ in range(sizes.rounds):
            load_events(dsn, loaded, sizes.behind, sizes.streams)
            log(f"limits: daemon catch-up on {sizes.behind:,} events behind, round {round_ + 1}")
            warm_worker()
            figures.folds.setdefault("catch_up.load", []).append(os.getloadavg()[0])
            seconds = timed(lambda: Daemon(dsn).run(until_caught_up=True))
            check_balance(dsn, "Balance", loaded)
            figures.folds.setdefault("catch_up", []).append(sizes.behind / seconds)


# -- the report ---------------------------------------------------------------------------------------------------


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def about(cluster: Cluster, sizes: Sizes, quick: bool) -> dict[str, Any]:
    """The machine, the server and its settings, and the sizes."""
    with psycopg.connect(cluster.dsn) as conn:
        names = ("server_version", "shared_buffers", "fsync", "synchronous_commit", "max_wal_size")
        settings = {name: conn.execute(f"show {name}").fetchone()[0] for name in names}
    return {**machine(), **settings, "cpus": os.cpu_count(), "quick": quick, "sizes": asdict(sizes),
            "load_before": load_average()}  # fmt: skip


def ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def mb(value: float) -> str:
    return f"{value / 1024 / 1024:.1f} MB" if value >= 1024 * 1024 else f"{value / 1024:.0f} kB"


def append_table(figures: Figures) -> list[str]:
    lines = ["| appends | writers | events/s | one call, p50 / p99 | WAL per event | client CPU | machine busy "
             "| load |", "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in figures.appends:
        lines.append(f"| {row['what']} | {row['writers']} | {fmt(row['rate'])} | {ms(row['p50_ms'])} / "
                     f"{ms(row['p99_ms'])} ms | {row['wal_per_event']:,.0f} B | {row['client_cpu']:.2f} | "
                     f"{row['busy']:.0%} | {row['load']:.2f} |")  # fmt: skip
    return lines


def lag_table(figures: Figures) -> list[str]:
    lines = ["| 8 writers, a standby replaying | events/s | bytes behind, p50 / max | replay lag, p50 / max |"
             " samples |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for row in figures.lag:
        lag = f"{row['seconds_p50'] * 1000:.1f} / {row['seconds_max'] * 1000:.1f} ms"
        lines.append(f"| {row['what']} | {fmt(row['rate'])} | {mb(row['bytes_p50'])} / {mb(row['bytes_max'])} | "
                     f"{lag} | {row['samples']} |")  # fmt: skip
    return lines


def size_table(figures: Figures) -> list[str]:
    s = figures.sizes
    per = s["events"] or 1
    total = s["heap"] + s["toast"] + s["indexes"]
    each = ", ".join(f"{name} {size / per:.0f}" for name, size in s["each_index"].items())
    parts = f" in {s['partitions']} partitions" if s["partitions"] > 1 else ""
    return [
        "| bytes per event | heap | TOAST and maps | indexes | total | of which the data (JSON) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| pge_events, {s['events']:,} events{parts} | {s['heap'] / per:.0f} | {s['toast'] / per:.0f} | "
        f"{s['indexes'] / per:.0f} | **{total / per:.0f}** | {s['data_bytes']:.0f} |",
        "",
        f"Indexes, bytes per event: {each}. pge_streams: {s['streams']:,} streams, "
        f"{s['stream_bytes'] / max(1, s['streams']):.0f} bytes each (table and index).",
    ]


def fold_table(figures: Figures, sizes: Sizes) -> list[str]:
    lines = ["| folding one async stream projection | events/s, median (each round) | load at each round's start |",
             "|---|---:|---:|"]  # fmt: skip
    names = {"rebuild": f"`jsproj.rebuild` over {sizes.events:,} events in {sizes.streams:,} streams",
             "catch_up": f"daemon catch-up on {sizes.behind:,} events appended behind it"}  # fmt: skip
    for key, what in names.items():
        rates = figures.folds.get(key, [])
        if rates:
            loads = ", ".join(f"{load:.2f}" for load in figures.folds[f"{key}.load"])
            lines.append(f"| {what} | {fmt(statistics.median(rates))} ({', '.join(fmt(r) for r in rates)}) | {loads} |")
    return lines


def report(figures: Figures, sizes: Sizes) -> str:
    a = figures.about
    head = (
        f"Measured {a['date']}{' (quick sizes: a smoke run, not the figures)' if a['quick'] else ''} in "
        f"{a['minutes']:.1f} minutes on {a['cpu']}, {a['memory']} RAM, {a['os']}; PostgreSQL {a['server_version']} "
        f"on a local socket (fsync {a['fsync']}, synchronous_commit {a['synchronous_commit']}, shared_buffers "
        f"{a['shared_buffers']}, max_wal_size {a['max_wal_size']}); jsproj {a['jsproj']}, Python {a['python']}, "
        f"psycopg {a['psycopg']}. Load average (1 / 5 / 15 min) **{a['load_before']}** before, "
        f"**{a['load_after']}** after. Writers are threads of one Python process, each with a pooled connection; "
        f"each case ran {sizes.warm:g} s of warm-up (discarded), then {sizes.seconds:g} s measured; events are "
        f'~{figures.sizes.get("data_bytes", 0):.0f} bytes of JSON each (`{{"amount", "note"}}`).'
    )
    return "\n".join([
        BEGIN, head, "", *append_table(figures), "", *lag_table(figures), "", *size_table(figures), "",
        *fold_table(figures, sizes), END,
    ])  # fmt: skip


def write_report(text: str) -> None:
    """Replace the block between the markers of docs/scaling.md (the prose around it stays)."""
    doc = REPORT.read_text("utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{REPORT} has no {BEGIN} ... {END} block to write the figures into")
    REPORT.write_text(pattern.sub(lambda _: text, doc, count=1), "utf-8")


def measure(sizes: Sizes, quick: bool) -> Figures:
    """Every measurement, on a PostgreSQL of its own (removed after)."""
    figures, started = Figures(), time.monotonic()
    cluster = bench_cluster("jsproj-limits-")
    try:
        figures.about = about(cluster, sizes, quick)
        replica_lag(cluster, sizes, figures)
        dsn = new_database(cluster.dsn, "limits_append")
        appends(dsn, sizes, figures)
        bytes_per_event(dsn, figures)
        folds(new_database(cluster.dsn, "limits_fold"), sizes, figures)
    finally:
        cluster.destroy()
    figures.about |= {"load_after": load_average(), "minutes": (time.monotonic() - started) / 60}
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run); prints the table only")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/scaling.md as it is")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every figure as JSON")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    figures = measure(sizes, args.quick)
    text = report(figures, sizes)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2, default=str))
    if not (args.quick or args.no_write):
        write_report(text)
        log(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
