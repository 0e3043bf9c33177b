"""Scenario 7, following the log: 8 writers appending while a daemon follows, the lag it keeps, what NOTIFY costs.

Eight writer processes (each its own connection) append single-event
messages, round-robin over streams of their own, for a fixed time; a probe
thread appends to a stream of its own every 50 ms in every run, so the write
load is the same on both sides of a row. Each side has a database of its
own; the writers take turns on them (baseline, ours, ours, baseline, half the
time each), so that a machine shared with other work slows both alike. Compared:

  * writers with a daemon following (a ``jsproj daemon`` process, started
    before the writers, the projection built and caught up) against writers
    with no daemon; in the daemon's run the probe waits for each of its
    events to reach the projection's document: the lag, p50 and p99, and the
    daemon's CPU time (its process and its V8 worker) per event;
  * writers with an async projection deployed (the statement trigger that
    NOTIFYs daemons) against the same projection deployed 'live' (no trigger).

The writers are processes of the ``spawn`` kind: they import the main module
again, which must keep its work under ``if __name__ == "__main__"`` (run.py does).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from harness import Row, log
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore

SCENARIO = "7 async"
WRITERS = 8
STREAMS_PER_WRITER = 100
PROBE_EVERY = 0.05  # seconds between the probe's appends
LAG_DEADLINE = 10.0  # seconds the probe waits for its event to reach the document
SOURCE = """projections.projectStream('Account').named('Followed').by({
  $init: function () { return { balance: 0, moves: 0 }; },
  Deposited: function (state, evt) { state.balance += evt.amount; state.moves += 1; },
  Withdrawn: function (state, evt) { state.balance -= evt.amount; state.moves += 1; }
}).async();"""

# The latest event committed, in the order readers see; the projection's progress rows (one per partition) behind it.
HIGH_WATER = "select tx_id::text, position from pge_events order by tx_id desc, position desc limit 1"
LAGGING = """select count(*) from pge_projection_progress
             where name = 'Followed' and (status <> 'running' or (last_tx, last_position) < (%s::xid8, %s))"""

NewDatabase = Callable[[str], str]


def event(n: int) -> dict:
    return {"$type": "Withdrawn" if n % 5 == 4 else "Deposited", "amount": n % 97 + 1}


def write_for(job: tuple[str, int, float, float]) -> tuple[int, float]:
    """A writer process's work: single-event appends from ``start_at`` (epoch seconds) for ``seconds``.

    Returns (appends, how late it started, in seconds).
    """
    dsn, writer, start_at, seconds = job
    with EventStore(dsn, max_size=1) as store:
        time.sleep(max(0.0, start_at - time.time()))
        late = time.time() - start_at
        appends = 0
        while time.time() < start_at + seconds:
            store.append({"id": f"w{writer}-{appends % STREAMS_PER_WRITER}", "type": "Account", "data": event(appends)})
            appends += 1
    return appends, late


def ready(_: int) -> int:
    """A writer process's id, a while after it started (so that each one takes a task)."""
    time.sleep(0.2)
    return os.getpid()


class Probe(threading.Thread):
    """Appends one event every 50 ms to a stream of its own; with ``wait``, waits for the document to show it."""

    def __init__(self, dsn: str, stream: str, start_at: float, seconds: float, *, wait: bool) -> None:
        super().__init__(daemon=True)
        self.dsn, self.stream, self.start_at, self.seconds, self.wait = dsn, stream, start_at, seconds, wait
        self.appends = 0
        self.lags: list[float] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with EventStore(self.dsn, max_size=1) as store, psycopg.connect(self.dsn, autocommit=True) as conn:
                time.sleep(max(0.0, self.start_at - time.time()))
                while time.time() < self.start_at + self.seconds:
                    tick = time.perf_counter()
                    store.append({"id": self.stream, "type": "Account", "data": {"$type": "Deposited", "amount": 1}})
                    self.appends += 1
                    if self.wait:
                        self.lags.append(self._lag(conn, time.perf_counter()))
                    time.sleep(max(0.0, tick + PROBE_EVERY - time.perf_counter()))
        except BaseException as exc:  # noqa: BLE001 - reported by the thread that joins it
            self.error = exc

    def _lag(self, conn: psycopg.Connection, appended: float) -> float:
        """Seconds from the append's commit until the document counts it (LAG_DEADLINE at most)."""
        query = "select (data->>'moves')::bigint from pge_projections_followed where id = %s"
        while time.perf_counter() - appended < LAG_DEADLINE:
            found = conn.execute(query, (self.stream,)).fetchone()
            if found is not None and found[0] >= self.appends:
                return time.perf_counter() - appended
            time.sleep(0.002)
        return LAG_DEADLINE


@dataclass
class Side:
    """One side of a row: its database, its daemon if any, what was appended to it and what the probe measured."""

    dsn: str
    daemon: DaemonProcess | None = None
    appends: int = 0  # the writers'
    probes: int = 0  # the probe's
    turns: int = 0
    lags: list[float] = field(default_factory=list)
    cpu: float = 0.0  # the daemon's CPU seconds during the turns, and until it caught up after each


def turns(pool: multiprocessing.pool.Pool, baseline: Side, ours: Side, seconds: float) -> None:
    """The writers on ``baseline``, ``ours``, ``ours``, ``baseline``, half of ``seconds`` each: drift hits both
    alike. Checks every event appended is stored."""
    for side in (baseline, ours, ours, baseline):
        write_turn(pool, side, seconds / 2)
    for side in (baseline, ours):
        with psycopg.connect(side.dsn) as conn:
            stored = conn.execute("select count(*) from pge_events").fetchone()[0]
        assert stored == side.appends + side.probes, f"{stored} events stored, {side.appends + side.probes} appended"


def write_turn(pool: multiprocessing.pool.Pool, side: Side, seconds: float) -> None:
    """Eight writers and the probe on one side for ``seconds``; then its daemon, if any, catches up."""
    start_at = time.time() + 1.0  # the writers connect meanwhile
    cpu = side.daemon.cpu_seconds() if side.daemon else 0.0
    probe = Probe(side.dsn, f"probe-{side.turns}", start_at, seconds, wait=side.daemon is not None)
    probe.start()
    try:
        results = pool.map(write_for, [(side.dsn, w, start_at, seconds) for w in range(WRITERS)], chunksize=1)
    finally:
        probe.join()
    if probe.error is not None:
        raise probe.error
    late = max(late for _, late in results)
    assert late < 0.5, f"a writer started {late:.2f} s late"
    side.appends += sum(count for count, _ in results)
    side.probes += probe.appends
    side.lags += probe.lags
    side.turns += 1
    if side.daemon:
        side.daemon.wait_caught_up()
        side.cpu += side.daemon.cpu_seconds() - cpu


def new_store(new_database: NewDatabase, name: str, lifecycle: str = "async") -> str:
    dsn = new_database(name)
    with EventStore(dsn, max_size=1) as store:
        store.migrate()
        deploy(store, [{"file": "Followed.js", "source": SOURCE}], lifecycles={"Followed": lifecycle})
    with psycopg.connect(dsn) as conn:
        trigger = conn.execute("select count(*) from pg_trigger where tgname = 'pge_events_notify'").fetchone()[0]
    assert trigger == (1 if lifecycle == "async" else 0), f"{trigger} NOTIFY triggers with a {lifecycle} projection"
    return dsn


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants so far (Linux: /proc/<pid>/stat)."""
    ticks, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
            with open(f"/proc/{current}/task/{current}/children") as children:
                pending += [int(child) for child in children.read().split()]
        except OSError:
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class DaemonProcess:
    """A ``jsproj daemon`` process following the log: started and caught up on entry, stopped on exit."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.stderr = tempfile.TemporaryFile("w+")
        argv = [str(Path(sys.executable).parent / "jsproj"), "daemon", "--dsn", dsn]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.stderr)

    def __enter__(self) -> DaemonProcess:
        try:
            self.wait_caught_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # finishes its page and exits
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.proc.pid)

    def wait_caught_up(self, timeout: float = 120.0) -> None:
        """Until the projection has processed every event committed now."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            target = conn.execute(HIGH_WATER).fetchone() or ("0", 0)
            while conn.execute(LAGGING, target).fetchone()[0]:
                if self.proc.poll() is not None:
                    self.stderr.seek(0)
                    raise RuntimeError(f"the daemon exited with code {self.proc.returncode}: {self.stderr.read()}")
                assert time.monotonic() < deadline, f"the daemon did not catch up in {timeout:.0f} s"
                time.sleep(0.05)


def check_followed(side: Side) -> None:
    """Every event appended is in the documents, once."""
    with psycopg.connect(side.dsn) as conn:
        documents, moves = conn.execute(
            "select count(*), sum((data->>'moves')::bigint) from pge_projections_followed"
        ).fetchone()
    assert moves == side.appends + side.probes, f"the documents count {moves} events, not {side.appends + side.probes}"
    assert documents <= WRITERS * STREAMS_PER_WRITER + side.turns, f"{documents} documents"


def follow(pool: multiprocessing.pool.Pool, new_database: NewDatabase, seconds: float) -> list[Row]:
    log(f"async: {WRITERS} writers, {seconds:g} s with no daemon and {seconds:g} s with a daemon following (the lag)")
    alone, ours = Side(new_store(new_database, "follow_alone")), Side(new_store(new_database, "follow_daemon"))
    with DaemonProcess(ours.dsn) as daemon:
        ours.daemon = daemon
        turns(pool, alone, ours, seconds)
    check_followed(ours)
    events = ours.appends + ours.probes
    lags = [lag * 1000 for lag in ours.lags]
    p50, p99 = statistics.median(lags), statistics.quantiles(lags, n=100, method="inclusive")[98]
    missed = sum(1 for lag in ours.lags if lag >= LAG_DEADLINE)
    lag_note = f"{len(lags)} probes, one every {PROBE_EVERY * 1000:.0f} ms" + (
        f"; {missed} waited past the {LAG_DEADLINE:g} s deadline" if missed else "")  # fmt: skip
    return [
        Row(SCENARIO, f"single-event appends, {WRITERS} writers, a daemon following", ours.appends / seconds,
            "the same writers, no daemon running", alone.appends / seconds, "ev/s", (">=", 0.77),
            note=f"the daemon's CPU (its process and V8 worker): {ours.cpu / events * 1e6:.0f} us per event "
                 f"({ours.cpu:.1f} s for {events:,} events)"),
        Row(SCENARIO, "lag, append to document, p50, daemon following 8 writers", p50,
            "a bound of 50 ms (the probe's interval)", 50.0, "ms", note=lag_note),
        Row(SCENARIO, "lag, append to document, p99, daemon following 8 writers", p99,
            "a bound of 50 ms (the probe's interval): target p99 <= 50 ms", 50.0, "ms", ("<=", 1.0)),
    ]  # fmt: skip


# The trigger as it was before (a NOTIFY from every append), to compare the choice with.
NOTIFY_EVERY_APPEND = """create or replace function pge_notify_daemons() returns trigger language plpgsql as $$
begin perform pg_notify('pge_events', ''); return null; end; $$"""


def notify_cost(pool: multiprocessing.pool.Pool, new_database: NewDatabase, seconds: float) -> list[Row]:
    log(f"async: {WRITERS} writers, {seconds:g} s with the projection 'live', {seconds:g} s with it 'async' (NOTIFY)")
    live, notified = Side(new_store(new_database, "notify_live", "live")), Side(new_store(new_database, "notify_async"))
    turns(pool, live, notified, seconds)
    log("async: the same, with the trigger notifying on every append (as before)")
    live_again, every = (
        Side(new_store(new_database, "notify_live2", "live")),
        Side(new_store(new_database, "notify_all")),
    )
    with psycopg.connect(every.dsn) as conn:
        conn.execute(NOTIFY_EVERY_APPEND)
    turns(pool, live_again, every, seconds)
    what = f"single-event appends, {WRITERS} writers, an async projection deployed"
    return [
        Row(SCENARIO, f"{what} (NOTIFY trigger)", notified.appends / seconds,
            "the same projection deployed 'live' (no trigger)", live.appends / seconds, "ev/s", (">=", 0.9),
            note="no daemon running; of concurrent appends only one notifies (sql/functions/async.sql)"),
        Row(SCENARIO, f"{what}, the trigger notifying on every append (before)", every.appends / seconds,
            "the same projection deployed 'live' (no trigger)", live_again.appends / seconds, "ev/s",
            note="what the choice was measured against: each notifying transaction commits in turn"),
    ]  # fmt: skip


def start_writers(pool: multiprocessing.pool.Pool) -> None:
    """Until every writer process has started (imported jsproj) and taken a task."""
    for _ in range(10):
        if len(set(pool.map(ready, range(WRITERS), chunksize=1))) == WRITERS:
            return
    raise RuntimeError(f"the {WRITERS} writer processes did not all start")


def run(new_database: NewDatabase, quick: bool) -> list[Row]:
    seconds = 4.0 if quick else 10.0
    with multiprocessing.get_context("spawn").Pool(WRITERS) as pool:  # terminated on the way out
        start_writers(pool)
        rows = follow(pool, new_database, seconds)
        rows += notify_cost(pool, new_database, seconds)
    return rows
