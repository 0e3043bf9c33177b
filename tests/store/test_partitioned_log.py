"""The partitioned log (docs/partitioning.md) against a real PostgreSQL: the online conversion, partitions made
ahead of need by appends, uniqueness of event ids and stream versions across partitions, reads and the gap-safe
order unchanged, what the switch carries over or refuses, and detaching old partitions.

Partitions of 64 events (the smallest), so that a few appends cross several. ``pytest --partitioned-log`` runs
any other suite on stores partitioned so (tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from jsproj import errors
from jsproj.follow.daemon import Daemon
from jsproj.projections.deploy import deploy
from jsproj.store import partitioning
from jsproj.store.sync import EventStore
from jsproj.tools.cli import main
from jsproj.tools.postgres_cluster import server_os_user

from projections import COUNTERS, sources
from waiting import wait_until

SIZE = 64
DOC = Path(__file__).resolve().parents[2] / "docs" / "partitioning.md"


def account(n: int, events: int, start: int = 0) -> dict[str, Any]:
    return {"id": f"acct-{n}", "type": "Account",
            "data": [{"$type": "Deposited", "amount": start + k} for k in range(events)]}  # fmt: skip


def snapshot(store: EventStore) -> list[tuple[int, str, int, str, Any]]:
    """The whole log as read_all gives it, in pages of 50."""
    found, after = [], 0
    while page := store.read_all(after=after, limit=50):
        found += [(e.position, e.stream_id, e.version, e.type, e.data) for e in page]
        after = page[-1].position
    return found


def partitioned(dsn: str) -> partitioning.Conversion:
    return partitioning.partition_log(dsn, size=SIZE, headroom=1)


@pytest.fixture
def grown(store: EventStore, dsn: str) -> list[tuple[int, str, int, str, Any]]:
    """A store of 100 events in five streams, then partitioned: what it read before."""
    store.append_all([account(n, 20) for n in range(5)])
    before = snapshot(store)
    partitioned(dsn)
    return before


def test_a_converted_store_reads_what_it_read_and_appends_go_on_into_partitions_made_ahead(
    store: EventStore, dsn: str, grown: list[Any]
) -> None:
    assert snapshot(store) == grown
    first = partitioning.partitions(dsn)[0]
    assert (first.name, first.lower, first.upper) == ("pge_events_0", None, 128)  # the log as it was, and headroom
    for round_ in range(6):  # single appends and batches, each crossing partitions
        store.append(account(round_ % 5, 1, 100 + round_))
        store.append_all([account(n, 15, 200) for n in range(3)])
    log = snapshot(store)
    assert log[: len(grown)] == grown and len(log) == 100 + 6 * 46
    assert [p for p, *_ in log] == sorted(p for p, *_ in log)
    made = partitioning.partitions(dsn)
    assert {e[0] // SIZE for e in log} >= {2, 3, 4, 5}, "the events fill several partitions"
    assert made[-1].upper - log[-1][0] > 256, "256 positions (a quarter of a partition, at least) lie ahead"
    assert [p.lower for p in made[1:]] == [p.upper for p in made[:-1]], "partitions follow each other"
    for n in range(5):
        assert [e.version for e in store.fetch_stream(f"acct-{n}").events] == list(range(1, len(
            [e for e in log if e[1] == f"acct-{n}"]) + 1))  # fmt: skip


def test_a_large_message_gets_its_partitions_before_its_insert(store: EventStore, dsn: str) -> None:
    partitioned(dsn)
    result = store.append(account(1, 1000))
    assert len(result.positions) == 1000
    assert partitioning.partitions(dsn)[-1].upper > result.positions[-1] + 256


def test_a_stream_s_version_and_an_event_id_stay_unique_across_partitions(
    store: EventStore, dsn: str, grown: list[Any]
) -> None:
    stored = store.fetch_stream("acct-0").events[0].event_id  # in the first partition
    store.append_all([account(9, 60) for _ in range(3)])  # the log moves partitions on
    with pytest.raises(errors.ConcurrencyError):
        store.append({**account(0, 1), "expected_version": 19})
    with pytest.raises(errors.InvalidEventError, match=r"an event \$id is already stored"):
        store.append({"id": "acct-0", "type": "Account", "data": {"$type": "Deposited", "$id": stored}})
    with pytest.raises(errors.InvalidEventError, match=r"message 2: an event \$id is already stored"):
        store.append_all([account(1, 1), {"id": "acct-2", "type": "Account",
                                          "data": [{"$type": "Deposited", "$id": stored}]}])  # fmt: skip
    assert store.fetch_stream("acct-0").version == 20
    with psycopg.connect(dsn) as conn:
        duplicates = conn.execute("select count(*) from (select stream_id, version from pge_events"
                                  " group by 1, 2 having count(*) > 1) d").fetchone()  # fmt: skip
    assert duplicates == (0,)


def test_two_appends_of_one_new_event_id_on_both_sides_of_a_partition_boundary_store_it_once(
    store: EventStore, dsn: str
) -> None:
    partitioned(dsn)
    given = str(uuid.uuid4())
    with psycopg.connect(dsn) as first, psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select setval(pg_get_serial_sequence('pge_events', 'position'), 5 * %s - 2)", (SIZE,))
        message = {"id": "a", "type": "Account", "data": {"$type": "Deposited", "$id": given}}
        first.execute("select pge_append(%s)", (psycopg.types.json.Jsonb(message),))  # position 5*64 - 1, open
        outcome: list[BaseException | None] = []

        def second() -> None:
            try:
                store.append({**message, "id": "b"})  # position 5*64 on: the next partition
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 -- the outcome is asserted below
                outcome.append(exc)

        thread = threading.Thread(target=second)
        thread.start()
        wait_until(lambda: conn.execute("select count(*) from pg_locks where locktype = 'advisory'"
                                        " and classid = 1246974042 and not granted").fetchone() == (1,))  # fmt: skip
        first.commit()
        thread.join(timeout=30)
        rows = conn.execute("select stream_id, position from pge_events where id = %s", (given,)).fetchall()
    assert rows == [("a", 5 * SIZE - 1)]
    assert isinstance(outcome[0], errors.InvalidEventError) and "already stored" in str(outcome[0])


def test_an_append_in_repeatable_read_to_a_partitioned_log_is_refused(
    store: EventStore, dsn: str, grown: list[Any]
) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("begin isolation level repeatable read")
        with pytest.raises(psycopg.Error, match="run in read committed") as caught:
            conn.execute("select pge_append(%s)", (psycopg.types.json.Jsonb(account(0, 1)),))
    assert caught.value.sqlstate == "JPL02"
    assert store.fetch_stream("acct-0").version == 20


def test_a_reader_does_not_pass_an_open_transaction_in_an_earlier_partition(store: EventStore, dsn: str) -> None:
    partitioned(dsn)
    store.append(account(1, 60))
    with psycopg.connect(dsn) as slow:  # takes position 61, in the first partition, and stays open
        slow.execute("select pge_append(%s)", (psycopg.types.json.Jsonb(account(2, 1)),))
        late = store.append(account(3, 100)).positions  # later positions, later partitions, committed
        assert late[0] // SIZE < late[-1] // SIZE
        assert [e.position for e in store.read_all(limit=1000)] == list(range(1, 61))
        slow.commit()
    read = store.read_all(after=60, limit=1000)
    assert [e.stream_id for e in read[:1]] == ["acct-2"] and [e.position for e in read[1:]] == late


def test_async_and_inline_projections_build_from_every_partition(store: EventStore, dsn: str) -> None:
    deploy(store, sources(Counters=COUNTERS), lifecycles={"Balance": "async", "Totals": "inline"})
    store.append_all([account(n, 30, 1) for n in range(2)])
    partitioned(dsn)
    store.append_all([account(n, 70, 1) for n in range(2)])
    Daemon(dsn).run(until_caught_up=True)
    balances = {n: store.views("Balance").get(f"acct-{n}") for n in range(2)}
    expected = sum(range(1, 31)) + sum(range(1, 71))
    assert balances == {n: {"balance": expected, "moves": 100} for n in range(2)}
    with psycopg.connect(dsn) as conn:
        totals = conn.execute("select data from pge_aggregates where name = 'Totals'").fetchone()
    assert totals == ({"events": 200, "sum": 2 * expected},)


def test_the_switch_carries_over_grants_comments_triggers_and_indexes_of_the_owner_s(
    store: EventStore, dsn: str
) -> None:
    deploy(store, sources(Counters=COUNTERS), lifecycles={"Balance": "async", "Totals": "inline"})
    reader = f"reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"create role {reader}")
        conn.execute(f"grant usage on schema public to {reader}")
        conn.execute(f"grant select on pge_events to {reader}")
        conn.execute("create index by_tenant on pge_events using gin (metadata jsonb_path_ops)")
        before = described(conn)
        partitioned(dsn)
        after = described(conn)
        conn.execute(f"set role {reader}")
        assert conn.execute("select count(*) from pge_events").fetchone() == (0,)
        conn.execute("reset role")
        conn.execute(f"drop owned by {reader}")
        conn.execute(f"drop role {reader}")
    assert after == before


def described(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """What of pge_events the switch must keep: comment, owner, grants, triggers, index definitions."""
    row = conn.execute(
        """select obj_description(c.oid, 'pg_class'), c.relowner::regrole::text, c.relacl::text[],
                  array(select tgname || ' ' || tgenabled::text from pg_trigger where tgrelid = c.oid and not tgisinternal
                        order by 1),
                  array(select replace(pg_get_indexdef(indexrelid), ' ON ONLY ', ' ON ') from pg_index where indrelid = c.oid
                        and (not indisunique or indkey[0] = 1) order by 1)
           from pg_class c where c.oid = 'pge_events'::regclass"""
    ).fetchone()
    assert row is not None
    return dict(zip(("comment", "owner", "grants", "triggers", "indexes"), row, strict=True))


def test_a_view_of_the_log_is_refused_by_name_and_the_store_is_left_as_it_was(store: EventStore, dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create view recent as select * from pge_events where position > 10")
        with pytest.raises(errors.PartitioningError, match="view or rule recent"):
            partitioned(dsn)
        assert conn.execute("select count(*) from pg_constraint where conname = 'pge_events_partition_bound'"
                            " union all select count(*) from pg_partitioned_table").fetchall() == [(0,), (0,)]  # fmt: skip
    store.append(account(1, 1))


def test_an_open_writer_makes_the_conversion_wait_not_the_other_writers(store: EventStore, dsn: str) -> None:
    store.append(account(1, 1))
    with psycopg.connect(dsn) as writer:  # an append whose transaction stays open: it holds pge_events
        writer.execute("select pge_append(%s)", (psycopg.types.json.Jsonb(account(2, 1)),))
        done: list[Any] = []
        thread = threading.Thread(target=lambda: done.append(
            partitioning.partition_log(dsn, size=SIZE, headroom=1, lock_timeout=0.05, attempts=10_000)))  # fmt: skip
        thread.start()
        with psycopg.connect(dsn, autocommit=True) as conn:
            wait_until(lambda: conn.execute("select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                                            " and query like 'alter table pge_events add constraint%'").fetchone()[0] > 0)  # fmt: skip
            store.append(account(3, 1))  # waits at most one lock_timeout behind the conversion's request
            assert conn.execute("select count(*) from pg_partitioned_table").fetchone() == (0,)
        writer.commit()
        thread.join(timeout=60)
    assert done and done[0].attempts >= 1 and partitioning.partitions(dsn)[0].name == "pge_events_0"
    assert [e.stream_id for e in store.read_all()] == ["acct-1", "acct-2", "acct-3"]  # (tx_id, position)


def test_a_conversion_that_never_gets_its_lock_changes_nothing(store: EventStore, dsn: str) -> None:
    with psycopg.connect(dsn) as reader:
        reader.execute("select count(*) from pge_events")  # holds ACCESS SHARE until it ends
        with pytest.raises(errors.PartitioningError, match="never free"):
            partitioning.partition_log(dsn, size=SIZE, lock_timeout=0.01, attempts=2)
    assert partitioning.partitions(dsn) == []
    with pytest.raises(errors.PartitioningError, match="at least 64"):
        partitioning.partition_log(dsn, size=10)


@pytest.fixture
def tablespace_folder() -> Iterator[Path]:
    """An empty folder the server's OS user owns, for a tablespace."""
    folder = Path(tempfile.mkdtemp(prefix="jsproj-tablespace-"))
    user = server_os_user()
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_detaching_old_partitions_keeps_their_events_in_tables_of_their_own(
    store: EventStore, dsn: str, grown: list[Any], tablespace_folder: Path
) -> None:
    deploy(store, sources(Counters=COUNTERS), lifecycles={"Balance": "async", "Totals": "async"})
    store.append_all([account(7, 60) for _ in range(3)])
    with pytest.raises(errors.PartitioningError, match="async projection Balance"):
        partitioning.detach_before(dsn, "public", 192)
    Daemon(dsn).run(until_caught_up=True)
    with pytest.raises(errors.PartitioningError, match="holds the log's last positions"):
        partitioning.detach_before(dsn, "public", 10**6)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"create tablespace cold location '{tablespace_folder}'")
        try:
            detached = partitioning.detach_before(dsn, "public", 192, tablespace="cold")
            assert [(p.name, p.upper, p.tablespace) for p in detached] == [("pge_events_0", 128, "cold"),
                                                                          ("pge_events_1", 192, "cold")]  # fmt: skip
            kept = conn.execute("select count(*) from pge_events_0").fetchone()[0]
            conn.execute("drop table pge_events_0, pge_events_1")
        finally:
            conn.execute("drop tablespace if exists cold")
    assert kept == 127 and snapshot(store)[0][0] == 192  # positions 1-127, and the log goes on from 192
    assert store.append(account(0, 1)).version == 21  # its events detached, its row keeps its version: it goes on
    assert [e.version for e in store.fetch_stream("acct-0").events] == [21]
    with psycopg.connect(dsn, autocommit=True) as conn:  # a row with no version yet, as migration 0018 left it
        conn.execute("update pge_streams set version = null, deleted = null where id = 'acct-1'")
    with pytest.raises(errors.StoreError, match="pge_streams_pkey"):  # no version, no event: docs/partitioning.md
        store.append(account(1, 1))


def test_the_cli_lists_partitions_and_runs_the_doc_s_commands(dsn: str, store: EventStore) -> None:
    runner = CliRunner()
    assert "one table" in runner.invoke(main, ["partition-log", "--list", "--dsn", dsn]).output
    commands = [line.split("#")[0].split() for line in DOC.read_text("utf-8").splitlines()
                if line.startswith("jsproj partition-log")]  # fmt: skip
    assert any("--size" in c for c in commands), "the doc shows the conversion"
    for command in commands:
        if "--detach-before" in command:
            continue  # (a tablespace of the reader's: the test above detaches)
        result = runner.invoke(main, [*command[1:], "--dsn", dsn, "--json"])
        assert result.exit_code == 0, result.output
    listed = runner.invoke(main, ["partition-log", "--list", "--dsn", dsn, "--json"])
    assert listed.exit_code == 0 and '"pge_events_0"' in listed.output
    again = runner.invoke(main, ["partition-log", "--size", "64", "--dsn", dsn])
    assert again.exit_code == 1 and "partitioned already" in again.output


def test_an_append_to_a_stream_reads_its_version_from_its_row_not_from_every_partition(
    store: EventStore, dsn: str, grown: list[Any]
) -> None:
    """bench/scale.py: reading a stream's last event looked in every partition, at each append (migration 0018)."""
    for round_ in range(4):
        store.append_all([account(n, 15, 200 + round_) for n in range(5)])
    assert len(partitioning.partitions(dsn)) >= 5
    with psycopg.connect(dsn) as conn:  # one transaction: the locks it took are still held
        conn.execute("""select pge_append('{"id": "acct-1", "type": "Account", "expected_version": 80,
                                            "data": {"$type": "Deposited", "amount": 1}}')""")
        partitions_locked = conn.execute(
            """select count(*) from pg_locks l join pg_inherits i on i.inhrelid = l.relation
               where l.pid = pg_backend_pid() and i.inhparent = 'pge_events'::regclass"""
        ).fetchone()[0]
    assert partitions_locked == 1, "the one it inserted into"
    assert store.fetch_stream("acct-1").version == 81
