"""Faults under load: PostgreSQL restarted or crashing under writers and daemons, connections killed,
statement timeouts. Clients get clear errors (or retry, with the event's own $id making the retry safe);
nothing is half-written; what was acknowledged is stored exactly once.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict

import psycopg
import pytest

from jsproj import errors
from jsproj.errors import StoreError
from jsproj.follow.daemon import Daemon
from jsproj.projections.deploy import deploy
from jsproj.projections.status import wait_for_projections
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import temporary_cluster
from test_daemon import same_as_from_scratch

from projections import COUNTERS, sources
from waiting import daemon_thread


class Writer(threading.Thread):
    """Appends single events with their own $id to one stream, retrying what failed with a clear error.

    A retry of an append whose outcome was lost with the connection either
    succeeds or is refused as "already stored": both mean stored, once.
    """

    def __init__(self, store: EventStore, stream: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.store, self.stream, self.stop_at = store, stream, stop
        self.acknowledged: list[str] = []
        self.errors: list[str] = []
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            self.write()
        except BaseException as exc:  # noqa: BLE001 -- reported by finish()
            self.failure = exc

    def finish(self) -> None:
        self.join(timeout=30)
        assert not self.is_alive(), f"{self.stream}: the writer did not stop"
        assert self.failure is None, f"{self.stream}: {self.failure!r}"

    def write(self) -> None:
        n = 0
        while not self.stop_at.is_set():
            event_id = str(uuid.uuid4())
            message = {
                "id": self.stream,
                "type": "Account",
                "data": {"$type": "Deposited", "amount": n % 7, "$id": event_id},
            }
            for _ in range(200):
                try:
                    self.store.append(message)
                    self.acknowledged.append(event_id)
                    break
                except errors.InvalidEventError as exc:
                    assert "already stored" in exc.message, exc.message  # the lost acknowledgement of a commit
                    self.acknowledged.append(event_id)
                    break
                except StoreError as exc:  # a clear, one-line error: unreachable, terminated, ...
                    assert exc.message and "\n" not in exc.message.strip()
                    self.errors.append(exc.message)
                    time.sleep(0.05)
            else:
                raise AssertionError(f"{self.stream}: no append got through for 10 s")
            n += 1


def check_exactly_once(dsn: str, writers: list[Writer]) -> int:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select id::text, stream_id, version from pge_events order by stream_id, version"
        ).fetchall()
    by_stream: dict[str, list[int]] = defaultdict(list)
    for _, stream, version in rows:
        by_stream[stream].append(version)
    for stream, versions in by_stream.items():
        assert versions == list(range(1, len(versions) + 1)), f"{stream}: versions are not dense"
    stored = [event_id for event_id, _, _ in rows]
    acknowledged = [event_id for w in writers for event_id in w.acknowledged]
    assert len(stored) == len(set(stored))
    assert sorted(stored) == sorted(acknowledged), "stored events differ from acknowledged ones"
    return len(stored)


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("mode", ["fast", "immediate"])  # immediate: a crash, with recovery on start
def test_writers_and_a_daemon_across_postgresql_restarts(mode: str) -> None:
    cluster = temporary_cluster()
    cluster.init(durable=True)
    cluster.start()
    try:
        files = sources(Counters=COUNTERS)
        with EventStore(cluster.dsn, max_size=6) as store:
            store.migrate()
            deploy(store, files, lifecycles={"Totals": "async", "Balance": "async"})
            stop = threading.Event()
            writers = [Writer(store, f"acc-{k}", stop) for k in range(4)]
            with daemon_thread(cluster.dsn):
                for writer in writers:
                    writer.start()
                for _ in range(2):
                    deadline = time.monotonic() + 30
                    start = sum(len(w.acknowledged) for w in writers)
                    while sum(len(w.acknowledged) for w in writers) < start + 40:
                        assert time.monotonic() < deadline, "writers made no progress"
                        time.sleep(0.01)
                    cluster.stop(mode=mode)
                    cluster.start()
                deadline = time.monotonic() + 30
                while sum(len(w.acknowledged) for w in writers) < start + 80:
                    assert time.monotonic() < deadline, "writers made no progress after the restart"
                    time.sleep(0.01)
                stop.set()
                for writer in writers:
                    writer.finish()
                wait_for_projections(store, timeout=60)
            assert any(w.errors for w in writers), "the restarts were felt by the writers"
            total = check_exactly_once(cluster.dsn, writers)
            assert total >= 100  # 40 before each restart, 80 after the last
            same_as_from_scratch(store, files)
    finally:
        cluster.destroy()


@pytest.mark.slow  # connections killed under load, and waited back
def test_terminated_connections_under_writers_and_a_daemon(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles={"Totals": "async", "Balance": "async"})
    stop = threading.Event()
    writers = [Writer(store, f"acc-{k}", stop) for k in range(3)]
    with daemon_thread(dsn):
        for writer in writers:
            writer.start()
        with psycopg.connect(dsn, autocommit=True) as killer:
            for _ in range(6):
                time.sleep(0.15)  # let work happen between the kills (not synchronisation: any timing will do)
                killer.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'"
                )
        stop.set()
        for writer in writers:
            writer.finish()
        wait_for_projections(store, timeout=60)
    assert any(w.errors for w in writers)
    check_exactly_once(dsn, writers)
    same_as_from_scratch(store, files)


def test_a_statement_timeout_is_a_clear_error_and_writes_nothing(dsn: str) -> None:
    with EventStore(f"{dsn} options='-c statement_timeout=20'", max_size=1) as store:
        huge = {"id": "big", "type": "T", "data": [{"$type": "A", "n": n, "pad": "x" * 200} for n in range(200_000)]}
        with pytest.raises(StoreError, match="statement timeout"):
            store.append(huge)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select count(*) from pge_events").fetchone() == (0,)


@pytest.mark.slow  # connections killed under load, and waited back
def test_the_daemon_survives_its_connections_being_killed(store: EventStore, dsn: str) -> None:
    files = sources(Counters=COUNTERS)
    deploy(store, files, lifecycles={"Totals": "async", "Balance": "async"})
    for n in range(300):
        store.append({"id": f"acc-{n % 5}", "type": "Account", "data": {"$type": "Deposited", "amount": n % 7}})
    worker = Daemon(dsn, poll_interval=0.05, page_size=20)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        with psycopg.connect(dsn, autocommit=True) as killer:
            for _ in range(5):
                time.sleep(0.1)
                killer.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = current_database() and application_name like 'jsproj daemon%'"
                )
        wait_for_projections(store, timeout=60)
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    same_as_from_scratch(store, files)


def test_a_temporary_cluster_leaves_no_folder_behind_whatever_its_prefix() -> None:
    cluster = temporary_cluster(prefix="jsproj-bench-test-")
    assert cluster.folder is not None and cluster.folder.is_dir()
    cluster.destroy()
    assert not cluster.folder.exists(), "benchmarks made clusters of other prefixes and left their folders"
