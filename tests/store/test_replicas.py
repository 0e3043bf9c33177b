"""Reads from a hot standby (docs/replicas.md), on a real primary and a standby made with pg_basebackup.

A store given replicas reads the log, streams, views and live folds from them and writes on the primary; an
append answers its commit's WAL position, and a read waits until the replica has replayed it (the store's own
appends, in session mode, or ``min_lsn``), at most ``replica_wait`` seconds, then reads from the primary. The
replica's replay is paused to make it lag: what a read returns then says where it was read.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from clihelp import JSPROJ
from jsproj.engine.projections import Projections
from jsproj.projections.deploy import deploy
from jsproj.projections.live import aggregate
from jsproj.store.aio import AsyncEventStore
from jsproj.store.sync import EventStore
from jsproj.tools.postgres_cluster import Cluster, temporary_cluster

from projections import sources
from waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.server]  # two servers of their own (make test-fast leaves them out)

#: The primary streams its WAL to the standby, and commits wait for the WAL's flush (as a durable primary does).
PRIMARY = {"jit": "off", "autovacuum": "off", "wal_level": "replica", "max_wal_senders": "4", "hot_standby": "on"}
PARTY = """projections.projectStream('Quest').named('Party').by({
  $init: function () { return { members: [] }; },
  Joined: function (s, e) { s.members.push(e.name); }
});"""


@dataclass(frozen=True)
class Pair:
    primary: Cluster
    standby: Cluster


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    primary = temporary_cluster(prefix="jsproj-primary-", **PRIMARY)
    standby = temporary_cluster(prefix="jsproj-standby-", hot_standby="on")
    primary.init(durable=False)
    with open(primary.data_dir / "postgresql.auto.conf", "a", encoding="utf-8") as auto:
        auto.write("synchronous_commit = on\n")  # (init's non-durable settings turn it off)
    primary.start()
    try:
        primary.base_backup_to(standby)
        standby.start()
        yield Pair(primary, standby)
    finally:
        standby.destroy()
        primary.destroy()


@pytest.fixture
def store(pair: Pair) -> Iterator[EventStore]:
    """A store of its own (a schema) on the primary, reading from the standby, its replay running."""
    schema = f"s_{uuid.uuid4().hex[:8]}"
    with EventStore(pair.primary.dsn, schema=schema, replicas=[pair.standby.dsn], replica_wait=0.5) as opened:
        opened.migrate()
        deploy(opened, sources(Party=PARTY), engine="plpython")
        yield opened
    replay(pair, paused=False)


def replay(pair: Pair, *, paused: bool) -> None:
    with psycopg.connect(pair.standby.dsn, autocommit=True) as conn:
        conn.execute("select pg_wal_replay_pause()" if paused else "select pg_wal_replay_resume()")


def on_standby(store: EventStore, min_lsn: str | None = None) -> bool:
    """Whether a read given ``min_lsn`` (and the store's own appends) is served by the standby."""
    with store.read_connection(min_lsn) as conn:
        return bool(conn.execute("select pg_is_in_recovery()").fetchone()[0])


def joined(store: EventStore, quest: str, name: str) -> str:
    done = store.append({"id": quest, "type": "Quest", "data": {"$type": "Joined", "name": name}})
    assert done.lsn is not None and "/" in done.lsn, "an append answers its commit's WAL position"
    return done.lsn


def test_reads_go_to_the_replica_and_see_the_stores_own_appends(store: EventStore) -> None:
    joined(store, "quest-1", "Frodo")
    assert on_standby(store), "the replica had replayed the append: it serves the read"
    assert [e.data for e in store.read_all(stream_types="Quest")] == [{"name": "Frodo"}]
    assert store.fetch_stream("quest-1").version == 1
    assert store.views("Party").get("quest-1") == {"members": ["Frodo"]}
    with Projections(sources(Party=PARTY)) as loaded:  # a live fold reads the stream from the replica too
        assert aggregate(store, loaded, "Party", "quest-1") == {"members": ["Frodo"]}
    with store.connection() as conn:  # writes, deploys and daemons: the primary
        assert conn.execute("select pg_is_in_recovery()").fetchone() == (False,)


def test_a_read_waits_for_the_replay_and_past_its_deadline_reads_from_the_primary(
    store: EventStore, pair: Pair
) -> None:
    first = joined(store, "quest-2", "Sam")
    wait_until(lambda: on_standby(store, first))
    replay(pair, paused=True)
    second = joined(store, "quest-2", "Pippin")
    assert not on_standby(store), "session mode: the replica has not replayed the store's own append"
    assert store.views("Party").get("quest-2") == {"members": ["Sam", "Pippin"]}, "read from the primary"
    with EventStore(pair.primary.dsn, schema=store.schema, replicas=[pair.standby.dsn], read_your_writes=False,
                    replica_wait=0.2) as other:  # fmt: skip
        assert other.views("Party").get("quest-2") == {"members": ["Sam"]}, "no position given: the replica's"
        assert other.views("Party", min_lsn=second).get("quest-2") == {"members": ["Sam", "Pippin"]}
        assert [e.version for e in other.read_all(stream_types="Quest", min_lsn=second)] == [1, 2]
        replay(pair, paused=False)
        wait_until(lambda: on_standby(other, second))  # replayed: the replica serves it again


def test_a_replica_that_cannot_be_reached_is_skipped_and_lag_is_shown_for_each(store: EventStore, pair: Pair) -> None:
    gone = f"host={pair.standby.socket_dir}-gone port=5432 user=jsproj dbname=jsproj"
    with EventStore(pair.primary.dsn, schema=store.schema, replicas=[gone, pair.standby.dsn]) as both:
        joined(both, "quest-3", "Merry")
        for _ in range(2):  # each replica's turn: the one down is skipped
            assert both.fetch_stream("quest-3").version == 1
        lag = {entry.replica: entry for entry in both.replica_lag()}
        [(_, down), (_, up)] = sorted(lag.items(), key=lambda item: item[1].error is None)
        assert down.error and down.replay_lsn is None
        assert up.standby and up.error is None and up.lag_bytes is not None and up.lag_bytes >= 0
        replay(pair, paused=True)
        joined(both, "quest-3", "Gimli")
        behind = next(entry for entry in both.replica_lag() if entry.error is None)
        assert behind.lag_bytes is not None and behind.lag_bytes > 0, "paused: it is behind the primary"
    with EventStore(pair.primary.dsn, schema=store.schema, replicas=[gone]) as none_up:
        assert none_up.fetch_stream("quest-3").version == 2, "no replica answers: the primary does"


def test_the_cli_reads_from_replicas_given_or_in_jsproj_toml_and_shows_their_lag(
    store: EventStore, pair: Pair, tmp_path: Path
) -> None:
    lsn = joined(store, "quest-4", "Aragorn")
    wait_until(lambda: on_standby(store, lsn))
    replay(pair, paused=True)
    joined(store, "quest-4", "Legolas")  # the replica has not replayed it: what it serves is one event behind
    where = ["--dsn", pair.primary.dsn, "--schema", store.schema]
    events = ["events", *where, "--stream-type", "Quest", "--json"]
    from_replica = cli(*events, "--replica", pair.standby.dsn, cwd=tmp_path)
    assert [e["version"] for e in json.loads(from_replica)["events"] if e["streamId"] == "quest-4"] == [1]
    assert len([e for e in json.loads(cli(*events, cwd=tmp_path))["events"] if e["streamId"] == "quest-4"]) == 2
    (tmp_path / "jsproj.toml").write_text(f"[jsproj]\nreplicas = [{json.dumps(pair.standby.dsn)}]\n")
    [lag] = json.loads(cli("replicas", *where, "--json", cwd=tmp_path))
    assert lag["standby"] is True and lag["lagBytes"] > 0 and lag["error"] is None
    assert "replicas" in cli("status", *where, cwd=tmp_path), "status shows the replicas' table after the projections'"
    (tmp_path / "jsproj.toml").write_text('[jsproj]\nreplicas = "host=standby"\n')
    refused = subprocess.run([str(JSPROJ), "replicas", *where], cwd=tmp_path, capture_output=True, text=True,
                             check=False)  # fmt: skip
    assert refused.returncode == 1 and "replicas must be a list of connection strings" in refused.stderr


def cli(*args: str, cwd: Path) -> str:
    done = subprocess.run([str(JSPROJ), *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_asyncio_store_reads_from_the_replica_and_sees_its_own_appends(store: EventStore, pair: Pair) -> None:
    async def scenario() -> None:
        async with AsyncEventStore(pair.primary.dsn, schema=store.schema, replicas=[pair.standby.dsn],
                                   replica_wait=0.5) as aio:  # fmt: skip
            first = await aio.append({"id": "quest-5", "type": "Quest", "data": {"$type": "Joined", "name": "Bilbo"}})
            assert first.lsn is not None
            await wait_async(lambda: aio_on_standby(aio, first.lsn))  # replayed: the replica serves it
            replay(pair, paused=True)
            second = await aio.append({"id": "quest-5", "data": {"$type": "Joined", "name": "Thorin"}})
            assert not await aio_on_standby(aio, None), "session mode: not replayed, the primary answers"
            assert await aio.views("Party").get("quest-5") == {"members": ["Bilbo", "Thorin"]}
            assert [e.version for e in await aio.read_all(stream_types="Quest", min_lsn=second.lsn)
                    if e.stream_id == "quest-5"] == [1, 2]  # fmt: skip
            [lag] = await aio.replica_lag()
            assert lag.standby and lag.lag_bytes is not None and lag.lag_bytes > 0

    asyncio.run(scenario())


async def aio_on_standby(aio: AsyncEventStore, min_lsn: str | None) -> bool:
    async with aio.read_connection(min_lsn) as conn:
        row = await (await conn.execute("select pg_is_in_recovery()")).fetchone()
    return bool(row and row[0])


async def wait_async(condition: Callable[[], Awaitable[bool]], deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not await condition():
        assert time.monotonic() < end, "condition not met before the deadline"
        await asyncio.sleep(0.02)
