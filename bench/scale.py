"""``make bench-scale`` (issue 31): the log at 50M events, partitioned by position against one table.

One cluster (durable, on disk), two stores of the same N events (``--events``, default 50M): ``flat``, the log as
one table, and ``parted``, the log partitioned (``--partition-size``, default 10M events: the first partition,
then one every size, as ``jsproj partition-log`` and the appends make them). Both are loaded alike, at the same
time: a transaction that truncates the log and fills it with ``insert ... select`` (with ``wal_level=minimal``
the rows skip the WAL), the indexes dropped before and made after, then ``vacuum analyze``. The events: N / 50
``Account`` streams of 50 events, interleaved (position n is an event of stream n mod N/50: each stream's events
span the whole log, so that in ``parted`` they lie in every partition), two event types, ids increasing with
positions (as pge_event_ids makes them), 20,000 transactions of equal runs of positions.

The rows, measured in rounds that take turns (bench/harness.py: ``take_turns`` with ``swap``), ratio
partitioned / one table:

- appends: ``--clients`` connections each calling ``pge_append`` with one event to a random stream, for
  ``--seconds``; and the same with a given ``$id`` (on a partitioned log the append locks it and checks it
  again: sql/functions/partitions.sql).
- stream reads: ``EventStore.fetch_stream`` of random streams (50 events, from every partition), 2 threads.
- a rebuild's read of the whole log: the readers' page query (``jsproj.store.reading.page_query``, pages of
  the daemon's 20,000 events) run server-side from the start to the end, in events/s.
- index sizes, by index (summed over partitions).

Then the conversion of ``flat`` while ``--clients`` writers append: what ``jsproj partition-log`` held
writers for (its switch transaction, and the longest append the writers saw), per million events.

Writes docs/benchmarks-scale.md (``--no-write``: only prints). ``--events 1000000`` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from harness import ROOT, Pairs, Row, Turns, log, machine, new_database, table, take_turns
from jsproj.store import partitioning
from jsproj.store.filters import log_filter
from jsproj.store.reading import page_query
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import temporary_cluster

REPORT = ROOT / "docs" / "benchmarks-scale.md"
STREAM_LENGTH = 50
PAGE = 20_000  # the daemon's DEFAULT_PAGE_SIZE
#: The server: durable, on disk, room for two loads at once (24 GB of RAM on the machine of the report).
SETTINGS = {"shared_buffers": "4GB", "maintenance_work_mem": "1GB", "max_wal_size": "8GB",
            "checkpoint_timeout": "30min", "wal_level": "minimal", "max_wal_senders": "0",
            "max_parallel_maintenance_workers": "1", "autovacuum": "off", "max_connections": "40",
            "jit": "off"}  # fmt: skip
#: The events of position n (a bigint) and their streams: ids increasing with n, in the layout of pge_event_ids.
#: Their transactions: ``TRANSACTIONS`` ids taken (and committed) before the load, each the tx_id of an equal run of
#: positions, as appends of many transactions leave them (the planner's estimates of the readers' (tx_id, position)
#: condition come from them: one transaction for the whole log would make them nonsense).
LOAD = """insert into pge_events (position, id, stream_id, stream_type, version, type, data, timestamp, appended_at,
                        tx_id)
    overriding system value
    select n, (lpad(to_hex(n), 12, '0') || '7000' || '8' || lpad(to_hex(n), 15, '0'))::uuid, 's-' || (n %% %(streams)s),
           'Account', (n - 1) / %(streams)s + 1, case when n %% 10 = 0 then 'Withdrawn' else 'Deposited' end,
           jsonb_build_object('amount', n %% 1000), now() - (%(events)s - n) * interval '10 ms',
           now() - (%(events)s - n) * interval '10 ms',
           (%(first_tx)s + (n - 1) * %(transactions)s / %(events)s)::text::xid8
    from generate_series(1, %(events)s::bigint) as n"""
TRANSACTIONS = 20_000


def take_transactions(admin: str) -> int:
    """The first of ``TRANSACTIONS`` transaction ids taken and committed one after the other."""
    with psycopg.connect(admin, autocommit=True) as conn:
        first = int(conn.execute("select pg_current_xact_id()::text::bigint").fetchone()[0])
        for _ in range(TRANSACTIONS - 1):
            conn.execute("select pg_current_xact_id()")
    return first


def prepare(admin: str, name: str, events: int, size: int | None, first_tx: int) -> str:
    """A migrated store ``name`` holding ``events`` events, partitioned by ``size`` (None: one table): its DSN."""
    dsn = new_database(admin, name)
    with EventStore(dsn, max_size=1) as store:
        store.migrate()
    if size is not None:
        partitioning.partition_log(dsn, size=size, headroom=1)
        with psycopg.connect(dsn, autocommit=True) as conn:  # the partitions the appends would have made
            conn.execute("select pge_log_extend(%s, 0)", (events,))
    streams = max(1, events // STREAM_LENGTH)
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        indexes = index_statements(conn)
        for drop, _ in indexes:
            conn.execute(drop)
        with conn.transaction():  # truncated in the transaction that fills it: no WAL for the rows
            conn.execute("truncate pge_events, pge_streams")
            # Each stream's row with its version and tombstone, as appends keep them (migration 0018): the count of
            # its events (LOAD gives stream s-k the positions n = k mod streams, versions 1, 2, ...).
            conn.execute("""insert into pge_streams (id, type, version, deleted)
                            select 's-' || s, 'Account', case when s = 0 then %(events)s / %(streams)s
                                                              else (%(events)s - s) / %(streams)s + 1 end, false
                            from generate_series(0, %(streams)s - 1) s""",
                         {"events": events, "streams": streams})  # fmt: skip
            conn.execute(LOAD, {"events": events, "streams": streams, "first_tx": first_tx,
                                "transactions": TRANSACTIONS})  # fmt: skip
            conn.execute("select setval(pg_get_serial_sequence('pge_events', 'position'), %s)", (events,))
        loaded = time.monotonic()
        for _, create in indexes:
            conn.execute(create)
        conn.execute("vacuum analyze pge_events")
        conn.execute("vacuum analyze pge_streams")
        conn.execute("checkpoint")
        wrong = conn.execute(
            """select count(*) from (select * from pge_streams order by random() limit 1000) s
               where s.version <> (select max(e.version) from pge_events e where e.stream_id = s.id)"""
        )
        if wrong.fetchone()[0]:
            raise RuntimeError("the loaded streams' versions are not their last events'")
    log(f"{name}: {events:,} events loaded in {loaded - started:.0f} s, indexed and vacuumed in "
        f"{time.monotonic() - loaded:.0f} s")  # fmt: skip
    return dsn


def index_statements(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(drop, create) of each index of the log but its primary key: the partitioned table's (whose create makes
    each partition's) and each table's own (a partition's unique constraints), not the partitions' copies."""
    rows = conn.execute(
        """select i.indexrelid::regclass::text, i.indrelid::regclass::text, c.conname,
                  coalesce(pg_get_constraintdef(c.oid), replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON '))
           from (select relid from pg_partition_tree('pge_events') union select 'pge_events'::regclass) t
           join pg_index i on i.indrelid = t.relid
           left join pg_constraint c on c.conindid = i.indexrelid and c.conrelid = i.indrelid
           where not i.indisprimary and not exists (select from pg_inherits h where h.inhrelid = i.indexrelid)
           order by 1"""
    ).fetchall()
    return [(f"alter table {table_} drop constraint {con}", f"alter table {table_} add constraint {con} {definition}")
             if con else (f"drop index {index}", definition) for index, table_, con, definition in rows]  # fmt: skip


def index_sizes(dsn: str) -> dict[str, int]:
    """Bytes of each index of the log, summed over partitions (a partition's copy named as the table's index)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            """select c.relname, pg_relation_size(c.oid)
               from (select relid from pg_partition_tree('pge_events') union select 'pge_events'::regclass) t
               join pg_index i on i.indrelid = t.relid join pg_class c on c.oid = i.indexrelid"""
        ).fetchall()
    sizes: dict[str, int] = {}
    for name, size in rows:
        key = re.sub(r"^pge_events_[0-9]+_", "pge_events_", name)
        key = {"pge_events_tx_id_position_idx": "pge_events_tx_order",
               "pge_events_type_tx_id_position_idx": "pge_events_type_order",
               "pge_events_stream_type_tx_id_position_idx": "pge_events_stream_type_order",
               "pge_events_appended_at_idx": "pge_events_appended_at"}.get(key, key)  # fmt: skip
        sizes[key] = sizes.get(key, 0) + size
    return sizes


def appending(dsn: str, streams: int, clients: int, seconds: float, given_ids: bool) -> float:
    """Appends per second: ``clients`` connections, each appending one event to a random stream at a time."""
    stop = time.monotonic() + seconds
    counts = [0] * clients

    def client(number: int) -> None:
        pick = random.Random(number)
        with psycopg.connect(dsn, autocommit=True) as conn:
            while time.monotonic() < stop:
                event: dict[str, Any] = {"$type": "Deposited", "amount": 1}
                if given_ids:
                    event["$id"] = str(uuid.uuid4())
                message = {"id": f"s-{pick.randrange(streams)}", "type": "Account", "data": event}
                conn.execute("select pge_append(%s)", (Jsonb(message),), prepare=True)
                counts[number] += 1

    with ThreadPoolExecutor(clients) as pool:
        started = time.monotonic()
        list(pool.map(client, range(clients)))
    return sum(counts) / (time.monotonic() - started)


def stream_reads(dsn: str, streams: int, seconds: float) -> float:
    """Streams read per second (``fetch_stream``, every event), by 2 threads."""
    stop = time.monotonic() + seconds
    counts = [0, 0]
    with EventStore(dsn, max_size=2) as store:

        def reader(number: int) -> None:
            pick = random.Random(100 + number)
            while time.monotonic() < stop:
                store.fetch_stream(f"s-{pick.randrange(streams)}")
                counts[number] += 1

        with ThreadPoolExecutor(2) as pool:
            started = time.monotonic()
            list(pool.map(reader, range(2)))
    return sum(counts) / (time.monotonic() - started)


def rebuild_read(dsn: str) -> float:
    """Events per second of a rebuild's read: the readers' page query, pages of 20,000, from the start to the
    end of the log, run server-side (each page's count, the size of its data and its last position come back)."""
    page = (
        "select count(*), sum(length(p.data::text)), (array_agg(p.position))[count(*)]"
        f" from ({page_query(log_filter())}) p"
    )
    events, cursor = 0, {"tx": "0", "position": 0}
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.monotonic()
        while True:
            count, _, last = conn.execute(page, {**cursor, "limit": PAGE}).fetchone()
            if not count:
                break
            events += count
            tx = conn.execute("select tx_id::text from pge_events where position = %s", (last,)).fetchone()[0]
            cursor = {"tx": tx, "position": last}
        return events / (time.monotonic() - started)


def conversion(dsn: str, events: int, streams: int, clients: int, size: int) -> dict[str, float]:
    """``jsproj partition-log`` on the one-table store while ``clients`` writers append: its switch's seconds (writers
    held), its validation's (writers not held), and the longest append the writers saw meanwhile."""
    latencies: list[float] = []
    done = threading.Event()

    def writer(number: int) -> None:
        pick = random.Random(1000 + number)
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not done.is_set():
                message = {"id": f"s-{pick.randrange(streams)}", "type": "Account", "data": {"$type": "Deposited"}}
                started = time.monotonic()
                conn.execute("select pge_append(%s)", (Jsonb(message),), prepare=True)
                latencies.append(time.monotonic() - started)

    with ThreadPoolExecutor(clients) as pool:
        running = [pool.submit(writer, n) for n in range(clients)]
        time.sleep(2)  # writers under way (a warm-up, not a synchronisation)
        before = len(latencies)
        try:
            made = partitioning.partition_log(dsn, size=size)
        finally:
            done.set()
            for future in running:
                future.result()
    during = latencies[before:]
    millions = events / 1e6
    return {"events": events, "switch_s": made.switch_seconds, "validate_s": made.validate_seconds,
            "attempts": made.attempts, "longest_append_s": max(during), "median_append_s": statistics.median(during),
            "switch_s_per_million": made.switch_seconds / millions,
            "longest_append_s_per_million": max(during) / millions}  # fmt: skip


def measure(flat: str, parted: str, args: argparse.Namespace) -> tuple[Turns, Turns]:
    """The rounds: each measurement on both stores in turn, the first of a round swapped every other round; short
    measurements in many rounds (``--rounds``), so that the drift of a shared machine hits both alike; the rebuild's
    read (the whole log each time) in three."""
    streams = max(1, args.events // STREAM_LENGTH)
    for dsn in (flat, parted):  # a warm-up of each (cache, plans), not measured
        appending(dsn, streams, args.clients, 2, given_ids=True)
        stream_reads(dsn, streams, 1)
    measures: dict[str, Callable[[], Any]] = {}
    rebuilds: dict[str, Callable[[], Any]] = {}
    for name, dsn in (("flat", flat), ("parted", parted)):
        measures[name] = lambda dsn=dsn: {
            "append": appending(dsn, streams, args.clients, args.seconds, given_ids=False),
            "append_ids": appending(dsn, streams, args.clients, args.seconds, given_ids=True),
            "stream_read": stream_reads(dsn, streams, args.seconds / 2),
        }
        rebuilds[name] = lambda dsn=dsn: {"rebuild": rebuild_read(dsn)}
    turns = take_turns(measures, args.rounds, what="the partitioned log at scale", swap=True)
    return turns, take_turns(rebuilds, 3, what="a rebuild's read", swap=True)


def rows(turns: Turns, rebuilt: Turns, sizes: dict[str, dict[str, int]], args: argparse.Namespace) -> list[Row]:
    scenario = f"scale {args.events / 1e6:g}M"
    at = f"{args.events:,} events, partitions of {args.partition_size:,}"

    def row(key: str, what: str, unit: str, target: tuple[str, float] | None = None, of: Turns = turns) -> Row:
        return Row(scenario, what, of.pair(f"parted.{key}", f"flat.{key}"), "one table", unit, target, at)

    flat_total, parted_total = sum(sizes["flat"].values()), sum(sizes["parted"].values())

    return [
        row("append", f"appends, {args.clients} clients, one event to a random stream", "appends/s", (">=", 0.95)),
        row("append_ids", f"appends with a given $id, {args.clients} clients", "appends/s"),
        row("stream_read", "stream reads (50 events, in every partition), 2 threads", "streams/s"),
        row("rebuild", "a rebuild's read of the whole log (page query, 20,000-event pages)", "events/s", of=rebuilt),
        Row(
            scenario,
            "index sizes, all indexes of the log",
            Pairs([parted_total / 2**20], [flat_total / 2**20]),
            "one table",
            "MB",
            None,
            at,
        ),
    ]


def report(table_rows: list[Row], sizes: dict[str, dict[str, int]], converted: dict[str, float],
           about: dict[str, str], args: argparse.Namespace, partitions: int) -> str:  # fmt: skip
    names = sorted(set(sizes["flat"]) | set(sizes["parted"]))
    by_index = "\n".join(f"| {n} | {sizes['flat'].get(n, 0) / 2**20:,.0f} | {sizes['parted'].get(n, 0) / 2**20:,.0f} |"
                         for n in names)  # fmt: skip
    return f"""## {args.events / 1e6:g}M events, partitions of {args.partition_size / 1e6:g}M

`python bench/scale.py --events {args.events} --partition-size {args.partition_size}` (bench/scale.py says what
each row measures): the partitioned log had {partitions} partitions. Ratio: partitioned / one table, the
median of the rounds' ratios (min-max), in {args.rounds} rounds taken in turns ({args.seconds:g} s of each
append measurement; the rebuild's read: 3 rounds); load: the 1-minute load average before the first round.
Machine: {about.get("cpu", "?")}, {about.get("memory", "?")}; PostgreSQL {about.get("postgresql", "?")};
measured {about.get("date", "?")}.

{table(table_rows)}

Index sizes (MB), by index (a partitioned log's summed over its partitions):

| index | one table | partitioned |
|---|---|---|
{by_index}

The conversion of the one-table store (`jsproj partition-log --size {args.partition_size}`) while
{args.clients} writers appended: {converted["events"]:,} events; the switch (writers held) took
{converted["switch_s"] * 1000:.1f} ms in {converted["attempts"]} attempt(s), that is
{converted["switch_s_per_million"] * 1000:.3f} ms per million events; the validation, which holds no
writer, {converted["validate_s"]:.1f} s; the longest append the writers saw meanwhile
{converted["longest_append_s"] * 1000:.1f} ms ({converted["longest_append_s_per_million"] * 1000:.3f} ms per
million events; median {converted["median_append_s"] * 1000:.2f} ms). The issue's bound: at most 1 s per
million events.
"""


HEADER = """# The partitioned log at scale

Written by `make bench-scale` (bench/scale.py), a section for each size of log and of partition; the analysis
is in [partitioning.md](partitioning.md#what-it-costs-and-the-partition-size).
"""


def write_report(text: str, args: argparse.Namespace) -> None:
    """Replace this run's section of docs/benchmarks-scale.md (its log size and partition size), or add it."""
    start, end = (
        f"<!-- scale {args.events} {args.partition_size} -->",
        f"<!-- end of scale {args.events} {args.partition_size} -->",
    )
    current = REPORT.read_text("utf-8") if REPORT.exists() else HEADER
    section = f"{start}\n{text.rstrip()}\n{end}"
    if start in current and end in current:
        current = current.split(start)[0] + section + current.split(end, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + section + "\n"
    REPORT.write_text(current, "utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--partition-size", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="of each append and read measurement")
    parser.add_argument("--rounds", type=int, default=8, help="of the appends and reads (the rebuild's read: 3)")
    parser.add_argument("--no-write", action="store_true", help="print the report only")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    cluster = temporary_cluster(prefix="jsproj-scale-", **SETTINGS)
    cluster.init(durable=True)
    cluster.start()
    try:
        admin = cluster.dsn
        with psycopg.connect(admin) as conn:
            version = str(conn.execute("show server_version").fetchone()[0])
        first_tx = take_transactions(admin)
        with ThreadPoolExecutor(2) as pool:  # both loads at once: a core each
            flat_f = pool.submit(prepare, admin, "flat", args.events, None, first_tx)
            parted_f = pool.submit(prepare, admin, "parted", args.events, args.partition_size, first_tx)
            flat, parted = flat_f.result(), parted_f.result()
        sizes = {"flat": index_sizes(flat), "parted": index_sizes(parted)}
        partitions = len(partitioning.partitions(parted))
        turns, rebuilt = measure(flat, parted, args)
        streams = max(1, args.events // STREAM_LENGTH)
        converted = conversion(flat, args.events, streams, args.clients, args.partition_size)
    finally:
        cluster.destroy()
    table_rows = rows(turns, rebuilt, sizes, args)
    text = report(table_rows, sizes, converted, {**machine(), "postgresql": version}, args, partitions)
    print(text)
    if not args.no_write:
        write_report(text, args)
    if args.json:
        args.json.write_text(json.dumps({"rows": [r.to_dict() for r in table_rows], "sizes": sizes,
                                         "conversion": converted}, indent=2, default=str))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
