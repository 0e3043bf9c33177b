"""Scenario 1b (issue 17): batched appends on a store holding N events, against the same appends on an empty store.

Two databases of one cluster: one preloaded with N events in 10-event
streams (fast, by ``insert ... select``; ids made by the function
``pge_append`` makes them with), one emptied before each of its rounds.
Rounds alternate between them, each going first in every other round, so
that the machine's drift hits both alike (bench/harness.py: take_turns with
``swap``); each round gives each row one pair; autovacuum is off for both. Each
round starts from a checkpoint (as a store does every few minutes: the
first change of a page after one writes the whole page to the WAL) and
appends ``batches`` 1,000-event messages through ``EventStore.append``, the
messages of scenario 1. It records the time, the WAL written
(``pg_current_wal_lsn()`` before and after) and, with pg_walinspect, which
relations that WAL was for.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from harness import MB, Row, log, take_turns, timed
from jsproj.store.sync import EventStore
from scenario_store import event

# The ids pge_append gives the events of a message that have no $id (sql/functions/events.sql).
STORE_EVENT_IDS = "pge_event_ids(%(count)s)"
STREAM_LENGTH = 10
CHUNK = 500_000
BATCH = 1000


@dataclass
class Round:
    """One round on one store: events appended, seconds, WAL bytes, and WAL bytes by relation."""

    events: int
    seconds: float
    wal: int
    by_relation: Counter[str]

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def preload(dsn: str, total: int) -> None:
    """Fill an empty store with ``total`` events in ``STREAM_LENGTH``-event streams, then settle it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, total, CHUNK):
            end = min(total, start + CHUNK) - 1
            with conn.transaction():
                conn.execute(
                    "insert into pge_streams (id, type) select 'account-' || s, 'Account'"
                    " from generate_series(%s::bigint, %s::bigint) as s",
                    (start // STREAM_LENGTH, end // STREAM_LENGTH),
                )
                conn.execute(
                    f"insert into pge_events (id, stream_id, stream_type, version, type, data, timestamp)"
                    f" select id, 'account-' || (n / %(len)s), 'Account', n %% %(len)s + 1,"
                    f" case when n %% 5 = 4 then 'Withdrawn' else 'Deposited' end,"
                    f" jsonb_build_object('amount', n %% 97 + 1, 'note', 'transfer ' || n), now()"
                    f" from unnest({STORE_EVENT_IDS}) with ordinality as t (id, k),"
                    f" lateral (select %(start)s::bigint + k - 1 as n) as number order by k",
                    {"len": STREAM_LENGTH, "start": start, "count": end - start + 1},
                )
            log(f"growth: preloaded {end + 1:,} events")
        conn.execute("vacuum analyze pge_events")  # what autovacuum would have done by now
        conn.execute("vacuum analyze pge_streams")


def empty(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("truncate pge_events, pge_streams restart identity")


def wal_by_relation(conn: psycopg.Connection, start: str, end: str) -> Counter[str]:
    """WAL bytes between two LSNs, by the relation of each record's first block (pg_walinspect)."""
    names = dict(
        conn.execute(
            "select pg_relation_filenode(c.oid)::text, c.relname from pg_class c"
            " where c.relnamespace = 'public'::regnamespace"
        ).fetchall()
    )
    totals: Counter[str] = Counter()
    records = conn.execute(
        "select record_length, block_ref from pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn)", (start, end)
    )
    for length, block_ref in records:
        found = re.search(r"rel \d+/\d+/(\d+)", block_ref or "")
        totals[names.get(found.group(1), "other") if found else "no block"] += length
    return totals


def measure(store: EventStore, dsn: str, prefix: str, batches: int) -> Round:
    """Append ``batches`` 1,000-event messages to new streams after a checkpoint: the round's figures."""
    messages = [
        {"id": f"{prefix}-{m}", "type": "Account", "data": [event(m * BATCH + n) for n in range(BATCH)]}
        for m in range(batches)
    ]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("checkpoint")
        start = conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
        seconds = timed(lambda: [store.append(message) for message in messages])
        end = conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
        wal = conn.execute("select pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)::bigint", (end, start)).fetchone()[0]  # type: ignore[index]
        return Round(batches * BATCH, seconds, wal, wal_by_relation(conn, start, end))


def describe(round_: Round, batches: int) -> str:
    return f"{round_.rate:,.0f} ev/s and {round_.wal / batches / MB:.2f} MB of WAL a message"


def index_sizes(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        sizes = conn.execute(
            "select indexrelid::regclass::text, pg_relation_size(indexrelid) from pg_index"
            " where indrelid = 'pge_events'::regclass order by 1"
        ).fetchall()
    return ", ".join(f"{name} {size / MB:.0f} MB" for name, size in sizes)


def share(rounds: list[Round]) -> str:
    """The relations that most of the rounds' WAL was for, as shares of it."""
    total = sum((r.by_relation for r in rounds), Counter[str]())
    whole = sum(total.values()) or 1
    return ", ".join(f"{name} {bytes_ / whole:.0%}" for name, bytes_ in total.most_common(4))


def prepare(full_dsn: str, empty_dsn: str, existing: int) -> str:
    """Both stores migrated, autovacuum off, pg_walinspect on; the full one preloaded. Returns its index sizes."""
    for dsn in (full_dsn, empty_dsn):
        with EventStore(dsn, max_size=1) as store:
            store.migrate()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("create extension if not exists pg_walinspect")
            for table in ("pge_events", "pge_streams"):  # the empty store's rounds would start it, only there
                conn.execute(f"alter table {table} set (autovacuum_enabled = off)")
    log(f"growth: preloading {existing:,} events in {STREAM_LENGTH}-event streams")
    preload(full_dsn, existing)
    return index_sizes(full_dsn)


def run(new_database: Callable[[str], str], quick: bool) -> list[Row]:
    existing, rounds, batches = (200_000, 4, 10) if quick else (5_000_000, 10, 30)
    full_dsn, empty_dsn = new_database("bench_growth_full"), new_database("bench_growth_empty")
    sizes = prepare(full_dsn, empty_dsn, existing)
    results: dict[str, list[Round]] = {"full": [], "empty": []}
    prefixes = itertools.count()

    def measured(name: str, store: EventStore, dsn: str) -> dict[str, float]:
        if name == "empty":
            empty(dsn)
        results[name].append(measure(store, dsn, f"growth-{next(prefixes)}", batches))
        log(f"growth: round {len(results[name])}, {name}: {describe(results[name][-1], batches)}")
        return {"rate": results[name][-1].rate, "wal": results[name][-1].wal / batches / MB}

    with EventStore(full_dsn, max_size=2) as full, EventStore(empty_dsn, max_size=2) as blank:
        # each first in every other round (the first round after a checkpoint is not favoured either way)
        turns = take_turns({"empty": lambda: measured("empty", blank, empty_dsn),
                            "full": lambda: measured("full", full, full_dsn)},
                           rounds, what=f"appends at {existing:,} events against an empty store (2 rows)",
                           swap=True)  # fmt: skip
    return [
        Row("1 append", f"batched appends, 1,000-event messages, at {existing:,} events",
            turns.pair("full.rate", "empty.rate"), "the same on an empty store", "ev/s", (">=", 0.9),
            note=f"{rounds} rounds of {batches} messages, each after a checkpoint, each store first in every other"
                 f" round; indexes at {existing:,}: {sizes}"),
        Row("1 append", f"WAL per 1,000-event message at {existing:,} events", turns.pair("full.wal", "empty.wal"),
            "the same on an empty store", "MB",
            note=f"WAL by relation at {existing:,}: {share(results['full'])}; empty: {share(results['empty'])}"),
    ]  # fmt: skip
