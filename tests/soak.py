"""Soak: mixed load with periodic kills, then every invariant checked.

    python tests/soak.py [--duration 600] [--report FILE]      (make soak; make test runs a short one)

On a throwaway PostgreSQL cluster (durable settings), for --duration seconds:

* writer processes append to shared streams (with and without expected
  versions: conflicts are expected and counted) and to streams of their own,
  single events and batches, each event with its own $id; an append whose
  outcome was lost is retried with the same $id (stored once either way);
* a slow writer keeps a transaction open across others' commits, committing
  or rolling back;
* a reader follows the gap-safe read_all;
* two `jsproj daemon` processes run the async projections, and one of them
  is killed with SIGKILL every few seconds and started again.

Then, with everything stopped and the daemons caught up, it checks: every
acknowledged event is stored exactly once and nothing else is; stream
versions are dense; the reader saw every stored event exactly once, and
nothing that was rolled back; the stored views equal a fold of the whole log
from scratch. Prints the counts and the invariants; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

from jsproj import errors
from jsproj.engine.simulation import simulate
from jsproj.errors import StoreError
from jsproj.follow.daemon import STALE_SECONDS
from jsproj.projections.deploy import deploy
from jsproj.projections.status import wait_for_projections
from jsproj.projections.views import export_views
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import temporary_cluster

JSPROJ = Path(sys.executable).parent / "jsproj"
PROJECTIONS = """
projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, moves: 0 }; },
  Deposited: function (s, e) { s.balance += e.amount; s.moves += 1; },
  Withdrawn: function (s, e) { s.balance -= e.amount; s.moves += 1; }
}).async();
projections.aggregate('Totals').by({
  $any: function (s, e) { s.events = (s.events || 0) + 1; s.amount = (s.amount || 0) + e.amount; }
}).async();
projections.projectView('ByAmount').identifiedBy(function (e) { return 'amount-' + (e.amount % 5); }).by({
  $any: function (s, e) { s.n = (s.n || 0) + 1; s.total = (s.total || 0) + e.amount; }
}).async();
projections.projectStream('Account').named('Moves').by({
  $any: function (s) { s.n = (s.n || 0) + 1; }
});
"""
SHARED = [f"shared-{n}" for n in range(6)]


def event(rng: random.Random) -> dict[str, Any]:
    return {"$type": rng.choice(["Deposited", "Withdrawn"]), "amount": rng.randint(1, 50), "$id": str(uuid.uuid4())}


def append_retrying(store: EventStore, message: dict[str, Any], stats: dict[str, int]) -> bool:
    """Append; True once stored (a lost acknowledgement is found out by its $ids), False on a version conflict."""
    for _ in range(600):
        try:
            store.append(message)
            return True
        except errors.ConcurrencyError:
            stats["conflicts"] += 1
            return False
        except errors.InvalidEventError as exc:
            if "already stored" in exc.message:  # the first attempt committed, its answer was lost
                return True
            raise
        except StoreError:
            stats["retries"] += 1
            time.sleep(0.05)
    raise RuntimeError("no append got through for 30 s")


def writer(dsn: str, number: int, until: float, out: str) -> None:
    rng = random.Random(number)
    stats = {"appends": 0, "events": 0, "conflicts": 0, "retries": 0}
    own = [f"own-{number}-{n}" for n in range(3)]
    created: set[str] = set()
    with EventStore(dsn, max_size=1) as store, open(out, "w") as acknowledged:
        while time.time() < until:
            stream = rng.choice(SHARED + own)
            events = [event(rng) for _ in range(rng.choice([1, 1, 1, 3, 20]))]
            message: dict[str, Any] = {"id": stream, "type": "Account", "data": events}
            if stream in SHARED and rng.random() < 0.5:
                try:
                    message["expected_version"] = store.fetch_stream(stream).version
                except errors.JsprojError:
                    message["expected_version"] = 0
            if append_retrying(store, message, stats):
                acknowledged.write("".join(e["$id"] + "\n" for e in events))
                acknowledged.flush()
                stats["appends"] += 1
                stats["events"] += len(events)
                created.add(stream)
    Path(out + ".stats").write_text(json.dumps(stats))


def slow_writer(dsn: str, until: float, out: str) -> None:
    """Keeps a transaction open across other commits; commits two in three, rolls back the rest."""
    rng = random.Random(99)
    rolled_back = []
    with psycopg.connect(dsn) as conn, open(out, "w") as acknowledged:
        while time.time() < until:
            event_id = str(uuid.uuid4())
            message = {"id": "slow", "type": "Account", "data": {"$type": "Deposited", "amount": 1, "$id": event_id}}
            try:
                conn.execute("select pge_append(%s)", (json.dumps(message),))
                time.sleep(rng.uniform(0.1, 0.6))
                if rng.random() < 0.33:
                    conn.rollback()
                    rolled_back.append(event_id)
                else:
                    conn.commit()
                    acknowledged.write(event_id + "\n")
                    acknowledged.flush()
            except psycopg.Error:
                conn.rollback()
    Path(out + ".rolled_back").write_text("\n".join(rolled_back))


class Reader(threading.Thread):
    """Follows read_all; keeps every event id it saw, in order."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.seen: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        after = 0
        with EventStore(self.dsn, max_size=1) as store:
            while True:
                try:
                    page = store.read_all(after=after, limit=500)
                except errors.JsprojError:
                    time.sleep(0.05)
                    continue
                self.seen += [e.event_id for e in page]
                if page:
                    after = page[-1].position
                elif self.done.is_set():
                    return
                else:
                    time.sleep(0.02)


def start_daemon(dsn: str) -> subprocess.Popen:
    argv = [str(JSPROJ), "daemon", "--dsn", dsn, "--poll-interval", "0.1", "--page-size", "200"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def soak(duration: float, writers: int = 3) -> dict[str, Any]:
    cluster = temporary_cluster(prefix="jsproj-pg-soak-", max_connections="60")
    cluster.init(durable=True)
    cluster.start()
    work = Path(cluster.data_dir).parent / "soak"
    work.mkdir()
    report: dict[str, Any] = {"duration_s": duration, "writers": writers}
    try:
        dsn = cluster.dsn
        with EventStore(dsn, max_size=2) as store:
            store.migrate()
            # Moves is inline in the database, so that the slow writer's plain-SQL appends update it too.
            deploy(store, [{"file": "Soak.js", "source": PROJECTIONS}], engine="plpython", on_error={"Balance": "stop"})
        until = time.time() + duration
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=writer, args=(dsn, n, until, str(work / f"w{n}"))) for n in range(writers)]
        processes.append(context.Process(target=slow_writer, args=(dsn, until, str(work / "slow"))))
        reader = Reader(dsn)
        reader.start()
        daemons = [start_daemon(dsn), start_daemon(dsn)]
        for process in processes:
            process.start()
        killed, rng = [], random.Random(7)
        while time.time() < until:
            time.sleep(min(rng.uniform(1.0, 3.0), max(0.0, until - time.time())))  # load between kills, not a wait
            victim = rng.randrange(len(daemons))
            daemons[victim].send_signal(signal.SIGKILL)
            daemons[victim].wait()
            killed.append(daemons[victim].pid)
            daemons[victim] = start_daemon(dsn)
        for process in processes:
            process.join(timeout=120)
            assert process.exitcode == 0, f"a writer failed (exit code {process.exitcode})"
        # The load is over: the killed daemons' heartbeats age as STALE_SECONDS would age them, so that the
        # live daemons share every projection now instead of leaving the ghosts' shares for half a minute.
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("update pge_daemons set heartbeat_at = now() - make_interval(secs => %s) where pid = any(%s)",
                         (STALE_SECONDS + 1, killed))  # fmt: skip
        with EventStore(dsn, max_size=2) as store:
            wait_for_projections(store, timeout=300)
            reader.done.set()
            reader.join(timeout=120)
            for daemon in daemons:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=60)
            report.update(check(dsn, store, work, writers, reader))
        report["daemon_kills"] = len(killed)
    finally:
        cluster.destroy()
    return report


def check(dsn: str, store: EventStore, work: Path, writers: int, reader: Reader) -> dict[str, Any]:
    acknowledged: list[str] = []
    stats: dict[str, int] = defaultdict(int)
    for n in range(writers):
        acknowledged += (work / f"w{n}").read_text().split()
        for key, value in json.loads((work / f"w{n}.stats").read_text()).items():
            stats[key] += value
    acknowledged += (work / "slow").read_text().split()
    rolled_back = set((work / "slow.rolled_back").read_text().split())
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select id::text, stream_id, version from pge_events order by stream_id, version"
        ).fetchall()
    stored = [event_id for event_id, _, _ in rows]
    versions: dict[str, list[int]] = defaultdict(list)
    for _, stream, version in rows:
        versions[stream].append(version)
    mismatches = {
        "acknowledged but not stored exactly once": len(set(acknowledged) ^ set(stored))
        + len(stored)
        - len(set(stored)),
        "streams with gaps in their versions": sum(v != list(range(1, len(v) + 1)) for v in versions.values()),
        "events the reader missed or saw twice": len(reader.seen)
        - len(set(reader.seen))
        + len(set(stored) ^ set(reader.seen)),
        "rolled-back events seen": len(rolled_back & (set(stored) | set(reader.seen))),
    }
    events = [{"id": e.stream_id, "type": e.stream_type, "data": e.event, "timestamp": e.timestamp.isoformat()}
              for e in store.read_all(after=0, limit=10_000_000)]  # fmt: skip
    from jsproj.engine.projections import Projections

    with Projections([{"file": "Soak.js", "source": PROJECTIONS}]) as loaded:
        want = simulate(loaded, events)
    have = export_views(store)
    mismatches["views that differ from a fold from scratch"] = sum(
        have["views"].get(name) != want["views"][name] for name in ("Balance", "ByAmount", "Moves")
    ) + (have["aggregates"].get("Totals") != want["aggregates"]["Totals"])
    return {
        "events_stored": len(stored),
        "appends_acknowledged": stats["appends"],
        "version_conflicts": stats["conflicts"],
        "appends_retried_after_errors": stats["retries"],
        "slow_transactions_rolled_back": len(rolled_back),
        "events_read_by_the_follower": len(reader.seen),
        "streams": len(versions),
        "invariants": list(mismatches),
        "mismatches": sum(mismatches.values()),
        "mismatch_detail": mismatches,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=float(os.environ.get("SOAK_SECONDS", "600")))
    parser.add_argument("--writers", type=int, default=3)
    parser.add_argument("--report", type=Path, help="also write the report as JSON")
    args = parser.parse_args()
    report = soak(args.duration, args.writers)
    for key, value in report.items():
        if key != "mismatch_detail":
            print(f"{key}: {value}")
    for invariant, count in report["mismatch_detail"].items():
        print(f"  {'ok ' if count == 0 else 'FAIL'} {invariant}: {count}")
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    return 0 if report["mismatches"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
