"""Scenarios 1 and 3: appends against COPY and plain INSERT, and live aggregation against reading the rows.

Each figure is measured next to its baseline, on tables of the same shape
(``like pge_events including defaults, identity and indexes``), durable settings.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import psycopg
from psycopg.rows import tuple_row

from harness import MB, Row, log, process_tree_rss, timed
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


def batched(store: EventStore, dsn: str, total: int, size: int) -> tuple[float, float]:
    """(appends/s through pge_append in ``size``-event messages, COPY of the same rows/s)."""
    messages = [
        {"id": f"batch-{m}", "type": "Account", "data": [event(m * size + n) for n in range(size)]}
        for m in range(total // size)
    ]
    append_seconds = timed(lambda: [store.append(message) for message in messages])
    now = datetime.now(UTC)
    rows = [
        (str(uuid.uuid4()), message["id"], v + 1, e["$type"], json.dumps({k: x for k, x in e.items() if k != "$type"}),
         now)
        for message in messages
        for v, e in enumerate(message["data"])
    ]  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        same_shape(conn, "copy_target")

        def copy() -> None:
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("copy copy_target (id, stream_id, version, type, data, timestamp) from stdin") as out:
                    for row in rows:
                        out.write_row(row)

        copy_seconds = timed(copy)
    return len(rows) / append_seconds, len(rows) / copy_seconds


def single(store: EventStore, dsn: str, total: int, writers: int) -> tuple[float, float]:
    """(single-event appends/s from ``writers`` threads, plain single-row INSERT transactions/s, as many threads)."""
    per_writer = total // writers
    tag = uuid.uuid4().hex[:6]

    def appender(writer: int) -> None:
        for n in range(per_writer):  # the first append creates the stream (it needs the type)
            message = {"id": f"single-{tag}-{writer}", "data": event(n)}
            store.append({**message, "type": "Account"} if n == 0 else message)

    with psycopg.connect(dsn, autocommit=True) as conn:
        same_shape(conn, "insert_target")
    now = datetime.now(UTC)

    def inserter(writer: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for n in range(per_writer):
                e = event(n)
                conn.execute(
                    "insert into insert_target (id, stream_id, version, type, data, timestamp)"
                    " values (%s, %s, %s, %s, %s, %s)",
                    (uuid.uuid4(), f"single-{writer}", n + 1, e["$type"],
                     json.dumps({"amount": e["amount"], "note": e["note"]}), now),
                )  # fmt: skip

    def run(work: Callable[[int], None]) -> float:
        with ThreadPoolExecutor(writers) as pool:
            return timed(lambda: list(pool.map(work, range(writers))))

    appends = run(appender)
    inserts = run(inserter)
    done = per_writer * writers
    return done / appends, done / inserts


RAW_FETCH = """select position, id, stream_id, version, type, data, metadata, timestamp
               from pge_events where stream_id = %s order by version"""
# The same rows with the JSON left as text: the bytes off the wire, nothing parsed (a stricter baseline).
RAW_TEXT_FETCH = RAW_FETCH.replace("data, metadata", "data::text, metadata::text")


def generate_stream(dsn: str, stream_id: str, events: int) -> None:
    """A stream of ``events`` (``event(n)``'s rows, as pge_append writes them) inserted by SQL: fast at 1M."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("insert into pge_streams (id, type) values (%s, 'Account')", (stream_id,))
        conn.execute(
            """insert into pge_events (id, stream_id, version, type, data)
               select gen_random_uuid(), %s, g, case when (g - 1) %% 5 = 4 then 'Withdrawn' else 'Deposited' end,
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


def live(store: EventStore, dsn: str, projections: Projections, events: int, repeats: int) -> dict[str, float]:
    """Median seconds to fold a stream of ``events`` live, to raw-fetch it and to fetch_stream it
    (interleaved, so that drift hits all alike), and the worker's peak memory while folding (bytes)."""
    stream_id = f"live-{events}"
    generate_stream(dsn, stream_id, events)
    times: dict[str, list[float]] = {"live": [], "raw": [], "raw_text": [], "fetch_stream": []}
    peak = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        folded = aggregate(store, projections, "Balance", stream_id)  # warm up the sandbox
        assert folded is not None and folded["deposits"] + folded["withdrawals"] == events
        assert raw_fetch(conn, stream_id) == events
        for _ in range(repeats):
            with PeakRss(projections.sandbox.worker_pid) as rss:
                times["live"].append(timed(lambda: aggregate(store, projections, "Balance", stream_id)))
            peak = max(peak, rss.peak)
            times["raw"].append(timed(lambda: raw_fetch(conn, stream_id)))
            times["raw_text"].append(timed(lambda: raw_fetch(conn, stream_id, RAW_TEXT_FETCH)))
            times["fetch_stream"].append(timed(lambda: store.fetch_stream(stream_id)))
    return {**{k: statistics.median(v) for k, v in times.items()}, "peak": peak}


def one_call_peak(store: EventStore, stream_id: str) -> int:
    """The worker's peak memory folding a stream in one call, as live aggregation did before pages (bytes)."""
    with Projections([{"file": "Balance.js", "source": LIVE_SOURCE}]) as loaded:
        aggregate(store, loaded, "Balance", stream_id, page_size=10_000)  # the worker started, the code loaded
        with PeakRss(loaded.sandbox.worker_pid) as rss:
            aggregate(store, loaded, "Balance", stream_id, page_size=2**62)
    return rss.peak


def live_rows(events: int, got: dict[str, float]) -> list[Row]:
    unit, scale = ("s", 1.0) if events >= 1_000_000 else ("ms", 1000.0)
    what, ours = f"fold a {events:,}-event stream live", got["live"] * scale
    return [
        Row("3 live aggregation", what, ours, "raw tuple fetch of the same rows", got["raw"] * scale, unit,
            ("<=", 1.5), note=f"worker peak {got['peak'] / MB:.0f} MB"),
        Row("3 live aggregation", what, ours, "raw tuple fetch, JSON left as text", got["raw_text"] * scale, unit),
        Row("3 live aggregation", what, ours, "fetching its events (fetch_stream)", got["fetch_stream"] * scale, unit),
    ]  # fmt: skip


def run_live(dsn: str, quick: bool) -> list[Row]:
    """Scenario 3: live folds of streams of three sizes against reading the same rows, and the worker's memory."""
    sizes = (10_000, 100_000, 1_000_000)
    rows, peaks = [], {}
    with EventStore(dsn, max_size=4) as store, Projections([{"file": "Balance.js", "source": LIVE_SOURCE}]) as loaded:
        store.migrate()
        for events in sizes:
            log(f"live: a {events:,}-event stream folded live, raw-fetched and fetched")
            repeats = (5 if quick else 9) if events < 1_000_000 else (1 if quick else 3)
            got = live(store, dsn, loaded, events, repeats)
            peaks[events] = got["peak"]
            rows += live_rows(events, got)
        log(f"live: the worker's memory folding {sizes[1]:,} events in one call (before pages)")
        before = one_call_peak(store, f"live-{sizes[1]}")
    rows.append(Row("3 live aggregation", f"worker peak memory folding {sizes[-1]:,} events",
                    peaks[sizes[-1]] / MB, f"folding {sizes[0]:,} events", peaks[sizes[0]] / MB, "MB",
                    note=f"pages of {DEFAULT_PAGE_SIZE:,} events"))  # fmt: skip
    rows.append(Row("3 live aggregation", f"worker peak memory folding {sizes[-1]:,} events",
                    peaks[sizes[-1]] / MB, f"{sizes[1]:,} events in one call (before pages)", before / MB,
                    "MB"))  # fmt: skip
    return rows


def run(dsn: str, quick: bool) -> list[Row]:
    """Scenarios 1 and 3."""
    return run_appends(dsn, quick) + run_live(dsn, quick)


def run_appends(dsn: str, quick: bool) -> list[Row]:
    total, singles = (20_000, 800) if quick else (200_000, 4_000)
    rows = []
    with EventStore(dsn, max_size=10) as store:
        store.migrate()
        log(f"append: {total:,} events in 1,000-event messages, and COPY")
        ours, copy = batched(store, dsn, total, 1000)
        rows.append(Row("1 append", "batched appends, 1,000-event messages", ours, "COPY of the same rows", copy,
                        "ev/s", (">=", 0.5), floor=100_000))  # fmt: skip
        for writers in (1, 8):
            log(f"append: {singles:,} single-event appends from {writers} writer(s), and plain INSERTs")
            ours, insert = single(store, dsn, singles, writers)
            rows.append(Row("1 append", f"single-event appends, {writers} writer{'s' if writers > 1 else ''}", ours,
                            "plain single-row INSERT transactions", insert, "ev/s",
                            (">=", 0.7) if writers == 8 else None))  # fmt: skip
    return rows
