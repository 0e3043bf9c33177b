"""A store per tenant (store.for_tenant) against a real PostgreSQL: a schema or a database each, made on first
use when asked, names checked, and one daemon serving them all."""

from __future__ import annotations

import psycopg
import pytest

from clihelp import jsproj
from jsproj.errors import InvalidNameError, SchemaMissingError
from jsproj.projections.deploy import deploy
from jsproj.projections.views import fetch_view
from jsproj.store.sync import EventStore

from projections import sources

COUNT = "projections.aggregate('Count').by({ $any: function (s) { s.n = (s.n || 0) + 1; } });"


def schemas(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {row[0] for row in conn.execute("select nspname from pg_namespace where nspname like 'tenant%'")}


def test_a_tenant_gets_a_schema_of_its_own_made_and_migrated_on_first_use(store: EventStore, dsn: str) -> None:
    acme = store.for_tenant("acme", create=True)
    assert acme.schema == "tenant_acme" and store.for_tenant("acme") is acme
    acme.append({"id": "order-1", "type": "Order", "data": {"$type": "Placed"}})
    globex = store.for_tenant("globex", create=True)
    assert [e.stream_id for e in acme.read_all()] == ["order-1"]
    assert globex.read_all() == [] and store.read_all() == []  # each its own log
    assert schemas(dsn) == {"tenant_acme", "tenant_globex"}


def test_a_tenant_without_a_store_is_refused_unless_asked_to_make_one(store: EventStore, dsn: str) -> None:
    with pytest.raises(SchemaMissingError, match=r"tenant initech has no store .*create=True"):
        store.for_tenant("initech")
    assert schemas(dsn) == set()


@pytest.mark.parametrize("name", ["Acme", "a-b", "a.b", "", "_x", "a" * 41, "x; drop schema public", 7, None])
def test_a_tenant_name_that_could_name_another_place_is_refused(store: EventStore, dsn: str, name: object) -> None:
    with pytest.raises(InvalidNameError, match="tenant name"):
        store.for_tenant(name, create=True)  # type: ignore[arg-type]
    assert schemas(dsn) == set()


@pytest.mark.parametrize("tenants", ["tenant_{tenant}", "table:{tenant}", "schema:t", "schema:{tenant}_{tenant}",
                                     "schema:x-{tenant}", "schema:{tenant}", "database:{tenant}"])  # fmt: skip
def test_a_placement_that_is_not_one_place_per_tenant_is_refused(dsn: str, tenants: str) -> None:
    with pytest.raises(InvalidNameError):
        EventStore(dsn, tenants=tenants)


def test_a_tenant_may_get_a_database_of_its_own(dsn: str, cluster) -> None:
    with EventStore(dsn, tenants="database:jsproj_tenant_{tenant}") as store:
        umbrella = store.for_tenant("umbrella", create=True)
        umbrella.append({"id": "s", "type": "T", "data": {"$type": "Made"}})
        assert psycopg.conninfo.conninfo_to_dict(umbrella.dsn)["dbname"] == "jsproj_tenant_umbrella"
        assert [e.stream_id for e in umbrella.read_all()] == ["s"] and store.read_all() == []
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("drop database jsproj_tenant_umbrella")


def test_one_daemon_keeps_every_tenants_views(store: EventStore, dsn: str) -> None:
    for n, tenant in enumerate(["acme", "globex", "initech"]):
        mine = store.for_tenant(tenant, create=True)
        deploy(mine, sources(Count=COUNT), lifecycles={"Count": "async"})
        mine.append_all([{"id": f"s{i}", "type": "T", "data": {"$type": "Made"}} for i in range(n + 1)])
    done = jsproj("daemon", "--dsn", dsn, "--all-stores", "--until-caught-up")
    assert done.returncode == 0, done.stderr
    for n, tenant in enumerate(["acme", "globex", "initech"]):
        assert fetch_view(store.for_tenant(tenant), "Count") == {"Count": {"n": n + 1}}


@pytest.mark.parametrize(("tenants", "tenant"), [("schema:p{tenant}", "ublic"), ("schema:pg_{tenant}", "catalog"),
                                                 ("database:t{tenant}", "emplate1"), ("schema:i{tenant}", "nformation_schema")])  # fmt: skip
def test_a_tenant_whose_place_is_the_stores_own_or_postgresqls_is_refused(dsn: str, tenants: str, tenant: str) -> None:
    with EventStore(dsn, tenants=tenants) as store, pytest.raises(InvalidNameError, match="not a tenant's"):
        store.for_tenant(tenant, create=True)
