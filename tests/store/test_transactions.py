"""Appends in a transaction with the application's own writes, on both stores: both commit or neither,
and a block that raises uses no position of the sequence."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from jsproj import errors
from jsproj.projections.deploy import deploy
from jsproj.projections.views import fetch_view
from jsproj.store.aio import AsyncEventStore
from jsproj.store.sync import EventStore

COUNTER = [
    {
        "file": "Counter.js",
        "source": """projections.projectStream('Order').named('Orders').by({
          Placed: function (s, e) { if (e.total < 0) throw new Error('a negative total'); s.total = e.total; }
        });""",
    }
]


def sequence(dsn: str) -> tuple[int, int]:
    """(events stored, the next position the sequence gives)."""
    with psycopg.connect(dsn) as conn:
        events = conn.execute("select count(*) from pge_events").fetchone()
        last = conn.execute("select last_value + is_called::int from pge_events_position_seq").fetchone()
    assert events is not None and last is not None
    return events[0], last[0]


@pytest.fixture
def shop(dsn: str) -> Iterator[EventStore]:
    with EventStore(dsn) as store:
        deploy(store, COUNTER)  # Orders: inline, on the Python engine
        with store.connection() as conn:
            conn.execute("create table orders (id text primary key, total int not null)")
        yield store


def orders(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [row[0] for row in conn.execute("select id from orders order by id")]


def test_the_application_row_the_events_and_the_inline_documents_commit_together(shop: EventStore, dsn: str) -> None:
    with shop.transaction() as tx:
        tx.conn.execute("insert into orders values ('o1', 5)")
        first = tx.append(stream_id="o1", type="Order", events={"$type": "Placed", "total": 5})
        second = tx.append(stream_id="o1", events={"$type": "Placed", "total": 6}, expected_version=1)
        with pytest.raises(errors.InputError, match="after the `with` block"):
            first.result  # noqa: B018 -- reading it is the test
    assert (first.result.version, second.result.version) == (1, 2)
    assert orders(dsn) == ["o1"]
    assert fetch_view(shop, "Orders", "o1") == {"total": 6}


def test_a_block_that_raises_stores_nothing_and_uses_no_position(shop: EventStore, dsn: str) -> None:
    before = sequence(dsn)
    with pytest.raises(RuntimeError, match="declined"), shop.transaction() as tx:
        tx.conn.execute("insert into orders values ('o2', 7)")
        tx.append(stream_id="o2", type="Order", events={"$type": "Placed", "total": 7})
        raise RuntimeError("declined")
    assert sequence(dsn) == before
    assert orders(dsn) == []


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"id": "o3", "type": "Order", "data": {"$type": "Placed", "total": -1}}, errors.ProjectionHandlerError),
        ({"id": "o3", "type": "Order", "data": {"$type": "Placed"}, "expected_version": 4}, errors.ConcurrencyError),
        ({"id": "o3", "type": "Order", "data": [{"no": "type"}]}, errors.InvalidEventError),
    ],
    ids=["a projection's error", "a concurrency conflict", "a bad message"],
)
def test_a_failing_append_rolls_back_the_application_writes(
    shop: EventStore, dsn: str, message: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"append 1 of the transaction|expected|event 1"), shop.transaction() as tx:
        tx.conn.execute("insert into orders values ('o3', 1)")
        tx.append(message)
    assert orders(dsn) == []
    assert sequence(dsn)[0] == 0


def test_appends_join_a_transaction_of_the_applications_own_connection(shop: EventStore, dsn: str) -> None:
    with psycopg.connect(dsn) as mine:  # not autocommit: the application commits
        mine.execute("create schema app")
        mine.execute("set search_path = app, public")
        with shop.transaction(conn=mine) as tx:
            tx.conn.execute("insert into public.orders values ('o4', 9)")
            tx.append(stream_id="o4", type="Order", events={"$type": "Placed", "total": 9})
        path = mine.execute("show search_path").fetchone()
        assert path == ("app, public",), "the application's search_path is put back"
        assert shop.streams(["o4"]) == {}, "not committed yet: it is the application's transaction"
        mine.rollback()
    assert orders(dsn) == []
    assert sequence(dsn)[0] == 0
    with psycopg.connect(dsn) as mine:
        with shop.transaction(conn=mine) as tx:
            tx.append(stream_id="o5", type="Order", events={"$type": "Placed", "total": 1})
        mine.commit()
    assert fetch_view(shop, "Orders", "o5") == {"total": 1}


def test_the_asyncio_store_commits_or_rolls_back_the_same_way(shop: EventStore, dsn: str) -> None:
    async def scenario() -> None:
        async with AsyncEventStore(dsn) as store:
            async with store.transaction() as tx:
                await tx.conn.execute("insert into orders values ('a1', 3)")
                placed = tx.append(stream_id="a1", type="Order", events={"$type": "Placed", "total": 3})
            assert placed.result.version == 1
            before = sequence(dsn)
            with pytest.raises(errors.ProjectionHandlerError):
                async with store.transaction() as tx:
                    await tx.conn.execute("insert into orders values ('a2', 3)")
                    tx.append(stream_id="a2", type="Order", events={"$type": "Placed", "total": -3})
            assert sequence(dsn)[0] == before[0]
            before = sequence(dsn)
            with pytest.raises(LookupError):
                async with store.transaction() as tx:
                    tx.append(stream_id="a3", type="Order", events={"$type": "Placed", "total": 3})
                    raise LookupError("gone")
            assert sequence(dsn) == before

    asyncio.run(scenario())
    assert orders(dsn) == ["a1"]
    assert fetch_view(shop, "Orders", "a1") == {"total": 3}


def test_on_a_fresh_connection_of_the_applications_the_appends_wait_for_its_commit(shop: EventStore, dsn: str) -> None:
    with psycopg.connect(dsn) as mine:  # no transaction open yet: the block must not commit one of its own
        with shop.transaction(conn=mine) as tx:
            tx.append(stream_id="o6", type="Order", events={"$type": "Placed", "total": 2})
        assert shop.streams(["o6"]) == {}
        mine.rollback()
    assert sequence(dsn)[0] == 0


def test_the_inline_guard_is_back_after_the_appends_on_the_applications_connection(shop: EventStore, dsn: str) -> None:
    with psycopg.connect(dsn) as mine:
        with shop.transaction(conn=mine) as tx:
            tx.append(stream_id="o7", type="Order", events={"$type": "Placed", "total": 2})
        with pytest.raises(psycopg.Error, match="Python engine"):  # a raw append would miss Orders: refused
            mine.execute("select pge_append(%s::jsonb)", ('{"id": "o8", "type": "Order", "data": {"$type": "P"}}',))
        mine.rollback()


def test_results_are_given_only_once_committed_and_a_late_append_is_refused(shop: EventStore, dsn: str) -> None:
    with shop.connection() as conn:
        conn.execute("create table parents (id int primary key)")
        conn.execute("create table children (parent int references parents deferrable initially deferred)")
    with pytest.raises(psycopg.errors.ForeignKeyViolation), shop.transaction() as tx:  # fails at the COMMIT
        tx.conn.execute("insert into children values (1)")
        placed = tx.append(stream_id="o9", type="Order", events={"$type": "Placed", "total": 1})
    with pytest.raises(errors.InputError, match="after the `with` block"):
        placed.result  # noqa: B018 -- reading it is the test
    assert sequence(dsn)[0] == 0
    with shop.transaction() as tx:
        pass
    with pytest.raises(errors.InputError, match="block has ended"):
        tx.append(stream_id="o9", type="Order", events={"$type": "Placed", "total": 1})


def test_what_a_block_sets_on_the_connection_does_not_follow_the_stores_next_appends(dsn: str) -> None:
    with EventStore(dsn, max_size=1) as store:  # one connection: the block's comes back to the pool
        with store.transaction() as tx:
            tx.conn.execute("set search_path = pg_catalog")
            tx.conn.execute("set statement_timeout = 1")
        assert store.append(stream_id="s", type="T", events={"$type": "A"}).version == 1


def test_a_batch_after_another_process_deployed_more_inline_projections_feeds_them_all(
    shop: EventStore, dsn: str
) -> None:
    shop.append(stream_id="o10", type="Order", events={"$type": "Placed", "total": 1})  # loads Orders
    totals = """projections.aggregate('Totals').by({ Placed: function (s, e) { s.sum = (s.sum || 0) + e.total; } });"""
    with EventStore(dsn) as other:
        deploy(other, [*COUNTER, {"file": "Totals.js", "source": totals}])
    shop.append_all([{"id": f"o{n}", "type": "Order", "data": {"$type": "Placed", "total": 2}} for n in range(11, 14)])
    assert fetch_view(shop, "Totals", "Totals") == {"sum": 7}
    assert fetch_view(shop, "Orders", "o13") == {"total": 2}
