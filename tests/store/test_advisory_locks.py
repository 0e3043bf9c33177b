"""Advisory locks as a privilege (docs/deploy.md#advisory-locks): the DBA's script, run as the doc has it.

PostgreSQL lets every role that may connect take any advisory lock: a role with no grants at all held the lock of
a stream and every append to it, its archiving and its erasure waited (the second blind review of the lifecycle).
After the script, a role with no grants and the application role may take none, and jsproj's own work goes on:
the owner's appends and lifecycle calls, the application role's appends (``pge_append`` takes the locks as the
owner), the daemon, and a subscription run by a role of its own (``pge_subscription_lease``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from jsproj.follow.daemon import Daemon
from jsproj.follow.subscriptions import subscribe
from jsproj.projections.deploy import deploy
from jsproj.projections.erasure import erase
from jsproj.projections.views import export_views
from jsproj.store.sync import EventStore
from roles import as_role

from conformance_hosts import require_language
from projections import sources

DEPLOY_MD = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
SCRIPT = re.search(r"^```sql run=advisory-locks\n(.*?)^```", DEPLOY_MD.read_text("utf-8"), re.S | re.M)
ROLES = ("shop_owner", "shop_app", "shop_reader", "nobody_at_all")
TALLY = """projections.aggregate('Tally').by({ Paid: function (s, e) { s.sum = (s.sum || 0) + e.amount; } });
projections.aggregate('Later').by({ Paid: function (s) { s.n = (s.n || 0) + 1; } }).async();"""
STREAM_LOCK = "select pg_try_advisory_lock(1246974036, hashtext('order-1'))"


@dataclass(frozen=True)
class Roles:
    owner: str
    app: str
    reader: str  # runs a subscription
    nobody: str  # may connect, and nothing else


@pytest.fixture
def roles(cluster, dsn: str) -> Iterator[Roles]:
    require_language(dsn, "plv8")
    with psycopg.connect(dsn, autocommit=True) as admin:
        for role in ROLES:  # (roles are the cluster's: made once, kept for the session's other tests)
            if not admin.execute("select from pg_roles where rolname = %s", (role,)).fetchone():
                admin.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
        admin.execute("create extension if not exists plv8")
        database = admin.execute("select current_database()").fetchone()[0]
        admin.execute(sql.SQL("grant create on database {} to shop_owner").format(sql.Identifier(database)))
    owner = as_role(dsn, "shop_owner")
    with EventStore(owner, schema="shop", max_size=1) as store:
        deploy(store, sources(Tally=TALLY), engine="plv8")
    with psycopg.connect(owner, autocommit=True) as conn:  # the documented grants (deploy.md#privileges)
        conn.execute("grant usage on schema shop to shop_app, shop_reader")
        conn.execute("grant execute on function shop.pge_append(jsonb) to shop_app")
        conn.execute("grant select on shop.pge_aggregates to shop_app")
        conn.execute("grant select on shop.pge_events, shop.pge_streams to shop_reader")  # a subscriber reads
        conn.execute("grant select, insert, update on shop.pge_subscriptions to shop_reader")  # and checkpoints
    yield Roles(owner, as_role(dsn, "shop_app"), as_role(dsn, "shop_reader"), as_role(dsn, "nobody_at_all"))


def advisory_functions(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Every advisory lock function of PostgreSQL, with arguments to call it with."""
    rows = conn.execute(
        "select p.proname, pg_get_function_identity_arguments(p.oid) from pg_proc p"
        " where p.pronamespace = 'pg_catalog'::regnamespace"
        " and (p.proname like 'pg\\_advisory\\_%' or p.proname like 'pg\\_try\\_advisory\\_%') order by 1, 2"
    ).fetchall()
    arguments = {"": "", "bigint": "1246974036", "integer, integer": "1246974036, 1"}
    return [(name, arguments[args]) for name, args in rows]


def test_the_dbas_script_leaves_advisory_locks_to_the_roles_it_names_and_jsproj_goes_on(roles: Roles, dsn: str) -> None:
    assert SCRIPT, "docs/deploy.md has the script"
    with psycopg.connect(roles.nobody, autocommit=True) as nobody:  # PostgreSQL's default: anyone takes any
        assert nobody.execute(STREAM_LOCK).fetchone() == (True,)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(SCRIPT.group(1))
        functions = advisory_functions(admin)
    assert len(functions) >= 20
    for dsn_of in (roles.nobody, roles.app, roles.reader):
        with psycopg.connect(dsn_of, autocommit=True) as conn:
            for name, args in functions:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(f"select {name}({args})")  # names and arguments: PostgreSQL's, above

    with psycopg.connect(roles.app, autocommit=True) as app:  # appends take their locks as the owner
        app.execute(
            """select shop.pge_append('{"id": "order-1", "type": "Order", "data": {"$type": "Paid", "amount": 5}}')"""
        )
        assert app.execute("select data from shop.pge_aggregates where name = 'Tally'").fetchone() == ({"sum": 5},)
    with EventStore(roles.owner, schema="shop", max_size=1) as store:
        store.append({"id": "order-2", "type": "Order", "data": {"$type": "Paid", "amount": 7}})
        assert store.archive_stream("order-2").changed and store.unarchive_stream("order-2").changed
        assert erase(store, "order-2", reason="request 11").events == 1
        Daemon(roles.owner, schema="shop").run(until_caught_up=True)
        assert export_views(store)["aggregates"]["Later"] == {"n": 2}
    seen: list[str] = []
    with EventStore(roles.reader, schema="shop", max_size=1) as reader:  # its lease: pge_subscription_lease
        runner = subscribe(reader, "mailer", lambda event, conn: seen.append(event.stream_id))
        assert runner.run(until_caught_up=True)
    assert seen == ["order-1", "order-2"]
