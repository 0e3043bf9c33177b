"""Review 3: a tenant store's owner reaches the other stores of a fleet daemon, and can stop it serving them.

docs/daemon.md ("Many stores, one daemon"): "Each store is served by its own daemon"; the fleet asks every parked
store whether it has work "all in one statement per database (``pge_daemon_work()``)". That statement calls each
store's own ``pge_daemon_work()``, a function the store's owner owns and may replace, and runs it with the fleet's
rights. So the owner of one tenant's store (a hostile tenant, with its own owner role)

- makes the whole statement fail (its function raises): no store of that database is ever asked for work again, and
  every other tenant's async projections stop (a store broken by accident does the same);
- runs SQL of its choosing as the fleet's role: it writes other tenants' views, and, when the fleet runs as a
  superuser (the default role of ``jsproj daemon --all-stores``), makes itself a superuser.
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import sql

from jsproj.follow.daemon import Daemon, Shared
from jsproj.follow.fleet import Catalog, Fleet, StoreKey
from jsproj.projections.deploy import deploy
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore
from roles import as_role

from projections import sources
from waiting import running

COUNT = "projections.aggregate('Count').by({ $any: function (s) { s.n = (s.n || 0) + 1; } });"


@pytest.fixture
def tenants(dsn: str):
    """Two tenants' stores: acme's owned by the fleet's role (the cluster's superuser, as the fleet serves only
    stores its role owns), evil's by a role of its own that replaces and renames what it owns."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        database = admin.execute("select current_database()").fetchone()[0]
        with EventStore(dsn, schema="tenant_acme", max_size=1) as store:
            store.migrate()
            deploy(store, sources(Count=COUNT), lifecycles={"Count": "async"})
            store.append({"id": "s-1", "type": "S", "data": {"$type": "Added"}})
        for tenant in ("evil",):
            role = f"review3_{tenant}_owner"
            if not admin.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
                admin.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
            admin.execute(sql.SQL("grant create on database {} to {}").format(sql.Identifier(database),
                                                                              sql.Identifier(role)))  # fmt: skip
            admin.execute(sql.SQL("create schema {} authorization {}").format(sql.Identifier(f"tenant_{tenant}"),
                                                                              sql.Identifier(role)))  # fmt: skip
            with EventStore(as_role(dsn, role), schema=f"tenant_{tenant}", max_size=1) as store:
                store.migrate()
                deploy(store, sources(Count=COUNT), lifecycles={"Count": "async"})
                store.append({"id": "s-1", "type": "S", "data": {"$type": "Added"}})
    yield {"acme": dsn, "evil": as_role(dsn, "review3_evil_owner")}
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("alter role review3_evil_owner nosuperuser")
        for tenant in ("acme", "evil"):
            admin.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(f"tenant_{tenant}")))
        admin.execute("drop owned by review3_evil_owner")


def fleet(dsn: str) -> Fleet:
    def make(key: StoreKey, shared: Shared) -> Daemon:
        return Daemon(key.dsn, schema=key.schema, poll_interval=0.05, shared=shared)

    return Fleet([Catalog(dsn)], make, poll_interval=0.05, discover_every=0.1)


def acme_count(dsn: str) -> dict | None:
    with EventStore(dsn, schema="tenant_acme", max_size=1) as store:
        return fetch_view(store, "Count").get("Count")


def wait_for(condition, seconds: float) -> bool:
    done = threading.Event()
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        done.wait(0.05)
    return condition()


def test_a_tenant_whose_store_function_raises_does_not_stop_the_others(dsn: str, tenants) -> None:
    with psycopg.connect(tenants["evil"], autocommit=True) as evil:
        evil.execute("create or replace function tenant_evil.pge_daemon_work() returns boolean language plpgsql"
                     " as $$ begin raise exception 'a tenant that throws'; end $$")  # fmt: skip
    with running(fleet(dsn)):
        assert wait_for(lambda: acme_count(dsn) == {"n": 1}, 20), "another tenant's store stopped the fleet"


def test_a_tenant_runs_no_sql_of_its_own_with_the_fleets_rights(dsn: str, tenants) -> None:
    with psycopg.connect(tenants["evil"], autocommit=True) as evil:
        evil.execute("""create or replace function tenant_evil.pge_daemon_work() returns boolean language plpgsql as $$
            begin
                if (select rolsuper from pg_roles where rolname = current_user) then
                    execute 'alter role review3_evil_owner superuser';
                end if;
                insert into tenant_acme.pge_aggregates select 'Pwned', '{}'::jsonb, now()
                where not exists (select from tenant_acme.pge_aggregates where name = 'Pwned');
                return true;
            end $$""")
    with running(fleet(dsn)):
        wait_for(lambda: acme_count(dsn) == {"n": 1}, 10)
    with psycopg.connect(dsn) as admin:
        superuser = admin.execute("select rolsuper from pg_roles where rolname = 'review3_evil_owner'").fetchone()[0]
        pwned = admin.execute("select count(*) from tenant_acme.pge_aggregates where name = 'Pwned'").fetchone()[0]
    assert not superuser, "a tenant's store owner made itself a superuser through the fleet"
    assert not pwned, "a tenant's store owner wrote another tenant's views through the fleet"


@pytest.mark.parametrize("name", ["evil-tenant", "tenant_moved", "e'); select 1; --"])
def test_a_tenant_that_renames_its_schema_does_not_stop_the_others(dsn: str, tenants, name: str) -> None:
    """A schema's owner may rename it (alter schema ... rename to): the fleet then either refuses the whole database
    ("schema name ... is not a safe identifier ... retrying in 5.0 s", for ever) or runs the renamed store's
    functions, which name the old schema and raise: no other store of the database is served again."""
    with psycopg.connect(tenants["evil"], autocommit=True) as evil:
        evil.execute(sql.SQL("alter schema tenant_evil rename to {}").format(sql.Identifier(name)))
    try:
        with running(fleet(dsn)):
            assert wait_for(lambda: acme_count(dsn) == {"n": 1}, 20), f"a store renamed {name!r} stopped the fleet"
    finally:
        with psycopg.connect(tenants["evil"], autocommit=True) as evil:
            evil.execute(sql.SQL("alter schema {} rename to tenant_evil").format(sql.Identifier(name)))


def test_a_store_another_role_owns_is_left_alone_and_said_so(dsn: str, tenants, caplog) -> None:
    with running(fleet(dsn)):
        assert wait_for(lambda: acme_count(dsn) == {"n": 1}, 20)
    with EventStore(tenants["evil"], schema="tenant_evil", max_size=1) as store:
        assert fetch_view(store, "Count") == {}  # never served by a daemon of another role
    assert any("tenant_evil is left alone: another role owns it" in r.getMessage() for r in caplog.records)
