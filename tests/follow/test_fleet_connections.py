"""The connections a fleet's stores take in turn: the next store gets one emptied of the store before (its
locks, LISTEN, settings, temporary tables), set to its own schema and name; one in doubt is closed."""

from __future__ import annotations

import psycopg
import pytest

from jsproj.follow.fleet.connections import SharedConnections

from waiting import wait_until


@pytest.fixture
def shared() -> SharedConnections:
    connections = SharedConnections(keep=2)
    yield connections  # type: ignore[misc]
    connections.close()


def backend(conn: psycopg.Connection) -> int:
    return conn.info.backend_pid


def test_the_next_store_takes_the_connection_emptied_and_set_to_its_schema(dsn: str, shared: SharedConnections) -> None:
    first = shared.take(dsn, "alpha", "jsproj daemon alpha")
    pid = backend(first)
    first.execute("select pg_advisory_lock(42)")
    first.execute("listen pge_events")
    first.execute("set statement_timeout = '1s'")
    first.execute("create temporary table kept (secret text)")
    shared.give(first, clean=True)
    second = shared.take(dsn, "beta", "jsproj daemon beta")
    assert backend(second) == pid
    with psycopg.connect(dsn, autocommit=True) as other:  # the lock was given back
        assert other.execute("select pg_try_advisory_lock(42)").fetchone() == (True,)
    assert second.execute("show search_path").fetchone() == ("beta",)
    assert second.execute("show application_name").fetchone() == ("jsproj daemon beta",)
    assert second.execute("show statement_timeout").fetchone() == ("0",)
    assert second.execute("select count(*) from pg_listening_channels()").fetchone() == (0,)
    assert second.execute("select to_regclass('pg_temp.kept')").fetchone() == (None,)
    shared.give(second, clean=True)


def test_a_connection_given_back_in_doubt_or_in_a_transaction_is_closed(dsn: str, shared: SharedConnections) -> None:
    doubted = shared.take(dsn, "alpha", "a")
    shared.give(doubted, clean=False)
    assert doubted.closed
    in_transaction = shared.take(dsn, "alpha", "b")
    in_transaction.autocommit = False
    in_transaction.execute("select 1")
    shared.give(in_transaction, clean=True)
    assert in_transaction.closed


def test_at_most_keep_connections_wait_per_database(dsn: str, shared: SharedConnections) -> None:
    taken = [shared.take(dsn, "alpha", f"n{n}") for n in range(3)]
    for conn in taken:
        shared.give(conn, clean=True)
    assert [conn.closed for conn in taken] == [False, False, True]


def test_a_connection_the_server_ended_while_it_waited_is_not_handed_out(dsn: str, shared: SharedConnections) -> None:
    first = shared.take(dsn, "alpha", "a")
    pid = backend(first)
    shared.give(first, clean=True)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("select pg_terminate_backend(%s)", (pid,))
        # (a signal: the backend ends soon after)
        wait_until(
            lambda: admin.execute("select count(*) from pg_stat_activity where pid = %s", (pid,)).fetchone()[0] == 0
        )
    second = shared.take(dsn, "beta", "b")
    assert backend(second) != pid
    assert second.execute("select 1").fetchone() == (1,)
    shared.give(second, clean=True)
