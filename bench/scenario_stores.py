"""Scenario 13 (issue 31): one daemon serving 100 stores (docs/daemon.md#many-stores-one-daemon) against one store.

Two databases on the bench's cluster: one with a single store, one with 100 stores (a schema each, as
``store.for_tenant`` makes them), each store with one async aggregate. For each pair, the same number of
events is appended -- all to the one store, or spread evenly over the 100 -- and a daemon process
(bench/fleet_process.py: ``Daemon`` of the one store, or the ``Fleet`` of every store, both with their
defaults: pages of up to 20,000, a fleet of 2 workers and at most 8 stores attached; both warm, as a
daemon that has been running) catches up from behind. Two sizes: 1,000 and 10,000 events per store. The
rows: events/s (target >= 0.7x the one store's) and the peak memory of the daemon process and its V8
workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from harness import Pairs, Row, alternate, log
from jsproj.projections.deploy import deploy
from jsproj.store.sync import EventStore

COUNT = """projections.aggregate('Count').by({
  $any: function (s, e) { s.n = (s.n || 0) + 1; s.sum = (s.sum || 0) + e.amount; }
});"""
HERE = Path(__file__).parent


def tree_rss(pid: int) -> int:
    """The resident memory of ``pid`` and its descendants, in bytes (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS")), 0)
    return total


def catch_up(dsn: str, mode: str, peaks: list[int], *more: str) -> float:
    """Events/s is the caller's: this is the seconds a daemon process of ``mode`` takes to catch up (its
    peak memory appended to ``peaks``)."""
    command = [sys.executable, str(HERE / "fleet_process.py"), dsn, mode, *more]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "ready"
        peak, done = [0], threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], tree_rss(process.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        process.stdin.write("go\n")
        process.stdin.flush()
        answer = json.loads(process.stdout.readline())
        done.set()
        sampler.join()
        assert answer["caught_up"], answer
        peaks.append(peak[0])
        return float(answer["seconds"])
    finally:
        process.stdin.close()
        process.wait(timeout=60)


def prepare(dsn: str, schemas: list[str]) -> None:
    """Each store made, its aggregate deployed and built (empty): what follows is followed by pages."""
    for schema in schemas:
        with EventStore(dsn, schema=schema, max_size=1) as store:
            store.migrate()
            deploy(store, [{"file": "Count.js", "source": COUNT}], lifecycles={"Count": "async"})
    catch_up(dsn, "many", [])


def append(dsn: str, schemas: list[str], events: int) -> None:
    each = events // len(schemas)
    for schema in schemas:
        with EventStore(dsn, schema=schema, max_size=1) as store:
            for start in range(0, each, 2000):
                store.append_all([{"id": f"s-{n % 50}", "type": "S", "data": {"$type": "Added", "amount": n}}
                                  for n in range(start, min(each, start + 2000))])  # fmt: skip


def run(new_database: Callable[[str], str], quick: bool) -> list[Row]:
    stores, pairs = (20, 2) if quick else (100, 3)
    one_dsn, many_dsn = new_database("bench_one_store"), new_database("bench_many_stores")
    many = [f"tenant_{n}" for n in range(stores)]
    prepare(one_dsn, ["public"])
    prepare(many_dsn, many)
    rows: list[Row] = []
    for each in (1_000, 10_000):
        rows += measure(one_dsn, many_dsn, many, each * stores, pairs, memory=each == 1_000)
    return rows


def measure(one_dsn: str, many_dsn: str, many: list[str], events: int, pairs: int, *, memory: bool) -> list[Row]:
    """The rows of one size: events/s (and, ``memory``, the peak memory) of the fleet and of the one store."""
    stores = len(many)
    log(f"stores: {stores} stores and one, {events:,} events per run, {pairs} pairs")
    peaks_many: list[int] = []
    peaks_one: list[int] = []

    def fleet() -> float:
        append(many_dsn, many, events)
        return events / catch_up(many_dsn, "many", peaks_many)

    def alone() -> float:
        append(one_dsn, ["public"], events)
        return events / catch_up(one_dsn, "one", peaks_one)

    rates = alternate(fleet, alone, pairs, what=f"one daemon catching up {stores} stores")
    rows = [
        Row("13 stores", f"one daemon catching up {stores} stores ({events // stores:,} events each), events/s", rates,
            f"one store with the same {events:,} events", "events/s", (">=", 0.7),
            note="a daemon process from behind, one async aggregate per store; the fleet's defaults (2 workers, "
                 "at most 8 stores attached, their connections and V8 contexts taken store after store: "
                 "docs/daemon.md#many-stores-one-daemon). Each store attached costs a fixed ~10 ms (its "
                 "connections set, its code loaded, its progress read and committed): a large part of 1,000 "
                 "events' ~7 ms, a small one of 10,000's"),
    ]  # fmt: skip
    if memory:
        sizes = Pairs([p / 2**20 for p in peaks_many], [p / 2**20 for p in peaks_one], rates.loads)
        rows.append(Row("13 stores", f"the same daemon's peak memory (its process and V8 workers), {stores} stores",
                        sizes, "the one store's daemon", "MiB",
                        note="resident memory sampled every 20 ms: the fleet keeps 8 V8 worker processes (one per "
                             "store attached) and 24 connections"))  # fmt: skip
    return rows
