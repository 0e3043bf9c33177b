"""Scenarios 1 and 3: appends against COPY and plain INSERT, and live aggregation against reading the rows.

Each figure is measured in turns with its baseline, pair after pair, on
tables of the same shape (``like pge_events including defaults, identity and
indexes``), durable settings; every pair appends to new streams.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
from psycopg.rows import tuple_row

from harness import MB, PAIRS, Pairs, Row, Turns, alternate, log, process_tree_rss, take_turns, timed
from jsproj.engine.projections import Projections
from jsproj.projections.live import DEFAULT_PAGE_SIZE, aggregate
from jsproj.store.sync import EventStore

LIVE_SOURCE = """projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, deposits: 0, withdrawals: 0 }; },
  Deposited: function (state, evt) { state.balance += evt.amount; state.deposits += 1; },
  Withdrawn: function (state, evt) { state.balance -= evt.amount; state.withdrawals += 1; }
});"""


def event(n: int) -> dict:
    return {"$type": "Withdrawn" if n % 5 == 4 else "Deposited", "amount": n % 97 + 1, "note": f"transfer {n}"}


def same_shape(conn: psycopg.Connection, name: str) -> None:
    conn.execute(f"drop table if exists {name}")
    conn.execute(f"create table {name} (like pge_events including defaults including identity including indexes)")


def batch_messages(total: int, size: int) -> list[dict]:
    """``total`` events in ``size``-event messages, each to a new stream (a tag apart from every other pair's)."""
    tag = uuid.uuid4().hex[:8]
    return [
        {"id": f"batch-{tag}-{m}", "type": "Account", "data": [event(m * size + n) for n in range(size)]}
        for m in range(total // size)
    ]


def append_batches(store: EventStore, total: int, size: int) -> float:
    """Appends/s through pge_append, ``total`` events in ``size``-event messages (built before the clock starts)."""
    messages = batch_messages(total, size)
    return total // size * size / timed(lambda: [store.append(message) for message in messages])


def copy_batches(conn: psycopg.Connection, total: int, size: int) -> float:
    """Rows/s of a COPY of the rows ``append_batches`` writes, into copy_target (same shape as pge_events)."""
    now = datetime.now(UTC)
    rows = [
        (str(uuid.uuid4()), message["id"], message["type"], v + 1, e["$type"],
         json.dumps({k: x for k, x in e.items() if k != "$type"}), now)
        for message in batch_messages(total, size)
        for v, e in enumerate(message["data"])
    ]  # fmt: skip

    def copy() -> None:
        with conn.transaction(), conn.cursor() as cur:
            columns = "id, stream_id, stream_type, version, type, data, timestamp"
            with cur.copy(f"copy copy_target ({columns}) from stdin") as out:
                for row in rows:
                    out.write_row(row)

    return len(rows) / timed(copy)


def batched(store: EventStore, dsn: str, total: int, size: int) -> Pairs:
    """Pairs of (appends/s through pge_append in ``size``-event messages, COPY of the same rows/s), in turns."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        same_shape(conn, "copy_target")
        return alternate(lambda: append_batches(store, total, size), lambda: copy_batches(conn, total, size),
                         what=f"batched appends of {size:,}-event messages against COPY")  # fmt: skip


def in_threads(writers: int, work: Callable[[int], None]) -> float:
    """Seconds ``writers`` threads take to do ``work`` (given the writer's number) each."""
    with ThreadPoolExecutor(writers) as pool:
        return timed(lambda: list(pool.map(work, range(writers))))


def single_appends(store: EventStore, total: int, writers: int) -> float:
    """Single-event appends/s from ``writers`` threads, each to a stream of its own (new at every call)."""
    per_writer, tag = total // writers, uuid.uuid4().hex[:8]

    def appender(writer: int) -> None:
        for n in range(per_writer):  # the first append creates the stream (it needs the type)
            message = {"id": f"single-{tag}-{writer}", "data": event(n)}
            store.append({**message, "type": "Account"} if n == 0 else message)

    return per_writer * writers / in_threads(writers, appender)


def single_inserts(dsn: str, total: int, writers: int) -> float:
    """Plain single-row INSERT transactions/s into insert_target from ``writers`` threads, a connection each."""
    per_writer, tag, now = total // writers, uuid.uuid4().hex[:8], datetime.now(UTC)

    def inserter(writer: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for n in range(per_writer):
                e = event(n)
                conn.execute(
                    "insert into insert_target (id, stream_id, stream_type, version, type, data, timestamp)"
                    " values (%s, %s, 'Account', %s, %s, %s, %s)",
                    (uuid.uuid4(), f"single-{tag}-{writer}", n + 1, e["$type"],
                     json.dumps({"amount": e["amount"], "note": e["note"]}), now),
                )  # fmt: skip

    return per_writer * writers / in_threads(writers, inserter)


def single(store: EventStore, dsn: str, total: int, writers: int) -> Pairs:
    """Pairs of (single-event appends/s from ``writers`` threads, plain single-row INSERT transactions/s)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        same_shape(conn, "insert_target")
    return alternate(lambda: single_appends(store, total, writers), lambda: single_inserts(dsn, total, writers),
                     what=f"single-event appends from {writers} writer(s) against INSERT")  # fmt: skip


RAW_FETCH = """select position, id, stream_id, version, type, data, metadata, timestamp
               from pge_events where stream_id = %s order by version"""
# The same rows with the JSON left as text: the bytes off the wire, nothing parsed (a stricter baseline).
RAW_TEXT_FETCH = RAW_FETCH.replace("data, metadata", "data::text, metadata::text")


def generate_stream(dsn: str, stream_id: str, events: int) -> None:
    """A stream of ``events`` (``event(n)``'s rows, as pge_append writes them) inserted by SQL: fast at 1M."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into pge_streams (id, type) values (%s, 'Account')", (stream_id,))
        conn.execute(
            """insert into pge_events (id, stream_id, stream_type, version, type, data)
               select gen_random_uuid(), %s, 'Account', g,
                      case when (g - 1) %% 5 = 4 then 'Withdrawn' else 'Deposited' end,
                      jsonb_build_object('amount', (g - 1) %% 97 + 1, 'note', 'transfer ' || (g - 1))
               from generate_series(1, %s) g""",
            (stream_id, events),
        )
        conn.execute("vacuum analyze pge_events")  # settle the table for every side: hint bits, statistics
        conn.execute("checkpoint")


def raw_fetch(conn: psycopg.Connection, stream_id: str, query: str = RAW_FETCH) -> int:
    """What a competent engineer writes to read a stream: one query, tuples, fetchall."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return len(cur.execute(query, (stream_id,)).fetchall())


class PeakRss:
    """The peak resident memory of a process while the block runs (sampled every 5 ms)."""

    def __init__(self, pid: int | None) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while self.pid is not None and not self._stop.is_set():
            self.peak = max(self.peak, process_tree_rss(self.pid))
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def live(store: EventStore, dsn: str, projections: Projections, events: int, rounds: int) -> Turns:
    """Seconds to fold a stream of ``events`` live ("live.seconds"), to raw-fetch it, as text, and to fetch_stream
    it, taking turns ``rounds`` times; and the worker's peak memory while folding, bytes ("live.peak")."""
    stream_id = f"live-{events}"
    generate_stream(dsn, stream_id, events)
    with psycopg.connect(dsn, autocommit=True) as conn:
        folded = aggregate(store, projections, "Balance", stream_id)  # warm up the sandbox
        assert folded is not None and folded["deposits"] + folded["withdrawals"] == events
        assert raw_fetch(conn, stream_id) == events

        def fold() -> dict[str, float]:
            with PeakRss(projections.sandbox.worker_pid) as rss:
                seconds = timed(lambda: aggregate(store, projections, "Balance", stream_id))
            return {"seconds": seconds, "peak": rss.peak}

        return take_turns(
            {
                "live": fold,
                "raw": lambda: timed(lambda: raw_fetch(conn, stream_id)),
                "raw_text": lambda: timed(lambda: raw_fetch(conn, stream_id, RAW_TEXT_FETCH)),
                "fetch_stream": lambda: timed(lambda: store.fetch_stream(stream_id)),
            },
            rounds,
            what=f"the live fold of {events:,} events against reading them (3 rows)",
        )


def one_call_peak(store: EventStore, stream_id: str) -> int:
    """The worker's peak memory folding a stream in one call, as live aggregation did before pages (bytes)."""
    with Projections([{"file": "Balance.js", "source": LIVE_SOURCE}]) as loaded:
        aggregate(store, loaded, "Balance", stream_id, page_size=10_000)  # the worker started, the code loaded
        with PeakRss(loaded.sandbox.worker_pid) as rss:
            aggregate(store, loaded, "Balance", stream_id, page_size=2**62)
    return rss.peak


def live_rows(events: int, turns: Turns) -> list[Row]:
    unit, scale = ("s", 1.0) if events >= 1_000_000 else ("ms", 1000.0)
    what = f"fold a {events:,}-event stream live"
    peak = max(turns.figures["live.peak"])
    return [
        Row("3 live aggregation", what, turns.pair("live.seconds", "raw").scaled(scale),
            "raw tuple fetch of the same rows", unit, ("<=", 1.5), note=f"worker peak {peak / MB:.0f} MB"),
        Row("3 live aggregation", what, turns.pair("live.seconds", "raw_text").scaled(scale),
            "raw tuple fetch, JSON left as text", unit),
        Row("3 live aggregation", what, turns.pair("live.seconds", "fetch_stream").scaled(scale),
            "fetching its events (fetch_stream)", unit),
    ]  # fmt: skip


MEMORY_NOTE = (
    "memory, not time: pair i is round i of each size; the sizes were measured one after another, smallest "
    "first (a worker's heap, once grown by a large fold, would inflate the smaller figure): not alternated"
)


def memory_rows(sizes: tuple[int, ...], peaks: dict[int, Turns], before: list[float]) -> list[Row]:
    """The worker's peak memory at the largest size against the smallest and against one call (before pages)."""
    largest = peaks[sizes[-1]]
    mb = [peak / MB for peak in largest.figures["live.peak"]]
    small = [peak / MB for peak in peaks[sizes[0]].figures["live.peak"][: len(mb)]]  # its first rounds
    what = f"worker peak memory folding {sizes[-1]:,} events"
    return [
        Row("3 live aggregation", what, Pairs(mb, small, largest.loads), f"folding {sizes[0]:,} events", "MB",
            note=f"pages of {DEFAULT_PAGE_SIZE:,} events; {MEMORY_NOTE}"),
        Row("3 live aggregation", what, Pairs(mb, [peak / MB for peak in before], largest.loads),
            f"{sizes[1]:,} events in one call (before pages)", "MB",
            note="the one-call folds (a new worker each) measured after the largest size's rounds"),
    ]  # fmt: skip


def run_live(dsn: str, quick: bool) -> list[Row]:
    """Scenario 3: live folds of streams of three sizes against reading the same rows, and the worker's memory."""
    sizes = (10_000, 50_000, 200_000) if quick else (10_000, 100_000, 1_000_000)
    rows, peaks = [], {}
    with EventStore(dsn, max_size=4) as store, Projections([{"file": "Balance.js", "source": LIVE_SOURCE}]) as loaded:
        store.migrate()
        for events in sizes:
            log(f"live: a {events:,}-event stream folded live, raw-fetched and fetched, in turns")
            # short folds are noisy and cheap: more rounds; the largest size three
            rounds = 9 if events <= 10_000 or not (quick or events >= 1_000_000) else PAIRS
            peaks[events] = live(store, dsn, loaded, events, rounds)
            rows += live_rows(events, peaks[events])
        log(f"live: the worker's memory folding {sizes[1]:,} events in one call (before pages), {PAIRS} times")
        before = [float(one_call_peak(store, f"live-{sizes[1]}")) for _ in range(PAIRS)]
    return rows + memory_rows(sizes, peaks, before)


def run(dsn: str, quick: bool) -> list[Row]:
    """Scenarios 1 and 3."""
    return run_appends(dsn, quick) + run_live(dsn, quick)


def run_appends(dsn: str, quick: bool) -> list[Row]:
    total, singles = (20_000, 800) if quick else (200_000, 4_000)
    rows = []
    with EventStore(dsn, max_size=10) as store:
        store.migrate()
        log(f"append: {total:,} events in 1,000-event messages, and COPY, {PAIRS} pairs")
        rows.append(Row("1 append", "batched appends, 1,000-event messages", batched(store, dsn, total, 1000),
                        "COPY of the same rows", "ev/s", (">=", 0.5), floor=100_000))  # fmt: skip
        for writers in (1, 8):
            log(f"append: {singles:,} single-event appends from {writers} writer(s), and plain INSERTs, {PAIRS} pairs")
            rows.append(Row("1 append", f"single-event appends, {writers} writer{'s' if writers > 1 else ''}",
                            single(store, dsn, singles, writers), "plain single-row INSERT transactions", "ev/s",
                            (">=", 0.7) if writers == 8 else None))  # fmt: skip
    return rows
