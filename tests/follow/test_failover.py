"""Failover on PostgreSQL's own replication (docs/replicas.md#failover): a primary and two standbys, one of them
synchronous; writers, a daemon and a subscriber on a multi-host DSN (``target_session_attrs=read-write``).

Five times in a row the primary is killed (SIGKILL, its postmaster and every backend), its synchronous standby is
promoted, and the old primary and the other standby come back as standbys of the new one (fresh base backups).
Then: every append a writer saw acknowledged is stored, once; the daemon's views equal a fold of the log; the
subscriber's effects hold every event exactly once; and the clients went on by themselves. With asynchronous
replication, an append acknowledged by a primary whose standby had not received it is lost at the promotion:
the second test shows that window.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from jsproj.errors import StoreError
from jsproj.follow.subscriptions import subscribe
from jsproj.projections.deploy import deploy
from jsproj.projections.status import wait_for_projections
from jsproj.store.recorded import RecordedEvent
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import Cluster
from test_daemon import same_as_from_scratch
from test_faults import Writer, check_exactly_once

from projections import COUNTERS, sources
from waiting import daemon_thread, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.server]  # three servers, killed and rebuilt

NAMES = ("n0", "n1", "n2")
#: wal_keep_size: a standby made again starts streaming after the next one's base backup, which recycles WAL;
#: dynamic shared memory in the data folder (mmap), not /dev/shm: a killed server's goes with its folder
SETTINGS = {"jit": "off", "autovacuum": "off", "wal_level": "replica", "max_wal_senders": "8", "hot_standby": "on",
            "wal_keep_size": "'128MB'", "dynamic_shared_memory_type": "mmap"}  # fmt: skip


@dataclass
class Node:
    """A server at a fixed socket folder (what clients' DSN names), whose data may be made again."""

    name: str
    cluster: Cluster

    def kill(self) -> None:
        """SIGKILL the postmaster and every process it started: the machine is gone."""
        pid = self.cluster.pid()
        assert pid is not None
        for target in [pid, *children(pid)]:
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not Path(f"/proc/{pid}").exists())

    def standby_of(self, primary: Node) -> None:
        """Made again as a standby of ``primary``, named to it by its application_name, and started."""
        shutil.rmtree(self.cluster.data_dir, ignore_errors=True)
        primary.cluster.base_backup_to(self.cluster)
        conninfo = (
            f"host={primary.cluster.socket_dir} port={primary.cluster.port} user=jsproj application_name={self.name}"
        )
        with open(self.cluster.data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as auto:
            auto.write(f"primary_conninfo = '{conninfo}'\n")
        self.cluster.start()

    def promote(self) -> None:
        done = self.cluster._run("pg_ctl", "promote", "-w", "-D", str(self.cluster.data_dir), check=False)
        assert done.returncode == 0, done.stderr


@dataclass
class Servers:
    nodes: list[Node]
    primary: Node
    folder: Path

    @property
    def dsn(self) -> str:
        """Every node, the writable one chosen at each connection."""
        hosts = ",".join(str(node.cluster.socket_dir) for node in self.nodes)
        return f"host={hosts} port=5432 user=jsproj dbname=jsproj target_session_attrs=read-write connect_timeout=2"

    def synchronous(self) -> Node:
        with psycopg.connect(self.primary.cluster.dsn) as conn:
            row = conn.execute("select application_name from pg_stat_replication where sync_state = 'sync'").fetchone()
        assert row is not None, "the primary has a synchronous standby"
        return next(node for node in self.nodes if node.name == row[0])

    def streaming(self) -> int:
        with psycopg.connect(self.primary.cluster.dsn) as conn:
            return int(conn.execute("select count(*) from pg_stat_replication where state = 'streaming'").fetchone()[0])

    def fail_over(self) -> None:
        """Kill the primary, promote its synchronous standby, make the others its standbys."""
        chosen = self.synchronous()
        self.primary.kill()
        chosen.promote()
        old, self.primary = self.primary, chosen
        for node in self.nodes:
            if node is not chosen:
                if node is not old:
                    node.cluster.stop(mode="immediate")
                node.standby_of(chosen)
        try:
            wait_until(lambda: self.streaming() == 2)
        except AssertionError:
            raise AssertionError(self.describe()) from None

    def describe(self) -> str:
        """Each node's last log lines and the primary's replication rows: what a failed failover shows."""
        with psycopg.connect(self.primary.cluster.dsn) as conn:
            rows = conn.execute("select application_name, state, sync_state from pg_stat_replication").fetchall()
        logs = {node.name: node.cluster.log_file.read_text(errors="replace").splitlines()[-8:] for node in self.nodes}
        return f"primary {self.primary.name}, replication {rows}, logs {logs}"


@contextmanager
def replicated(names: tuple[str, ...], *, synchronous: bool) -> Iterator[Servers]:
    """A primary (the first name) and the others its standbys, all streaming; synchronous: the first standby
    in the list that streams is the primary's synchronous one (every node has the list, for when it is promoted)."""
    folder = Path(tempfile.mkdtemp(prefix="jsproj-failover-"))
    nodes = [Node(name, Cluster(data_dir=folder / name / "data", socket_dir=folder / name / "run",
                                settings=dict(SETTINGS))) for name in names]  # fmt: skip
    for path in (folder, *(folder / name for name in names)):
        path.mkdir(exist_ok=True)
        os.chmod(path, 0o711)  # (the server's OS user reaches its folders inside)
    first = nodes[0].cluster
    made = Servers(nodes, nodes[0], folder)
    try:
        first.init(durable=False)
        first.start()
        if synchronous:  # (after its start: its createdb would wait for a standby)
            with open(first.data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as auto:  # copied to standbys
                auto.write(f"synchronous_commit = on\nsynchronous_standby_names = 'FIRST 1 ({', '.join(names)})'\n")
            first._run("pg_ctl", "reload", "-D", str(first.data_dir))
        for node in nodes[1:]:
            node.standby_of(nodes[0])
        wait_until(lambda: made.streaming() == len(nodes) - 1)
        yield made
    finally:
        for node in nodes:
            node.cluster.stop(mode="immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def servers() -> Iterator[Servers]:
    with replicated(NAMES, synchronous=True) as made:
        yield made


def test_five_promotions_lose_no_acknowledged_append_and_apply_nothing_twice(servers: Servers) -> None:
    files = sources(Counters=COUNTERS)
    with EventStore(servers.dsn, max_size=6) as store:
        store.migrate()
        deploy(store, files, lifecycles={"Totals": "async", "Balance": "async"})
        with store.connection() as conn:
            conn.execute("create table effects (event_id uuid primary key)")
        effects = subscribe(store, "effects", record_effect, poll_interval=0.05).start()
        stop = threading.Event()
        writers = [Writer(store, f"acc-{k}", stop) for k in range(3)]
        try:
            with daemon_thread(servers.dsn):
                for writer in writers:
                    writer.start()
                for _ in range(5):  # issue 31: five in a row
                    before = acknowledged(writers)
                    wait_until(lambda: acknowledged(writers) >= before + 30)  # noqa: B023 -- called now
                    servers.fail_over()
                wait_until(lambda: acknowledged(writers) >= before + 60)  # the writers went on by themselves
                stop.set()
                for writer in writers:
                    writer.finish()
                wait_for_projections(store, timeout=60)
            total = check_exactly_once(servers.dsn, writers)
            wait_until(lambda: stored_effects(servers.dsn) == total)  # the subscriber caught up, on its own
        finally:
            stop.set()
            effects.stop()
        assert any(writer.errors for writer in writers), "the failovers were felt"
        same_as_from_scratch(store, files)
        with psycopg.connect(servers.dsn) as conn:
            missing = conn.execute("select count(*) from pge_events e where not exists"
                                   " (select from effects f where f.event_id = e.id)").fetchone()  # fmt: skip
        assert missing == (0,), "the subscriber's effects: every event, once (a primary key)"


def record_effect(event: RecordedEvent, conn: psycopg.Connection[Any]) -> None:
    conn.execute("insert into effects (event_id) values (%s)", (event.event_id,))


def acknowledged(writers: list[Writer]) -> int:
    return sum(len(writer.acknowledged) for writer in writers)


def stored_effects(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("select count(*) from effects").fetchone()[0])


def test_with_asynchronous_replication_what_the_standby_had_not_received_is_lost_at_the_promotion() -> None:
    """docs/replicas.md#failover: the window is the WAL the standby had not received when the primary died."""
    with replicated(("a0", "a1"), synchronous=False) as pair:
        primary, standby = pair.nodes
        with EventStore(pair.dsn, max_size=2) as store:
            store.migrate()
            kept = store.append({"id": "acc-1", "type": "Account", "data": {"$type": "Deposited", "amount": 1}})
            wait_until(lambda: replayed(standby, kept.positions[0]))
            standby.cluster.stop()  # it receives nothing more: the window opens
            lost = store.append({"id": "acc-1", "data": {"$type": "Deposited", "amount": 2}})
            assert lost.version == 2, "acknowledged by the primary alone"
            primary.kill()
            standby.cluster.start()
            standby.promote()
            pair.primary = standby
            wait_until(lambda: answers(lambda: store.fetch_stream("acc-1")))  # the store reconnects by itself
            assert [e.data for e in store.fetch_stream("acc-1").events] == [{"amount": 1}], "the second is lost"
            again = store.append({"id": "acc-1", "data": {"$type": "Deposited", "amount": 3}, "expected_version": 1})
            assert again.version == 2, "its version is given again: a writer that kept the lost one's must not"


def replayed(node: Node, position: int) -> bool:
    """Whether the standby has the event at ``position`` (the store's tables may not be there yet either)."""
    with psycopg.connect(node.cluster.dsn) as conn:
        try:
            query = "select exists (select from pge_events where position = %s)"
            return bool(conn.execute(query, (position,)).fetchone()[0])
        except psycopg.errors.UndefinedTable:
            return False


def answers(read: Callable[[], object]) -> bool:
    """Whether ``read()`` succeeds: the first read after a failover meets the connection the primary broke
    (a StoreUnavailableError), and the pool gives a new one for the next."""
    try:
        read()
    except StoreError:
        return False
    return True


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc: no procps needed)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # (gone meanwhile)
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
