"""Scenario 11 (issue 30): reading the log by what happened, and what its indexes cost appends.

Two copies of one store preloaded with N events (``insert ... select``, in
20-event Account streams, appended_at one a millisecond apart, a ``Rare``
event every 100th: 1% of the log), one with the indexes of migration 0014
(``pge_events_type_order``, ``pge_events_stream_type_order``,
``pge_events_appended_at``), one with them dropped; a third copy adds the
GIN index on metadata that 0014 does not make, to show why. autovacuum is
off for all. The rows:

- single-event appends from one writer, with the indexes against without
  (ev/s, target >= 0.95x), and with the GIN index against without (scale);
- 1,000-event messages, the same (ev/s);
- reading the ``Rare`` events (1% of the log) with ``read_all(types="Rare")``
  against reading one stream of as many events with ``fetch_stream``
  (seconds, target <= 2x): the same number of events, each read in one call,
  on the store with the indexes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import psycopg

from harness import Row, alternate, clone_database, log, take_turns, timed
from jsproj.store.sync import EventStore
from scenario_store import event

CHUNK = 500_000
STREAM_LENGTH = 20
RARE_EVERY = 100
INDEXES = ("pge_events_type_order", "pge_events_stream_type_order", "pge_events_appended_at")
GIN = "create index bench_metadata_gin on pge_events using gin (metadata jsonb_path_ops)"


def preload(dsn: str, total: int) -> None:
    """``total`` events in Account streams, a Rare one every RARE_EVERY-th, and one stream ``big`` of as many
    events as there are Rare ones (its own, at the end); settled (vacuum analyze, checkpoint)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(0, total, CHUNK):
            end = min(total, start + CHUNK) - 1
            with conn.transaction():
                conn.execute("insert into pge_streams (id, type) select 'acct-' || s, 'Account'"
                             " from generate_series(%s::bigint, %s::bigint) s",
                             (start // STREAM_LENGTH, end // STREAM_LENGTH))  # fmt: skip
                conn.execute(
                    """insert into pge_events (id, stream_id, stream_type, version, type, data, metadata, appended_at)
                       select gen_random_uuid(), 'acct-' || (n / %(len)s), 'Account', n %% %(len)s + 1,
                              case when n %% %(rare)s = 0 then 'Rare' else 'Deposited' end,
                              jsonb_build_object('amount', n %% 97 + 1, 'note', 'transfer ' || n),
                              jsonb_build_object('tenant', 't' || n %% 10),
                              timestamptz '2024-01-01Z' + n * interval '1 millisecond'
                       from generate_series(%(start)s::bigint, %(end)s::bigint) n""",
                    {"len": STREAM_LENGTH, "rare": RARE_EVERY, "start": start, "end": end},
                )
            log(f"reads: preloaded {end + 1:,} events")
        rare = total // RARE_EVERY
        conn.execute("insert into pge_streams (id, type) values ('big', 'Account')")
        conn.execute(
            """insert into pge_events (id, stream_id, stream_type, version, type, data)
               select gen_random_uuid(), 'big', 'Account', g, 'Deposited', jsonb_build_object('amount', g %% 97 + 1,
                      'note', 'transfer ' || g) from generate_series(1, %s) g""",
            (rare,),
        )
        for table in ("pge_events", "pge_streams"):
            conn.execute(f"alter table {table} set (autovacuum_enabled = off)")
            conn.execute(f"vacuum analyze {table}")
        conn.execute("checkpoint")


def copy(admin_dsn: str, name: str, *statements: str) -> str:
    """A copy of the preloaded store, changed by ``statements``, settled."""
    dsn = clone_database(admin_dsn, "bench_reads", name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.execute("vacuum analyze pge_events")
        conn.execute("checkpoint")
    return dsn


def singles(store: EventStore, prefix: str, count: int) -> float:
    """Events a second of ``count`` single-event appends to new streams, one writer."""
    seconds = timed(lambda: [store.append({"id": f"{prefix}-{n}", "type": "Account", "data": event(n),
                                           "metadata": {"tenant": f"t{n % 10}"}}) for n in range(count)])  # fmt: skip
    return count / seconds


def batches(store: EventStore, prefix: str, count: int) -> float:
    """Events a second of ``count`` 1,000-event messages to new streams."""
    messages = [{"id": f"{prefix}-{m}", "type": "Account", "metadata": {"tenant": "t1"},
                 "data": [event(m * 1000 + n) for n in range(1000)]} for m in range(count)]  # fmt: skip
    return count * 1000 / timed(lambda: [store.append(message) for message in messages])


def run(new_database: Callable[[str], str], admin_dsn: str, quick: bool) -> list[Row]:
    total, appends, messages, rounds = (100_000, 500, 5, 3) if quick else (1_000_000, 2_000, 20, 5)
    dsn = new_database("bench_reads")
    with EventStore(dsn, max_size=1) as store:
        store.migrate()
    log(f"reads: preloading {total:,} events")
    preload(dsn, total)
    without = copy(admin_dsn, "bench_reads_without", *(f"drop index {name}" for name in INDEXES))
    gin = copy(admin_dsn, "bench_reads_gin", GIN)
    prefixes = itertools.count()
    with EventStore(dsn, max_size=1) as ours, EventStore(without, max_size=1) as bare, \
            EventStore(gin, max_size=1) as gin_store:  # fmt: skip
        log(f"reads: single-event appends with and without the indexes, {rounds} rounds")
        single = take_turns({name: (lambda s=s: singles(s, f"s{next(prefixes)}", appends))
                             for name, s in (("ours", ours), ("bare", bare), ("gin", gin_store))},
                            rounds, what="single-event appends with the read indexes", swap=True)  # fmt: skip
        log(f"reads: 1,000-event messages with and without the indexes, {rounds} rounds")
        batched = take_turns({name: (lambda s=s: batches(s, f"b{next(prefixes)}", messages))
                              for name, s in (("ours", ours), ("bare", bare), ("gin", gin_store))},
                             rounds, what="batched appends with the read indexes", swap=True)  # fmt: skip
        rare = total // RARE_EVERY
        log(f"reads: {rare:,} events by type against a {rare:,}-event stream")
        reads = alternate(lambda: timed(lambda: ours.read_all(types="Rare", limit=rare)),
                          lambda: timed(lambda: ours.fetch_stream("big")), pairs=rounds,
                          what="reading by type")  # fmt: skip
        assert len(ours.read_all(types="Rare", limit=rare)) == rare == len(ours.fetch_stream("big").events)
    size = f"at {total:,} events"
    return [
        Row("11 reads", f"single-event appends with the read indexes, {size}", single.pair("ours", "bare"),
            "without them", "ev/s", (">=", 0.95),
            note=f"{rounds} rounds of {appends:,} appends to new streams, one writer, each store first in turn; the "
                 "indexes: (type, tx_id, position), (stream_type, tx_id, position), BRIN (appended_at)"),
        Row("11 reads", f"single-event appends with a GIN index on metadata too, {size}", single.pair("gin", "bare"),
            "without the read indexes", "ev/s",
            note="jsonb_path_ops, not made by migration 0014: why metadata containment has no index"),
        Row("11 reads", f"1,000-event messages with the read indexes, {size}", batched.pair("ours", "bare"),
            "without them", "ev/s"),
        Row("11 reads", f"1,000-event messages with a GIN index on metadata too, {size}", batched.pair("gin", "bare"),
            "without the read indexes", "ev/s"),
        Row("11 reads", f"reading the {rare:,} events of one type (1%) {size}", reads.scaled(1000),
            f"fetch_stream of a {rare:,}-event stream", "ms", ("<=", 2.0),
            note="read_all(types=..., limit=N) and fetch_stream, one call each, the same store"),
    ]  # fmt: skip
